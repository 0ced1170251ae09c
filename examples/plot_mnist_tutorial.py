"""
=============================================
The MNIST autoencoder tutorial, next to PCA
=============================================

The classic first autoencoder squeezes 28 x 28 MNIST digits through a code
of 32 numbers and back: one dense layer each way, 784 -> 32 -> 784, with
a sigmoid output since pixel intensities lie in [0, 1]. Here it is as a
scikit-learn transformer, beside :class:`~sklearn.decomposition.PCA` with
as many components, the linear method it is always measured against, and
beside skae's default, the linear autoencoder started at PCA's solution.

The tutorial's network starts from random weights, and whether it beats
PCA depends on the data and on how long it trains: on this example's
10,000 MNIST images its 20 epochs leave it close to PCA, a little worse;
on scikit-learn's 8 x 8 digits, the fallback when MNIST is not installed,
it stays clearly worse than PCA even when given as many training steps,
and its reconstructions are blurred. The printed ratios, of each test
error to PCA's, say what happened in this run.
"""

# %%
# Data
# ----
# The example runs on MNIST when it is installed, and on scikit-learn's
# 8 x 8 digits otherwise (or when ``SKAE_EXAMPLES_DATA=digits``). A subset
# keeps it under a minute.
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from skae import AutoencoderTransformer, LossCurveDisplay, ReconstructionDisplay
from skae.datasets import load_digits, load_mnist

# The tutorial trains for a fixed 20 epochs at a constant learning rate; the
# estimator warns that such a fit could go on.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

use_mnist = os.environ.get("SKAE_EXAMPLES_DATA", "mnist") == "mnist"
try:
    X, _ = load_mnist(subset="all", return_X_y=True) if use_mnist else load_digits(return_X_y=True)
except OSError:  # MNIST is not installed
    X, _ = load_digits(return_X_y=True)
if X.shape[1] == 784:
    X_train, X_test = X[:10_000], X[-2_000:]
    image_shape, encoding_dim = (28, 28), 32
else:
    X_train, X_test = X[:1_400], X[1_400:]
    image_shape, encoding_dim = (8, 8), 8
# The tutorial trains 20 epochs of 200 images on 10,000 images: 1,000 steps.
# On smaller data it gets as many steps, for a fair trial.
n_epochs = max(20, round(20 * 10_000 / X_train.shape[0]))
print(f"{X_train.shape[0]} training and {X_test.shape[0]} test images of {image_shape}")

# %%
# The autoencoder and PCA
# -----------------------
# ``encoding_dim`` is the width of the code. By default the network is the
# tutorial's linear one, and its weights start at PCA's solution. The
# tutorial also used a ReLU code, a sigmoid output and a binary
# cross-entropy loss; each is one parameter away.
pca = PCA(n_components=encoding_dim).fit(X_train)
linear = AutoencoderTransformer(encoding_dim, random_state=0).fit(X_train)
tutorial = AutoencoderTransformer(
    encoding_dim,
    code_activation="relu",
    output_activation="sigmoid",
    loss="bce",
    init="random",
    batch_size=200,
    max_iter=n_epochs,
    learning_rate_init=1e-3,
    learning_rate="constant",
    random_state=0,
).fit(X_train)

errors = {}
for name, model in [("PCA", pca), ("linear autoencoder", linear), ("tutorial", tutorial)]:
    reconstruction = model.inverse_transform(model.transform(X_test))
    errors[name] = np.mean((reconstruction - X_test) ** 2)
    print(f"{name:>18}: test MSE {errors[name]:.4f}, {errors[name] / errors['PCA']:.2f} x PCA's")

# %%
# Reconstructions
# ---------------
# Test digits on top, then each method's reconstruction from
# ``encoding_dim`` numbers per image. Where the tutorial's ratio above is
# larger than 1, its row is the blurriest: from its random start, the
# ReLU code has to find what PCA computes exactly, and on small data it
# does not get there. Starting at PCA, as skae's default does, begins
# where PCA ends.
display = ReconstructionDisplay.from_estimator(
    [pca, linear, tutorial],
    X_test,
    image_shape=image_shape,
    n_images=10,
    name=["PCA", "linear AE", "tutorial AE"],
)
display.ax_.set_title(f"Reconstructions from {encoding_dim} numbers")
plt.show()

# %%
# Training
# --------
# ``loss_curve_`` holds each epoch's mean training loss; the tutorial's
# is a cross-entropy, the linear one's a squared error, as the y axes say.
fig, axes = plt.subplots(ncols=2, figsize=(9, 3.5), layout="constrained")
LossCurveDisplay.from_estimator(linear, name="linear", ax=axes[0])
LossCurveDisplay.from_estimator(tutorial, name="tutorial", ax=axes[1])
plt.show()
