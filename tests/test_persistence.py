"""Tests of skae.save and skae.load."""

import io
import json
import pathlib
import pickle
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from skae import AutoencoderTransformer, load, save

# Stops after a few epochs without reaching max_iter, so no ConvergenceWarning.
QUICK = dict(max_iter=6, tol=1e9, n_iter_no_change=1, random_state=0)


def _saved(estimator):
    buffer = io.BytesIO()
    save(estimator, buffer)
    return buffer.getvalue()


def _rewrite(data, **members):
    """A copy of the zip archive ``data`` with some members replaced."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    contents.update(members)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in contents.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _with_metadata(data, change):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        metadata = json.loads(archive.read("metadata.json"))
    change(metadata)
    return _rewrite(data, **{"metadata.json": json.dumps(metadata)})


def _assert_same_state(restored, original):
    assert restored.get_params() == original.get_params()
    assert set(vars(restored)) == set(vars(original))
    for name, value in vars(original).items():
        other = getattr(restored, name)
        if isinstance(value, torch.nn.Module):
            assert repr(other) == repr(value)
            assert other.output_activation == value.output_activation
            for key, tensor in value.state_dict().items():
                assert torch.equal(other.state_dict()[key], tensor), key
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(other, value)
            assert other.dtype == value.dtype
        elif isinstance(value, torch.Tensor):
            assert torch.equal(other, value), name
        elif isinstance(value, dict):
            for key, tensors in value.items():
                assert all(torch.equal(a, b) for a, b in zip(other[key], tensors, strict=True))
        else:
            assert other == value, name
            assert type(other) is type(value), name


@pytest.fixture(scope="module")
def fitted(digits):
    X, _ = digits
    return AutoencoderTransformer(encoding_dim=8, **QUICK).fit(X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bit_identical(digits, dtype, tmp_path):
    X = digits[0].astype(dtype)
    ae = AutoencoderTransformer(encoding_dim=8, **QUICK).fit(X)
    path = tmp_path / "model.skae"
    save(ae, path)
    restored = load(path)
    _assert_same_state(restored, ae)
    codes = ae.transform(X)
    assert restored.transform(X).dtype == dtype
    np.testing.assert_array_equal(restored.transform(X), codes)
    np.testing.assert_array_equal(restored.inverse_transform(codes), ae.inverse_transform(codes))
    np.testing.assert_array_equal(restored.score_samples(X), ae.score_samples(X))


def test_round_trip_of_deep_network_with_feature_names(digits):
    X, _ = digits
    frame = pd.DataFrame(X[:300], columns=[f"pixel{i}" for i in range(64)])
    ae = AutoencoderTransformer(
        encoding_dim=4,
        hidden_layer_sizes=(16, 8),
        activation="tanh",
        code_activation="relu",
        output_activation="identity",
        early_stopping=True,
        **QUICK,
    ).fit(frame)
    restored = load(io.BytesIO(_saved(ae)))
    _assert_same_state(restored, ae)
    assert restored.components_ is None
    assert list(restored.get_feature_names_out()) == list(ae.get_feature_names_out())
    np.testing.assert_array_equal(restored.transform(frame), ae.transform(frame))


def test_loaded_estimator_continues_partial_fit_identically(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=8, random_state=0)
    for chunk in np.array_split(X, 3):
        ae.partial_fit(chunk)
    restored = load(io.BytesIO(_saved(ae)))
    ae.partial_fit(X[:500])
    restored.partial_fit(X[:500])
    assert restored.n_iter_ == ae.n_iter_ == 4
    assert restored.t_ == ae.t_
    np.testing.assert_array_equal(restored.transform(X), ae.transform(X))


def test_unfitted_estimator_round_trip(digits):
    ae = AutoencoderTransformer(encoding_dim=5, hidden_layer_sizes=[7], n_iter_no_change=np.inf)
    restored = load(io.BytesIO(_saved(ae)))
    assert restored.get_params() == {**ae.get_params(), "hidden_layer_sizes": (7,)}
    with pytest.raises(NotFittedError):
        restored.transform(digits[0])


def test_random_state_instance_is_refused(digits):
    ae = AutoencoderTransformer(random_state=np.random.RandomState(0))
    with pytest.raises(ValueError, match="Only an int or None random_state can be saved"):
        save(ae, io.BytesIO())


def test_architecture_changed_after_fit_is_refused(fitted):
    changed = pickle.loads(pickle.dumps(fitted))
    changed.set_params(code_activation="tanh")
    with pytest.raises(ValueError, match="does not match the estimator's parameters"):
        save(changed, io.BytesIO())


def test_only_autoencoders_are_saved():
    with pytest.raises(TypeError, match="save expects an AutoencoderTransformer"):
        save({"not": "an estimator"}, io.BytesIO())


class _Payload:
    """Pickles to a call that creates a file, as a malicious pickle would."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_load_never_runs_code_from_the_file(fitted, tmp_path):
    marker = tmp_path / "pwned"
    assert not marker.exists()  # the payload does run when unpickled:
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()
    marker.unlink()

    weights = io.BytesIO()
    torch.save({"module_": _Payload(marker)}, weights)
    for tensors in (weights.getvalue(), pickle.dumps(_Payload(marker))):
        tampered = _rewrite(_saved(fitted), **{"tensors.pt": tensors})
        with pytest.raises(ValueError, match="cannot be read safely"):
            load(io.BytesIO(tampered))
    with pytest.raises(ValueError, match="not a skae model file"):
        load(io.BytesIO(pickle.dumps(_Payload(marker))))
    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    with pytest.raises(ValueError, match="not a skae model file"):
        load(io.BytesIO(buffer.getvalue()))
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0, 10, 0.5, -1])
def test_truncated_file_is_reported(fitted, tmp_path, keep):
    data = _saved(fitted)
    keep = keep if isinstance(keep, int) else int(len(data) * keep)
    path = tmp_path / "model.skae"
    path.write_bytes(data[:keep])
    with pytest.raises(ValueError, match="is not a skae model file, or it is truncated"):
        load(path)


