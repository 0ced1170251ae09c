"""The ``skae`` command line.

``skae compare`` answers the question users bring an autoencoder to: does it
reconstruct held-out data better than PCA, and at which encoding_dim? For
every dimension it fits both on a training split, then prints a table of
test errors and fit times, writes it as CSV and JSON, and draws figures.
"""

import argparse
import csv
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import InvalidParameterError

from skae import __version__
from skae._autoencoder import AutoencoderTransformer
from skae._plot import (
    LossCurveDisplay,
    ReconstructionDisplay,
    ReconstructionErrorDisplay,
    _fit_at_dimension,
)
from skae.datasets import load_digits, load_mnist

PROG = "skae"
DEFAULT_DIMS = (2, 4, 8, 16, 32)

# Command-line option -> AutoencoderTransformer parameter. Options left out
# keep the estimator's defaults.
AUTOENCODER_OPTIONS = (
    "hidden_layer_sizes",
    "activation",
    "code_activation",
    "output_activation",
    "loss",
    "batch_size",
    "max_iter",
    "learning_rate_init",
    "learning_rate",
    "alpha",
    "early_stopping",
    "noise",
    "noise_level",
    "device",
)


class DataError(Exception):
    """Input the command cannot work with, reported as one line."""


# Parsing


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _int_list(text):
    """Comma-separated positive integers, such as ``2,4,8``."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    return tuple(_positive_int(part) for part in parts)


def _dims(text):
    dims = _int_list(text)
    if not dims:
        raise argparse.ArgumentTypeError("give at least one encoding dimension, e.g. 2,4,8")
    return tuple(sorted(set(dims)))


def _image_shape(text):
    """``HxW`` (or ``H,W``) as a pair of positive integers."""
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form HEIGHTxWIDTH, e.g. 28x28")
    return tuple(_positive_int(part.strip()) for part in parts)


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not strictly between 0 and 1")
    return value


def _auto_or_positive_int(text):
    return text if text == "auto" else _positive_int(text)


def _parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="PyTorch autoencoders as scikit-learn transformers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    compare = commands.add_parser(
        "compare",
        help="compare an autoencoder with PCA at several encoding dimensions",
        description=(
            "Fit PCA and an autoencoder at each encoding dimension on a training "
            "split, and report the held-out reconstruction error and the fit time "
            "of both, as a table, CSV and JSON files, and figures."
        ),
    )
    data = compare.add_argument_group("data")
    data.add_argument(
        "--data",
        default="digits",
        metavar="DATA",
        help=(
            "'digits' (scikit-learn's 8x8 digits, the default), 'mnist', or a "
            ".npy, .csv or .parquet file of numeric samples, one row each"
        ),
    )
    data.add_argument(
        "--image-shape",
        type=_image_shape,
        metavar="HxW",
        help="shape of one image, to draw reconstructions; square images are detected",
    )
    data.add_argument(
        "--test-size",
        type=_fraction,
        default=0.25,
        metavar="FRACTION",
        help="fraction of the samples held out for testing (default: 0.25)",
    )
    data.add_argument(
        "--max-samples",
        type=_positive_int,
        metavar="N",
        help="use a random subset of N samples, for a quicker look at big data",
    )
    compare.add_argument(
        "--dims",
        type=_dims,
        default=DEFAULT_DIMS,
        metavar="D1,D2,...",
        help=f"encoding dimensions to try (default: {','.join(map(str, DEFAULT_DIMS))})",
    )
    compare.add_argument(
        "--random-state",
        type=int,
        default=0,
        metavar="SEED",
        help="seed of the split, the subset, PCA and the autoencoder (default: 0)",
    )
    compare.add_argument(
        "--output-dir",
        type=Path,
        default=Path("skae-compare"),
        metavar="DIR",
        help="folder for results.csv, results.json and the figures (default: skae-compare)",
    )
    compare.add_argument("-q", "--quiet", action="store_true", help="do not show the progress bar")
    model = compare.add_argument_group(
        "autoencoder", "AutoencoderTransformer parameters; unset ones keep its defaults"
    )
    model.add_argument("--hidden-layer-sizes", type=_int_list, metavar="W1,W2,...")
    model.add_argument("--activation")
    model.add_argument("--code-activation")
    model.add_argument("--output-activation")
    model.add_argument("--loss")
    model.add_argument("--batch-size", type=_auto_or_positive_int, metavar="N")
    model.add_argument("--max-iter", type=_auto_or_positive_int, metavar="N")
    model.add_argument("--learning-rate-init", type=float, metavar="LR")
    model.add_argument("--learning-rate")
    model.add_argument("--alpha", type=float)
    model.add_argument("--early-stopping", action="store_true", default=None)
    model.add_argument("--noise")
    model.add_argument("--noise-level", type=float, metavar="LEVEL")
    model.add_argument("--device")
    return parser, {"compare": compare}


# Data


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _non_numeric_cell(path, has_header):
    """A one-line description of the first cell of a CSV file that is not a number."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = csv.reader(file)
        header = next(rows) if has_header else None
        width = None
        for line, row in enumerate(rows, start=2 if has_header else 1):
            if not row:
                continue
            width = len(row) if width is None else width
            if len(row) != width:
                return f"line {line} has {len(row)} values instead of {width}"
            for j, cell in enumerate(row):
                if not _is_number(cell):
                    name = header[j] if header is not None and j < len(header) else str(j + 1)
                    what = "is empty" if not cell.strip() else f"holds {cell.strip()!r}"
                    return (
                        f"column {name!r} is not numeric (line {line} {what}); "
                        "give only numeric columns"
                    )
    return "it is not a table of numbers"


