"""
=========================
A denoising autoencoder
=========================

An autoencoder trained to rebuild clean images from corrupted copies of
them learns to remove that corruption. ``noise="gaussian"`` adds Gaussian
noise of standard deviation ``noise_level`` to the training inputs,
``noise="masking"`` sets a fraction ``noise_level`` of them to zero; the
targets stay clean, and ``transform`` never corrupts anything.

Here noisy test digits go through PCA, a plain autoencoder and a denoising
one, and each reconstruction is compared with the clean digit.
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

from skae import AutoencoderTransformer, ReconstructionDisplay
from skae.datasets import load_digits, load_mnist

use_mnist = os.environ.get("SKAE_EXAMPLES_DATA", "mnist") == "mnist"
try:
    X, _ = load_mnist(subset="all", return_X_y=True) if use_mnist else load_digits(return_X_y=True)
except OSError:  # MNIST is not installed
    X, _ = load_digits(return_X_y=True)
if X.shape[1] == 784:
    X_train, X_test = X[:6_000], X[-1_000:]
    image_shape, encoding_dim = (28, 28), 32
else:
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
    image_shape, encoding_dim = (8, 8), 16

# %%
# Corrupted test images
# ---------------------
# Gaussian noise of standard deviation 0.5, and masking of half the pixels.
# Noisy pixels saturate at 0 and 1, as a camera's do, so the corrupted
# images stay in the range the models were fitted on.
rng = np.random.RandomState(0)
level = 0.5
noisy = {
    "gaussian": np.clip(X_test + level * rng.normal(size=X_test.shape), 0, 1).astype(np.float32),
    "masking": (X_test * (rng.uniform(size=X_test.shape) >= level)).astype(np.float32),
}

# %%
# Three models
# ------------
# PCA and a plain autoencoder learn from clean images only; each denoising
# autoencoder learns from images corrupted by the same kind and level of
# noise (its Gaussian training noise is not clipped).
params = dict(encoding_dim=encoding_dim, max_iter=15, random_state=0)
pca = PCA(n_components=encoding_dim).fit(X_train)
plain = AutoencoderTransformer(**params).fit(X_train)
denoising = {
    noise: AutoencoderTransformer(noise=noise, noise_level=level, **params).fit(X_train)
    for noise in noisy
}


def error_to_clean(model, X_noisy):
    """Mean squared error between the reconstruction of X_noisy and X_test."""
    return np.mean((model.inverse_transform(model.transform(X_noisy)) - X_test) ** 2)


print("Mean squared error to the clean test images")
print(f"{'':>9} {'noisy':>7} {'PCA':>7} {'AE':>7} {'DAE':>7}")
for noise, X_noisy in noisy.items():
    errors = [
        np.mean((X_noisy - X_test) ** 2),
        error_to_clean(pca, X_noisy),
        error_to_clean(plain, X_noisy),
        error_to_clean(denoising[noise], X_noisy),
    ]
    print(f"{noise:>9} " + " ".join(f"{e:7.4f}" for e in errors))

# %%
# What the errors look like
# -------------------------
# For each kind of noise: the clean digits on top, the corrupted input,
# then the reconstructions of that input.
fig, axes = plt.subplots(ncols=2, figsize=(10, 3.8), layout="constrained")
for ax, (noise, X_noisy) in zip(axes, noisy.items(), strict=True):
    models = [pca, plain, denoising[noise]]
    reconstructions = [m.inverse_transform(m.transform(X_noisy[:6])) for m in models]
    ReconstructionDisplay(
        X_test[:6],
        [X_noisy[:6], *reconstructions],
        image_shape=image_shape,
        names=[f"{noise} noise", "PCA", "autoencoder", "denoising AE"],
    ).plot(ax=ax)
    ax.set_title(f"{noise.capitalize()} noise, level {level}")
plt.show()
