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
# factors (1 for a typical sample) in units of at least 1e-3.
RESIDUAL_FLOOR = 1e-6
DENSITY_FLOOR = 1e-3


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

    ``terms`` holds a row's reconstruction error and the local outlier
    factor of its code; ``data_scale`` is the data's root mean square
    deviation, in whose square the errors' floor is measured.
    """
    residual = robust_location_scale(terms[:, 0], RESIDUAL_FLOOR * data_scale**2)
    density = robust_location_scale(terms[:, 1], DENSITY_FLOOR)
    return np.array([residual[0], density[0]]), np.array([residual[1], density[1]])


def offset(scores, contamination):
    """The threshold on the training samples' scores below which samples are outliers."""
    if contamination == "auto":
        return auto_offset(scores)
    return float(np.percentile(scores, 100.0 * contamination))


def feature_scale(X):
    """The detector's divisor of each feature: ones for data in [0, 1].

    Elsewhere each feature's standard deviation, so that features measured
    in units orders of magnitude apart weigh alike in the reconstruction
    error, as they do after a StandardScaler; a constant feature keeps 1.
    Data in [0, 1] (images, say) keep their common scale, where a
    near-constant feature (a border pixel) would be blown up.
    """
    if in_unit_interval(X):
        return np.ones(X.shape[1])
    if sp.issparse(X):
        _, variance = mean_variance_axis(X.tocsr().astype(np.float64), axis=0)
        std = np.sqrt(variance)
    else:
        peak = np.abs(X).max(axis=0)
        peak = np.where(peak > 0, peak, 1.0)
        std = np.std(X / peak, axis=0, dtype=np.float64) * peak
    floor = 1e-8 * float(std.max(initial=0.0))
    return np.where(std > floor, std, 1.0)


def check_detector_state(attributes):
    """Check the detector's own fitted attributes read from a file.

    Raises a ValueError naming the first that is not one the detector writes.
    """
    require_attributes(
        attributes,
        ("offset_", "n_neighbors_", "_train_codes", "_score_location", "_score_scale"),
    )
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
