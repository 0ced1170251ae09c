"""The networks and their training, knowing nothing of scikit-learn.

The network contract and its kinds (:mod:`skae._nn._contract`,
:mod:`skae._nn.linear`, :mod:`skae._nn.residual`, :mod:`skae._nn.conv`,
:mod:`skae._nn.local_conv`), the start at PCA's
solution, the training loop with its objective, steps and optimiser,
mini-batches, and the thread rule. Importing the package registers the
kinds.
"""

# The kinds register in this order; choose_kind asks the latest first.
from skae._nn import linear, residual, conv, local_conv  # noqa: I001

__all__ = ["conv", "linear", "local_conv", "residual"]
