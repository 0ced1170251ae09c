"""The imputer's fit path: a linear model of the observed entries, then a network started at it.

:class:`LinearStartMixin` gives :class:`~skae.AutoencoderImputer` its hook
into the base's fit path, ``_prepare``, and the linear model's fill, which
``transform`` applies before the network's correction. The linear model is
held as the imputer's fitted attributes: the columns' units
(``_column_location``, ``_column_scale``), the model (``_fill_mean``,
``_fill_components``, ``_fill_weights``) and the features with missing
entries (``_missing_features``, ``_empty_features``). Once the network is
trained, the blend of the nearest training rows' values into its fill is
chosen on the held-out copies that chose the network (``n_neighbors_``,
``neighbor_weight_``, and the completed rows searched, ``_neighbor_rows``
and ``_neighbor_observed``).
"""

import functools

import numpy as np
import torch

from skae._choices import image_shape, resolve_early_stopping
from skae._fitted import Preparation
from skae._impute._bounds import fill_bounds
from skae._impute._copies import (
    TrainingCopies,
    fit_linear_model,
    start_at_model,
)
from skae._impute._missing import observed_entries, restore, scaled
from skae._impute._neighbours import (
    MAX_CHOICE_ROWS,
    MAX_ROWS,
    REFIT_COPIES,
    REFIT_MAX_ENTRIES,
    REFIT_MAX_FEATURES,
    TrainingNeighbours,
    blend,
    choose_weight,
    refit_copy,
)
from skae._impute._soft_impute import column_location_scale, linear_fill
from skae._nn._batches import MaskedPairs
from skae._nn._threads import torch_threads


