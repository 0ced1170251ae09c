"""The options of ``skae compare``: parsing them, and reporting a bad one in one line."""

import argparse
from pathlib import Path

from skae._version import __version__

PROG = "skae"
# The default dimensions are the powers of two up to this one that are
# smaller than the data's width.
LARGEST_DEFAULT_DIM = 32
NONLINEAR_HIDDEN_LAYER_SIZES = (128,)
# Command-line option -> AutoencoderTransformer parameter, for both
# autoencoders. Options left out keep the estimator's defaults.
AUTOENCODER_OPTIONS = (
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
    "ordered_codes",
    "noise",
    "noise_level",
    "device",
)


class UsageError(Exception):
    """A malformed command line, reported as one line."""

    def __init__(self, prog, message):
        super().__init__(message)
        self.prog = prog


class _ArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, without the usage block."""

    def error(self, message):
        raise UsageError(self.prog, f"{message} (see '{self.prog} --help')")


# Parsing


def _convert(text, kind, description):
    """``kind(text)``, or an error saying that ``text`` is not ``description``."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {description}") from None


def _integer(text):
    return _convert(text, int, "an integer")


def _number(text):
    return _convert(text, float, "a number")


def _positive_int(text):
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _seed(text):
    value = _integer(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer from 0 to 2**32 - 1")
    return value


def _int_list(text):
    """Comma-separated positive integers, such as ``2,4,8``; at least one."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"{text!r} holds no integers; give some, e.g. 2,4,8")
    return tuple(_positive_int(part) for part in parts)


def _dims(text):
    return tuple(sorted(set(_int_list(text))))


def _image_shape(text):
    """``HxW`` (or ``H,W``) as a pair of positive integers."""
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form HEIGHTxWIDTH, e.g. 28x28")
    return tuple(_positive_int(part.strip()) for part in parts)


def _fraction(text):
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not strictly between 0 and 1")
    return value


def _auto_or_positive_int(text):
    return text if text == "auto" else _positive_int(text)


def _auto_or_bool(text):
    choices = {"auto": "auto", "true": True, "false": False}
    if text.lower() not in choices:
        raise argparse.ArgumentTypeError(f"{text!r} is not auto, true or false")
    return choices[text.lower()]


def _build_parser():
    """The parser of the ``skae`` command line, and those of its commands by name."""
    parser = _ArgumentParser(
        prog=PROG,
        description="PyTorch autoencoders as scikit-learn transformers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    compare = commands.add_parser(
        "compare",
        help="compare autoencoders with PCA at several encoding dimensions",
        description=(
            "Fit PCA, the linear autoencoder (AutoencoderTransformer's default) and "
            "a nonlinear one (hidden layers of --hidden-layer-sizes units) at each "
            "encoding dimension on a training split, and report their held-out "
            "reconstruction errors and fit times, as a table, CSV and JSON files, "
            "and figures."
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
        help=(
            "shape of one image, to draw reconstructions (square images are detected); "
            "given, it also makes the nonlinear autoencoder convolutional, with "
            "--hidden-layer-sizes as the channels of its convolutions"
        ),
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
        metavar="D1,D2,...",
        help=(
            "encoding dimensions to try (default: the powers of two from 2 to "
            f"{LARGEST_DEFAULT_DIM} that are smaller than both the number of features "
            "and of training samples, 1 if none is)"
        ),
    )
    compare.add_argument(
        "--random-state",
        type=_seed,
        default=0,
        metavar="SEED",
        help="seed of the split, the subset, PCA and the autoencoders (default: 0)",
    )
    compare.add_argument(
        "--output-dir",
        type=Path,
        default=Path("skae-compare"),
        metavar="DIR",
        help="folder for results.csv, results.json and the figures (default: skae-compare)",
    )
    compare.add_argument(
        "--per-dimension",
        action="store_true",
        help=(
            "fit every autoencoder at every dimension; by default one whose codes are "
            "ordered (see --ordered-codes) is fitted once, at the largest"
        ),
    )
    compare.add_argument("-q", "--quiet", action="store_true", help="do not show the progress bar")
    model = compare.add_argument_group(
        "autoencoders",
        "AutoencoderTransformer parameters of both autoencoders; unset ones keep its defaults",
    )
    model.add_argument(
        "--hidden-layer-sizes",
        type=_int_list,
        default=NONLINEAR_HIDDEN_LAYER_SIZES,
        metavar="W1,W2,...",
        help=(
            "hidden layers of the nonlinear autoencoder "
            f"(default: {','.join(map(str, NONLINEAR_HIDDEN_LAYER_SIZES))})"
        ),
    )
    model.add_argument("--activation")
    model.add_argument("--code-activation")
    model.add_argument("--output-activation")
    model.add_argument("--loss")
    model.add_argument("--batch-size", type=_auto_or_positive_int, metavar="N")
    model.add_argument("--max-iter", type=_auto_or_positive_int, metavar="N")
    model.add_argument("--learning-rate-init", type=_number, metavar="LR")
    model.add_argument("--learning-rate")
    model.add_argument("--alpha", type=_number)
    model.add_argument("--early-stopping", action="store_true", default=None)
    model.add_argument(
        "--ordered-codes",
        type=_auto_or_bool,
        metavar="{auto,true,false}",
        help=(
            "train ordered codes, so that one fit gives the model at every dimension "
            "(auto: for the linear autoencoder of data outside [0, 1])"
        ),
    )
    model.add_argument("--noise")
    model.add_argument("--noise-level", type=_number, metavar="LEVEL")
    model.add_argument("--device")
    return parser, {"compare": compare}


def parse_args(argv=None):
    """The parsed command line; raises :class:`UsageError` for a malformed one."""
    parser, commands = _build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args
