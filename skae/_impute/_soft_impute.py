"""Where an imputer's training starts: column scales, soft-impute and its fill.

:func:`column_location_scale` puts each feature on a common scale from its
observed values; :func:`soft_impute` fits a shrunken low-rank model to the
observed entries (Mazumder, Hastie and Tibshirani, 2010), choosing the
shrinkage on held-out observed entries; :func:`linear_fill` fills a row's
missing entries with a linear model's fixed point, this model's or the
normal model's of :mod:`skae._impute._gaussian`. The model becomes the linear path
of the imputer's network, as PCA's solution does for the transformer.
"""

import numpy as np
import torch

from skae._nn._linalg import solve_positive_definite
from skae._nn._threads import torch_threads

# Shrinkages tried, as fractions of the largest singular value, strongest first.
SHRINKAGES = (0.2, 0.1, 0.05, 0.03, 0.02, 0.01)
# The shorter path for data of more than LARGE entries.
SHRINKAGES_LARGE = (0.05, 0.03, 0.02)
LARGE = 2**22
# Above this rank, the singular vectors come from warm-started subspace iterations.
MAX_RANK = 128
# Up to this many features, a row's fill is solved exactly; beyond, by
# conjugate gradients to a relative residual of CG_TOL.
EXACT_FILL_FEATURES = 256
CG_TOL = 1e-4
CG_MAX_ITER = 200


def by_channel(A, channels):
    """Rows of raveled images as one column per channel, each pixel a row of it."""
    n_samples, n_features = A.shape
    pixels = n_features // channels
    return A.reshape(n_samples, channels, pixels).transpose(0, 2, 1).reshape(-1, channels)


def column_location_scale(X, observed, channels=None):
    """Mean and spread of each column's observed values.

    The spread is the standard deviation, but at least a tenth of the
    observed range, so that a column almost always at one value (a border
    pixel, say) is not blown up; 1 for a column with one value or none.
    With ``channels``, the columns are the pixels of images of that many
    channels, raveled channel first, and the pixels of a channel share the
    mean and spread of all their observed values, as images are normalised:
    each pixel weighs in the fill's errors as it does in the image's.
    """
    if channels is not None:
        pixels = X.shape[1] // channels
        location, scale = column_location_scale(
            by_channel(X, channels), by_channel(observed, channels)
        )
        return np.repeat(location, pixels), np.repeat(scale, pixels)
    n_observed = np.maximum(observed.sum(axis=0), 1)
    # Each column divided by its largest magnitude, so that neither its
    # squares overflow (values of 1e200) nor underflow (1e-200).
    peak = np.where(observed, np.abs(X), 0.0).max(axis=0, initial=0.0)
    peak = np.where(peak > 0, peak, 1.0)
    Y = np.where(observed, X / peak, 0.0)
    location = Y.sum(axis=0) / n_observed
    deviation = np.where(observed, Y - location, 0.0)
    std = np.sqrt((deviation**2).sum(axis=0) / n_observed)
    high = np.where(observed, Y, -np.inf).max(axis=0, initial=-np.inf)
    low = np.where(observed, Y, np.inf).min(axis=0, initial=np.inf)
    spread = np.where(observed.any(axis=0), high - low, 0.0)
    scale = np.maximum(std, 0.1 * spread)
    return location * peak, np.where(scale > 0, scale * peak, 1.0)


def _leading(C, k, Q):
    """Leading singular triplets of C: exact when Q is None, else one subspace step."""
    if Q is None:
        U, s, Vt = torch.linalg.svd(C, full_matrices=False)
        return U[:, :k], s[:k], Vt[:k].T, None
    Q = torch.linalg.qr(C.T @ (C @ Q)).Q
    U, s, Wt = torch.linalg.svd(C @ Q, full_matrices=False)
    V = Q @ Wt.T
    return U[:, :k], s[:k], V[:, :k], V


def _path(Z, observed, shrinkages, k, Q, *, n_iter, tol, F=None, held_out=None):
    """Soft-impute along ``shrinkages``, each warm-started from the previous."""
    F = torch.where(observed, Z, 0.0) if F is None else F
    missing = ~observed
    errors = []
    for shrinkage in shrinkages:
        for _ in range(n_iter):
            mean = F.mean(dim=0)
            U, s, V, Q = _leading(F - mean, k, Q)
            shrunk = (s - shrinkage).clamp(min=0.0)
            F_new = torch.where(observed, Z, torch.addmm(mean, U * shrunk, V.T))
            change = float((F_new - F)[missing].double().square().sum())
            change /= max(float(F_new[missing].double().square().sum()), 1e-300)
            F = F_new
            if change < tol:
                break
        if held_out is not None:
            errors.append(float((F[held_out] - Z[held_out]).double().square().mean()))
    keep = shrunk > 0
    weights = shrunk[keep] / s[keep]
    return F, Q, errors, (mean.numpy(), V[:, keep].numpy(), weights.numpy())


