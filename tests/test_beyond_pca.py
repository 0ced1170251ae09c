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
