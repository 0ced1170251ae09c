"""The training loop: mini-batches, Adam, early stopping, progress.

Nothing here knows about scikit-learn estimators or a network's layer
layout: :func:`train` takes a network with the contract of
:mod:`skae._network`, arrays and :class:`TrainingOptions`, and returns what
happened in a :class:`TrainingResult`.
"""

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields

import torch

from skae._batches import batches, reconstruction_error
from skae._optim import Adam, flat_parameters, learning_rate_at
from skae._steps import AutogradStep, LinearStep


@dataclass(frozen=True)
class TrainingOptions:
    """How to train: the estimators' training parameters, resolved.

    The fields have the names and meanings of the estimators' parameters
    (see :class:`skae.AutoencoderTransformer`), with the "auto" choices
    already made; there are no defaults here, only the estimators'.
    """

    loss: str
    batch_size: int
    max_iter: int
    learning_rate_init: float
    learning_rate: str
    alpha: float
    shuffle: bool
    tol: float
    n_iter_no_change: int | float
    noise: str | None
    noise_level: float
    verbose: bool

    @classmethod
    def from_params(cls, params, **resolved):
        """Options from an estimator's ``get_params()``, with ``resolved`` choices."""
        return cls(**{f.name: resolved.get(f.name, params[f.name]) for f in fields(cls)})


@dataclass
class TrainingResult:
    """What a call to :func:`train` did.

    Attributes
    ----------
    loss_curve : list of float
        Mean training loss per element, one entry per epoch.

    validation_scores : list of float or None
        Negative mean squared reconstruction error on the validation set after
        each epoch; None without a validation set.

    best_loss : float
        The lowest training loss seen.

    best_validation_score : float or None
        The highest validation score seen.

    n_epochs : int
        Epochs run.

    stopped_early : bool
        Whether ``n_iter_no_change`` epochs without improvement ended the run.

    interrupted : bool
        Whether a KeyboardInterrupt ended the run.

    optimizer_state : dict
        The optimizer's state, on CPU, to continue training later.
    """

    loss_curve: list = field(default_factory=list)
    validation_scores: list | None = None
    best_loss: float = math.inf
    best_validation_score: float | None = None
    n_epochs: int = 0
    stopped_early: bool = False
    interrupted: bool = False
    optimizer_state: dict | None = None