@torch.no_grad()
def soft_impute(Z, observed, held_out, *, rng):
    """A shrunken low-rank model of the observed entries of Z.

    The shrinkage is chosen among ``SHRINKAGES`` (fractions of the largest
    singular value of the centred observed data) by the error on the
    ``held_out`` entries of a fit to the other observed entries, then the
    model is refitted on all of them. The fill of a row is then its fixed point under
    ``mean + (y - mean) @ P`` with ``P = components @ diag(weights) @
    components.T`` (see :func:`linear_fill`).

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Data, scaled column by column, zeros at missing entries.

    observed : ndarray of bool, same shape
        Which entries are observed.

    held_out : ndarray of bool, same shape
        Observed entries held out to choose the shrinkage.

    rng : numpy.random.Generator
        Draws the start of the subspace iterations, for wide data.

    Returns
    -------
    model : tuple of ndarray
        ``(mean, components, weights)``: the mean of shape (n_features,),
        orthonormal components of shape (n_features, rank), ``rank`` at
        least 1, and shrinkage factors in [0, 1) of shape (rank,).

    error : float
        Mean squared error on the held-out entries at the chosen shrinkage;
        NaN when there are none to hold out.
    """
    n_samples, n_features = Z.shape
    held_out = torch.from_numpy(held_out)
    Z, observed = torch.from_numpy(Z), torch.from_numpy(observed)
    exact = min(n_samples, n_features) <= MAX_RANK
    k = min(n_samples, n_features) if exact else MAX_RANK
    n_iter, n_final, tol = (300, 300, 1e-7) if exact else (8, 15, 1e-5)
    Q = None
    if not exact:
        Q = rng.standard_normal((n_features, min(n_features, k + 10)))
        Q = torch.linalg.qr(torch.from_numpy(Q).to(Z.dtype)).Q
    column_mean = Z.sum(dim=0) / observed.sum(dim=0).clamp(min=1)
    centred = torch.where(observed, Z - column_mean, 0.0)
    largest = float(_leading(centred, 1, Q)[1][0])
    fractions = SHRINKAGES_LARGE if Z.numel() > LARGE else SHRINKAGES
    shrinkages = [fraction * largest for fraction in fractions]
    choice, error = len(shrinkages) - 1, float("nan")
    F = None
    if held_out.any() and (observed & ~held_out).any():
        F, Q, errors, _ = _path(
            Z, observed & ~held_out, shrinkages, k, Q, n_iter=n_iter, tol=tol, held_out=held_out
        )
        choice = int(np.nanargmin(errors))
        error = errors[choice]
    if exact or F is None:
        _, _, _, model = _path(
            Z, observed, shrinkages[: choice + 1], k, Q, n_iter=n_final, tol=tol
        )
    else:
        # Warm-started from the held-out path, refitted on every observed entry.
        F = torch.where(observed, Z, F)
        _, _, _, model = _path(
            Z, observed, shrinkages[choice : choice + 1], k, Q, n_iter=n_final, tol=tol, F=F
        )
    mean, components, weights = model
    if components.shape[1] == 0:
        components = np.eye(n_features, 1, dtype=components.dtype)
        weights = np.zeros(1, dtype=components.dtype)
    return (mean, components, weights), error


@torch.no_grad()
def linear_fill(Z, observed, mean, components, weights, *, exact=None):
    """Fill each row's missing entries with the linear model's fixed point.

    With ``y = z - mean`` and ``P = components @ diag(weights) @
    components.T``, the missing part solves ``y_M = (y @ P)_M`` with the
    observed part held: exactly, one linear system per row, for up to
    ``EXACT_FILL_FEATURES`` features (or as ``exact`` says); by conjugate
    gradients beyond, to a relative residual of ``CG_TOL``, which is several
    times faster where there are many rows. Observed entries are returned
    as they are. It runs on as many threads as the products' size merits.
    """
    n_samples, n_features = Z.shape
    Y = np.where(observed, Z - mean, 0.0).astype(Z.dtype, copy=False)
    if n_features <= EXACT_FILL_FEATURES if exact is None else exact:
        with torch_threads(n_samples * n_features**2):
            out = _exact_fill(Y, ~observed, components, weights)
    else:
        with torch_threads(n_samples * n_features * components.shape[1]):
            out = _conjugate_gradient_fill(Y, ~observed, components, weights)
    return np.where(observed, Z, out + mean)


def _exact_fill(Y, missing, components, weights):
    """The missing part of each centred row of Y, one linear system per row."""
    n_samples, n_features = Y.shape
    P = torch.from_numpy(np.ascontiguousarray((components * weights) @ components.T))
    eye = torch.eye(n_features, dtype=P.dtype)
    out = np.empty_like(Y)
    # Rows per batch of systems: about 2**24 matrix entries.
    batch_size = max(1, 2**24 // n_features**2)
    for start in range(0, n_samples, batch_size):
        rows = slice(start, start + batch_size)
        m = torch.from_numpy(missing[rows]).to(P.dtype)
        b = (torch.from_numpy(Y[rows]) @ P) * m
        A = eye - m[:, :, None] * P * m[:, None, :]
        out[rows] = solve_positive_definite(A, b[:, :, None])[:, :, 0].numpy()
    return out


def _conjugate_gradient_fill(Y, missing, components, weights):
    """The missing part of each centred row of Y, by conjugate gradients.

    On each row's system ``(I - P_MM) y_M = (y_O @ P)_M``, which is
    symmetric and positive definite, all rows at once.
    """
    m = torch.from_numpy(missing).to(torch.from_numpy(Y).dtype)
    scaled, components = torch.from_numpy(components * weights), torch.from_numpy(components)

    def system(y):
        return y - m * ((y @ scaled) @ components.T)

    residual = m * ((torch.from_numpy(Y) @ scaled) @ components.T)
    target = residual.square().sum(dim=1).clamp(min=1e-30)
    y = torch.zeros_like(residual)
    direction = residual.clone()
    squares = target.clone()
    for _ in range(CG_MAX_ITER):
        product = system(direction)
        step = squares / (direction * product).sum(dim=1).clamp(min=1e-30)
        y += step[:, None] * direction
        residual -= step[:, None] * product
        new_squares = residual.square().sum(dim=1)
        if float((new_squares / target).max()) < CG_TOL**2:
            break
        direction = residual + (new_squares / squares.clamp(min=1e-30))[:, None] * direction
        squares = new_squares
    return y.numpy()
