"""The "auto" choices and checks that the fit path makes from parameters and data.

Among them PCA's solution, where a network's training starts:
:func:`principal_axes` is handed to :func:`skae._nn._contract.start_network`,
so that the networks' code needs no scikit-learn.
"""

import functools
import os
import re
import sys
import warnings
from numbers import Integral

import numpy as np
import scipy.sparse as sp
import sklearn
import torch
from sklearn.decomposition import PCA
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import InvalidParameterError

from skae._nn._start import centred_gram, leading_eigenvectors, resolves

_DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# Validation rows held out at least, where the data have four times as many:
# the judging half of 30 rows was too small to accept clear gains (diabetes
# at 8 dimensions with (128,): 0.80 x PCA with 30 rows, 0.55 x with 100).
MIN_VALIDATION_ROWS = 100


# The packages whose frames a warning of the fit path looks past.
_LIBRARY_DIRS = tuple(
    os.path.dirname(module.__file__) + os.sep for module in (sys.modules[__package__], sklearn)
)


def caller_stacklevel():
    """The ``stacklevel`` of a warning that points at the first frame outside skae and sklearn.

    For the function that calls :func:`warnings.warn`: the fit paths of
    the estimators differ in depth, and scikit-learn's wrappers (``fit``'s
    context, ``fit_transform``, a pipeline) add frames of their own.
    """
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
        frame, level = frame.f_back, level + 1
    return level


def resolve_device(device, owner):
    """Turn the ``device`` parameter into an available ``torch.device``."""
    if not isinstance(device, str) or not _DEVICE_PATTERN.fullmatch(device):
        raise InvalidParameterError(
            f"The 'device' parameter of {owner} must be 'auto', 'cpu', 'mps', 'cuda' "
            f"or 'cuda:<index>'. Got {device!r} instead."
        )
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available; "
                "use device='cpu' or device='auto'."
            )
        if (resolved.index or 0) >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are available."
            )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device={device!r} was requested but MPS is not available; "
            "use device='cpu' or device='auto'."
        )
    return resolved


def in_unit_interval(X):
    """Whether every value of X (sparse or dense) lies in [0, 1]."""
    if X.shape[0] == 0:
        return True
    return X.min() >= 0 and X.max() <= 1


def make_generator(random_state):
    """A CPU torch generator seeded from ``random_state``.

    With ``random_state=None`` the seed comes from the operating system, so
    that neither numpy's nor torch's global random state is consumed.
    """
    generator = torch.Generator()
    if random_state is None:
        generator.seed()
    else:
        rng = check_random_state(random_state)
        generator.manual_seed(int(rng.randint(np.iinfo(np.int32).max)))
    return generator


def hidden_layer_sizes(value):
    """``hidden_layer_sizes`` as a tuple of ints, or a ValueError."""
    hidden = list(value)
    if not all(
        isinstance(width, Integral) and not isinstance(width, bool) and width >= 1
        for width in hidden
    ):
        raise ValueError(
            f"hidden_layer_sizes must be a sequence of positive integers, got {value!r}."
        )
    return tuple(int(width) for width in hidden)


