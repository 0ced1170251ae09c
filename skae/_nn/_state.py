"""Checks of a fitted network's state read from a file, before anything is built from it.

Each names the attribute it refuses in a ValueError. The estimators'
``_check_fitted_state`` use them for their own attributes too.
"""

import math
import re

import numpy as np
import torch

from skae._nn._contract import KINDS, OUTPUT_ACTIVATIONS, is_count


def _check_spec(spec):
    """Check a network description read from a file, through its kind."""
    if not isinstance(spec, dict):
        raise ValueError("The file's network description is not a dictionary.")
    if spec.get("kind") not in KINDS:
        raise ValueError(f"The file's network has an invalid kind: {spec.get('kind')!r}.")
    try:
        KINDS[spec["kind"]].check_spec(spec)
    except ValueError as error:
        raise ValueError(f"The file does not describe a network skae builds: {error}") from None


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_numbers(value):
    return isinstance(value, list) and all(_is_number(v) for v in value)


# What each fitted attribute of the base may hold in a file. An estimator's
# own attributes can only be what the reader decodes: plain JSON values and
# arrays of the dtypes above.
_ATTRIBUTE_CHECKS = {
    "n_features_in_": lambda v: is_count(v, 1),
    "feature_names_in_": lambda v: isinstance(v, np.ndarray) and v.dtype == object,
    "n_components_": lambda v: is_count(v, 1),
    "coefs_": lambda v: isinstance(v, list),
    "intercepts_": lambda v: isinstance(v, list),
    "shift_": lambda v: isinstance(v, np.ndarray),
    "scale_": lambda v: _is_number(v) and math.isfinite(v) and v > 0,
    "output_activation_": lambda v: v in OUTPUT_ACTIVATIONS,
    "init_": lambda v: v in ("pca", "random"),
    "ordered_codes_": lambda v: isinstance(v, bool),
    "batch_size_": lambda v: is_count(v, 1),
    "max_iter_": lambda v: is_count(v, 1),
    "device_": lambda v: isinstance(v, str) and _DEVICE.fullmatch(v) is not None,
    "precision_": lambda v: v in ("float32", "float64", "bfloat16"),
    "loss_curve_": _is_numbers,
    "best_loss_": lambda v: v is None or _is_number(v),
    "validation_scores_": lambda v: v is None or _is_numbers(v),
    "best_validation_score_": lambda v: v is None or _is_number(v),
    "n_iter_": lambda v: is_count(v, 0),
    "t_": lambda v: is_count(v, 0),
    "_network_spec": lambda v: isinstance(v, dict),
    "_optimizer_state": lambda v: v is None or isinstance(v, dict),
    "_generator_state": lambda v: isinstance(v, np.ndarray) and v.dtype == np.uint8,
}
_DEVICE = re.compile(r"cpu|mps|cuda(:\d+)?")


