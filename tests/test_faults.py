"""Faults: interrupted and diverging training, awkward but valid input."""

import copy

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import ConvergenceWarning

from conftest import DIVERGED, DIVERGING, QUICK, assert_same
from skae import AutoencoderTransformer


def _state(estimator):
    """A deep copy of everything the estimator holds."""
    state = {}
    for name, value in vars(estimator).items():
        if isinstance(value, torch.nn.Module):
            value = value.state_dict()
        state[name] = copy.deepcopy(value)
    return state


def _assert_same_state(estimator, state, ignore=()):
    assert set(vars(estimator)) - set(ignore) == set(state)
    for name, expected in state.items():
        value = getattr(estimator, name)
        if isinstance(value, torch.nn.Module):
            value = value.state_dict()
        assert_same(value, expected, name)


def test_interrupted_partial_fit_keeps_the_previous_weights(digits, interrupt_at):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=8, batch_size=100, random_state=0)
    ae.partial_fit(X[:500])
    codes = ae.transform(X)
    interrupt_at(3)
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        ae.partial_fit(X[500:1000])
    # An unfinished epoch is not kept: the weights are those before the call.
    np.testing.assert_array_equal(ae.transform(X), codes)
    assert (ae.n_iter_, ae.t_) == (1, 500)
    ae.partial_fit(X[1000:1500])
    assert ae.n_iter_ == 2


def test_interrupted_warm_start_fit_keeps_completed_epochs(digits, interrupt_at):
    X, _ = digits
    # Unordered: the training loss is then the reconstruction error.
    ae = AutoencoderTransformer(
        encoding_dim=8, batch_size=600, warm_start=True, ordered_codes=False, **QUICK
    )
    ae.fit(X)
    n_iter = ae.n_iter_
    # Train on until interrupted: no stopping on a lack of improvement.
    ae.set_params(tol=0, n_iter_no_change=100)
    interrupt_at(3 * 2 + 1)  # the first step of the third epoch, 3 steps an epoch
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        ae.fit(X)
    assert ae.n_iter_ == n_iter + 2
    assert np.isfinite(ae.transform(X)).all()
    # Without validation data, the best weights are those of the lowest loss.
    assert -ae.score(X) == pytest.approx(min(ae.loss_curve_[-2:]), rel=0.05)


@pytest.mark.parametrize("how", ["partial_fit", "warm_start"])
def test_divergence_leaves_the_last_good_state(digits, how):
    X, _ = digits
    params = {**DIVERGING, "learning_rate_init": 1e-3}
    ae = AutoencoderTransformer(warm_start=how == "warm_start", **params, **QUICK)
    if how == "partial_fit":
        ae.partial_fit(X)
    else:
        ae.fit(X)
    state = _state(ae)
    codes = ae.transform(X)
    # A learning rate that makes the next epoch's loss NaN in float32.
    ae.set_params(learning_rate_init=DIVERGING["learning_rate_init"])
    with pytest.warns(ConvergenceWarning, match=DIVERGED + ".* kept the weights it started"):
        ae.partial_fit(X) if how == "partial_fit" else ae.fit(X)
    # Weights, optimizer and counters are those before the call; only the
    # random stream has moved on.
    del state["_generator_state"], state["_module"]
    ae.set_params(learning_rate_init=params["learning_rate_init"])
    _assert_same_state(ae, state, ignore=("_generator_state", "_module"))
    np.testing.assert_array_equal(ae.transform(X), codes)
    # The optimizer's state is intact too: training goes on from there.
    ae.partial_fit(X) if how == "partial_fit" else ae.fit(X)
    assert np.isfinite(ae.transform(X)).all()


