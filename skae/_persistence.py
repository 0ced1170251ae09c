"""Saving and loading fitted autoencoders without executing code from the file.

A saved model is one zip archive holding ``metadata.json``, the estimator's
parameters and plain fitted attributes as JSON, and ``tensors.pt``, the
network's weights and the array attributes written by :func:`torch.save` and
read back with ``torch.load(..., weights_only=True)``, which accepts tensors
and containers of them and refuses anything else. The network is rebuilt
from the parameters, never unpickled.
"""

import io
import json
import os
import re
import zipfile
import zlib
from numbers import Integral, Real

import numpy as np
import torch

from skae._autoencoder import AutoencoderTransformer
from skae._network import ACTIVATIONS, Autoencoder

FORMAT = "skae"
FORMAT_VERSION = 1
_METADATA = "metadata.json"
_TENSORS = "tensors.pt"
# Fitted attributes end with an underscore; private state starts with one.
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z]\w*_|_[A-Za-z]\w*")


def _skae_version():
    # Imported here: skae/__init__.py imports this module.
    from skae import __version__

    return __version__


def _is_plain(value):
    """Whether ``value`` is JSON made of None, bool, int, float, str and lists."""
    if value is None or isinstance(value, (bool, str)):
        return True
    if isinstance(value, (Integral, Real)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    return False


def _to_plain(value):
    """``value`` with numpy scalars turned into Python ones, tuples into lists."""
    if isinstance(value, (list, tuple)):
        return [_to_plain(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    return value


def _is_tensors(value):
    """Whether ``value`` is a tensor or nested dicts and lists of tensors."""
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_tensors(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_is_tensors(item) for item in value)
    return False


def _build_network(spec):
    return Autoencoder(
        spec["n_features"],
        spec["encoding_dim"],
        spec["hidden_layer_sizes"],
        spec["activation"],
        spec["code_activation"],
        spec["output_activation"],
        dtype=getattr(torch, spec["dtype"]),
    )


def _network_spec(estimator, module):
    """The arguments that rebuild ``module``, checked against it."""
    spec = {
        "n_features": int(estimator.n_features_in_),
        "encoding_dim": int(estimator.n_components_),
        "hidden_layer_sizes": [int(width) for width in estimator.hidden_layer_sizes],
        "activation": estimator.activation,
        "code_activation": estimator.code_activation,
        "output_activation": module.output_activation,
        "dtype": str(module.scale.dtype).removeprefix("torch."),
    }
    rebuilt = _build_network(spec)
    if repr(rebuilt) != repr(module) or rebuilt.scale.dtype != module.scale.dtype:
        raise ValueError(
            "The fitted network does not match the estimator's parameters (were "
            "hidden_layer_sizes, activation or code_activation changed after fit?). "
            "Fit again before saving, or use pickle."
        )
    return spec


def _encode_params(estimator):
    params = {}
    for name, value in estimator.get_params(deep=False).items():
        if name == "random_state" and not (value is None or isinstance(value, Integral)):
            raise ValueError(
                "Only an int or None random_state can be saved, got "
                f"{type(value).__name__}. Set an int with "
                "set_params(random_state=...) before saving, or use pickle."
            )
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if not _is_plain(value):
            raise ValueError(
                f"Cannot save parameter {name}={value!r} of type {type(value).__name__}."
            )
        params[name] = _to_plain(value)
    return params


def _encode_attributes(estimator):
    """Split the fitted state into JSON entries and tensors."""
    attributes, tensors = {}, {}
    for name, value in vars(estimator).items():
        if name in estimator.get_params(deep=False):
            continue
        if isinstance(value, Autoencoder):
            attributes[name] = {"kind": "network", "spec": _network_spec(estimator, value)}
            tensors[name] = {k: v.detach().cpu() for k, v in value.state_dict().items()}
        elif isinstance(value, torch.device):
            attributes[name] = {"kind": "device", "value": str(value)}
        elif isinstance(value, np.ndarray) and value.dtype == object:
            if not all(isinstance(item, str) for item in value.ravel()):
                raise ValueError(f"Cannot save attribute {name}: an object array of non-strings.")
            attributes[name] = {"kind": "strings", "value": value.tolist()}
        elif isinstance(value, np.ndarray):
            attributes[name] = {"kind": "array"}
            tensors[name] = torch.from_numpy(np.ascontiguousarray(value))
        elif _is_tensors(value):
            attributes[name] = {"kind": "tensors"}
            tensors[name] = value
        elif _is_plain(value):
            kind = "tuple" if isinstance(value, tuple) else "json"
            attributes[name] = {"kind": kind, "value": _to_plain(value)}
        else:
            raise ValueError(
                f"Cannot save attribute {name} of type {type(value).__name__}; "
                "use pickle or joblib."
            )
    return attributes, tensors


def save(estimator, file):
    """Save an autoencoder to a file that :func:`load` reads without running code.

    The file is a zip archive with the parameters and plain attributes in
    ``metadata.json`` and the network's weights in ``tensors.pt``. Both the
    fitted state and the optimizer's state are kept, so that a loaded
    estimator transforms exactly as the saved one and can go on with
    :meth:`~skae.AutoencoderTransformer.partial_fit`. An unfitted estimator
    is saved with its parameters only.

    Parameters
    ----------
    estimator : AutoencoderTransformer
        The estimator to save. Its ``random_state`` must be an int or None.

    file : str, path-like or file-like object
        Where to write. A file object must be open for binary writing.

    See Also
    --------
    load : Read an estimator saved by this function.

    Examples
    --------
    >>> import numpy as np
    >>> from skae import AutoencoderTransformer, load, save
    >>> X = np.random.RandomState(0).rand(100, 6)
    >>> ae = AutoencoderTransformer(encoding_dim=2, random_state=0)
    >>> for chunk in np.array_split(X, 4):
    ...     ae = ae.partial_fit(chunk)
    >>> import io
    >>> buffer = io.BytesIO()
    >>> save(ae, buffer)
    >>> restored = load(buffer)
    >>> bool((restored.transform(X) == ae.transform(X)).all())
    True
    """
    if not isinstance(estimator, AutoencoderTransformer):
        raise TypeError(f"save expects an AutoencoderTransformer, got {type(estimator).__name__}.")
    attributes, tensors = _encode_attributes(estimator)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "skae_version": _skae_version(),
        "torch_version": torch.__version__,
        "class": type(estimator).__name__,
        "params": _encode_params(estimator),
        "attributes": attributes,
    }
    weights = io.BytesIO()
    torch.save(tensors, weights)
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_METADATA, json.dumps(metadata, indent=1))
        archive.writestr(_TENSORS, weights.getvalue())


def _read(file):
    """The metadata and tensors of a saved file, or a ValueError."""
    name = os.fspath(file) if isinstance(file, (str, os.PathLike)) else "the file"
    try:
        with zipfile.ZipFile(file) as archive:
            members = set(archive.namelist())
            missing = {_METADATA, _TENSORS} - members
            if not missing:
                metadata = json.loads(archive.read(_METADATA))
                weights = archive.read(_TENSORS)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        # ValueError covers invalid JSON and UTF-8.
        raise ValueError(
            f"{name} is not a skae model file, or it is truncated or corrupted: {e}"
        ) from e
    if missing:
        raise ValueError(
            f"{name} is not a skae model file: it lacks {', '.join(sorted(missing))}."
        )
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{name} is not a skae model file: its metadata has no skae format.")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{name} has format version {metadata.get('format_version')!r}, but this "
            f"version of skae ({_skae_version()}) reads version {FORMAT_VERSION}; it was "
            f"written by skae {metadata.get('skae_version')!r}."
        )
    if metadata.get("class") != AutoencoderTransformer.__name__:
        raise ValueError(f"{name} holds an unknown estimator class {metadata.get('class')!r}.")
    try:
        tensors = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(
            f"The weights in {name} cannot be read safely; the file is corrupted or "
            f"was not written by skae.save: {e}"
        ) from e
    if not isinstance(tensors, dict):
        raise ValueError(f"The weights in {name} are not a dictionary of tensors.")
    return metadata, tensors


