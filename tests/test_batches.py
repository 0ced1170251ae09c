"""Inference passes: rows bounded by bytes, however wide the data."""

import numpy as np
import pytest
import scipy.sparse as sp

from skae import AutoencoderTransformer
from skae._nn import _batches
from skae._nn._batches import INFERENCE_BYTES, INFERENCE_ROWS, inference_rows


def test_rows_per_pass_are_bounded_by_bytes():
    assert inference_rows(64, np.float32) == INFERENCE_ROWS
    assert inference_rows(50_000, np.float64) * 50_000 * 8 <= INFERENCE_BYTES
    assert inference_rows(50_000, np.float32) >= 2 * inference_rows(50_000, np.float64)
    # A row wider than the budget still makes a pass of one row.
    assert inference_rows(10**9, np.float64) == 1


@pytest.fixture(scope="module")
def wide():
    """A sparse matrix of 200 rows of 50,000 features, dense 80 MB, and a model of it."""
    X = sp.random(200, 50_000, density=1e-3, format="csr", random_state=0)
    # Fitted on a few rows, without the PCA start: this is about inference.
    ae = AutoencoderTransformer(encoding_dim=4, init="random", max_iter=1, tol=1, random_state=0)
    return X, ae.fit(X[:20])


@pytest.fixture
def densified(monkeypatch):
    """Record the bytes of each dense copy made of a sparse matrix's rows."""
    sizes = []
    for cls in (sp.csr_matrix, sp.csr_array):
        toarray = cls.toarray

        def recording(self, *args, toarray=toarray, **kwargs):
            dense = toarray(self, *args, **kwargs)
            sizes.append(dense.nbytes)
            return dense

        monkeypatch.setattr(cls, "toarray", recording)
    return sizes


@pytest.mark.parametrize("method", ["transform", "score_samples"])
def test_wide_sparse_input_is_densified_a_bounded_pass_at_a_time(wide, densified, method):
    X, ae = wide
    result = getattr(ae, method)(X)
    assert result.shape[0] == X.shape[0] and np.isfinite(result).all()
    assert densified, "the sparse rows were never densified"
    assert sum(densified) >= X.shape[0] * X.shape[1] * 8
    assert max(densified) <= INFERENCE_BYTES < X.shape[0] * X.shape[1] * 8
    # The passes give what one pass over all rows gives.
    expected = getattr(ae, method)(X.toarray())
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12)


def test_inverse_transform_decodes_a_bounded_pass_at_a_time(monkeypatch):
    X = np.random.RandomState(0).rand(50, 12).astype(np.float32)
    ae = AutoencoderTransformer(3, hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X)
    codes = ae.transform(X)
    whole = ae.inverse_transform(codes)
    passes = []
    original = _batches.iter_rows

    def recording(X, batch_size, **kwargs):
        for batch in original(X, batch_size, **kwargs):
            passes.append(len(batch))
            yield batch

    monkeypatch.setattr(_batches, "inference_rows", lambda width, dtype: 7)
    monkeypatch.setattr(_batches, "iter_rows", recording)
    np.testing.assert_array_equal(ae.inverse_transform(codes), whole)
    assert passes == [7] * 7 + [1]


@pytest.mark.parametrize("hidden", [(), (8,)])
def test_sparse_rows_are_densified_in_small_passes(monkeypatch, hidden):
    # Each pass's dense copy has temporaries of its size beside it: passes of
    # SPARSE_INFERENCE_BYTES keep a transform of wide sparse data far below
    # its dense copy.
    rng = np.random.RandomState(0)
    X = sp.random(300, 5000, density=0.01, format="csr", random_state=rng, dtype=np.float32)
    ae = AutoencoderTransformer(4, hidden_layer_sizes=hidden, max_iter=1, random_state=0)
    ae.fit(X)
    passes = []
    original = _batches.iter_rows

    def recording(X, batch_size, **kwargs):
        for batch in original(X, batch_size, **kwargs):
            passes.append(batch.shape)
            yield batch

    monkeypatch.setattr(_batches, "iter_rows", recording)
    codes = ae.transform(X)
    assert len(passes) > 1 and sum(rows for rows, _ in passes) == X.shape[0]
    assert all(rows * width * 4 <= _batches.SPARSE_INFERENCE_BYTES for rows, width in passes)
    np.testing.assert_allclose(codes, ae.transform(X.toarray()), rtol=1e-5, atol=1e-6)
