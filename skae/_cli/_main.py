"""The ``skae`` command line.

``skae compare`` answers the question users bring an autoencoder to: does it
reconstruct held-out data better than PCA, and at which encoding_dim? For
every dimension it fits PCA, the linear autoencoder (the default) and a
nonlinear one on a training split, then prints a table of test errors and
fit times, writes it as CSV and JSON, and draws figures. An autoencoder
whose codes come out ordered is fitted once, at the largest dimension: the
first units of its code are its model at each smaller one (unless
``--per-dimension``).
"""

import math
import sys
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import InvalidParameterError

from skae._autoencoder import AutoencoderTransformer
from skae._choices import in_unit_interval, orders_codes, resolve_output_activation
from skae._cli._data import DataError, load
from skae._cli._options import (
    AUTOENCODER_OPTIONS,
    LARGEST_DEFAULT_DIM,
    PROG,
    UsageError,
    parse_args,
)
from skae._cli._report import Progress, summary, table, write_figures, write_tables
from skae._plot._compare import compare_errors, fit_at_dimension, fits_across_dimensions
from skae._plot._image_display import square_image_shape
from skae._version import __version__

MODELS = ("PCA", "linear AE", "nonlinear AE")
# Rows of the training data that the warm-up fit sees.
WARM_UP_SAMPLES = 64

# Data


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
    return square_image_shape(n_features)


def _default_dims(largest):
    """Powers of two below ``largest``, PCA's limit, up to ``LARGEST_DEFAULT_DIM``."""
    dims = [2**i for i in range(1, LARGEST_DEFAULT_DIM.bit_length()) if 2**i < largest]
    return tuple(dims) if dims else (1,)


def _split(X, args):
    """The training and test samples, and the encoding dimensions to try."""
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
    if largest < 2:
        raise DataError(
            f"there is nothing to reduce: {X_train.shape[0]} training sample(s) of "
            f"{X_train.shape[1]} feature(s)"
        )
    if args.dims is None:
        return X_train, X_test, _default_dims(largest)
    too_large = [dim for dim in args.dims if dim > largest]
    if too_large:
        raise DataError(
            f"encoding dimension {too_large[0]} is larger than the data allow: PCA keeps "
            f"at most min(n_train_samples={X_train.shape[0]}, n_features={X_train.shape[1]})"
            f" = {largest} components"
        )
    return X_train, X_test, args.dims


# Running


def _models(args):
    """PCA and the two autoencoders, by name, and the options given."""
    params = {
        name: getattr(args, name)
        for name in AUTOENCODER_OPTIONS
        if getattr(args, name) is not None
    }
    linear = AutoencoderTransformer(random_state=args.random_state, **params)
    # An image shape given on the command line makes the nonlinear network's
    # corrections convolutional; one detected for drawing changes nothing.
    nonlinear = clone(linear).set_params(
        hidden_layer_sizes=args.hidden_layer_sizes, image_shape=args.image_shape
    )
    estimators = (PCA(random_state=args.random_state), linear, nonlinear)
    return dict(zip(MODELS, estimators, strict=True)), params


