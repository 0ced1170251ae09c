"""AutoencoderImputer against scikit-learn's imputers and missForest, on real data.

Run from the repository root::

    python benchmarks/bench_imputer.py                      # every table
    python benchmarks/bench_imputer.py --quick              # without MNIST
    python benchmarks/bench_imputer.py --only protocol --seeds 2 --tables wine,digits
    python benchmarks/bench_imputer.py --only mnist --mnist-rows 5000

Tables:

- HyperImpute's protocol (Jarrett et al., 2022; masks after Muzellec et al.,
  2020) on breast cancer (569 x 30), wine (178 x 13), diabetes (442 x 10)
  and digits (1797 x 64): each column min-max scaled, 30% of the entries
  removed completely at random (MCAR), at random (MAR: a logistic model of
  a random 30% of the columns, which stay complete, drives the missingness
  of the others) or not at random (MNAR: self-masking, larger values more
  often missing). RMSE over the removed entries and fit + transform
  seconds, mean over mask seeds (``--seeds``, 5 by default), against column
  means, ``KNNImputer``, ``IterativeImputer`` and missForest (Stekhoven and
  Buehlmann, 2012) as ``IterativeImputer(ExtraTreesRegressor(n_estimators=50),
  max_iter=10)``, with skae's ratio to the best of the last three per cell.
- GAIN's protocol (Yoon et al., 2018) on breast cancer: MCAR at 20% and
  50%, RMSE over the removed entries in min-max units.
- Downstream: the accuracy of ``LogisticRegression`` after each imputer on
  the breast cancer data, 5-fold cross-validation, at 20% and 50%.
- MNIST: 10,000 training images (``--mnist-rows``) with 50% of the pixels
  removed at random, 2,000 test images likewise; RMSE on the removed test
  pixels and the wall time of fit plus transform, for skae's default and
  for skae with ``image_shape=(28, 28)`` (five convolutions of each
  linearly filled image, 32 channels each, beside the linear model) (from
  ``skae.datasets.load_mnist``; skipped with ``--quick`` or without the
  data).

Every method sees the same masks, and every comparison is a ratio measured
in the same run: absolute seconds depend on the machine and on whatever
else runs on it. torch, the BLAS and the trees run on ``--n-jobs`` threads
(1 by default), so that the methods compete on equal terms.
"""

import argparse
import os
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from skae import AutoencoderImputer

SEEDS = range(5)
N_JOBS = 1
# HyperImpute's protocol: the missing rate, the mechanisms, and the fraction
# of the columns, kept complete, whose values drive MAR missingness.
RATE = 0.3
MECHANISMS = ("MCAR", "MAR", "MNAR")
MAR_DRIVERS = 0.3
# The baselines skae is compared with per cell: the best of these.
STRONG = ("knn", "iterative", "missforest")


def imputers(seed, *, missforest=False):
    """The methods compared, each a fresh estimator."""
    methods = {
        "mean": SimpleImputer(),
        "knn": KNNImputer(n_neighbors=5),
        "iterative": IterativeImputer(max_iter=10, random_state=seed),
    }
    if missforest:
        methods["missforest"] = IterativeImputer(
            ExtraTreesRegressor(n_estimators=50, random_state=seed, n_jobs=N_JOBS),
            max_iter=10,
            random_state=seed,
        )
    methods["skae"] = AutoencoderImputer(random_state=seed)
    return methods


# Data and masks


def min_max(X):
    low, high = X.min(axis=0), X.max(axis=0)
    return (X - low) / np.where(high > low, high - low, 1)


def tables():
    return {
        "breast": min_max(load_breast_cancer().data),
        "wine": min_max(load_wine().data),
        "diabetes": min_max(load_diabetes().data),
        "digits": min_max(load_digits().data),
    }


def mcar(X, rate, seed):
    """Entries missing completely at random."""
    return np.random.default_rng(seed).random(X.shape) < rate


