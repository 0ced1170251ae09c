import numpy as np
import pytest
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits scaled to [0, 1], as float32."""
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


@pytest.fixture(scope="session")
def low_rank():
    """Data of rank 3 in 20 dimensions plus noise of variance 1e-4.

    Returns the data and the noise level, the mean squared error of the best
    rank-3 reconstruction.
    """
    rng = np.random.RandomState(42)
    codes = rng.normal(size=(600, 3)) * [3.0, 2.0, 1.0]
    basis = np.linalg.qr(rng.normal(size=(20, 3)))[0].T
    noise = 1e-2 * rng.normal(size=(600, 20))
    X = codes @ basis + 0.5 + noise
    return X, np.mean(noise**2)
