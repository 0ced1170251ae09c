"""skae on clusters: Dask for out-of-core training, blockwise transforms and
grid searches, and Ray for grid searches when it is installed."""

import io
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

from conftest import QUICK
from skae import AutoencoderTransformer

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
wrappers = pytest.importorskip("dask_ml.wrappers")


# On a busy machine the scheduler and nannies may take over a second to make
# their scratch directories, which distributed reports with a warning.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Creating scratch directories is taking a surprisingly long time:UserWarning"
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A cluster of two single-threaded worker processes, for this module only."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            local_directory=tmp_path_factory.mktemp("dask"),
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_incremental_trains_on_blocks_in_turn(digits, client):
    X, _ = digits
    X_dask = da.from_array(X, chunks=(400, 64))
    incremental = wrappers.Incremental(
        AutoencoderTransformer(encoding_dim=8, random_state=0), shuffle_blocks=False
    )
    incremental.fit(X_dask)
    fitted = incremental.estimator_
    assert (fitted.n_iter_, fitted.t_) == (X_dask.numblocks[0], X.shape[0])

    by_hand = AutoencoderTransformer(encoding_dim=8, random_state=0)
    for block in np.array_split(X, range(400, X.shape[0], 400)):
        by_hand.partial_fit(block)
    codes = incremental.transform(X_dask)
    assert isinstance(codes, da.Array)
    # The workers train with other thread counts than this process, which
    # changes the order of float32 sums: equal up to rounding.
    for fitted_coef, coef in zip(fitted.coefs_, by_hand.coefs_, strict=True):
        np.testing.assert_allclose(fitted_coef, coef, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(codes.compute(), by_hand.transform(X), rtol=1e-4, atol=1e-5)


def test_transform_dask_array_block_by_block(digits, client):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=8, **QUICK).fit(X)
    X_dask = da.from_array(X, chunks=(500, 64))
    expected = ae.transform(X)

    codes = wrappers.ParallelPostFit(ae).transform(X_dask)
    assert isinstance(codes, da.Array)
    assert codes.numblocks == (X_dask.numblocks[0], 1)
    # A block's products may be summed in another order than the whole's.
    np.testing.assert_allclose(codes.compute(), expected, rtol=1e-5, atol=1e-6)

    codes = X_dask.map_blocks(ae.transform, chunks=(X_dask.chunks[0], (8,)), dtype=X.dtype)
    np.testing.assert_allclose(codes.compute(), expected, rtol=1e-5, atol=1e-6)


def test_grid_search_on_cluster_matches_sequential_search(digits, client):
    X, _ = digits
    search = GridSearchCV(AutoencoderTransformer(**QUICK), {"encoding_dim": [2, 4, 8, 16]}, cv=3)
    sequential = search.fit(X)  # n_jobs=None: one process
    sequential = {
        "best": sequential.best_params_,
        "scores": sequential.cv_results_["mean_test_score"],
        "split": sequential.cv_results_["split2_test_score"],
    }
    with joblib.parallel_config(backend="dask"):
        search.set_params(n_jobs=-1).fit(X)
    assert search.best_params_ == sequential["best"]
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], sequential["scores"])
    np.testing.assert_array_equal(search.cv_results_["split2_test_score"], sequential["split"])
    assert np.all(np.diff(sequential["scores"]) > 0)


def test_workers_train_within_their_thread_limit(digits, client):
    X, _ = digits

    def fit_and_count_threads():
        # Runs in a worker process: torch was set to two threads there, as if
        # imported before the worker's limit of one (OMP_NUM_THREADS=1) was set.
        import os

        import skae._nn._threads
        import skae._nn._train

        torch.set_num_threads(2)
        train, small_work = skae._nn._train.train, skae._nn._threads.SMALL_WORK
        seen = []

        def counting_train(*args, **kwargs):
            seen.append(torch.get_num_threads())
            return train(*args, **kwargs)

        # The seam of conftest.py, patched by hand: no monkeypatch in a worker.
        # Count the fit as large, so that only the limit can lower the threads.
        skae._nn._train.train, skae._nn._threads.SMALL_WORK = counting_train, 0
        try:
            AutoencoderTransformer(encoding_dim=4, **QUICK).fit(X[:200])
        finally:
            skae._nn._train.train, skae._nn._threads.SMALL_WORK = train, small_work
        return os.environ.get("OMP_NUM_THREADS"), seen, torch.get_num_threads()

    workers = list(client.scheduler_info()["workers"])
    futures = [client.submit(fit_and_count_threads, pure=False, workers=[w]) for w in workers]
    for limit, seen, after in client.gather(futures):
        assert limit == "1"
        assert seen == [1]
        assert after == 2


class _RecordingUnpickler(pickle.Unpickler):
    """Unpickles while recording the modules of the globals it imports."""

    def __init__(self, file):
        super().__init__(file)
        self.modules = set()

    def find_class(self, module, name):
        self.modules.add(module.split(".")[0])
        return super().find_class(module, name)


def test_workers_need_only_installed_packages(digits):
    # An estimator made in a user's script pickles to references to installed
    # modules only: the network is rebuilt from plain parameters, not from a
    # class the user defined in __main__.
    X, _ = digits
    fitted = AutoencoderTransformer(encoding_dim=4, hidden_layer_sizes=(8,), **QUICK).fit(X)
    for estimator in (AutoencoderTransformer(encoding_dim=4), fitted):
        unpickler = _RecordingUnpickler(io.BytesIO(pickle.dumps(estimator)))
        unpickler.load()
        modules = unpickler.modules
        assert "skae" in modules
        assert modules <= {
            "skae",
            "torch",
            "numpy",
            "collections",
            "builtins",
            "copyreg",
            "_codecs",
        }


def test_ray_grid_search_matches_sequential_search(digits):
    ray = pytest.importorskip("ray")
    ray_joblib = pytest.importorskip("ray.util.joblib")
    X, _ = digits
    search = GridSearchCV(AutoencoderTransformer(**QUICK), {"encoding_dim": [2, 8]}, cv=2)
    sequential = search.fit(X).cv_results_["mean_test_score"]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray_joblib.register_ray()
        with joblib.parallel_config(backend="ray"):
            search.set_params(n_jobs=2).fit(X)
    finally:
        ray.shutdown()
    assert search.best_params_ == {"encoding_dim": 8}
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], sequential)