def _intercepts(logits, rate):
    """Per-column intercepts that give each column of ``logits`` the missing ``rate``."""
    low = np.full(logits.shape[1], -50.0)
    high = np.full(logits.shape[1], 50.0)
    for _ in range(60):
        middle = (low + high) / 2
        too_many = (1 / (1 + np.exp(-(logits + middle)))).mean(axis=0) > rate
        high = np.where(too_many, middle, high)
        low = np.where(too_many, low, middle)
    return (low + high) / 2


def _unit_spread(logits):
    spread = logits.std(axis=0)
    return logits / np.where(spread > 0, spread, 1.0)


def missing_mask(X, mechanism, rate, seed):
    """Which entries of X to remove, True where missing, as HyperImpute's ``simulate_nan``."""
    rng = np.random.default_rng(seed)
    n_samples, n_features = X.shape
    if mechanism == "MCAR":
        return rng.random(X.shape) < rate
    if mechanism == "MAR":
        n_drivers = max(int(MAR_DRIVERS * n_features), 1)
        columns = rng.permutation(n_features)
        drivers, driven = columns[:n_drivers], columns[n_drivers:]
        logits = _unit_spread(X[:, drivers] @ rng.random((n_drivers, len(driven))))
        mask = np.zeros(X.shape, dtype=bool)
        p = 1 / (1 + np.exp(-(logits + _intercepts(logits, rate))))
        mask[:, driven] = rng.random(p.shape) < p
        return mask
    if mechanism == "MNAR":
        logits = _unit_spread(X * rng.random(n_features))
        p = 1 / (1 + np.exp(-(logits + _intercepts(logits, rate))))
        return rng.random(X.shape) < p
    raise ValueError(f"Unknown mechanism {mechanism!r}.")


def rmse(X_filled, X, mask):
    return float(np.sqrt(np.mean((X_filled[mask] - X[mask]) ** 2)))


def fill(imputer, X, mask):
    """RMSE over the removed entries and fit + transform seconds of one imputer."""
    X_missing = np.where(mask, np.nan, X)
    start = time.perf_counter()
    filled = imputer.fit_transform(X_missing)
    seconds = time.perf_counter() - start
    if filled.shape != X.shape:  # a column lost entirely
        filled = np.where(mask, X.mean(axis=0), X)
    return rmse(filled, X, mask), seconds


# Tables


def protocol_table(data, mechanisms=MECHANISMS):
    """HyperImpute's protocol: RMSE and seconds per table and mechanism, with skae's ratios."""
    seeds = list(SEEDS)
    print(
        f"\nHyperImpute protocol: {RATE:.0%} missing, min-max scaled columns, RMSE over the "
        f"removed entries, mean of {len(seeds)} mask seed(s) {seeds} (methods share them)"
    )
    methods = ("mean", "knn", "iterative", "missforest", "skae")
    header = (
        f"{'data':9} {'mask':5} | "
        + " ".join(f"{m[:10]:>10}" for m in methods)
        + f" | {'skae/best':>9} {'best':>10} | skae's neighbor_weight_ per seed"
    )
    print(header)
    print("-" * len(header))
    ratios, seconds = [], {}
    for name, X in data.items():
        for mechanism in mechanisms:
            scores, weights = {}, []
            for seed in seeds:
                mask = missing_mask(X, mechanism, RATE, seed)
                methods_of_seed = imputers(seed, missforest=True)
                for method, imputer in methods_of_seed.items():
                    scores.setdefault(method, []).append(fill(imputer, X, mask))
                weights.append(f"{methods_of_seed['skae'].neighbor_weight_:.1f}")
            error = {m: np.mean([r for r, _ in v]) for m, v in scores.items()}
            for m, v in scores.items():
                seconds.setdefault(name, {}).setdefault(m, []).extend(s for _, s in v)
            best = min(STRONG, key=error.get)
            ratios.append(error["skae"] / error[best])
            row = " ".join(f"{error[m]:10.4f}" for m in methods)
            print(
                f"{name:9} {mechanism:5} | {row} | {ratios[-1]:9.3f} {best:>10} | "
                + " ".join(weights),
                flush=True,
            )
    print(f"skae / best baseline: mean {np.mean(ratios):.3f}, worst {np.max(ratios):.3f}")
    print("\nFit + transform seconds, mean per fit")
    print(f"{'data':9} | " + " ".join(f"{m[:10]:>10}" for m in methods) + " | skae/missforest")
    for name, per_method in seconds.items():
        mean = {m: np.mean(v) for m, v in per_method.items()}
        row = " ".join(f"{mean[m]:10.2f}" for m in methods)
        print(f"{name:9} | {row} | {mean['skae'] / mean['missforest']:15.3f}")