def _decode_params(metadata):
    params = metadata.get("params")
    if not isinstance(params, dict):
        raise ValueError("The file's metadata has no parameters.")
    known = AutoencoderTransformer().get_params(deep=False)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"The file sets unknown parameters {unknown}; it was written by skae "
            f"{metadata.get('skae_version')!r}, a version this one cannot read."
        )
    params = dict(params)
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    return params


def _check_attribute_name(name):
    if not isinstance(name, str) or not _ATTRIBUTE_NAME.fullmatch(name) or name.startswith("__"):
        raise ValueError(f"The file sets an invalid attribute name {name!r}.")
    if hasattr(AutoencoderTransformer, name):
        raise ValueError(f"The file would overwrite {AutoencoderTransformer.__name__}.{name}.")


def _check_spec(spec):
    """Check a network description read from a file, field by field."""
    if not isinstance(spec, dict):
        raise ValueError("The file's network description is not a dictionary.")
    fields = {
        "n_features": lambda v: isinstance(v, int) and v >= 1,
        "encoding_dim": lambda v: isinstance(v, int) and v >= 1,
        "hidden_layer_sizes": lambda v: (
            isinstance(v, list) and all(isinstance(w, int) and w >= 1 for w in v)
        ),
        "activation": lambda v: v in ACTIVATIONS,
        "code_activation": lambda v: v in ACTIVATIONS,
        "output_activation": lambda v: v in ("identity", "sigmoid", "clip"),
        "dtype": lambda v: v in ("float32", "float64"),
    }
    for name, valid in fields.items():
        if name not in spec or isinstance(spec[name], bool) or not valid(spec[name]):
            raise ValueError(
                f"The file's network has an invalid {name}: {spec.get(name, 'missing')!r}."
            )
    if set(spec) != set(fields):
        raise ValueError(
            f"The file's network has unknown fields {sorted(set(spec) - set(fields))}."
        )


