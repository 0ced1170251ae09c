"""The training run of an estimator, and the fitted network it leaves, as plain arrays.

:class:`FittedNetworkMixin` runs the training loop on a started network
and keeps the trained network as MLPRegressor keeps its own, as numpy
arrays (``coefs_``, ``intercepts_``, with ``shift_``, ``scale_`` and a
description of plain values), and rebuilds the torch module from them when
it is first needed, so that pickle, skops and :func:`skae.save` store no
torch object.
"""

import warnings
from dataclasses import replace
from typing import NamedTuple

from sklearn.exceptions import ConvergenceWarning

from skae._choices import caller_stacklevel, resolve_device, resolve_precision
from skae._nn import _train
from skae._nn._batches import INFERENCE_ROWS, reconstruction_error
from skae._nn._contract import build_network
from skae._nn._state import check_network_state
from skae._nn._threads import flush_denormal, torch_threads

# max_iter="auto": about this many mini-batch steps, in at most this many
# epochs. Data of a few hundred rows make ten mini-batches an epoch, so they
# get a hundred epochs: the nonlinear networks of small data and curved
# manifolds still gain there, where MNIST's 250 mini-batches an epoch get 4.
AUTO_STEPS = 1000
AUTO_MAX_EPOCHS = 200


class Preparation(NamedTuple):
    """What a first fit trains on and starts from.

    Attributes
    ----------
    X_train : ndarray, sparse matrix or MaskedPairs
        The training data.

    X_val : same kind as X_train, or None
        The validation data of early stopping, or None without.

    build : callable or None
        Rows of data -> the started network, on CPU. None when resuming.

    fitted : dict
        Fitted attributes the preparation decided, set when the fit succeeds.
    """

    X_train: object
    X_val: object
    build: object
    fitted: dict = {}


