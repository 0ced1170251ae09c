"""Saving and loading fitted estimators without executing code from the file.

A saved model is one zip archive holding ``metadata.json``, the estimator's
class, parameters and plain fitted attributes as JSON, and one ``.npy``
member for each array of its fitted state, read back with checks of their
header, dtype and size before any allocation and without pickle. The
network is rebuilt from its description, never unpickled.
"""

import io
import json
import os
import tokenize
import zipfile
import zlib
from numbers import Integral, Real

import numpy as np

from skae._autoencoder import AutoencoderTransformer
from skae._impute._missing import is_pandas_na
from skae._imputer import AutoencoderImputer
from skae._outlier import AutoencoderOutlierDetector
from skae._version import __version__

FORMAT = "skae"
FORMAT_VERSION = 2
_METADATA = "metadata.json"
_CLASSES = {
    cls.__name__: cls
    for cls in (AutoencoderImputer, AutoencoderOutlierDetector, AutoencoderTransformer)
}
# Arrays of these dtypes are read; anything else (objects above all) is refused.
_DTYPES = ("float32", "float64", "int64", "uint8", "bool")
_MAX_METADATA_BYTES = 2**26
_MAX_DEPTH = 6
# Deflate compresses at most about 1032:1; a member claiming more is forged.
_MAX_RATIO = 1100


def _skae_version():
    return __version__


# How a parameter set to pandas' NA (the imputer's missing_values) is written.
PANDAS_NA = {"pandas": "NA"}


def _is_plain(value):
    """Whether ``value`` is JSON made of None, bool, int, float, str and lists."""
    if value is None or isinstance(value, (bool, str, Integral, Real)):
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


class _Writer:
    """Encodes values as JSON entries, collecting their arrays as ``.npy`` members."""

    def __init__(self):
        self.members = {}

    def encode(self, name, value):
        if isinstance(value, np.ndarray) and value.dtype == object:
            if not all(isinstance(item, str) for item in value.ravel()):
                raise ValueError(f"Cannot save {name}: an object array of non-strings.")
            return {"strings": value.tolist()}
        if isinstance(value, np.ndarray):
            member = f"arrays/{len(self.members)}.npy"
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(value), allow_pickle=False)
            self.members[member] = buffer.getvalue()
            return {"array": member}
        if isinstance(value, dict) and all(isinstance(key, str) for key in value):
            return {"dict": {key: self.encode(f"{name}[{key!r}]", v) for key, v in value.items()}}
        if isinstance(value, (list, tuple)) and not _is_plain(value):
            return {"list": [self.encode(f"{name}[{i}]", v) for i, v in enumerate(value)]}
        if _is_plain(value):
            return {"value": _to_plain(value)}
        raise ValueError(f"Cannot save {name} of type {type(value).__name__}; use pickle.")


def _encode_params(estimator):
    params = {}
    for name, value in estimator.get_params(deep=False).items():
        if name == "random_state" and not (value is None or isinstance(value, Integral)):
            raise ValueError(
                "Only an int or None random_state can be saved, got "
                f"{type(value).__name__}. Set an int with "
                "set_params(random_state=...) before saving, or use pickle."
            )
        if not isinstance(value, str) and hasattr(value, "__array__"):
            # An array-like parameter (an array, a pandas Series) as a list.
            value = np.asarray(value).tolist()
        if is_pandas_na(value):
            params[name] = PANDAS_NA
            continue
        if not _is_plain(value):
            raise ValueError(
                f"Cannot save parameter {name}={value!r} of type {type(value).__name__}."
            )
        params[name] = _to_plain(value)
    return params


