"""Tests of skae.save and skae.load."""

import io
import json
import pathlib
import pickle
import pickletools
import struct
import time
import tracemalloc
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from conftest import QUICK, assert_same
from skae import AutoencoderImputer, AutoencoderOutlierDetector, AutoencoderTransformer, load, save


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
    # The network is rebuilt from the fitted arrays; ``_module`` caches it.
    assert set(vars(restored)) - {"_module"} == set(vars(original)) - {"_module"}
    for name, value in vars(original).items():
        if name != "_module":
            assert_same(getattr(restored, name), value, name)
    if hasattr(original, "coefs_"):
        module, other = original.module_, restored.module_
        assert repr(other) == repr(module) and other.spec == module.spec
        for key, tensor in module.state_dict().items():
            assert torch.equal(other.state_dict()[key], tensor), key


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


@pytest.mark.parametrize("cls", [AutoencoderTransformer, AutoencoderOutlierDetector])
@pytest.mark.parametrize("shape", [(8, 8), (1, 8, 8)])
def test_tuples_among_the_parameters_come_back_as_tuples(cls, shape):
    estimator = cls(image_shape=shape, hidden_layer_sizes=(4, 2), ordered_codes=False)
    restored = load(io.BytesIO(_saved(estimator)))
    assert restored.image_shape == shape
    assert restored.hidden_layer_sizes == (4, 2)
    assert restored.get_params() == estimator.get_params()


def test_random_state_instance_is_refused(digits):
    ae = AutoencoderTransformer(random_state=np.random.RandomState(0))
    with pytest.raises(ValueError, match="Only an int or None random_state can be saved"):
        save(ae, io.BytesIO())


@pytest.mark.parametrize(
    "change",
    [{"encoding_dim": 3}, {"hidden_layer_sizes": (16,)}, {"code_activation": "tanh"}],
)
def test_architecture_changed_after_fit_is_saved_as_set(fitted, digits, change):
    # The file keeps the parameters as set and the network as fitted;
    # training cannot continue from it until the parameters match again.
    X, _ = digits
    changed = pickle.loads(pickle.dumps(fitted)).set_params(**change)
    restored = load(io.BytesIO(_saved(changed)))
    _assert_same_state(restored, changed)
    np.testing.assert_array_equal(restored.transform(X), fitted.transform(X))
    (name,) = change
    with pytest.raises(ValueError, match=f"{name}=.* differs from the fitted network"):
        restored.partial_fit(X)


def test_only_skae_estimators_are_saved():
    with pytest.raises(TypeError, match="save expects one of skae's estimators"):
        save({"not": "an estimator"}, io.BytesIO())


