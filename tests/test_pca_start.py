"""The PCA start on data where PCA's own solvers struggle."""

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import QUICK
from skae import AutoencoderTransformer


def _constant_sparse(n_samples, n_features, value):
    """Equal rows; with value None, a matrix without stored entries."""
    if value is None:
        return sp.csr_matrix((n_samples, n_features))
    # value 0.0 stores zeros explicitly.
    row = sp.random(1, n_features, density=0.01, format="csr", random_state=0) * value
    return sp.csr_matrix(sp.vstack([row] * n_samples))


@pytest.mark.parametrize("n_features", [50, 2500])
@pytest.mark.parametrize("value", [None, 0.0, 0.5, 3.0])
def test_constant_sparse_data_fits(n_features, value):
    # Wider than 2000 features, sparse data takes ARPACK's solver, which
    # cannot start on a zero matrix.
    X = _constant_sparse(40, n_features, value)
    ae = AutoencoderTransformer(encoding_dim=3, **QUICK).fit(X)
    assert ae.init_ == "pca"
    codes = ae.transform(X)
    assert codes.shape == (40, 3) and np.isfinite(codes).all()
    reconstruction = ae.inverse_transform(codes)
    np.testing.assert_allclose(reconstruction, X.toarray(), atol=1e-6)


@pytest.mark.parametrize("n_features", [50, 2500])
def test_sparse_data_fits_as_dense_data_does(n_features):
    X = sp.random(60, n_features, density=0.02, format="csr", random_state=0)
    params = dict(encoding_dim=3, learning_rate_init=1e-12, **QUICK)
    sparse = AutoencoderTransformer(**params).fit(X)
    dense = AutoencoderTransformer(**params).fit(X.toarray())
    assert sparse.init_ == dense.init_ == "pca"
    # Both start at PCA's reconstruction, as PCA's solvers for sparse and
    # dense data find it.
    np.testing.assert_allclose(sparse.score(X), dense.score(X.toarray()), rtol=1e-3)
