"""Autoencoder as a scikit-learn imputer of missing values."""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, MissingValues, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from skae._base import BaseAutoencoder
from skae._impute._bounds import BOUND_STATE, check_bounds
from skae._impute._copies import LINEAR_STATE, check_linear_model
from skae._impute._linear_start import LinearStartMixin
from skae._impute._missing import is_nan, is_pandas_na, pandas_na_as_nan
from skae._impute._neighbours import NEIGHBOUR_STATE, check_neighbours
from skae._nn._state import require_attributes

# The hidden layers "auto" gives: a perceptron's widths for rows, the
# channels of full-resolution convolutions for images, whose cost grows
# with each pixel.
ROW_LAYERS = (256,)
IMAGE_LAYERS = (32, 32, 32, 32, 32)


class AutoencoderImputer(LinearStartMixin, TransformerMixin, BaseAutoencoder):
    """Imputation of missing values with an autoencoder trained in PyTorch.

    Each feature is centred on the mean of its observed values and divided
    by their spread (with ``image_shape``, all pixels of a channel share
    the mean and spread of the channel's observed values, as images are
    normalised). A linear model of the observed entries is fitted first:
    a shrunken low-rank model (soft-impute) and, up to 128 features, a
    multivariate normal one (EM with a ridge on the covariance), each with
    its shrinkage chosen on held-out observed entries, the one that restores
    those entries best kept. The missing entries of a row are filled with
    that model's fixed point: the low-rank model's reconstruction of the
    row, or the normal model's conditional mean given the row's observed
    entries. That model is the linear path of a network whose perceptron
    (for images, ``image_shape``, convolutions of the image), beside it and
    starting at zero, learns a nonlinear correction while the linear path
    stays as it is: the training rows are many copies of the
    data, each with another ``mask_fraction`` of the observed entries
    hidden and filled by the linear model, and the network learns to
    restore the hidden entries. The weights kept are those
    that restore hidden entries of held-out rows best, the linear model's
    among them, so that the network replaces the linear fill only where it
    clearly does better. Last, the fill of each missing entry may be blended
    with the mean of that feature's observed values among the row's
    ``n_neighbors`` nearest training rows, as
    :class:`~sklearn.impute.KNNImputer` fills it, the distances measured
    between rows completed by the network's fill; the blend's weight is
    chosen on the same held-out entries, and is 0 unless it restores them
    better.

    Each feature's fill is clipped to ``min_value`` and ``max_value``; by
    default, to the smallest and largest of the feature's observed values
    where those pile up, as counts do at 0 and pixels at black and white.
    ``transform`` returns X with every missing entry filled and every
    observed entry unchanged, bit for bit.

    Parameters
    ----------
    missing_values : int, float, np.nan or pd.NA, default=np.nan
        The placeholder for missing values: NaN or a number such as -1 or 0.
        All occurrences are imputed. ``pd.NA`` marks the missing entries of
        pandas' nullable columns and of object arrays, which are imputed as
        NaN would be. A code that stands for an unknown value in a column
        of other values (999, say) is a value to the imputer unless it is
        ``missing_values``: mark such codes as NaN first, as a handful of
        them far from a column's other values make its fill.

    add_indicator : bool, default=False
        Whether to append the indicators of missing entries of the features
        that had missing values at fit time (as
        :class:`~sklearn.impute.MissingIndicator` computes them) to the
        output.

    keep_empty_features : bool, default=False
        Whether to keep the features that had no observed value at fit time,
        filled with 0. When False they are dropped by ``transform``, with a
        warning.

    min_value : float, array-like of shape (n_features,), "auto" or None, \
            default="auto"
        Smallest value a fill may take, for every feature or one per
        feature, as :class:`~sklearn.impute.IterativeImputer` takes it; None
        for no bound. "auto" bounds a feature at its smallest observed value
        where at least two of its observed values, and a thousandth of them,
        equal it (a floor such as counts' 0, or a pixel's black, on which
        values pile up), and leaves the others unbounded; with
        ``image_shape``, the pixels of a channel share the bound found among
        all their values. A feature empty at fit time is filled with 0
        whatever its bound.

    max_value : float, array-like of shape (n_features,), "auto" or None, \
            default="auto"
        Largest value a fill may take, as ``min_value``: "auto" bounds a
        feature at its largest observed value where its values pile up
        there (a ceiling such as a pixel's white, a sensor's saturation or
        the top of a rating scale). Given with ``min_value``, it must be
        above it for every feature; an "auto" bound never crosses the
        other.

    n_neighbors : int, default=10
        Number of nearest training rows whose observed values are blended
        into the fill of a row's missing entries. A row's missing entries
        are filled by the network first; each is then moved toward the mean
        of the observed values of its feature among the row's
        ``n_neighbors`` nearest training rows (those that observed it), the
        distance measured between completed rows (observed entries and the
        network's fill) in X's units, as KNNImputer measures it: scale the
        features alike first. The weight of that mean,
        ``neighbor_weight_``, is chosen at fit time among 0, 0.1, ..., 1
        on the held-out entries that check the network, and is 0 (no
        blend) unless it restores them better. Where the check keeps the
        linear model, fitted on every observed entry, and X is small (up
        to 65,536 entries and 32 features), a blend is kept with the
        weight chosen on three copies of X with a further
        ``mask_fraction`` of their entries hidden and the linear model
        fitted again without them, if it restores those better too. At most 10,000 training rows
        are kept to search (a random subset of larger X), and
        ``n_neighbors`` is capped at the number kept minus one (see
        ``n_neighbors_``). 0 turns the blend off.

    mask_fraction : float, default=0.2
        Fraction of the observed entries hidden from each training row, to
        be restored by the network.

    encoding_dim : int or "auto", default="auto"
        The rank of the linear model and the width of the network's code.
        "auto" is the rank the linear model chooses on held-out entries (the
        number of features for the normal model); an int caps it, keeping
        the components of largest weight. The width used is
        ``n_components_``.

    hidden_layer_sizes : array-like of int or "auto", default="auto"
        Widths of the hidden layers of the perceptrons beside the linear
        path, or with ``image_shape`` the channels of the hidden
        convolutions. ``()`` makes the correction linear. "auto" is
        ``(256,)``, or ``(32, 32, 32, 32, 32)`` with ``image_shape``.

    image_shape : tuple of int or None, default=None
        The shape of one image, ``(height, width)`` or ``(channels, height,
        width)``, when each row of X is an image raveled in that order; its
        product must be ``n_features``. The pixels of a channel are then
        scaled alike, so that the fill's errors weigh each pixel as the
        image's do; with hidden layers, the correction beside the linear
        path is a stack of convolutions of the linearly filled image at
        full resolution (kernel 3, stride 1), one per entry of
        ``hidden_layer_sizes`` and a last one back to the image's channels,
        so that each pixel is restored from its neighbourhood as well as
        from the linear model.

    activation : {"gelu", "relu", "tanh", "logistic", "elu", "identity"}, \
            default="gelu"
        Activation of the hidden layers.

    batch_size : int or "auto", default="auto"
        Mini-batch size. "auto" is ``min(200, max(32, ceil(n_rows / 10)))``:
        about ten mini-batches an epoch, of at least 32 rows, where
        ``n_rows`` counts the training copies.

    max_iter : int or "auto", default="auto"
        Maximum number of epochs over the training copies. "auto" plans about
        1000 mini-batch steps, at least 3 and at most 200 epochs.

    learning_rate_init : float, default=1e-3
        Adam's initial (peak, with "cosine") learning rate. With hidden
        layers only the perceptrons beside the linear path train, and the
        linear path stays the linear model; without, the linear path
        trains.

    learning_rate, alpha, shuffle, n_iter_no_change, validation_fraction
        As in :class:`AutoencoderTransformer`, with the same defaults; an
        epoch runs over the training copies.

    tol : float, default=1e-4
        Improvement of the validation score (or of the training loss,
        without early stopping), in units of the scaled features' variance,
        below which an epoch does not count as an improvement.

    early_stopping : bool or "auto", default="auto"
        Whether to hold out ``validation_fraction`` of the rows, score each
        epoch by how well it restores their hidden entries, and keep the best
        weights, the linear model's among them. "auto" does when that leaves
        at least 2 rows for each part.

    random_state : int, RandomState instance or None, default=None
        Determines the held-out entries that choose the linear model, the
        hidden entries of the training copies, the validation split, weight
        initialisation and shuffling. Pass an int for reproducible results.

    device, verbose
        As in :class:`AutoencoderTransformer`, with the same defaults.

    precision : {"auto", "float32", "bfloat16"}, default="auto"
        As in :class:`AutoencoderTransformer`, except that the imputer's
        network is float32 on float64 data too: "auto" trains in float32,
        or in bfloat16 for a large network on a CPU with AMX or on CUDA.

    Attributes
    ----------
    n_components_ : int
        Rank of the linear model (the number of features for the normal
        model), the width of the network's code.

    coefs_ : list of ndarray
        Weights of the network's layers: a dense layer's of shape
        (n_inputs, n_outputs); with ``image_shape``, the convolutions'
        kernels as 4-d arrays in torch's layout.

    intercepts_ : list of ndarray
        Bias vectors of the same layers.

    n_neighbors_ : int
        Number of nearest training rows blended into a fill:
        ``n_neighbors`` capped at the number of training rows kept minus
        one.

    neighbor_weight_ : float
        Weight of the nearest training rows' mean in the fill of a missing
        entry, from 0 to 1, chosen on held-out entries; 0 when the blend
        did not restore them better, the fill then being the network's.

    n_iter_ : int
        Number of epochs run.

    loss_curve_ : list of float
        Mean squared error on the hidden entries of the training copies, in
        the scaled features' units, over each epoch: the mean of its
        mini-batch losses. The copies hide other entries every epoch.

    validation_scores_ : list of float or None
        Negative mean squared error on the hidden entries of every other
        validation copy (those that score the epochs; the others judge the
        best) after each epoch; None without early stopping.

    best_validation_score_ : float or None
        The best of ``validation_scores_``; None without early stopping.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.impute.SimpleImputer : Fills with a statistic of each column.
    sklearn.impute.KNNImputer : Fills from the nearest rows.
    sklearn.impute.IterativeImputer : Regresses each feature on the others
        in turn.
    AutoencoderTransformer : The autoencoder for dimensionality reduction.

    Notes
    -----
    Sparse input is refused with a TypeError: missing entries of a sparse
    matrix are explicit values, and their fills would make it dense. Data
    with no observed entry at all, or with values that are not numbers,
    raise a ValueError, and infinite values too. A ``missing_values`` that
    matches nothing at fit time is no error: the imputer then learns from
    complete rows.

    Above 256 features, the fixed point of the linear model is iterated
    rather than solved exactly; above about four million entries, the
    low-rank model is fitted in float32 along a shorter path of shrinkages.
    The normal model's EM fits a random subset of the rows where an
    iteration over all of them would be long (the cost of a row grows with
    the cube of its number of missing entries).

    Examples
    --------
    >>> import numpy as np
    >>> from skae import AutoencoderImputer
    >>> X = [[1.0, 2.0, np.nan], [3.0, 6.0, 9.0], [np.nan, 8.0, 12.0], [2.0, 4.0, 6.0]]
    >>> imputer = AutoencoderImputer(random_state=0).fit(X)
    >>> filled = imputer.transform(X)
    >>> bool(np.isnan(filled).any())
    False
    >>> filled[1]
    array([3., 6., 9.])
    """

    _parameter_constraints: dict = {
        "missing_values": [MissingValues(numeric_only=True)],
        "add_indicator": ["boolean"],
        "keep_empty_features": ["boolean"],
        "min_value": [
            None,
            Interval(Real, None, None, closed="both"),
            "array-like",
            StrOptions({"auto"}),
        ],
        "max_value": [
            None,
            Interval(Real, None, None, closed="both"),
            "array-like",
            StrOptions({"auto"}),
        ],
        "n_neighbors": [Interval(Integral, 0, None, closed="left")],
        "mask_fraction": [Interval(Real, 0, 1, closed="neither")],
        "encoding_dim": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        **BaseAutoencoder._training_constraints,
        "hidden_layer_sizes": ["array-like", StrOptions({"auto"})],
    }

    _state_names = (
        *BaseAutoencoder._state_names,
        *LINEAR_STATE,
        *NEIGHBOUR_STATE,
        *BOUND_STATE,
    )

    def __init__(
        self,
        *,
        missing_values=np.nan,
        add_indicator=False,
        keep_empty_features=False,
        min_value="auto",
        max_value="auto",
        n_neighbors=10,
        mask_fraction=0.2,
        encoding_dim="auto",
        hidden_layer_sizes="auto",
        image_shape=None,
        activation="gelu",
        batch_size="auto",
        max_iter="auto",
        learning_rate_init=1e-3,
        learning_rate="cosine",
        alpha=0.0,
        shuffle=True,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping="auto",
        validation_fraction=0.1,
        random_state=None,
        device="cpu",
        precision="auto",
        verbose=False,
    ):
        self.missing_values = missing_values
        self.add_indicator = add_indicator
        self.keep_empty_features = keep_empty_features
        self.min_value = min_value
        self.max_value = max_value
        self.n_neighbors = n_neighbors
        self.mask_fraction = mask_fraction
        self.encoding_dim = encoding_dim
        self.hidden_layer_sizes = hidden_layer_sizes
        self.image_shape = image_shape
        self.activation = activation
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.learning_rate_init = learning_rate_init
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.shuffle = shuffle
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device
        self.precision = precision
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the imputer on the observed entries of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing values, marked by ``missing_values``.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted imputer.
        """
        return self._validate_and_fit(X, first_call=True, incremental=False)

    @available_if(lambda self: False)
    def partial_fit(self, X, y=None):
        """Not available: the linear model is fitted on the whole training set."""

    def _validate_input(self, X, *, reset):
        if is_pandas_na(self.missing_values):
            X = pandas_na_as_nan(X)
        return validate_data(
            self,
            X,
            reset=reset,
            dtype=(np.float64, np.float32),
            order="C",
            ensure_all_finite="allow-nan" if is_nan(self.missing_values) else True,
        )

    # Imputation

    def transform(self, X):
        """Impute all missing values in X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The data to complete.

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features_out)
            X with its missing entries filled, in X's dtype (float64 for
            other dtypes); features empty at fit time dropped unless
            ``keep_empty_features``; the indicators appended with
            ``add_indicator``.
        """
        check_is_fitted(self)
        X = self._validate_input(X, reset=False)
        observed = self._observed(X)
        Z = self._scaled(X, observed)
        filled = self._blend_neighbours(self._network_fill(Z, observed), observed)
        filled[:, self._empty_features] = 0.0
        filled = filled * self._column_scale + self._column_location
        filled = np.clip(filled, self._min_value, self._max_value)
        imputed = np.where(observed, X, filled.astype(X.dtype, copy=False))
        if self._empty_features.size and not self.keep_empty_features:
            warnings.warn(
                "Skipping features without any observed values at fit time: "
                f"{self._empty_features.tolist()}. Set keep_empty_features=True to "
                "keep them, filled with 0.",
                UserWarning,
                stacklevel=2,
            )
            imputed = np.delete(imputed, self._empty_features, axis=1)
        if self.add_indicator:
            indicator = ~observed[:, self._missing_features]
            imputed = np.hstack([imputed, indicator.astype(imputed.dtype)])
        return imputed

    def get_feature_names_out(self, input_features=None):
        """Get output feature names for transformation.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input features. If None, ``feature_names_in_`` is used when
            defined, else ``["x0", "x1", ..., "x(n_features_in_ - 1)"]``.

        Returns
        -------
        feature_names_out : ndarray of str objects
            The names of the features ``transform`` returns.
        """
        check_is_fitted(self)
        input_features = _check_feature_names_in(self, input_features)
        names = input_features
        if not self.keep_empty_features:
            names = np.delete(names, self._empty_features)
        if self.add_indicator:
            indicators = [f"missingindicator_{input_features[j]}" for j in self._missing_features]
            names = np.concatenate([names, np.asarray(indicators, dtype=object)])
        return np.asarray(names, dtype=object)

    def _orders_codes(self, module):
        """Never: the imputer's codes are its own, read by no one."""
        return False

    def _hidden_layer_sizes(self, X):
        """``hidden_layer_sizes``, "auto" resolved by whether rows are images."""
        if isinstance(self.hidden_layer_sizes, str) and self.hidden_layer_sizes == "auto":
            return ROW_LAYERS if self.image_shape is None else IMAGE_LAYERS
        return super()._hidden_layer_sizes(X)

    @classmethod
    def _check_fitted_state(cls, attributes):
        super()._check_fitted_state(attributes)
        require_attributes(attributes, LINEAR_STATE)
        check_linear_model(attributes)
        check_neighbours(attributes)
        check_bounds(attributes)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = is_nan(self.missing_values)
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
