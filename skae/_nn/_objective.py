"""The training objective: the loss of a batch and every penalty, in one place.

Autograd differentiates :func:`objective`; the steps that work gradients
out by hand are tested against it; the training loop's starting loss and
the validation errors use :func:`summed_loss` and :func:`row_errors`. A
penalty a network kind names in ``penalties()`` is weighed here, so that
no step can leave it out unnoticed.
"""

import torch
import torch.nn.functional as F


def nested_dropout(codes, generator):
    """Codes truncated at a random unit per row, and the mask of the units kept.

    Each row keeps its first ``b`` units, ``b`` drawn uniformly from 1 to
    the code's width from ``generator`` (on CPU); the others are replaced
    by the batch's mean code, which is held fixed (detached): trained so,
    the first units of the code reconstruct as well as they can alone,
    which orders the code as PCA orders its components (Rippel et al.,
    2014, "Learning ordered representations with nested dropout").
    """
    n_rows, width = codes.shape
    kept = torch.randint(1, width + 1, (n_rows, 1), generator=generator)
    keep = torch.arange(width) < kept
    keep = keep.to(device=codes.device)
    return torch.where(keep, codes, codes.detach().mean(dim=0)), keep


def penalty_weights(options, n_rows):
    """The weight of each named penalty term in a batch of ``n_rows`` rows.

    ``"l2"``, the sum of squared weights, is weighed ``alpha / (2 n_rows)``,
    as in :class:`~sklearn.neural_network.MLPRegressor`: its gradient is
    ``alpha * W / n_rows``.
    """
    return {"l2": options.alpha / (2 * n_rows)}


def summed_loss(module, logits, targets, mask, loss):
    """A batch's loss summed over its entries (its masked entries, with a mask)."""
    if mask is not None:
        return ((module.activate(logits) - targets).square() * mask).sum()
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    return (module.activate(logits) - targets).square().sum()


def objective(module, logits, targets, mask, options):
    """The objective of a batch, and its summed loss (detached).

    The objective is the loss's mean over the batch's entries (over its
    masked entries, with a mask) plus each of the network's penalty terms
    at its weight.
    """
    if mask is not None:
        total = summed_loss(module, logits, targets, mask, options.loss)
        value = total / mask.sum().clamp(min=1)
    else:
        if options.loss == "bce":
            value = F.binary_cross_entropy_with_logits(logits, targets)
        else:
            value = F.mse_loss(module.activate(logits), targets)
        total = value * targets.numel()
    weights = penalty_weights(options, targets.shape[0])
    if any(weights.values()):
        for name, term in module.penalties().items():
            value = value + weights.get(name, 0.0) * term
    return value, total.detach()


def row_errors(module, logits, targets, mask, entries_per_row):
    """Squared reconstruction error of each row: its mean, or masked sum per masked entry."""
    squares = (module.activate(logits) - targets).square_()
    if mask is None:
        return squares.mean(dim=1)
    return (squares * mask).sum(dim=1) / entries_per_row
