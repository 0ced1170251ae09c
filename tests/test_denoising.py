"""A denoising autoencoder must denoise: closer to the clean images than PCA."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

from skae import AutoencoderTransformer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Inputs with Gaussian noise leave [0, 1], which a model fitted on digits
# warns of; denoising such inputs is what these models were trained for.
noisy_inputs = pytest.mark.filterwarnings(r"ignore:X has values outside \[0, 1\]:UserWarning")

ENCODING_DIM = 16
MAX_ITER = 10


@pytest.fixture(scope="module")
def split(digits):
    X, _ = digits
    return train_test_split(X, test_size=0.25, random_state=0)


@pytest.fixture(scope="module")
def plain(split):
    X_train, _ = split
    return AutoencoderTransformer(ENCODING_DIM, max_iter=MAX_ITER, random_state=0).fit(X_train)


@pytest.fixture(scope="module")
def denoising(split):
    """Denoising autoencoders trained with either kind of corruption at rate 0.5."""
    X_train, _ = split
    return {
        noise: AutoencoderTransformer(
            ENCODING_DIM, max_iter=MAX_ITER, noise=noise, noise_level=0.5, random_state=0
        ).fit(X_train)
        for noise in ("gaussian", "masking")
    }


def _error_to_clean(estimator, X_noisy, X_clean):
    reconstruction = estimator.inverse_transform(estimator.transform(X_noisy))
    return float(np.mean((reconstruction.astype(np.float64) - X_clean) ** 2))


@noisy_inputs
@pytest.mark.parametrize("noise", ["gaussian", "masking"])
def test_denoising_beats_pca_and_plain_autoencoder(split, plain, denoising, noise):
    X_train, X_test = split
    rng = np.random.RandomState(0)
    if noise == "gaussian":
        X_noisy = X_test + 0.5 * rng.normal(size=X_test.shape).astype(np.float32)
    else:
        X_noisy = X_test * (rng.uniform(size=X_test.shape) >= 0.5).astype(np.float32)

    dae = _error_to_clean(denoising[noise], X_noisy, X_test)
    ae = _error_to_clean(plain, X_noisy, X_test)
    pca = _error_to_clean(PCA(ENCODING_DIM).fit(X_train), X_noisy, X_test)
    untouched = float(np.mean((X_noisy - X_test) ** 2))
    assert dae < 0.9 * pca
    assert dae < 0.9 * ae
    assert dae < 0.5 * untouched


@noisy_inputs
def test_gaussian_denoising_beats_pca_at_any_width(split, denoising):
    X_train, X_test = split
    X_noisy = X_test + 0.5 * np.random.RandomState(1).normal(size=X_test.shape)
    X_noisy = X_noisy.astype(np.float32)
    dae = _error_to_clean(denoising["gaussian"], X_noisy, X_test)
    best_pca = min(
        _error_to_clean(PCA(n).fit(X_train), X_noisy, X_test) for n in (2, 4, 8, 16, 32)
    )
    assert dae < best_pca


def _linear_network_outputs(estimator, X):
    """Codes and per-sample scores of a one-layer network, from its arrays alone."""
    X = X.astype(np.float64)
    (encoder, decoder), (encoder_bias, decoder_bias) = estimator.coefs_, estimator.intercepts_
    normalized = (X - estimator.shift_) / estimator.scale_
    codes = normalized @ encoder + encoder_bias
    reconstruction = np.clip(codes @ decoder + decoder_bias, 0, 1)
    scores = -np.mean((reconstruction - normalized) ** 2, axis=1) * estimator.scale_**2
    return codes, scores


def test_corruption_only_during_training(split):
    X_train, X_test = split
    ae = AutoencoderTransformer(
        4, max_iter=2, noise="gaussian", noise_level=1.0, random_state=0
    ).fit(X_train)
    assert ae.output_activation_ == "clip" and len(ae.coefs_) == 2
    np.testing.assert_array_equal(ae.transform(X_test), ae.transform(X_test))
    np.testing.assert_array_equal(ae.score_samples(X_test), ae.score_samples(X_test))
    # Uncorrupted inputs through the fitted weights: corruption at rate 1.0
    # would move the codes and scores by far more than rounding.
    codes, scores = _linear_network_outputs(ae, X_test)
    np.testing.assert_allclose(ae.transform(X_test), codes, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ae.score_samples(X_test), scores, rtol=1e-4, atol=1e-7)


def test_noise_is_off_by_default(digits):
    assert AutoencoderTransformer().get_params()["noise"] is None
    # Without corruption, the training loss of an epoch that barely moves the
    # weights is the reconstruction error of the clean data; corrupted inputs
    # (noise_level=0.1 by default) would raise it by several percent.
    X, _ = digits
    # Unordered: ordered codes are trained on truncated codes.
    ae = AutoencoderTransformer(
        8, ordered_codes=False, learning_rate_init=1e-12, max_iter=1, random_state=0
    )
    ae.fit(X)
    assert ae.n_iter_ == 1
    assert ae.loss_curve_[0] == pytest.approx(-ae.score(X), rel=1e-4)
