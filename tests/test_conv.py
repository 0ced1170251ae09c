"""The convolutional kind: image_shape on the estimators, its start, state and export."""

import io
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from skae import (
    AutoencoderImputer,
    AutoencoderOutlierDetector,
    AutoencoderTransformer,
    load,
    save,
)
from skae._choices import principal_axes
from skae._nn._contract import build_network, start_network
from skae._nn.conv import ConvolutionalAutoencoder, feature_map_sizes, output_padding

CONV = dict(hidden_layer_sizes=(4, 8), image_shape=(8, 8), random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32)


def _request(image_shape, output_activation="identity", hidden=(4, 8), k=5):
    return {
        "encoding_dim": k,
        "hidden_layer_sizes": list(hidden),
        "activation": "relu",
        "code_activation": "identity",
        "output_activation": output_activation,
        "init": "pca",
        "image_shape": image_shape,
    }


@pytest.mark.parametrize(
    "size, expected",
    [((28, 28), [(28, 28), (14, 14), (7, 7)]), ((7, 5), [(7, 5), (4, 3), (2, 2)])],
)
def test_feature_map_sizes_halve_rounding_up(size, expected):
    assert feature_map_sizes(*size, 2) == expected
    # The transposed convolution gives back each size exactly.
    for before, after in zip(expected[:-1], expected[1:], strict=True):
        padding = output_padding(before)
        assert tuple(2 * m - 1 + p for m, p in zip(after, padding, strict=True)) == before


@pytest.mark.parametrize("image_shape", [(8, 8), (1, 8, 8), (2, 4, 8), (1, 1, 64)])
@pytest.mark.parametrize("output_activation", ["identity", "clip"])
def test_start_reconstructs_as_pca(digits, image_shape, output_activation):
    X = digits[:600]
    generator = torch.Generator().manual_seed(0)
    request = _request(image_shape, output_activation)
    module = start_network(
        X, request, generator=generator, random_state=0, principal_axes=principal_axes
    )
    assert isinstance(module, ConvolutionalAutoencoder)
    pca = PCA(5, svd_solver="covariance_eigh").fit(X)
    expected = pca.inverse_transform(pca.transform(X))
    if output_activation == "clip":
        expected = np.clip(expected, 0, 1)
    with torch.no_grad():
        reconstruction = module.decode(module.encode(torch.from_numpy(X))).numpy()
    np.testing.assert_allclose(reconstruction, expected, atol=1e-5)


