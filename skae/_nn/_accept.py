"""Which weights training keeps: a paired test of their gain on held-out rows.

Training keeps its best weights only where they beat the start clearly on
the rows that score them: :func:`significant` for the whole code, and
:func:`prefixes_significant` for ordered codes, whose prefixes
:func:`prefix_errors` reconstructs from.
"""

import math

import numpy as np
import torch
from scipy import stats

from skae._nn._batches import MaskedPairs, inference_rows, normalized_pairs
from skae._nn._objective import row_errors

# Trained weights replace the starting ones only if a one-sided paired
# t-test of their per-row gain on the rows that judge them passes at this
# level.
ACCEPT_LEVEL = 0.05
# Bytes, at most, of the rows that score ordered codes that training holds
# normalised between epochs.
HELD_BYTES = 2**24
# Bytes, at most, of a pass's rows repeated once per prefix, to decode every
# prefix in one call.
STACKED_BYTES = 2**18


def prefix_dims(width):
    """The prefixes whose errors select ordered codes: 1, 2, 4, ... and ``width``."""
    dims = [2**i for i in range(max(width, 1).bit_length()) if 2**i < width]
    return [*dims, width]


@torch.no_grad()
def prefix_errors(module, X, dims, *, device="cpu", fill=None):
    """Squared reconstruction errors of each row of X from prefixes of its code.

    Row ``i`` of the result holds the errors (as
    :func:`~skae._nn._batches.reconstruction_error` gives them) of the
    reconstructions from the first ``dims[i]`` units of the code, the
    others at ``fill``: the mean of X's codes when None.
    """
    dims = list(dims)
    rows = max(1, inference_rows(X.shape[1], np.float64) // 2)
    batches_ = []
    for inputs, target, mask in normalized_pairs(module, X, rows, device=device):
        batches_.append((module.codes(inputs), target, mask))
    if fill is None:
        fill = torch.cat([codes for codes, _, _ in batches_]).mean(dim=0)
    fill = torch.as_tensor(fill, dtype=module.dtype, device=device)
    kept = _kept(module, dims, device)
    per_row = X.entries_per_row if isinstance(X, MaskedPairs) else None
    errors = np.empty((len(dims), X.shape[0]))
    start = 0
    for codes, target, mask in batches_:
        if _stacks(module, target, len(dims)):
            target = target.repeat(len(dims), 1)
            mask = None if mask is None else mask.repeat(len(dims), 1)
        errors[:, start : start + len(codes)] = _pass_errors(
            module, codes, target, mask, kept, fill, per_row
        )
        start += len(codes)
    return errors * float(module.scale) ** 2


def _kept(module, dims, device):
    """The units each prefix keeps: a (len(dims), encoding_dim) boolean mask."""
    units = torch.arange(module.encoding_dim, device=device)
    return units < torch.tensor(dims, device=device)[:, None]


def _stacks(module, target, n_prefixes):
    """Whether to decode a pass's rows from every prefix in one call.

    Where the rows of all the prefixes together take at most
    ``STACKED_BYTES``: on small data the calls, not the arithmetic, take
    the time (four prefixes of 133 rows of 13 features took 2.4 times as
    long decoded one at a time). Larger, they would leave the cache, and
    each prefix is decoded by itself.
    """
    widest = max(target.shape[1], module.cost_per_row()[1])
    return n_prefixes * len(target) * widest * target.element_size() <= STACKED_BYTES


def _pass_errors(module, codes, targets, mask, kept, fill, per_row):
    """Errors of one pass's rows from each prefix, a (len(kept), n) float64 array.

    ``targets`` and ``mask`` hold the rows once, to decode each prefix by
    itself, or once per prefix, to decode them all in one call.
    """
    groups = kept.split(len(targets) // len(codes))
    errors = []
    for group in groups:
        prefixed = torch.where(group[:, None, :], codes, fill).view(-1, codes.shape[1])
        part = row_errors(module, module.decode_logits(prefixed), targets, mask, per_row)
        errors.append(part.view(len(group), len(codes)).double().cpu().numpy())
    return np.concatenate(errors)


class PrefixErrors:
    """:func:`prefix_errors` of fixed rows, for a training loop to call every epoch.

    Rows of an array or sparse matrix that take at most ``HELD_BYTES``
    once normalised are normalised once and held between calls; others
    pass through :func:`prefix_errors` at each call. The fill is the mean
    of the rows' codes.
    """

    def __init__(self, module, X, dims, *, device):
        self.module, self.X, self.dims, self.device = module, X, list(dims), device
        self.held = None
        widest = max(X.shape[1], module.cost_per_row()[1])
        row_bytes = widest * torch.finfo(module.dtype).bits // 8
        if not isinstance(X, MaskedPairs) and X.shape[0] * row_bytes <= HELD_BYTES:
            ((inputs, target, _),) = normalized_pairs(module, X, max(X.shape[0], 1), device=device)
            if _stacks(module, target, len(self.dims)):
                target = target.repeat(len(self.dims), 1)
            self.held = inputs, target, _kept(module, dims, device)

    @torch.no_grad()
    def __call__(self):
        module = self.module
        if self.held is None:
            return prefix_errors(module, self.X, self.dims, device=self.device)
        inputs, targets, kept = self.held
        codes = module.codes(inputs)
        errors = _pass_errors(module, codes, targets, None, kept, codes.mean(dim=0), None)
        return errors * float(module.scale) ** 2


def relative(values, reference):
    """``values / reference``; where the reference is 0, 0 for 0 and 1 otherwise."""
    positive = reference > 0
    return np.where(positive, values / np.where(positive, reference, 1.0), values != 0)


def prefixes_significant(start_errors, errors):
    """Whether prefixes gain on the start: on average clearly, and none clearly worse.

    The per-row gain of each prefix is relative to the start's mean error
    with that prefix; the mean of these gains over the prefixes must pass
    :func:`significant`, and no prefix's gain may be significantly
    negative.
    """
    gains = relative(start_errors - errors, start_errors.mean(axis=1, keepdims=True))
    if not significant(gains.mean(axis=0)):
        return False
    return not any(significant(-gain) for gain in gains)


def significant(gain):
    """Whether per-row gains on held-out rows are clearly above zero.

    A one-sided paired t-test at ``ACCEPT_LEVEL``: the mean gain must
    exceed Student's t quantile times its standard error, so that a
    handful of rows, whose spread is itself a guess, must show more.
    """
    n_rows = len(gain)
    if n_rows < 2:
        return False
    standard_error = float(np.std(gain, ddof=1)) / math.sqrt(n_rows)
    critical = float(stats.t.ppf(1 - ACCEPT_LEVEL, n_rows - 1))
    return float(np.mean(gain)) > critical * standard_error
