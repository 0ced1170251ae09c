"""
==========================================
Anomaly detection with an outlier detector
==========================================

:class:`~skae.AutoencoderOutlierDetector` is a scikit-learn outlier
detector, used as :class:`~sklearn.ensemble.IsolationForest` is: fit it on
data, and ``score_samples`` is higher for samples that look like the data,
``decision_function`` is negative for outliers and ``predict`` returns -1
for them and +1 for inliers.

Its score adds three counts of how unusual a sample is: how badly the
autoencoder reconstructs it, and how isolated its code is among the
training samples' codes (their local outlier factor, and its mean distance
to its nearest training codes). Here it learns one
digit and is asked to tell the other nine from it, the one-class task of
Ruff et al. (2018), against the usual baselines.
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
from sklearn.ensemble import IsolationForest
from sklearn.metrics import RocCurveDisplay, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor

from skae import AutoencoderOutlierDetector
from skae.datasets import load_digits, load_mnist

use_mnist = os.environ.get("SKAE_EXAMPLES_DATA", "mnist") == "mnist"
try:
    X, y = load_mnist(return_X_y=True) if use_mnist else load_digits(return_X_y=True)
except OSError:  # MNIST is not installed
    X, y = load_digits(return_X_y=True)
if X.shape[1] == 784:
    X, y = X[:10_000], y[:10_000]
X_train_all, X_test, y_train_all, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)
print(f"{X.shape[1]} pixels; about {len(X_train_all) // 10} training images of each digit")

# %%
# One digit as the normal class
# -----------------------------
# For each digit, every method is fitted on that digit's training images
# and scores all the test images; the ROC AUC measures how well its score
# ranks the other digits above that one. The baselines are
# IsolationForest, the local outlier factor of the pixels, and PCA's
# reconstruction error with as many components as the detector's code.
# Each anomaly score is higher for samples that look less normal.


def anomaly_scores(digit):
    """Each method's anomaly score of the test images, trained on one digit."""
    X_train = X_train_all[y_train_all == digit]
    detector = AutoencoderOutlierDetector(random_state=0).fit(X_train)
    forest = IsolationForest(random_state=0).fit(X_train)
    lof = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(X_train)
    pca = PCA(n_components=detector.n_components_, random_state=0).fit(X_train)
    pca_reconstruction = pca.inverse_transform(pca.transform(X_test))
    return {
        "AutoencoderOutlierDetector": -detector.score_samples(X_test),
        "IsolationForest": -forest.score_samples(X_test),
        "LocalOutlierFactor": -lof.score_samples(X_test),
        "PCA reconstruction error": np.sum((pca_reconstruction - X_test) ** 2, axis=1),
    }


digits = np.arange(10)
scores = {digit: anomaly_scores(digit) for digit in digits}
auc = {
    name: np.array([roc_auc_score(y_test != d, scores[d][name]) for d in digits])
    for name in scores[0]
}
print("ROC AUC of telling the other digits from the one trained on")
print(f"{'digit':>27} " + " ".join(f"{d:>5}" for d in digits) + "   mean")
for name, values in auc.items():
    print(f"{name:>27} " + " ".join(f"{v:5.3f}" for v in values) + f"  {values.mean():5.3f}")

# %%
# The ROC curves of the digit the detector finds hardest to learn: each
# curve shows which fraction of the other digits (true positives) a
# method catches for a given fraction of the normal digit's images that it
# flags too (false positives).
hardest = int(np.argmin(auc["AutoencoderOutlierDetector"]))
fig, ax = plt.subplots(figsize=(5.5, 5), layout="constrained")
for name, score in scores[hardest].items():
    RocCurveDisplay.from_predictions(y_test != hardest, score, name=name, ax=ax)
ax.plot([0, 1], [0, 1], color="gray", linewidth=0.8, linestyle=":")
ax.set_title(f"Trained on the {hardest}s: finding the other digits")
plt.show()

# %%
# The threshold
# -------------
# ``predict`` flags the samples whose ``decision_function`` is negative.
# With the default ``contamination="auto"`` the threshold ``offset_`` lies
# far below the training samples' typical score, so that it flags gross
# outliers and few normal samples; a float ``contamination`` flags that
# fraction of the training data instead, as when the training data are
# known to hold some outliers.
digit = int(np.argmax(auc["AutoencoderOutlierDetector"]))
X_train = X_train_all[y_train_all == digit]
detector = AutoencoderOutlierDetector(random_state=0).fit(X_train)
decision = detector.decision_function(X_test)
normal = y_test == digit
print(
    f"Trained on the {digit}s, contamination='auto' flags "
    f"{np.mean(decision[normal] < 0):.1%} of the test {digit}s and "
    f"{np.mean(decision[~normal] < 0):.1%} of the other digits"
)
fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
bins = np.linspace(np.percentile(decision, 1), max(decision.max(), 1), 50)
ax.hist(decision[normal], bins=bins, alpha=0.6, density=True, label=f"test {digit}s")
ax.hist(decision[~normal], bins=bins, alpha=0.6, density=True, label="other digits")
ax.axvline(0, color="black", linewidth=1)
ax.set(xlabel="decision_function (negative: outlier)", ylabel="density")
ax.legend()
plt.show()

flagged = AutoencoderOutlierDetector(contamination=0.05, random_state=0).fit_predict(X_train) == -1
print(f"contamination=0.05 flags {flagged.mean():.1%} of the training {digit}s")
