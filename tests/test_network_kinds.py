"""A network kind plugs in through the contract alone.

The kind below, a linear autoencoder whose decoder is its encoder's
transpose, is defined and registered in this module only; the estimators
fit it, persistence saves and loads it and the ONNX export converts it
with no edit anywhere else.
"""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

import skae
from skae import AutoencoderTransformer
from skae._nn import _contract
from skae._nn._contract import COMMON_FIELDS, DTYPES, Network, check_fields, dense_shapes
from skae._nn.linear import dense_layer


class TiedAutoencoder(Network):
    """``z = W.T (x - b)``, ``r = W z + b``: one weight matrix shared both ways."""

    kind = "tied"

    def __init__(self, n_features, encoding_dim, output_activation, dtype):
        super().__init__(n_features, output_activation, dtype)
        self.decoder = dense_layer(encoding_dim, n_features, dtype=dtype)

    @classmethod
    def accepts(cls, request):
        return not request["hidden_layer_sizes"] and request["init"] == "pca"

    @classmethod
    def from_spec(cls, spec):
        return cls(
            spec["n_features"],
            spec["encoding_dim"],
            spec["output_activation"],
            DTYPES[spec["dtype"]],
        )

    @classmethod
    def check_spec(cls, spec):
        check_fields(spec, {"kind": lambda v: v == cls.kind, **COMMON_FIELDS})

    @property
    def spec(self):
        return {
            "kind": self.kind,
            "n_features": self.n_features,
            "encoding_dim": self.encoding_dim,
            "hidden_layer_sizes": [],
            "activation": "identity",
            "code_activation": "identity",
            "output_activation": self.output_activation,
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    @classmethod
    def array_shapes(cls, spec):
        return dense_shapes([(spec["encoding_dim"], spec["n_features"])])

    @property
    def encoding_dim(self):
        return self.decoder.in_features

    @property
    def wants_sample(self):
        return False

    @property
    def linear_path(self):
        return None

    def _encode_normalized(self, x):
        return (x - self.decoder.bias) @ self.decoder.weight

    def forward(self, x, generator=None):
        return self.decoder(self._encode_normalized(x))

    def encode(self, x):
        return self._encode_normalized(self.normalize(x))

    def decode(self, codes):
        return self.unnormalize(self.activate(self.decoder(codes)))

    def init_random(self, generator):
        with torch.no_grad():
            self.decoder.weight.normal_(0.0, 0.1, generator=generator)
            self.decoder.bias.zero_()

    def start_at(self, components, mean, generator, sample=None, encoder_components=None):
        self.init_random(generator)
        with torch.no_grad():
            self.decoder.weight[:, : len(components)] = components.T
            self.decoder.bias.copy_(mean)

    @classmethod
    def onnx_encode(cls, graph, arrays, spec, x):
        # coefs_[0] is W.T, of shape (encoding_dim, n_features); the codes are
        # ((x - shift) / scale - b) @ W = x @ (W / scale) - (shift + b scale) @ (W / scale).
        (coef,), (bias,) = arrays["coefs_"], arrays["intercepts_"]
        weight = np.asarray(coef, dtype=np.float64).T / arrays["scale_"]
        intercept = -(arrays["shift_"] + bias * arrays["scale_"]) @ weight
        return graph.linear(x, weight, intercept)

    @classmethod
    def onnx_decode(cls, graph, arrays, spec, codes):
        raise NotImplementedError


@pytest.fixture
def tied_kind(monkeypatch):
    """Register the tied kind ahead of the others for one test."""
    monkeypatch.setitem(_contract.KINDS, TiedAutoencoder.kind, TiedAutoencoder)
    return TiedAutoencoder


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    basis = rng.normal(size=(3, 12))
    X = rng.normal(size=(300, 3)) @ basis + 0.05 * rng.normal(size=(300, 12)) + 4.0
    return X[:200], X[200:]


def test_registered_kind_is_fitted_through_the_estimator(tied_kind, data):
    X_train, X_test = data
    start = AutoencoderTransformer(3, max_iter=1, learning_rate_init=1e-9, random_state=0)
    start.fit(X_train)
    assert start._network_spec["kind"] == "tied"
    assert isinstance(start.module_, TiedAutoencoder)
    # Started at PCA's solution, which a tied autoencoder holds exactly.
    pca = PCA(3).fit(X_train)
    expected = pca.inverse_transform(pca.transform(X_test))
    np.testing.assert_allclose(
        start.inverse_transform(start.transform(X_test)), expected, atol=1e-6
    )
    trained = AutoencoderTransformer(3, max_iter=20, random_state=0).fit(X_train)
    assert trained.n_iter_ >= 1 and trained.coefs_[0].shape == (3, 12)
    assert -trained.score(X_test) <= 1.05 * np.mean((expected - X_test) ** 2)


def test_registered_kind_is_saved_and_loaded(tied_kind, data, tmp_path):
    X_train, X_test = data
    ae = AutoencoderTransformer(3, max_iter=5, random_state=0).fit(X_train)
    skae.save(ae, tmp_path / "tied.skae")
    restored = skae.load(tmp_path / "tied.skae")
    assert isinstance(restored.module_, TiedAutoencoder)
    np.testing.assert_array_equal(restored.transform(X_test), ae.transform(X_test))


def test_registered_kind_is_exported_to_onnx(tied_kind, data):
    skl2onnx = pytest.importorskip("skl2onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("skae.onnx")
    from skl2onnx.common.data_types import FloatTensorType

    X_train, X_test = (X.astype(np.float32) for X in data)
    ae = AutoencoderTransformer(3, max_iter=5, random_state=0).fit(X_train)
    onx = skl2onnx.to_onnx(ae, initial_types=[("X", FloatTensorType([None, 12]))])
    session = onnxruntime.InferenceSession(
        onx.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (codes,) = session.run(None, {"X": X_test})
    np.testing.assert_allclose(codes, ae.transform(X_test), rtol=1e-5, atol=1e-5)


def test_kind_of_a_saved_model_must_be_registered(data, tmp_path, monkeypatch):
    X_train, _ = data
    monkeypatch.setitem(_contract.KINDS, TiedAutoencoder.kind, TiedAutoencoder)
    ae = AutoencoderTransformer(3, max_iter=2, random_state=0).fit(X_train)
    skae.save(ae, tmp_path / "tied.skae")
    monkeypatch.delitem(_contract.KINDS, TiedAutoencoder.kind)
    with pytest.raises(ValueError, match="invalid kind: 'tied'"):
        skae.load(tmp_path / "tied.skae")
