"""The training loop: mini-batches, Adam, early stopping, progress.

Nothing here knows about scikit-learn estimators or a network's layer
layout: :func:`train` takes a network with the contract of
:mod:`skae._nn._contract`, arrays and :class:`TrainingOptions`, and returns what
happened in a :class:`TrainingResult`.
"""

import warnings
from dataclasses import dataclass, fields

import torch

from skae._nn._run import (
    DIVERGENCE_FACTOR,
    DivergenceError,
    Run,
    TrainingResult,
)

__all__ = ["DIVERGENCE_FACTOR", "DivergenceError", "TrainingOptions", "TrainingResult", "train"]


@dataclass(frozen=True)
class TrainingOptions:
    """How to train: the estimators' training parameters, resolved.

    The fields have the names and meanings of the estimators' parameters
    (see :class:`skae.AutoencoderTransformer`), with the "auto" choices
    already made. An estimator without ``loss``, ``noise`` or
    ``noise_level`` (one that trains on pairs of its own making, say) trains
    on the squared error of clean inputs. With ``ordered``, each row's code
    is truncated at a random unit (:func:`~skae._nn._objective.nested_dropout`)
    and the weights are kept by their prefixes' errors.
    """

    batch_size: int
    max_iter: int
    learning_rate_init: float
    learning_rate: str
    alpha: float
    shuffle: bool
    tol: float
    n_iter_no_change: int | float
    verbose: bool
    precision: str
    loss: str = "mse"
    noise: str | None = None
    noise_level: float = 0.0
    ordered: bool = False

    @classmethod
    def from_params(cls, params, **resolved):
        """Options from an estimator's ``get_params()``, with ``resolved`` choices."""
        names = [f.name for f in fields(cls)]
        return cls(
            **{
                name: resolved[name] if name in resolved else params[name]
                for name in names
                if name in {**params, **resolved}
            }
        )


def train(
    module,
    X,
    options,
    *,
    generator,
    device,
    X_val=None,
    optimizer_state=None,
    first_epoch=1,
    gather_ahead=False,
    keep_start=True,
):
    """Train ``module`` to reconstruct X with mini-batch Adam.

    The module is trained in place on ``device``, and ends with the best
    weights seen, the starting weights among them: those of the best
    validation score when ``X_val`` is given (and only if they beat the
    starting weights on the validation rows by a paired test, see
    :func:`~skae._nn._accept.significant`), else of the lowest training loss. Training stops
    when the criterion has not improved by ``tol`` for ``n_iter_no_change``
    epochs; when the loss grows to ``DIVERGENCE_FACTOR``
    times that of the starting weights (or of an output of zeros, if larger)
    or becomes NaN, within an epoch; or on a KeyboardInterrupt, with a
    warning. The loss of an epoch is the mean over its mini-batches.

    On CPU in full precision, gradients come from formulas worked out by
    hand (for a network that is its linear path alone, trained without
    corruption, into buffers allocated once); on other devices, in
    bfloat16 or with parameters that do not require gradients, from
    autograd. Both give the same gradients. Parameters that do not require
    gradients are left as they are.

    Parameters
    ----------
    module : network of :mod:`skae._nn._contract`
        The network, already on ``device``.

    X : ndarray, scipy CSR matrix or MaskedPairs of shape (n_samples, n_features)
        Training data in the module's dtype; :class:`~skae._nn._batches.MaskedPairs`
        train the network to map inputs to other targets, scored on the
        masked entries only (with the "mse" loss).

    options : TrainingOptions
        How to train.

    generator : torch.Generator
        CPU generator for shuffling and input corruption.

    device : torch.device
        Where to train.

    X_val : ndarray, scipy CSR matrix, MaskedPairs or None
        Validation data for early stopping, of the kind of X.

    optimizer_state : dict or None
        State of an earlier :class:`~skae._nn._optim.Adam` on this module, to
        continue from.

    first_epoch : int
        Number of the first epoch, for messages.

    gather_ahead : bool
        Whether a helper thread may gather the rows of the next shuffled
        mini-batch while one trains; for a process with a core that torch
        leaves idle. Used by the hand-derived step only.

    keep_start : bool
        Whether the starting weights compete for the best. Without, the
        last epoch's weights are kept unless training diverges; for
        ``partial_fit``, whose one epoch on a chunk is not comparable with
        the starting weights' loss on it.

    Returns
    -------
    result : TrainingResult

    Raises
    ------
    DivergenceError
        If the starting weights give a non-finite loss.
    """
    run = Run(
        module,
        X,
        options,
        generator=generator,
        device=torch.device(device),
        X_val=X_val,
        optimizer_state=optimizer_state,
        gather_ahead=gather_ahead,
        keep_start=keep_start,
    )
    with run:
        epoch = first_epoch
        try:
            for epoch in range(first_epoch, first_epoch + options.max_iter):
                if run.epoch(epoch):
                    break
        except KeyboardInterrupt:
            warnings.warn(
                f"Training interrupted by user at epoch {epoch}; keeping the best "
                "weights found so far.",
                UserWarning,
                stacklevel=6,
            )
            run.interrupt()
        return run.finish()
