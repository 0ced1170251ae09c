"""The data that ``skae compare`` reads: built-in data sets and numeric files.

Every problem with a file is reported as one :class:`DataError` whose
message names the file and, where it can, the line and column at fault.
"""

import csv
import warnings
import zipfile
from pathlib import Path

import numpy as np

from skae.datasets import load_digits, load_mnist

# Text quoted from a file in a message is cut to this many characters.
_QUOTE_LENGTH = 40
# A reader's own explanation is cut to this many.
_REASON_LENGTH = 160
# Separators of files saved as "CSV" by programs set to other conventions.
_OTHER_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}


class DataError(Exception):
    """Input the command cannot work with, reported as one line."""


def _shorten(text, length):
    text = text.strip()
    return text if len(text) <= length else text[: length - 3] + "..."


def _quote(text):
    """``text`` in quotes, cut short when long."""
    return repr(_shorten(text, _QUOTE_LENGTH))


def _reason(error):
    """The first line of an exception's message, cut short when long."""
    lines = str(error).strip().splitlines()
    return _shorten(lines[0], _REASON_LENGTH) if lines else type(error).__name__


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _has_header(first_row):
    """Whether the first row of a CSV file names the columns.

    It does when one of its cells is neither a number nor empty; a missing
    value does not make a row of numbers a header.
    """
    return any(cell.strip() and not _is_number(cell) for cell in first_row)


def _separator(path):
    """The separator that the start of a text file seems to use, or None."""
    with open(path, newline="", encoding="utf-8-sig") as file:
        sample = file.read(1 << 16)
    try:
        return csv.Sniffer().sniff(sample, delimiters="," + "".join(_OTHER_SEPARATORS)).delimiter
    except csv.Error:  # no separator stands out, as in a single column
        return None


def _csv_problem(path, has_header):
    """A one-line description of what keeps a CSV file from being a table of numbers."""
    separator = _separator(path)
    if separator in _OTHER_SEPARATORS:
        return (
            f"its values are separated by {_OTHER_SEPARATORS[separator]}, "
            "not commas; save it as comma-separated values"
        )
    with open(path, newline="", encoding="utf-8-sig") as file:
        rows = csv.reader(file)
        header = next(rows) if has_header else None
        width, missing, first_missing = None, 0, None
        for line, row in enumerate(rows, start=2 if has_header else 1):
            if not row:
                continue  # empty lines are skipped
            if not any(cell.strip() for cell in row):
                return f"line {line} holds only spaces; remove it"
            if width is None:
                width = len(row)
            if len(row) != width:
                return f"line {line} has {len(row)} values instead of {width}"
            for j, cell in enumerate(row):
                name = header[j] if header is not None and j < len(header) else str(j + 1)
                if not cell.strip():
                    missing += 1
                    first_missing = first_missing or (line, name)
                elif not _is_number(cell):
                    return (
                        f"column {_quote(name)} is not numeric (line {line} holds "
                        f"{_quote(cell)}); give only numeric columns"
                    )
    if missing:
        line, name = first_missing
        return (
            f"{missing} value(s) are missing (the first on line {line}, column "
            f"{_quote(name)}); remove or impute them"
        )
    return "it is not a table of numbers"


def _read_csv(path):
    """A numeric CSV file as float64, with or without a header row."""
    # utf-8-sig drops the byte-order mark that spreadsheet programs write.
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            first = next((row for row in csv.reader(file) if row), None)
        if first is None:
            raise DataError(f"{path} is empty")
        has_header = _has_header(first)
        try:
            with warnings.catch_warnings():
                # A header without samples: reported below.
                warnings.filterwarnings("ignore", message=".*input contained no data")
                X = np.loadtxt(
                    path,
                    delimiter=",",
                    quotechar='"',
                    skiprows=int(has_header),
                    ndmin=2,
                    dtype=np.float64,
                    encoding="utf-8-sig",
                )
        except ValueError:
            raise DataError(f"{path}: {_csv_problem(path, has_header)}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a UTF-8 text file") from None
    except csv.Error as error:
        raise DataError(f"{path} is not a CSV file: {error}") from None
    if X.shape[0] == 0:
        raise DataError(f"{path} has a header but no samples")
    return X