class _Payload:
    """Pickles to a call that creates a file, as a malicious pickle would."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _npy(array, **kwargs):
    buffer = io.BytesIO()
    np.save(buffer, array, **kwargs)
    return buffer.getvalue()


def test_load_never_runs_code_from_the_file(fitted, tmp_path):
    marker = tmp_path / "pwned"
    assert not marker.exists()  # the payload does run when unpickled:
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()
    marker.unlink()

    data = _saved(fitted)
    weights = io.BytesIO()
    torch.save({"module_": _Payload(marker)}, weights)
    payloads = [
        weights.getvalue(),
        pickle.dumps(_Payload(marker)),
        _npy(np.array([_Payload(marker)], dtype=object), allow_pickle=True),
    ]
    for payload in payloads:
        # In place of an array the metadata names, and as a member it does not.
        with pytest.raises(ValueError, match="magic string|array of a kind skae never saves"):
            load(io.BytesIO(_rewrite(data, **{"arrays/0.npy": payload})))
        load(io.BytesIO(_rewrite(data, **{"tensors.pt": payload})))
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
        # The middle of each member's compressed data, past its local header
        # (30 bytes and the name).
        middles = [
            info.header_offset + 30 + len(info.filename.encode()) + info.compress_size // 2
            for info in archive.infolist()
        ]
    for position in [*middles, len(data) // 3]:
        corrupted = bytearray(data)
        corrupted[position] ^= 0xFF
        with pytest.raises(ValueError, match="skae model file|cannot be read safely"):
            load(io.BytesIO(bytes(corrupted)))


def test_missing_members_are_reported(fitted):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", "{}")
    with pytest.raises(ValueError, match="not a skae model file: its metadata has no skae"):
        load(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(io.BytesIO(_saved(fitted))) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    del contents["arrays/0.npy"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in contents.items():
            archive.writestr(name, content)
    with pytest.raises(ValueError, match="lacks the member 'arrays/0.npy'"):
        load(io.BytesIO(buffer.getvalue()))


def _set(path, value):
    def change(metadata):
        *parents, last = path
        for key in parents:
            metadata = metadata[key]
        metadata[last] = value

    return change


SPEC = ["attributes", "_network_spec", "dict"]


@pytest.mark.parametrize(
    "change, error, match",
    [
        (_set(["format"], "other"), ValueError, "no skae format"),
        (_set(["format_version"], 99), ValueError, "format version 99"),
        (_set(["class"], "os.system"), ValueError, "unknown estimator class 'os.system'"),
        (_set(["params", "bogus"], 1), ValueError, r"unknown parameters \['bogus'\]"),
        (_set(["params", "activation"], "evil"), InvalidParameterError, "'activation'"),
        (_set(["params"], []), ValueError, "no parameters"),
        (_set(["attributes"], []), ValueError, "no attributes"),
        (_set(["output"], {"transform": "evil"}), ValueError, "output configuration"),
        (
            _set(["attributes", "_validate_params"], {"value": 1}),
            ValueError,
            r"does not have: \['_validate_params'\]",
        ),
        (_set(["attributes", "transform"], {"value": 1}), ValueError, "does not have"),
        (_set(["attributes", "__class__"], {"value": 1}), ValueError, "does not have"),
        (_set(["attributes", "components_"], {"value": 1}), ValueError, "does not have"),
        (_set(["attributes", "n_iter_"], {"pickle": "x"}), ValueError, "unknown kind 'pickle'"),
        (_set(["attributes", "n_iter_"], {"value": {"a": 1}}), ValueError, "unknown kind"),
        (_set(["attributes", "shift_"], {"array": 5}), ValueError, "lacks the member 5"),
        (_set(["attributes", "shift_"], {"value": [1.0]}), ValueError, "shift_=\\[1.0\\]"),
        (_set(["attributes", "n_features_in_", "value"], 10), ValueError, "n_features_in_=10"),
        (_set(["attributes", "n_components_", "value"], 3), ValueError, "n_components_=3"),
        (_set([*SPEC, "encoding_dim", "value"], 9), ValueError, "do not match"),
        (_set([*SPEC, "n_features", "value"], 2**40), ValueError, "do not match"),
        (_set([*SPEC, "n_features", "value"], True), ValueError, "invalid n_features"),
        (_set([*SPEC, "activation", "value"], "x"), ValueError, "invalid activation"),
        (_set([*SPEC, "dtype", "value"], "int8"), ValueError, "invalid dtype"),
        (_set([*SPEC, "kind", "value"], "os.system"), ValueError, "invalid kind"),
        (_set([*SPEC, "extra"], {"value": 1}), ValueError, r"unknown fields \['extra'\]"),
        (_set(["attributes", "_network_spec"], {"value": 3}), ValueError, "_network_spec=3"),
        (
            _set(["attributes", "_optimizer_state", "dict", "step"], {"value": "x"}),
            ValueError,
            "optimizer state does not match",
        ),
        (
            _set(["attributes", "_generator_state"], {"value": 1.5}),
            ValueError,
            "_generator_state=1.5",
        ),
        (_set(["attributes", "device_", "value"], "gpu:x"), ValueError, "device"),
        (_set(["attributes", "coefs_"], {"value": 1}), ValueError, "coefs_"),
        (_set(["attributes", "scale_"], {"value": "x"}), ValueError, "scale_"),
        (_set(["attributes", "feature_names_in_"], {"value": 3}), ValueError, "feature_names_in_"),
        (_set(["attributes", "n_iter_", "value"], "x"), ValueError, "n_iter_"),
        (_set(["attributes", "n_iter_", "value"], 0), ValueError, "n_iter_ does not match"),
        (_set(["attributes", "precision_", "value"], "int4"), ValueError, "precision_"),
        (_set(["attributes", "output_activation_", "value"], "x"), ValueError, "output_act"),
        (_set(["attributes", "batch_size_", "value"], 0), ValueError, "batch_size_"),
        (_set(["attributes", "loss_curve_", "value"], "abc"), ValueError, "loss_curve_"),
    ],
)
def test_tampered_metadata_is_reported(fitted, change, error, match):
    tampered = _with_metadata(_saved(fitted), change)
    with pytest.raises(error, match=match):
        load(io.BytesIO(tampered))


def _array_members(fitted):
    """The members of the saved ``fitted`` holding coefs_[0] and shift_."""
    with zipfile.ZipFile(io.BytesIO(_saved(fitted))) as archive:
        attributes = json.loads(archive.read("metadata.json"))["attributes"]
    return attributes["coefs_"]["list"][0]["array"], attributes["shift_"]["array"]


def test_tampered_weights_are_reported(fitted):
    data = _saved(fitted)
    coef, shift = _array_members(fitted)

    def tampered(**changes):
        return io.BytesIO(_rewrite(data, **changes))

    nan_shift = fitted.shift_.copy()
    nan_shift[3] = np.nan
    with pytest.raises(ValueError, match="non-finite weights"):
        load(tampered(**{shift: _npy(nan_shift)}))
    with pytest.raises(ValueError, match="do not match its description"):
        load(tampered(**{coef: _npy(np.zeros((3, 3), np.float32))}))
    with pytest.raises(ValueError, match="not float32 arrays"):
        load(tampered(**{coef: _npy(fitted.coefs_[0].astype(np.float64))}))
    for kind in (np.zeros(4, dtype="complex64"), np.zeros(4, dtype=">f4"), np.zeros(4, "U3")):
        with pytest.raises(ValueError, match="array of a kind skae never saves"):
            load(tampered(**{coef: _npy(kind)}))
    with pytest.raises(ValueError, match="array of a kind skae never saves"):
        load(tampered(**{coef: _npy(np.asfortranarray(fitted.coefs_[0]))}))
    with pytest.raises(ValueError, match="does not hold the array its header describes"):
        load(tampered(**{coef: _npy(fitted.coefs_[0])[:-4]}))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fitted_model_loads_on_cpu(digits, tmp_path):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=8, device="cuda", **QUICK).fit(X)
    save(ae, tmp_path / "model.skae")
    restored = load(tmp_path / "model.skae")
    assert restored.device_ == "cuda"
    assert all(p.device.type == "cpu" for p in restored.module_.parameters())
    np.testing.assert_array_equal(restored.transform(X), ae.transform(X))


# Damaged and hostile files: a ValueError, quickly, without large allocations.


@pytest.fixture(scope="module")
def small_file():
    """A small fitted model, its saved bytes, and data it transforms."""
    X = np.random.RandomState(0).rand(40, 6)
    ae = AutoencoderTransformer(encoding_dim=2, **QUICK).fit(X)
    return ae, _saved(ae), X


def _load_quickly(data):
    """Load ``data`` and return the estimator, checking traced memory and time.

    The memory bound catches a file that inflates; the time bound, generous
    for a busy machine (a load takes milliseconds), one that sends the
    reader into a loop.
    """
    tracemalloc.start()
    start = time.perf_counter()
    try:
        return load(io.BytesIO(data))
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert elapsed < 30 and peak < 2**24, (elapsed, peak)


def _structure(data):
    """Offsets of the zip records: each member's local header and data, and
    the central directory with the end record."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        directory = archive.start_dir
    members = []
    for info in infos:
        name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 :][:4])
        members.append((info, info.header_offset + 30 + name_length + extra_length))
    return members, directory