def _read_csv(path):
    """A numeric CSV file as float64, with or without a header row."""
    try:
        with open(path, newline="", encoding="utf-8") as file:
            first = next(csv.reader(file), None)
        if first is None:
            raise DataError(f"{path} is empty")
        has_header = not all(_is_number(cell) for cell in first)
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
                    encoding="utf-8",
                )
        except ValueError:
            raise DataError(f"{path}: {_non_numeric_cell(path, has_header)}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a UTF-8 text file") from None
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
        raise DataError(f"cannot read {path}: {error}") from None
    for field in table.schema:
        if not (
            pa_types.is_integer(field.type)
            or pa_types.is_floating(field.type)
            or pa_types.is_boolean(field.type)
        ):
            raise DataError(
                f"{path}: column {field.name!r} is not numeric ({field.type}); "
                "give only numeric columns"
            )
    if table.num_columns == 0:
        raise DataError(f"{path} has no columns")
    columns = [
        table.column(i).to_numpy(zero_copy_only=False).astype(np.float64)
        for i in range(table.num_columns)
    ]
    return np.column_stack(columns)


def _read_npy(path):
    try:
        X = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise DataError(f"cannot read {path}: {error}") from None
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


def _load(spec):
    """The samples named by ``--data``, a display name and an image shape."""
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
    if not np.all(np.isfinite(X)):
        n_bad = int(np.sum(~np.isfinite(X)))
        raise DataError(f"{spec} contains {n_bad} NaN or infinite value(s); remove or impute them")
    return X, path.name, image_shape


def _image_shape_for(X, requested, known):
    """The shape to draw samples in, or None when they are not images."""
    n_features = X.shape[1]
    if requested is not None:
        if math.prod(requested) != n_features:
            raise DataError(
                f"--image-shape {requested[0]}x{requested[1]} has {math.prod(requested)} "
                f"pixels but the data have {n_features} features"
            )
        return requested
    if known is not None:
        return tuple(known)
    side = math.isqrt(n_features)
    return (side, side) if side > 1 and side * side == n_features else None


def _split(X, args):
    rng = np.random.RandomState(args.random_state)
    if args.max_samples is not None and args.max_samples < X.shape[0]:
        X = X[np.sort(rng.choice(X.shape[0], args.max_samples, replace=False))]
    try:
        X_train, X_test = train_test_split(
            X, test_size=args.test_size, random_state=args.random_state
        )
    except ValueError as error:
        raise DataError(f"cannot split {X.shape[0]} samples: {error}") from None
    largest = min(X_train.shape)
    too_large = [dim for dim in args.dims if dim > largest]
    if too_large:
        raise DataError(
            f"encoding dimension {too_large[0]} is larger than the data allow: PCA keeps "
            f"at most min(n_train_samples={X_train.shape[0]}, n_features={X_train.shape[1]})"
            f" = {largest} components"
        )
    return X_train, X_test


