"""The nearest completed training rows of a filled row, and their values blended into its fill.

The imputer's fill of a row's missing entries is blended with the mean of
the observed values of the same features among the row's ``n_neighbors``
nearest training rows, the distance measured between completed rows (the
observed entries with the imputer's fill of the missing ones) in X's own
units, as :class:`~sklearn.impute.KNNImputer` measures it. The blend's
weight is chosen on the hidden entries of the held-out copies that choose
the network, a training row never counting among its own neighbours there;
where the fill is the linear model's, on small data, the weight of a blend
chosen there is set on copies whose linear model is fitted again without
their hidden entries (:func:`refit_copy`).
"""

import numpy as np
from sklearn.neighbors import NearestNeighbors

from skae._impute._soft_impute import linear_fill
from skae._nn._state import (
    fitted_array,
    fitted_value,
    is_count,
    is_finite_number,
    require_attributes,
)

# At most this many completed training rows are kept to search: a random
# subset, which bounds the fitted state (KNNImputer keeps them all) and the
# search at transform.
MAX_ROWS = 10_000
# The weights of the neighbours' mean tried on the held-out entries: 0 is
# the network's fill, 1 the neighbours' mean alone.
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# At most this many held-out copies choose the weight.
MAX_CHOICE_ROWS = 10_000
# Where the linear model is the fill and X has at most this many entries
# and features, a blend chosen on the held-out copies takes the weight
# chosen on REFIT_COPIES copies of X whose linear model is fitted again
# without their hidden entries: each costs a fit of the linear model, whose
# normal model's EM grows with the cube of a row's missing entries.
REFIT_MAX_ENTRIES = 2**16
REFIT_MAX_FEATURES = 32
REFIT_COPIES = 3
# Rows searched at a time, bounding the (rows, n_neighbors, n_features)
# gathers of the neighbours' values.
CHUNK_ROWS = 1024


def blend(fill, means, found, weight):
    """``fill`` moved ``weight`` of the way to the neighbours' ``means`` where ``found``."""
    return np.where(found, (1 - weight) * fill + weight * means, fill)


class TrainingNeighbours:
    """The completed training rows, searched for the nearest ones of a completed row.

    Parameters
    ----------
    rows : ndarray of shape (n_rows, n_features)
        Completed training rows, in the scaled units of the linear model:
        observed entries, missing ones filled.

    observed : ndarray of bool, same shape
        Which entries of ``rows`` were observed.

    n_neighbors : int
        Number of neighbours, at most ``n_rows``.

    scale : ndarray of shape (n_features,)
        The features' units: distances are measured between rows times
        ``scale``, in X's own units.
    """

    def __init__(self, rows, observed, n_neighbors, scale):
        self.n_neighbors = n_neighbors
        self.values = np.where(observed, rows, 0.0)
        self.observed = observed
        self.scale = scale.astype(rows.dtype)
        self.search = NearestNeighbors(n_neighbors=n_neighbors).fit(rows * self.scale)

    def means(self, completed, *, exclude=None):
        """The mean observed value of each feature among each completed row's nearest rows.

        Returns ``(means, found)``: ``found`` is False where none of the
        neighbours observed the feature, and ``means`` is 0 there. With
        ``exclude``, the index among the training rows of each row's own
        (-1 for none), a row is never its own neighbour.
        """
        means = np.zeros(completed.shape, dtype=self.values.dtype)
        found = np.zeros(completed.shape, dtype=bool)
        for start in range(0, len(completed), CHUNK_ROWS):
            part = slice(start, start + CHUNK_ROWS)
            rows = completed[part] * self.scale
            indices = self._nearest(rows, None if exclude is None else exclude[part])
            totals = self.values[indices].sum(axis=1)
            counts = self.observed[indices].sum(axis=1)
            found[part] = counts > 0
            means[part] = totals / np.maximum(counts, 1)
        return means, found

    def _nearest(self, rows, exclude):
        k = self.n_neighbors
        if exclude is None:
            return self.search.kneighbors(rows, return_distance=False)
        indices = self.search.kneighbors(rows, k + 1, return_distance=False)
        own = indices == exclude[:, np.newaxis]
        # Drop each row's own index, or its farthest neighbour when it has none.
        drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
        keep = np.arange(k + 1) != drop[:, np.newaxis]
        return indices[keep].reshape(len(indices), k)


