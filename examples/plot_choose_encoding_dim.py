"""
==================================================
Choosing encoding_dim from the explained variance
==================================================

PCA users pick ``n_components`` by reading
``pca.explained_variance_ratio_.cumsum()``, or by asking for a share of the
variance, ``PCA(n_components=0.9)``. :class:`~skae.AutoencoderTransformer`
offers both. With ``ordered_codes=True`` its codes are ordered like PCA's
components: the first ``j`` units of a code reconstruct the data about as
well as a model fitted with ``j`` units, so one fit gives the whole curve.
Ordering is the default where it costs nothing (a linear output, on data
outside [0, 1], and a float ``encoding_dim``); on images in [0, 1] it costs
the whole code part of its gain over PCA, so it is asked for here.
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
from sklearn.model_selection import train_test_split

from skae import AutoencoderTransformer, ReconstructionErrorDisplay
from skae.datasets import load_digits, load_mnist

use_mnist = os.environ.get("SKAE_EXAMPLES_DATA", "mnist") == "mnist"
try:
    X, _ = load_mnist(return_X_y=True) if use_mnist else load_digits(return_X_y=True)
except OSError:  # MNIST is not installed
    X, _ = load_digits(return_X_y=True)
X = X[:4_000]
width = 32 if X.shape[1] == 784 else 16
X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)

# %%
# One fit, every size
# -------------------
# ``explained_variance_ratio_`` has PCA's meaning: its cumulative sum at
# ``j`` is the share of the training data's variance that the first ``j``
# units of the code reconstruct. With its clipped output, the autoencoder
# explains more than PCA at most sizes.
ae = AutoencoderTransformer(width, ordered_codes=True, random_state=0).fit(X_train)
pca = PCA(width).fit(X_train)
sizes = np.arange(1, width + 1)
fig, ax = plt.subplots()
ax.plot(sizes, np.cumsum(pca.explained_variance_ratio_), label="PCA")
ax.plot(sizes, np.cumsum(ae.explained_variance_ratio_), label="autoencoder")
ax.set_xlabel("units kept")
ax.set_ylabel("cumulative explained variance ratio")
ax.legend()

# %%
# A share of the variance
# -----------------------
# As with PCA, a float asks for the fewest units that explain that share of
# the training data's variance; the autoencoder needs no more than PCA.
# (A float ``encoding_dim`` orders the codes by itself.)
share = 0.8
ae_share = AutoencoderTransformer(share, random_state=0).fit(X_train)
n_pca = PCA(share).fit(X_train).n_components_
print(f"units for {share:.0%} of the variance: PCA {n_pca}, autoencoder {ae_share.n_components_}")

# %%
# The held-out curve
# ------------------
# :class:`~skae.ReconstructionErrorDisplay` draws the held-out error at each
# size. For an autoencoder with ordered codes it fits once, at the largest
# size, and reads the smaller ones from the first units of its code
# (``per_dimension=True`` fits at every size instead).
display = ReconstructionErrorDisplay.from_estimators(
    [PCA(), AutoencoderTransformer(ordered_codes=True, random_state=0)],
    X_train,
    X_test,
    dims=[2, 4, 8, width],
    names=["PCA", "autoencoder"],
)
plt.show()
