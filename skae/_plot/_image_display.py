"""Images above their reconstructions: :class:`ReconstructionDisplay`."""

import math
from numbers import Integral

import numpy as np
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_array

from skae._plot._compare import reconstruct
from skae._plot._utils import as_list, axes_or_new, default_name


def square_image_shape(n_features):
    """``(side, side)`` when ``n_features`` is a square of more than one pixel, else None."""
    side = math.isqrt(n_features)
    return (side, side) if side > 1 and side * side == n_features else None


def _image_shape(n_features, image_shape):
    """(channels, height, width) of ``image_shape`` checked against ``n_features``.

    None infers a square grey image; (height, width) is grey; a first
    dimension of 1 or 3 channels is grey or RGB.
    """
    if image_shape is None:
        image_shape = square_image_shape(n_features)
        if image_shape is None:
            raise ValueError(
                f"Cannot infer an image shape from {n_features} features, which is "
                "not a perfect square; pass image_shape=(height, width)."
            )
        return (1, *image_shape)
    image_shape = tuple(int(size) for size in image_shape)
    if (
        len(image_shape) not in (2, 3)
        or (len(image_shape) == 3 and image_shape[0] not in (1, 3))
        or math.prod(image_shape) != n_features
    ):
        raise ValueError(
            f"image_shape={image_shape} does not match the {n_features} features "
            "of the data: height * width (times 1 or 3 channels) must equal the "
            "number of features."
        )
    return image_shape if len(image_shape) == 3 else (1, *image_shape)


