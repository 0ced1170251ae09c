"""
=======================================
Anomaly detection with score_samples
=======================================

An autoencoder trained on normal data reconstructs normal samples well and
anything else badly, so the reconstruction error is an anomaly score.
:meth:`~skae.AutoencoderTransformer.score_samples` returns its negative,
per sample: the lower, the more anomalous.

Here the models see every digit but one, and are asked to single out that
digit among test images. :class:`~sklearn.decomposition.PCA` has a
``score_samples`` too, the log-likelihood of probabilistic PCA, and PCA's
reconstruction error is a classic detector as well; the three are compared
by ROC AUC, for each digit in turn.
"""

# %%
# Data
# ----
# MNIST when it is installed (a subset, to run in under a minute), and
# scikit-learn's digits otherwise or when ``SKAE_EXAMPLES_DATA=digits``.
import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import RocCurveDisplay, roc_auc_score
from sklearn.model_selection import train_test_split

from skae import AutoencoderTransformer
from skae.datasets import load_digits, load_mnist

use_mnist = os.environ.get("SKAE_EXAMPLES_DATA", "mnist") == "mnist"
try:
    X, y = load_mnist(return_X_y=True) if use_mnist else load_digits(return_X_y=True)
except OSError:  # MNIST is not installed
    X, y = load_digits(return_X_y=True)
if X.shape[1] == 784:
    X, y = X[:3_000], y[:3_000]
encoding_dim = 32 if X.shape[1] == 784 else 16
X_train_all, X_test, y_train_all, y_test = train_test_split(X, y, test_size=0.3, random_state=0)

# %%
# One digit as the anomaly
# ------------------------
# For each digit, the models train on the other nine, and score the test
# images. ``score_samples`` is higher for samples that look normal, so its
# negative ranks the anomalies first; "error" is the mean squared
# reconstruction error of each test image.


def anomaly_scores(outlier_digit):
    """Each method's anomaly score of the test images, trained without a digit."""
    X_train = X_train_all[y_train_all != outlier_digit]
    ae = AutoencoderTransformer(encoding_dim, max_iter=10, random_state=0).fit(X_train)
    pca = PCA(n_components=encoding_dim, random_state=0).fit(X_train)
    pca_reconstruction = pca.inverse_transform(pca.transform(X_test))
    return {
        "autoencoder error": -ae.score_samples(X_test),
        "PCA log-likelihood": -pca.score_samples(X_test),
        "PCA error": np.mean((pca_reconstruction - X_test) ** 2, axis=1),
    }


digits = np.arange(10)
scores = {digit: anomaly_scores(digit) for digit in digits}
auc = {
    name: np.array([roc_auc_score(y_test == d, scores[d][name]) for d in digits])
    for name in scores[0]
}
print("ROC AUC of finding each digit, trained on the nine others")
print(f"{'digit':>18} " + " ".join(f"{d:>5}" for d in digits) + "   mean")
for name, values in auc.items():
    print(f"{name:>18} " + " ".join(f"{v:5.2f}" for v in values) + f"  {values.mean():5.2f}")

# %%
# Some digits stand out more than others: a digit whose strokes the other
# nine also draw is reconstructed well by models that never saw it, and a
# squared error grows with the ink, so a thin digit such as 1 can score
# low, even below chance (0.5). On the left, the ROC AUC per held-out
# digit; on the right, the ROC curves for the digit the autoencoder finds
# best.
fig, axes = plt.subplots(ncols=2, figsize=(11, 4), layout="constrained")
width = 0.8 / len(auc)
for i, (name, values) in enumerate(auc.items()):
    axes[0].bar(digits + (i - 1) * width, values, width, label=name)
axes[0].set(xlabel="Held-out digit", ylabel="ROC AUC", xticks=digits, ylim=(0.4, 1))
axes[0].axhline(0.5, color="gray", linewidth=0.8, linestyle=":")
axes[0].legend(loc="lower right")

best = int(np.argmax(auc["autoencoder error"]))
for name, score in scores[best].items():
    RocCurveDisplay.from_predictions(y_test == best, score, name=name, ax=axes[1])
axes[1].set_title(f"Finding the {best}s")
plt.show()