def refit_copy(Z, observed, fit, n_neighbors, scale, hidden):
    """A copy of scaled data Z, its ``hidden`` entries filled by a model fitted without them.

    The linear model's held-out fill is optimistic where the model was
    fitted on the entries it restores; ``fit(Z, observed)`` fits one on
    the copy's visible entries only. The copy's rows are completed by that
    model's fill and searched for each other's nearest rows, a row never
    its own neighbour, as transform searches the training rows for a row
    whose missing entries were never seen. Returns the arguments of
    :func:`choose_weight`: ``(fill, means, found, Z, hidden)``.
    """
    visible = observed & ~hidden
    Z_visible = np.where(visible, Z, 0).astype(Z.dtype, copy=False)
    fill = linear_fill(Z_visible, visible, *fit(Z_visible, visible))
    neighbours = TrainingNeighbours(fill, visible, n_neighbors, scale)
    means, found = neighbours.means(fill, exclude=np.arange(len(Z)))
    return fill, means, found, Z, hidden


def choose_weight(fill, means, found, targets, hidden):
    """The weight of :data:`WEIGHTS` whose blend restores the ``hidden`` entries best.

    Returns ``(weight, errors)``, the mean squared errors of each weight on
    the hidden entries; a weight above 0 only where its error is below the
    fill's own.
    """
    errors = []
    for weight in WEIGHTS:
        residual = np.where(hidden, blend(fill, means, found, weight) - targets, 0.0)
        errors.append(float(np.square(residual, dtype=np.float64).sum()))
    errors = np.asarray(errors) / max(int(hidden.sum()), 1)
    return WEIGHTS[int(np.argmin(errors))], errors


# The fitted state of the blend.
NEIGHBOUR_STATE = ("n_neighbors_", "neighbor_weight_", "_neighbor_rows", "_neighbor_observed")


def check_neighbours(attributes):
    """Check the imputer's blend of the nearest training rows read from a file.

    A file written before the blend holds none of its attributes: that
    imputer loads without the blend (a weight of 0), and imputes as it did.
    """
    n_features = attributes["_network_spec"]["n_features"]
    dtype = attributes["_fill_components"].dtype
    if set(NEIGHBOUR_STATE).isdisjoint(attributes):
        attributes.update(
            n_neighbors_=0,
            neighbor_weight_=0.0,
            _neighbor_rows=np.empty((0, n_features), dtype=dtype),
            _neighbor_observed=np.empty((0, n_features), dtype=bool),
        )
    require_attributes(attributes, NEIGHBOUR_STATE)
    rows = fitted_array(attributes, "_neighbor_rows", (None, n_features), dtypes=(dtype.name,))
    fitted_array(attributes, "_neighbor_observed", rows.shape, dtypes=("bool",))
    fitted_value(
        attributes,
        "neighbor_weight_",
        lambda v: is_finite_number(v) and 0 <= v <= max(WEIGHTS) and (v == 0 or len(rows) > 0),
        f"a number from 0 to {max(WEIGHTS)}, 0 without _neighbor_rows",
    )
    if attributes["neighbor_weight_"] > 0:
        fitted_value(
            attributes,
            "n_neighbors_",
            lambda v: is_count(v, 1) and v <= len(rows),
            f"a count from 1 to {len(rows)}, the number of _neighbor_rows",
        )
    else:
        fitted_value(attributes, "n_neighbors_", lambda v: is_count(v, 0), "a count")