def _fit(name, estimator, dims, X_train, X_test, per_dimension):
    """Fit at the dimensions ``dims``, once for ordered codes (see
    :func:`~skae._plot._compare.fits_across_dimensions`); also returns
    whether training converged and other warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fits = fits_across_dimensions(
                estimator, dims, X_train, X_test, per_dimension=per_dimension
            )
        except InvalidParameterError:
            raise
        except (ValueError, RuntimeError, MemoryError) as error:
            raise DataError(
                f"the {name} could not be fitted at encoding_dim={', '.join(map(str, dims))}: "
                f"{error}"
            ) from None
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    # PCA's own warnings (such as dividing by a zero total variance) say
    # nothing about the comparison; the autoencoders' do.
    notes = [
        f"{name} at encoding_dim={', '.join(map(str, dims))}: "
        f"{str(w.message).strip().splitlines()[0]}"
        for w in caught
        if not issubclass(w.category, ConvergenceWarning) and "max_iter" in estimator.get_params()
    ]
    return fits, converged, notes


def _warm_up(models, X_train, dim):
    """Fit each model once on a few samples, so that no timed fit pays torch's start-up."""
    X_small = X_train[:WARM_UP_SAMPLES]
    dim = min(dim, *X_small.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for estimator in models.values():
            if "max_iter" in estimator.get_params():
                estimator = clone(estimator).set_params(max_iter=1)
            try:
                fit_at_dimension(estimator, dim, X_small, X_small)
            except (ValueError, RuntimeError):
                pass  # the timed fits report what is wrong


def _orders_codes(estimator, X_train, per_dimension):
    """Whether ``estimator`` will be fitted once, for ordered codes, in ``_run``."""
    if per_dimension or "ordered_codes" not in estimator.get_params(deep=False):
        return False
    params = estimator.get_params()
    try:
        output_activation = resolve_output_activation(
            params["output_activation"], params["loss"], in_unit_interval(X_train)
        )
    except ValueError:
        return False  # the fit says what is wrong
    return orders_codes(
        params["ordered_codes"],
        linear=not params["hidden_layer_sizes"],
        noise=params["noise"],
        output_activation=output_activation,
        fraction=False,
    )


def _run(models, dims, X_train, X_test, progress, per_dimension=False):
    """Fit every model at every dimension; returns the result rows and the fitted models.

    A model whose codes come out ordered is fitted once, at the largest
    dimension; its rows at the smaller ones have no fit time of their own.
    """
    variance = float(np.mean(np.var(X_test, axis=0, dtype=np.float64)))
    rows, fitted, notes = [], {}, []
    largest = max(dims)
    once = {
        name: _orders_codes(estimator, X_train, per_dimension)
        for name, estimator in models.items()
    }
    results = {}
    step = 0
    for dim in dims:
        for name, estimator in models.items():
            if once[name] and dim != dims[0]:
                continue
            if name != "PCA":
                what = f"{largest} and its prefixes" if once[name] else dim
                progress.show(step, f"training the {name}, encoding_dim={what}")
            fit_dims = dims if once[name] else [dim]
            fits, converged, caught = _fit(
                name, estimator, fit_dims, X_train, X_test, per_dimension
            )
            notes += caught
            for fit_dim, fit in zip(fit_dims, fits, strict=True):
                results[name, fit_dim] = (*fit, converged)
            if name != "PCA":
                step += len(fit_dims)
                what = f"{largest} and its prefixes" if once[name] else dim
                progress.show(step, f"{name} trained, encoding_dim={what}")
    for dim in dims:
        baseline = None
        for name in models:
            model, errors, fit_time, converged = results[name, dim]
            fitted[name, dim] = model
            row = {
                "encoding_dim": dim,
                "model": name,
                "test_mse": float(errors.mean()),
                "mse_ratio": None,
                "verdict": None,
                "fit_time": fit_time,
                "n_iter": getattr(model, "n_iter_", None),
                "converged": None,
            }
            if baseline is None:
                baseline = errors
            else:
                ratio, verdict = compare_errors(errors, baseline, variance=variance)
                row.update(mse_ratio=ratio, verdict=verdict, converged=converged)
            rows.append(row)
    return rows, fitted, notes


def compare(args):
    """Run ``skae compare`` with parsed arguments; returns the exit status."""
    X, data_name, known_shape = load(args.data)
    image_shape = _image_shape_for(X, args.image_shape, known_shape)
    X_train, X_test, dims = _split(X, args)
    try:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create the output folder {args.output_dir}: {error}") from None

    models, params = _models(args)
    print(
        f"{data_name}: {X_train.shape[0]} training and {X_test.shape[0]} test samples, "
        f"{X_train.shape[1]} features"
    )
    for name in MODELS[1:]:
        print(f"{name}: {models[name]!r}")
    _warm_up(models, X_train, dims[0])
    progress = Progress(len(dims) * (len(MODELS) - 1), sys.stderr, enabled=not args.quiet)
    rows, fitted, notes = _run(models, dims, X_train, X_test, progress, args.per_dimension)
    for note in notes:
        print(f"{PROG} {args.command}: warning: {note}", file=sys.stderr)
    print()
    print(table(rows))
    print()
    print(summary(rows, MODELS))

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
        "nonlinear_hidden_layer_sizes": list(args.hidden_layer_sizes),
        "nonlinear_image_shape": None if args.image_shape is None else list(args.image_shape),
        "skae_version": __version__,
    }
    try:
        written = write_tables(rows, meta, args.output_dir)
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
        try:
            written += write_figures(
                rows, fitted, MODELS, X_test, image_shape, data_name, args.output_dir
            )
        except OSError as error:
            raise DataError(f"cannot write to {args.output_dir}: {error}") from None
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
        0 on success, 1 when the data cannot be used, 2 for usage errors,
        130 when interrupted. ``--help`` and ``--version`` print and raise
        ``SystemExit(0)``, as :mod:`argparse` does.
    """
    try:
        args = parse_args(argv)
    except UsageError as error:
        print(f"{error.prog}: error: {error}", file=sys.stderr)
        return 2
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
