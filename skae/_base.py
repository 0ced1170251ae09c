"""The base of skae's estimators: shared parameters, the fit path, the fitted state.

Every estimator of the family is an autoencoder trained the same way; they
differ in what they return. :class:`BaseAutoencoder` holds what they share,
as scikit-learn's ``BaseMultilayerPerceptron`` does for ``MLPRegressor`` and
``MLPClassifier``: the parameter constraints, ``fit`` and ``partial_fit``
along one path (validate, resolve the "auto" choices into fitted attributes,
build the network, train, set the fitted attributes), reconstruction, and
the fitted state, held as plain arrays from which the torch network is
rebuilt when needed.
"""

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from skae._choices import (
    caller_stacklevel,
    check_architecture,
    check_noise,
    check_range,
    hidden_layer_sizes,
    image_shape,
    in_unit_interval,
    make_generator,
    principal_axes,
    resolve_batch_size,
    resolve_early_stopping,
    resolve_init,
    resolve_output_activation,
    validation_rows,
)
from skae._codes._ordered import OrderedCodesMixin
from skae._fitted import FittedNetworkMixin, Preparation
from skae._nn._batches import rows_of
from skae._nn._contract import ACTIVATIONS, choose_kind, start_network
from skae._nn._start import centred_gram

# A sigmoid output is compared with PCA on every k-th training row, at most
# this many, and said to lose where it explains this much less of their
# variance than PCA's reconstruction clipped to [0, 1].
SIGMOID_CHECK_ROWS = 2000
SIGMOID_SHORTFALL = 0.01


