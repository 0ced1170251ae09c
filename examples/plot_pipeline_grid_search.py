"""
===================================================
A drop-in for PCA in a pipeline and a grid search
===================================================

:class:`~skae.AutoencoderTransformer` follows the transformer API of
:class:`~sklearn.decomposition.PCA`, so it takes PCA's place in a
:class:`~sklearn.pipeline.Pipeline`. Here both reduce digit images before a
logistic regression, and :class:`~sklearn.model_selection.GridSearchCV`
picks the code width of each. The width's parameter has another name,
``n_components`` for PCA and ``encoding_dim`` for the autoencoder, so each
pipeline gets its own grid; a single search over both reducers takes a list
of grids, one per reducer (see the user guide).
"""

# %%
# Data
# ----
# MNIST when it is installed (a subset, to run in under a minute), and
# scikit-learn's digits otherwise or when ``SKAE_EXAMPLES_DATA=digits``.
import os
import warnings

import matplotlib.pyplot as plt
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline

from skae import AutoencoderTransformer, ReconstructionErrorDisplay
from skae.datasets import load_digits, load_mnist

# A few LogisticRegression iterations keep the example quick.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

use_mnist = os.environ.get("SKAE_EXAMPLES_DATA", "mnist") == "mnist"
try:
    X, y = load_mnist(return_X_y=True) if use_mnist else load_digits(return_X_y=True)
except OSError:  # MNIST is not installed
    X, y = load_digits(return_X_y=True)
if X.shape[1] == 784:
    X, y = X[:1_600], y[:1_600]
dims = [8, 16, 32] if X.shape[1] == 784 else [4, 8, 16]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)

# %%
# Two pipelines, one grid search each
# -----------------------------------
# The pipelines differ in their first step only.
classifier = LogisticRegression(max_iter=200)
pipelines = {
    "PCA": (
        Pipeline([("reduce", PCA(random_state=0)), ("classify", classifier)]),
        {"reduce__n_components": dims},
    ),
    "autoencoder": (
        Pipeline(
            [
                ("reduce", AutoencoderTransformer(max_iter=10, random_state=0)),
                ("classify", classifier),
            ]
        ),
        {"reduce__encoding_dim": dims},
    ),
}

searches = {}
for name, (pipeline, grid) in pipelines.items():
    searches[name] = GridSearchCV(pipeline, grid, cv=3).fit(X_train, y_train)
    search = searches[name]
    print(
        f"{name:>11}: best {search.best_params_}, cross-validated accuracy "
        f"{search.best_score_:.3f}, test accuracy {search.score(X_test, y_test):.3f}"
    )

# %%
# Accuracy and reconstruction error against the width of the code
# ---------------------------------------------------------------
# ``cv_results_`` holds the cross-validated accuracy at each width (left).
# The same transformers are also judged by how well they reconstruct the
# test images: :class:`~skae.ReconstructionErrorDisplay` refits each at
# every width and draws the held-out error (right).
reducers = [clone(search.estimator.named_steps["reduce"]) for search in searches.values()]

fig, axes = plt.subplots(ncols=2, figsize=(9, 3.5), layout="constrained")
for name, search in searches.items():
    axes[0].errorbar(
        dims,
        search.cv_results_["mean_test_score"],
        yerr=search.cv_results_["std_test_score"],
        marker="o",
        capsize=3,
        label=name,
    )
axes[0].set(xlabel="Encoding dimension", ylabel="Cross-validated accuracy")
axes[0].legend()
display = ReconstructionErrorDisplay.from_estimators(
    reducers, X_train, X_test, dims=dims, names=list(searches), ax=axes[1]
)
plt.show()

for name, errors in zip(searches, display.errors, strict=True):
    print(f"{name:>11}: test reconstruction MSE " + ", ".join(f"{e:.4f}" for e in errors))

# %%
# Both transformers keep the API that the search relies on: ``fit``,
# ``transform``, ``get_params`` and ``set_params``, and ``score``, the
# negative reconstruction error, which the search would maximise without a
# classifier after it.
best = searches["autoencoder"].best_estimator_.named_steps["reduce"]
print(f"best autoencoder's score on the test images: {best.score(X_test):.4f}")