def impute_table(data, patterns):
    """Mean RMSE and fit + transform seconds of each method, per data set and pattern."""
    results = {}
    for name, X in data.items():
        for pattern, rate in patterns:
            scores = {}
            for seed in SEEDS:
                mask = mcar(X, rate, seed)
                for method, imputer in imputers(seed).items():
                    scores.setdefault(method, []).append(fill(imputer, X, mask))
            results[name, pattern, rate] = {
                method: np.mean(values, axis=0) for method, values in scores.items()
            }
    return results


def print_table(title, results):
    print(f"\n{title}")
    header = (
        f"{'data':9} {'pattern':9} | {'mean':>7} {'knn':>7} {'iter':>7} {'skae':>7} | "
        f"{'/mean':>6} {'/knn':>6} {'/iter':>6} {'/best':>6} | {'skae s':>6} {'knn s':>6} "
        f"{'iter s':>6}"
    )
    print(header)
    print("-" * len(header))
    for (name, pattern, rate), scores in results.items():
        error = {method: score[0] for method, score in scores.items()}
        best = min(error["knn"], error["iterative"])
        print(
            f"{name:9} {pattern} {rate:<4g} | {error['mean']:7.4f} {error['knn']:7.4f} "
            f"{error['iterative']:7.4f} {error['skae']:7.4f} | "
            f"{error['skae'] / error['mean']:6.3f} {error['skae'] / error['knn']:6.3f} "
            f"{error['skae'] / error['iterative']:6.3f} {error['skae'] / best:6.3f} | "
            f"{scores['skae'][1]:6.2f} {scores['knn'][1]:6.2f} {scores['iterative'][1]:6.2f}"
        )


def downstream_table():
    """Cross-validated accuracy of LogisticRegression after each imputer."""
    X, y = load_breast_cancer(return_X_y=True)
    print(
        "\nDownstream: LogisticRegression on breast cancer, 5-fold accuracy, "
        f"mean of {len(SEEDS)} masks"
    )
    print(f"{'rate':>5} | {'mean':>6} {'knn':>6} {'iter':>6} {'skae':>6} | complete data")
    complete = cross_val_score(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), X, y, cv=5
    ).mean()
    for rate in (0.2, 0.5):
        accuracy = {}
        for seed in SEEDS:
            X_missing = np.where(mcar(X, rate, seed), np.nan, X)
            folds = StratifiedKFold(5, shuffle=True, random_state=seed)
            for method, imputer in imputers(seed).items():
                pipeline = make_pipeline(
                    imputer, StandardScaler(), LogisticRegression(max_iter=1000)
                )
                score = cross_val_score(pipeline, X_missing, y, cv=folds).mean()
                accuracy.setdefault(method, []).append(score)
        row = " ".join(
            f"{np.mean(accuracy[m]):6.4f}" for m in ("mean", "knn", "iterative", "skae")
        )
        print(f"{rate:5.1f} | {row} | {complete:.4f}")


def network_kept(imputer):
    """Whether the held-out check kept the trained network, not the linear start.

    The corrections beside the linear path start at zero; a network dropped
    by the check still has an output layer of zeros.
    """
    return all(coef.any() for coef in imputer.coefs_)


