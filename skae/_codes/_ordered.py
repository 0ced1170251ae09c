"""Ordered codes: which fits order them, and what a fitted estimator's prefixes give.

With ordered codes the first ``j`` units of the code reconstruct the data
about as well as a model fitted at ``j``, as PCA's components do.
:class:`OrderedCodesMixin` gives the estimators of the family their
``explained_variance_ratio_``, the cut of the code for a share of the
variance, the prefixes' reconstruction errors and a copy of a fitted
estimator at a smaller width.
"""

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from skae._choices import caller_stacklevel, components_for_fraction, orders_codes
from skae._nn._accept import prefix_errors
from skae._nn._batches import MaskedPairs, encode
from skae._nn._threads import torch_threads

# The multiply-adds the estimate of ``explained_variance_ratio_`` may cost,
# and the training rows it uses at most and at least (all, when fewer).
EXPLAINED_VARIANCE_WORK = 4e9
EXPLAINED_VARIANCE_ROWS = (512, 4096)
# Rows encoded at a time for the mean code.
FILL_ROWS = 16384


def _is_fraction(encoding_dim):
    """Whether ``encoding_dim`` asks for a share of the variance, not a width."""
    return isinstance(encoding_dim, Real) and not isinstance(encoding_dim, Integral)


class OrderedCodesMixin:
    """Ordered codes for :class:`~skae._base.BaseAutoencoder`.

    Reads ``ordered_codes`` ("auto" for an estimator without the
    parameter), ``encoding_dim`` and ``noise``, and the fitted state of
    :class:`~skae._fitted.FittedNetworkMixin`.
    """

    def _orders_codes(self, module):
        """Whether to train ``module`` with ordered codes (``ordered_codes`` resolved).

        "auto", as for an estimator without the parameter, is
        :func:`~skae._choices.orders_codes`'s rule.
        """
        ordered = getattr(self, "ordered_codes", "auto")
        if ordered == "auto":
            return module.orders_codes() and orders_codes(
                "auto",
                linear=not getattr(module, "hidden_layer_sizes", ()),
                noise=getattr(self, "noise", None),
                output_activation=module.output_activation,
                fraction=_is_fraction(self.encoding_dim),
            )
        if ordered and not module.orders_codes():
            raise ValueError(
                f"ordered_codes=True, but the network of kind {module.kind!r} cannot "
                "order its codes. Use ordered_codes=False."
            )
        return bool(ordered)

    def _explain(self, module, X, ordered, *, truncate):
        """The mean code and ``explained_variance_ratio_`` of a trained network on X.

        With a share of the variance for ``encoding_dim`` (and ``truncate``),
        the network is cut to the fewest code units that explain it.
        Returns the network and the fitted attributes; None for both
        attributes when X's rows are not the network's inputs (an imputer's
        rows with missing values, say).
        """
        none = {"_code_fill": None, "explained_variance_ratio_": None}
        if (
            isinstance(X, MaskedPairs)
            or X.shape[1] != module.n_features
            or not module.orders_codes()
            # min is NaN when any value is, and allocates nothing.
            or (not sp.issparse(X) and X.size and np.isnan(X.min()))
        ):
            return module, none
        module.to("cpu").eval()
        with torch_threads(X.shape[0] * module.cost_per_row()[0]):
            # The mean code, a chunk of rows at a time: the codes of all
            # rows would cost memory beside the data.
            fill = sum(
                encode(module, X[start : start + FILL_ROWS]).sum(axis=0, dtype=np.float64)
                for start in range(0, X.shape[0], FILL_ROWS)
            ) / max(X.shape[0], 1)
            cumulative = self._cumulative_ratio(module, X, fill)
        if truncate and _is_fraction(self.encoding_dim):
            reached = np.flatnonzero(cumulative >= self.encoding_dim)
            if not len(reached):
                warnings.warn(
                    f"encoding_dim={self.encoding_dim}: the code's {len(cumulative)} units "
                    f"explain {cumulative[-1]:.4g} of the training data's variance, less "
                    "than asked; all of them are kept.",
                    UserWarning,
                    stacklevel=caller_stacklevel(),
                )
            n_codes = int(reached[0]) + 1 if len(reached) else len(cumulative)
            if n_codes < module.encoding_dim:
                module = module.truncate(n_codes, fill)
                fill, cumulative = fill[:n_codes], cumulative[:n_codes]
        ratio = np.diff(cumulative, prepend=0.0)
        return module, {"_code_fill": fill, "explained_variance_ratio_": ratio}

    @staticmethod
    def _cumulative_ratio(module, X, fill):
        """The share of X's variance each prefix of the code reconstructs, estimated.

        On every k-th row of X, as many as the work budget allows; the
        prefixes' other units are held at ``fill``.
        """
        width = module.encoding_dim
        low, high = EXPLAINED_VARIANCE_ROWS
        n_rows = int(EXPLAINED_VARIANCE_WORK // max(width * module.cost_per_row()[0], 1))
        n_rows = min(max(n_rows, low), high)
        # In float64: float32 data near its largest values would overflow.
        mean = np.asarray(X.mean(axis=0, dtype=np.float64)).ravel()
        rows = X[:: -(-X.shape[0] // n_rows)]
        errors = prefix_errors(module, rows, range(1, width + 1), fill=fill).mean(axis=1)
        dense = rows.toarray() if sp.issparse(rows) else rows
        total = float(np.mean((np.asarray(dense, dtype=np.float64) - mean) ** 2))
        if not total > 0:
            return np.ones(width)
        return 1.0 - errors / total

    def _prefix_errors(self, X, dims):
        """Squared errors of each row of X reconstructed from prefixes of its code.

        Row ``i`` holds the mean squared error over the features of each
        row of X, in X's units, of its reconstruction from the first
        ``dims[i]`` units of its code, the others held at their mean over
        the training rows.
        """
        X = self._validate_for_inference(X)
        if getattr(self, "_code_fill", None) is None:
            raise ValueError(
                f"This {type(self).__name__}'s codes have no prefixes to reconstruct from."
            )
        module = self.module_
        dims = [int(n) for n in dims]
        if any(not 1 <= n <= module.encoding_dim for n in dims):
            raise ValueError(f"dims must lie in [1, {module.encoding_dim}]; got {dims}.")
        with torch_threads(self._work(X) * max(len(dims), 1)):
            return prefix_errors(module, X, dims, fill=self._code_fill)

    def _truncated(self, n_codes):
        """A copy of this fitted estimator whose code is the first ``n_codes`` units.

        The other units are held at their mean over the training rows, as
        in :meth:`_prefix_errors`: with ordered codes, a model at every
        size from one fit. The copy holds no optimizer state.
        """
        check_is_fitted(self)
        if getattr(self, "_code_fill", None) is None:
            raise ValueError(f"This {type(self).__name__}'s codes have no prefixes to keep.")
        if not 1 <= n_codes <= self.n_components_:
            raise ValueError(f"n_codes must lie in [1, {self.n_components_}]; got {n_codes}.")
        copy = clone(self).set_params(encoding_dim=n_codes)
        vars(copy).update(
            {name: getattr(self, name) for name in self._state_names if hasattr(self, name)}
        )
        module = self._rebuild_network().truncate(n_codes, self._code_fill)
        copy._set_network(module.eval())
        copy.n_components_ = n_codes
        copy._code_fill = self._code_fill[:n_codes]
        copy.explained_variance_ratio_ = self.explained_variance_ratio_[:n_codes]
        copy._optimizer_state = None
        return copy

    def _encoding_dim(self, X):
        """The code's width for training data X, or for the fitted network when None.

        A share of the variance is PCA's number of components for it, the
        width the network is trained at before it is cut to the fewest
        units that explain that share. Subclasses whose ``encoding_dim``
        may be "auto" resolve it here.
        """
        if isinstance(self.encoding_dim, bool):
            raise ValueError(
                "encoding_dim must be a number of units or a share of the variance, "
                f"not a bool; got encoding_dim={self.encoding_dim}."
            )
        if isinstance(self.encoding_dim, Integral):
            # A numpy integer, from a grid of np.arange, say, is a width too.
            return int(self.encoding_dim)
        if not _is_fraction(self.encoding_dim):
            return self.encoding_dim
        if X is None:
            return self._network_spec["encoding_dim"]
        width, cut = components_for_fraction(X, self.encoding_dim)
        if cut:
            warnings.warn(
                f"encoding_dim={self.encoding_dim} asks for more of the variance than "
                f"X's {X.shape[0]} samples and {X.shape[1]} features allow; the code "
                f"has the most units they allow, {width}.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
        return width