def _read_parquet(path):
    try:
        import pyarrow.parquet as pq
        import pyarrow.types as pa_types
    except ImportError:
        raise DataError(
            "reading .parquet files requires pyarrow; install it with `pip install pyarrow`"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for unreadable files
        raise DataError(f"cannot read {path}: {_reason(error)}") from None
    for field in table.schema:
        if not (
            pa_types.is_integer(field.type)
            or pa_types.is_floating(field.type)
            or pa_types.is_boolean(field.type)
        ):
            raise DataError(
                f"{path}: column {_quote(field.name)} is not numeric ({field.type}); "
                "give only numeric columns"
            )
    if table.num_columns == 0:
        raise DataError(f"{path} has no columns")
    n_missing = sum(table.column(i).null_count for i in range(table.num_columns))
    if n_missing:
        raise DataError(f"{path}: {n_missing} value(s) are missing; remove or impute them")
    columns = [
        table.column(i).to_numpy(zero_copy_only=False).astype(np.float64)
        for i in range(table.num_columns)
    ]
    return np.column_stack(columns)


def _read_npy(path):
    if zipfile.is_zipfile(path):
        raise DataError(f"{path} is an .npz archive; save one array with numpy.save")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty")
    with open(path, "rb") as file:
        if file.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
            raise DataError(f"{path} is not a .npy file (one saved with numpy.save)")
    try:
        X = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        # EOFError: a file cut off within its header.
        raise DataError(f"cannot read {path}: {_reason(error)}") from None
    if np.iscomplexobj(X):
        raise DataError(f"{path} holds complex numbers; give real values")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise DataError(f"{path} holds {X.dtype} values, not numbers")
    image_shape = None
    if X.ndim == 3:
        image_shape = X.shape[1:]
        X = X.reshape(X.shape[0], -1)
    if X.ndim != 2:
        raise DataError(
            f"{path} holds an array of shape {X.shape}; expected (n_samples, n_features) "
            "or (n_samples, height, width)"
        )
    if X.dtype != np.float32:
        X = X.astype(np.float64)
    return X, image_shape


def load(spec):
    """The samples named by ``--data``, a display name and an image shape.

    Parameters
    ----------
    spec : str
        "digits", "mnist", or the path of a .npy, .csv or .parquet file.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The samples, finite, as float32 or float64.

    name : str
        The data set's name, or the file's.

    image_shape : tuple of int or None
        The shape of one image, when the data are known to be images.

    Raises
    ------
    DataError
        When the data cannot be read, or are not a finite table of numbers
        with at least one sample and one feature.
    """
    if spec == "digits":
        return load_digits(return_X_y=True)[0], "digits", (8, 8)
    if spec == "mnist":
        try:
            X = load_mnist(subset="all", return_X_y=True)[0]
        except OSError as error:
            raise DataError(str(error)) from None
        return X, "mnist", (28, 28)
    path = Path(spec)
    if not path.exists():
        raise DataError(f"no such file: {spec} (give 'digits', 'mnist' or a data file)")
    if path.is_dir():
        raise DataError(f"{spec} is a folder, not a data file")
    suffix = path.suffix.lower()
    image_shape = None
    try:
        if suffix == ".npy":
            X, image_shape = _read_npy(path)
        elif suffix == ".csv":
            X = _read_csv(path)
        elif suffix == ".parquet":
            X = _read_parquet(path)
        else:
            raise DataError(
                f"cannot read {suffix or 'extension-less'} files; use .npy, .csv or .parquet"
            )
    except PermissionError:
        raise DataError(f"cannot read {spec}: permission denied") from None
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{spec} holds no data: an array of shape {X.shape}")
    if not np.all(np.isfinite(X)):
        n_bad = int(np.sum(~np.isfinite(X)))
        raise DataError(f"{spec} contains {n_bad} NaN or infinite value(s); remove or impute them")
    return X, path.name, image_shape