def image_shape(value, n_features):
    """``image_shape`` as (channels, height, width), None for rows, or a ValueError.

    An (height, width) shape is one channel; the product of the shape must
    be ``n_features``.
    """
    if value is None:
        return None
    shape = list(value)
    if len(shape) not in (2, 3) or not all(
        isinstance(size, Integral) and not isinstance(size, bool) and size >= 1 for size in shape
    ):
        raise ValueError(
            "image_shape must be (height, width) or (channels, height, width), positive "
            f"integers, got {value!r}."
        )
    shape = tuple(int(size) for size in shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if shape[0] * shape[1] * shape[2] != n_features:
        raise ValueError(
            f"image_shape={value!r} describes images of {shape[0] * shape[1] * shape[2]} "
            f"values, but X has {n_features} features. Each row of X is one image, "
            "raveled as (channels, height, width)."
        )
    return shape


def resolve_output_activation(output_activation, loss, in_unit_interval):
    """The output activation to use, checked with the loss against the data's range."""
    requested = output_activation
    if output_activation == "auto":
        if loss == "bce" and in_unit_interval:
            output_activation = "sigmoid"
        else:
            output_activation = "clip" if in_unit_interval else "identity"
    if output_activation in ("sigmoid", "clip") and not in_unit_interval:
        raise ValueError(
            f"output_activation={output_activation!r} produces values in [0, 1], "
            "but the training data has values outside [0, 1]. Scale the data to "
            "[0, 1] (e.g. with MinMaxScaler) or use output_activation='identity'."
        )
    if loss == "bce":
        if not in_unit_interval:
            raise ValueError(
                "loss='bce' requires training data in [0, 1], but the data has "
                "values outside [0, 1]. Scale the data to [0, 1] (e.g. with "
                "MinMaxScaler) or use loss='mse'."
            )
        if output_activation != "sigmoid":
            raise ValueError(
                "loss='bce' requires output_activation='sigmoid' (or 'auto'), "
                f"got output_activation={requested!r}."
            )
    return output_activation


def resolve_init(init, hidden_layer_sizes, code_activation):
    """The initialisation to use: "auto" is "pca" for a linear code.

    With hidden layers, a PCA start makes them a correction beside the
    linear path, which needs a linear code.
    """
    linear_code = code_activation == "identity"
    if init == "auto":
        init = "pca" if linear_code else "random"
    if init == "pca" and len(hidden_layer_sizes) > 0 and not linear_code:
        raise ValueError(
            "init='pca' with hidden layers needs code_activation='identity'; got "
            f"code_activation={code_activation!r}. Use init='random' for the stacked "
            "network of the tutorials."
        )
    return init


def check_noise(noise, noise_level):
    """Check that a masking rate is a fraction.

    A parameter error, as those of ``_parameter_constraints`` are, though it
    takes two parameters to see.
    """
    if noise == "masking" and not 0 <= noise_level < 1:
        raise InvalidParameterError(
            f"noise_level={noise_level!r} is the fraction of inputs that noise='masking' "
            "sets to zero, and must lie in [0, 1)."
        )


# Networks with fewer parameters than this train in float32 under
# precision="auto": their products are too small for bfloat16 to gain.
BFLOAT16_MIN_PARAMETERS = 2**20


@functools.cache
def cpu_has_bfloat16():
    """Whether this CPU has a matrix engine for bfloat16 (AMX).

    AVX512-BF16 alone is not enough: on a Xeon that has it but no AMX,
    torch's bfloat16 products ran at 0.6-0.75 times float32's speed
    (256 x 784 x 1000: 116 against 175 GFLOP/s on two threads), and a
    784-256-32 network's epoch took 1.4 times longer.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split(":", 1)[1].split()
    except OSError:
        pass
    return False


def resolve_precision(precision, device, module):
    """The precision of the matrix products: "bfloat16" or the network's dtype.

    "auto" is "bfloat16" for a float32 network of at least
    ``BFLOAT16_MIN_PARAMETERS`` parameters on a CPU with AMX or a CUDA
    device that supports bfloat16; otherwise the network's own dtype.
    """
    own = str(module.dtype).removeprefix("torch.")
    if precision == "bfloat16":
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"precision='bfloat16' is not supported on {device.type}.")
        if module.dtype != torch.float32:
            raise ValueError(
                f"precision='bfloat16' trains float32 data, got {own}: convert X to "
                "float32, or use precision='auto'."
            )
        return "bfloat16"
    if precision == "auto" and module.dtype == torch.float32:
        large = sum(p.numel() for p in module.parameters()) >= BFLOAT16_MIN_PARAMETERS
        if device.type == "cuda":
            supported = torch.cuda.is_bf16_supported()
        else:
            supported = device.type == "cpu" and cpu_has_bfloat16()
        if large and supported:
            return "bfloat16"
    return own


def resolve_batch_size(batch_size, n_samples, incremental):
    """Rows per mini-batch.

    "auto" is ``min(200, max(32, ceil(n_samples / 10)))`` for a fit, so that
    small data get about ten mini-batches an epoch of at least 32 rows, and
    ``min(200, n_samples)`` for ``partial_fit``, whose chunks need not be
    small data; never more than ``n_samples``.
    """
    if batch_size == "auto":
        batch_size = 200 if incremental else min(200, max(32, -(-n_samples // 10)))
    return int(min(batch_size, n_samples))


def resolve_early_stopping(early_stopping, residual, validation_fraction, n_samples):
    """Whether to hold out a validation split: "auto" does for a network with
    hidden layers beside its linear path, when the data leave rows for both parts."""
    if early_stopping != "auto":
        return early_stopping
    n_val = validation_rows(validation_fraction, n_samples)
    return residual and 2 <= n_val <= n_samples - 2


def validation_rows(validation_fraction, n_samples):
    """Rows held out for validation: ``validation_fraction`` of them, and at least
    ``MIN_VALIDATION_ROWS`` (a quarter of the rows on small data), so that
    the rows that score the epochs and those whose paired test accepts the
    best have rows enough."""
    return max(
        int(round(validation_fraction * n_samples)), min(MIN_VALIDATION_ROWS, n_samples // 4)
    )


def check_range(X, output_activation, loss):
    """Check that data for a network built for [0, 1] lies in [0, 1]."""
    if (output_activation != "identity" or loss == "bce") and not in_unit_interval(X):
        raise ValueError(
            f"The network was built for data in [0, 1] (output_activation="
            f"{output_activation!r}, loss={loss!r}), but X has values outside [0, 1]."
        )


def check_architecture(spec, current):
    """Check that parameters still describe the fitted network ``spec``.

    Training continues (``warm_start``, ``partial_fit``) from the fitted
    network; parameters changed since would be silently ignored.
    """
    for name, value in current.items():
        if spec[name] != value:
            raise ValueError(
                f"{name}={value!r} differs from the fitted network's {spec[name]!r}; "
                "training cannot continue from it. Set warm_start=False and call fit "
                f"to train a new network, or set {name}={spec[name]!r}."
            )


# Where training starts: PCA's solution.


def _is_constant(X):
    """Whether every row of a sparse X is the same."""
    if X.nnz == 0:
        return True
    return np.array_equal(X.max(axis=0).toarray(), X.min(axis=0).toarray())


def principal_axes(X, n_components, seed):
    """Mean and leading principal axes of X, as PCA computes them.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)

    n_components : int
        Axes wanted; fewer come back when X has fewer dimensions.

    seed : int
        Seeds the randomised and ARPACK solvers, which PCA picks for wide
        data, so that no global random state is read.

    Returns
    -------
    mean : ndarray of shape (n_features,)

    components : ndarray of shape (n, n_features), n <= n_components
    """
    n_samples, n_features = X.shape
    solver = "auto"
    if not sp.issparse(X) and n_features <= 2000 and n_samples >= 10 * n_features:
        mean, components, variances = leading_eigenvectors(X, min(n_components, n_features))
        if resolves(variances, X.dtype):
            return mean, components
        # Columns in very different units: the singular value decomposition.
        solver = "full"
    elif sp.issparse(X):
        solver = "covariance_eigh" if n_features <= 2000 else "arpack"
    limit = min(n_samples, n_features) - (solver == "arpack")
    n_components = min(n_components, limit)
    if n_samples < 2 or n_components < 1 or (solver == "arpack" and _is_constant(X)):
        mean = np.asarray(X.mean(axis=0)).ravel()
        return mean, np.zeros((0, n_features), dtype=X.dtype)
    pca = PCA(n_components, svd_solver=solver, random_state=np.random.RandomState(seed))
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # Constant data makes the explained variance ratios 0 / 0, which
        # does not matter here.
        warnings.simplefilter("ignore", RuntimeWarning)
        pca.fit(X)
    return pca.mean_, pca.components_


def components_for_fraction(X, fraction):
    """PCA's number of components explaining ``fraction`` of X's variance.

    As ``PCA(n_components=fraction)`` chooses it: the fewest leading
    principal components whose explained variance ratios sum to at least
    ``fraction``, at most ``min(n_samples, n_features)``. Returns the
    count, and whether that bound cut it short of the fraction.

    The variances are the eigenvalues of the smaller of the centred data's
    two Gram matrices, ``min(n_samples, n_features)`` square, which is all
    the memory they take beside X: wide or sparse X is never made dense.
    """
    n_samples, n_features = X.shape
    limit = max(min(n_samples, n_features), 1)
    variances = np.linalg.eigvalsh(centred_gram(X))[::-1].clip(min=0)
    total = variances.sum()
    if not total > 0:
        return 1, False
    cumulative = np.cumsum(variances[:limit]) / total
    count = int(np.searchsorted(cumulative, fraction, side="right")) + 1
    if count > limit:
        return limit, True
    return count, False


def orders_codes(ordered_codes, *, linear, noise, output_activation, fraction):
    """Whether "auto" (or the value given) trains ordered codes.

    "auto" orders the codes where it costs nothing, the linear autoencoder
    with a linear output trained on clean inputs (PCA's solution, where it
    starts, is ordered and stays so), and where the code's width is a share
    of the variance, which needs them. With a bounded output ordering costs
    the whole code 10 to 50 % of its error, and with hidden layers more.
    """
    if ordered_codes != "auto":
        return bool(ordered_codes)
    return fraction or (linear and noise is None and output_activation == "identity")
