"""Rows to tensors, and inference passes bounded by bytes.

Dense arrays become zero-copy tensor views; sparse matrices are densified a
batch of rows at a time, never whole.
"""

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

# Rows per pass when encoding or scoring: at most INFERENCE_ROWS, keeping
# each matrix product large, and few enough that the widest dense activation
# of a pass stays within INFERENCE_BYTES, however wide the data.
INFERENCE_ROWS = 4096
INFERENCE_BYTES = 2**25
# Sparse rows are densified a pass at a time, and each pass's dense copy
# has a few temporaries of its size beside it: passes of this many bytes
# keep the whole well below a third of the dense matrix of wide data.
SPARSE_INFERENCE_BYTES = 2**22


@dataclass(frozen=True)
class MaskedPairs:
    """Training rows whose inputs differ from their targets, scored on some entries.

    A network trained on these learns to map ``inputs`` to ``targets``, with
    the loss over the entries where ``mask`` is True only: to restore
    entries hidden from its inputs, say. Arrays of plain rows stand for
    pairs whose inputs are their targets, scored everywhere.

    Parameters
    ----------
    inputs : ndarray of shape (n_samples, n_features)

    targets : ndarray of the same shape and dtype

    mask : ndarray of bool of the same shape

    remask : callable or None, default=None
        ``remask(inputs, mask)`` draws other hidden entries for the next
        epoch, writing the new inputs and mask into the arrays in place, so
        that a network sees each row hidden anew every epoch rather than
        learning one fixed hiding by heart. None for pairs that stay as they
        are (validation pairs, say).
    """

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    remask: Callable | None = field(default=None, compare=False, repr=False)

    @property
    def shape(self):
        return self.inputs.shape

    @property
    def dtype(self):
        return self.inputs.dtype

    def __getitem__(self, rows):
        """The selected pairs, which stay as they are."""
        return MaskedPairs(self.inputs[rows], self.targets[rows], self.mask[rows])

    @property
    def entries_per_row(self):
        """Mean number of scored entries per row, at least a tiny positive number."""
        return max(float(self.mask.sum()) / max(self.shape[0], 1), 1e-12)

    def new_epoch(self):
        """Hide other entries for the next epoch, where ``remask`` is given."""
        if self.remask is not None:
            self.remask(self.inputs, self.mask)


def entries_per_row(X):
    """Mean number of entries per row the loss covers: all for plain rows."""
    return X.entries_per_row if isinstance(X, MaskedPairs) else X.shape[1]


def as_tensor(X):
    """A zero-copy CPU tensor view of a dense array, read-only arrays included.

    The tensor is only ever read, so the warning torch gives for read-only
    arrays does not apply.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(X)


def take(X, dense, rows):
    """Rows of X as a CPU tensor: a view for a slice of a dense X, else a copy.

    ``dense`` is X as a tensor, or None when X is a sparse matrix, which is
    then densified for these rows only.
    """
    if dense is None:
        return torch.from_numpy(X[rows if isinstance(rows, slice) else rows.numpy()].toarray())
    if isinstance(rows, slice):
        return dense[rows]
    return dense.index_select(0, rows)


def rows_of(X, rows):
    """A copy of the selected rows of a dense array or sparse matrix, of X's kind.

    Dense rows are gathered by torch: numpy asks the kernel for huge pages
    for a large copy, and where the kernel compacts memory to find them,
    first touching a copy of 45,000 MNIST rows took ten times longer.
    """
    if sp.issparse(X):
        return X[rows.numpy()]
    return as_tensor(X).index_select(0, rows).numpy()


def batches(n_samples, batch_size, order=None):
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
    for rows in batches(X.shape[0], batch_size, order):
        yield take(X, dense, rows).to(device=device, dtype=dtype, non_blocking=True)


def inference_rows(width, dtype):
    """Rows per inference pass when the widest dense row has ``width`` values."""
    row_bytes = max(int(width), 1) * np.dtype(dtype).itemsize
    return max(1, min(INFERENCE_ROWS, INFERENCE_BYTES // row_bytes))


def _numpy_dtype(module):
    return np.float32 if module.dtype == torch.float32 else np.float64


def _widest(module, X):
    return max(X.shape[1], module.cost_per_row()[1])


def _pass_rows(module, X):
    """Rows per inference pass of X through ``module``: fewer for sparse X."""
    rows = inference_rows(_widest(module, X), _numpy_dtype(module))
    if sp.issparse(X):
        rows = max(1, rows * SPARSE_INFERENCE_BYTES // INFERENCE_BYTES)
    return rows


def inference_passes(module, X):
    """Dense tensors of X's rows in the module's dtype, a bounded pass at a time."""
    return iter_rows(X, _pass_rows(module, X), device="cpu", dtype=module.dtype)


@torch.no_grad()
def encode(module, X):
    """Codes of X's rows, in X's dtype."""
    codes = [module.encode(batch) for batch in inference_passes(module, X)]
    return torch.cat(codes).numpy().astype(X.dtype, copy=False)


@torch.no_grad()
def decode(module, codes):
    """Reconstructions of dense ``codes``, in their dtype, a bounded pass at a time.

    The output is allocated once; each pass's hidden activations are bounded
    by the widest layer, as when encoding.
    """
    out = np.empty((codes.shape[0], module.n_features), dtype=codes.dtype)
    rows = inference_rows(_widest(module, codes), _numpy_dtype(module))
    for start, batch in zip(
        range(0, codes.shape[0], rows),
        iter_rows(codes, rows, device="cpu", dtype=module.dtype),
        strict=True,
    ):
        out[start : start + batch.shape[0]] = module.decode(batch).numpy()
    return out


def iter_pairs(X, batch_size, *, device, dtype=None):
    """Yield (inputs, targets, mask) of consecutive rows of X.

    For plain rows the targets are the inputs and the mask is None.
    """
    if not isinstance(X, MaskedPairs):
        for batch in iter_rows(X, batch_size, device=device, dtype=dtype):
            yield batch, batch, None
        return
    arrays = zip(
        iter_rows(X.inputs, batch_size, device=device, dtype=dtype),
        iter_rows(X.targets, batch_size, device=device, dtype=dtype),
        iter_rows(X.mask, batch_size, device=device),
        strict=True,
    )
    yield from arrays


def normalized_pairs(module, X, batch_size, *, device):
    """Yield (inputs, targets, mask) of consecutive rows of X, as :func:`iter_pairs`
    does, in ``module``'s normalised space."""
    for inputs, targets, mask in iter_pairs(X, batch_size, device=device, dtype=module.dtype):
        target = module.normalize(targets)
        yield (target if mask is None else module.normalize(inputs)), target, mask


@torch.no_grad()
def reconstruction_error(module, X, *, device="cpu"):
    """Mean squared reconstruction error of each row of X, as a float64 array.

    The error is computed in the module's normalised space, where it cannot
    overflow, and scaled back in float64. For :class:`MaskedPairs` it is the
    error on the masked entries, summed per row and divided by the mean
    number of masked entries per row, so that the mean over rows is the mean
    over masked entries.
    """
    errors = []
    rows = _pass_rows(module, X.targets if isinstance(X, MaskedPairs) else X)
    for inputs, target, mask in normalized_pairs(module, X, rows, device=device):
        squares = (module.activate(module(inputs)) - target).square_()
        if mask is None:
            errors.append(squares.mean(dim=1).double().cpu())
        else:
            errors.append((squares * mask).sum(dim=1).double().cpu() / X.entries_per_row)
    scale = float(module.scale) ** 2
    return torch.cat(errors).numpy() * scale
