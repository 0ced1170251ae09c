"""The registry of network kinds: which kind to build, and a new network started.

A kind registers itself with :func:`register_kind`; :func:`choose_kind`
picks the latest registered that accepts a request, :func:`start_network`
builds it for training data and starts it at PCA's solution or at random,
and :func:`build_network` rebuilds a fitted one from its ``spec``.
"""

from numbers import Integral

import numpy as np
import torch

from skae._nn._start import location_scale, sample_rows

# The registered kinds by name, in the order of registration.
KINDS = {}


def register_kind(cls):
    """Register a network kind under ``cls.kind``; usable as a class decorator."""
    KINDS[cls.kind] = cls
    return cls


def choose_kind(request):
    """The kind to build for ``request``: the latest registered that accepts it."""
    for cls in reversed(KINDS.values()):
        if cls.accepts(request):
            return cls
    raise ValueError(f"No network kind builds {request}.")


def start_network(X, request, *, generator, random_state, principal_axes):
    """A new network for X, on CPU, started at PCA's solution or at random.

    The kind is the one :func:`choose_kind` picks for ``request``. A network
    with a linear output works on X centred and divided by one global scale
    (:func:`~skae._nn._start.location_scale`). PCA's solution is
    ``principal_axes(X, n_components, seed)``, its mean and leading axes
    (:func:`skae._choices.principal_axes`); the randomised solvers PCA may
    use are seeded from ``random_state``, or from ``generator`` when it is
    not an int, never from a global random state.
    """
    dtype = "float32" if X.dtype == np.float32 else "float64"
    request = {**request, "n_features": X.shape[1], "dtype": dtype}
    shift, scale = location_scale(X) if request["output_activation"] == "identity" else (None, 1.0)
    if not 1e-150 < scale < 1e150:
        raise ValueError(
            f"X's values deviate from their mean by about {scale:.1e}: squared "
            "reconstruction errors of that size cannot be represented in float64. "
            "Rescale X, e.g. with StandardScaler."
        )
    module = choose_kind(request).from_spec(request).set_normalization(shift, scale)
    if request["init"] != "pca":
        module.init_random(generator)
        return module
    # Huge or tiny values would overflow or underflow the covariance; such
    # data is worth one scaled copy.
    pca_scale = 1.0 if 1e-8 < scale < 1e8 else scale
    X_pca = X if pca_scale == 1.0 else X / pca_scale
    if isinstance(random_state, Integral):
        seed = random_state
    else:
        seed = generator.initial_seed() % 2**32
    mean, components = principal_axes(X_pca, request["encoding_dim"], seed)
    if shift is not None:
        mean = (mean * pca_scale - shift) / scale
    sample = sample_rows(X, generator) if module.wants_sample else None
    module.start_at(
        torch.as_tensor(components, dtype=module.dtype),
        torch.as_tensor(mean, dtype=module.dtype),
        generator,
        sample=sample,
    )
    return module


def build_network(spec):
    """A network, its weights not yet set, from a kind's ``spec``."""
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        kind = spec.get("kind") if isinstance(spec, dict) else spec
        raise ValueError(f"The network kind {kind!r} is not one of {sorted(KINDS)}.")
    cls = KINDS[spec["kind"]]
    cls.check_spec(spec)
    return cls.from_spec(spec)
