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

from skae import AutoencoderTransformer
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


# Bad input


def test_unfitted(X):
    message = "AutoencoderTransformer instance is not fitted yet: fit it before converting"
    with pytest.raises(NotFittedError, match=message):
        skl2onnx.to_onnx(AutoencoderTransformer(), X[:1])
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
