"""The training loop: mini-batches, Adam, early stopping, progress.

Nothing here knows about scikit-learn estimators: :func:`train` takes a torch
module and arrays, and returns what happened in a :class:`TrainingResult`.
"""

import math
import warnings
from dataclasses import dataclass, field

import scipy.sparse as sp
import torch
import torch.nn.functional as F


class Adam:
    """Adam on a fixed list of parameters, with a learning rate per step.

    ``torch.optim.Adam`` imports ``torch._dynamo`` when first created, which
    costs over a second per process; this class performs the same update
    with torch's fused CPU/CUDA kernel where available, and with ``_foreach``
    operations otherwise.

    Parameters
    ----------
    params : list of torch.Tensor
        Parameters to update in place from their ``.grad``.

    state : dict or None
        A ``state_dict()`` of an earlier optimizer on parameters of the same
        shapes, to continue from.
    """

    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, params, state=None):
        self.params = list(params)
        if state is None:
            self.exp_avg = [torch.zeros_like(p) for p in self.params]
            self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
            self.steps = [p.new_zeros((), dtype=torch.float32) for p in self.params]
        else:
            device = self.params[0].device
            self.exp_avg = [t.to(device) for t in state["exp_avg"]]
            self.exp_avg_sq = [t.to(device) for t in state["exp_avg_sq"]]
            self.steps = [t.to(device) for t in state["steps"]]
        self._fused = hasattr(torch, "_fused_adam_") and self.params[0].device.type in (
            "cpu",
            "cuda",
        )

    @torch.no_grad()
    def step(self, lr):
        """Update the parameters with their current gradients."""
        grads = [p.grad for p in self.params]
        torch._foreach_add_(self.steps, 1)
        if self._fused:
            torch._fused_adam_(
                self.params,
                grads,
                self.exp_avg,
                self.exp_avg_sq,
                [],
                self.steps,
                lr=lr,
                beta1=self.beta1,
                beta2=self.beta2,
                weight_decay=0.0,
                eps=self.eps,
                amsgrad=False,
                maximize=False,
            )
            return
        step = self.steps[0].item()
        bias_correction1 = 1 - self.beta1**step
        bias_correction2_sqrt = math.sqrt(1 - self.beta2**step)
        torch._foreach_lerp_(self.exp_avg, grads, 1 - self.beta1)
        torch._foreach_mul_(self.exp_avg_sq, self.beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, 1 - self.beta2)
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, self.exp_avg, denom, -lr / bias_correction1)

    def state_dict(self):
        """The moment estimates and step counts, on CPU."""
        return {
            "exp_avg": [t.cpu() for t in self.exp_avg],
            "exp_avg_sq": [t.cpu() for t in self.exp_avg_sq],
            "steps": [t.cpu() for t in self.steps],
        }