def test_conv_beats_pca_on_held_out_digits(digits):
    X_train, X_test = digits[:1400], digits[1400:]
    ae = AutoencoderTransformer(8, batch_size=64, max_iter=15, **CONV).fit(X_train)
    assert ae._network_spec["kind"] == "conv"
    pca = PCA(8).fit(X_train)
    pca_error = ((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2).sum(1).mean()
    error = ((ae.inverse_transform(ae.transform(X_test)) - X_test) ** 2).sum(1).mean()
    assert error < 0.9 * pca_error


def test_image_shape_picks_the_kind(digits):
    X = digits[:200]
    fit = dict(encoding_dim=4, max_iter=2, random_state=0)
    conv = AutoencoderTransformer(hidden_layer_sizes=(3,), image_shape=(8, 8), **fit).fit(X)
    assert conv._network_spec["image_shape"] == [1, 8, 8]
    assert [c.shape for c in conv.coefs_] == [
        (64, 4),
        (3, 1, 3, 3),
        (3,),
        (48, 4),
        (4, 64),
        (4, 48),
        (3, 1, 3, 3),
    ]
    # Without hidden layers, or started at random, rows stay rows.
    linear = AutoencoderTransformer(image_shape=(8, 8), **fit).fit(X)
    assert linear._network_spec["kind"] == "dense"
    stacked = AutoencoderTransformer(
        hidden_layer_sizes=(3,), image_shape=(8, 8), init="random", **fit
    ).fit(X)
    assert stacked._network_spec["kind"] == "dense"


@pytest.mark.parametrize(
    "image_shape, message",
    [
        ((8, 7), "describes images of 56 values, but X has 64 features"),
        ((2, 8, 8), "describes images of 128 values, but X has 64 features"),
        ((64,), r"must be \(height, width\) or \(channels, height, width\)"),
        ((1, 1, 8, 8), r"must be \(height, width\) or \(channels, height, width\)"),
        ((0, 8), "positive integers"),
        ((8.0, 8), "positive integers"),
    ],
)
def test_bad_image_shape_is_named(digits, image_shape, message):
    ae = AutoencoderTransformer(4, hidden_layer_sizes=(3,), image_shape=image_shape)
    with pytest.raises(ValueError, match=r"image_shape.*" + message):
        ae.fit(digits[:100])
    assert not hasattr(ae, "coefs_")


def test_image_shape_that_is_no_sequence_is_rejected(digits):
    with pytest.raises(InvalidParameterError, match="image_shape"):
        AutoencoderTransformer(image_shape=64).fit(digits[:50])


def test_resumed_fit_checks_image_shape(digits):
    X = digits[:200]
    ae = AutoencoderTransformer(4, max_iter=2, warm_start=True, **CONV).fit(X)
    ae.set_params(image_shape=(4, 16))
    with pytest.raises(ValueError, match="image_shape"):
        ae.fit(X)


@pytest.mark.parametrize("image_shape", [(5, 9), (3, 3, 5)])
def test_odd_sizes_and_channels(image_shape):
    rng = np.random.RandomState(0)
    X = rng.rand(120, int(np.prod(image_shape))).astype(np.float32)
    ae = AutoencoderTransformer(
        3, hidden_layer_sizes=(4, 4), image_shape=image_shape, max_iter=2, random_state=0
    ).fit(X)
    assert ae.transform(X).shape == (120, 3)
    assert ae.inverse_transform(ae.transform(X)).shape == X.shape


def test_fit_is_deterministic_and_leaves_the_global_generator(digits):
    X = digits[:200]
    state = torch.get_rng_state()
    first = AutoencoderTransformer(4, max_iter=2, **CONV).fit(X).transform(X)
    assert torch.equal(torch.get_rng_state(), state)
    second = AutoencoderTransformer(4, max_iter=2, **CONV).fit(X).transform(X)
    np.testing.assert_array_equal(first, second)


def test_save_load_and_pickle_are_exact(digits):
    X = digits[:200]
    ae = AutoencoderTransformer(4, max_iter=2, output_activation="identity", **CONV).fit(X)
    buffer = io.BytesIO()
    save(ae, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(load(buffer).transform(X), ae.transform(X))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ae)).transform(X), ae.transform(X))
    # A description whose image does not fit its width is refused.
    spec = {**ae._network_spec, "image_shape": [1, 4, 8]}
    with pytest.raises(ValueError, match="image_shape"):
        build_network(spec)


def test_skops_round_trip(digits):
    skops_io = pytest.importorskip("skops.io")
    X = digits[:200]
    ae = AutoencoderTransformer(4, max_iter=2, **CONV).fit(X)
    loaded = skops_io.loads(
        skops_io.dumps(ae), trusted=skops_io.get_untrusted_types(data=skops_io.dumps(ae))
    )
    np.testing.assert_array_equal(loaded.transform(X), ae.transform(X))


def test_cost_per_row_counts_the_convolutions():
    request = _request([1, 8, 8], hidden=(4,), k=5)
    del request["init"]
    spec = {**request, "kind": "conv", "n_features": 64, "dtype": "float32"}
    module = build_network({**spec, "code_scale": [1.0] * 5})
    cost, widest = module.cost_per_row()
    # The linear path, one convolution and its mirror (1 -> 4 maps, 4 x 4
    # outputs, a 3 x 3 kernel), their normalisations, and the dense layers
    # between the 64 values of the last maps and the code.
    linear = 2 * (64 * 5 + 64 + 5)
    convolutions = 2 * (1 * 4 * 9 * 16 + 3 * 4 * 16)
    dense = 2 * (64 * 5 + 64 + 5)
    assert cost == linear + convolutions + dense
    assert widest == 64


def test_local_convolutions_cost_their_kernels_at_every_pixel():
    request = _request([1, 8, 8], hidden=(4,), k=5)
    del request["init"]
    module = build_network({**request, "kind": "local_conv", "n_features": 64, "dtype": "float32"})
    cost, widest = module.cost_per_row()
    # The linear path (weights and biases), then 1 -> 4 and 4 -> 1 maps of
    # 3 x 3 kernels with their biases at each of the 64 pixels.
    assert cost == 2 * 64 * 5 + 64 + 5 + 64 * ((1 * 4 * 9 + 4) + (4 * 1 * 9 + 1))
    assert widest == 4 * 64


@pytest.mark.parametrize("kind", ["conv", "local_conv"])
@pytest.mark.parametrize(
    "field, value", [("hidden_layer_sizes", [True]), ("image_shape", [1, 8, 8.0])]
)
def test_a_description_with_a_bool_or_float_size_is_refused(kind, field, value):
    request = _request([1, 8, 8], hidden=(1,), k=5)
    del request["init"]
    spec = {**request, "kind": kind, "n_features": 64, "dtype": "float32"}
    if kind == "conv":
        spec["code_scale"] = [1.0] * 5
    build_network(spec)
    with pytest.raises(ValueError, match=f"invalid {field}"):
        build_network({**spec, field: value})


