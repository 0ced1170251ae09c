"""Ordered codes, encoding_dim as a share of the variance, explained_variance_ratio_."""

import io

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler

from skae import AutoencoderOutlierDetector, AutoencoderTransformer, load, save
from skae._choices import components_for_fraction
from skae._nn import _accept
from skae._nn.conv import ConvolutionalAutoencoder
from skae._nn.linear import Autoencoder
from skae._nn.residual import ResidualAutoencoder


def _pca_errors(X_train, X_test, dims):
    errors = []
    for n in dims:
        pca = PCA(n).fit(X_train)
        errors.append(np.mean((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2))
    return np.array(errors)


@pytest.fixture(scope="module")
def low_rank():
    """Rows near a 4-dimensional subspace of 15 features, at variances 8, 4, 2, 1."""
    rng = np.random.RandomState(0)
    basis = np.linalg.qr(rng.standard_normal((15, 4)))[0].T
    X = (rng.standard_normal((600, 4)) * np.sqrt([8.0, 4.0, 2.0, 1.0])) @ basis
    return X + 0.05 * rng.standard_normal(X.shape)


@pytest.mark.parametrize("encoding_dim", [1.0, 0.0, -0.5, float("nan"), "0.5", 1.5])
def test_bad_encoding_dim_is_refused(low_rank, encoding_dim):
    with pytest.raises(ValueError, match="encoding_dim"):
        AutoencoderTransformer(encoding_dim).fit(low_rank)


def test_bad_ordered_codes_is_refused(low_rank):
    with pytest.raises(ValueError, match="ordered_codes"):
        AutoencoderTransformer(2, ordered_codes="yes").fit(low_rank)


@pytest.mark.parametrize("fraction", [0.5, 0.75, 0.9, 0.99])
def test_fraction_chooses_pcas_number_of_components_on_linear_data(low_rank, fraction):
    ae = AutoencoderTransformer(fraction, random_state=0).fit(low_rank)
    assert ae.n_components_ == PCA(fraction).fit(low_rank).n_components_
    assert ae.transform(low_rank).shape == (600, ae.n_components_)
    assert ae.explained_variance_ratio_.shape == (ae.n_components_,)
    assert ae.explained_variance_ratio_.sum() >= fraction


def _tables():
    """Dense and sparse, tall and wide tables, the widest past 4000 features.

    The wide ones have values outside [0, 1], where the output is linear and
    a network at PCA's solution explains PCA's share of the variance.
    """
    rng = np.random.RandomState(0)
    wide = rng.standard_normal((40, 8)) @ rng.standard_normal((8, 4500))
    return {
        "tall": rng.standard_normal((300, 20)) * np.linspace(3, 0.1, 20) + 5,
        "wide": rng.standard_normal((50, 300)) * np.linspace(3, 0.1, 300),
        "very wide": (wide + 0.3 * rng.standard_normal(wide.shape)).astype(np.float32),
        "sparse tall": sp.random(300, 80, density=0.1, random_state=0, format="csr"),
        "sparse wide": sp.random(
            60, 4500, density=0.05, random_state=1, format="csc", data_rvs=rng.standard_normal
        ),
    }


@pytest.mark.parametrize("name", ["tall", "wide", "very wide", "sparse tall", "sparse wide"])
def test_fraction_counts_pcas_components_without_densifying(name):
    X = _tables()[name]
    dense = X.toarray() if sp.issparse(X) else X
    for fraction in [0.1, 0.5, 0.8, 0.95, 0.99]:
        expected = PCA(fraction, svd_solver="full").fit(dense).n_components_
        assert components_for_fraction(X, fraction) == (expected, False)


@pytest.mark.parametrize("name", ["very wide", "sparse wide"])
def test_fraction_on_wide_and_sparse_data_fits_pcas_width(name):
    X = _tables()[name]
    dense = X.toarray() if sp.issparse(X) else X
    # A learning rate this small leaves the network at PCA's solution.
    ae = AutoencoderTransformer(0.8, learning_rate_init=1e-12, max_iter=1, random_state=0)
    ae.fit(X)
    assert ae.n_components_ == PCA(0.8, svd_solver="full").fit(dense).n_components_
    assert ae.transform(X).shape == (X.shape[0], ae.n_components_)


def test_fraction_works_in_clone_and_grid_search(low_rank):
    ae = clone(AutoencoderTransformer(0.9, max_iter=3, random_state=0))
    assert ae.encoding_dim == 0.9
    search = GridSearchCV(ae, {"encoding_dim": [0.5, 0.95]}, cv=2).fit(low_rank)
    assert search.best_params_ == {"encoding_dim": 0.95}


def test_explained_variance_ratio_is_pcas_at_pcas_solution(digits):
    X = StandardScaler().fit_transform(digits[0].astype(np.float64))
    # A learning rate this small leaves the network at PCA's solution.
    ae = AutoencoderTransformer(10, learning_rate_init=1e-12, max_iter=1, random_state=0).fit(X)
    assert ae.output_activation_ == "identity"
    pca = PCA(10).fit(X)
    np.testing.assert_allclose(
        ae.explained_variance_ratio_, pca.explained_variance_ratio_, atol=1e-6
    )


# scikit-learn's check for infinities sums X in float32 and warns that the sum
# overflowed.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_explained_variance_ratio_of_float32_data_near_its_largest_values(low_rank):
    # The training mean, summed in float32, overflowed to infinity.
    X = (low_rank * 1e37).astype(np.float32)
    ae = AutoencoderTransformer(4, random_state=0).fit(X)
    pca = PCA(4).fit(low_rank)
    np.testing.assert_allclose(
        ae.explained_variance_ratio_, pca.explained_variance_ratio_, atol=1e-3
    )


def test_clipped_output_explains_at_least_pcas_share(digits):
    X = digits[0].astype(np.float64)
    ae = AutoencoderTransformer(10, learning_rate_init=1e-12, max_iter=1, random_state=0).fit(X)
    assert ae.output_activation_ == "clip"
    pca = PCA(10).fit(X)
    gain = np.cumsum(ae.explained_variance_ratio_) - np.cumsum(pca.explained_variance_ratio_)
    assert gain.min() >= -1e-9 and gain.max() > 1e-4


def test_prefixes_of_one_fit_match_separate_fits_on_linear_data(low_rank):
    X_train, X_test = low_rank[:450], low_rank[450:]
    ae = AutoencoderTransformer(6, random_state=0).fit(X_train)
    dims = [1, 2, 3, 4, 5, 6]
    prefixes = ae._prefix_errors(X_test, dims).mean(axis=1)
    separate = [
        -AutoencoderTransformer(n, random_state=0).fit(X_train).score(X_test) for n in dims
    ]
    np.testing.assert_allclose(prefixes, separate, rtol=0.02)
    np.testing.assert_allclose(prefixes, _pca_errors(X_train, X_test, dims), rtol=0.02)
    # Unordered, from a random start, the first unit alone reconstructs far
    # worse than PCA's.
    unordered = AutoencoderTransformer(6, init="random", ordered_codes=False, random_state=0)
    first = unordered.fit(X_train)._prefix_errors(X_test, [1]).mean()
    assert first > 1.2 * _pca_errors(X_train, X_test, [1])[0]


def test_ordered_residual_prefixes_are_no_worse_than_pca(digits):
    X = digits[0].astype(np.float64)
    X_train, X_test = X[:1400], X[1400:]
    dims = [1, 2, 4, 8]
    ae = AutoencoderTransformer(
        8, hidden_layer_sizes=(32,), ordered_codes=True, random_state=0
    ).fit(X_train)
    ratios = ae._prefix_errors(X_test, dims).mean(axis=1) / _pca_errors(X_train, X_test, dims)
    assert ratios.max() < 1.02 and ratios.mean() < 0.97


@pytest.mark.parametrize("stacked_bytes", [0, 2**24])
@pytest.mark.parametrize("pass_rows", [None, 64])
def test_prefix_errors_decode_each_prefix_as_a_network_cut_there(
    digits, monkeypatch, pass_rows, stacked_bytes
):
    X = digits[0][:300].astype(np.float64)
    ae = AutoencoderTransformer(
        8, hidden_layer_sizes=(16,), ordered_codes=True, max_iter=2, random_state=0
    ).fit(X)
    module, dims = ae.module_, [1, 2, 4, 8]
    # Each prefix decoded by itself, or all of them in one call.
    monkeypatch.setattr(_accept, "STACKED_BYTES", stacked_bytes)
    if pass_rows is not None:
        # Passes of 32 rows.
        monkeypatch.setattr(_accept, "inference_rows", lambda width, dtype: pass_rows)
    errors = _accept.prefix_errors(module, X, dims, fill=ae._code_fill)
    for row, n_kept in zip(errors, dims, strict=True):
        cut = module.truncate(n_kept, ae._code_fill)
        with torch.no_grad():
            reconstruction = cut.decode(cut.encode(torch.from_numpy(X))).numpy()
        expected = ((reconstruction - X) ** 2).mean(axis=1)
        np.testing.assert_allclose(row, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("stacked_bytes", [0, 2**24])
@pytest.mark.parametrize("held_bytes", [0, 2**24])
def test_prefix_errors_held_between_calls_are_those_of_a_fresh_pass(
    digits, monkeypatch, held_bytes, stacked_bytes
):
    X = digits[0][:300].astype(np.float32)
    ae = AutoencoderTransformer(8, max_iter=2, random_state=0).fit(X)
    monkeypatch.setattr(_accept, "HELD_BYTES", held_bytes)
    monkeypatch.setattr(_accept, "STACKED_BYTES", stacked_bytes)
    score = _accept.PrefixErrors(ae.module_, X, [1, 2, 4, 8], device="cpu")
    assert (score.held is not None) is (held_bytes > 0)
    expected = _accept.prefix_errors(ae.module_, X, [1, 2, 4, 8])
    np.testing.assert_array_equal(score(), expected)
    np.testing.assert_array_equal(score(), expected)


def test_ordering_is_off_by_default_with_hidden_layers(digits):
    X = digits[0][:400]
    params = dict(hidden_layer_sizes=(16,), max_iter=3, random_state=0)
    default = AutoencoderTransformer(4, **params).fit(X)
    unordered = AutoencoderTransformer(4, ordered_codes=False, **params).fit(X)
    np.testing.assert_array_equal(default.transform(X), unordered.transform(X))


@pytest.mark.parametrize("kind", ["dense", "stacked", "residual", "conv"])
def test_truncation_folds_the_units_dropped_into_the_biases(kind):
    generator = torch.Generator().manual_seed(0)
    if kind == "conv":
        module = ConvolutionalAutoencoder(64, 5, (4,), "relu", "clip", torch.float64, (8, 8))
    elif kind == "residual":
        module = ResidualAutoencoder(64, 5, (8,), "relu", "identity", "clip", torch.float64)
    else:
        hidden, code = ((8,), "tanh") if kind == "stacked" else ((), "identity")
        module = Autoencoder(64, 5, hidden, "relu", code, "clip", torch.float64)
    module.init_random(generator)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
        if kind in ("residual", "conv"):
            module.code_scale.copy_(torch.rand(5, generator=generator, dtype=torch.float64) + 0.5)
    x = torch.rand(7, 64, generator=generator, dtype=torch.float64)
    fill = torch.randn(5, generator=generator, dtype=torch.float64)
    codes = module.codes(x)
    # The units from the third on held at the fill.
    expected = module.decode_logits(torch.cat([codes[:, :2], fill[2:].expand(7, 3)], dim=1))
    truncated = module.truncate(2, fill.numpy())
    assert truncated.encoding_dim == 2
    torch.testing.assert_close(truncated.codes(x), codes[:, :2])
    torch.testing.assert_close(truncated.decode_logits(codes[:, :2]), expected)
    # The network cut from is left whole, and can be cut again.
    assert module.encoding_dim == 5
    torch.testing.assert_close(module.codes(x), codes)
    torch.testing.assert_close(module.truncate(3, fill.numpy()).codes(x), codes[:, :3])


def test_fitted_state_round_trips(digits, tmp_path):
    X = digits[0]
    ae = AutoencoderTransformer(0.7, max_iter=3, random_state=0).fit(X)
    buffer = io.BytesIO()
    save(ae, buffer)
    restored = load(io.BytesIO(buffer.getvalue()))
    np.testing.assert_array_equal(restored.explained_variance_ratio_, ae.explained_variance_ratio_)
    np.testing.assert_array_equal(restored._code_fill, ae._code_fill)
    np.testing.assert_array_equal(restored.transform(X), ae.transform(X))
    np.testing.assert_array_equal(restored._prefix_errors(X, [1, 3]), ae._prefix_errors(X, [1, 3]))
    skops_io = pytest.importorskip("skops.io")
    path = tmp_path / "model.skops"
    skops_io.dump(ae, path)
    restored = skops_io.load(path, trusted=skops_io.get_untrusted_types(file=path))
    np.testing.assert_array_equal(restored.explained_variance_ratio_, ae.explained_variance_ratio_)


def test_a_forged_explained_variance_ratio_is_refused(digits):
    ae = AutoencoderTransformer(4, max_iter=2, random_state=0).fit(digits[0])
    attributes = {name: getattr(ae, name) for name in ae._state_names if hasattr(ae, name)}
    attributes["explained_variance_ratio_"] = np.ones(5)
    with pytest.raises(ValueError, match="explained_variance_ratio_"):
        AutoencoderTransformer._check_fitted_state(attributes)


def test_truncated_network_exports_to_onnx(digits):
    skl2onnx = pytest.importorskip("skl2onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("skae.onnx")
    X = digits[0]
    ae = AutoencoderTransformer(0.6, hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X)
    assert ae.n_components_ < ae._encoding_dim(X)
    session = onnxruntime.InferenceSession(
        skl2onnx.to_onnx(ae, X[:1]).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    codes = session.run(None, {session.get_inputs()[0].name: X})[0]
    np.testing.assert_allclose(codes, ae.transform(X), atol=1e-5)


def test_detector_explains_its_variance(digits):
    X = digits[0][:300]
    detector = AutoencoderOutlierDetector(encoding_dim=6, max_iter=2, random_state=0).fit(X)
    assert detector.explained_variance_ratio_.shape == (6,)
    assert 0 < detector.explained_variance_ratio_.sum() < 1


@pytest.mark.parametrize("ordered", ["auto", True, False])
def test_detector_takes_ordered_codes(digits, ordered):
    X = digits[0][:300]
    detector = AutoencoderOutlierDetector(
        encoding_dim=6, ordered_codes=ordered, max_iter=2, random_state=0
    ).fit(X)
    # On data in [0, 1] the output is clipped, where "auto" does not order.
    assert detector.ordered_codes_ is (ordered is True)
    assert detector.get_params()["ordered_codes"] == ordered
