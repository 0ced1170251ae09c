"""Displays: reconstructions, loss curves, and error versus encoding dimension.

They follow scikit-learn's Display API: the constructor stores computed
values, ``plot`` draws them and returns the display with ``ax_`` and
``figure_`` set, and the ``from_estimator`` class methods compute the values
from fitted estimators. matplotlib is imported only when drawing.
"""

import math
import time
from numbers import Integral

import numpy as np
from sklearn.base import clone
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_array, check_is_fitted


def _axes(ax, caller):
    """``ax``, or the axes of a new figure when ``ax`` is None."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            f"{caller} requires matplotlib. You can install it with "
            "`pip install matplotlib`, or with skae's extra `pip install skae[plot]`."
        ) from error
    if ax is None:
        _, ax = plt.subplots()
    return ax, ax.figure


def _as_list(value):
    return list(value) if isinstance(value, list | tuple) else [value]


def _image_shape(n_features, image_shape):
    """Check ``image_shape`` against ``n_features``, or infer a square one."""
    if image_shape is None:
        side = math.isqrt(n_features)
        if side * side != n_features:
            raise ValueError(
                f"Cannot infer an image shape from {n_features} features, which is "
                "not a perfect square; pass image_shape=(height, width)."
            )
        return side, side
    image_shape = tuple(int(size) for size in image_shape)
    if len(image_shape) != 2 or math.prod(image_shape) != n_features:
        raise ValueError(
            f"image_shape={image_shape} does not match the {n_features} features "
            "of the data: height * width must equal the number of features."
        )
    return image_shape


def _reconstruct(estimator, X):
    """``estimator``'s reconstruction of X, through its codes."""
    for method in ("transform", "inverse_transform"):
        if not hasattr(estimator, method):
            raise TypeError(
                f"{estimator.__class__.__name__} has no {method} method; a "
                "reconstruction needs both transform and inverse_transform."
            )
    check_is_fitted(estimator)
    return np.asarray(estimator.inverse_transform(estimator.transform(X)))


def _dimension_parameter(estimator):
    """The name of the parameter that sets an estimator's code width."""
    params = estimator.get_params(deep=False)
    for name in ("encoding_dim", "n_components"):
        if name in params:
            return name
    raise ValueError(
        f"{estimator.__class__.__name__} has neither an encoding_dim nor an "
        "n_components parameter to vary."
    )


def _fit_at_dimension(estimator, dim, X_train, X_test):
    """Fit a clone of ``estimator`` with a code of width ``dim`` on X_train.

    Returns the fitted clone, its mean squared reconstruction error on
    X_test, and the seconds its fit took.
    """
    fitted = clone(estimator).set_params(**{_dimension_parameter(estimator): dim})
    start = time.perf_counter()
    fitted.fit(X_train)
    fit_time = time.perf_counter() - start
    reconstruction = _reconstruct(fitted, X_test).astype(np.float64)
    error = np.mean((reconstruction - check_array(X_test, dtype=np.float64)) ** 2)
    return fitted, float(error), fit_time


def _default_name(estimator):
    return estimator.__class__.__name__


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

    image_shape : tuple of int (height, width), default=None
        Shape of one image; None infers a square one.

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
            check_array(reconstruction) for reconstruction in _as_list(self.reconstructions)
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
        names = _as_list(names)
        if len(names) != len(rows) - 1:
            raise ValueError(
                f"Got {len(names)} names for {len(rows) - 1} rows of reconstructions."
            )
        height, width = _image_shape(images.shape[1], self.image_shape)
        n_images = images.shape[0]

        # One image per cell, with a one-pixel gap drawn as background.
        mosaic = np.full((len(rows) * (height + 1) - 1, n_images * (width + 1) - 1), np.nan)
        for r, row in enumerate(rows):
            for c, image in enumerate(row):
                top, left = r * (height + 1), c * (width + 1)
                mosaic[top : top + height, left : left + width] = image.reshape(height, width)

        ax, figure = _axes(ax, "ReconstructionDisplay.plot")
        vmin = float(images.min()) if vmin is None else vmin
        vmax = float(images.max()) if vmax is None else vmax
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

        image_shape : tuple of int (height, width), default=None
            Shape of one image; None infers a square one.

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
        estimators = _as_list(estimator)
        names = [_default_name(e) for e in estimators] if name is None else _as_list(name)
        X = _safe_indexing(X, slice(0, n_images))
        images = check_array(X)
        reconstructions = [_reconstruct(e, X) for e in estimators]
        display = cls(images, reconstructions, image_shape=image_shape, names=names)
        return display.plot(ax=ax, cmap=cmap)


