"""Autoencoder as a scikit-learn transformer."""

import copy
import re
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
)
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from skae._network import ACTIVATIONS, Autoencoder, init_pca, init_random
from skae._threads import flush_denormal, torch_threads
from skae._training import (
    INFERENCE_ROWS,
    DivergenceError,
    as_tensor,
    iter_rows,
    reconstruction_error,
    train,
)

_DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _resolve_device(device):
    """Turn the ``device`` parameter into an available ``torch.device``."""
    if not isinstance(device, str) or not _DEVICE_PATTERN.fullmatch(device):
        raise InvalidParameterError(
            "The 'device' parameter of AutoencoderTransformer must be 'auto', "
            f"'cpu', 'mps', 'cuda' or 'cuda:<index>'. Got {device!r} instead."
        )
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available; "
                "use device='cpu' or device='auto'."
            )
        if (resolved.index or 0) >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are available."
            )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device={device!r} was requested but MPS is not available; "
            "use device='cpu' or device='auto'."
        )
    return resolved


def _n_parameters(module):
    return sum(p.numel() for p in module.parameters())


def _in_unit_interval(X):
    """Whether every value of X (sparse or dense) lies in [0, 1]."""
    if X.shape[0] == 0:
        return True
    return X.min() >= 0 and X.max() <= 1


def _generator(random_state):
    """A CPU torch generator seeded from ``random_state``.

    With ``random_state=None`` the seed comes from the operating system, so
    that neither numpy's nor torch's global random state is consumed.
    """
    generator = torch.Generator()
    if random_state is None:
        generator.seed()
    else:
        rng = check_random_state(random_state)
        generator.manual_seed(int(rng.randint(np.iinfo(np.int32).max)))
    return generator


def _location_scale(X, chunk_size=4096):
    """Per-feature mean and overall root mean square deviation of X.

    Accumulated in float64 over chunks of rows divided by the largest
    magnitude, so that neither huge values overflow nor tiny ones underflow.
    """
    n_samples, n_features = X.shape
    peak = float(max(abs(X.max()), abs(X.min())))
    if peak == 0:
        return np.zeros(n_features), 1.0
    sums = np.zeros(n_features)
    sum_squares = 0.0
    for start in range(0, n_samples, chunk_size):
        chunk = X[start : start + chunk_size].astype(np.float64) / peak
        sums += np.asarray(chunk.sum(axis=0)).ravel()
        if sp.issparse(chunk):
            sum_squares += float(chunk.multiply(chunk).sum())
        else:
            sum_squares += float(np.einsum("ij,ij->", chunk, chunk))
    mean = sums / n_samples
    variance = sum_squares / (n_samples * n_features) - float(mean @ mean) / n_features
    scale = peak * np.sqrt(max(variance, 0.0))
    if not np.isfinite(scale) or scale == 0:
        scale = 1.0
    return mean * peak, scale


def _leading_eigenvectors(X, n_components):
    """Mean and leading principal axes of a dense X with more rows than columns.

    As ``PCA(svd_solver="covariance_eigh")`` computes them, with the same
    signs, but the eigendecomposition of the covariance stops at the
    ``n_components`` leading eigenvectors: for 784 features and 32
    components that takes a third of the time of the full one.
    """
    n_samples, n_features = X.shape
    mean = X.mean(axis=0)
    covariance = X.T @ X
    covariance -= n_samples * np.outer(mean, mean)
    covariance /= n_samples - 1
    _, vectors = scipy.linalg.eigh(
        covariance,
        subset_by_index=[n_features - n_components, n_features - 1],
        driver="evr",
        overwrite_a=True,
    )
    components = vectors[:, ::-1].T.copy()
    # As svd_flip: the entry of largest magnitude of each axis is positive.
    largest = components[np.arange(n_components), np.abs(components).argmax(axis=1)]
    components *= np.where(largest < 0, -1, 1).astype(components.dtype)[:, None]
    return mean, components


def _principal_axes(X, n_components, random_state):
    """Mean and leading principal axes of X, as PCA computes them."""
    n_samples, n_features = X.shape
    if not sp.issparse(X) and n_features <= 2000 and n_samples >= 10 * n_features:
        return _leading_eigenvectors(X, min(n_components, n_features))
    if sp.issparse(X):
        solver = "covariance_eigh" if n_features <= 2000 else "arpack"
    else:
        solver = "auto"
    limit = min(n_samples, n_features) - (solver == "arpack")
    n_components = min(n_components, limit)
    if n_samples < 2 or n_components < 1:
        mean = np.asarray(X.mean(axis=0)).ravel()
        return mean, np.zeros((0, n_features), dtype=X.dtype)
    pca = PCA(n_components, svd_solver=solver, random_state=random_state)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # Constant data makes the explained variance ratios 0 / 0, which
        # does not matter here.
        warnings.simplefilter("ignore", RuntimeWarning)
        pca.fit(X)
    return pca.mean_, pca.components_


class AutoencoderTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Dimensionality reduction with an autoencoder trained in PyTorch.

    An autoencoder is a neural network trained to reconstruct its input
    through a narrow layer, the code. ``transform`` returns the codes,
    ``inverse_transform`` the reconstructions, and ``score`` the negative
    mean squared reconstruction error, so that the estimator can stand in
    for :class:`~sklearn.decomposition.PCA` in a pipeline or a grid search.

    By default the network is the linear autoencoder of the classic MNIST
    tutorials, ``n_features -> encoding_dim -> n_features``, with one linear
    layer each way, a sigmoid output when the training data lie in [0, 1],
    and its linear part started at PCA's solution: training begins where
    PCA ends and the output non-linearity lets it go further.

    Parameters
    ----------
    encoding_dim : int, default=32
        Width of the code, the number of features ``transform`` returns. It
        may exceed the number of input features (an overcomplete code); PCA
        initialisation then covers as many units as the data have
        dimensions, and the others start small and random.

    hidden_layer_sizes : array-like of int, default=()
        Widths of the encoder's hidden layers, outermost first. The decoder
        mirrors them: ``(256, 64)`` with ``encoding_dim=16`` on 784 features
        builds 784-256-64-16-64-256-784.

    activation : {"relu", "tanh", "logistic", "elu", "gelu", "identity"}, \
            default="relu"
        Activation of the hidden layers.

    code_activation : {"identity", "relu", "tanh", "logistic", "elu", \
            "gelu"}, default="identity"
        Activation of the code layer. The tutorials use "relu".

    output_activation : {"auto", "identity", "clip", "sigmoid"}, default="auto"
        Activation of the reconstruction. "clip" clamps a linear output to
        [0, 1]; "sigmoid" squashes it. "auto" is "clip" when the training
        data lie in [0, 1] ("sigmoid" with ``loss="bce"``) and "identity"
        otherwise. "clip" and "sigmoid"
        require training data in [0, 1]. Started from PCA, a clipped output
        reconstructs at least as well as PCA before any training; a sigmoid
        output needs the "bce" loss of the tutorials.

    loss : {"mse", "bce"}, default="mse"
        Training loss: mean squared error, or binary cross-entropy, which
        requires training data in [0, 1] and a sigmoid output.

    init : {"auto", "pca", "random"}, default="auto"
        Initial weights. "pca" starts a network without hidden layers at the
        PCA solution of the training data; "random" draws Glorot-uniform
        weights. "auto" is "pca" when ``hidden_layer_sizes`` is empty and
        ``code_activation="identity"``, "random" otherwise.

    batch_size : int or "auto", default="auto"
        Mini-batch size. "auto" is ``min(200, n_samples)``.

    max_iter : int or "auto", default="auto"
        Maximum number of epochs (passes over the training data). "auto"
        plans about 1000 mini-batch steps: ``ceil(1000 / n_batches)``
        epochs, at least 3 and at most 50.

    learning_rate_init : float, default=3e-3
        Adam's initial (peak, with "cosine") learning rate.

    learning_rate : {"cosine", "constant"}, default="cosine"
        Learning-rate schedule. "cosine" warms up linearly over the first
        tenth of the planned steps, then decays along a half cosine to zero
        at ``max_iter`` epochs; the fit then ends as planned, without a
        :class:`~sklearn.exceptions.ConvergenceWarning`. "constant" keeps
        ``learning_rate_init`` and warns when ``max_iter`` ends the fit.

    alpha : float, default=0.0
        Strength of the L2 penalty on the weights, divided by the batch size
        when added to the loss, as in
        :class:`~sklearn.neural_network.MLPRegressor`.

    shuffle : bool, default=True
        Whether to shuffle the samples at each epoch.

    tol : float, default=1e-4
        Tolerance for the optimisation. When the training loss (or the
        validation score, with ``early_stopping``) does not improve by at
        least ``tol`` for ``n_iter_no_change`` consecutive epochs, training
        stops. With a linear output ``tol`` is relative to the data's mean
        variance (the network's normalised units), so that it does not
        depend on the data's magnitude. Late in a long cosine schedule the
        loss can improve by less than ``tol`` per epoch while the network
        still gets better; ``tol=0`` runs the schedule to its end.

    n_iter_no_change : int, default=10
        Epochs without improvement by ``tol`` before training stops.

    early_stopping : bool, default=False
        Whether to hold out ``validation_fraction`` of the training data,
        stop when its reconstruction error stops improving, and keep the
        weights that scored best on it.

    validation_fraction : float, default=0.1
        Fraction of the training data held out with ``early_stopping``.

    noise : {"gaussian", "masking"} or None, default=None
        Corruption of the inputs during training, for a denoising
        autoencoder; the targets stay clean. "gaussian" adds noise of
        standard deviation ``noise_level``; "masking" sets a fraction
        ``noise_level`` of the inputs to zero.

    noise_level : float, default=0.1
        Standard deviation (gaussian) or rate (masking) of the corruption.

    warm_start : bool, default=False
        When set to True, reuse the network and optimiser of the previous
        call to fit as initialisation.

    random_state : int, RandomState instance or None, default=None
        Determines weight initialisation, the validation split, shuffling
        and corruption. Pass an int for reproducible results across calls:
        on CPU the codes are then bit-identical. The global numpy and torch
        random states are never used.

    device : str, default="cpu"
        Where to train: "cpu", "cuda", "cuda:<index>", "mps", or "auto"
        (CUDA, then MPS, then CPU, whichever is available first). The fitted
        network is kept on CPU, so that a model trained on a GPU loads and
        transforms on any machine.

    verbose : bool, default=False
        Whether to print progress, one line per epoch.

    Attributes
    ----------
    n_components_ : int
        Width of the code, ``encoding_dim``.

    components_ : ndarray of shape (`n_components_`, `n_features_in_`) or None
        Decoder weights, one row per code unit, when the decoder is a single
        linear layer; None otherwise. With ``init="pca"`` and no training
        they are PCA's ``components_``.

    module_ : torch.nn.Module
        The trained network, on CPU.

    output_activation_ : str
        The output activation used.

    init_ : str
        The initialisation used.

    batch_size_ : int
        The mini-batch size used.

    max_iter_ : int
        The maximum number of epochs used.

    device_ : torch.device
        The device training ran on.

    loss_curve_ : list of float
        Mean training loss per element at the end of each epoch.

    best_loss_ : float or None
        The minimum of ``loss_curve_``; None with ``early_stopping``.

    validation_scores_ : list of float or None
        Negative mean squared reconstruction error on the validation set
        after each epoch; None without ``early_stopping``.

    best_validation_score_ : float or None
        The best of ``validation_scores_``; None without ``early_stopping``.

    n_iter_ : int
        Number of epochs run.

    t_ : int
        Number of training samples seen.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.decomposition.PCA : Linear dimensionality reduction, the
        baseline an autoencoder should beat.
    sklearn.neural_network.MLPRegressor : The training loop this estimator's
        parameters follow.

    Notes
    -----
    Training uses Adam on mini-batches, run by PyTorch on the chosen device.
    float32 input is trained in float32 and float64 input in float64, and
    ``transform`` returns the dtype it is given; pass float32 data for the
    fastest training. Sparse input is densified one mini-batch at a time.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skae import AutoencoderTransformer
    >>> X, _ = load_digits(return_X_y=True)
    >>> X = X / 16
    >>> ae = AutoencoderTransformer(encoding_dim=8, random_state=0)
    >>> codes = ae.fit_transform(X)
    >>> codes.shape
    (1797, 8)
    >>> ae.inverse_transform(codes).shape
    (1797, 64)
    >>> ae.output_activation_
    'clip'
    """

    _parameter_constraints: dict = {
        "encoding_dim": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": ["array-like"],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "code_activation": [StrOptions(set(ACTIVATIONS))],
        "output_activation": [StrOptions({"auto", "identity", "sigmoid", "clip"})],
        "loss": [StrOptions({"mse", "bce"})],
        "init": [StrOptions({"auto", "pca", "random"})],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "max_iter": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [StrOptions({"constant", "cosine"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "shuffle": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            Options(Real, {np.inf}),
        ],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "noise": [StrOptions({"gaussian", "masking"}), None],
        "noise_level": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "device": [str],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        encoding_dim=32,
        *,
        hidden_layer_sizes=(),
        activation="relu",
        code_activation="identity",
        output_activation="auto",
        loss="mse",
        init="auto",
        batch_size="auto",
        max_iter="auto",
        learning_rate_init=3e-3,
        learning_rate="cosine",
        alpha=0.0,
        shuffle=True,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        noise=None,
        noise_level=0.1,
        warm_start=False,
        random_state=None,
        device="cpu",
        verbose=False,
    ):
        self.encoding_dim = encoding_dim
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.code_activation = code_activation
        self.output_activation = output_activation
        self.loss = loss
        self.init = init
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
        self.noise = noise
        self.noise_level = noise_level
        self.warm_start = warm_start
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the autoencoder to reconstruct X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. Sparse matrices are densified one mini-batch at a
            time.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        first_call = not (self.warm_start and hasattr(self, "module_"))
        return self._validate_and_fit(X, first_call=first_call, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train for one epoch on X, building the network on the first call.

        The choices that depend on the data ("auto" output activation, PCA
        initialisation, "auto" batch size) are made from the first chunk
        seen, and later chunks must fit them (data in [0, 1] for a clipped or
        sigmoid output). ``early_stopping`` and the "cosine" schedule do not
        apply: each call runs one epoch at ``learning_rate_init``. Shuffling
        and corruption go on drawing from one random stream across calls.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            One chunk of training data.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The updated estimator.
        """
        first_call = not hasattr(self, "module_")
        return self._validate_and_fit(X, first_call=first_call, incremental=True)

    def _validate_and_fit(self, X, *, first_call, incremental):
        """Validate X and fit; a failed first fit leaves no fitted attribute."""
        try:
            X = self._validate_input(X, reset=first_call)
            return self._fit(X, first_call=first_call, incremental=incremental)
        except BaseException:
            if first_call:
                for name in ("n_features_in_", "feature_names_in_"):
                    self.__dict__.pop(name, None)
            raise

    def __sklearn_is_fitted__(self):
        return hasattr(self, "module_")

    def _validate_input(self, X, *, reset):
        X = validate_data(
            self,
            X,
            reset=reset,
            accept_sparse=("csr", "csc"),
            dtype=(np.float64, np.float32),
            order="C",
        )
        return X.tocsr() if sp.issparse(X) else X

    def _resolve_output_activation(self, X):
        """Check the output activation and loss against the data's range."""
        in_unit_interval = _in_unit_interval(X)
        output_activation = self.output_activation
        if output_activation == "auto":
            if self.loss == "bce" and in_unit_interval:
                output_activation = "sigmoid"
            else:
                output_activation = "clip" if in_unit_interval else "identity"
        if output_activation in ("sigmoid", "clip") and not in_unit_interval:
            raise ValueError(
                f"output_activation={output_activation!r} produces values in [0, 1], "
                "but the training data has values outside [0, 1]. Scale the data to "
                "[0, 1] (e.g. with MinMaxScaler) or use output_activation='identity'."
            )
        if self.loss == "bce":
            if not in_unit_interval:
                raise ValueError(
                    "loss='bce' requires training data in [0, 1], but the data has "
                    "values outside [0, 1]. Scale the data to [0, 1] (e.g. with "
                    "MinMaxScaler) or use loss='mse'."
                )
            if output_activation != "sigmoid":
                raise ValueError(
                    "loss='bce' requires output_activation='sigmoid' (or 'auto'), "
                    f"got output_activation={self.output_activation!r}."
                )
        return output_activation

    def _resolve_init(self):
        init = self.init
        linear = len(self.hidden_layer_sizes) == 0 and self.code_activation == "identity"
        if init == "auto":
            init = "pca" if linear else "random"
        if init == "pca" and len(self.hidden_layer_sizes) > 0:
            raise ValueError(
                "init='pca' needs a network without hidden layers; got "
                f"hidden_layer_sizes={tuple(self.hidden_layer_sizes)}. Use "
                "init='random' or init='auto'."
            )
        return init

    def _build(self, X, output_activation, init, generator):
        """A new network for X, initialised on CPU."""
        hidden = list(self.hidden_layer_sizes)
        if not all(
            isinstance(width, Integral) and not isinstance(width, bool) and width >= 1
            for width in hidden
        ):
            raise ValueError(
                "hidden_layer_sizes must be a sequence of positive integers, got "
                f"{self.hidden_layer_sizes!r}."
            )
        hidden = [int(width) for width in hidden]
        dtype = torch.float32 if X.dtype == np.float32 else torch.float64
        shift, scale = _location_scale(X) if output_activation == "identity" else (None, 1.0)
        if not 1e-150 < scale < 1e150:
            raise ValueError(
                f"X's values deviate from their mean by about {scale:.1e}: squared "
                "reconstruction errors of that size cannot be represented in float64. "
                "Rescale X, e.g. with StandardScaler."
            )
        module = Autoencoder(
            X.shape[1],
            self.encoding_dim,
            hidden,
            self.activation,
            self.code_activation,
            output_activation,
            dtype=dtype,
            shift=shift,
            scale=scale,
        )
        if init == "pca":
            # Huge or tiny values would overflow or underflow the covariance;
            # such data is worth one scaled copy.
            pca_scale = 1.0 if 1e-8 < scale < 1e8 else scale
            X_pca = X if pca_scale == 1.0 else X / pca_scale
            mean, components = _principal_axes(X_pca, self.encoding_dim, self.random_state)
            if shift is not None:
                mean = (mean * pca_scale - shift) / scale
            init_pca(
                module,
                torch.as_tensor(components, dtype=dtype),
                torch.as_tensor(mean, dtype=dtype),
                generator,
                sample=self._sample(X, generator) if output_activation == "sigmoid" else None,
            )
        else:
            init_random(module, generator)
        return module

    @staticmethod
    def _sample(X, generator, size=2000):
        """At most ``size`` random rows of X as a dense tensor."""
        rows = torch.randperm(X.shape[0], generator=generator)[:size].sort().values.numpy()
        sample = X[rows]
        return torch.from_numpy(sample.toarray() if sp.issparse(sample) else sample)

    def _split(self, X, generator):
        """Training and validation parts of X for early stopping."""
        n_samples = X.shape[0]
        n_val = int(round(self.validation_fraction * n_samples))
        if n_val < 1 or n_val >= n_samples:
            raise ValueError(
                f"early_stopping with validation_fraction={self.validation_fraction} "
                f"leaves {n_val} of {n_samples} samples for validation; both the "
                "training and the validation part need at least 1 sample."
            )
        order = torch.randperm(n_samples, generator=generator).numpy()
        return X[np.sort(order[n_val:])], X[np.sort(order[:n_val])]

    def _fit(self, X, *, first_call, incremental):
        device = _resolve_device(self.device)
        generator = _generator(self.random_state)
        if incremental and not first_call:
            # Later chunks go on drawing from where the previous one stopped.
            generator.set_state(self._generator_state)
        early_stopping = self.early_stopping and not incremental
        X_train, X_val = self._split(X, generator) if early_stopping else (X, None)
        if first_call:
            output_activation = self._resolve_output_activation(X_train)
            init = self._resolve_init()
            batch_size = min(200, X.shape[0]) if self.batch_size == "auto" else self.batch_size
            module = self._build(X_train, output_activation, init, generator)
            optimizer_state, t, first_epoch = None, 0, 1
        else:
            output_activation, init = self.output_activation_, self.init_
            if (output_activation != "identity" or self.loss == "bce") and not (
                _in_unit_interval(X_train)
            ):
                raise ValueError(
                    f"The network was built for data in [0, 1] (output_activation="
                    f"{output_activation!r}, loss={self.loss!r}), but X has values "
                    "outside [0, 1]."
                )
            batch_size = self.batch_size_
            module = copy.deepcopy(self.module_)
            optimizer_state, t, first_epoch = self._optimizer_state, self.t_, self.n_iter_ + 1
        rows_per_batch = min(batch_size, X_train.shape[0])
        if incremental:
            max_iter = 1
        elif self.max_iter == "auto":
            n_batches = -(-X_train.shape[0] // rows_per_batch)
            max_iter = min(max(-(-1000 // n_batches), 3), 50)
        else:
            max_iter = self.max_iter
        module.to(device)
        try:
            work = rows_per_batch * _n_parameters(module)
            with torch_threads(work) as spare_threads, flush_denormal():
                result = train(
                    module,
                    X_train,
                    X_val=X_val,
                    loss=self.loss,
                    batch_size=rows_per_batch,
                    max_iter=max_iter,
                    learning_rate_init=self.learning_rate_init,
                    learning_rate="constant" if incremental else self.learning_rate,
                    alpha=self.alpha,
                    shuffle=self.shuffle,
                    tol=self.tol,
                    n_iter_no_change=self.n_iter_no_change,
                    noise=self.noise,
                    noise_level=self.noise_level,
                    generator=generator,
                    device=device,
                    optimizer_state=optimizer_state,
                    first_epoch=first_epoch,
                    verbose=self.verbose,
                    gather_ahead=spare_threads > 0,
                )
        except DivergenceError as error:
            raise ValueError(
                f"Training diverged: {error}. The estimator was left as it was "
                "before this call. Try a smaller learning_rate_init (currently "
                f"{self.learning_rate_init}) or scale the data, e.g. with "
                "StandardScaler."
            ) from None

        module.to("cpu")
        self.module_ = module
        self._optimizer_state = result.optimizer_state
        self.output_activation_ = output_activation
        self.init_ = init
        self.batch_size_ = batch_size
        self.max_iter_ = max_iter
        self.device_ = device
        self.n_components_ = self.encoding_dim if first_call else self.n_components_
        decoder_layers = module.decoder
        if len(decoder_layers) == 1:
            self.components_ = decoder_layers[0].weight.detach().T.numpy().copy()
        else:
            self.components_ = None
        self._record_curves(result, first_call, early_stopping)
        self.t_ = t + result.n_epochs * X_train.shape[0]
        self._generator_state = generator.get_state()
        if (
            not incremental
            and self.learning_rate == "constant"
            and not result.stopped_early
            and not result.interrupted
            and result.n_epochs == max_iter
        ):
            warnings.warn(
                f"Maximum iterations ({max_iter}) reached and the optimization "
                "hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _record_curves(self, result, first_call, early_stopping):
        if first_call or not hasattr(self, "loss_curve_"):
            self.loss_curve_ = []
            self.validation_scores_ = [] if early_stopping else None
        self.loss_curve_ = self.loss_curve_ + result.loss_curve
        self.n_iter_ = len(self.loss_curve_)
        if early_stopping:
            self.validation_scores_ = (self.validation_scores_ or []) + result.validation_scores
            self.best_validation_score_ = max(self.validation_scores_, default=None)
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            # An interrupt in the first epoch leaves the curve empty.
            self.best_loss_ = min(self.loss_curve_, default=None)

    @torch.no_grad()
    def _encode(self, X):
        dtype = self.module_.encoder[0].weight.dtype
        codes = [
            self.module_.encode(batch)
            for batch in iter_rows(X, INFERENCE_ROWS, device="cpu", dtype=dtype)
        ]
        return torch.cat(codes).numpy().astype(X.dtype, copy=False)

    def transform(self, X):
        """Encode X into codes.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        X_new : ndarray of shape (n_samples, `n_components_`)
            The codes, in the dtype of X (float64 for other dtypes).
        """
        check_is_fitted(self)
        X = self._validate_input(X, reset=False)
        with torch_threads(self._work(X)):
            return self._encode(X)

    def inverse_transform(self, X):
        """Decode codes into reconstructions of the input.

        Parameters
        ----------
        X : array-like of shape (n_samples, `n_components_`)
            Codes, such as those returned by :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, `n_features_in_`)
            The reconstructions.
        """
        check_is_fitted(self)
        X = check_array(X, dtype=(np.float64, np.float32), order="C")
        if X.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {self.__class__.__name__} "
                f"decodes codes of {self.n_components_} features."
            )
        codes = as_tensor(X).to(self.module_.encoder[0].weight.dtype)
        with torch.no_grad(), torch_threads(self._work(X)):
            return self.module_.decode(codes).numpy().astype(X.dtype, copy=False)

    def score_samples(self, X):
        """Negative mean squared reconstruction error of each sample.

        Samples the autoencoder reconstructs badly score low, which makes
        this an anomaly score.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The data.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Negative mean squared error over the features of each sample.
        """
        check_is_fitted(self)
        X = self._validate_input(X, reset=False)
        with torch_threads(self._work(X)):
            return -reconstruction_error(self.module_, X)

    def score(self, X, y=None):
        """Negative mean squared reconstruction error over all of X.

        Higher is better, so that model selection tools can maximise it.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The data.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            Negative mean squared reconstruction error.
        """
        return float(np.mean(self.score_samples(X)))

    def _work(self, X):
        """Multiply-adds of one inference pass of X's rows through the network."""
        return min(X.shape[0], INFERENCE_ROWS) * _n_parameters(self.module_)

    @property
    def _n_features_out(self):
        """Number of transformed output features."""
        return self.n_components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
