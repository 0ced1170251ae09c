"""Starting at PCA and never ending worse: exact solutions kept, curves learnt."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, make_s_curve
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

from skae import AutoencoderTransformer


def _mse(model, X):
    return float(np.mean((model.inverse_transform(model.transform(X)) - X) ** 2))


@pytest.mark.parametrize("hidden", [(), (16,)])
def test_a_fit_started_at_an_exact_solution_stays_there(hidden):
    # Raw breast cancer features, columns from 1e-3 to 1e3, all 30 kept: PCA
    # reconstructs them to rounding error; Adam's sign-like steps used to
    # walk away from it, to 1e-5 times the variance.
    X = load_breast_cancer().data
    ae = AutoencoderTransformer(30, hidden_layer_sizes=hidden, random_state=0).fit(X)
    assert _mse(ae, X) < 1e-10 * X.var()


def test_a_start_at_the_objective_s_optimum_trains_one_epoch():
    # The linear autoencoder with a linear output starts at PCA's solution,
    # the minimum of its squared error: "auto" plans one epoch, not the
    # twenty a stall took, and returns PCA's reconstruction.
    X = load_breast_cancer().data
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    pca = PCA(4).fit(X)
    for params in ({}, {"learning_rate": "constant"}):
        # A constant rate ending at max_iter would warn; warnings are errors here.
        ae = AutoencoderTransformer(4, random_state=0, **params).fit(X)
        assert ae.n_iter_ == len(ae.loss_curve_) == 1
        np.testing.assert_allclose(
            ae.inverse_transform(ae.transform(X)),
            pca.inverse_transform(pca.transform(X)),
            atol=1e-10,
        )
    # The epoch takes no step: its loss is that of the weights kept, in
    # the network's units (the data's mean variance).
    ae = AutoencoderTransformer(4, ordered_codes=False, random_state=0).fit(X)
    assert ae.loss_curve_[0] == pytest.approx(_mse(ae, X) / X.var(axis=0).mean(), rel=1e-9)
    # Elsewhere the start is not the optimum, or the epochs were asked for.
    for params in (
        {"alpha": 1e-3},
        {"noise": "gaussian", "noise_level": 0.1},
        {"hidden_layer_sizes": (8,)},
        {"max_iter": 5},
    ):
        ae = AutoencoderTransformer(4, random_state=0, **params).fit(X)
        assert ae.n_iter_ > 1, params


@pytest.mark.parametrize("offset", [1e8, 1e12])
def test_a_column_with_a_large_offset_keeps_pca_s_error(offset):
    # A raw column far from zero (ids, timestamps, prices in cents): the
    # covariance and the scale, worked out as mean squares less squared
    # means, cancelled to nothing, so that the start was not PCA's solution.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(1500, 3)) @ rng.normal(size=(3, 6))
    X += 0.2 * rng.normal(size=X.shape)
    X[:, 0] += offset
    X_train, X_test = X[:1000], X[1000:]
    pca = PCA(3, svd_solver="full").fit(X_train)
    ae = AutoencoderTransformer(3, random_state=0).fit(X_train)
    pca_error = np.mean((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2)
    assert _mse(ae, X_test) < 1.01 * pca_error
    np.testing.assert_allclose(ae.scale_, np.sqrt(X_train.var(axis=0).mean()), rtol=1e-6)


def test_hidden_layers_beat_pca_on_a_curved_surface():
    points, _ = make_s_curve(1500, noise=0.02, random_state=0)
    rotation = np.linalg.qr(np.random.RandomState(0).normal(size=(12, 3)))[0]
    X = points @ rotation.T
    X_train, X_test = train_test_split(X, random_state=0)
    pca = PCA(2).fit(X_train)
    pca_mse = float(np.mean((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2))
    linear = AutoencoderTransformer(2, random_state=0).fit(X_train)
    deep = AutoencoderTransformer(2, hidden_layer_sizes=(64,), random_state=0).fit(X_train)
    # The linear autoencoder can only tie PCA on such data; the perceptrons
    # beside its linear path follow the curve.
    assert _mse(linear, X_test) == pytest.approx(pca_mse, rel=5e-3)
    assert _mse(deep, X_test) < 0.7 * pca_mse