def test_imputer_with_image_shape(digits):
    rng = np.random.RandomState(0)
    X = digits[:400].astype(np.float64)
    X_missing = X.copy()
    X_missing[rng.rand(*X.shape) < 0.3] = np.nan
    imputer = AutoencoderImputer(
        hidden_layer_sizes=(4, 8),
        image_shape=(8, 8),
        keep_empty_features=True,
        max_iter=3,
        random_state=0,
    ).fit(X_missing)
    assert imputer._network_spec["kind"] == "local_conv"
    filled = imputer.transform(X_missing)
    assert not np.isnan(filled).any()
    missing = np.isnan(X_missing)
    # Better than the column means on the hidden pixels.
    means = np.where(missing, np.nanmean(X_missing, axis=0), X_missing)
    assert ((filled - X)[missing] ** 2).mean() < 0.8 * ((means - X)[missing] ** 2).mean()


def test_imputer_names_a_bad_image_shape(digits):
    X = digits[:100].astype(np.float64)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="image_shape=.*but X has 64 features"):
        AutoencoderImputer(image_shape=(8, 9)).fit(X)


def test_detector_with_image_shape(digits):
    detector = AutoencoderOutlierDetector(
        hidden_layer_sizes=(4, 8), image_shape=(8, 8), max_iter=3, random_state=0
    ).fit(digits[:400])
    assert detector._network_spec["kind"] == "conv"
    noise = np.random.RandomState(0).rand(20, 64).astype(np.float32)
    assert detector.score_samples(noise).mean() < detector.score_samples(digits[400:420]).mean()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fit_matches_cpu_inference(digits):
    X = digits[:300]
    ae = AutoencoderTransformer(4, max_iter=2, device="cuda", **CONV).fit(X)
    assert ae.device_.startswith("cuda")
    with torch.no_grad():
        expected = ae.module_.encode(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(ae.transform(X), expected, atol=1e-5)


@pytest.mark.parametrize(
    "check",
    [
        check_no_attributes_set_in_init,
        check_parameters_default_constructible,
        check_get_params_invariance,
        check_set_params,
        check_estimator_repr,
        check_estimator_cloneable,
        check_do_not_raise_errors_in_init_or_set_params,
    ],
)
@pytest.mark.parametrize(
    "estimator",
    [
        AutoencoderTransformer(hidden_layer_sizes=(4,), image_shape=(2, 5)),
        AutoencoderOutlierDetector(hidden_layer_sizes=(4,), image_shape=(2, 5)),
        AutoencoderImputer(hidden_layer_sizes=(4,), image_shape=(2, 5)),
    ],
)
def test_sklearn_checks_that_do_not_fit(estimator, check):
    """The scikit-learn checks that do not fit data of their own widths.

    The others fit data of 1 to 10 features, which an image shape fixed in
    advance cannot all describe; the estimators with ``image_shape=None``
    pass them all (tests/test_common.py), and the tests above check the
    same properties on image data.
    """
    check(type(estimator).__name__, estimator)


# ONNX


class _Writer:
    """A minimal graph writer with the methods kinds use, on onnx.helper."""

    double = False

    def __init__(self):
        self.nodes, self.initializers = [], []

    def _name(self, prefix):
        return f"{prefix}{len(self.nodes) + len(self.initializers)}"

    def node(self, op_type, *inputs, **attrs):
        from onnx import helper

        output = self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attrs))
        return output

    def constant(self, value, name="c"):
        from onnx import numpy_helper

        output = self._name(name)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, np.float32), output))
        return output

    def integers(self, values, name="shape"):
        from onnx import numpy_helper

        output = self._name(name)
        self.initializers.append(numpy_helper.from_array(np.asarray(values, np.int64), output))
        return output

    def linear(self, x, coef, intercept):
        product = self.node("MatMul", x, self.constant(coef))
        return self.node("Add", product, self.constant(intercept))

    def activation(self, x, name):
        return {"relu": lambda: self.node("Relu", x), "tanh": lambda: self.node("Tanh", x)}[name]()

    def output_activation(self, x, name):
        if name == "sigmoid":
            return self.node("Sigmoid", x)
        if name == "clip":
            return self.node("Clip", x, self.constant(0.0), self.constant(1.0))
        return x

    def run(self, output, name, value):
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            self.nodes,
            "g",
            [helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, value.shape[1]])],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
            initializer=self.initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        session = onnxruntime.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        return session.run(None, {name: value})[0]


