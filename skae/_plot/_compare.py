"""Held-out reconstruction error, and how two estimators' errors compare.

The displays and ``skae compare`` measure estimators the same way: fit a
clone with a code of a given width, reconstruct held-out samples through
``transform`` and ``inverse_transform``, and take the squared error of each
sample. :func:`compare_errors` then says whether one estimator reconstructs
better than another, or whether the difference is within the noise of the
measurement.
"""

import math
import time

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import check_array, check_is_fitted

# A difference in mean error smaller than this fraction of the baseline's is
# a tie: different random states of the same autoencoder differ by about as
# much.
TIE_RELATIVE_TOLERANCE = 0.005
# A difference smaller than this many standard errors of the mean difference
# over the test samples is a tie (about a 95% interval).
TIE_STANDARD_ERRORS = 2.0
# Errors below this fraction of the data's variance are floating-point
# round-off: both reconstructions are exact.
ROUND_OFF = 1e-10


def reconstruct(estimator, X):
    """``estimator``'s reconstruction of X, through its codes."""
    for method in ("transform", "inverse_transform"):
        if not hasattr(estimator, method):
            raise TypeError(
                f"{estimator.__class__.__name__} has no {method} method; a "
                "reconstruction needs both transform and inverse_transform."
            )
    check_is_fitted(estimator)
    return np.asarray(estimator.inverse_transform(estimator.transform(X)))


def dimension_parameter(estimator):
    """The name of the parameter that sets an estimator's code width."""
    params = estimator.get_params(deep=False)
    for name in ("encoding_dim", "n_components"):
        if name in params:
            return name
    raise ValueError(
        f"{estimator.__class__.__name__} has neither an encoding_dim nor an "
        "n_components parameter to vary."
    )


def sample_errors(estimator, X):
    """Mean squared reconstruction error of each sample of X, as float64."""
    reconstruction = reconstruct(estimator, X).astype(np.float64)
    return np.mean((reconstruction - check_array(X, dtype=np.float64)) ** 2, axis=1)


def fit_at_dimension(estimator, dim, X_train, X_test):
    """Fit a clone of ``estimator`` with a code of width ``dim`` on X_train.

    Returns
    -------
    fitted : estimator
        The fitted clone.

    errors : ndarray of shape (n_test_samples,)
        Mean squared reconstruction error of each sample of X_test.

    fit_time : float
        Seconds the fit took.
    """
    fitted = clone(estimator).set_params(**{dimension_parameter(estimator): dim})
    start = time.perf_counter()
    fitted.fit(X_train)
    fit_time = time.perf_counter() - start
    return fitted, sample_errors(fitted, X_test), fit_time


def fits_across_dimensions(estimator, dims, X_train, X_test, *, per_dimension=False):
    """Fit ``estimator`` at each width of ``dims``: once, when its codes are ordered.

    Without ``per_dimension``, an estimator with an ``ordered_codes``
    parameter is fitted once at the largest width; if its codes come out
    ordered, its model at each smaller width keeps the first units of the
    code, the others at their training mean. Otherwise a clone is fitted at
    each width, as :func:`fit_at_dimension` does.

    Returns
    -------
    fits : list of (fitted, errors, fit_time)
        One per width of ``dims``, as :func:`fit_at_dimension` gives them;
        ``fit_time`` is None for the widths that cost no fit of their own.
    """
    dims = [int(dim) for dim in dims]
    largest = max(dims)
    if per_dimension or "ordered_codes" not in estimator.get_params(deep=False):
        return [fit_at_dimension(estimator, dim, X_train, X_test) for dim in dims]
    fitted, errors, fit_time = fit_at_dimension(estimator, largest, X_train, X_test)
    ordered = getattr(fitted, "ordered_codes_", False) and fitted.n_components_ == largest
    fits = []
    for dim in dims:
        if dim == largest:
            fits.append((fitted, errors, fit_time))
        elif ordered:
            truncated = fitted._truncated(dim)
            fits.append((truncated, sample_errors(truncated, X_test), None))
        else:
            fits.append(fit_at_dimension(estimator, dim, X_train, X_test))
    return fits


def compare_errors(errors, baseline_errors, *, variance=0.0):
    """The ratio of two mean errors, and whether it is a win, a loss or a tie.

    The errors are paired: both estimators reconstruct the same samples.
    The difference of the means counts only when it is larger than each of
    ``TIE_RELATIVE_TOLERANCE`` times the baseline's mean error,
    ``TIE_STANDARD_ERRORS`` standard errors of the mean difference over the
    samples, and ``ROUND_OFF`` times ``variance``; otherwise it is a tie.

    Parameters
    ----------
    errors, baseline_errors : array-like of shape (n_samples,)
        Squared reconstruction error of each sample, by the estimator and
        by the baseline (PCA).

    variance : float, default=0.0
        Mean variance of the data's features, the scale of round-off.

    Returns
    -------
    ratio : float
        Mean error over the baseline's: below 1 the estimator is better;
        ``inf`` when only the baseline is exact.

    verdict : {"better", "tie", "worse"}
        The comparison, with differences within noise called a tie.
    """
    errors = np.asarray(errors, dtype=np.float64)
    baseline_errors = np.asarray(baseline_errors, dtype=np.float64)
    mean, baseline = float(errors.mean()), float(baseline_errors.mean())
    if baseline > 0:
        ratio = mean / baseline
    else:
        ratio = math.inf if mean > 0 else 1.0
    difference = errors - baseline_errors
    n_samples = difference.shape[0]
    if n_samples > 1:
        standard_error = float(np.std(difference, ddof=1)) / math.sqrt(n_samples)
    else:
        standard_error = math.inf  # one sample says nothing about the spread
    noise = max(
        TIE_RELATIVE_TOLERANCE * baseline,
        TIE_STANDARD_ERRORS * standard_error,
        ROUND_OFF * variance,
    )
    mean_difference = float(difference.mean())
    if abs(mean_difference) <= noise:
        return ratio, "tie"
    return ratio, "better" if mean_difference < 0 else "worse"


def format_ratio(ratio):
    """A ratio as short text: three decimals, or powers of ten when huge."""
    if math.isnan(ratio):
        return "n/a"
    if math.isinf(ratio):
        return "inf"
    if ratio >= 1000:
        return f"{ratio:.1e}"
    return f"{ratio:.3f}"