class DivergenceError(ArithmeticError):
    """Training produced a non-finite loss."""

    def __init__(self, loss, epoch):
        self.loss = loss
        self.epoch = epoch
        super().__init__(f"the training loss became {loss} at epoch {epoch}")


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


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
):
    """Train ``module`` to reconstruct X with mini-batch Adam.

    The module is trained in place on ``device``. Without a validation set,
    training stops when the training loss has not improved by ``tol`` for
    ``n_iter_no_change`` epochs and the module keeps its last weights; with
    one, the criterion is the validation score and the module ends with the
    weights of its best validation score. A KeyboardInterrupt ends training
    with a warning and the best weights so far.

    A network whose encoder and decoder are single linear layers, trained on
    CPU without corruption, gets its gradients from formulas worked out by
    hand; any other, from autograd. Both give the same gradients.

    Parameters
    ----------
    module : network of :mod:`skae._network`
        The network, already on ``device``.

    X : ndarray or scipy CSR matrix of shape (n_samples, n_features)
        Training data in the module's dtype.

    X_val : ndarray, scipy CSR matrix or None
        Validation data for early stopping.

    generator : torch.Generator
        CPU generator for shuffling and input corruption.

    options : TrainingOptions
        How to train.

    optimizer_state : dict or None
        State of an earlier :class:`~skae._optim.Adam` on this module, to
        continue from.

    first_epoch : int
        Number of the first epoch, for messages.

    gather_ahead : bool
        Whether a helper thread may gather the rows of the next shuffled
        mini-batch while one trains; for a process with a core that torch
        leaves idle. Used by the hand-derived step only.

    Returns
    -------
    result : TrainingResult

    Raises
    ------
    DivergenceError
        If the loss becomes NaN or infinite. The module is reset to the best
        weights seen, or to its initial weights, before raising.
    """
    device = torch.device(device)
    params = list(module.parameters())
    n_samples, n_features = X.shape
    batch_size, max_iter = options.batch_size, options.max_iter
    n_batches = math.ceil(n_samples / batch_size)
    total_steps = max(max_iter * n_batches, 1)
    result = TrainingResult(validation_scores=None if X_val is None else [])
    loss_scale = float(module.scale) ** 2 if options.loss == "mse" else 1.0
    with flat_parameters(params) as (flat, grad):
        optimizer = Adam(flat, grad, state=optimizer_state)
        linear = LinearStep.applies(module, X, options.loss, options.noise, device)
        gather_ahead = gather_ahead and linear and options.shuffle
        if linear:
            batch_step = LinearStep(module, X, grad, options=options, gather_ahead=gather_ahead)
        else:
            batch_step = AutogradStep(
                module, X, grad, options=options, generator=generator, device=device
            )
        best_state = _snapshot(module)
        no_improvement = 0
        step = 0
        epoch = first_epoch
        executor = ThreadPoolExecutor(1) if gather_ahead else None
        try:
            for epoch in range(first_epoch, first_epoch + max_iter):
                module.train()
                order = torch.randperm(n_samples, generator=generator) if options.shuffle else None
                selections = batches(n_samples, batch_size, order)
                if executor is not None:
                    selections = batch_step.ahead(selections, executor)
                batch_losses = []
                for rows in selections:
                    batch_losses.append(batch_step(rows))
                    optimizer.step(
                        learning_rate_at(
                            options.learning_rate,
                            options.learning_rate_init,
                            step / total_steps,
                        )
                    )
                    step += 1
                # One synchronisation per epoch: the batch losses stay tensors until here.
                epoch_loss = torch.stack(batch_losses).double().sum().item()
                epoch_loss /= n_samples * n_features
                if not math.isfinite(epoch_loss):
                    module.load_state_dict(best_state)
                    raise DivergenceError(epoch_loss, epoch)
                epoch_loss *= loss_scale
                result.loss_curve.append(epoch_loss)
                result.n_epochs += 1
                # tol applies to the loss in the network's normalised units.
                improved, is_best = _record_progress(
                    result, epoch_loss, module, X_val, options.tol * loss_scale, device
                )
                if options.verbose:
                    message = f"Iteration {epoch}, loss = {epoch_loss:.8f}"
                    if X_val is not None:
                        message += f", validation score = {result.validation_scores[-1]:.8f}"
                    print(message, flush=True)
                if is_best:
                    best_state = _snapshot(module)
                no_improvement = 0 if improved else no_improvement + 1
                if no_improvement > options.n_iter_no_change:
                    result.stopped_early = True
                    if options.verbose:
                        print(
                            f"Training stopped: no improvement of at least tol={options.tol} "
                            f"for {options.n_iter_no_change} consecutive epochs.",
                            flush=True,
                        )
                    break
        except KeyboardInterrupt:
            warnings.warn(
                f"Training interrupted by user at epoch {epoch}; keeping the best "
                "weights found so far.",
                UserWarning,
                stacklevel=4,
            )
            result.interrupted = True
            module.load_state_dict(best_state)
        finally:
            if executor is not None:
                executor.shutdown(cancel_futures=True)
        if X_val is not None and not result.interrupted:
            module.load_state_dict(best_state)
        module.eval()
        result.optimizer_state = optimizer.state_dict()
    return result


def _record_progress(result, epoch_loss, module, X_val, tol, device):
    """Update the best loss or validation score after an epoch.

    Returns whether the epoch improved on the best by at least ``tol``, and
    whether it set a new best at all.
    """
    if X_val is None:
        value, best = epoch_loss, result.best_loss
        result.best_loss = min(best, value)
        return value <= best - tol, value < best
    result.best_loss = min(result.best_loss, epoch_loss)
    score = -float(reconstruction_error(module, X_val, device=device).mean())
    result.validation_scores.append(score)
    best = result.best_validation_score
    if best is None:
        result.best_validation_score = score
        return True, True
    result.best_validation_score = max(best, score)
    return score >= best + tol, score > best