class FittedNetworkMixin:
    """Holds a fitted network as arrays; rebuilds and caches its torch module."""

    # The fitted state, plain values and numpy arrays only: what persistence
    # saves and what the network is rebuilt from.
    _state_names = (
        "n_features_in_",
        "feature_names_in_",
        "n_components_",
        "explained_variance_ratio_",
        "coefs_",
        "intercepts_",
        "shift_",
        "scale_",
        "output_activation_",
        "init_",
        "ordered_codes_",
        "batch_size_",
        "max_iter_",
        "device_",
        "precision_",
        "loss_curve_",
        "best_loss_",
        "validation_scores_",
        "best_validation_score_",
        "n_iter_",
        "t_",
        "_network_spec",
        "_code_fill",
        "_optimizer_state",
        "_generator_state",
    )

    # The training run

    def _run(self, module, preparation, generator, *, batch_size, incremental, **resume):
        """Train a started network; returns the network, the result and the run's settings.

        ``resume`` holds ``optimizer_state``, ``t`` and ``first_epoch`` of a
        resumed fit.
        """
        device = resolve_device(self.device, type(self).__name__)
        X_train = preparation.X_train
        precision = resolve_precision(self.precision, device, module)
        ordered = self._orders_codes(module)
        options = self._training_options(X_train, batch_size, incremental, precision, ordered)
        at_optimum = (
            self.max_iter == "auto"
            and not incremental
            and not resume
            and preparation.fitted.get("init_") == "pca"
            and module.starts_at_optimum(options)
        )
        if at_optimum:
            # No step could improve on the start: one epoch that takes none
            # records its loss, so that the curves describe the weights kept.
            options = replace(options, max_iter=1, learning_rate_init=0.0)
        first_epoch = resume.get("first_epoch", 1)
        module.to(device)
        try:
            # A step's forward and backward passes: about three multiply-adds
            # per multiply-add of the forward pass, for each row.
            work = 3 * options.batch_size * module.cost_per_row()[0]
            with torch_threads(work) as spare_threads, flush_denormal():
                # Called through the module: tests replace _train.train here.
                result = _train.train(
                    module,
                    X_train,
                    options,
                    X_val=preparation.X_val,
                    generator=generator,
                    device=device,
                    optimizer_state=resume.get("optimizer_state"),
                    first_epoch=first_epoch,
                    gather_ahead=spare_threads > 0,
                    keep_start=not incremental,
                )
        except _train.DivergenceError as error:
            raise ValueError(
                f"Training cannot start: {error}. The estimator was left as it was "
                "before this call. Scale the data, e.g. with StandardScaler."
            ) from None
        if result.diverged:
            self._warn_diverged(result, first_epoch)
        run = {
            "batch_size_": batch_size,
            "max_iter_": options.max_iter,
            "device_": str(device),
            "precision_": precision,
            "t_": resume.get("t", 0) + result.n_epochs * X_train.shape[0],
            "incremental": incremental,
            "early_stopping": preparation.X_val is not None,
            "ordered": ordered,
            "at_optimum": at_optimum,
        }
        return module, result, run

    def _keep(self, module, result, run, generator, *, first_call):
        """Keep a trained network and what its training did as the fitted state."""
        run = dict(run)
        incremental, early_stopping = run.pop("incremental"), run.pop("early_stopping")
        at_optimum = run.pop("at_optimum")
        self.ordered_codes_ = run.pop("ordered")
        module.to("cpu").eval()
        self._set_network(module)
        self._optimizer_state = result.optimizer_state
        vars(self).update(run)
        self.n_components_ = module.encoding_dim
        self._record_curves(result, first_call, early_stopping)
        if result.n_epochs or first_call:
            self._generator_state = generator.get_state().numpy()
        # else no epoch was kept: the random stream stays where it was too.
        if (
            not incremental
            and not at_optimum
            and self.learning_rate == "constant"
            and not result.stopped_early
            and not result.interrupted
            and result.n_epochs == self.max_iter_
        ):
            warnings.warn(
                f"Maximum iterations ({self.max_iter_}) reached and the optimization "
                "hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=caller_stacklevel(),
            )
        return self

    def _warn_diverged(self, result, first_epoch):
        epoch, loss = result.diverged
        if result.best_epoch == 0:
            kept = "the weights it started from"
        else:
            kept = f"the weights after epoch {first_epoch - 1 + result.best_epoch}"
        criterion = "validation score" if result.validation_scores is not None else "loss"
        warnings.warn(
            f"Training diverged in epoch {epoch}: the training loss reached {loss:.3g}, "
            f"over {_train.DIVERGENCE_FACTOR:g} times that of the starting weights. "
            f"Training stopped and kept {kept}, which had the best {criterion}. Try a "
            f"smaller learning_rate_init (currently {self.learning_rate_init}) or scale "
            "the data, e.g. with StandardScaler.",
            ConvergenceWarning,
            stacklevel=caller_stacklevel(),
        )

    def _training_options(self, X_train, batch_size, incremental, precision, ordered=False):
        """The training parameters with their "auto" choices made for X_train."""
        rows_per_batch = min(batch_size, X_train.shape[0])
        if incremental:
            max_iter = 1
        elif self.max_iter == "auto":
            n_batches = -(-X_train.shape[0] // rows_per_batch)
            max_iter = min(max(round(AUTO_STEPS / n_batches), 3), AUTO_MAX_EPOCHS)
        else:
            max_iter = self.max_iter
        return _train.TrainingOptions.from_params(
            self.get_params(deep=False),
            batch_size=rows_per_batch,
            max_iter=max_iter,
            learning_rate="constant" if incremental else self.learning_rate,
            precision=precision,
            ordered=ordered,
        )

    # The fitted state

    def _set_network(self, module):
        """Keep ``module``'s description and weights as the fitted state."""
        self._network_spec = module.spec
        vars(self).update(module.to_arrays())
        self._module = module

    def _rebuild_network(self):
        """A new network holding the fitted weights."""
        module = build_network(self._network_spec)
        return module.load_arrays({name: getattr(self, name) for name in module.array_names})

    @property
    def module_(self):
        """The fitted network, on CPU, rebuilt from the fitted arrays when needed."""
        if not self.__sklearn_is_fitted__():
            raise AttributeError(f"This {type(self).__name__} instance is not fitted yet.")
        module = self.__dict__.get("_module")
        if module is None:
            module = self._module = self._rebuild_network().eval()
        return module

    @property
    def components_(self):
        """Decoder weights of the linear path, one row per code unit, or None."""
        path = self.module_.linear_path
        return None if path is None else path[1].weight.detach().T.numpy().copy()

    @classmethod
    def _check_fitted_state(cls, attributes):
        """Check fitted attributes read from a file before anything is built from them.

        Raises a ValueError naming the first attribute that is not one the
        estimator writes; subclasses check their own attributes too.
        """
        check_network_state(attributes)

    def __getstate__(self):
        state = super().__getstate__()
        # The network is rebuilt from the arrays: a pickle holds no torch object.
        state.pop("_module", None)
        return state

    def _reconstruction_error(self, X):
        """Mean squared reconstruction error of each row of a validated X."""
        with torch_threads(self._work(X)):
            return reconstruction_error(self.module_, X)

    def _work(self, X):
        """Multiply-adds of one inference pass of X's rows through the network."""
        return min(X.shape[0], INFERENCE_ROWS) * self.module_.cost_per_row()[0]