def test_every_flipped_byte_gives_a_value_error(small_file):
    ae, data, X = small_file
    members, directory = _structure(data)
    # Every byte of the zip records and of the start of each member (the
    # .npy headers, and the Huffman tables that decode them), and every 13th
    # byte of the rest.
    positions = set(range(directory, len(data))) | set(range(0, len(data), 13))
    for info, start in members:
        positions |= set(range(info.header_offset, start + 160))
    for position in sorted(positions):
        corrupted = bytearray(data)
        corrupted[position] ^= 0xFF
        try:
            restored = _load_quickly(bytes(corrupted))
        except ValueError:
            continue
        # A flip that load cannot see (a timestamp, say) changes nothing.
        np.testing.assert_array_equal(restored.transform(X), ae.transform(X))


def _patch_header(data, member, **fields):
    """``data`` with fields of ``member``'s local and central zip headers set."""
    offsets = {  # local header, central directory entry
        "version": (4, 6),
        "flags": (6, 8),
        "method": (8, 10),
    }
    data = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo(member)
        directory = archive.start_dir
    entry = data.index(b"PK\x01\x02" + data[directory + 4 : directory + 6], directory)
    while not data[entry + 46 :].startswith(member.encode()):
        entry = data.index(b"PK\x01\x02", entry + 4)
    for name, value in fields.items():
        local, central = offsets[name]
        struct.pack_into("<H", data, info.header_offset + local, value)
        struct.pack_into("<H", data, entry + central, value)
    return bytes(data)


