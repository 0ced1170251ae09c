"""The training loop: mini-batches, Adam, early stopping, progress.

Nothing here knows about scikit-learn estimators: :func:`train` takes a torch
module and arrays, and returns what happened in a :class:`TrainingResult`.
"""

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn


class Adam:
    """Adam on parameters held in one flat tensor, with a learning rate per step.

    ``torch.optim.Adam`` imports ``torch._dynamo`` when first created, which
    costs over a second per process; this class performs the same update
    with torch's fused CPU/CUDA kernel where available, and with ``_foreach``
    operations otherwise. Keeping all parameters, gradients and moments in
    one flat tensor each makes a step a single kernel call.

    Parameters
    ----------
    flat : torch.Tensor of shape (n_parameters,)
        The parameters, updated in place.

    grad : torch.Tensor of shape (n_parameters,)
        Their gradients, read at each step.

    shapes : list of torch.Size
        Shapes of the parameters laid out one after the other in ``flat``.

    state : dict or None
        A ``state_dict()`` of an earlier optimizer on parameters of the same
        shapes, to continue from.
    """

    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, flat, grad, shapes, state=None):
        self.flat = flat
        self.grad = grad
        self.shapes = list(shapes)
        if state is None:
            self.exp_avg = torch.zeros_like(flat)
            self.exp_avg_sq = torch.zeros_like(flat)
            self.steps = flat.new_zeros((), dtype=torch.float32)
        else:
            self.exp_avg = _concatenate(state["exp_avg"], flat)
            self.exp_avg_sq = _concatenate(state["exp_avg_sq"], flat)
            self.steps = state["steps"][0].to(device=flat.device, dtype=torch.float32).clone()
        self._fused = hasattr(torch, "_fused_adam_") and flat.device.type in ("cpu", "cuda")
        # The fused kernel's tensor lists, made once: a step is then one call.
        self._lists = [self.flat], [self.grad], [self.exp_avg], [self.exp_avg_sq], [], [self.steps]

    def step(self, lr):
        """Update the parameters with their current gradients.

        ``flat`` does not require gradients (the parameters are views of it
        made outside autograd), so the in-place updates need no ``no_grad``.
        """
        self.steps.add_(1)
        if self._fused:
            torch._fused_adam_(
                *self._lists,
                lr=lr,
                beta1=self.beta1,
                beta2=self.beta2,
                weight_decay=0.0,
                eps=self.eps,
                amsgrad=False,
                maximize=False,
            )
            return
        step = self.steps.item()
        bias_correction1 = 1 - self.beta1**step
        bias_correction2_sqrt = math.sqrt(1 - self.beta2**step)
        self.exp_avg.lerp_(self.grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(self.grad, self.grad, value=1 - self.beta2)
        denom = self.exp_avg_sq.sqrt().div_(bias_correction2_sqrt).add_(self.eps)
        self.flat.addcdiv_(self.exp_avg, denom, value=-lr / bias_correction1)

    def state_dict(self):
        """The moment estimates and step counts of each parameter, on CPU."""
        return {
            "exp_avg": _split(self.exp_avg.cpu(), self.shapes),
            "exp_avg_sq": _split(self.exp_avg_sq.cpu(), self.shapes),
            "steps": [self.steps.cpu().clone() for _ in self.shapes],
        }


def _concatenate(tensors, like):
    """One flat tensor of ``like``'s dtype and device from a list of tensors."""
    return torch.cat([t.reshape(-1) for t in tensors]).to(device=like.device, dtype=like.dtype)


def _split(flat, shapes):
    """Copies of consecutive pieces of ``flat`` with the given shapes."""
    pieces = flat.split([math.prod(shape) for shape in shapes])
    return [piece.view(shape).clone() for piece, shape in zip(pieces, shapes, strict=True)]


def as_tensor(X):
    """A zero-copy CPU tensor view of a dense array, read-only arrays included.

    The tensor is only ever read, so the warning torch gives for read-only
    arrays does not apply.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(X)


def _take(X, dense, rows):
    """Rows of X as a CPU tensor: a view for a slice of a dense X, else a copy.

    ``dense`` is X as a tensor, or None when X is a sparse matrix, which is
    then densified for these rows only.
    """
    if dense is None:
        return torch.from_numpy(X[rows if isinstance(rows, slice) else rows.numpy()].toarray())
    if isinstance(rows, slice):
        return dense[rows]
    return dense.index_select(0, rows)


def _batches(n_samples, batch_size, order=None):
    """Row selections of consecutive mini-batches: slices, or pieces of ``order``."""
    if order is not None:
        return order.split(batch_size)
    return [slice(start, start + batch_size) for start in range(0, n_samples, batch_size)]


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
    dense = None if sp.issparse(X) else as_tensor(X)
    for rows in _batches(X.shape[0], batch_size, order):
        yield _take(X, dense, rows).to(device=device, dtype=dtype, non_blocking=True)


# Rows per pass when encoding or scoring: bounds the memory of hidden
# activations while keeping each matrix product large.
INFERENCE_ROWS = 4096


@torch.no_grad()
def reconstruction_error(module, X, *, batch_size=INFERENCE_ROWS, device="cpu"):
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


@contextmanager
def _flat_parameters(params):
    """Lay the parameters out in one flat tensor for the duration of the block.

    Each parameter's storage becomes a view of the flat tensor, so that the
    optimizer updates all of them with one kernel call, and gradients are
    written to a matching flat tensor. On exit the parameters get storages
    of their own again.

    Yields
    ------
    flat, grad : torch.Tensor
        The parameters and a zero-filled tensor for their gradients.
    """
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    grad = torch.zeros_like(flat)
    try:
        for p, view in zip(params, _views(flat, params), strict=True):
            p.data = view
        yield flat, grad
    finally:
        for p in params:
            p.data = p.data.clone()


def _views(flat, params):
    """Views of ``flat`` shaped as ``params``, one after the other."""
    pieces = flat.split([p.numel() for p in params])
    return [piece.view_as(p) for piece, p in zip(pieces, params, strict=True)]


class _AutogradStep:
    """Loss and gradients of a mini-batch by automatic differentiation.

    Works for any network, input corruption and device. Calling it with a
    selection of rows writes the gradients of the objective (loss plus L2
    penalty) to the flat gradient and returns the batch's summed loss.
    """

    def __init__(self, module, X, grad, *, loss, alpha, noise, noise_level, generator, device):
        self.module = module
        self.X = X
        self.dense = None if sp.issparse(X) else as_tensor(X)
        self.params = list(module.parameters())
        self.grads = _views(grad, self.params)
        # The L2 penalty's gradient, alpha * W / n, is added to the weights'
        # gradients directly: cheaper than differentiating the penalty.
        weights = {id(layer.weight) for layer in module.linear_layers}
        self.weights = [p for p in self.params if id(p) in weights]
        self.weight_grads = [
            g for p, g in zip(self.params, self.grads, strict=True) if id(p) in weights
        ]
        self.loss = loss
        self.alpha = alpha
        self.noise = noise
        self.noise_level = noise_level
        self.generator = generator
        self.device = device
        self.normalized = _is_normalized(module)

    def __call__(self, rows):
        module = self.module
        batch = _take(self.X, self.dense, rows).to(self.device, non_blocking=True)
        inputs = batch
        if self.noise is not None:
            inputs = corrupt(batch, self.noise, self.noise_level, self.generator)
        if self.normalized:
            batch = module.normalize(batch)
            inputs = batch if self.noise is None else module.normalize(inputs)
        logits = module(inputs)
        if self.loss == "bce":
            batch_loss = F.binary_cross_entropy_with_logits(logits, batch)
        else:
            batch_loss = F.mse_loss(module.activate(logits), batch)
        grads = torch.autograd.grad(batch_loss, self.params)
        torch._foreach_copy_(self.grads, grads)
        if self.alpha:
            with torch.no_grad():
                torch._foreach_add_(
                    self.weight_grads, self.weights, alpha=self.alpha / batch.shape[0]
                )
        return batch_loss.detach() * batch.numel()


class _LinearStep:
    """Loss and gradients of a one-layer linear autoencoder, worked out by hand.

    For an encoder and a decoder that are single linear layers with a linear
    code, a mean squared error on a clipped or linear output, or a binary
    cross-entropy on a sigmoid output, the forward and backward passes are
    five matrix products and a few element-wise operations. They are run
    here into buffers allocated once, without building an autograd graph: a
    step then costs little more than its arithmetic.
    """

    def __init__(self, module, X, grad, *, loss, batch_size, alpha, gather_ahead=False):
        encoder, decoder = module.linear_layers
        self.X = as_tensor(X)
        self.We, self.be = encoder.weight.detach(), encoder.bias.detach()
        self.Wd, self.bd = decoder.weight.detach(), decoder.bias.detach()
        self.gWe, self.gbe, self.gWd, self.gbd = _views(grad, list(module.parameters()))
        self.output = "sigmoid" if loss == "bce" else module.output_activation
        self.alpha = alpha
        self.normalized = _is_normalized(module)
        self.shift = module.shift.detach()
        self.scale = float(module.scale)
        n_features, n_codes = self.Wd.shape
        dtype = self.We.dtype
        self.x = torch.empty(batch_size, n_features, dtype=dtype)
        # With gather_ahead, the rows of the next batch are gathered into a
        # second buffer while this one trains (see ``ahead``).
        self.x_next = torch.empty_like(self.x) if gather_ahead else None
        self.gathered = None
        self.z = torch.empty(batch_size, n_codes, dtype=dtype)
        self.dz = torch.empty(batch_size, n_codes, dtype=dtype)
        self.a = torch.empty(batch_size, n_features, dtype=dtype)
        self.r = torch.empty(batch_size, n_features, dtype=dtype)
        self.ones = torch.ones(batch_size, dtype=dtype)
        # Transposed views made once: making them costs microseconds per call.
        self.WeT, self.WdT = self.We.T, self.Wd.T
        self.full = self._buffers(batch_size)

    def _buffers(self, n):
        """The buffers for a batch of n rows, and views of them the step needs."""
        x, z, dz, a, r = self.x[:n], self.z[:n], self.dz[:n], self.a[:n], self.r[:n]
        return x, z, dz, a, r, a.T, dz.T, r.view(-1), self.ones[:n]

    @staticmethod
    def applies(module, X, loss, noise, device):
        """Whether this step computes the same gradients as autograd would."""
        layers = list(module.encoder) + list(module.decoder)
        combination = (loss, module.output_activation)
        return (
            len(module.encoder) == 1
            and len(module.decoder) == 1
            and all(isinstance(layer, nn.Linear) for layer in layers)
            and combination in {("mse", "clip"), ("mse", "identity"), ("bce", "sigmoid")}
            and noise is None
            and device.type == "cpu"
            and not sp.issparse(X)
        )

    def _rows(self, rows, out):
        """The selected rows of X, normalised, in ``out`` or as a view of X."""
        if isinstance(rows, slice) and not self.normalized:
            return self.X[rows]
        if isinstance(rows, slice):
            x = torch.sub(self.X[rows], self.shift, out=out)
        else:
            x = torch.index_select(self.X, 0, rows, out=out)
            if self.normalized:
                x.sub_(self.shift)
        if self.normalized:
            x.div_(self.scale)
        return x

    def ahead(self, batches, executor):
        """Yield ``batches``, gathering each one's rows while the previous one trains.

        The rows of a shuffled batch lie scattered over X, and copying them
        together costs a tenth of a small network's step; ``executor``'s
        thread does it for batch i + 1 into one buffer while batch i trains
        from the other, on a core the process may use but torch does not.
        """
        buffers = self.x, self.x_next

        def gather(i):
            return executor.submit(self._rows, batches[i], buffers[i % 2][: len(batches[i])])

        future = gather(0)
        for i, rows in enumerate(batches):
            self.gathered = future.result()
            if i + 1 < len(batches):
                future = gather(i + 1)
            yield rows
        self.gathered = None

    def __call__(self, rows):
        x = self.gathered
        if x is not None:
            n = x.shape[0]
        elif isinstance(rows, slice):
            n = len(range(*rows.indices(self.X.shape[0])))
        else:
            n = rows.shape[0]
        buffers = self.full if n == self.x.shape[0] else self._buffers(n)
        x_buffer, z, dz, a, r, aT, dzT, r_flat, ones = buffers
        if x is None:
            x = self._rows(rows, x_buffer)
        torch.addmm(self.be, x, self.WeT, out=z)
        torch.addmm(self.bd, z, self.WdT, out=a)
        # The gradient of the summed loss with respect to the output's
        # pre-activation overwrites a.
        if self.output == "sigmoid":
            batch_loss = F.binary_cross_entropy_with_logits(a, x, reduction="sum")
            a.sigmoid_().sub_(x)
            scale = 1.0 / x.numel()
        else:
            if self.output == "clip":
                torch.clamp(a, 0.0, 1.0, out=r).sub_(x)
                torch.ops.aten.hardtanh_backward.grad_input(r, a, 0.0, 1.0, grad_input=a)
            else:
                r_flat = a.sub_(x).view(-1)
            batch_loss = torch.dot(r_flat, r_flat)
            scale = 2.0 / x.numel()
        decay = self.alpha / n
        torch.addmm(self.Wd, aT, z, beta=decay, alpha=scale, out=self.gWd)
        torch.addmv(self.bd, aT, ones, beta=0.0, alpha=scale, out=self.gbd)
        torch.mm(a, self.Wd, out=dz)
        torch.addmm(self.We, dzT, x, beta=decay, alpha=scale, out=self.gWe)
        torch.addmv(self.be, dzT, ones, beta=0.0, alpha=scale, out=self.gbe)
        return batch_loss


def _is_normalized(module):
    """Whether the module works on data shifted or scaled from the input's."""
    return bool(module.scale != 1) or bool(module.shift.any())


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

    gather_ahead : bool
        Whether a helper thread may gather the rows of the next shuffled
        mini-batch while one trains; for a process with a core that torch
        leaves idle. Used by the hand-derived step only.

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
    params = list(module.parameters())
    n_samples, n_features = X.shape
    n_batches = math.ceil(n_samples / batch_size)
    total_steps = max(max_iter * n_batches, 1)
    result = TrainingResult(validation_scores=None if X_val is None else [])
    loss_scale = float(module.scale) ** 2 if loss == "mse" else 1.0
    with _flat_parameters(params) as (flat, grad):
        optimizer = Adam(flat, grad, [p.shape for p in params], state=optimizer_state)
        linear = _LinearStep.applies(module, X, loss, noise, device)
        gather_ahead = gather_ahead and linear and shuffle
        if linear:
            batch_step = _LinearStep(
                module,
                X,
                grad,
                loss=loss,
                batch_size=batch_size,
                alpha=alpha,
                gather_ahead=gather_ahead,
            )
        else:
            batch_step = _AutogradStep(
                module,
                X,
                grad,
                loss=loss,
                alpha=alpha,
                noise=noise,
                noise_level=noise_level,
                generator=generator,
                device=device,
            )
        best_state = _snapshot(module)
        no_improvement = 0
        step = 0
        epoch = first_epoch
        executor = ThreadPoolExecutor(1) if gather_ahead else None
        try:
            for epoch in range(first_epoch, first_epoch + max_iter):
                module.train()
                order = torch.randperm(n_samples, generator=generator) if shuffle else None
                batches = _batches(n_samples, batch_size, order)
                if executor is not None:
                    batches = batch_step.ahead(batches, executor)
                batch_losses = []
                for rows in batches:
                    batch_losses.append(batch_step(rows))
                    optimizer.step(
                        learning_rate_at(learning_rate, learning_rate_init, step / total_steps)
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
                    result, epoch_loss, module, X_val, tol * loss_scale, device
                )
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
