"""Where training starts: location, scale and PCA's solution.

:func:`location_scale` gives the normalisation a network with a linear
output works in; :func:`leading_eigenvectors` computes PCA's mean and
leading axes of data with many more rows than columns from
:func:`centred_gram`, where :func:`resolves` trusts them (the estimators'
``principal_axes`` calls PCA itself for the others);
:func:`start_linear_path` sets a network's linear path to that solution, so
that training begins where PCA ends.
"""

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch

from skae._nn._linalg import solve_positive_definite

# Below this fraction of the mean square, a variance worked out as the mean
# square less the squared mean has lost most of its digits to cancellation.
CANCELLATION = 1e-6


def location_scale(X, chunk_size=4096):
    """Per-feature mean and overall root mean square deviation of X.

    Accumulated in float64 over chunks of rows divided by the largest
    magnitude, so that neither huge values overflow nor tiny ones underflow.
    """
    n_samples, n_features = X.shape
    peak = float(max(abs(X.max()), abs(X.min())))
    if peak == 0:
        return np.zeros(n_features), 1.0
    sums = np.zeros(n_features)
    sum_squares = 0.0
    for start in range(0, n_samples, chunk_size):
        chunk = X[start : start + chunk_size].astype(np.float64) / peak
        sums += np.asarray(chunk.sum(axis=0)).ravel()
        if sp.issparse(chunk):
            sum_squares += float(chunk.multiply(chunk).sum())
        else:
            sum_squares += float(np.einsum("ij,ij->", chunk, chunk))
    mean = sums / n_samples
    mean_square = sum_squares / (n_samples * n_features)
    variance = mean_square - float(mean @ mean) / n_features
    if not sp.issparse(X) and not variance > CANCELLATION * mean_square:
        # The difference cancels where a column's offset dwarfs the spread
        # (a column at 1e8 + x): the deviations are summed in a second pass.
        variance = 0.0
        for start in range(0, n_samples, chunk_size):
            chunk = (X[start : start + chunk_size].astype(np.float64) - mean * peak) / peak
            variance += float(np.einsum("ij,ij->", chunk, chunk))
        variance /= n_samples * n_features
    scale = peak * np.sqrt(max(variance, 0.0))
    if not np.isfinite(scale) or scale == 0:
        scale = 1.0
    return mean * peak, scale


# How many times rounding error an axis's variance must be for the
# covariance's eigenvectors to be trusted. PCA's own "covariance_eigh" asks
# for nothing; MNIST in float32 has axes of 2e-5 of the first's variance
# among its leading 600, whose SVD takes ten times as long.
RESOLUTION = 100

# Entries of X centred (and converted) at a time while its Gram matrix is summed.
GRAM_CHUNK_ENTRIES = 2**20


