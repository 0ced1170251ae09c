"""The fit path shared by skae's estimators: failed calls, continued training,
and random state."""

import copy

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from conftest import QUICK, assert_same
from skae import (
    AutoencoderImputer,
    AutoencoderOutlierDetector,
    AutoencoderTransformer,
    load,
    save,
)

# What fails and how: a refit on data that a clipped output cannot
# reconstruct fails before training, an error in training (out of memory,
# here raised through the seam) fails during it.
OUTSIDE_UNIT_INTERVAL = r"output_activation='clip' produces values in \[0, 1\]"


def _snapshot(estimator):
    """A deep copy of the estimator's attributes, networks as their weights."""
    state = {}
    for name, value in vars(estimator).items():
        if isinstance(value, torch.nn.Module):
            state[name] = (value, copy.deepcopy(value.state_dict()))
        else:
            state[name] = copy.deepcopy(value)
    return state


def _assert_unchanged(estimator, snapshot):
    assert sorted(vars(estimator)) == sorted(snapshot)
    for name, expected in snapshot.items():
        assert_same(vars(estimator)[name], expected, name)


def _fail_in_training(*args, **kwargs):
    raise MemoryError("out of memory in training")


@pytest.fixture
def frame(digits):
    X, _ = digits
    return pd.DataFrame(X[:600], columns=[f"pixel{i}" for i in range(64)])


# 1. A failed fit, partial_fit or warm start leaves the estimator as it was.


@pytest.mark.parametrize("failure", ["outside [0, 1]", "in training"])
@pytest.mark.parametrize("call", ["fit", "warm start", "partial_fit"])
def test_failed_call_leaves_the_estimator_as_it_was(frame, watch_training, failure, call):
    ae = AutoencoderTransformer(
        encoding_dim=4, output_activation="clip", warm_start=call == "warm start", **QUICK
    )
    ae.partial_fit(frame) if call == "partial_fit" else ae.fit(frame)
    codes = ae.transform(frame)
    snapshot = _snapshot(ae)
    if failure == "outside [0, 1]":
        bad, error, match = frame - 0.5, ValueError, "outside|\\[0, 1\\]"
    else:
        watch_training(_fail_in_training)
        bad, error, match = frame, MemoryError, "out of memory in training"
    with pytest.raises(error, match=match):
        ae.partial_fit(bad) if call == "partial_fit" else ae.fit(bad)
    _assert_unchanged(ae, snapshot)
    np.testing.assert_array_equal(ae.transform(frame), codes)
    assert list(ae.feature_names_in_) == list(frame.columns)
    # Still scikit-learn's check of the width, not an error from inside torch.
    _assert_width_checked(ae, frame.to_numpy()[:, :10])


def _assert_width_checked(estimator, X):
    with (
        pytest.warns(UserWarning, match="X does not have valid feature names"),
        pytest.raises(ValueError, match="X has 10 features, but AutoencoderTransformer"),
    ):
        estimator.transform(X)


def test_failed_refit_on_other_data_keeps_the_feature_names(frame):
    ae = AutoencoderTransformer(encoding_dim=4, output_activation="clip", **QUICK).fit(frame)
    snapshot = _snapshot(ae)
    other = pd.DataFrame(np.full((50, 10), 2.0), columns=[f"c{i}" for i in range(10)])
    with pytest.raises(ValueError, match=OUTSIDE_UNIT_INTERVAL):
        ae.fit(other)
    _assert_unchanged(ae, snapshot)
    assert ae.n_features_in_ == 64
    _assert_width_checked(ae, other.to_numpy())


def test_failed_first_fit_leaves_an_unfitted_estimator(frame):
    ae = AutoencoderTransformer(encoding_dim=4, output_activation="clip", **QUICK)
    snapshot = _snapshot(ae)
    with pytest.raises(ValueError, match=OUTSIDE_UNIT_INTERVAL):
        ae.fit(frame - 0.5)
    _assert_unchanged(ae, snapshot)
    assert not hasattr(ae, "n_features_in_") and not hasattr(ae, "feature_names_in_")


# 2. Continued training converts data to the network's dtype.


@pytest.mark.parametrize("first, later", [(np.float64, np.float32), (np.float32, np.float64)])
@pytest.mark.parametrize("call", ["partial_fit", "warm start"])
def test_continued_training_converts_to_the_network_dtype(digits, first, later, call):
    X = digits[0][:600]
    params = dict(encoding_dim=4, warm_start=call == "warm start", **QUICK)

    def train(ae, X):
        return ae.partial_fit(X) if call == "partial_fit" else ae.fit(X)

    ae = train(AutoencoderTransformer(**params), X.astype(first))
    train(ae, X.astype(later))
    assert all(coef.dtype == first for coef in ae.coefs_)
    # The same as training on the data converted by hand.
    expected = train(AutoencoderTransformer(**params), X.astype(first))
    train(expected, X.astype(later).astype(first))
    for got, want in zip(ae.coefs_, expected.coefs_, strict=True):
        np.testing.assert_array_equal(got, want)
    assert ae.transform(X.astype(later)).dtype == later


# 3. A changed architecture is refused when training continues.