class LossCurveDisplay:
    """Training loss and validation error of an autoencoder, per epoch.

    Use :meth:`from_estimator` to create one from a fitted
    :class:`~skae.AutoencoderTransformer`. Draw several on the same axes
    by passing ``ax=display.ax_`` to the next one.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        Training loss at the end of each epoch, the estimator's
        ``loss_curve_``.

    validation_scores : array-like of shape (n_epochs,), default=None
        Negative mean squared error on the validation set after each
        epoch, the estimator's ``validation_scores_``; drawn as a dashed
        curve of the error, when given.

    estimator_name : str, default=None
        Name used in the legend.

    Attributes
    ----------
    line_ : matplotlib.lines.Line2D
        The training loss curve.

    validation_line_ : matplotlib.lines.Line2D or None
        The validation error curve; None without validation scores.

    ax_ : matplotlib.axes.Axes
        Axes with the curves.

    figure_ : matplotlib.figure.Figure
        Figure containing the curves.

    See Also
    --------
    ReconstructionErrorDisplay : Reconstruction error versus encoding dimension.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from skae import AutoencoderTransformer, LossCurveDisplay
    >>> from skae.datasets import load_digits
    >>> X, _ = load_digits(return_X_y=True)
    >>> ae = AutoencoderTransformer(
    ...     encoding_dim=8, early_stopping=True, tol=1e-2, n_iter_no_change=3, random_state=0
    ... ).fit(X)
    >>> display = LossCurveDisplay.from_estimator(ae, name="8 units")
    >>> [text.get_text() for text in display.ax_.get_legend().get_texts()]
    ['8 units (training loss)', '8 units (validation MSE)']
    >>> plt.show()  # doctest: +SKIP
    """

    def __init__(self, loss_curve, *, validation_scores=None, estimator_name=None):
        self.loss_curve = loss_curve
        self.validation_scores = validation_scores
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, name=None, **kwargs):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes object to plot on. If None, a new figure and axes is created.

        name : str, default=None
            Name used in the legend; by default ``estimator_name``.

        **kwargs : dict
            Keyword arguments passed to matplotlib's ``plot`` for both
            curves.

        Returns
        -------
        display : LossCurveDisplay
            Object that stores computed values.
        """
        loss_curve = np.asarray(self.loss_curve, dtype=np.float64)
        name = self.estimator_name if name is None else name
        prefix = "" if name is None else f"{name} "
        ax, figure = _axes(ax, "LossCurveDisplay.plot")
        epochs = np.arange(1, loss_curve.shape[0] + 1)
        label = f"{prefix}(training loss)" if prefix else "training loss"
        (self.line_,) = ax.plot(epochs, loss_curve, label=label, **kwargs)
        self.validation_line_ = None
        if self.validation_scores is not None:
            errors = -np.asarray(self.validation_scores, dtype=np.float64)
            label = f"{prefix}(validation MSE)" if prefix else "validation MSE"
            (self.validation_line_,) = ax.plot(
                np.arange(1, errors.shape[0] + 1),
                errors,
                linestyle="--",
                color=self.line_.get_color(),
                label=label,
                **{k: v for k, v in kwargs.items() if k not in ("linestyle", "ls", "color", "c")},
            )
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("Epoch")
        ax.set_ylabel("Loss")
        ax.legend()
        self.ax_ = ax
        self.figure_ = figure
        return self

    @classmethod
    def from_estimator(cls, estimator, *, name=None, ax=None, **kwargs):
        """Draw the loss curves of a fitted autoencoder.

        Parameters
        ----------
        estimator : AutoencoderTransformer
            A fitted estimator with ``loss_curve_`` and, optionally,
            ``validation_scores_`` (set with ``early_stopping=True``).

        name : str, default=None
            Name used in the legend; by default the class name.

        ax : matplotlib Axes, default=None
            Axes object to plot on. If None, a new figure and axes is created.

        **kwargs : dict
            Keyword arguments passed to matplotlib's ``plot``.

        Returns
        -------
        display : LossCurveDisplay
            Object that stores computed values.
        """
        check_is_fitted(estimator, "loss_curve_")
        display = cls(
            estimator.loss_curve_,
            validation_scores=getattr(estimator, "validation_scores_", None),
            estimator_name=_default_name(estimator) if name is None else name,
        )
        return display.plot(ax=ax, **kwargs)


class ReconstructionErrorDisplay:
    """Held-out reconstruction error versus the encoding dimension.

    One curve per estimator, to see where an autoencoder beats PCA and how
    many dimensions each needs. Use :meth:`from_estimators` to fit the
    estimators and create one.

    Parameters
    ----------
    dims : array-like of shape (n_dims,)
        The encoding dimensions (``encoding_dim`` or ``n_components``).

    errors : list of array-like of shape (n_dims,)
        Mean squared reconstruction error at each dimension, one array per
        estimator.

    names : list of str, default=None
        Names used in the legend, one per estimator.

    Attributes
    ----------
    lines_ : list of matplotlib.lines.Line2D
        The curves, one per estimator.

    ax_ : matplotlib.axes.Axes
        Axes with the curves.

    figure_ : matplotlib.figure.Figure
        Figure containing the curves.

    See Also
    --------
    ReconstructionDisplay : Images above their reconstructions.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.decomposition import PCA
    >>> from skae import AutoencoderTransformer, ReconstructionErrorDisplay
    >>> from skae.datasets import load_digits
    >>> X, _ = load_digits(return_X_y=True)
    >>> X_train, X_test = X[:1000], X[1000:]
    >>> display = ReconstructionErrorDisplay.from_estimators(
    ...     [PCA(), AutoencoderTransformer(tol=1e-2, n_iter_no_change=3, random_state=0)],
    ...     X_train,
    ...     X_test,
    ...     dims=[2, 8],
    ... )
    >>> display.errors[0].shape
    (2,)
    >>> bool(display.errors[0][1] < display.errors[0][0])
    True
    >>> plt.show()  # doctest: +SKIP
    """

    def __init__(self, dims, errors, *, names=None):
        self.dims = dims
        self.errors = errors
        self.names = names

    def plot(self, ax=None, **kwargs):
        """Draw one curve of error against dimension per estimator.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes object to plot on. If None, a new figure and axes is created.

        **kwargs : dict
            Keyword arguments passed to matplotlib's ``plot``.

        Returns
        -------
        display : ReconstructionErrorDisplay
            Object that stores computed values.
        """
        dims = np.asarray(self.dims)
        errors = [np.asarray(error, dtype=np.float64) for error in self.errors]
        for error in errors:
            if error.shape != dims.shape:
                raise ValueError(
                    f"Each array of errors must have one value per dimension, "
                    f"{dims.shape}; got {error.shape}."
                )
        names = self.names
        if names is None:
            names = [f"estimator {i}" for i in range(1, len(errors) + 1)]
        if len(names) != len(errors):
            raise ValueError(f"Got {len(names)} names for {len(errors)} arrays of errors.")
        ax, figure = _axes(ax, "ReconstructionErrorDisplay.plot")
        kwargs.setdefault("marker", "o")
        self.lines_ = [
            ax.plot(dims, error, label=name, **kwargs)[0]
            for error, name in zip(errors, names, strict=True)
        ]
        ax.set_xlabel("Encoding dimension")
        ax.set_ylabel("Reconstruction MSE")
        ax.legend()
        self.ax_ = ax
        self.figure_ = figure
        return self

    @classmethod
    def from_estimators(cls, estimators, X_train, X_test, *, dims, names=None, ax=None, **kwargs):
        """Fit each estimator at each dimension and draw the held-out errors.

        Parameters
        ----------
        estimators : list of estimator instances
            Unfitted estimators with an ``encoding_dim`` or ``n_components``
            parameter, ``transform`` and ``inverse_transform``. Each is
            cloned and fitted once per dimension.

        X_train : array-like of shape (n_samples, n_features)
            Data to fit on.

        X_test : array-like of shape (n_test_samples, n_features)
            Data on which the reconstruction error is measured.

        dims : array-like of int
            Encoding dimensions to try.

        names : list of str, default=None
            Names used in the legend; by default the class names.

        ax : matplotlib Axes, default=None
            Axes object to plot on. If None, a new figure and axes is created.

        **kwargs : dict
            Keyword arguments passed to matplotlib's ``plot``.

        Returns
        -------
        display : ReconstructionErrorDisplay
            Object that stores computed values.
        """
        estimators = _as_list(estimators)
        dims = [int(dim) for dim in dims]
        errors = [
            np.array([_fit_at_dimension(estimator, dim, X_train, X_test)[1] for dim in dims])
            for estimator in estimators
        ]
        if names is None:
            names = [_default_name(estimator) for estimator in estimators]
        display = cls(dims, errors, names=names)
        return display.plot(ax=ax, **kwargs)
