"""Adam on parameters laid out in one flat tensor, and the learning-rate schedule."""

import math
from contextlib import contextmanager

import numpy as np
import torch


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

    state : dict or None
        A :meth:`state_dict` of an earlier optimizer on the same parameters,
        to continue from.
    """

    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, flat, grad, state=None):
        self.flat = flat
        self.grad = grad
        if state is None:
            self.exp_avg = torch.zeros_like(flat)
            self.exp_avg_sq = torch.zeros_like(flat)
            self.steps = flat.new_zeros((), dtype=torch.float32)
        else:
            self.exp_avg = _moment(state["exp_avg"], flat)
            self.exp_avg_sq = _moment(state["exp_avg_sq"], flat)
            self.steps = torch.tensor(float(state["step"]), device=flat.device)
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

    def load_state(self, state):
        """Go back to a :meth:`state_dict` of this optimizer."""
        self.exp_avg.copy_(_moment(state["exp_avg"], self.flat))
        self.exp_avg_sq.copy_(_moment(state["exp_avg_sq"], self.flat))
        self.steps.fill_(float(state["step"]))

    def state_dict(self):
        """The moment estimates, as flat numpy arrays, and the step count."""
        return {
            "exp_avg": self.exp_avg.cpu().numpy().copy(),
            "exp_avg_sq": self.exp_avg_sq.cpu().numpy().copy(),
            "step": float(self.steps),
        }


def _moment(array, like):
    """A moment estimate from :meth:`Adam.state_dict` as a tensor like ``like``."""
    array = np.asarray(array)
    if array.shape != tuple(like.shape):
        raise ValueError(
            f"The optimizer's state holds {array.size} values for {like.numel()} parameters."
        )
    return torch.from_numpy(array.copy()).to(device=like.device, dtype=like.dtype)


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


@contextmanager
def flat_parameters(params):
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
    first = params[0]
    flat = torch.empty(sum(p.numel() for p in params), dtype=first.dtype, device=first.device)
    try:
        for p, view in zip(params, views(flat, params), strict=True):
            view.copy_(p.detach())
            p.data = view
        grad = torch.zeros_like(flat)
        yield flat, grad
    finally:
        for p in params:
            p.data = p.data.clone()


def views(flat, params):
    """Views of ``flat`` shaped and laid out as ``params``, one after the other.

    A parameter laid out channels last (a convolution's kernel) keeps that
    layout, in which its convolutions run fastest.
    """
    pieces = flat.split([p.numel() for p in params])
    return [
        piece.as_strided(p.shape, torch.empty_like(p, device="meta").stride())
        for piece, p in zip(pieces, params, strict=True)
    ]


class ComputeCopy:
    """The parameters the network computes with: ``flat`` itself, or a copy in ``dtype``.

    Training in bfloat16 keeps ``flat`` in full precision for the optimizer
    (the master weights) and points the parameters at one bfloat16 copy of
    it, refreshed once per step with a single kernel, so that no matrix
    product casts its weights again.
    """

    def __init__(self, params, flat, dtype):
        self.params = params
        self.flat = flat
        self.copy = None if dtype == flat.dtype else flat.to(dtype)

    def __enter__(self):
        if self.copy is not None:
            self._point_at(self.copy)
        return self

    def __exit__(self, *exc_info):
        if self.copy is not None:
            self._point_at(self.flat)

    def _point_at(self, flat):
        for p, view in zip(self.params, views(flat, self.params), strict=True):
            p.data = view

    def refresh(self):
        """Copy the master weights into the computing copy."""
        if self.copy is not None:
            self.copy.copy_(self.flat)

    @contextmanager
    def master(self):
        """Compute with the master weights for the block, as for a validation score."""
        if self.copy is None:
            yield
            return
        self._point_at(self.flat)
        try:
            yield
        finally:
            self._point_at(self.copy)