@pytest.mark.parametrize("member", ["metadata.json", "arrays/0.npy"])
@pytest.mark.parametrize(
    "fields, match",
    [
        ({"method": 1}, "compression method"),  # "shrink", which zipfile cannot read
        ({"method": 99}, "compression method"),  # AES encryption
        ({"flags": 1}, "encrypted"),
        ({"version": 0xFF}, "zip file version"),
    ],
)
def test_unsupported_zip_features_are_reported(small_file, member, fields, match):
    _, data, _ = small_file
    with pytest.raises(ValueError, match=f"not a skae model file.*{match}"):
        _load_quickly(_patch_header(data, member, **fields))


@pytest.mark.parametrize(
    "field, value",
    [
        ("n_features", 2**40),
        ("encoding_dim", 2**40),
        ("hidden_layer_sizes", [2**40, 2**40]),
    ],
)
def test_absurd_network_description_fails_before_allocating(small_file, field, value):
    _, data, _ = small_file
    tampered = _with_metadata(
        data, _set(["attributes", "_network_spec", "dict", field], {"value": value})
    )
    with pytest.raises(ValueError, match="do not match its description"):
        _load_quickly(tampered)


def _npy_header(shape, dtype="<f8"):
    """A .npy file that claims ``shape`` and holds 8 bytes of data."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header = header.ljust(118) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(8)


@pytest.mark.parametrize("shape", [(2**40,), (2**31, 2**31), (2**62, 4), (-1, 8)])
def test_array_claiming_a_huge_shape_fails_before_allocating(small_file, shape):
    ae, data, _ = small_file
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        attributes = json.loads(archive.read("metadata.json"))["attributes"]
    member = attributes["shift_"]["array"]
    with pytest.raises(ValueError):
        _load_quickly(_rewrite(data, **{member: _npy_header(shape)}))


def test_member_claiming_an_impossible_size_is_reported(small_file):
    _, data, _ = small_file
    data = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("arrays/0.npy")
        directory = archive.start_dir
    # The uncompressed size, in the member's local header and central entry.
    struct.pack_into("<I", data, info.header_offset + 22, 2**32 - 1)
    entry = data.index(b"PK\x01\x02", directory)
    while not data[entry + 46 :].startswith(b"arrays/0.npy"):
        entry = data.index(b"PK\x01\x02", entry + 4)
    struct.pack_into("<I", data, entry + 24, 2**32 - 1)
    with pytest.raises(ValueError, match="impossible size|not a skae model file"):
        _load_quickly(bytes(data))


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deeply_nested_metadata_is_reported(small_file, depth):
    _, data, _ = small_file
    nested = "[" * depth + "]" * depth
    for metadata in (
        '{"format": "skae", "format_version": 2, "params": ' + nested + "}",
        '{"format": "skae", "format_version": 2, "attributes": {"n_iter_": {"value": '
        + nested
        + "}}}",
    ):
        tampered = _rewrite(data, **{"metadata.json": metadata})
        with pytest.raises(ValueError):
            _load_quickly(tampered)


def test_pandas_output_is_saved_and_kept(digits):
    X, _ = digits
    frame = pd.DataFrame(X[:300], columns=[f"pixel{i}" for i in range(64)])
    ae = AutoencoderTransformer(encoding_dim=3, **QUICK).set_output(transform="pandas")
    ae.fit(frame)
    restored = load(io.BytesIO(_saved(ae)))
    codes = restored.transform(frame)
    assert isinstance(codes, pd.DataFrame)
    pd.testing.assert_frame_equal(codes, ae.transform(frame))
    # Unfitted too.
    unfitted = load(io.BytesIO(_saved(clone(ae))))
    assert isinstance(unfitted.fit(frame).transform(frame), pd.DataFrame)


def _pickled_globals(data):
    """The ``module.name`` of every global a pickle refers to."""
    names, strings = [], []
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(argument)
        elif opcode.name == "STACK_GLOBAL":
            names.append(".".join(strings[-2:]))
        elif opcode.name in ("GLOBAL", "INST"):
            names.append(argument.replace(" ", "."))
    return names


@pytest.mark.parametrize("hidden", [(), (8,)])
def test_pickles_hold_no_torch_objects(digits, hidden):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=4, hidden_layer_sizes=hidden, **QUICK).fit(X)
    ae.transform(X)  # builds and caches the network
    assert ae.module_ is not None
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        data = pickle.dumps(ae, protocol=protocol)
        names = _pickled_globals(data)
        assert any(name.startswith("skae.") for name in names), names
        assert not [name for name in names if name.startswith("torch")], names
        assert b"torch" not in data
        np.testing.assert_array_equal(pickle.loads(data).transform(X), ae.transform(X))
    buffer = io.BytesIO()
    joblib.dump(ae, buffer)
    assert b"torch" not in buffer.getvalue()


# The imputer's and the outlier detector's own fitted state


@pytest.fixture(scope="module")
def fitted_imputer(digits):
    X = digits[0][:300] / 16
    X[np.random.default_rng(0).random(X.shape) < 0.2] = np.nan
    return AutoencoderImputer(hidden_layer_sizes=(8,), max_iter=1, random_state=0).fit(X), X


@pytest.fixture(scope="module")
def fitted_detector(digits):
    X = digits[0][:300] / 16
    return AutoencoderOutlierDetector(encoding_dim=6, max_iter=1, random_state=0).fit(X), X


def _with_attribute(data, name, value):
    """A copy of the saved ``data`` whose attribute ``name`` holds ``value``, or lacks it."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        metadata = json.loads(archive.read("metadata.json"))
    members = {}
    if value is _MISSING:
        del metadata["attributes"][name]
    elif isinstance(value, np.ndarray):
        buffer = io.BytesIO()
        np.save(buffer, value)
        members["arrays/tampered.npy"] = buffer.getvalue()
        metadata["attributes"][name] = {"array": "arrays/tampered.npy"}
    else:
        metadata["attributes"][name] = {"value": value}
    return _rewrite(data, **{"metadata.json": json.dumps(metadata)}, **members)


