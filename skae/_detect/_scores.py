"""The outlier detector's choices and checks: its code width, feature scales, offset and state."""

import math

import numpy as np
import scipy.sparse as sp
from sklearn.utils.sparsefuncs import mean_variance_axis

from skae._choices import in_unit_interval
from skae._nn._state import (
    fitted_array,
    fitted_value,
    is_count,
    is_finite_number,
    require_attributes,
)

# The modified z-score beyond which contamination="auto" flags a sample
# (Iglewicz and Hoaglin, 1993).
AUTO_CUTOFF = 3.5
# The median absolute deviation of a normal distribution times this is its
# standard deviation.
MAD_TO_STD = 1.4826
# Spreads of the score's terms below these are rounding: reconstruction
# errors are compared in units of at least 1e-6 times the data's mean
# variance (an RMS error of 0.1 % of the data's spread), local outlier
# factors (1 for a typical sample) in units of at least 1e-3, distances
# between codes in units of at least 1e-3 times the data's spread.
RESIDUAL_FLOOR = 1e-6
DENSITY_FLOOR = 1e-3
DISTANCE_FLOOR = 1e-3
# A feature's robust spread is at least this fraction of its standard
# deviation: a feature whose values are mostly equal (a flag, a count, an
# almost blank pixel) is not blown up by a tiny median absolute deviation.
MIN_SPREAD_TO_STD = 0.1


def default_encoding_dim(n_samples, n_features):
    """The "auto" code width.

    At most 32 units, at least ``sqrt(n_features)`` dimensions left out of
    the code, and at least 10 training samples per unit.
    """
    return max(1, min(32, n_features - math.ceil(math.sqrt(n_features)), n_samples // 10))


def robust_location_scale(values, floor):
    """Median and normal-consistent median absolute deviation of ``values``.

    When more than half the values are equal, the deviation falls back to
    the standard deviation. It is at least ``floor``, below which
    differences are rounding, and 1 when all values and ``floor`` are 0.
    """
    location = float(np.median(values))
    scale = MAD_TO_STD * float(np.median(np.abs(values - location)))
    if not scale > 0:
        scale = float(np.std(values))
    scale = max(scale, floor)
    return location, scale if scale > 0 else 1.0


def auto_offset(scores):
    """The threshold of contamination="auto" on the training samples' scores.

    The median minus ``AUTO_CUTOFF`` robust standard deviations of the
    scores below it: the scores are skewed, with a long tail of low scores,
    and the spread of that side is the yardstick for it.
    """
    location = float(np.median(scores))
    deviations = location - scores[scores <= location]
    scale = MAD_TO_STD * float(np.median(deviations))
    if not scale > 0:
        scale = float(np.sqrt(np.mean(deviations**2)))
    return location - AUTO_CUTOFF * scale


def terms_location_scale(terms, data_scale):
    """Robust location and scale of each of the scores' terms over the training rows.

    ``terms`` holds a row's reconstruction error, the local outlier factor
    of its code and the code's mean distance to its nearest training codes;
    ``data_scale`` is the data's root mean square deviation, in which the
    floors of the errors (its square) and of the distances are measured.
    """
    floors = (RESIDUAL_FLOOR * data_scale**2, DENSITY_FLOOR, DISTANCE_FLOOR * data_scale)
    pairs = [
        robust_location_scale(column, floor) for column, floor in zip(terms.T, floors, strict=True)
    ]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def offset(scores, contamination):
    """The threshold on the training samples' scores below which samples are outliers."""
    if contamination == "auto":
        return auto_offset(scores)
    return float(np.percentile(scores, 100.0 * contamination))


def feature_scale(X):
    """The detector's divisor of each feature: ones for data in [0, 1].

    Elsewhere each feature's robust spread, so that features measured in
    units orders of magnitude apart weigh alike in the scores, as they do
    after a :class:`~sklearn.preprocessing.RobustScaler`: the
    normal-consistent median absolute deviation (1.4826 times the median
    distance to the median), which the outliers being sought do not
    inflate; the standard deviation where more than half a feature's values
    are equal (a flag, a count) and for sparse X; 1 for a constant
    feature. Data in [0, 1] (images, say) keep their common scale, where a
    near-constant feature (a border pixel) would be blown up.
    """
    if in_unit_interval(X):
        return np.ones(X.shape[1])
    if sp.issparse(X):
        _, variance = mean_variance_axis(X.tocsr().astype(np.float64), axis=0)
        spread = np.sqrt(variance)
    else:
        # Divided by each feature's peak first, so that values near the
        # float limits neither overflow nor underflow.
        peak = np.abs(X).max(axis=0).astype(np.float64)
        peak = np.where(peak > 0, peak, 1.0)
        Z = X / peak
        deviations = np.abs(Z - np.median(Z, axis=0))
        spread = MAD_TO_STD * np.median(deviations, axis=0)
        std = np.std(Z, axis=0, dtype=np.float64)
        spread = np.where(spread > 0, np.maximum(spread, MIN_SPREAD_TO_STD * std), std) * peak
    floor = 1e-8 * float(spread.max(initial=0.0))
    return np.where(spread > floor, spread, 1.0)


# The detector's own fitted attributes that every file holds (files from
# before the distance term get its two, see check_detector_state).
REQUIRED_STATE = (
    "offset_",
    "n_neighbors_",
    "_train_codes",
    "_score_location",
    "_score_scale",
    "_distance_location",
    "_distance_scale",
)


def check_detector_state(attributes):
    """Check the detector's own fitted attributes read from a file.

    Raises a ValueError naming the first that is not one the detector writes.
    A file written before the distance term lacks both its attributes: that
    detector loads without the term (a scale of infinity), and scores as it
    did.
    """
    older = {"_distance_location", "_distance_scale"}.isdisjoint(attributes)
    if older:
        attributes.update(_distance_location=0.0, _distance_scale=math.inf)
    require_attributes(attributes, REQUIRED_STATE)
    if "_feature_scale" in attributes:
        n_features = attributes["_network_spec"]["n_features"]
        fitted_array(attributes, "_feature_scale", (n_features,), dtypes=("float64",))
        fitted_value(attributes, "_feature_scale", lambda v: (v > 0).all(), "positive")
    fitted_value(attributes, "offset_", is_finite_number, "a finite number")
    k = attributes["_network_spec"]["encoding_dim"]
    codes = fitted_array(attributes, "_train_codes", (None, k), dtypes=("float64",))
    n_max = len(codes) - 1
    fitted_value(
        attributes,
        "n_neighbors_",
        lambda v: is_count(v, 1) and v <= n_max,
        f"a count from 1 to {n_max}",
    )
    fitted_array(attributes, "_score_location", (2,), dtypes=("float64",))
    fitted_array(attributes, "_score_scale", (2,), dtypes=("float64",))
    fitted_value(attributes, "_score_scale", lambda v: (v > 0).all(), "positive spreads")
    if older:
        return
    fitted_value(attributes, "_distance_location", is_finite_number, "a finite number")
    fitted_value(
        attributes,
        "_distance_scale",
        lambda v: is_finite_number(v) and v > 0,
        "a finite positive number",
    )
