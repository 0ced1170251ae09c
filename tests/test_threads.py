"""Threads: torch's thread settings, and concurrent use of a fitted estimator."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

import skae._nn._threads
from conftest import DIVERGED, DIVERGING, QUICK
from skae import AutoencoderImputer, AutoencoderTransformer
from skae._nn._linalg import solve_positive_definite
from skae._nn._threads import SMALL_WORK, torch_threads


def test_small_work_runs_on_one_thread_and_restores():
    before = torch.get_num_threads()
    with torch_threads(SMALL_WORK - 1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_environment_limit_applies_for_the_block(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        with torch_threads(SMALL_WORK * 4):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_threadpoolctl_blas_limit_applies_for_the_block(monkeypatch):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threadpool_limits(limits=1, user_api="blas"), torch_threads(SMALL_WORK * 4):
            assert torch.get_num_threads() == 1
        with torch_threads(SMALL_WORK * 4):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# torch's batched LU solver hangs or fails on systems of 150 or more unknowns
# once the thread count has been set to two or more.
@pytest.mark.usefixtures("two_torch_threads")
def test_positive_definite_solves_with_the_thread_count_set():
    generator = torch.Generator().manual_seed(0)
    factors = torch.randn(4, 200, 200, generator=generator, dtype=torch.float64)
    A = factors @ factors.mT / 200 + torch.eye(200, dtype=torch.float64)
    # The last system is singular: solved by least squares.
    A[3] = 0.0
    B = torch.randn(4, 200, 2, generator=generator, dtype=torch.float64)
    X = solve_positive_definite(A, B)
    assert torch.allclose(A[:3] @ X[:3], B[:3], atol=1e-10)
    assert torch.equal(X[3], torch.zeros(200, 2, dtype=torch.float64))


@pytest.mark.usefixtures("two_torch_threads")
def test_imputer_fills_a_wide_table_with_the_thread_count_set():
    # Each row's fill solves a system of its missing entries, up to 160.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 160))
    missing = rng.random(X.shape) < 0.2
    filled = AutoencoderImputer(max_iter=2, n_neighbors=0, random_state=0).fit_transform(
        np.where(missing, np.nan, X)
    )
    # Rank 3 without noise: the linear model recovers the missing entries.
    error = np.sqrt(np.mean((filled - X)[missing] ** 2) / X.var())
    assert error < 0.02


@pytest.fixture(scope="module")
def fitted(digits):
    X, _ = digits
    return AutoencoderTransformer(encoding_dim=8, hidden_layer_sizes=(32,), **QUICK).fit(X)


def test_concurrent_calls_match_sequential_calls(digits, fitted):
    # As in a web service: many threads share one fitted estimator.
    X, _ = digits
    requests = [X[start : start + 50 + start % 7] for start in range(0, 1700, 50)]
    methods = {
        "transform": fitted.transform,
        "inverse_transform": lambda X: fitted.inverse_transform(fitted.transform(X)),
        "score_samples": fitted.score_samples,
    }
    expected = {name: [method(X) for X in requests] for name, method in methods.items()}
    threads_before = torch.get_num_threads()
    start = threading.Barrier(8)

    def serve(name, i):
        if i < 8:
            start.wait()  # the first requests all begin at once
        return methods[name](requests[i])

    with ThreadPoolExecutor(max_workers=8) as pool:
        for name in methods:
            futures = [pool.submit(serve, name, i) for i in range(len(requests))] * 3
            for i, future in enumerate(futures):
                np.testing.assert_array_equal(future.result(), expected[name][i % len(requests)])
            start.reset()
    assert torch.get_num_threads() == threads_before


def _count_training_threads(watch_training):
    """Record torch's thread count each time the estimator starts training."""
    seen = []
    watch_training(lambda *args, **kwargs: seen.append(torch.get_num_threads()))
    return seen


@pytest.fixture
def two_torch_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("two_torch_threads")
def test_fit_follows_a_thread_limit_set_after_torch_started(digits, monkeypatch, watch_training):
    # joblib and dask workers set OMP_NUM_THREADS; when torch was imported
    # before that, fit must still keep to the limit, and restore torch after.
    X, _ = digits
    # Count every fit as large, so that only the limit can lower the threads.
    monkeypatch.setattr(skae._nn._threads, "SMALL_WORK", 0)
    seen = _count_training_threads(watch_training)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    ae = AutoencoderTransformer(encoding_dim=4, **QUICK).fit(X)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    ae.fit(X)
    ae.partial_fit(X)
    assert seen == [2, 1, 1]
    assert torch.get_num_threads() == 2
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    ae.fit(X)
    assert seen[-1] == 2  # a limit never raises torch's own setting


@pytest.mark.usefixtures("two_torch_threads")
def test_thread_setting_restored_when_fit_fails(digits, monkeypatch, watch_training):
    X, _ = digits
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(skae._nn._threads, "SMALL_WORK", 0)
    seen = _count_training_threads(watch_training)
    ae = AutoencoderTransformer(**DIVERGING, **QUICK)
    with pytest.warns(ConvergenceWarning, match=DIVERGED):
        ae.fit(X)
    assert torch.get_num_threads() == 2

    assert seen == [1]

    def fail(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise MemoryError("out of memory in training")

    watch_training(fail)
    with pytest.raises(MemoryError, match="out of memory in training"):
        ae.fit(X)
    assert seen == [1, 1]
    assert torch.get_num_threads() == 2


def _denormal_products():
    """How many products of 1e-30 and 1e-9 come out nonzero (denormal).

    The tensor is large enough for torch to split the product over its
    threads.
    """
    return int((torch.full((1 << 20,), 1e-30) * 1e-9).count_nonzero())


@pytest.mark.usefixtures("two_torch_threads")
def test_flush_denormal_reaches_every_thread_and_restores():
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    if skae._nn._threads._omp_parallel() is None:
        pytest.skip("torch's threads are not reachable through GOMP_parallel here")
    assert _denormal_products() == 1 << 20
    with skae._nn._threads.flush_denormal():
        assert _denormal_products() == 0
    assert _denormal_products() == 1 << 20


@pytest.mark.usefixtures("two_torch_threads")
def test_fit_flushes_denormals_and_leaves_the_setting_as_found(
    digits, monkeypatch, watch_training
):
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    if skae._nn._threads._omp_parallel() is None:
        pytest.skip("torch's threads are not reachable through GOMP_parallel here")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    # Count every fit as large, so that training runs on both threads.
    monkeypatch.setattr(skae._nn._threads, "SMALL_WORK", 0)
    X, _ = digits
    seen = []
    watch_training(lambda *args, **kwargs: seen.append(_denormal_products()))
    ae = AutoencoderTransformer(encoding_dim=4, alpha=1e-2, **QUICK).fit(X)
    assert seen == [0]
    assert _denormal_products() == 1 << 20
    # torch.set_flush_denormal sets the calling thread only: torch's other
    # thread computes its share of the products as denormals.
    torch.set_flush_denormal(True)
    try:
        found = _denormal_products()
        assert 0 < found < 1 << 20
        ae.fit(X)
        assert torch.tensor(1e-39).item() == 0.0
        # Neither thread's setting leaked from the fit.
        assert _denormal_products() == found
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.usefixtures("two_torch_threads")
def test_spare_threads_are_those_the_process_may_use_but_torch_does_not(monkeypatch):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    with torch_threads(SMALL_WORK - 1) as spare:
        assert spare == 1
    with torch_threads(SMALL_WORK) as spare:
        assert spare == 0
    # joblib's workers get one thread each: nothing to spare.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with torch_threads(SMALL_WORK - 1) as spare:
        assert spare == 0
