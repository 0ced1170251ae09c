"""The imputer's linear model and the training copies its network learns from."""

import functools
import math

import numpy as np
import torch

from skae._impute._gaussian import gaussian_model
from skae._impute._soft_impute import linear_fill, soft_impute
from skae._nn._batches import MaskedPairs
from skae._nn._contract import choose_kind
from skae._nn._state import fitted_array, fitted_value
from skae._nn._threads import torch_threads

# Fraction of the observed entries held out to choose the linear model.
HELD_OUT = 0.1
# Up to this many features the multivariate normal model competes with
# soft-impute.
GAUSSIAN_MAX_FEATURES = 128
# The training rows: copies of the data, each with other observed entries
# hidden, about TRAINING_ROWS rows in all (the mini-batch steps of three
# epochs of "auto" max_iter, so that a network sees few hidden entries
# twice), at most MAX_COPIES times and in at most about TRAINING_BYTES of
# inputs, targets and masks.
TRAINING_ROWS = 64000
MAX_COPIES = 256
TRAINING_BYTES = 2**28
# Entries of the copies filled in one call, at most, where a copy has fewer.
FILL_ENTRIES = 2**20
# The network's dtype.
NETWORK_DTYPE = np.float32


def fit_linear_model(Z, observed, rng, max_rank=None):
    """The linear model of scaled data Z that restores held-out entries best.

    Soft-impute's low-rank model, and up to ``GAUSSIAN_MAX_FEATURES``
    features the multivariate normal one, each chosen on the same held-out
    observed entries; returns ``(mean, components, weights)``. With
    ``max_rank``, the model keeps at most that many components, those of
    the largest weights. It runs on as many threads as its work merits,
    whatever torch's setting, so that a small model sums in the same order
    everywhere.
    """
    held_out = observed & (rng.random(observed.shape) < HELD_OUT)
    with torch_threads(Z.size * Z.shape[1]):
        model, error = soft_impute(Z, observed, held_out, rng=rng)
        if Z.shape[1] <= GAUSSIAN_MAX_FEATURES:
            gaussian, gaussian_error = gaussian_model(Z, observed, held_out, rng=rng)
            if not gaussian_error > error:
                model = gaussian
    mean, components, weights = model
    if max_rank is not None and components.shape[1] > max_rank:
        keep = np.sort(np.argsort(-weights, kind="stable")[:max_rank])
        model = (mean, components[:, keep], weights[keep])
    return model


