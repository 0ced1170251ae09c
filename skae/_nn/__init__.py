"""The networks and their training, knowing nothing of scikit-learn.

The network contract and its kinds (:mod:`skae._nn._contract`,
:mod:`skae._nn.linear`, :mod:`skae._nn.residual`), the start at PCA's
solution, the training loop with its objective, steps and optimiser,
mini-batches, and the thread rule. Importing the package registers the
kinds.
"""

from skae._nn import linear, residual

__all__ = ["linear", "residual"]