def test_corrupted_bytes_are_reported(fitted):
    data = _saved(fitted)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        starts = [info.header_offset for info in archive.infolist()]
    # Flip bytes inside each member's compressed data, past its local header.
    for position in [start + 200 for start in starts] + [len(data) // 3]:
        corrupted = bytearray(data)
        corrupted[position] ^= 0xFF
        with pytest.raises(ValueError, match="skae model file|cannot be read safely"):
            load(io.BytesIO(bytes(corrupted)))


def test_missing_members_are_reported(fitted):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", "{}")
    with pytest.raises(ValueError, match="it lacks tensors.pt"):
        load(io.BytesIO(buffer.getvalue()))


def _set(path, value):
    def change(metadata):
        *parents, last = path
        for key in parents:
            metadata = metadata[key]
        metadata[last] = value

    return change


@pytest.mark.parametrize(
    "change, error, match",
    [
        (_set(["format"], "other"), ValueError, "no skae format"),
        (_set(["format_version"], 99), ValueError, "format version 99"),
        (_set(["class"], "os.system"), ValueError, "unknown estimator class 'os.system'"),
        (_set(["params", "bogus"], 1), ValueError, r"unknown parameters \['bogus'\]"),
        (_set(["params", "activation"], "evil"), InvalidParameterError, "'activation'"),
        (_set(["attributes", "_validate_params"], {"kind": "json"}), ValueError, "overwrite"),
        (_set(["attributes", "transform"], {"kind": "json", "value": 1}), ValueError, "invalid"),
        (_set(["attributes", "__class__"], {"kind": "json", "value": 1}), ValueError, "invalid"),
        (_set(["attributes", "n_iter_"], {"kind": "pickle"}), ValueError, "n_iter_"),
        (_set(["attributes", "device_", "value"], "gpu:x"), ValueError, "not a device"),
        (_set(["attributes", "n_features_in_", "value"], 10), ValueError, "n_features_in_=10"),
        (_set(["attributes", "n_components_", "value"], 3), ValueError, "n_components_=3"),
        (_set(["attributes", "module_", "spec", "encoding_dim"], 9), ValueError, "do not match"),
        (_set(["attributes", "module_", "spec", "activation"], "x"), ValueError, "activation"),
        (_set(["attributes", "module_", "spec", "dtype"], "int8"), ValueError, "invalid dtype"),
        (
            _set(["attributes", "components_"], {"kind": "json", "value": 1}),
            ValueError,
            "as arrays",
        ),
    ],
)
def test_tampered_metadata_is_reported(fitted, change, error, match):
    tampered = _with_metadata(_saved(fitted), change)
    with pytest.raises(error, match=match):
        load(io.BytesIO(tampered))


def test_tampered_weights_are_reported(fitted):
    state = {k: v.clone() for k, v in fitted.module_.state_dict().items()}
    weights = {"module_": state, "_optimizer_state": fitted._optimizer_state}
    weights["components_"] = torch.from_numpy(fitted.components_)

    def tampered(**changes):
        buffer = io.BytesIO()
        torch.save({**weights, **changes}, buffer)
        return io.BytesIO(_rewrite(_saved(fitted), **{"tensors.pt": buffer.getvalue()}))

    with pytest.raises(ValueError, match="non-finite weights"):
        load(tampered(module_={**state, "scale": torch.tensor(float("nan"))}))
    with pytest.raises(ValueError, match="do not match its description"):
        load(tampered(module_={**state, "encoder.0.weight": torch.zeros(3, 3)}))
    with pytest.raises(ValueError, match="not a dictionary of tensors"):
        load(tampered(module_=[torch.zeros(1)]))
    with pytest.raises(ValueError, match=r"tensors for \['extra_'\]"):
        load(tampered(extra_=torch.zeros(1)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fitted_model_loads_on_cpu(digits, tmp_path):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=8, device="cuda", **QUICK).fit(X)
    save(ae, tmp_path / "model.skae")
    restored = load(tmp_path / "model.skae")
    assert restored.device_.type == "cuda"
    assert all(p.device.type == "cpu" for p in restored.module_.parameters())
    np.testing.assert_array_equal(restored.transform(X), ae.transform(X))