def centred_gram(X, dtype=np.float64, mean=None):
    """The smaller Gram matrix of X's centred rows, in ``dtype`` for dense X.

    ``X_c.T @ X_c`` when X has at least as many rows as columns, else
    ``X_c @ X_c.T``, where ``X_c`` is X less its column means: the two
    share their nonzero eigenvalues, the variances along X's principal
    axes times ``n_samples - 1``. Dense X is centred and converted a chunk
    at a time (the uncentred ``X.T @ X`` less ``n * outer(mean, mean)``
    cancels where a column's offset dwarfs its spread), and sparse X,
    in float64, is centred implicitly, so that neither is copied whole.
    Dense X is centred on ``mean`` where it is given (its column means).
    """
    n_samples, n_features = X.shape
    tall = n_samples >= n_features
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64)
        mean = np.asarray(X.mean(axis=0)).ravel()
        if tall:
            gram = (X.T @ X).toarray()
            return gram - n_samples * np.outer(mean, mean)
        # A block of rows at a time: the sparse product of all the rows,
        # nearly dense as it may be, would take several times the memory of
        # the dense Gram matrix.
        rows = max(1, GRAM_CHUNK_ENTRIES // n_samples)
        gram = np.empty((n_samples, n_samples))
        for start in range(0, n_samples, rows):
            gram[start : start + rows] = (X[start : start + rows] @ X.T).toarray()
        # Centring the rows is subtracting each row's and column's mean of
        # the Gram matrix and adding back the overall one.
        row_means = gram.mean(axis=1)
        gram -= row_means[:, None]
        gram -= row_means[None, :]
        gram += row_means.mean()
        return gram
    if mean is None:
        mean = X.mean(axis=0, dtype=np.float64)
    mean = np.asarray(mean, dtype=dtype)
    if tall:
        rows = max(1, GRAM_CHUNK_ENTRIES // n_features)
        gram = np.zeros((n_features, n_features), dtype=dtype)
        for start in range(0, n_samples, rows):
            chunk = X[start : start + rows] - mean
            gram += chunk.T @ chunk
        return gram
    columns = max(1, GRAM_CHUNK_ENTRIES // n_samples)
    gram = np.zeros((n_samples, n_samples), dtype=dtype)
    for start in range(0, n_features, columns):
        chunk = X[:, start : start + columns] - mean[start : start + columns]
        gram += chunk @ chunk.T
    return gram


def leading_eigenvectors(X, n_components):
    """Mean, leading principal axes and their variances of a dense, tall X.

    As ``PCA(svd_solver="covariance_eigh")`` computes them, with the same
    signs, but the eigendecomposition of the covariance stops at the
    ``n_components`` leading eigenvectors: for 784 features and 32
    components that takes a third of the time of the full one. Axes whose
    variance is within rounding error of the first's are not resolved
    by the covariance (:func:`resolves`).
    """
    n_samples, n_features = X.shape
    mean = X.mean(axis=0)
    covariance = centred_gram(X, X.dtype, mean)
    covariance /= n_samples - 1
    variances, vectors = scipy.linalg.eigh(
        covariance,
        subset_by_index=[n_features - n_components, n_features - 1],
        driver="evr",
        overwrite_a=True,
    )
    components = vectors[:, ::-1].T.copy()
    # As svd_flip: the entry of largest magnitude of each axis is positive.
    largest = components[np.arange(n_components), np.abs(components).argmax(axis=1)]
    components *= np.where(largest < 0, -1, 1).astype(components.dtype)[:, None]
    return mean, components, variances[::-1].copy()


def resolves(variances, dtype):
    """Whether a covariance's eigenvectors of these variances, largest first, are resolved.

    The eigendecomposition of a covariance in ``dtype`` finds each variance
    to about its machine epsilon times the largest: an axis whose variance
    is not well above that (in float64, a column in units ten million times
    smaller than another's) is rounding error, where PCA's singular value
    decomposition of the centred data, which resolves square roots of
    variances, still finds it.
    """
    return bool(variances[-1] > RESOLUTION * np.finfo(dtype).eps * variances[0])


def fit_logistic_decoder(decoder, codes, targets, *, n_iter=2, ridge=1e-4):
    """Refine a linear decoder followed by a sigmoid by Newton's method.

    With the codes fixed, fitting the decoder to targets in [0, 1] under the
    binary cross-entropy is one logistic regression per output feature, a
    convex problem that a couple of Newton (IRLS) steps nearly solve.

    Parameters
    ----------
    decoder : nn.Linear
        The decoder layer, updated in place from its current weights.

    codes : torch.Tensor of shape (n_samples, n_codes)
        Codes of a sample of the training data.

    targets : torch.Tensor of shape (n_samples, n_features)
        The same sample, in [0, 1].

    n_iter : int
        Newton steps.

    ridge : float
        Added to the diagonal of each Hessian.
    """
    n_samples, n_codes = codes.shape
    design = torch.cat([codes, codes.new_ones(n_samples, 1)], dim=1)
    coef = torch.cat([decoder.weight.T, decoder.bias[None, :]])
    outer = (design[:, :, None] * design[:, None, :]).reshape(n_samples, -1)
    eye = ridge * torch.eye(n_codes + 1, dtype=codes.dtype)
    for _ in range(n_iter):
        probabilities = torch.sigmoid(design @ coef)
        gradient = design.T @ (probabilities - targets)
        weights = probabilities * (1 - probabilities)
        hessians = (outer.T @ weights).T.reshape(-1, n_codes + 1, n_codes + 1) + eye
        coef -= solve_positive_definite(hessians, gradient.T.unsqueeze(-1)).squeeze(-1).T
    decoder.weight.copy_(coef[:-1].T)
    decoder.bias.copy_(coef[-1])


def start_linear_path(module, components, mean, generator, sample=None, encoder_components=None):
    """Start a network's linear path at a PCA solution, or another linear model.

    The encoder projects centred data on ``components``. With a linear (or
    clipped) output the decoder maps codes back with the same components, so
    that before any training the network reconstructs exactly as PCA does.
    With a sigmoid output the decoder starts from the linearisation of the
    sigmoid around the mean, then :func:`fit_logistic_decoder` fits it to
    ``sample``: the start is then better than PCA, not only as good, except
    close to the data's rank, where no sigmoid of a linear map of the code
    gives PCA's nearly exact reconstruction.
    Code units beyond the number of components get small random encoder
    weights and zero decoder weights.

    Parameters
    ----------
    module : network of :mod:`skae._nn._contract`
        A network with a ``linear_path``; its other weights are drawn at
        random.

    components : torch.Tensor of shape (n_components, n_features)
        Orthonormal principal axes.

    mean : torch.Tensor of shape (n_features,)
        Mean of the training data, in the network's normalised units.

    generator : torch.Generator
        Source of the random weights.

    sample : torch.Tensor of shape (n_samples, n_features) or None
        Training rows to fit a sigmoid output's decoder to.

    encoder_components : torch.Tensor of shape (n_components, n_features) or None
        The encoder's weights, when they are not ``components``: for a
        linear model whose codes are not orthogonal projections.
    """
    encoder, decoder = module.linear_path
    n_components = components.shape[0]
    module.init_random(generator)
    if encoder_components is None:
        encoder_components = components
    with torch.no_grad():
        encoder.weight[:n_components] = encoder_components
        encoder.weight[n_components:] *= 1e-2
        encoder.bias.copy_(-(encoder.weight @ mean))
        decoder.weight.zero_()
        decoder.weight[:, :n_components] = components.T
        decoder.bias.copy_(mean)
        if module.output_activation != "sigmoid":
            return
        # sigmoid(logit(m) + d) ~ m + m (1 - m) d near the mean m.
        clipped = mean.clamp(0.01, 0.99)
        decoder.weight /= (clipped * (1 - clipped)).clamp(min=0.1)[:, None]
        decoder.bias.copy_(torch.logit(clipped))
        if sample is not None and len(sample) > 1 and encoder.out_features <= 128:
            fit_logistic_decoder(decoder, encoder(sample), sample)


def sample_rows(X, generator, size=2000):
    """At most ``size`` random rows of X as a dense tensor."""
    rows = torch.randperm(X.shape[0], generator=generator)[:size].sort().values.numpy()
    sample = X[rows]
    return torch.from_numpy(sample.toarray() if sp.issparse(sample) else sample)