_MISSING = object()


def test_imputer_and_detector_round_trip(fitted_imputer, fitted_detector):
    """Their own fitted state passes the checks and comes back as it was."""
    imputer, X = fitted_imputer
    # The nearest training rows' blend is part of the imputer's state.
    assert imputer.neighbor_weight_ > 0 and imputer._neighbor_rows.shape == (300, 64)
    restored = load(io.BytesIO(_saved(imputer)))
    np.testing.assert_array_equal(restored._fill_components, imputer._fill_components)
    np.testing.assert_array_equal(restored._neighbor_rows, imputer._neighbor_rows)
    assert restored.neighbor_weight_ == imputer.neighbor_weight_
    np.testing.assert_array_equal(restored.transform(X), imputer.transform(X))
    detector, X = fitted_detector
    restored = load(io.BytesIO(_saved(detector)))
    np.testing.assert_array_equal(restored._train_codes, detector._train_codes)
    np.testing.assert_array_equal(restored.decision_function(X), detector.decision_function(X))


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("offset_", float("nan"), r"offset_=nan is not one skae writes: a finite number"),
        ("offset_", "0.5", r"offset_='0.5' is not one skae writes"),
        ("offset_", _MISSING, r"lacks \['offset_'\]"),
        ("n_neighbors_", 0, r"n_neighbors_=0 is not one skae writes: a count from 1 to 299"),
        ("n_neighbors_", 300, r"n_neighbors_=300 is not one skae writes"),
        ("n_neighbors_", True, r"n_neighbors_=True is not one skae writes"),
        ("_train_codes", _MISSING, r"lacks \['_train_codes'\]"),
        ("_train_codes", np.full((300, 6), np.nan), r"_train_codes=.* a finite float64 array"),
        ("_train_codes", np.zeros((300, 7)), r"_train_codes=.* of shape \(nx6\)"),
        ("_train_codes", np.zeros((300, 6), dtype=np.float32), r"_train_codes=.*float64"),
        ("_score_scale", np.array([0.0, 1.0]), r"_score_scale=.* positive spreads"),
        ("_score_scale", np.array([1.0, -1.0]), r"_score_scale=.* positive spreads"),
        ("_score_scale", np.array([1.0]), r"_score_scale=.* of shape \(2\)"),
        ("_score_location", np.array([np.nan, 0.0]), r"_score_location=.* a finite"),
        ("_distance_location", float("nan"), r"_distance_location=nan .* a finite number"),
        ("_distance_location", "1.0", r"_distance_location='1.0' is not one skae writes"),
        ("_distance_location", _MISSING, r"lacks \['_distance_location'\]"),
        ("_distance_scale", 0.0, r"_distance_scale=0.0 .* a finite positive number"),
        ("_distance_scale", -1.0, r"_distance_scale=-1.0 .* a finite positive number"),
        ("_distance_scale", float("inf"), r"_distance_scale=inf .* a finite positive number"),
        ("_distance_scale", _MISSING, r"lacks \['_distance_scale'\]"),
    ],
)
def test_tampered_detector_state(fitted_detector, name, value, message):
    detector, _ = fitted_detector
    assert detector.n_components_ == 6
    with pytest.raises(ValueError, match="(?s)" + message):
        load(io.BytesIO(_with_attribute(_saved(detector), name, value)))


