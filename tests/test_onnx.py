"""ONNX export: graphs written by skae.onnx, run by onnxruntime, against skae."""

import importlib
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler

from skae import AutoencoderImputer, AutoencoderOutlierDetector, AutoencoderTransformer
from skae._nn._contract import ACTIVATIONS

skl2onnx = pytest.importorskip("skl2onnx")
onnxruntime = pytest.importorskip("onnxruntime")
skae_onnx = pytest.importorskip("skae.onnx")

# A few epochs of the cosine schedule: quick, and no ConvergenceWarning.
FIT = dict(encoding_dim=8, max_iter=3, random_state=0)
ATOL = 1e-4

CONFIGURATIONS = {
    "linear, clipped output": {},
    "linear, identity output": dict(output_activation="identity"),
    "linear, sigmoid output, bce": dict(loss="bce"),
    "linear, relu code": dict(code_activation="relu"),
    **{
        f"dense, {name} hidden": dict(hidden_layer_sizes=(24, 16), activation=name, init="random")
        for name in ACTIVATIONS
    },
    **{
        f"dense, {name} code": dict(hidden_layer_sizes=(24,), code_activation=name, init="random")
        for name in ACTIVATIONS
        if name != "identity"
    },
    **{
        f"residual, {name} hidden": dict(hidden_layer_sizes=(24, 16), activation=name)
        for name in ACTIVATIONS
    },
    "residual, identity output": dict(hidden_layer_sizes=(24,), output_activation="identity"),
}


@pytest.fixture(scope="module")
def X():
    """scikit-learn's digits scaled to [0, 1], as float32."""
    return (load_digits().data / 16).astype(np.float32)


def run(onx, X):
    """The first output of the ONNX model ``onx`` on X, by onnxruntime."""
    session = onnxruntime.InferenceSession(
        onx.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {session.get_inputs()[0].name: X})


def check_network(ae, params):
    """Check that ``ae`` has the network kind the configuration is meant to test."""
    kind = ae._network_spec["kind"]
    if "hidden_layer_sizes" in params:
        assert kind == ("dense" if params.get("init") == "random" else "residual")
    if kind == "residual":
        # The branches start at zero: training must have moved them.
        assert np.abs(ae.coefs_[-1]).max() > 0