def _read_only_inputs(X, tmp_path):
    read_only = X.copy()
    read_only.flags.writeable = False
    memmap = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=X.dtype, shape=X.shape)
    memmap[:] = X
    memmap.flush()
    joblib.dump(X, tmp_path / "X.joblib")
    sparse = sp.csr_matrix(X)
    for array in (sparse.data, sparse.indices, sparse.indptr):
        array.flags.writeable = False
    return {
        "read-only": read_only,
        "np.load mmap": np.load(tmp_path / "X.npy", mmap_mode="r"),
        "joblib mmap": joblib.load(tmp_path / "X.joblib", mmap_mode="r"),
        "read-only csr": sparse,
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_only_and_memory_mapped_input(digits, tmp_path, dtype):
    X = digits[0][:400].astype(dtype)
    expected = AutoencoderTransformer(encoding_dim=4, random_state=0).partial_fit(X).transform(X)
    inputs = _read_only_inputs(X, tmp_path)
    for name, data in inputs.items():
        ae = AutoencoderTransformer(encoding_dim=4, random_state=0).partial_fit(data)
        codes = ae.transform(data)
        assert codes.dtype == dtype, name
        np.testing.assert_allclose(codes, expected, rtol=1e-4, atol=1e-5, err_msg=name)
        assert np.isfinite(ae.score(data)), name
    fitted = AutoencoderTransformer(encoding_dim=4, early_stopping=True, noise="gaussian", **QUICK)
    # The validation split and the corruption copy, never write.
    data = inputs["np.load mmap"]
    assert fitted.fit(data).transform(data).shape == (400, 4)


def test_constant_columns_and_constant_data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 6))
    X[:, 2] = 7.0
    ae = AutoencoderTransformer(encoding_dim=3, **QUICK).fit(X)
    reconstruction = ae.inverse_transform(ae.transform(X))
    np.testing.assert_allclose(reconstruction[:, 2], 7.0, rtol=1e-3)

    constant = np.full((50, 4), 3.0)
    ae = AutoencoderTransformer(encoding_dim=2, **QUICK).fit(constant)
    assert np.isfinite(ae.transform(constant)).all()
    np.testing.assert_allclose(ae.inverse_transform(ae.transform(constant)), constant)


def test_single_feature_and_single_sample():
    X = np.random.RandomState(0).normal(size=(100, 5))
    one_feature = AutoencoderTransformer(encoding_dim=2, **QUICK).fit(X[:, :1])
    assert one_feature.transform(X[:, :1]).shape == (100, 2)
    assert np.isfinite(one_feature.score(X[:, :1]))

    one_sample = AutoencoderTransformer(encoding_dim=3, **QUICK).fit(X[:1])
    assert one_sample.batch_size_ == 1
    assert one_sample.transform(X).shape == (100, 3)
    assert np.isfinite(one_sample.transform(X)).all()
    # With one sample, the reconstruction is that sample.
    np.testing.assert_allclose(one_sample.inverse_transform(one_sample.transform(X[:1])), X[:1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_and_tiny_magnitudes(dtype):
    X = np.random.RandomState(0).normal(size=(300, 8))
    errors = {}
    for factor in (1e-30, 1e-6, 1.0, 1e6, 1e30):
        data = (X * factor).astype(dtype)
        ae = AutoencoderTransformer(encoding_dim=3, output_activation="identity", random_state=0)
        for chunk in np.array_split(data, 3):
            ae.partial_fit(chunk)
        codes = ae.transform(data)
        reconstruction = ae.inverse_transform(codes)
        assert codes.dtype == reconstruction.dtype == dtype
        assert np.isfinite(codes).all() and np.isfinite(reconstruction).all()
        errors[factor] = np.mean((reconstruction.astype(np.float64) / factor - X) ** 2)
    # Training does not depend on the data's magnitude.
    np.testing.assert_allclose(list(errors.values()), errors[1.0], rtol=1e-3)


def test_encoding_dim_larger_than_n_features():
    X = np.random.RandomState(0).normal(size=(200, 3)) @ np.diag([3.0, 2.0, 1.0])
    ae = AutoencoderTransformer(
        encoding_dim=10, output_activation="identity", learning_rate_init=1e-12, **QUICK
    ).fit(X)
    assert ae.transform(X).shape == (200, 10)
    assert ae.components_.shape == (10, 3)
    # PCA starts the first 3 units; the other 7 start with no effect on the
    # reconstruction, so that a full-rank code reconstructs exactly.
    np.testing.assert_allclose(ae.components_[3:], 0, atol=1e-12)
    np.testing.assert_allclose(ae.inverse_transform(ae.transform(X)), X, atol=1e-8)