def _rebuild_network(spec, state):
    """The network described by ``spec``, holding the weights ``state``."""
    _check_spec(spec)
    if not isinstance(state, dict) or not _is_tensors(state):
        raise ValueError("The file's network weights are not a dictionary of tensors.")
    module = _build_network(spec)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"The file's network weights do not match its description: {e}") from e
    if not all(torch.isfinite(t).all() for t in module.state_dict().values()):
        raise ValueError("The file's network has non-finite weights.")
    return module.eval()


def load(file):
    """Load an autoencoder saved by :func:`save`, without running code from the file.

    The parameters are read from JSON and checked as ``fit`` checks them;
    the weights are read with ``torch.load(..., weights_only=True)``, which
    builds tensors only; the network is rebuilt from its description in the
    file and checked against the weights. A file
    that is truncated, corrupted, tampered with or written by an
    incompatible version raises a ValueError that says what is wrong.

    Parameters
    ----------
    file : str, path-like or file-like object
        The file to read. A file object must be open for binary reading and
        seekable.

    Returns
    -------
    estimator : AutoencoderTransformer
        The estimator, fitted if it was fitted when saved, with its network
        on CPU.

    See Also
    --------
    save : Write an estimator to a file.

    Examples
    --------
    >>> import io
    >>> from skae import AutoencoderTransformer, load, save
    >>> buffer = io.BytesIO()
    >>> save(AutoencoderTransformer(encoding_dim=3), buffer)
    >>> load(buffer)
    AutoencoderTransformer(encoding_dim=3)
    """
    metadata, tensors = _read(file)
    estimator = AutoencoderTransformer(**_decode_params(metadata))
    estimator._validate_params()
    attributes = metadata.get("attributes")
    if not isinstance(attributes, dict):
        raise ValueError("The file's metadata has no attributes.")
    expected = {
        name
        for name, entry in attributes.items()
        if isinstance(entry, dict) and entry.get("kind") in ("network", "array", "tensors")
    }
    unexpected = set(tensors) - expected
    if unexpected:
        raise ValueError(
            f"The file holds tensors for {sorted(unexpected)}, which its metadata does not "
            "list as arrays."
        )
    for name, entry in attributes.items():
        setattr(estimator, name, _decode_attribute(name, entry, tensors))
    _check_consistency(estimator, attributes)
    return estimator


def _decode_attribute(name, entry, tensors):
    _check_attribute_name(name)
    kind = entry.get("kind") if isinstance(entry, dict) else None
    if kind in ("network", "array", "tensors"):
        if name not in tensors:
            raise ValueError(f"The file lacks the tensors of attribute {name!r}.")
        value = tensors[name]
        if kind == "network":
            return _rebuild_network(entry.get("spec"), value)
        if kind == "array":
            if not isinstance(value, torch.Tensor):
                raise ValueError(f"Attribute {name!r} is not a tensor.")
            return value.numpy()
        return value
    value = entry.get("value") if isinstance(entry, dict) else None
    if kind == "device" and isinstance(value, str):
        try:
            return torch.device(value)
        except RuntimeError as e:
            raise ValueError(f"Attribute {name!r} is not a device: {value!r}.") from e
    if kind == "strings" and isinstance(value, list) and all(isinstance(s, str) for s in value):
        return np.asarray(value, dtype=object)
    if kind == "tuple" and isinstance(value, list) and _is_plain(value):
        return tuple(value)
    if kind == "json" and _is_plain(value):
        return value
    raise ValueError(f"Attribute {name!r} has an invalid entry of kind {kind!r}.")


def _check_consistency(estimator, attributes):
    """Check that the fitted attributes describe the network they come with."""
    networks = [name for name, entry in attributes.items() if entry["kind"] == "network"]
    if not networks:
        return
    spec = attributes[networks[0]]["spec"]
    if getattr(estimator, "n_features_in_", None) != spec["n_features"]:
        raise ValueError(
            f"The file's n_features_in_={getattr(estimator, 'n_features_in_', None)!r} "
            f"does not match its network's {spec['n_features']} inputs."
        )
    if getattr(estimator, "n_components_", None) != spec["encoding_dim"]:
        raise ValueError(
            f"The file's n_components_={getattr(estimator, 'n_components_', None)!r} "
            f"does not match its network's {spec['encoding_dim']} codes."
        )
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and len(names) != spec["n_features"]:
        raise ValueError(
            f"The file has {len(names)} feature names for {spec['n_features']} features."
        )