def mnist_table(n_rows):
    try:
        from skae.datasets import load_mnist

        X, _ = load_mnist(subset="train", return_X_y=True)
        X_test, _ = load_mnist(subset="test", return_X_y=True)
    except Exception as error:  # the data are optional
        print(f"\nMNIST skipped: {error}")
        return
    X, X_test = X[:n_rows].astype(np.float64), X_test[:2_000].astype(np.float64)
    X_missing = np.where(mcar(X, 0.5, 0), np.nan, X)
    mask = mcar(X_test, 0.5, 1)
    X_test_missing = np.where(mask, np.nan, X_test)
    print(f"\nMNIST: {n_rows:,} training / 2,000 test images, 50% of pixels missing at random")
    print(f"{'method':10} | {'RMSE':>7} {'/knn':>6} | {'fit+transform s':>15} {'/knn':>6}")
    results = {}
    methods = {
        "mean": SimpleImputer(keep_empty_features=True),
        "knn": KNNImputer(n_neighbors=5, keep_empty_features=True),
        "skae": AutoencoderImputer(random_state=0, keep_empty_features=True),
        # The rows as 28 x 28 images: convolutions of each linearly filled
        # image beside the linear model.
        "skae conv": AutoencoderImputer(
            image_shape=(28, 28), random_state=0, keep_empty_features=True
        ),
    }
    for method, imputer in methods.items():
        start = time.perf_counter()
        filled = imputer.fit(X_missing).transform(X_test_missing)
        results[method] = rmse(filled, X_test, mask), time.perf_counter() - start
    for method, (error, seconds) in results.items():
        print(
            f"{method:10} | {error:7.4f} {error / results['knn'][0]:6.3f} | "
            f"{seconds:15.1f} {seconds / results['knn'][1]:6.2f}"
        )
    for method in ("skae", "skae conv"):
        skae = methods[method]
        print(
            f"{method}'s network kept by the held-out check: {network_kept(skae)} "
            f"({skae.n_iter_} epochs, {skae.n_components_} components); weight of the "
            f"{skae.n_neighbors_} nearest training rows' values: {skae.neighbor_weight_:.1f}"
        )


def main():
    global SEEDS, N_JOBS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip MNIST")
    parser.add_argument(
        "--only",
        action="append",
        choices=("protocol", "gain", "downstream", "mnist"),
        help="run only these tables (repeatable)",
    )
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="mask seeds per cell")
    parser.add_argument(
        "--tables",
        default="breast,wine,diabetes,digits",
        help="comma-separated tables of the protocol",
    )
    parser.add_argument(
        "--mechanisms", default=",".join(MECHANISMS), help="comma-separated mechanisms"
    )
    parser.add_argument("--mnist-rows", type=int, default=10_000, help="MNIST training images")
    parser.add_argument("--n-jobs", type=int, default=1, help="threads of every method")
    args = parser.parse_args()
    SEEDS, N_JOBS = range(args.seeds), args.n_jobs
    only = set(args.only or ("protocol", "gain", "downstream", "mnist"))
    if args.quick:
        only.discard("mnist")
    warnings.filterwarnings("ignore")
    torch.set_num_threads(N_JOBS)
    print(
        f"torch {torch.__version__}, {N_JOBS} thread(s); "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    with threadpool_limits(N_JOBS):
        if "protocol" in only:
            data = {name: tables()[name] for name in args.tables.split(",")}
            protocol_table(data, args.mechanisms.split(","))
        if "gain" in only:
            print_table(
                f"GAIN protocol, MCAR, RMSE in min-max units, mean of {len(SEEDS)} masks "
                "(methods share them)",
                impute_table({"breast": tables()["breast"]}, [("MCAR", 0.2), ("MCAR", 0.5)]),
            )
        if "downstream" in only:
            downstream_table()
        if "mnist" in only:
            mnist_table(args.mnist_rows)


if __name__ == "__main__":
    main()
