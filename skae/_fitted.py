"""The fitted network of an estimator, held as plain arrays.

:class:`FittedNetworkMixin` keeps a trained network as MLPRegressor keeps
its own, as numpy arrays (``coefs_``, ``intercepts_``, with ``shift_``,
``scale_`` and a description of plain values), and rebuilds the torch module
from them when it is first needed, so that pickle, skops and
:func:`skae.save` store no torch object.
"""

from skae._nn._batches import INFERENCE_ROWS, reconstruction_error
from skae._nn._network import build_network
from skae._nn._threads import torch_threads


class FittedNetworkMixin:
    """Holds a fitted network as arrays; rebuilds and caches its torch module."""

    # The fitted state, plain values and numpy arrays only: what persistence
    # saves and what the network is rebuilt from.
    _state_names = (
        "n_features_in_",
        "feature_names_in_",
        "n_components_",
        "coefs_",
        "intercepts_",
        "shift_",
        "scale_",
        "output_activation_",
        "init_",
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
        "_optimizer_state",
        "_generator_state",
    )

    def _set_network(self, module):
        """Keep ``module``'s description and weights as the fitted state."""
        self._network_spec = module.spec
        self.coefs_, self.intercepts_, self.shift_, self.scale_ = module.to_arrays()
        self._module = module

    def _rebuild_network(self):
        """A new network holding the fitted weights."""
        module = build_network(self._network_spec)
        return module.load_arrays(self.coefs_, self.intercepts_, self.shift_, self.scale_)

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
        n_parameters = sum(
            c.size + i.size for c, i in zip(self.coefs_, self.intercepts_, strict=True)
        )
        return min(X.shape[0], INFERENCE_ROWS) * n_parameters