# Running


class _Progress:
    """A progress bar redrawn in place on a terminal; elsewhere, one line per step done."""

    def __init__(self, total, stream, *, enabled=True, width=24):
        self.total = total
        self.stream = stream
        self.enabled = enabled
        self.width = width
        self.start = time.perf_counter()
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.done = 0

    def show(self, done, message):
        """Show that ``done`` of ``total`` steps are done, and what runs now."""
        if not self.enabled or (not self.tty and done == self.done):
            return
        self.done = done
        filled = round(self.width * done / self.total)
        elapsed = time.perf_counter() - self.start
        line = (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} "
            f"{message} ({elapsed:.1f} s)"
        )
        if self.tty:
            end = "\n" if done == self.total else ""
            self.stream.write(f"\r\x1b[K{line}{end}")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _fit_autoencoder(autoencoder, dim, X_train, X_test):
    """Fit at one dimension; also says whether training converged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted, error, fit_time = _fit_at_dimension(autoencoder, dim, X_train, X_test)
    converged = True
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            converged = False
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return fitted, error, fit_time, converged


def _run(args, X_train, X_test):
    params = {
        name: getattr(args, name)
        for name in AUTOENCODER_OPTIONS
        if getattr(args, name) is not None
    }
    autoencoder = AutoencoderTransformer(random_state=args.random_state, **params)
    pca = PCA(random_state=args.random_state)
    progress = _Progress(len(args.dims), sys.stderr, enabled=not args.quiet)
    rows, fitted = [], []
    for i, dim in enumerate(args.dims):
        pca_fitted, pca_error, pca_time = _fit_at_dimension(pca, dim, X_train, X_test)
        progress.show(i, f"training the autoencoder, encoding_dim={dim}")
        try:
            ae_fitted, ae_error, ae_time, converged = _fit_autoencoder(
                autoencoder, dim, X_train, X_test
            )
        except InvalidParameterError:
            raise
        except ValueError as error:
            raise DataError(
                f"the autoencoder could not be fitted at encoding_dim={dim}: {error}"
            ) from None
        progress.show(i + 1, f"autoencoder trained, encoding_dim={dim}")
        fitted.append((pca_fitted, ae_fitted))
        rows.append(
            {
                "encoding_dim": dim,
                "pca_mse": pca_error,
                "autoencoder_mse": ae_error,
                "mse_ratio": ae_error / pca_error if pca_error > 0 else math.inf,
                "pca_fit_time": pca_time,
                "autoencoder_fit_time": ae_time,
                "autoencoder_n_iter": ae_fitted.n_iter_,
                "autoencoder_converged": converged,
            }
        )
    return rows, fitted, params


# Reporting

COLUMNS = (
    ("encoding_dim", "encoding_dim", "{}"),
    ("pca_mse", "PCA MSE", "{:.4g}"),
    ("autoencoder_mse", "AE MSE", "{:.4g}"),
    ("mse_ratio", "AE/PCA", "{:.3f}"),
    ("pca_fit_time", "PCA fit (s)", "{:.2f}"),
    ("autoencoder_fit_time", "AE fit (s)", "{:.2f}"),
    ("autoencoder_n_iter", "AE epochs", "{}"),
)


def _table(rows):
    """The results as text, right-aligned columns under a header."""
    cells = [[title for _, title, _ in COLUMNS]]
    cells += [[fmt.format(row[key]) for key, _, fmt in COLUMNS] for row in rows]
    widths = [max(len(line[j]) for line in cells) for j in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
        for line in cells
    )


def _summary(rows):
    better = [row["encoding_dim"] for row in rows if row["mse_ratio"] < 1]
    if not better:
        return "PCA reconstructs the test data at least as well at every encoding_dim tried."
    if len(better) == len(rows):
        return "The autoencoder reconstructs the test data better than PCA at every encoding_dim."
    return "The autoencoder reconstructs the test data better than PCA at encoding_dim " + (
        ", ".join(map(str, better)) + "."
    )


def _write_tables(rows, meta, output_dir):
    with open(output_dir / "results.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(output_dir / "results.json", "w", encoding="utf-8") as file:
        json.dump({**meta, "results": rows}, file, indent=2)
        file.write("\n")
    return ["results.csv", "results.json"]


def _write_figures(rows, fitted, X_test, image_shape, data_name, output_dir):
    """Draw the figures into PNG files; returns their names."""
    from matplotlib.figure import Figure

    dims = [row["encoding_dim"] for row in rows]
    written = []

    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    display = ReconstructionErrorDisplay(
        dims,
        [[row["pca_mse"] for row in rows], [row["autoencoder_mse"] for row in rows]],
        names=["PCA", "autoencoder"],
    ).plot(ax=figure.subplots())
    display.ax_.set_xscale("log", base=2)
    display.ax_.set_xticks(dims, [str(dim) for dim in dims])
    display.ax_.minorticks_off()
    display.ax_.set_yscale("log")
    display.ax_.set_ylabel("Test reconstruction MSE")
    display.ax_.set_title(f"Autoencoder versus PCA on {data_name}")
    figure.savefig(output_dir / "error_vs_dim.png", dpi=100)
    written.append("error_vs_dim.png")

    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = figure.subplots()
    for dim, (_, autoencoder) in zip(dims, fitted, strict=True):
        LossCurveDisplay.from_estimator(autoencoder, name=f"encoding_dim={dim}", ax=ax)
    ax.set_yscale("log")
    ax.set_title(f"Autoencoder training on {data_name}")
    figure.savefig(output_dir / "loss_curves.png", dpi=100)
    written.append("loss_curves.png")

    if image_shape is not None:
        n_images = min(10, X_test.shape[0])
        height, width = image_shape
        n_rows = 1 + 2 * len(dims)
        cell = 0.6  # inches per image
        figure = Figure(
            figsize=(1.6 + n_images * cell * width / height, 0.6 + n_rows * cell),
            layout="constrained",
        )
        estimators = [model for pair in fitted for model in pair]
        names = [f"{method} ({dim})" for dim in dims for method in ("PCA", "AE")]
        display = ReconstructionDisplay.from_estimator(
            estimators,
            X_test,
            image_shape=image_shape,
            n_images=n_images,
            name=names,
            ax=figure.subplots(),
        )
        display.ax_.set_title("Test images and reconstructions (encoding_dim)")
        figure.savefig(output_dir / "reconstructions.png", dpi=100)
        written.append("reconstructions.png")
    return written


def compare(args):
    """Run ``skae compare`` with parsed arguments; returns the exit status."""
    X, data_name, known_shape = _load(args.data)
    image_shape = _image_shape_for(X, args.image_shape, known_shape)
    X_train, X_test = _split(X, args)
    try:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create the output folder {args.output_dir}: {error}") from None

    print(
        f"{data_name}: {X_train.shape[0]} training and {X_test.shape[0]} test samples, "
        f"{X_train.shape[1]} features"
    )
    rows, fitted, params = _run(args, X_train, X_test)
    print()
    print(_table(rows))
    print()
    print(_summary(rows) + " (AE/PCA < 1: the autoencoder's test error is lower.)")
    not_converged = [str(row["encoding_dim"]) for row in rows if not row["autoencoder_converged"]]
    if not_converged:
        print(
            "The autoencoder reached max_iter before converging at encoding_dim "
            f"{', '.join(not_converged)}; a larger --max-iter may lower its error."
        )

    meta = {
        "data": data_name,
        "n_train_samples": int(X_train.shape[0]),
        "n_test_samples": int(X_test.shape[0]),
        "n_features": int(X_train.shape[1]),
        "random_state": args.random_state,
        "autoencoder_params": {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in params.items()
        },
        "skae_version": __version__,
    }
    try:
        written = _write_tables(rows, meta, args.output_dir)
    except OSError as error:
        raise DataError(f"cannot write to {args.output_dir}: {error}") from None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(
            "matplotlib is not installed, so no figures were drawn; install it with "
            "`pip install skae[plot]`.",
            file=sys.stderr,
        )
    else:
        written += _write_figures(rows, fitted, X_test, image_shape, data_name, args.output_dir)
    print(f"Wrote {', '.join(written)} to {args.output_dir}")
    return 0


def main(argv=None):
    """Entry point of the ``skae`` command; returns the exit status.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments, without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
        0 on success, 1 when the data cannot be used, 2 for usage errors.
    """
    parser, commands = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return compare(args)
    except DataError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 1
    except InvalidParameterError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
