"""Fixtures and helpers shared by skae's tests.

Seams
-----
Tests that need to watch or change what happens inside a fit use two seams,
and no other internal import path:

- ``skae._nn._train.train``, the training loop. The estimators call it
  through the module (``_train.train(...)``), so replacing the module's
  attribute, ``monkeypatch.setattr(skae._nn._train, "train", wrapper)``,
  reaches every fit, warm start and ``partial_fit``. The
  :func:`watch_training` fixture does this.
- ``skae._nn._optim.Adam.step``, one optimizer step, which the loop calls once a
  mini-batch. The :func:`interrupt_at` fixture patches it to raise
  ``KeyboardInterrupt`` as Ctrl-C would.

Import the constants and plain helpers below with ``from conftest import
...``; the fixtures are found by pytest.
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skae._nn import _optim, _train

# Stops after a few epochs without reaching max_iter (no epoch improves the
# loss by tol), so no ConvergenceWarning.
QUICK = dict(max_iter=6, tol=1e9, n_iter_no_change=1, random_state=0)

# A network and learning rate with which training on digits diverges: the
# loss becomes NaN or infinite within the first epoch; the fit stops with a
# ConvergenceWarning matching DIVERGED and keeps its best weights.
DIVERGING = dict(
    encoding_dim=8,
    hidden_layer_sizes=(32,),
    output_activation="identity",
    learning_rate_init=1e12,
)
DIVERGED = r"Training diverged in epoch \d+: the training loss reached (nan|inf)"


def principal_angle_sines(A, B):
    """Sines of the principal angles between the row spaces of A and B.

    All zeros when the rows of A and B span the same subspace; the largest
    measures how far apart the subspaces are.
    """
    qa = np.linalg.qr(np.asarray(A, dtype=np.float64).T)[0]
    qb = np.linalg.qr(np.asarray(B, dtype=np.float64).T)[0]
    cosines = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return np.sqrt(np.clip(1 - cosines**2, 0, None))


def assert_same(value, expected, name):
    """Assert that ``value`` is ``expected``, exactly: same types, equal arrays.

    Recurses into dicts, lists and tuples; a tensor must equal its expected
    tensor, and a ``(module, weights)`` pair stands for a torch module that
    must be the same object, holding the same weights.
    """
    if isinstance(expected, tuple) and expected and isinstance(expected[0], torch.nn.Module):
        module, weights = expected
        assert value is module, name
        for key, tensor in weights.items():
            assert torch.equal(value.state_dict()[key], tensor), f"{name}.{key}"
    elif isinstance(expected, torch.Tensor):
        assert torch.equal(value, expected), name
    elif isinstance(expected, dict):
        assert isinstance(value, dict) and value.keys() == expected.keys(), name
        for key in expected:
            assert_same(value[key], expected[key], f"{name}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert type(value) is type(expected) and len(value) == len(expected), name
        for i, (a, b) in enumerate(zip(value, expected, strict=True)):
            assert_same(a, b, f"{name}[{i}]")
    elif isinstance(expected, np.ndarray):
        assert isinstance(value, np.ndarray) and value.dtype == expected.dtype, name
        np.testing.assert_array_equal(value, expected, err_msg=name)
    else:
        assert type(value) is type(expected) and value == expected, name


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


@pytest.fixture
def watch_training(monkeypatch):
    """Call ``hook(module, X, options, **kwargs)`` as each training run starts.

    ``watch_training(hook)`` wraps the seam ``skae._nn._train.train``; the
    hook sees the arguments the estimator passes and runs in the thread and
    settings of the training run. The wrapper is removed after the test.
    """

    def watch(hook):
        train = _train.train

        def watched(*args, **kwargs):
            hook(*args, **kwargs)
            return train(*args, **kwargs)

        monkeypatch.setattr(_train, "train", watched)

    return watch


@pytest.fixture
def interrupt_at(monkeypatch):
    """Make the optimizer raise KeyboardInterrupt at its n-th step from now.

    ``interrupt_at(n)`` patches the seam ``skae._nn._optim.Adam.step``; steps
    before the n-th run as usual, and the patch stays for the test, so a
    later call is interrupted only if it reaches step n of the count.
    """

    def arm(n):
        calls = []
        step = _optim.Adam.step

        def interrupted_step(self, lr):
            calls.append(lr)
            if len(calls) == n:
                raise KeyboardInterrupt
            step(self, lr)

        monkeypatch.setattr(_optim.Adam, "step", interrupted_step)
        return calls

    return arm