def as_tensor(X):
    """A zero-copy CPU tensor view of a dense array, read-only arrays included.

    The tensor is only ever read, so the warning torch gives for read-only
    arrays does not apply.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(X)


def iter_rows(X, batch_size, *, device, dtype=None, order=None):
    """Yield dense tensors of consecutive (or ``order``-ed) rows of X.

    Parameters
    ----------
    X : ndarray or scipy CSR matrix of shape (n_samples, n_features)
        Sparse input is densified one batch at a time, never whole.

    batch_size : int
        Rows per batch; the last batch may be smaller.

    device : torch.device
        Where the batches go.

    dtype : torch.dtype or None
        Dtype of the batches; that of X when None.

    order : torch.Tensor of int64 or None
        Row indices to visit; all rows in order when None.
    """
    n_samples = X.shape[0] if order is None else order.shape[0]
    dense = None if sp.issparse(X) else as_tensor(X)
    for start in range(0, n_samples, batch_size):
        stop = min(start + batch_size, n_samples)
        if order is None:
            rows = slice(start, stop)
        else:
            rows = order[start:stop]
        if dense is None:
            batch = torch.from_numpy(X[rows.numpy() if order is not None else rows].toarray())
        elif order is None:
            batch = dense[rows]
        else:
            batch = dense.index_select(0, rows)
        yield batch.to(device=device, dtype=dtype, non_blocking=True)


@torch.no_grad()
def reconstruction_error(module, X, *, batch_size=4096, device="cpu"):
    """Mean squared reconstruction error of each row of X, as a float64 array.

    The error is computed in the module's normalised space, where it cannot
    overflow, and scaled back in float64.
    """
    errors = []
    dtype = module.linear_layers[0].weight.dtype
    for batch in iter_rows(X, batch_size, device=device, dtype=dtype):
        target = module.normalize(batch)
        reconstruction = module.activate(module(target))
        errors.append((reconstruction - target).square_().mean(dim=1).double().cpu())
    scale = float(module.scale) ** 2
    return torch.cat(errors).numpy() * scale


def corrupt(batch, noise, noise_level, generator):
    """Return a corrupted copy of ``batch`` for denoising training."""
    if noise == "gaussian":
        gaussian = torch.randn(
            batch.shape, generator=generator, dtype=batch.dtype, device="cpu"
        ).to(batch.device)
        return batch + noise_level * gaussian
    keep = torch.rand(batch.shape, generator=generator, device="cpu") >= noise_level
    return batch * keep.to(batch.device)


WARMUP = 0.1


def learning_rate_at(schedule, learning_rate_init, progress):
    """The learning rate after a fraction ``progress`` of the planned steps.

    "cosine" rises linearly over the first tenth of the steps, so that the
    first, sign-like Adam steps do not throw a well-initialised network off,
    then decays along a half cosine to zero.
    """
    if schedule == "cosine":
        progress = min(progress, 1.0)
        warmup = min(1.0, (progress + 1e-3) / WARMUP) if WARMUP else 1.0
        return learning_rate_init * warmup * 0.5 * (1.0 + math.cos(math.pi * progress))
    return learning_rate_init


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
    *,
    X_val=None,
    loss="mse",
    batch_size=200,
    max_iter=200,
    learning_rate_init=1e-3,
    learning_rate="constant",
    alpha=0.0,
    shuffle=True,
    tol=1e-4,
    n_iter_no_change=10,
    noise=None,
    noise_level=0.0,
    generator=None,
    device="cpu",
    optimizer_state=None,
    first_epoch=1,
    verbose=False,
):
    """Train ``module`` to reconstruct X with mini-batch Adam.

    The module is trained in place on ``device``. Without a validation set,
    training stops when the training loss has not improved by ``tol`` for
    ``n_iter_no_change`` epochs and the module keeps its last weights; with
    one, the criterion is the validation score and the module ends with the
    weights of its best validation score. A KeyboardInterrupt ends training
    with a warning and the best weights so far.

    Parameters
    ----------
    module : skae._network.Autoencoder
        The network, already on ``device``.

    X : ndarray or scipy CSR matrix of shape (n_samples, n_features)
        Training data in the module's dtype.

    X_val : ndarray, scipy CSR matrix or None
        Validation data for early stopping.

    generator : torch.Generator
        CPU generator for shuffling and input corruption.

    optimizer_state : dict or None
        State of an earlier :class:`Adam` on this module, to continue from.

    first_epoch : int
        Number of the first epoch, for messages.

    Other parameters are those of :class:`skae.AutoencoderTransformer`.

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
    params = [p for p in module.parameters()]
    weights = [layer.weight for layer in module.linear_layers]
    optimizer = Adam(params, state=optimizer_state)
    n_samples = X.shape[0]
    n_batches = math.ceil(n_samples / batch_size)
    total_steps = max(max_iter * n_batches, 1)
    result = TrainingResult(validation_scores=None if X_val is None else [])
    normalized = bool(module.scale != 1) or bool(module.shift.any())
    loss_scale = float(module.scale) ** 2 if loss == "mse" else 1.0
    best_state = _snapshot(module)
    no_improvement = 0
    step = 0
    epoch = first_epoch
    try:
        for epoch in range(first_epoch, first_epoch + max_iter):
            module.train()
            if shuffle:
                order = torch.randperm(n_samples, generator=generator)
            else:
                order = None
            epoch_loss = torch.zeros((), dtype=torch.float64, device=device)
            for batch in iter_rows(X, batch_size, device=device, order=order):
                inputs = batch if noise is None else corrupt(batch, noise, noise_level, generator)
                if normalized:
                    batch = module.normalize(batch)
                    inputs = batch if noise is None else module.normalize(inputs)
                logits = module(inputs)
                if loss == "bce":
                    batch_loss = F.binary_cross_entropy_with_logits(logits, batch)
                else:
                    batch_loss = F.mse_loss(module.activate(logits), batch)
                objective = batch_loss
                if alpha:
                    penalty = sum(w.square().sum() for w in weights)
                    objective = batch_loss + 0.5 * alpha * penalty / batch.shape[0]
                for p in params:
                    p.grad = None
                objective.backward()
                lr = learning_rate_at(learning_rate, learning_rate_init, step / total_steps)
                optimizer.step(lr)
                step += 1
                epoch_loss += batch_loss.detach() * batch.shape[0]
            epoch_loss = epoch_loss.item() / n_samples * loss_scale
            if not math.isfinite(epoch_loss):
                module.load_state_dict(best_state)
                raise DivergenceError(epoch_loss, epoch)
            result.loss_curve.append(epoch_loss)
            result.n_epochs += 1
            improved, is_best = _record_progress(result, epoch_loss, module, X_val, tol, device)
            if verbose:
                message = f"Iteration {epoch}, loss = {epoch_loss:.8f}"
                if X_val is not None:
                    message += f", validation score = {result.validation_scores[-1]:.8f}"
                print(message, flush=True)
            if is_best:
                best_state = _snapshot(module)
            no_improvement = 0 if improved else no_improvement + 1
            if no_improvement > n_iter_no_change:
                result.stopped_early = True
                if verbose:
                    print(
                        f"Training stopped: no improvement of at least tol={tol} "
                        f"for {n_iter_no_change} consecutive epochs.",
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