class TrainingCopies:
    """Copies of scaled data with a further ``mask_fraction`` of observed entries hidden.

    Each copy's hidden entries are filled by the linear ``model``; the
    network learns to restore them. :meth:`pairs` gives the
    :class:`~skae._nn._batches.MaskedPairs` of selected rows, which hide
    other entries every epoch when asked for ``fresh`` ones.
    """

    def __init__(self, Z, observed, model, mask_fraction, rng):
        n_samples, n_features = Z.shape
        # Inputs, targets and masks: 9 bytes per entry of each copy.
        by_bytes = TRAINING_BYTES // max(9 * n_samples * n_features, 1)
        copies = min(math.ceil(TRAINING_ROWS / n_samples), MAX_COPIES, by_bytes)
        self.n_copies = max(copies, 1)
        # The network's inputs are filled in its dtype, by conjugate
        # gradients: training fills many more rows than transform does.
        self.Z = Z.astype(NETWORK_DTYPE)
        self.model = tuple(part.astype(NETWORK_DTYPE) for part in model)
        self.observed, self.mask_fraction, self.rng = observed, mask_fraction, rng

    def _draw(self, rows, inputs, masks):
        """Hide entries of the selected rows anew in every copy, into ``inputs`` and ``masks``.

        Copies of a small table are filled together, about ``FILL_ENTRIES``
        entries at a time: one call per copy of a table of 60 rows took
        most of a fit's time.
        """
        Z, observed = self.Z[rows], self.observed[rows]
        n_rows, n_features = observed.shape
        n_copies = len(inputs) // max(n_rows, 1)
        per_call = max(1, FILL_ENTRIES // max(observed.size, 1))
        for first in range(0, n_copies, per_call):
            count = min(per_call, n_copies - first)
            drawn = self.rng.random((count, n_rows, n_features)) < self.mask_fraction
            hidden = (observed & drawn).reshape(-1, n_features)
            part = slice(first * n_rows, (first + count) * n_rows)
            visible = np.tile(observed, (count, 1)) & ~hidden
            inputs[part] = linear_fill(np.tile(Z, (count, 1)), visible, *self.model, exact=False)
            masks[part] = hidden

    def pairs(self, rows, *, fresh=False, n_copies=None):
        """The training pairs of the selected rows of every copy; ``fresh`` remasks them.

        ``n_copies`` copies of the rows, ``self.n_copies`` by default.
        """
        n_copies = self.n_copies if n_copies is None else n_copies
        shape = (n_copies * len(rows), self.Z.shape[1])
        inputs, masks = np.empty(shape, dtype=NETWORK_DTYPE), np.empty(shape, dtype=bool)
        self._draw(rows, inputs, masks)
        return MaskedPairs(
            inputs,
            np.concatenate([self.Z[rows]] * n_copies),
            masks,
            remask=functools.partial(self._draw, rows) if fresh else None,
        )


def start_at_model(model, network, sample, generator):
    """A network started at the linear model, a perceptron beside it at zero.

    With a perceptron, only it trains: the linear path stays the linear
    model. Without, the linear path is the network and trains.

    ``network`` gives its ``hidden_layer_sizes`` and ``activation``; a kind
    that scales its codes does it on ``sample``, linear fills of rows.
    """
    mean, components, weights = (np.asarray(a, dtype=NETWORK_DTYPE) for a in model)
    n_features, rank = components.shape
    request = {
        "image_shape": None,
        **network,
        # The network restores entries hidden from its input: a kind may read it.
        "corrects_input": True,
        "n_features": n_features,
        "encoding_dim": rank,
        "code_activation": "identity",
        "output_activation": "identity",
        "init": "pca",
        "dtype": "float32",
    }
    module = choose_kind(request).from_spec(request)
    module.start_at(
        torch.from_numpy(components.T.copy()),
        torch.from_numpy(mean),
        generator,
        sample=torch.from_numpy(np.asarray(sample, dtype=NETWORK_DTYPE)),
        encoder_components=torch.from_numpy((components * weights).T.copy()),
    )
    if not module.is_linear:
        # The linear path stays the linear model: Adam's first steps, of
        # about the learning rate in every weight, would disturb it.
        for layer in module.linear_path:
            layer.requires_grad_(False)
    return module


# The imputer's fitted state beside its network: column scales, the linear
# model and the feature lists.
LINEAR_STATE = (
    "_column_location",
    "_column_scale",
    "_fill_mean",
    "_fill_components",
    "_fill_weights",
    "_missing_features",
    "_empty_features",
)


def check_linear_model(attributes):
    """Check the imputer's column scales, linear model and feature lists read from a file."""
    spec = attributes["_network_spec"]
    linear = spec["code_activation"] == spec["output_activation"] == "identity"
    fitted_value(attributes, "_network_spec", lambda v: linear, "a network with a linear code")
    n_features, rank = spec["n_features"], spec["encoding_dim"]
    fitted_array(attributes, "_column_location", (n_features,))
    fitted_array(attributes, "_column_scale", (n_features,))
    fitted_value(attributes, "_column_scale", lambda v: (v > 0).all(), "positive scales")
    components = fitted_array(attributes, "_fill_components", (n_features, rank))
    dtypes = (components.dtype.name,)
    fitted_array(attributes, "_fill_mean", (n_features,), dtypes=dtypes)
    fitted_array(attributes, "_fill_weights", (rank,), dtypes=dtypes)
    fitted_value(
        attributes, "_fill_weights", lambda v: ((v >= 0) & (v < 1)).all(), "weights in [0, 1)"
    )
    gram = components.T.astype(np.float64) @ components
    fitted_value(
        attributes,
        "_fill_components",
        lambda v: np.abs(gram - np.eye(rank)).max() <= 1e-3,
        "orthonormal components",
    )
    for name in ("_missing_features", "_empty_features"):
        fitted_array(attributes, name, (None,), dtypes=("int64",))
        fitted_value(
            attributes,
            name,
            lambda v: ((v >= 0) & (v < n_features)).all() and (np.diff(v) > 0).all(),
            f"increasing column indices below {n_features}",
        )
    missing = attributes["_missing_features"]
    fitted_value(
        attributes,
        "_empty_features",
        lambda v: np.isin(v, missing).all(),
        "columns among the _missing_features",
    )