class LinearStartMixin:
    """The linear model of the observed entries, fitted first; the network started at it."""

    def _observed(self, X):
        return observed_entries(X, self.missing_values)

    def _scaled(self, X, observed, dtype=None):
        """X in the scaled units of the linear model, zeros at missing entries."""
        dtype = self._fill_components.dtype if dtype is None else dtype
        return scaled(X, observed, self._column_location, self._column_scale, dtype)

    def _linear_fill(self, Z, observed):
        return linear_fill(Z, observed, self._fill_mean, self._fill_components, self._fill_weights)

    def _prepare(self, X, generator, *, incremental):
        """The linear model, fitted first; the network trained on its fills, started at it.

        The linear model's attributes are set here, as the network's start
        needs them; a fit that fails leaves the estimator as it was.
        """
        # Checked before the linear model's fit, which takes a while.
        shape = image_shape(self.image_shape, X.shape[1])
        observed = self._observed(X)
        if not observed.any():
            raise ValueError(
                f"X has no observed entry: every entry is missing_values="
                f"{self.missing_values!r}. {type(self).__name__} needs observed values "
                "to learn from."
            )
        channels = None if shape is None else shape[0]
        low, high = fill_bounds(X, observed, self.min_value, self.max_value, channels)
        seed = int(torch.randint(2**62, (1,), generator=generator))
        rng = np.random.default_rng(seed)
        self._missing_features = np.flatnonzero(~observed.all(axis=0))
        self._empty_features = np.flatnonzero(~observed.any(axis=0))
        # An empty feature is filled with 0, whatever its bounds.
        low[self._empty_features], high[self._empty_features] = -np.inf, np.inf
        self._min_value, self._max_value = low, high
        self._column_location, self._column_scale = column_location_scale(
            X, observed, channels=channels
        )
        dtype = np.float32 if X.dtype == np.float32 or X.size > 2**22 else np.float64
        Z = self._scaled(X, observed, dtype)
        max_rank = None if self.encoding_dim == "auto" else self.encoding_dim
        model = fit_linear_model(Z, observed, rng, max_rank=max_rank)
        self._fill_mean, self._fill_components, self._fill_weights = model
        copies = TrainingCopies(Z, observed, model, self.mask_fraction, rng)
        rows = np.arange(X.shape[0])
        # Training may worsen the linear model it starts at: "auto" checks
        # it on held-out rows whatever the network.
        early_stopping = resolve_early_stopping(
            self.early_stopping, True, self.validation_fraction, X.shape[0]
        )
        if early_stopping:
            rows, val_rows = self._split(rows, generator)
        X_val = copies.pairs(val_rows) if early_stopping else None
        # What chooses the neighbours' blend once the network is kept.
        self._held_out = (Z, observed, copies, val_rows if early_stopping else None, X_val, rng)
        start = functools.partial(self._start, generator=generator)
        return Preparation(copies.pairs(rows, fresh=True), X_val, start)

    def _keep(self, module, result, run, generator, *, first_call):
        """Keep the trained network, without the optimizer's state; then choose the blend.

        The imputer never resumes training, and its optimizer held the
        perceptrons' parameters only, the linear path staying as it was.
        """
        result.optimizer_state = None
        Z, observed, copies, val_rows, X_val, rng = vars(self).pop("_held_out")
        super()._keep(module, result, run, generator, first_call=first_call)
        # Whether the held-out check kept the linear model, fitted on every row.
        linear = val_rows is not None and result.best_epoch == 0
        if linear:
            val_rows = X_val = None
        self._fit_neighbours(Z, observed, copies, val_rows, X_val, rng, linear=linear)
        return self

    # The nearest training rows' blend

    def _network_fill(self, Z, observed):
        """Z with its missing entries filled by the linear model and the network."""
        filled = self._linear_fill(Z, observed)
        with torch_threads(self._work(filled)):
            return np.where(observed, Z, restore(self.module_, filled))

    def _fit_neighbours(self, Z, observed, copies, val_rows, X_val, rng, *, linear):
        """Choose the weight of the nearest training rows' values on held-out entries.

        The rows searched are the training rows completed by the network's
        fill, at most ``MAX_ROWS`` of them. The weight is chosen on the
        hidden entries of the validation copies, or on copies of all the
        training rows drawn anew (without validation copies); a row's own
        completed row, which holds its hidden entries, is never among its
        neighbours. Where the fill is the ``linear`` model's, fitted on
        every entry, and X is small, a blend chosen there is kept with the
        weight chosen on copies of X with a further ``mask_fraction`` of
        its entries hidden and the linear model fitted again without them,
        as the missing entries were never seen (:func:`refit_copy`).
        """
        n_samples, n_features = Z.shape
        stored = np.arange(n_samples)
        if n_samples > MAX_ROWS:
            stored = np.sort(rng.choice(n_samples, MAX_ROWS, replace=False))
        self.n_neighbors_ = min(self.n_neighbors, len(stored) - 1)
        self.neighbor_weight_ = 0.0
        self._neighbor_rows = np.empty((0, n_features), dtype=Z.dtype)
        self._neighbor_observed = np.empty((0, n_features), dtype=bool)
        self.__dict__.pop("_training_neighbours", None)
        if self.n_neighbors_ < 1:
            return
        rows = self._network_fill(Z[stored], observed[stored])
        neighbours = TrainingNeighbours(
            rows, observed[stored], self.n_neighbors_, self._column_scale
        )
        weight = self._held_out_weight(neighbours, stored, observed, copies, val_rows, X_val, rng)
        small = Z.size <= REFIT_MAX_ENTRIES and Z.shape[1] <= REFIT_MAX_FEATURES
        if weight > 0 and linear and small:
            # The linear model's fill of entries it was fitted on is
            # optimistic, and the weight chosen on them too low; copies whose
            # model never saw their hidden entries, fitted on fewer entries,
            # lean the other way. The blend is kept where both find it
            # restores hidden entries better, with the refitted copies' weight.
            max_rank = None if self.encoding_dim == "auto" else self.encoding_dim
            refits = [
                refit_copy(
                    Z,
                    observed,
                    functools.partial(fit_linear_model, rng=rng, max_rank=max_rank),
                    self.n_neighbors_,
                    self._column_scale,
                    observed & (rng.random(observed.shape) < copies.mask_fraction),
                )
                for _ in range(REFIT_COPIES)
            ]
            parts = zip(*refits, strict=True)
            weight, _ = choose_weight(*(np.concatenate(part) for part in parts))
        if weight > 0:
            self.neighbor_weight_ = weight
            self._neighbor_rows, self._neighbor_observed = rows, observed[stored]
            self._training_neighbours = neighbours

    def _held_out_weight(self, neighbours, stored, observed, copies, val_rows, X_val, rng):
        """The weight chosen on held-out copies restored by the network."""
        n_samples = observed.shape[0]
        if X_val is None:
            # About MAX_CHOICE_ROWS copies, of every row where there are fewer.
            val_rows = np.arange(n_samples)
            if n_samples > MAX_CHOICE_ROWS:
                val_rows = np.sort(rng.choice(n_samples, MAX_CHOICE_ROWS, replace=False))
            n_copies = min(copies.n_copies, max(MAX_CHOICE_ROWS // len(val_rows), 1))
            X_val = copies.pairs(val_rows, n_copies=n_copies)
        # The copies' rows: each copy of the rows in turn.
        choice = np.arange(X_val.shape[0])
        if len(choice) > MAX_CHOICE_ROWS:
            choice = np.sort(rng.choice(len(choice), MAX_CHOICE_ROWS, replace=False))
        row_of = val_rows[choice % len(val_rows)]
        inputs, targets, hidden = X_val.inputs[choice], X_val.targets[choice], X_val.mask[choice]
        visible = observed[row_of] & ~hidden
        with torch_threads(self._work(inputs)):
            fill = np.where(visible, targets, restore(self.module_, inputs))
        position = np.full(n_samples, -1)
        position[stored] = np.arange(len(stored))
        means, found = neighbours.means(fill, exclude=position[row_of])
        weight, _ = choose_weight(fill, means, found, targets, hidden)
        return weight

    def _neighbours(self):
        """The completed training rows' search, rebuilt from the rows when needed."""
        neighbours = self.__dict__.get("_training_neighbours")
        if neighbours is None:
            neighbours = TrainingNeighbours(
                self._neighbor_rows,
                self._neighbor_observed,
                self.n_neighbors_,
                self._column_scale,
            )
            self._training_neighbours = neighbours
        return neighbours

    def _blend_neighbours(self, filled, observed):
        """The missing entries of ``filled`` blended with the nearest training rows' values."""
        if not self.neighbor_weight_ > 0:
            return filled
        means, found = self._neighbours().means(filled)
        found &= ~observed
        return blend(filled, means.astype(filled.dtype), found, self.neighbor_weight_)

    def __getstate__(self):
        state = super().__getstate__()
        # The search is rebuilt from the rows: a pickle holds its arrays once.
        state.pop("_training_neighbours", None)
        return state

    def _start(self, X, generator):
        """The network for training pairs X, or data X, started at the linear model."""
        if isinstance(X, MaskedPairs):
            sample = X.inputs[:2000]
        else:
            X = X[:2000]
            observed = self._observed(X)
            sample = self._linear_fill(self._scaled(X, observed), observed)
        model = (self._fill_mean, self._fill_components, self._fill_weights)
        network = {
            "hidden_layer_sizes": list(self._hidden_layer_sizes(None)),
            "activation": self.activation,
            "image_shape": image_shape(self.image_shape, self._fill_components.shape[0]),
        }
        return start_at_model(model, network, sample, generator)
