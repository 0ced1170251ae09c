"""Training in bfloat16: the result, and what precision='auto' chooses."""

import sys

import numpy as np
import pytest
import torch
from sklearn.base import clone

from skae import (
    AutoencoderImputer,
    AutoencoderOutlierDetector,
    AutoencoderTransformer,
    _choices,
)
from skae._choices import BFLOAT16_MIN_PARAMETERS, resolve_precision
from skae._nn.linear import Autoencoder


def _network(n_parameters, dtype=torch.float32):
    """A one-hidden-layer network with at least ``n_parameters`` parameters."""
    width = int(np.ceil(n_parameters / (2 * 100)))
    return Autoencoder(100, 8, (width,), "relu", "identity", "identity", dtype)


@pytest.mark.parametrize("capable", [True, False])
def test_auto_chooses_bfloat16_only_for_large_float32_networks_on_capable_cpus(
    capable, monkeypatch
):
    monkeypatch.setattr(_choices, "cpu_has_bfloat16", lambda: capable)
    cpu = torch.device("cpu")
    large = _network(BFLOAT16_MIN_PARAMETERS)
    assert sum(p.numel() for p in large.parameters()) >= BFLOAT16_MIN_PARAMETERS
    assert resolve_precision("auto", cpu, large) == ("bfloat16" if capable else "float32")
    assert resolve_precision("auto", cpu, _network(BFLOAT16_MIN_PARAMETERS // 8)) == "float32"
    large64 = _network(BFLOAT16_MIN_PARAMETERS, dtype=torch.float64)
    assert resolve_precision("auto", cpu, large64) == "float64"
    assert resolve_precision("float32", cpu, large) == "float32"
    assert resolve_precision("float32", cpu, large64) == "float64"
    assert resolve_precision("bfloat16", cpu, large) == "bfloat16"


def test_bfloat16_is_refused_where_it_cannot_run():
    with pytest.raises(ValueError, match="not supported on mps"):
        resolve_precision("bfloat16", torch.device("mps"), _network(10))


def test_cpu_capability_is_read_from_the_cpu_flags():
    # On Linux the answer comes from /proc/cpuinfo's AMX flag; elsewhere it
    # is False. AVX512-BF16 alone does not make bfloat16 products faster.
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        pass
    expected = sys.platform.startswith("linux") and "amx_bf16" in flags
    _choices.cpu_has_bfloat16.cache_clear()
    assert _choices.cpu_has_bfloat16() == expected


@pytest.fixture(scope="module")
def curved():
    """Points near a curved surface in 12 dimensions, with a little noise."""
    rng = np.random.RandomState(0)
    t = rng.uniform(-2, 2, size=(1200, 2))
    basis = np.linalg.qr(rng.normal(size=(12, 5)))[0].T
    features = np.column_stack([t, t**2, np.sin(2 * t[:, :1])])
    X = features @ basis + 0.01 * rng.normal(size=(1200, 12))
    return X.astype(np.float32)


def test_bfloat16_training_reaches_the_float32_result(curved):
    params = dict(encoding_dim=2, hidden_layer_sizes=(64,), max_iter=30, random_state=0)
    full = AutoencoderTransformer(precision="float32", **params).fit(curved)
    half = AutoencoderTransformer(precision="bfloat16", **params).fit(curved)
    assert (full.precision_, half.precision_) == ("float32", "bfloat16")
    # The weights, the optimizer and the loss stay in float32: the result is
    # within 5% of float32's, far below PCA's error at the same width.
    assert -half.score(curved) == pytest.approx(-full.score(curved), rel=0.05)
    codes = half.transform(curved)
    assert codes.dtype == np.float32
    assert all(coef.dtype == np.float32 for coef in half.coefs_)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
@pytest.mark.parametrize(
    "estimator",
    [
        AutoencoderTransformer(encoding_dim=2, max_iter=3, random_state=0),
        AutoencoderOutlierDetector(encoding_dim=2, max_iter=3, random_state=0),
        AutoencoderImputer(hidden_layer_sizes=(8,), max_iter=2, random_state=0),
    ],
    ids=lambda estimator: type(estimator).__name__,
)
def test_float32_and_bfloat16_train_float32_networks_on_float64_data(curved, estimator, precision):
    X = curved.astype(np.float64)
    fitted = clone(estimator).set_params(precision=precision).fit(X)
    assert fitted.precision_ == precision
    assert all(coef.dtype == np.float32 for coef in fitted.coefs_)
    # The answers come back in the data's dtype, close to a float64 fit's.
    reference = clone(estimator).set_params(precision="auto").fit(X)
    assert reference.precision_ in ("float64", "float32")
    method = "score_samples" if hasattr(fitted, "offset_") else "transform"
    out, expected = getattr(fitted, method)(X), getattr(reference, method)(X)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=0.1, atol=0.1 * np.abs(expected).max())


def test_auto_trains_without_bfloat16_support(curved, monkeypatch):
    monkeypatch.setattr(_choices, "cpu_has_bfloat16", lambda: False)
    monkeypatch.setattr(_choices, "BFLOAT16_MIN_PARAMETERS", 1)
    ae = AutoencoderTransformer(encoding_dim=2, hidden_layer_sizes=(16,), max_iter=2).fit(curved)
    assert ae.precision_ == "float32"
    monkeypatch.setattr(_choices, "cpu_has_bfloat16", lambda: True)
    ae = AutoencoderTransformer(encoding_dim=2, hidden_layer_sizes=(16,), max_iter=2).fit(curved)
    assert ae.precision_ == "bfloat16"