@pytest.mark.parametrize("params", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_transform_float32(X, params):
    ae = AutoencoderTransformer(**FIT, **params).fit(X)
    check_network(ae, params)
    codes = run(skl2onnx.to_onnx(ae, X[:1]), X)[0]
    assert codes.dtype == np.float32
    np.testing.assert_allclose(codes, ae.transform(X), rtol=0, atol=ATOL)


@pytest.mark.parametrize("params", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_float64_model(X, params):
    """A model fitted in float64 converts to a float32 and a float64 graph."""
    X64 = X.astype(np.float64)
    ae = AutoencoderTransformer(**FIT, **params).fit(X64)
    expected = ae.transform(X64)
    codes = run(skl2onnx.to_onnx(ae, X[:1]), X)[0]
    np.testing.assert_allclose(codes, expected, rtol=0, atol=ATOL)
    codes = run(skl2onnx.to_onnx(ae, X64[:1]), X64)[0]
    assert codes.dtype == np.float64
    # The error function of "gelu" is computed in float32.
    gelu = "gelu" in (ae._network_spec["activation"], ae._network_spec["code_activation"])
    np.testing.assert_allclose(codes, expected, rtol=0, atol=1e-6 if gelu else 1e-10)


def test_unnormalised_data():
    """The normalisation folded into the first layer keeps float32 precise."""
    X = 1e3 + 50 * load_digits().data
    ae = AutoencoderTransformer(**FIT, hidden_layer_sizes=(24,)).fit(X)
    assert ae.scale_ > 100
    codes = run(skl2onnx.to_onnx(ae, X[:1].astype(np.float32)), X.astype(np.float32))[0]
    np.testing.assert_allclose(codes, ae.transform(X), rtol=0, atol=ATOL)


def test_integer_input(X):
    X_int = load_digits().data.astype(np.int64)
    ae = AutoencoderTransformer(**FIT, output_activation="identity").fit(X_int)
    codes = run(skl2onnx.to_onnx(ae, X_int[:1]), X_int)[0]
    assert codes.dtype == np.float32
    np.testing.assert_allclose(codes, ae.transform(X_int), rtol=0, atol=ATOL)


@pytest.mark.parametrize("target_opset", [18, 20])
def test_gelu_every_opset(X, target_opset):
    """The Gelu operator from opset 20, the error function before."""
    ae = AutoencoderTransformer(
        **FIT, hidden_layer_sizes=(24,), activation="gelu", init="random"
    ).fit(X)
    onx = skl2onnx.to_onnx(ae, X[:1], target_opset=target_opset)
    assert ("Gelu" in {node.op_type for node in onx.graph.node}) == (target_opset >= 20)
    np.testing.assert_allclose(run(onx, X)[0], ae.transform(X), rtol=0, atol=ATOL)


def test_pipeline_with_classifier(X):
    y = load_digits().target
    pipeline = Pipeline(
        [
            ("scale", StandardScaler()),
            ("reduce", AutoencoderTransformer(encoding_dim=16, max_iter=5, random_state=0)),
            ("classify", LogisticRegression(max_iter=2000)),
        ]
    ).fit(X, y)
    labels, probabilities = run(skl2onnx.to_onnx(pipeline, X[:1]), X)
    np.testing.assert_array_equal(labels, pipeline.predict(X))
    probabilities = np.array([[row[label] for label in range(10)] for row in probabilities])
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(X), rtol=0, atol=ATOL)


def test_feature_union(X):
    union = FeatureUnion(
        [
            ("pca", PCA(n_components=4)),
            ("ae", AutoencoderTransformer(**FIT, hidden_layer_sizes=(16,))),
        ]
    ).fit(X)
    features = run(skl2onnx.to_onnx(union, X[:1]), X)[0]
    np.testing.assert_allclose(features, union.transform(X), rtol=0, atol=ATOL)


class Reconstructor(AutoencoderTransformer):
    """An autoencoder converted to its reconstruction, to test the decoders' graphs."""


def _reconstruction_shape(operator):
    network = skae_onnx._fitted_network(operator.raw_operator)
    n_samples = operator.inputs[0].get_first_dimension()
    n_features = network.spec["n_features"]
    operator.outputs[0].type = skae_onnx._output_type(operator)([n_samples, n_features])


def _convert_reconstruction(scope, operator, container):
    network = skae_onnx._fitted_network(operator.raw_operator)
    graph = skae_onnx._Graph(scope, operator, container)
    graph.output(network.decode(graph, network.encode(graph, graph.input())))


@pytest.fixture(scope="module")
def reconstructor():
    """``Reconstructor``, registered with skl2onnx."""
    skl2onnx.update_registered_converter(
        Reconstructor, "SkaeTestReconstructor", _reconstruction_shape, _convert_reconstruction
    )
    return Reconstructor


@pytest.mark.parametrize(
    "params",
    [
        {},
        dict(output_activation="identity"),
        dict(loss="bce"),
        dict(hidden_layer_sizes=(24,), activation="tanh", init="random"),
        dict(hidden_layer_sizes=(24,), activation="elu", output_activation="identity"),
        dict(hidden_layer_sizes=(24, 16), activation="gelu"),
        dict(hidden_layer_sizes=(24, 16), activation="relu", output_activation="identity"),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reconstruction(X, reconstructor, params, dtype):
    """The decoders give the reconstruction in the data's units."""
    if params.get("output_activation") == "identity":
        X = 1e3 + 50 * X
    X = X.astype(dtype)
    ae = reconstructor(**FIT, **params).fit(X)
    expected = ae.inverse_transform(ae.transform(X))
    X32 = X.astype(np.float32)
    reconstruction = run(skl2onnx.to_onnx(ae, X32[:1]), X32)[0]
    np.testing.assert_allclose(reconstruction, expected, rtol=1e-5, atol=ATOL)
    if dtype == np.float64:
        reconstruction = run(skl2onnx.to_onnx(ae, X[:1]), X)[0]
        # The error function of "gelu" is computed in float32.
        atol = 1e-6 if params.get("activation") == "gelu" else 1e-9
        np.testing.assert_allclose(reconstruction, expected, rtol=1e-7, atol=atol)


# The imputer and the outlier detector


@pytest.fixture(scope="module")
def X_missing(X):
    """500 digits with a fifth of the entries missing, as float64."""
    X_missing = X[:500].astype(np.float64)
    X_missing[np.random.default_rng(0).random(X_missing.shape) < 0.2] = np.nan
    return X_missing


def transform_quietly(imputer, X):
    """``imputer.transform(X)``, whose warning of dropped empty features is expected."""
    if imputer._empty_features.size and not imputer.keep_empty_features:
        with pytest.warns(UserWarning, match="Skipping features"):
            return imputer.transform(X)
    return imputer.transform(X)


IMPUTE = dict(hidden_layer_sizes=(8,), max_iter=1, random_state=0)


@pytest.mark.parametrize(
    "params, empty",
    [
        ({}, False),
        (dict(add_indicator=True, activation="relu", missing_values=-1.0), False),
        (dict(add_indicator=True), True),
    ],
)
def test_imputer(X_missing, params, empty):
    """Observed entries pass through, missing ones are filled as transform fills them."""
    X = X_missing.copy()
    if empty:
        X[:, [0, 5]] = np.nan
    if "missing_values" in params:
        X = np.nan_to_num(X, nan=params["missing_values"])
    # Fitted in float64, the linear fill is exact, as the graph's is.
    imputer = AutoencoderImputer(**IMPUTE, **params).fit(X)
    # Digits' pixels pile up at 0 and 16: the fill is clipped there.
    assert np.isfinite(imputer._min_value).sum() > 50 and np.isfinite(imputer._max_value).any()
    X32 = X.astype(np.float32)
    observed = (X32 != params.get("missing_values", np.nan)) & ~np.isnan(X32)
    # Empty features are dropped, or kept filled with zeros.
    for keep_empty_features in [False, True] if empty else [False]:
        imputer.set_params(keep_empty_features=keep_empty_features)
        expected = transform_quietly(imputer, X32)
        imputed = run(skl2onnx.to_onnx(imputer, X32[:1]), X32)[0]
        assert imputed.dtype == np.float32 and imputed.shape == expected.shape
        np.testing.assert_allclose(imputed, expected, rtol=1e-5, atol=1e-5)
        dropped = [0, 5] if empty and not keep_empty_features else []
        kept = np.setdiff1d(np.arange(64), dropped)
        entries = imputed[:, : kept.size][observed[:, kept]]
        np.testing.assert_array_equal(entries, X32[:, kept][observed[:, kept]])


def test_imputer_fitted_in_float32(X_missing):
    X32 = X_missing.astype(np.float32)
    imputer = AutoencoderImputer(**IMPUTE).fit(X32)
    imputed = run(skl2onnx.to_onnx(imputer, X32[:1]), X32)[0]
    np.testing.assert_allclose(imputed, imputer.transform(X32), rtol=1e-5, atol=1e-5)


def test_imputer_of_many_features():
    """Beyond 256 features the fill is iterated, in the graph as in transform."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 8)) @ rng.standard_normal((8, 300))
    X += 0.1 * rng.standard_normal(X.shape)
    X[rng.random(X.shape) < 0.2] = np.nan
    imputer = AutoencoderImputer(**IMPUTE).fit(X)
    X32 = X.astype(np.float32)
    imputed = run(skl2onnx.to_onnx(imputer, X32[:1]), X32)[0]
    np.testing.assert_allclose(imputed, imputer.transform(X32), rtol=1e-5, atol=1e-5)


DETECT = dict(max_iter=3, random_state=0)


@pytest.mark.parametrize(
    "params",
    [
        {},
        dict(hidden_layer_sizes=(24,), n_neighbors=5),
        dict(hidden_layer_sizes=(24,), activation="tanh", init="random"),
        dict(output_activation="identity", contamination=0.1),
    ],
)
def test_outlier_detector(X, params):
    """Labels, decision_function and score_samples, on training and new samples."""
    detector = AutoencoderOutlierDetector(**DETECT, **params).fit(X)
    noise = np.random.default_rng(0).normal(0, 0.1, size=(50, 64))
    X_new = np.vstack([X, np.clip(X[:50] + noise, 0, 1).astype(np.float32)])
    onx = skl2onnx.to_onnx(detector, X[:1], options={id(detector): {"score_samples": True}})
    labels, decisions, scores = run(onx, X_new)
    assert labels.dtype == np.int64 and labels.shape == (len(X_new),)
    assert decisions.dtype == scores.dtype == np.float32
    np.testing.assert_allclose(scores, detector.score_samples(X_new), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(decisions, detector.decision_function(X_new), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(labels, detector.predict(X_new))
    assert (labels == -1).any() and (labels == 1).any()


def test_outlier_detector_without_score_samples(X):
    detector = AutoencoderOutlierDetector(**DETECT).fit(X)
    outputs = run(skl2onnx.to_onnx(detector, X[:1]), X)
    assert len(outputs) == 2
    np.testing.assert_array_equal(outputs[0], detector.predict(X))


def test_outlier_detector_float64(X):
    X64 = X.astype(np.float64)
    detector = AutoencoderOutlierDetector(**DETECT).fit(X64)
    labels, decisions = run(skl2onnx.to_onnx(detector, X64[:1]), X64)
    assert decisions.dtype == np.float64
    np.testing.assert_allclose(decisions, detector.decision_function(X64), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(labels, detector.predict(X64))


def test_imputer_in_pipelines(X_missing):
    y = load_digits().target[: len(X_missing)]
    X32 = X_missing.astype(np.float32)
    classifier = Pipeline(
        [
            ("impute", AutoencoderImputer(**IMPUTE)),
            ("classify", LogisticRegression(max_iter=2000)),
        ]
    ).fit(X_missing, y)
    labels, probabilities = run(skl2onnx.to_onnx(classifier, X32[:1]), X32)
    np.testing.assert_array_equal(labels, classifier.predict(X32))
    probabilities = np.array([[row[label] for label in range(10)] for row in probabilities])
    np.testing.assert_allclose(probabilities, classifier.predict_proba(X32), rtol=1e-5, atol=1e-5)
    detector = Pipeline(
        [
            ("impute", AutoencoderImputer(**IMPUTE)),
            ("detect", AutoencoderOutlierDetector(**DETECT)),
        ]
    ).fit(X_missing)
    labels, decisions = run(skl2onnx.to_onnx(detector, X32[:1]), X32)
    np.testing.assert_array_equal(labels, detector.predict(X32))
    np.testing.assert_allclose(decisions, detector.decision_function(X32), rtol=1e-5, atol=1e-5)


def test_outlier_detector_in_pipeline(X):
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("detect", AutoencoderOutlierDetector(**DETECT))]
    ).fit(X)
    labels, decisions = run(skl2onnx.to_onnx(pipeline, X[:1]), X)
    np.testing.assert_array_equal(labels, pipeline.predict(X))
    np.testing.assert_allclose(decisions, pipeline.decision_function(X), rtol=1e-5, atol=1e-5)


# Bad input


@pytest.mark.parametrize(
    "estimator", [AutoencoderTransformer, AutoencoderImputer, AutoencoderOutlierDetector]
)
def test_unfitted_estimator(X, estimator):
    message = f"{estimator.__name__} instance is not fitted yet: fit it before converting"
    with pytest.raises(NotFittedError, match=message):
        skl2onnx.to_onnx(estimator(), X[:1])


def test_unfitted(X):
    message = "AutoencoderTransformer instance is not fitted yet: fit it before converting"
    pipeline = Pipeline([("scale", StandardScaler().fit(X)), ("ae", AutoencoderTransformer())])
    with pytest.raises(NotFittedError, match=message):
        skl2onnx.to_onnx(pipeline, X[:1])


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("kind", "convolutional", r"network of kind 'convolutional'; it converts the kinds"),
        ("activation", "softplus", r"activation='softplus'; it converts \['elu'"),
        ("code_activation", "softplus", r"code_activation='softplus'"),
        ("output_activation", "softmax", r"output_activation='softmax'"),
    ],
)
def test_configuration_not_covered(X, field, value, message):
    ae = AutoencoderTransformer(**FIT).fit(X)
    ae._network_spec = {**ae._network_spec, field: value}
    with pytest.raises(
        NotImplementedError, match=f"cannot convert AutoencoderTransformer.*{message}"
    ):
        skl2onnx.to_onnx(ae, X[:1])


@pytest.mark.parametrize(
    "params, target_opset, message",
    [
        ({}, 6, "the network uses the operator Add, added in opset 7"),
        (
            dict(hidden_layer_sizes=(8,), activation="gelu", init="random"),
            8,
            "the 'gelu' activation uses the operator Erf, added in opset 9",
        ),
    ],
)
def test_opset_too_old(X, params, target_opset, message):
    ae = AutoencoderTransformer(**FIT, **params).fit(X)
    with pytest.raises(
        RuntimeError,
        match=f"AutoencoderTransformer cannot be converted to ONNX with target_opset="
        f"{target_opset}: {message}",
    ):
        skl2onnx.to_onnx(ae, X[:1], target_opset=target_opset)


def test_opset_too_old_for_the_fills_and_neighbours(X, X_missing):
    imputer = AutoencoderImputer(**IMPUTE).fit(X_missing)
    with pytest.raises(
        RuntimeError,
        match="target_opset=10: the linear fill uses the operator Loop, added in opset 11",
    ):
        skl2onnx.to_onnx(imputer, X[:1], target_opset=10)
    detector = AutoencoderOutlierDetector(**DETECT, output_activation="identity").fit(X)
    with pytest.raises(
        RuntimeError, match="the local outlier factor uses the operator TopK, added in opset 11"
    ):
        skl2onnx.to_onnx(detector, X[:1], target_opset=10)


def test_wrong_number_of_features(X):
    ae = AutoencoderTransformer(**FIT).fit(X)
    with pytest.raises(
        RuntimeError, match="10 features, but AutoencoderTransformer is expecting 64"
    ):
        skl2onnx.to_onnx(ae, X[:1, :10])


def test_without_skl2onnx(monkeypatch):
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    monkeypatch.delitem(sys.modules, "skae.onnx")
    with pytest.raises(ImportError, match=r'pip install "skae\[onnx\]"'):
        importlib.import_module("skae.onnx")