def test_detector_file_without_the_distance_term_loads_and_scores_without_it(fitted_detector):
    # A file written before the distance term holds neither of its attributes.
    detector, X = fitted_detector
    data = _saved(detector)
    for name in ("_distance_location", "_distance_scale"):
        data = _with_attribute(data, name, _MISSING)
    loaded = load(io.BytesIO(data))
    terms = detector._terms(detector._validate_for_inference(X))
    expected = -((terms[:, :2] - detector._score_location) / detector._score_scale).sum(axis=1)
    np.testing.assert_allclose(loaded.score_samples(X), expected, rtol=1e-12)
    assert not np.allclose(detector.score_samples(X), expected)


def test_imputer_file_without_the_neighbours_blend_imputes_as_before(fitted_imputer):
    # A file written before the blend holds none of its attributes: the
    # imputer fills with its network alone, as it did.
    imputer, X = fitted_imputer
    data = _saved(imputer)
    for name in ("n_neighbors_", "neighbor_weight_", "_neighbor_rows", "_neighbor_observed"):
        data = _with_attribute(data, name, _MISSING)
    loaded = load(io.BytesIO(data))
    assert loaded.neighbor_weight_ == 0 and loaded._neighbor_rows.shape == (0, 64)
    before = pickle.loads(pickle.dumps(imputer))
    before.neighbor_weight_ = 0.0
    np.testing.assert_array_equal(loaded.transform(X), before.transform(X))
    assert not np.array_equal(loaded.transform(X), imputer.transform(X))
    # And it saves and loads again as it is.
    np.testing.assert_array_equal(
        load(io.BytesIO(_saved(loaded))).transform(X), before.transform(X)
    )


def test_imputer_file_without_bounds_fills_unbounded(fitted_imputer):
    # A file written before the bounds holds neither: the fill is not clipped.
    imputer, X = fitted_imputer
    assert np.isfinite(imputer._min_value).all() and np.isfinite(imputer._max_value).any()
    data = _saved(imputer)
    for name in ("_min_value", "_max_value"):
        data = _with_attribute(data, name, _MISSING)
    loaded = load(io.BytesIO(data))
    assert np.isneginf(loaded._min_value).all() and np.isposinf(loaded._max_value).all()
    before = pickle.loads(pickle.dumps(imputer))
    before._min_value, before._max_value = loaded._min_value, loaded._max_value
    np.testing.assert_array_equal(loaded.transform(X), before.transform(X))
    assert not np.array_equal(loaded.transform(X), imputer.transform(X))


