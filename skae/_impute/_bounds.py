"""The bounds of the fill: ``min_value`` and ``max_value``, given or found in the data.

As :class:`~sklearn.impute.IterativeImputer` clips its fill to its
``min_value`` and ``max_value``, the imputer clips each feature's fill to
bounds, given or "auto". "auto" bounds a feature at the smallest (largest)
of its observed values where they pile up there: counts at 0, a pixel's
black or white, a sensor's saturation, the ends of a rating scale. A
continuous feature's extreme is one value among many, and is no bound.
"""

from numbers import Real

import numpy as np
from sklearn.utils import check_array

from skae._impute._soft_impute import by_channel
from skae._nn._state import fitted_value, require_attributes

# "auto" bounds a feature at an extreme of its observed values that at least
# PILE_COUNT of them, and PILE_FRACTION of them, equal.
PILE_COUNT = 2
PILE_FRACTION = 1e-3

# The fitted bounds, in X's units: -inf and inf where a feature has none.
BOUND_STATE = ("_min_value", "_max_value")


def piled_extremes(X, observed, channels=None):
    """The smallest and largest observed value of each feature where its values pile up.

    Returns ``(low, high)``, -inf and inf where a feature's extreme is held
    by fewer than ``PILE_COUNT`` observed values or ``PILE_FRACTION`` of
    them (or where it has none). With ``channels``, the features are the
    pixels of images of that many channels, and a channel's pixels share
    the extremes of all their observed values.
    """
    if channels is not None:
        pixels = X.shape[1] // channels
        low, high = piled_extremes(by_channel(X, channels), by_channel(observed, channels))
        return np.repeat(low, pixels), np.repeat(high, pixels)
    n_observed = observed.sum(axis=0)
    needed = np.maximum(PILE_COUNT, PILE_FRACTION * n_observed)
    bounds = []
    for extreme, none in ((np.min, np.inf), (np.max, -np.inf)):
        value = extreme(np.where(observed, X, none), axis=0, initial=none).astype(np.float64)
        piled = (observed & (X == value)).sum(axis=0) >= needed
        bounds.append(np.where(piled & observed.any(axis=0), value, -none))
    return tuple(bounds)


def _given(value, name, n_features):
    """A bound given as a number or an array-like of one number per feature."""
    if value is None:
        value = np.inf if name == "max_value" else -np.inf
    try:
        if isinstance(value, Real) or np.ndim(value) == 0:
            value = np.full(n_features, value, dtype=np.float64)
        value = check_array(
            value,
            ensure_2d=False,
            ensure_all_finite=False,
            dtype=np.float64,
            copy=True,
            input_name=name,
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} should hold numbers, one per feature: {error}") from None
    if value.shape != (n_features,):
        raise ValueError(
            f"{name} should be a number or an array-like of shape ({n_features},), one bound "
            f"per feature; got shape {value.shape}."
        )
    if np.isnan(value).any():
        features = np.flatnonzero(np.isnan(value)).tolist()[:10]
        none = "-np.inf" if name == "min_value" else "np.inf"
        raise ValueError(
            f"{name} holds NaN or None for features {features}; a feature without a "
            f"bound takes {none}."
        )
    beyond = np.isposinf(value) if name == "min_value" else np.isneginf(value)
    if beyond.any():
        raise ValueError(
            f"{name} is {'inf' if name == 'min_value' else '-inf'} for features "
            f"{np.flatnonzero(beyond).tolist()[:10]}, which leaves no value to fill with."
        )
    return value


def fill_bounds(X, observed, min_value, max_value, channels=None):
    """The bounds of each feature's fill, ``(low, high)`` in X's units.

    Each bound is given (None for none) or "auto", :func:`piled_extremes`.
    Given bounds must leave room between them; an "auto" bound never
    crosses the other one. A feature with no observed value has no "auto"
    bound.
    """
    n_features = X.shape[1]
    if _is_auto(min_value) or _is_auto(max_value):
        auto = piled_extremes(X, observed, channels)
    low = auto[0] if _is_auto(min_value) else _given(min_value, "min_value", n_features)
    high = auto[1] if _is_auto(max_value) else _given(max_value, "max_value", n_features)
    if not (_is_auto(min_value) or _is_auto(max_value)) and (low >= high).any():
        features = np.flatnonzero(low >= high)
        raise ValueError(
            f"min_value must be below max_value for every feature; features "
            f"{features.tolist()[:10]} have min_value >= max_value."
        )
    if _is_auto(min_value):
        low = np.minimum(low, high)
    if _is_auto(max_value):
        high = np.maximum(high, low)
    return low, high


def _is_auto(value):
    return isinstance(value, str) and value == "auto"


def check_bounds(attributes):
    """Check the imputer's fill bounds read from a file.

    A file written before the bounds holds neither: that imputer loads
    unbounded, and imputes as it did.
    """
    n_features = attributes["_network_spec"]["n_features"]
    if set(BOUND_STATE).isdisjoint(attributes):
        attributes.update(
            _min_value=np.full(n_features, -np.inf), _max_value=np.full(n_features, np.inf)
        )
    require_attributes(attributes, BOUND_STATE)

    def valid(value):
        return (
            isinstance(value, np.ndarray)
            and value.dtype == np.float64
            and value.shape == (n_features,)
            and not np.isnan(value).any()
        )

    description = f"a float64 array of shape ({n_features},) without NaN"
    low = fitted_value(
        attributes,
        "_min_value",
        lambda v: valid(v) and not np.isposinf(v).any(),
        f"{description} or inf",
    )
    fitted_value(
        attributes,
        "_max_value",
        lambda v: valid(v) and not np.isneginf(v).any() and (v >= low).all(),
        f"{description} or -inf, at least _min_value",
    )