class BaseAutoencoder(OrderedCodesMixin, FittedNetworkMixin, BaseEstimator):
    """Base class of skae's estimators. Do not use it directly.

    Subclasses add the methods that give the autoencoder its job; the
    parameters are documented on :class:`skae.AutoencoderTransformer`.
    """

    # The training loop's parameters, which every estimator of the family
    # has; each extends them with its own.
    _training_constraints: dict = {
        "hidden_layer_sizes": ["array-like"],
        "image_shape": ["array-like", None],
        "activation": [StrOptions(set(ACTIVATIONS))],
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
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
        "device": [str],
        "precision": [StrOptions({"auto", "float32", "bfloat16"})],
        "verbose": ["verbose"],
    }

    _parameter_constraints: dict = {
        **_training_constraints,
        "encoding_dim": [Interval(Integral, 1, None, closed="left")],
        "code_activation": [StrOptions(set(ACTIVATIONS))],
        "output_activation": [StrOptions({"auto", "identity", "sigmoid", "clip"})],
        "loss": [StrOptions({"mse", "bce"})],
        "init": [StrOptions({"auto", "pca", "random"})],
        "noise": [StrOptions({"gaussian", "masking"}), None],
        "noise_level": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "ordered_codes": ["boolean", StrOptions({"auto"})],
    }

    def __init__(
        self,
        encoding_dim=32,
        *,
        ordered_codes="auto",
        hidden_layer_sizes=(),
        image_shape=None,
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
        early_stopping="auto",
        validation_fraction=0.1,
        noise=None,
        noise_level=0.1,
        warm_start=False,
        random_state=None,
        device="cpu",
        precision="auto",
        verbose=False,
    ):
        self.encoding_dim = encoding_dim
        self.ordered_codes = ordered_codes
        self.hidden_layer_sizes = hidden_layer_sizes
        self.image_shape = image_shape
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
        self.precision = precision
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
        first_call = not (self.warm_start and self.__sklearn_is_fitted__())
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
        first_call = not self.__sklearn_is_fitted__()
        return self._validate_and_fit(X, first_call=first_call, incremental=True)

    def _validate_and_fit(self, X, *, first_call, incremental):
        """Validate X and fit; a call that fails leaves the estimator as it was."""
        before = dict(self.__dict__)
        try:
            X = self._validate_input(X, reset=first_call)
            return self._fit(X, first_call=first_call, incremental=incremental)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def __sklearn_is_fitted__(self):
        return hasattr(self, "coefs_")

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

    def _validate_for_inference(self, X):
        """Validate X for a fitted estimator, warning of data its output cannot reach."""
        check_is_fitted(self)
        X = self._validate_input(X, reset=False)
        # A denoising model's inputs may be noisy, outside [0, 1].
        if (
            self.output_activation_ != "identity"
            and self.noise is None
            and not in_unit_interval(X)
        ):
            warnings.warn(
                f"X has values outside [0, 1], but {type(self).__name__} was fitted on "
                f"data in [0, 1] and its output ({self.output_activation_!r}) stays in "
                "[0, 1]: the values outside it are not reconstructed, and count in full "
                "in the reconstruction error and the scores. Scale X as the training "
                "data was scaled.",
                UserWarning,
                stacklevel=3,
            )
        return X

    # The fit path: a first fit and a resumed one, sharing the training run.

    def _fit(self, X, *, first_call, incremental):
        if first_call:
            return self._first_fit(X, incremental=incremental)
        return self._resumed_fit(X, incremental=incremental)

    def _first_fit(self, X, *, incremental):
        if self.precision in ("float32", "bfloat16"):
            # Both train a float32 network, whatever the data's dtype.
            X = X.astype(np.float32, copy=False)
        generator = make_generator(self.random_state)
        preparation = self._prepare(X, generator, incremental=incremental)
        X_train = preparation.X_train
        batch_size = resolve_batch_size(self.batch_size, X_train.shape[0], incremental)
        module = preparation.build(X_train)
        module, result, run = self._run(
            module, preparation, generator, batch_size=batch_size, incremental=incremental
        )
        if preparation.X_val is not None and result.best_epoch == 0:
            # Training did not beat the start on held-out rows: start from
            # all the rows instead, as PCA would.
            module = preparation.build(X)
            result.optimizer_state = None
        width = module.encoding_dim
        module, explained = self._explain(module, X, run["ordered"], truncate=True)
        if module.encoding_dim != width:
            # Adam's moments belong to the whole network.
            result.optimizer_state = None
        vars(self).update(preparation.fitted)
        self._keep(module, result, run, generator, first_call=True)
        vars(self).update(explained)
        fitted = preparation.fitted
        if fitted.get("output_activation_") == "sigmoid" and fitted.get("init_") == "pca":
            self._check_sigmoid_output(X)
        return self

    def _resumed_fit(self, X, *, incremental):
        self._check_architecture()
        X = X.astype(self.coefs_[0].dtype, copy=False)
        check_range(X, self.output_activation_, self.loss)
        generator = make_generator(self.random_state)
        if incremental:
            # Later chunks go on drawing from where the previous one stopped.
            generator.set_state(torch.from_numpy(self._generator_state))
        module = self._rebuild_network()
        early_stopping = not incremental and self._holds_out(module, X)
        X_train, X_val = self._split(X, generator) if early_stopping else (X, None)
        preparation = Preparation(X_train, X_val, build=None)
        module, result, run = self._run(
            module,
            preparation,
            generator,
            batch_size=self.batch_size_,
            incremental=incremental,
            optimizer_state=self._optimizer_state,
            t=self.t_,
            first_epoch=self.n_iter_ + 1,
        )
        module, explained = self._explain(module, X, run["ordered"], truncate=False)
        self._keep(module, result, run, generator, first_call=False)
        vars(self).update(explained)
        return self

    def _check_sigmoid_output(self, X):
        """Warn where a sigmoid output started at PCA's axes ends clearly worse than PCA.

        No start at PCA's solution exists for a sigmoid output, as one does
        for a clipped output: a sigmoid of a linear map of the code cannot
        give the nearly exact linear reconstruction that PCA gives close to
        the data's rank (digits at 48 of their 64 features: 15 times PCA's
        squared error). The shares of the variance of every k-th row of X
        (at most ``SIGMOID_CHECK_ROWS``) that the network and PCA, fitted on
        the same rows and clipped to [0, 1], reconstruct are compared.
        """
        rows = X[:: -(-X.shape[0] // SIGMOID_CHECK_ROWS)]
        dense = np.asarray(rows.toarray() if sp.issparse(rows) else rows, dtype=np.float64)
        mean = dense.mean(axis=0)
        centred = dense - mean
        total = float(np.mean(centred**2))
        if not total > 0:
            return
        # PCA's reconstruction of the rows from the leading eigenvectors of
        # the smaller Gram matrix of their centred values: principal axes
        # for tall rows, the rows' coordinates along them for wide ones.
        vectors = np.linalg.eigh(centred_gram(dense, mean=mean))[1][:, -self.n_components_ :]
        if dense.shape[0] >= dense.shape[1]:
            projected = centred @ vectors @ vectors.T
        else:
            projected = vectors @ (vectors.T @ centred)
        pca_share = 1 - float(np.mean((np.clip(projected + mean, 0, 1) - dense) ** 2)) / total
        share = 1 - float(self._reconstruction_error(rows).mean()) / total
        if share < pca_share - SIGMOID_SHORTFALL:
            warnings.warn(
                f"With output_activation='sigmoid', the code's {self.n_components_} units "
                f"reconstruct {share:.3f} of the training data's variance, where PCA's "
                f"{self.n_components_} components, clipped to [0, 1], reconstruct "
                f"{pca_share:.3f}: a sigmoid output cannot give PCA's nearly exact "
                "reconstruction this close to the data's rank. "
                "output_activation='clip' starts at PCA's solution and never ends "
                "below it.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )

    def _prepare(self, X, generator, *, incremental):
        """The training and validation data made of X, and how to start the network.

        The one hook through which an estimator adapts the fit path:
        subclasses that train on something other than X's rows (pairs of
        inputs and targets, say), or start elsewhere than at PCA's
        solution, return their own :class:`Preparation`.
        """
        check_noise(self.noise, self.noise_level)
        output_activation = resolve_output_activation(
            self.output_activation, self.loss, in_unit_interval(X)
        )
        init = resolve_init(self.init, self._hidden_layer_sizes(X), self.code_activation)
        request = self._network_request(X, output_activation, init)
        early_stopping = not incremental and self._holds_out(choose_kind(request), X)
        X_train, X_val = self._split(X, generator) if early_stopping else (X, None)

        def build(rows):
            return start_network(
                rows,
                request,
                generator=generator,
                random_state=self.random_state,
                principal_axes=principal_axes,
            )

        fitted = {"output_activation_": output_activation, "init_": init}
        return Preparation(X_train, X_val, build, fitted)

    def _holds_out(self, kind, X):
        """Whether to hold out rows of X for early stopping with a network of ``kind``."""
        return resolve_early_stopping(
            self.early_stopping, kind.held_out_by_default, self.validation_fraction, X.shape[0]
        )

    def _check_architecture(self):
        """Check that the parameters still describe the fitted network."""
        current = {
            "encoding_dim": self._encoding_dim(None),
            "hidden_layer_sizes": list(self._hidden_layer_sizes(None)),
            "activation": self.activation,
            "code_activation": self.code_activation,
        }
        if self.output_activation != "auto":
            current["output_activation"] = self.output_activation
        shape = image_shape(self.image_shape, self._network_spec["n_features"])
        current["image_shape"] = None if shape is None else list(shape)
        # A network that is not convolutional has no image shape in its spec.
        check_architecture({"image_shape": None, **self._network_spec}, current)

    def _hidden_layer_sizes(self, X):
        """The hidden layers' widths for training data X, or the fitted ones when None.

        Subclasses whose ``hidden_layer_sizes`` may be "auto" resolve it here.
        """
        return hidden_layer_sizes(self.hidden_layer_sizes)

    def _network_request(self, X, output_activation, init):
        """What the network for training data X is to be, for :func:`choose_kind`."""
        return {
            "encoding_dim": self._encoding_dim(X),
            "hidden_layer_sizes": list(self._hidden_layer_sizes(X)),
            "activation": self.activation,
            "code_activation": self.code_activation,
            "output_activation": output_activation,
            "init": init,
            "image_shape": image_shape(self.image_shape, X.shape[1]),
        }

    def _split(self, X, generator):
        """Training and validation parts of X for early stopping."""
        n_samples = X.shape[0]
        n_val = validation_rows(self.validation_fraction, n_samples)
        if n_val < 1 or n_val >= n_samples:
            raise ValueError(
                f"early_stopping with validation_fraction={self.validation_fraction} "
                f"leaves {n_val} of {n_samples} samples for validation; both the "
                "training and the validation part need at least 1 sample."
            )
        order = torch.randperm(n_samples, generator=generator)
        return rows_of(X, order[n_val:].sort().values), rows_of(X, order[:n_val].sort().values)

    def _record_curves(self, result, first_call, early_stopping):
        if first_call:
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
