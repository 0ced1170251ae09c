"""Which weights training keeps: a paired test of their gain on held-out rows.

Training keeps its best weights only where they beat the start clearly on
the rows that score them: :func:`significant` for the whole code, and
:func:`prefixes_significant` for ordered codes, whose prefixes
:func:`prefix_errors` reconstructs from.
"""

import math

import numpy as np
import torch

from skae._nn._batches import MaskedPairs, inference_rows, normalized_pairs
from skae._nn._objective import prefix_codes, row_errors

# Trained weights replace the starting ones only if their validation error
# is lower by this many standard errors of the paired per-row difference.
ACCEPT_STANDARD_ERRORS = 1.5


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
    rows = max(1, inference_rows(X.shape[1], np.float64) // 2)
    batches_ = []
    for inputs, target, mask in normalized_pairs(module, X, rows, device=device):
        batches_.append((module.codes(inputs), target, mask))
    if fill is None:
        fill = torch.cat([codes for codes, _, _ in batches_]).mean(dim=0)
    fill = torch.as_tensor(fill, dtype=module.dtype, device=device)
    per_row = X.entries_per_row if isinstance(X, MaskedPairs) else None
    errors = np.empty((len(dims), X.shape[0]))
    for i, n_kept in enumerate(dims):
        start = 0
        for codes, target, mask in batches_:
            logits = module.decode_logits(prefix_codes(codes, n_kept, fill))
            part = row_errors(module, logits, target, mask, per_row).double().cpu().numpy()
            errors[i, start : start + len(part)] = part
            start += len(part)
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
    """Whether per-row gains on validation rows are clearly above zero.

    On small or noisy validation sets the best epoch's score is the best of
    many noisy ones; a paired test against the starting weights keeps it
    only when its gain is ``ACCEPT_STANDARD_ERRORS`` standard errors clear.
    """
    if len(gain) < 2:
        return False
    standard_error = float(np.std(gain, ddof=1)) / math.sqrt(len(gain))
    return float(np.mean(gain)) > ACCEPT_STANDARD_ERRORS * standard_error