def test_imputer_skops_round_trip(fitted_imputer):
    sio = pytest.importorskip("skops.io")
    imputer, X = fitted_imputer
    data = sio.dumps(imputer)
    assert sio.get_untrusted_types(data=data) == ["skae._imputer.AutoencoderImputer"]
    loaded = sio.loads(data, trusted=["skae._imputer.AutoencoderImputer"])
    assert loaded.neighbor_weight_ == imputer.neighbor_weight_ > 0
    np.testing.assert_array_equal(loaded.transform(X), imputer.transform(X))


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("_fill_components", _MISSING, r"lacks \['_fill_components'\]"),
        ("_column_scale", [1.0] * 64, r"_column_scale=\[1.0, .* a finite float32 or float64"),
        ("_column_scale", np.full(64, np.nan), r"_column_scale=.* a finite"),
        ("_column_scale", np.zeros(64), r"_column_scale=.* positive scales"),
        ("_column_scale", np.ones(63), r"_column_scale=.* of shape \(64\)"),
        ("_column_location", np.ones(65), r"_column_location=.* of shape \(64\)"),
        ("_fill_mean", np.zeros(63), r"_fill_mean=.* of shape \(64\)"),
        ("_fill_components", "components", r"_fill_components='components'"),
        ("_fill_weights", "nan", r"_fill_weights='nan'"),
        ("_missing_features", np.array([70]), r"_missing_features=.* below 64"),
        ("_empty_features", np.array([3, 1]), r"_empty_features=.* increasing"),
        ("_missing_features", np.array([1.0]), r"_missing_features=.* int64 array"),
        ("n_neighbors_", _MISSING, r"lacks \['n_neighbors_'\]"),
        ("_neighbor_rows", np.ones((300, 63)), r"_neighbor_rows=.* of shape \(nx64\)"),
        ("_neighbor_rows", np.full((300, 64), np.inf), r"_neighbor_rows=.* a finite float"),
        ("_neighbor_observed", np.ones((300, 64)), r"_neighbor_observed=.* a finite bool"),
        ("_neighbor_observed", np.ones((299, 64), bool), r"_neighbor_observed=.* \(300x64\)"),
        ("neighbor_weight_", 1.5, r"neighbor_weight_=1.5 .* a number from 0 to 1"),
        ("neighbor_weight_", "nan", r"neighbor_weight_='nan' .* a number from 0 to 1"),
        ("n_neighbors_", 301, r"n_neighbors_=301 .* a count from 1 to 300"),
        ("n_neighbors_", 0, r"n_neighbors_=0 .* a count from 1 to 300"),
        ("_min_value", _MISSING, r"lacks \['_min_value'\]"),
        ("_min_value", np.full(64, np.nan), r"_min_value=.* without NaN"),
        ("_min_value", np.zeros(64, dtype=np.float32), r"_min_value=.* a float64 array"),
        ("_max_value", np.zeros(63), r"_max_value=.* of shape \(64,\)"),
        ("_max_value", np.full(64, -1.0), r"_max_value=.* at least _min_value"),
        ("_min_value", np.full(64, np.inf), r"_min_value=.* without NaN or inf"),
        ("_max_value", np.full(64, -np.inf), r"_max_value=.* without NaN or -inf"),
    ],
)
def test_tampered_imputer_state(fitted_imputer, name, value, message):
    imputer, _ = fitted_imputer
    with pytest.raises(ValueError, match="(?s)" + message):
        load(io.BytesIO(_with_attribute(_saved(imputer), name, value)))


@pytest.mark.parametrize("change", ["nan", "weights", "orthonormal", "dtype", "rows dtype"])
def test_tampered_imputer_model(fitted_imputer, change):
    """The linear model's arrays: finite, weights in [0, 1), orthonormal components.

    The nearest training rows are in the model's dtype.
    """
    imputer, _ = fitted_imputer
    components, weights = imputer._fill_components.copy(), imputer._fill_weights.copy()
    name, value, message = {
        "nan": ("_fill_components", np.where(components > 0, np.nan, components), "a finite"),
        "weights": ("_fill_weights", weights + 1, "weights in \\[0, 1\\)"),
        "orthonormal": ("_fill_components", 2 * components, "orthonormal components"),
        "dtype": ("_fill_mean", imputer._fill_mean.astype(np.float32), "_fill_mean=.* float64"),
        "rows dtype": (None, None, None),
    }[change]
    if change == "dtype" and imputer._fill_components.dtype == np.float32:
        value = imputer._fill_mean.astype(np.float64)
        message = "_fill_mean=.* float32 array"
    if change == "rows dtype":
        other = {np.float32: np.float64, np.float64: np.float32}
        rows = imputer._neighbor_rows
        name, value = "_neighbor_rows", rows.astype(other[rows.dtype.type])
        message = f"_neighbor_rows=.* a finite {rows.dtype.name} array"
    with pytest.raises(ValueError, match="(?s)" + message):
        load(io.BytesIO(_with_attribute(_saved(imputer), name, value)))
