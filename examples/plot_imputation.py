"""
================================
Filling in missing pixels
================================

:class:`~skae.AutoencoderImputer` fills missing entries the way
scikit-learn's imputers do, and keeps every observed entry as it is. Here
half the pixels of digit images are removed at random, and the imputer's
fills are shown beside those of :class:`~sklearn.impute.SimpleImputer`
(each pixel's mean), :class:`~sklearn.impute.KNNImputer` (the mean of the
nearest images) and :class:`~sklearn.impute.IterativeImputer` (each pixel
regressed on the others in turn), and with those of the imputer told that
the rows are images.
"""

# %%
# Data
# ----
# scikit-learn's 8 x 8 digits, scaled to [0, 1]; half the pixels of every
# image are missing, in the training images and in the test images alike.
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.model_selection import train_test_split

from skae import AutoencoderImputer
from skae.datasets import load_digits

X, _ = load_digits(return_X_y=True)
X_train, X_test = train_test_split(X.astype(np.float64), test_size=0.2, random_state=0)
rng = np.random.default_rng(0)
mask_train = rng.random(X_train.shape) < 0.5
mask_test = rng.random(X_test.shape) < 0.5
X_train_missing = np.where(mask_train, np.nan, X_train)
X_test_missing = np.where(mask_test, np.nan, X_test)

# %%
# Five imputers
# -------------
# Each is fitted on the incomplete training images and fills the test
# images; the error is the root mean squared error on the missing pixels.
# IterativeImputer gets five rounds, fewer than it needs to converge, to keep
# the example short; its warning saying so is silenced.
warnings.filterwarnings("ignore", category=ConvergenceWarning)
imputers = {
    "mean": SimpleImputer(keep_empty_features=True),
    "KNN": KNNImputer(keep_empty_features=True),
    "iterative": IterativeImputer(max_iter=5, random_state=0, keep_empty_features=True),
    "autoencoder": AutoencoderImputer(random_state=0, keep_empty_features=True),
    # Told that the rows are 8 x 8 images, the imputer also restores each
    # pixel from the pixels around it, by convolutions of the image.
    "autoencoder, images": AutoencoderImputer(
        image_shape=(8, 8), random_state=0, keep_empty_features=True
    ),
}
fills = {}
for name, imputer in imputers.items():
    start = time.perf_counter()
    fills[name] = imputer.fit(X_train_missing).transform(X_test_missing)
    seconds = time.perf_counter() - start
    error = np.sqrt(np.mean((fills[name][mask_test] - X_test[mask_test]) ** 2))
    print(f"{name:20} RMSE on missing pixels {error:.4f}   ({seconds:.1f} s)")

# The observed pixels come back unchanged.
assert np.array_equal(fills["autoencoder"][~mask_test], X_test[~mask_test])

# %%
# The fills
# ---------
# The first row shows the complete images, the second what the imputers
# see (missing pixels in red), then one row per imputer.
shown = range(8)
rows = {"original": X_test, "with holes": X_test_missing, **fills}
fig, axes = plt.subplots(len(rows), len(shown), figsize=(len(shown), len(rows) * 1.1))
for row, (name, images) in zip(axes, rows.items(), strict=True):
    for ax, i in zip(row, shown, strict=True):
        image = images[i].reshape(8, 8)
        if name == "with holes":
            rgb = np.repeat(np.nan_to_num(image)[:, :, None], 3, axis=2)
            rgb[np.isnan(image)] = (0.8, 0.1, 0.1)
            ax.imshow(rgb)
        else:
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    row[0].set_ylabel(name, rotation=0, ha="right", va="center")
fig.tight_layout()
plt.show()
