"""A multivariate normal model of data with missing entries, fitted by EM.

:func:`gaussian_model` estimates the mean and covariance of the rows from
their observed entries by expectation-maximisation (Dempster, Laird and
Rubin, 1977; Little and Rubin, 2019, chapter 11), with a ridge on the
covariance chosen on held-out observed entries. A row's missing entries are
then best filled by their conditional mean given its observed entries. The
model is returned in the form of :func:`skae._impute._soft_impute.linear_fill`,
whose fixed point is that conditional mean, so that it can stand in for the
low-rank model as the linear path of the imputer's network.
"""

import numpy as np
import torch

# Ridges added to the covariance, in units of the scaled features' variance,
# strongest first.
RIDGES = (0.3, 0.1, 0.03, 0.01, 0.003)
# EM stops when the covariance changes by less than TOL (relative, in the
# Frobenius norm) in an accelerated cycle of three steps, or after about
# MAX_ITER steps.
TOL = 1e-3
MAX_ITER = 100
# The fit uses a random subset of the rows when an EM step would otherwise
# take more than about this many floating-point operations (each row costs
# the cube of its number of missing entries).
MAX_STEP_WORK = 2**28
# The longest SQUAREM extrapolation, in EM steps.
MAX_EXTRAPOLATION = 1e3


def _missing_groups(missing):
    """Rows grouped by their number of missing entries, with those entries' columns."""
    counts = missing.sum(axis=1)
    # A stable sort puts each row's missing columns first, in order.
    columns = np.argsort(~missing, axis=1, kind="stable")
    groups = []
    for count in np.unique(counts[counts > 0]):
        rows = np.flatnonzero(counts == count)
        groups.append((torch.from_numpy(rows), torch.from_numpy(columns[rows, :count])))
    return groups


def _conditional(Y, groups, precision, *, covariance):
    """Conditional means of the missing entries of centred rows, given the others.

    ``Y`` holds zeros at missing entries. For a row with missing columns
    ``M``, the conditional mean of ``y_M`` solves ``K_MM y_M = -(K y)_M``
    and its conditional covariance is ``inv(K_MM)``, ``K`` the precision
    matrix. Returns the completed rows and, with ``covariance``, the sum
    over rows of the conditional covariances (zero outside ``M x M``).
    """
    n_features = Y.shape[1]
    completed = Y.clone()
    KY = Y @ precision
    total = torch.zeros(n_features * n_features, dtype=Y.dtype)
    for rows, columns in groups:
        block = precision[columns[:, :, None], columns[:, None, :]]
        factor = torch.linalg.cholesky(block)
        rhs = -torch.gather(KY[rows], 1, columns)
        completed[rows[:, None], columns] = torch.cholesky_solve(rhs[:, :, None], factor)[..., 0]
        if covariance:
            flat = columns[:, :, None] * n_features + columns[:, None, :]
            total.index_add_(0, flat.reshape(-1), torch.cholesky_inverse(factor).reshape(-1))
    return completed, total.reshape(n_features, n_features)


def _start(Z, observed):
    """Mean and covariance of the mean-filled data, with each column's own variance.

    Returned stacked, the mean on top.
    """
    n_observed = observed.sum(dim=0).clamp(min=1)
    mean = Z.sum(dim=0) / n_observed
    Y = torch.where(observed, Z - mean, 0.0)
    covariance = Y.T @ Y / Z.shape[0]
    variance = Y.square().sum(dim=0) / n_observed
    covariance += torch.diag(variance - covariance.diagonal())
    return torch.cat([mean[None], covariance])


def _mean_precision(theta, ridge):
    """The mean of ``theta`` and the inverse of its covariance plus ``ridge``."""
    mean, covariance = theta[0], theta[1:]
    eye = torch.eye(covariance.shape[0], dtype=covariance.dtype)
    return mean, torch.linalg.inv(covariance + ridge * eye)


def _em_step(Z, observed, groups, ridge, theta):
    """One EM iteration on ``theta``, the mean stacked on the covariance."""
    n_samples = Z.shape[0]
    mean, precision = _mean_precision(theta, ridge)
    Y = torch.where(observed, Z - mean, 0.0)
    completed, conditional = _conditional(Y, groups, precision, covariance=True)
    completed += mean
    mean = completed.mean(dim=0)
    completed -= mean
    return torch.cat([mean[None], (completed.T @ completed + conditional) / n_samples])


