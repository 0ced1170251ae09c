"""AutoencoderImputer against scikit-learn's imputers, on real data.

Run from the repository root::

    python benchmarks/bench_imputer.py            # all tables, MNIST included
    python benchmarks/bench_imputer.py --quick    # without MNIST

Tables:

- GAIN's protocol (Yoon et al., 2018) on scikit-learn's breast cancer data
  (569 x 30): each column min-max normalised, entries removed completely at
  random at 20% and 50%, RMSE over the removed entries in the normalised
  scale, mean over 5 mask seeds. The same protocol on wine, diabetes and
  digits.
- A missing-at-random pattern: the missingness of half the columns is a
  logistic function of the observed values of the other half (30% missing
  in those columns), as in HyperImpute's simulations.
- Downstream: the accuracy of ``LogisticRegression`` after each imputer on
  the breast cancer data, 5-fold cross-validation, at 20% and 50%.
- MNIST: 10,000 training images with 50% of the pixels removed at random,
  2,000 test images likewise; RMSE on the removed test pixels and the wall
  time of fit plus transform (from ``skae.datasets.load_mnist``; skipped
  with ``--quick`` or without the data).

Every method sees the same masks, and every comparison is a ratio measured
in the same run: absolute seconds depend on the machine and on whatever
else runs on it. torch and the BLAS run on one thread, so that the
methods compete on equal terms.
"""

import argparse
import os
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from skae import AutoencoderImputer

SEEDS = range(5)


def imputers(seed):
    """The methods compared, each a fresh estimator."""
    return {
        "mean": SimpleImputer(),
        "knn": KNNImputer(n_neighbors=5),
        "iterative": IterativeImputer(max_iter=10, random_state=seed),
        "skae": AutoencoderImputer(random_state=seed),
    }


# Data and masks


def min_max(X):
    low, high = X.min(axis=0), X.max(axis=0)
    return (X - low) / np.where(high > low, high - low, 1)


def tables():
    return {
        "breast": min_max(load_breast_cancer().data),
        "wine": min_max(load_wine().data),
        "diabetes": min_max(load_diabetes().data),
        "digits": load_digits().data / 16.0,
    }


def mcar(X, rate, seed):
    """Entries missing completely at random."""
    return np.random.default_rng(seed).random(X.shape) < rate


def mar(X, rate, seed):
    """Half the columns missing with a probability driven by the other half's values."""
    rng = np.random.default_rng(seed)
    n_samples, n_features = X.shape
    columns = rng.permutation(n_features)
    drivers, driven = (
        columns[: n_features - n_features // 2],
        columns[n_features - n_features // 2 :],
    )
    Z = (X[:, drivers] - X[:, drivers].mean(0)) / (X[:, drivers].std(0) + 1e-12)
    logits = 3 * Z @ rng.normal(size=(len(drivers), len(driven))) / np.sqrt(len(drivers))
    mask = np.zeros(X.shape, dtype=bool)
    for j, column in enumerate(driven):
        # The intercept that gives the rate, by bisection.
        low, high = -50.0, 50.0
        for _ in range(60):
            middle = (low + high) / 2
            p = 1 / (1 + np.exp(-(logits[:, j] + middle)))
            low, high = (low, middle) if p.mean() > rate else (middle, high)
        mask[:, column] = rng.random(n_samples) < p
    return mask


def rmse(X_filled, X, mask):
    return float(np.sqrt(np.mean((X_filled[mask] - X[mask]) ** 2)))


# Tables


def impute_table(data, patterns):
    """Mean RMSE and fit + transform seconds of each method, per data set and pattern."""
    results = {}
    for name, X in data.items():
        for pattern, rate in patterns:
            scores = {}
            for seed in SEEDS:
                mask = (mcar if pattern == "MCAR" else mar)(X, rate, seed)
                X_missing = np.where(mask, np.nan, X)
                for method, imputer in imputers(seed).items():
                    start = time.perf_counter()
                    filled = imputer.fit_transform(X_missing)
                    seconds = time.perf_counter() - start
                    if filled.shape != X.shape:  # a column lost entirely
                        filled = np.where(mask, X.mean(axis=0), X)
                    scores.setdefault(method, []).append((rmse(filled, X, mask), seconds))
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
    print("\nDownstream: LogisticRegression on breast cancer, 5-fold accuracy, mean of 5 masks")
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


def mnist_table():
    try:
        from skae.datasets import load_mnist

        X, _ = load_mnist(subset="train", return_X_y=True)
        X_test, _ = load_mnist(subset="test", return_X_y=True)
    except Exception as error:  # the data are optional
        print(f"\nMNIST skipped: {error}")
        return
    X, X_test = X[:10_000].astype(np.float64), X_test[:2_000].astype(np.float64)
    X_missing = np.where(mcar(X, 0.5, 0), np.nan, X)
    mask = mcar(X_test, 0.5, 1)
    X_test_missing = np.where(mask, np.nan, X_test)
    print("\nMNIST: 10,000 training / 2,000 test images, 50% of pixels missing at random")
    print(f"{'method':10} | {'RMSE':>7} {'/knn':>6} | {'fit+transform s':>15} {'/knn':>6}")
    results = {}
    methods = {
        "mean": SimpleImputer(keep_empty_features=True),
        "knn": KNNImputer(n_neighbors=5, keep_empty_features=True),
        "skae": AutoencoderImputer(random_state=0, keep_empty_features=True),
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip MNIST")
    parser.add_argument("--mnist-only", action="store_true", help="only the MNIST table")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; load average {os.getloadavg()[0]:.1f} at start")
    with threadpool_limits(1):
        if not args.mnist_only:
            data = tables()
            print_table(
                "GAIN protocol, MCAR, RMSE in min-max units, mean of 5 masks (methods share them)",
                impute_table({"breast": data["breast"]}, [("MCAR", 0.2), ("MCAR", 0.5)]),
            )
            print_table(
                "Missing at random (30% in half the columns), mean of 5 masks",
                impute_table(data, [("MAR", 0.3)]),
            )
            print_table(
                "Other data sets, MCAR, mean of 5 masks",
                impute_table(
                    {name: data[name] for name in ("wine", "diabetes", "digits")},
                    [("MCAR", 0.2), ("MCAR", 0.5)],
                ),
            )
            downstream_table()
        if not args.quick:
            mnist_table()


if __name__ == "__main__":
    main()
