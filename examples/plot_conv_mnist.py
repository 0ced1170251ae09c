"""
==========================================
Convolutional autoencoders for images
==========================================

Each row of an image data set is an image raveled into a vector, and by
default skae's autoencoders see it as just that: a vector. Setting
``image_shape`` tells them how to see it as an image. With hidden layers
started at PCA (the default ``init``), the nonlinear corrections beside the
linear path then become convolutional: ``hidden_layer_sizes`` gives the
channels of stride-2 convolutions on the encoder's side, mirrored by
transposed convolutions on the decoder's. Training still starts exactly
where PCA ends, and keeps only what beats that start on held-out rows.

Here PCA, the dense correction and the convolutional one compress
handwritten digits to the same number of codes. On a few thousand images,
as here, the dense correction is both better and cheaper; the
convolutional one pays with more images and more epochs (on 20,000 MNIST
images and 20 epochs it ended 8% below the dense one's error, on 50,000,
6%, and 13% after 80 epochs, 3.10 per image against 3.56), at three to
five times its cost per epoch on a CPU.
``benchmarks/bench_images.py`` measures both. Last, a convolutional
network trained with ``noise`` removes noise from images.
"""

# %%
# Data
# ----
# A subset of MNIST when it is installed, to run in about a minute, and
# scikit-learn's 8x8 digits otherwise or when ``SKAE_EXAMPLES_DATA=digits``.
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

from skae import AutoencoderTransformer, ReconstructionDisplay
from skae.datasets import load_digits, load_mnist

use_mnist = os.environ.get("SKAE_EXAMPLES_DATA", "mnist") == "mnist"
try:
    X, _ = load_mnist(return_X_y=True) if use_mnist else load_digits(return_X_y=True)
except OSError:  # MNIST is not installed
    X, _ = load_digits(return_X_y=True)
X = X[:4000].astype(np.float32)
side = int(np.sqrt(X.shape[1]))
image_shape = (side, side)
X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
print(f"{len(X_train)} training and {len(X_test)} test images of {side} x {side} pixels")

# %%
# Three models, one code size
# ---------------------------
# The two networks train for the same number of epochs on mini-batches of
# 64 images; the convolutional one costs more per epoch on a CPU.
encoding_dim = 16
common = dict(batch_size=64, max_iter=15, random_state=0)
models = {
    "PCA": PCA(encoding_dim),
    "dense": AutoencoderTransformer(encoding_dim, hidden_layer_sizes=(256,), **common),
    "convolutional": AutoencoderTransformer(
        encoding_dim, hidden_layer_sizes=(16, 32), image_shape=image_shape, **common
    ),
}
pca_error = None
for name, model in models.items():
    start = time.perf_counter()
    model.fit(X_train)
    seconds = time.perf_counter() - start
    reconstruction = model.inverse_transform(model.transform(X_test))
    error = float(((reconstruction - X_test) ** 2).sum(axis=1).mean())
    pca_error = pca_error or error
    print(
        f"{name:>13}: squared error per test image {error:.3f} "
        f"({error / pca_error:.2f} x PCA's), fit {seconds:.1f} s"
    )

# %%
# The convolutional network starts as PCA
# ---------------------------------------
# Its last layers start at zero, so before training it reconstructs as PCA
# does; the validation error after each epoch shows how far it went from
# there. Had it not beaten the start on the held-out rows, the fit would
# have kept PCA's solution.
conv = models["convolutional"]
plt.figure()
plt.plot(range(len(conv.validation_scores_)), -np.asarray(conv.validation_scores_), "o-")
plt.xlabel("epoch")
plt.ylabel("validation squared error per pixel")
plt.title("Convolutional correction around PCA")

# %%
# Reconstructions
# ---------------
# The display takes the image shape from the estimator.
ReconstructionDisplay.from_estimator(list(models.values()), X_test, name=list(models), n_images=10)

# %%
# Denoising
# ---------
# ``noise`` works with ``image_shape`` as without it: the convolutional
# network trained on images with Gaussian noise of standard deviation 0.3
# added learns to remove it. Test images get the same noise, saturated at 0
# and 1, and each model reconstructs them; the error is to the clean
# images.
rng = np.random.RandomState(0)
X_noisy = np.clip(X_test + 0.3 * rng.normal(size=X_test.shape), 0, 1).astype(np.float32)
denoising = AutoencoderTransformer(
    encoding_dim,
    hidden_layer_sizes=(16, 32),
    image_shape=image_shape,
    noise="gaussian",
    noise_level=0.3,
    **common,
).fit(X_train)
print(f"{'noisy input':>22}: {((X_noisy - X_test) ** 2).sum(axis=1).mean():.3f}")
cleaners = {**models, "denoising convolutional": denoising}
for name, model in cleaners.items():
    reconstruction = model.inverse_transform(model.transform(X_noisy))
    print(f"{name:>22}: {((reconstruction - X_test) ** 2).sum(axis=1).mean():.3f}")

ReconstructionDisplay(
    X_test[:8],
    [X_noisy[:8], *(m.inverse_transform(m.transform(X_noisy[:8])) for m in cleaners.values())],
    image_shape=image_shape,
    names=["noisy", *cleaners],
).plot()
plt.show()