def _em(Z, observed, groups, ridge, theta):
    """EM for ``theta``, the mean stacked on the covariance, accelerated by SQUAREM.

    Each cycle takes two EM steps, extrapolates along them (Varadhan and
    Roland, 2008) and takes one EM step from there; where the extrapolated
    covariance plus the ridge is not positive definite, the cycle ends at
    the second EM step instead. It stops when the covariance changes by less
    than ``TOL`` in a cycle, or after about ``MAX_ITER`` EM steps.
    """
    eye = torch.eye(Z.shape[1], dtype=Z.dtype)
    for _ in range(MAX_ITER // 3):
        first = _em_step(Z, observed, groups, ridge, theta)
        second = _em_step(Z, observed, groups, ridge, first)
        r, v = first - theta, second - 2 * first + theta
        # The step length, at least one plain EM step's and at most
        # MAX_EXTRAPOLATION's: where the two steps barely curve (two rows, an
        # EM already converged) the ratio is huge and its square overflows.
        ratio = float(r.norm() / v.norm().clamp(min=1e-300))
        step = -min(max(ratio, 1.0), MAX_EXTRAPOLATION)
        jump = theta - 2 * step * r + step**2 * v
        if (
            bool(torch.isfinite(jump).all())
            and torch.linalg.cholesky_ex(jump[1:] + ridge * eye).info == 0
        ):
            new = _em_step(Z, observed, groups, ridge, jump)
        else:
            new = second
        change = float((new[1:] - theta[1:]).norm() / new[1:].norm().clamp(min=1e-300))
        theta = new
        if change < TOL:
            break
    return theta


def _fill_error(Z, observed, groups, held_out, ridge, theta):
    """Mean squared error of the conditional means of the held-out entries.

    ``groups`` are the rows of Z grouped by the entries ``observed`` lacks.
    """
    mean, precision = _mean_precision(theta, ridge)
    Y = torch.where(observed, Z - mean, 0.0)
    completed, _ = _conditional(Y, groups, precision, covariance=False)
    return float((completed + mean - Z)[held_out].square().mean())


@torch.no_grad()
def gaussian_model(Z, observed, held_out, *, rng):
    """A multivariate normal model of the rows of Z, from their observed entries.

    The ridge added to the covariance is chosen among ``RIDGES`` by the
    error of the conditional means of the ``held_out`` entries, given the
    other observed entries, along a path of ridges from the strongest, each
    fit started from the previous one; the path stops once the error grows.
    The model is then refitted on every observed entry. Where an EM step
    over all rows would cost more than ``MAX_STEP_WORK``, both fits use a
    random subset of the rows that keeps within it.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Data, scaled column by column, zeros at missing entries.

    observed : ndarray of bool, same shape
        Which entries are observed.

    held_out : ndarray of bool, same shape
        Observed entries held out to choose the ridge.

    rng : numpy.random.Generator
        Draws the subset of rows, where one is needed.

    Returns
    -------
    model : tuple of ndarray
        ``(mean, components, weights)`` as :func:`~skae._impute._soft_impute.linear_fill`
        takes them: with ``K`` the precision matrix and ``c`` its largest
        eigenvalue, ``components @ diag(weights) @ components.T`` is
        ``I - K / c``, whose fixed point on a row's missing entries is their
        conditional mean. In Z's dtype.

    error : float
        Mean squared error on the held-out entries of the chosen ridge; NaN
        when there are none to hold out.
    """
    dtype = Z.dtype
    work = float(np.sum((~observed).sum(axis=1).astype(np.float64) ** 3))
    if work > MAX_STEP_WORK:
        rows = np.sort(rng.permutation(Z.shape[0])[: int(Z.shape[0] * MAX_STEP_WORK / work) + 1])
        Z, observed, held_out = Z[rows], observed[rows], held_out[rows]
    Z = torch.from_numpy(np.asarray(Z, dtype=np.float64))
    observed = torch.from_numpy(observed)
    held_out = torch.from_numpy(held_out)
    kept = observed & ~held_out
    ridge, error = RIDGES[len(RIDGES) // 2], float("nan")
    start = _start(Z, observed)
    if held_out.any() and kept.any():
        groups = _missing_groups((~kept).numpy())
        fits, errors = [_start(Z, kept)], []
        for candidate in RIDGES:
            fits.append(_em(Z, kept, groups, candidate, fits[-1]))
            errors.append(_fill_error(Z, kept, groups, held_out, candidate, fits[-1]))
            if len(errors) > 1 and errors[-1] > errors[-2]:
                break
        choice = int(np.argmin(errors))
        ridge, error, start = RIDGES[choice], errors[choice], fits[choice + 1]
    groups = _missing_groups((~observed).numpy())
    theta = _em(Z, observed, groups, ridge, start)
    mean, precision = _mean_precision(theta, ridge)
    eigenvalues, components = torch.linalg.eigh((precision + precision.T) / 2)
    weights = 1.0 - eigenvalues / eigenvalues[-1]
    model = (mean.numpy(), components.numpy(), weights.numpy())
    return tuple(part.astype(dtype) for part in model), error