class ReconstructionDisplay:
    """Images above their reconstructions by one or more estimators.

    The first row shows the original images, each further row one
    estimator's reconstructions of them, all drawn in one axes with a
    common grey scale, so that PCA's and an autoencoder's reconstructions
    can be compared at a glance. Use :meth:`from_estimator` to create one.

    Parameters
    ----------
    images : array-like of shape (n_images, n_features)
        The original images, flattened.

    reconstructions : list of array-like of shape (n_images, n_features)
        The reconstructions, one array per row.

    image_shape : tuple of int, default=None
        Shape of one image, (height, width), or (channels, height, width)
        with 1 or 3 channels (RGB); None infers a square grey one.

    names : list of str, default=None
        Row labels, one per reconstruction; None numbers the rows.

    Attributes
    ----------
    image_ : matplotlib.image.AxesImage
        The mosaic of all images.

    ax_ : matplotlib.axes.Axes
        Axes with the mosaic.

    figure_ : matplotlib.figure.Figure
        Figure containing the mosaic.

    See Also
    --------
    LossCurveDisplay : Training and validation loss per epoch.
    ReconstructionErrorDisplay : Reconstruction error versus encoding dimension.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.decomposition import PCA
    >>> from skae import AutoencoderTransformer, ReconstructionDisplay
    >>> from skae.datasets import load_digits
    >>> X, _ = load_digits(return_X_y=True)
    >>> pca = PCA(n_components=8).fit(X)
    >>> ae = AutoencoderTransformer(
    ...     encoding_dim=8, tol=1e-2, n_iter_no_change=3, random_state=0
    ... ).fit(X)
    >>> display = ReconstructionDisplay.from_estimator(
    ...     [pca, ae], X[:6], name=["PCA", "autoencoder"]
    ... )
    >>> [label.get_text() for label in display.ax_.get_yticklabels()]
    ['original', 'PCA', 'autoencoder']
    >>> plt.show()  # doctest: +SKIP
    """

    def __init__(self, images, reconstructions, *, image_shape=None, names=None):
        self.images = images
        self.reconstructions = reconstructions
        self.image_shape = image_shape
        self.names = names

    def plot(self, ax=None, *, cmap="gray", vmin=None, vmax=None):
        """Draw the mosaic of images and reconstructions.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes object to plot on. If None, a new figure and axes is created.

        cmap : str or matplotlib Colormap, default="gray"
            Colormap of the images.

        vmin, vmax : float, default=None
            Intensities drawn black and white; by default the smallest and
            largest value of the original images.

        Returns
        -------
        display : ReconstructionDisplay
            Object that stores computed values.
        """
        images = check_array(self.images, ensure_min_samples=1)
        rows = [images] + [
            check_array(reconstruction) for reconstruction in as_list(self.reconstructions)
        ]
        for row in rows[1:]:
            if row.shape != images.shape:
                raise ValueError(
                    f"Each reconstruction must have the shape of the images, "
                    f"{images.shape}; got {row.shape}."
                )
        names = self.names
        if names is None:
            names = [f"reconstruction {i}" for i in range(1, len(rows))]
        names = as_list(names)
        if len(names) != len(rows) - 1:
            raise ValueError(
                f"Got {len(names)} names for {len(rows) - 1} rows of reconstructions."
            )
        channels, height, width = _image_shape(images.shape[1], self.image_shape)
        n_images = images.shape[0]
        vmin = float(images.min()) if vmin is None else vmin
        vmax = float(images.max()) if vmax is None else vmax

        # One image per cell, with a one-pixel gap drawn as background.
        mosaic = np.full(
            (len(rows) * (height + 1) - 1, n_images * (width + 1) - 1, channels), np.nan
        )
        for r, row in enumerate(rows):
            for c, image in enumerate(row):
                top, left = r * (height + 1), c * (width + 1)
                cell = image.reshape(channels, height, width).transpose(1, 2, 0)
                mosaic[top : top + height, left : left + width] = cell

        ax, figure = axes_or_new(ax, "ReconstructionDisplay.plot")
        if channels == 1:
            mosaic = mosaic[:, :, 0]
        else:
            # Colour images on the common scale, the gaps white.
            span = vmax - vmin if vmax > vmin else 1.0
            mosaic = np.nan_to_num(np.clip((mosaic - vmin) / span, 0.0, 1.0), nan=1.0)
        self.image_ = ax.imshow(mosaic, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks(
            [r * (height + 1) + (height - 1) / 2 for r in range(len(rows))],
            ["original", *names],
        )
        ax.tick_params(left=False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        self.ax_ = ax
        self.figure_ = figure
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        *,
        image_shape=None,
        n_images=8,
        name=None,
        ax=None,
        cmap="gray",
    ):
        """Reconstruct the first images of X with fitted estimators and draw them.

        Parameters
        ----------
        estimator : estimator instance or list of estimator instances
            Fitted estimators with ``transform`` and ``inverse_transform``,
            such as :class:`~skae.AutoencoderTransformer` and
            :class:`~sklearn.decomposition.PCA`; one row of reconstructions
            each.

        X : array-like of shape (n_samples, n_features)
            Images, flattened.

        image_shape : tuple of int, default=None
            Shape of one image, (height, width), or (channels, height, width)
            with 1 or 3 channels (RGB), raveled in that order; None takes
            the ``image_shape`` of the first estimator that has one, or
            infers a square grey one.

        n_images : int, default=8
            Number of images, taken from the start of X.

        name : str or list of str, default=None
            Row labels, one per estimator; by default the class names.

        ax : matplotlib Axes, default=None
            Axes object to plot on. If None, a new figure and axes is created.

        cmap : str or matplotlib Colormap, default="gray"
            Colormap of the images.

        Returns
        -------
        display : ReconstructionDisplay
            Object that stores computed values.
        """
        if not isinstance(n_images, Integral) or n_images < 1:
            raise ValueError(f"n_images must be a positive integer; got {n_images!r}.")
        estimators = as_list(estimator)
        names = [default_name(e) for e in estimators] if name is None else as_list(name)
        X = _safe_indexing(X, slice(0, n_images))
        images = check_array(X)
        reconstructions = [reconstruct(e, X) for e in estimators]
        if image_shape is None:
            image_shape = next(
                (e.image_shape for e in estimators if getattr(e, "image_shape", None) is not None),
                None,
            )
        display = cls(images, reconstructions, image_shape=image_shape, names=names)
        return display.plot(ax=ax, cmap=cmap)
