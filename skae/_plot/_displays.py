"""Displays: reconstructions, loss curves, and error versus encoding dimension.

They follow scikit-learn's Display API: the constructor stores computed
values, ``plot`` draws them and returns the display with ``ax_`` and
``figure_`` set, and the ``from_estimator`` class methods compute the values
from fitted estimators. matplotlib is imported only when drawing.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from skae._plot._compare import fits_across_dimensions
from skae._plot._image_display import ReconstructionDisplay
from skae._plot._utils import as_list, axes_or_new, default_name

__all__ = ["LossCurveDisplay", "ReconstructionDisplay", "ReconstructionErrorDisplay"]

# Short and long names of the training losses.
_LOSS_NAMES = {"mse": ("MSE", "Mean squared error"), "bce": ("BCE", "Binary cross-entropy")}


class LossCurveDisplay:
    """Training loss and validation error of an autoencoder, per epoch.

    Use :meth:`from_estimator` to create one from a fitted
    :class:`~skae.AutoencoderTransformer`. Draw several on the same axes
    by passing ``ax=display.ax_`` to the next one.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        The mean training loss per value over each epoch (the mean of its
        mini-batch losses), the estimator's ``loss_curve_``; for the squared
        error in the data's units (for AutoencoderImputer, its scaled
        features' units).

    validation_scores : array-like of shape (n_epochs,), default=None
        Negative mean squared error on the validation set after each
        epoch, the estimator's ``validation_scores_``; drawn as a dashed
        curve of the error, when given.

    estimator_name : str, default=None
        Name used in the legend.

    loss : {"mse", "bce"}, default="mse"
        The training loss, the estimator's ``loss``: it names the curve
        and the y axis.

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
    ['8 units (training MSE)', '8 units (validation MSE)']
    >>> display.ax_.get_ylabel()
    'Mean squared error'
    >>> plt.show()  # doctest: +SKIP
    """

    def __init__(self, loss_curve, *, validation_scores=None, estimator_name=None, loss="mse"):
        self.loss_curve = loss_curve
        self.validation_scores = validation_scores
        self.estimator_name = estimator_name
        self.loss = loss

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
        if self.loss not in _LOSS_NAMES:
            raise ValueError(
                f"loss must be one of {', '.join(map(repr, _LOSS_NAMES))}; got {self.loss!r}."
            )
        short, long = _LOSS_NAMES[self.loss]
        loss_curve = np.asarray(self.loss_curve, dtype=np.float64)
        name = self.estimator_name if name is None else name
        prefix = "" if name is None else f"{name} "
        ax, figure = axes_or_new(ax, "LossCurveDisplay.plot")
        epochs = np.arange(1, loss_curve.shape[0] + 1)
        label = f"{prefix}(training {short})" if prefix else f"training {short}"
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
        if self.validation_scores is None or self.loss == "mse":
            ax.set_ylabel(long)
        else:
            ax.set_ylabel(f"Training {short}, validation MSE")
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
            estimator_name=default_name(estimator) if name is None else name,
            loss=getattr(estimator, "loss", "mse"),
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
        ax, figure = axes_or_new(ax, "ReconstructionErrorDisplay.plot")
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
    def from_estimators(
        cls,
        estimators,
        X_train,
        X_test,
        *,
        dims,
        names=None,
        per_dimension=False,
        ax=None,
        **kwargs,
    ):
        """Fit each estimator at each dimension and draw the held-out errors.

        Parameters
        ----------
        estimators : list of estimator instances
            Unfitted estimators with an ``encoding_dim`` or ``n_components``
            parameter, ``transform`` and ``inverse_transform``. Each is
            cloned and fitted once per dimension, or, for an autoencoder
            whose codes come out ordered (see ``ordered_codes``), once at
            the largest dimension: its first units then give its error at
            each smaller one.

        X_train : array-like of shape (n_samples, n_features)
            Data to fit on.

        X_test : array-like of shape (n_test_samples, n_features)
            Data on which the reconstruction error is measured.

        dims : array-like of int
            Encoding dimensions to try.

        names : list of str, default=None
            Names used in the legend; by default the class names.

        per_dimension : bool, default=False
            Whether to fit every estimator at every dimension, ordered
            codes or not.

        ax : matplotlib Axes, default=None
            Axes object to plot on. If None, a new figure and axes is created.

        **kwargs : dict
            Keyword arguments passed to matplotlib's ``plot``.

        Returns
        -------
        display : ReconstructionErrorDisplay
            Object that stores computed values.
        """
        estimators = as_list(estimators)
        dims = [int(dim) for dim in dims]
        errors = [
            np.array(
                [
                    errors.mean()
                    for _, errors, _ in fits_across_dimensions(
                        estimator, dims, X_train, X_test, per_dimension=per_dimension
                    )
                ]
            )
            for estimator in estimators
        ]
        if names is None:
            names = [default_name(estimator) for estimator in estimators]
        display = cls(dims, errors, names=names)
        return display.plot(ax=ax, **kwargs)