onnxruntime = pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("output_activation", ["identity", "clip", "sigmoid"])
@pytest.mark.parametrize("image_shape", [(8, 8), (4, 4, 4)])
def test_onnx_matches_onnxruntime(digits, output_activation, image_shape):
    skl2onnx = pytest.importorskip("skl2onnx")
    pytest.importorskip("skae.onnx")
    X = digits[:300]
    ae = AutoencoderTransformer(
        5,
        hidden_layer_sizes=(4, 8),
        image_shape=image_shape,
        output_activation=output_activation,
        activation="tanh",
        max_iter=3,
        early_stopping=False,
        random_state=0,
    ).fit(X)
    # Trained corrections, not the zeros they start at.
    assert ae.n_iter_ == 3 and np.abs(ae.coefs_[-1]).max() > 0
    session = onnxruntime.InferenceSession(
        skl2onnx.to_onnx(ae, X[:1]).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    np.testing.assert_allclose(session.run(None, {"X": X})[0], ae.transform(X), atol=1e-5)
    # The decoder's graph, with its transposed convolutions.
    codes = ae.transform(X)
    writer = _Writer()
    arrays = {name: getattr(ae, name) for name in ("coefs_", "intercepts_", "shift_", "scale_")}
    output = ConvolutionalAutoencoder.onnx_decode(writer, arrays, ae._network_spec, "codes")
    decoded = writer.run(output, "codes", codes)
    np.testing.assert_allclose(decoded, ae.inverse_transform(codes), atol=1e-5)


def test_onnx_float64_graph_is_refused(digits):
    skl2onnx = pytest.importorskip("skl2onnx")
    pytest.importorskip("skae.onnx")
    ae = AutoencoderTransformer(4, max_iter=2, **CONV).fit(digits[:200])
    with pytest.raises(NotImplementedError, match="float32 graph only"):
        skl2onnx.to_onnx(ae, digits[:1].astype(np.float64))


@pytest.mark.parametrize("image_shape", [(8, 8), (4, 4, 4)])
def test_imputer_with_image_shape_exports_and_saves(digits, image_shape, tmp_path):
    """The convolutions of the image run in the ONNX graph and survive a save."""
    skl2onnx = pytest.importorskip("skl2onnx")
    pytest.importorskip("skae.onnx")
    X = digits[:200].copy()
    X[np.random.RandomState(0).rand(*X.shape) < 0.3] = np.nan
    imputer = AutoencoderImputer(
        hidden_layer_sizes=(4,),
        image_shape=image_shape,
        activation="tanh",
        max_iter=2,
        early_stopping=False,
        random_state=0,
    ).fit(X)
    assert imputer._network_spec["kind"] == "local_conv" and np.abs(imputer.coefs_[-1]).max() > 0
    expected = imputer.transform(X)
    session = onnxruntime.InferenceSession(
        skl2onnx.to_onnx(imputer, X[:1]).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    np.testing.assert_allclose(session.run(None, {"X": X})[0], expected, atol=1e-5)
    with pytest.raises(NotImplementedError, match="'local_conv' to a float32 graph only"):
        skl2onnx.to_onnx(imputer, X[:1].astype(np.float64))
    save(imputer, tmp_path / "imputer.skae")
    np.testing.assert_array_equal(load(tmp_path / "imputer.skae").transform(X), expected)


def test_reconstruction_display_draws_the_estimators_images(digits):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from skae import ReconstructionDisplay

    X = digits[:200]
    ae = AutoencoderTransformer(4, max_iter=2, **CONV).fit(X)
    display = ReconstructionDisplay.from_estimator(ae, X, n_images=3)
    assert display.image_.get_array().shape == (2 * 9 - 1, 3 * 9 - 1)
    # Colour images: three channels, raveled as (channels, height, width).
    rng = np.random.RandomState(0)
    X_colour = rng.rand(100, 3 * 4 * 5).astype(np.float32)
    colour = AutoencoderTransformer(
        3, hidden_layer_sizes=(4,), image_shape=(3, 4, 5), max_iter=2, random_state=0
    ).fit(X_colour)
    display = ReconstructionDisplay.from_estimator(colour, X_colour, n_images=2)
    mosaic = display.image_.get_array()
    assert mosaic.shape == (2 * 5 - 1, 2 * 6 - 1, 3)
    # On the common scale of the images drawn.
    low, high = X_colour[:2].min(), X_colour[:2].max()
    expected = (X_colour[0].reshape(3, 4, 5).transpose(1, 2, 0) - low) / (high - low)
    np.testing.assert_allclose(mosaic[:4, :5], expected, rtol=1e-5)
