"""Safe persistence with skops, and pickles free of torch objects."""

import io
import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skae import AutoencoderTransformer

sio = pytest.importorskip("skops.io")

# A few epochs of the cosine schedule: quick, and no ConvergenceWarning.
FIT = dict(encoding_dim=8, max_iter=3, random_state=0)
SKAE_TYPES = ["skae._autoencoder.AutoencoderTransformer"]

CONFIGURATIONS = {
    "linear": {},
    "early stopping": dict(early_stopping=True),
    "dense": dict(hidden_layer_sizes=(24,), activation="tanh", init="random"),
    "residual": dict(hidden_layer_sizes=(24, 16), activation="gelu"),
    "identity output": dict(output_activation="identity"),
}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


def round_trip(obj, path):
    """``obj`` dumped by skops and loaded back, trusting skae's types only."""
    sio.dump(obj, path)
    assert sio.get_untrusted_types(file=path) == SKAE_TYPES
    return sio.load(path, trusted=SKAE_TYPES)


def assert_same_outputs(ae, loaded, X):
    for method in ("transform", "score_samples"):
        expected = getattr(ae, method)(X)
        got = getattr(loaded, method)(X)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    codes = ae.transform(X)
    np.testing.assert_array_equal(loaded.inverse_transform(codes), ae.inverse_transform(codes))


@pytest.mark.parametrize("params", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_estimator(digits, tmp_path, params, dtype):
    X = digits[0].astype(dtype)
    ae = AutoencoderTransformer(**FIT, **params).fit(X)
    ae.transform(X[:5])  # builds and caches the torch network
    loaded = round_trip(ae, tmp_path / "ae.skops")
    assert loaded.get_params() == ae.get_params()
    assert_same_outputs(ae, loaded, X)


def test_training_continues_identically(digits, tmp_path):
    """The optimizer's and the random generator's states come back."""
    X = digits[0]
    ae = AutoencoderTransformer(**FIT, noise="gaussian").partial_fit(X)
    loaded = round_trip(ae, tmp_path / "ae.skops")
    ae.partial_fit(X)
    loaded.partial_fit(X)
    np.testing.assert_array_equal(loaded.transform(X), ae.transform(X))
    assert loaded.t_ == ae.t_


def test_unfitted(tmp_path):
    ae = AutoencoderTransformer(encoding_dim=5, hidden_layer_sizes=(16,))
    loaded = round_trip(ae, tmp_path / "ae.skops")
    assert loaded.get_params() == ae.get_params()
    assert not hasattr(loaded, "coefs_")


def test_pipeline(digits, tmp_path):
    X, y = digits
    pipeline = Pipeline(
        [
            ("scale", StandardScaler()),
            ("reduce", AutoencoderTransformer(**FIT, hidden_layer_sizes=(24,))),
            ("classify", LogisticRegression(max_iter=2000)),
        ]
    ).fit(X, y)
    loaded = round_trip(pipeline, tmp_path / "pipeline.skops")
    np.testing.assert_array_equal(loaded[:-1].transform(X), pipeline[:-1].transform(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), pipeline.predict_proba(X))


def test_set_output(digits, tmp_path):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(digits[0], columns=[f"pixel_{i}" for i in range(64)])
    ae = AutoencoderTransformer(**FIT).set_output(transform="pandas").fit(X)
    loaded = round_trip(ae, tmp_path / "ae.skops")
    pd.testing.assert_frame_equal(loaded.transform(X), ae.transform(X))
    np.testing.assert_array_equal(loaded.feature_names_in_, ae.feature_names_in_)


def test_untrusted_refused(digits, tmp_path):
    """skops loads skae's classes only when they are trusted."""
    path = tmp_path / "ae.skops"
    sio.dump(AutoencoderTransformer(**FIT).fit(digits[0]), path)
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException, match=SKAE_TYPES[0]):
        sio.load(path)


class _GlobalsRecorder(pickle.Unpickler):
    """An unpickler that records the module of every global a pickle loads."""

    def __init__(self, file):
        super().__init__(file)
        self.modules = set()

    def find_class(self, module, name):
        self.modules.add(module)
        return super().find_class(module, name)


def pickled_modules(obj):
    """The modules whose globals unpickling ``obj`` loads, and the loaded object."""
    unpickler = _GlobalsRecorder(io.BytesIO(pickle.dumps(obj)))
    return unpickler.modules, unpickler.load()


@pytest.mark.parametrize("params", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_pickle_holds_no_torch_object(digits, params):
    X, y = digits
    pipeline = Pipeline(
        [("reduce", AutoencoderTransformer(**FIT, **params)), ("scale", StandardScaler())]
    ).fit(X, y)
    pipeline.transform(X[:5])  # builds and caches the torch network
    modules, loaded = pickled_modules(pipeline)
    assert "skae._autoencoder" in modules
    assert not [module for module in modules if module.split(".")[0] == "torch"]
    np.testing.assert_array_equal(loaded.transform(X), pipeline.transform(X))