@pytest.mark.parametrize(
    "name, value",
    [
        ("encoding_dim", 8),
        ("hidden_layer_sizes", (16,)),
        ("activation", "tanh"),
        ("code_activation", "relu"),
        ("output_activation", "identity"),
        ("image_shape", (8, 8)),
    ],
)
@pytest.mark.parametrize("call", ["partial_fit", "warm start"])
def test_changed_architecture_is_refused_when_training_continues(digits, name, value, call):
    X = digits[0][:600]
    ae = AutoencoderTransformer(
        encoding_dim=4,
        hidden_layer_sizes=(8,),
        init="random",
        warm_start=call == "warm start",
        **QUICK,
    )
    ae.partial_fit(X) if call == "partial_fit" else ae.fit(X)
    codes = ae.transform(X)
    ae.set_params(**{name: value})
    snapshot = _snapshot(ae)
    with pytest.raises(ValueError, match=f"{name}=.* differs from the fitted network"):
        ae.partial_fit(X) if call == "partial_fit" else ae.fit(X)
    _assert_unchanged(ae, snapshot)
    np.testing.assert_array_equal(ae.transform(X), codes)
    assert ae.transform(X).shape == (X.shape[0], 4)
    # Saving keeps both, and a new fit builds the network asked for.
    restored = load(_saved(ae))
    np.testing.assert_array_equal(restored.transform(X), codes)
    assert restored.get_params()[name] == value
    ae.set_params(warm_start=False).fit(X)
    assert ae.get_params()[name] == value
    assert ae.transform(X).shape == (X.shape[0], ae.encoding_dim)


def _saved(estimator):
    import io

    buffer = io.BytesIO()
    save(estimator, buffer)
    buffer.seek(0)
    return buffer


# 5. random_state=None leaves the global random states alone.


class _Tripwire:
    """Stands in for numpy's global RandomState: drawing from it fails.

    SciPy's sparse solvers look at the global generator's seed sequence, to
    decide on a warning, without drawing from it; that look is let through.
    """

    def __init__(self, global_state):
        self._bit_generator = global_state._bit_generator

    def __getattr__(self, name):
        raise AssertionError(f"numpy's global RandomState was used ({name})")


@pytest.mark.parametrize(
    "kind",
    [
        "dense, randomised PCA",  # over 500 features, more than rows / 10
        "sparse, ARPACK",  # over 2000 features
        "dense, hidden layers",
    ],
)
def test_no_call_uses_the_global_random_states(kind, monkeypatch):
    rng = np.random.RandomState(0)
    params = dict(encoding_dim=5, random_state=None, max_iter=2, tol=1)
    if kind.startswith("dense"):
        X = rng.normal(size=(300, 600))
    else:
        X = sp.random(300, 2100, density=0.01, format="csr", random_state=rng)
    if kind.endswith("hidden layers"):
        params.update(hidden_layer_sizes=(7,), noise="masking", early_stopping=True)
    numpy_state = np.random.get_state()
    torch_state = torch.random.get_rng_state()
    monkeypatch.setattr(np.random.mtrand, "_rand", _Tripwire(np.random.mtrand._rand))
    ae = AutoencoderTransformer(**params).fit(X)
    ae.partial_fit(X[:100])
    ae.transform(X)
    ae.score_samples(X)
    AutoencoderTransformer(**params).partial_fit(X)
    monkeypatch.undo()
    after = np.random.get_state()
    assert after[0] == numpy_state[0] and after[2:] == numpy_state[2:]
    np.testing.assert_array_equal(after[1], numpy_state[1])
    assert torch.equal(torch.random.get_rng_state(), torch_state)


@pytest.mark.parametrize(
    "estimator, params",
    [
        (AutoencoderTransformer, dict(encoding_dim=4, batch_size=64, hidden_layer_sizes=(8,))),
        (AutoencoderOutlierDetector, dict(encoding_dim=4, batch_size=64, n_neighbors=5)),
        (AutoencoderImputer, dict(encoding_dim=4, batch_size=64, hidden_layer_sizes=(4,))),
    ],
)
def test_numpy_integer_parameters_act_as_python_ints(digits, tmp_path, estimator, params):
    """Grids built with np.arange hand estimators numpy integers."""
    X = digits[0][:200, :32].astype(np.float64)
    if estimator is AutoencoderImputer:
        X[::7, 3] = np.nan
    as_numpy = {
        name: tuple(map(np.int64, value)) if isinstance(value, tuple) else np.int64(value)
        for name, value in params.items()
    }
    quick = {**QUICK, "max_iter": 2}
    fitted = estimator(**quick, **params).fit(X)
    numpy_fitted = estimator(**quick, **as_numpy).fit(X)
    method = "score_samples" if estimator is AutoencoderOutlierDetector else "transform"
    expected = getattr(fitted, method)(X)
    np.testing.assert_array_equal(getattr(numpy_fitted, method)(X), expected)
    save(numpy_fitted, tmp_path / "model.skae")
    np.testing.assert_array_equal(getattr(load(tmp_path / "model.skae"), method)(X), expected)


def test_bool_encoding_dim_is_refused(digits):
    with pytest.raises(ValueError, match="encoding_dim.*not a bool"):
        AutoencoderTransformer(encoding_dim=True, **QUICK).fit(digits[0][:100])