def save(estimator, file):
    """Save a skae estimator to a file that :func:`load` reads without running code.

    The file is a zip archive with the class, the parameters and the plain
    fitted attributes in ``metadata.json`` and each array of the fitted
    state (the network's weights among them) in a ``.npy`` member. The
    optimizer's state is kept too, so that a loaded estimator transforms
    exactly as the saved one and can go on with ``partial_fit``. An
    unfitted estimator is saved with its parameters only, and an output
    container chosen with ``set_output`` is kept.

    Parameters
    ----------
    estimator : AutoencoderTransformer, AutoencoderImputer or \
            AutoencoderOutlierDetector
        The estimator to save. Its ``random_state`` must be an int or None.

    file : str, path-like or file-like object
        Where to write. A file object must be open for binary writing.

    Raises
    ------
    TypeError
        If ``estimator`` is not one of skae's estimators.

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
    if type(estimator).__name__ not in _CLASSES or not isinstance(
        estimator, _CLASSES[type(estimator).__name__]
    ):
        raise TypeError(
            f"save expects one of skae's estimators ({', '.join(sorted(_CLASSES))}), got "
            f"{type(estimator).__name__}. Save pipelines with skops.io or joblib."
        )
    writer = _Writer()
    attributes = {
        name: writer.encode(name, getattr(estimator, name))
        for name in estimator._state_names
        if name in vars(estimator)
    }
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "skae_version": _skae_version(),
        "class": type(estimator).__name__,
        "params": _encode_params(estimator),
        "output": getattr(estimator, "_sklearn_output_config", {}),
        "attributes": attributes,
    }
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_METADATA, json.dumps(metadata, indent=1))
        for member, data in writer.members.items():
            archive.writestr(member, data)


# Loading


class _Reader:
    """Reads the members of an open archive, refusing anything unexpected."""

    def __init__(self, archive, name):
        self.archive = archive
        self.name = name
        self.infos = {info.filename: info for info in archive.infolist()}

    def _info(self, member):
        info = self.infos.get(member) if isinstance(member, str) else None
        if info is None:
            raise ValueError(f"{self.name} lacks the member {member!r} its metadata names.")
        if info.file_size > _MAX_RATIO * info.compress_size + 2**20:
            raise ValueError(f"{self.name}'s member {member!r} claims an impossible size.")
        return info

    def metadata(self):
        if _METADATA not in self.infos:
            raise ValueError(f"{self.name} is not a skae model file: it lacks {_METADATA}.")
        info = self._info(_METADATA)
        if info.file_size > _MAX_METADATA_BYTES:
            raise ValueError(f"{self.name}'s metadata is too large for a skae model file.")
        metadata = json.loads(self.archive.read(info))
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise ValueError(
                f"{self.name} is not a skae model file: its metadata has no skae format."
            )
        return metadata

    def array(self, member):
        info = self._info(member)
        with self.archive.open(info) as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unknown array format {version}")
            except (ValueError, SyntaxError, TypeError, tokenize.TokenError) as e:
                # numpy parses the header as a Python literal; a damaged one
                # fails in the parser.
                raise ValueError(f"{member!r} has no readable array header: {e}") from e
            if dtype.name not in _DTYPES or fortran or dtype.byteorder not in "=|<":
                raise ValueError(f"{member!r} holds an array of a kind skae never saves.")
            n_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if n_bytes != info.file_size - f.tell():
                raise ValueError(f"{member!r} does not hold the array its header describes.")
            data = f.read(n_bytes)
            # Reading to the member's end makes zipfile check its CRC.
            if f.read() or len(data) != n_bytes:
                raise ValueError(f"{member!r} does not hold the array its header describes.")
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()

    def decode(self, entry, depth=0):
        if not isinstance(entry, dict) or len(entry) != 1 or depth > _MAX_DEPTH:
            raise ValueError(f"{self.name} has an attribute entry skae cannot read.")
        ((kind, value),) = entry.items()
        if kind == "value" and _is_plain(value):
            return value
        if kind == "strings" and isinstance(value, list):
            if all(isinstance(item, str) for item in value):
                return np.asarray(value, dtype=object)
        if kind == "array":
            return self.array(value)
        if kind == "list" and isinstance(value, list):
            return [self.decode(item, depth + 1) for item in value]
        if kind == "dict" and isinstance(value, dict):
            return {key: self.decode(item, depth + 1) for key, item in value.items()}
        raise ValueError(f"{self.name} has an attribute entry of unknown kind {kind!r}.")


def _read(file):
    """The class, metadata and fitted attributes of a saved file, or a ValueError."""
    name = os.fspath(file) if isinstance(file, (str, os.PathLike)) else "the file"
    try:
        with zipfile.ZipFile(file) as archive:
            reader = _Reader(archive, name)
            metadata = reader.metadata()
            if metadata.get("format_version") != FORMAT_VERSION:
                raise ValueError(
                    f"{name} has format version {metadata.get('format_version')!r}, but "
                    f"this version of skae ({_skae_version()}) reads version "
                    f"{FORMAT_VERSION}; it was written by skae "
                    f"{metadata.get('skae_version')!r}."
                )
            cls = _CLASSES.get(metadata.get("class"))
            if cls is None:
                raise ValueError(
                    f"{name} holds an unknown estimator class {metadata.get('class')!r}."
                )
            entries = metadata.get("attributes")
            if not isinstance(entries, dict):
                raise ValueError(f"{name}'s metadata has no attributes.")
            unknown = sorted(set(entries) - set(cls._state_names))
            if unknown:
                raise ValueError(
                    f"{name} sets attributes {cls.__name__} does not have: {unknown}."
                )
            attributes = {key: reader.decode(entry) for key, entry in entries.items()}
    except FileNotFoundError:
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        NotImplementedError,
        RuntimeError,
        RecursionError,
        UnicodeDecodeError,
        json.JSONDecodeError,
    ) as e:
        # NotImplementedError and RuntimeError: a zip member's header names a
        # compression method or an encryption that skae never writes.
        raise ValueError(
            f"{name} is not a skae model file, or it is truncated or corrupted: {e}"
        ) from e
    return cls, metadata, attributes


def _import_pandas(name):
    try:
        import pandas
    except ImportError:
        raise ValueError(
            f"The file's parameter {name} is pandas' NA: install pandas to load it."
        ) from None
    return pandas


def _decode_params(cls, metadata):
    params = metadata.get("params")
    if not isinstance(params, dict):
        raise ValueError("The file's metadata has no parameters.")
    unknown = sorted(set(params) - set(cls().get_params(deep=False)))
    if unknown:
        raise ValueError(
            f"The file sets unknown parameters {unknown}; it was written by skae "
            f"{metadata.get('skae_version')!r}, a version this one cannot read."
        )
    params = dict(params)
    for name, value in params.items():
        if value == PANDAS_NA:
            pandas = _import_pandas(name)
            params[name] = pandas.NA
    # JSON has no tuples: the parameters given as tuples come back as such.
    for name in ("hidden_layer_sizes", "image_shape"):
        if isinstance(params.get(name), list):
            params[name] = tuple(params[name])
    return params


def load(file):
    """Load an estimator saved by :func:`save`, without running code from the file.

    The parameters are read from JSON and checked as ``fit`` checks them;
    the arrays are read from ``.npy`` members without pickle, each checked
    for its dtype and size before it is allocated; the network is rebuilt
    from its description in the file and checked against the weights. A
    file that is truncated, corrupted, tampered with or written by an
    incompatible version raises a ValueError that says what is wrong.

    Parameters
    ----------
    file : str, path-like or file-like object
        The file to read. A file object must be open for binary reading and
        seekable.

    Returns
    -------
    estimator : AutoencoderTransformer, AutoencoderImputer or \
            AutoencoderOutlierDetector
        The estimator, fitted if it was fitted when saved.

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
    cls, metadata, attributes = _read(file)
    estimator = cls(**_decode_params(cls, metadata))
    estimator._validate_params()
    output = metadata.get("output")
    if not isinstance(output, dict) or not all(
        key in ("transform", "fit_transform") and value in ("default", "pandas", "polars")
        for key, value in output.items()
    ):
        raise ValueError(f"The file's output configuration {output!r} is not one skae writes.")
    if output.get("transform"):
        estimator.set_output(transform=output["transform"])
    if attributes:
        estimator._check_fitted_state(attributes)
        vars(estimator).update(attributes)
    return estimator