def check_network_state(attributes):
    """Check that the fitted attributes read from a file describe one network.

    The weights' shapes are compared with the description before the network
    is built, so that a forged description cannot make it allocate more
    than the file holds.
    """
    required = ("_network_spec", "coefs_", "intercepts_", "shift_", "scale_", "n_features_in_")
    missing = [name for name in required if name not in attributes]
    if missing:
        raise ValueError(f"The file's fitted state lacks {missing}.")
    for name, value in attributes.items():
        check = _ATTRIBUTE_CHECKS.get(name)
        if check is not None and not check(value):
            raise ValueError(f"The file's {name}={_short(value)} is not one skae writes.")
    if attributes.get("n_iter_", 0) != len(attributes.get("loss_curve_", [])):
        raise ValueError("The file's n_iter_ does not match its loss_curve_.")
    spec = attributes["_network_spec"]
    _check_spec(spec)
    coefs, intercepts = attributes["coefs_"], attributes["intercepts_"]
    arrays = [*coefs, *intercepts, attributes["shift_"]]
    if not all(isinstance(a, np.ndarray) and a.dtype.name == spec["dtype"] for a in arrays):
        raise ValueError(f"The file's network weights are not {spec['dtype']} arrays.")
    if not all(np.isfinite(a).all() for a in arrays) or not np.isfinite(attributes["scale_"]):
        raise ValueError("The file's network has non-finite weights.")
    coef_shapes, intercept_shapes = KINDS[spec["kind"]].array_shapes(spec)
    if (
        [a.shape for a in coefs] != [tuple(shape) for shape in coef_shapes]
        or [a.shape for a in intercepts] != [tuple(shape) for shape in intercept_shapes]
        or attributes["shift_"].shape != (spec["n_features"],)
    ):
        raise ValueError("The file's network weights do not match its description.")
    _check_training_state(attributes, sum(a.size for a in arrays[:-1]))
    for name, value in (
        ("n_features_in_", spec["n_features"]),
        ("n_components_", spec["encoding_dim"]),
    ):
        if attributes.get(name, value) != value:
            raise ValueError(
                f"The file's {name}={attributes.get(name)!r} does not match its network's {value}."
            )
    for name in ("explained_variance_ratio_", "_code_fill"):
        value = attributes.get(name)
        if value is not None and not (
            isinstance(value, np.ndarray)
            and value.dtype == np.float64
            and value.shape == (spec["encoding_dim"],)
            and bool(np.isfinite(value).all())
        ):
            raise ValueError(
                f"The file's {name}={_short(value)} is not one skae writes: None or a "
                f"finite float64 array of shape ({spec['encoding_dim']},)."
            )
    names = attributes.get("feature_names_in_")
    if names is not None and len(names) != spec["n_features"]:
        raise ValueError(
            f"The file has {len(names)} feature names for {spec['n_features']} features."
        )


def _check_training_state(attributes, n_parameters):
    """Check the optimizer's and the random stream's state, which training resumes."""
    state = attributes.get("_optimizer_state")
    if state is not None and not (
        isinstance(state, dict)
        and set(state) == {"exp_avg", "exp_avg_sq", "step"}
        and all(
            isinstance(state[key], np.ndarray) and state[key].shape == (n_parameters,)
            for key in ("exp_avg", "exp_avg_sq")
        )
        and isinstance(state["step"], (int, float))
    ):
        raise ValueError("The file's optimizer state does not match its network.")
    generator_state = attributes.get("_generator_state")
    if generator_state is not None:
        try:
            torch.Generator().set_state(torch.from_numpy(generator_state))
        except (TypeError, RuntimeError) as e:
            raise ValueError(f"The file's random generator state is invalid: {e}") from e


def require_attributes(attributes, names):
    """Raise a ValueError naming the attributes of ``names`` missing from a file."""
    missing = [name for name in names if name not in attributes]
    if missing:
        raise ValueError(f"The file's fitted state lacks {missing}.")


def fitted_value(attributes, name, valid, description):
    """``attributes[name]`` read from a file, or a ValueError saying what it should be."""
    value = attributes[name]
    if not valid(value):
        raise ValueError(
            f"The file's {name}={_short(value)} is not one skae writes: {description}."
        )
    return value


def fitted_array(attributes, name, shape, *, dtypes=("float32", "float64")):
    """The finite array ``attributes[name]`` read from a file, or a ValueError naming it.

    ``shape`` holds the length of each axis, None where any length will do.
    """

    def valid(value):
        return (
            isinstance(value, np.ndarray)
            and value.dtype.name in dtypes
            and value.ndim == len(shape)
            and all(n in (None, m) for n, m in zip(shape, value.shape, strict=True))
            and bool(np.isfinite(value).all())
        )

    described = "x".join("n" if n is None else str(n) for n in shape)
    return fitted_value(
        attributes, name, valid, f"a finite {' or '.join(dtypes)} array of shape ({described})"
    )


def is_finite_number(value):
    return _is_number(value) and math.isfinite(value)


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
