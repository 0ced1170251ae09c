"""Property-based tests: random shapes, dtypes, containers, values and parameters.

Every case either fits, then transforms to finite codes of the right shape and
dtype, or raises one of the errors that scikit-learn estimators document for
its input. Run with ``--hypothesis-show-statistics`` to see how many cases ran.
"""

import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from skae import AutoencoderTransformer

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

DENSE_DTYPES = ["float16", "float32", "float64", "int8", "int64", "uint8", "bool", "object"]
SPARSE_DTYPES = ["float32", "float64", "int32", "bool"]
SPARSE_FORMATS = ["csr", "csc", "coo", "bsr", "lil", "dok", "dia"]

UNIT_INTERVAL = r"produces values in \[0, 1\], but the training data has values outside"
BCE = r"loss='bce' requires"
MAGNITUDE = "cannot be represented in float64. Rescale X"


@st.composite
def datasets(draw):
    """A data set: container, dtype, shape, magnitude, and in one case out of
    three something hostile: complex numbers, strings, or non-finite values.
    """
    n_samples = draw(st.integers(1, 25))
    n_features = draw(st.integers(1, 6))
    container = draw(st.sampled_from(["ndarray", "list", "sparse"]))
    hostile = draw(st.sampled_from([None, None, "complex", "strings", "non-finite"]))
    dtypes = SPARSE_DTYPES if container == "sparse" else DENSE_DTYPES
    dtype = draw(st.sampled_from(dtypes))
    if hostile == "complex":
        dtype = draw(st.sampled_from(["complex64", "complex128"]))
    elif hostile == "strings":
        dtype = "float64" if container == "sparse" else "object-str"
    seed = draw(st.integers(0, 2**16))
    rng = np.random.RandomState(seed)
    kind = draw(st.sampled_from(["normal", "unit", "constant", "integers", "sparse"]))
    if kind == "normal":
        X = rng.normal(size=(n_samples, n_features))
    elif kind == "unit":
        X = rng.uniform(size=(n_samples, n_features))
    elif kind == "constant":
        X = np.full((n_samples, n_features), rng.normal())
    elif kind == "integers":
        X = rng.randint(-3, 4, size=(n_samples, n_features)).astype(np.float64)
    else:
        X = rng.normal(size=(n_samples, n_features)) * (rng.uniform(size=(1, n_features)) < 0.3)
    exponent = draw(st.sampled_from([0, 0, 0, -8, 8, -30, 30, -100, 100, -300]))
    X = X * 10.0**exponent
    n_bad = draw(st.integers(1, 2)) if hostile == "non-finite" else 0
    for _ in range(n_bad):
        value = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        X[rng.randint(n_samples), rng.randint(n_features)] = value

    with np.errstate(over="ignore", invalid="ignore"):
        if dtype == "object":
            X = X.astype(object)
        elif dtype == "object-str":
            X = X.astype(str).astype(object)
            if draw(st.booleans()):
                X[rng.randint(n_samples), rng.randint(n_features)] = "pixel"
        elif np.dtype(dtype).kind in "iub":
            X = X[np.isfinite(X).all(axis=1)] if dtype != "bool" else X
            X = np.clip(np.nan_to_num(X), -100, 100).astype(dtype)
        else:
            X = X.astype(dtype)
    if X.shape[0] == 0:
        X = np.zeros((1, n_features), dtype=X.dtype)
    if container == "sparse":
        return getattr(sp, f"{draw(st.sampled_from(SPARSE_FORMATS))}_matrix")(X)
    if container == "list":
        return X.tolist()
    return X


@st.composite
def estimators(draw):
    hidden = draw(st.sampled_from([(), (), (3,), (5, 2)]))
    return AutoencoderTransformer(
        encoding_dim=draw(st.integers(1, 8)),
        hidden_layer_sizes=hidden,
        activation=draw(st.sampled_from(["relu", "tanh", "logistic", "elu", "gelu"])),
        code_activation=draw(st.sampled_from(["identity", "identity", "relu", "tanh"])),
        output_activation=draw(
            st.sampled_from(["auto", "auto", "auto", "identity", "sigmoid", "clip"])
        ),
        loss=draw(st.sampled_from(["mse", "mse", "mse", "bce"])),
        init=draw(st.sampled_from(["auto", "auto", "pca", "random"])),
        batch_size=draw(st.sampled_from(["auto", 1, 3, 64])),
        alpha=draw(st.sampled_from([0.0, 1e-4, 1.0])),
        noise=draw(st.sampled_from([None, None, "gaussian", "masking"])),
        early_stopping=draw(st.booleans()),
        learning_rate=draw(st.sampled_from(["constant", "cosine"])),
        # No epoch improves the loss by tol: training stops after a few epochs,
        # before max_iter, whatever the magnitude of the data.
        max_iter=5,
        tol=1e300,
        n_iter_no_change=1,
        random_state=draw(st.integers(0, 3)),
    )


def _as_array(X):
    """The values of X as scikit-learn's check_array sees them, or None."""
    if sp.issparse(X):
        return X.toarray()
    array = np.asarray(X, dtype=object if isinstance(X, list) else None)
    if array.dtype.kind == "c":
        return None
    try:
        return array.astype(np.float64)
    except ValueError:
        return None


def _expected_errors(estimator, X, *, incremental):
    """Patterns of the errors this input may rightly raise, and whether it must."""
    if isinstance(X, list) and any(isinstance(v, complex) for row in X for v in row):
        # As PCA does, from numpy's conversion of a list.
        return ["must be a string or a real number, not 'complex'"], True
    if getattr(X, "dtype", np.dtype(object)).kind == "c":
        return ["Complex data not supported"], True
    array = _as_array(X)
    if array is None:
        return ["could not convert string to float", "Unable to convert"], True
    if not np.isfinite(array).all():
        # Summing inf and -inf makes scikit-learn's finiteness check warn first.
        patterns = ["Input X contains (NaN|infinity)", "invalid value encountered in reduce"]
        return patterns, True
    allowed, must = [], False
    outside = array.size and (array.min() < 0 or array.max() > 1)
    if outside and estimator.output_activation in ("sigmoid", "clip"):
        allowed.append(UNIT_INTERVAL)
        must = True
    if estimator.loss == "bce" and (
        outside or estimator.output_activation not in ("auto", "sigmoid")
    ):
        allowed.append(BCE)
        must = True
    linear_output = estimator.output_activation == "identity" or (
        estimator.output_activation == "auto" and outside and estimator.loss != "bce"
    )
    values = array.astype(np.float64)
    peak = np.abs(values).max() if values.size else 0
    if linear_output and peak:
        scaled = values / peak
        deviation = peak * np.sqrt(np.mean((scaled - scaled.mean(axis=0)) ** 2))
        if deviation and not 1e-150 < deviation < 1e150:
            allowed.append(MAGNITUDE)
            must = True
    if (
        estimator.init == "pca"
        and estimator.hidden_layer_sizes
        and estimator.code_activation != "identity"
    ):
        allowed.append("init='pca' with hidden layers needs code_activation='identity'")
        must = True
    if estimator.early_stopping and not incremental:
        allowed.append("early_stopping with validation_fraction=.* leaves")
        must = must or round(0.1 * array.shape[0]) < 1
    return allowed, must


def _check_fitted(estimator, X):
    n_samples = X.shape[0] if hasattr(X, "shape") else len(X)
    n_features = X.shape[1] if hasattr(X, "shape") else len(X[0])
    codes = estimator.transform(X)
    input_dtype = getattr(X, "dtype", None)
    expected_dtype = np.float32 if input_dtype == np.float32 else np.float64
    assert codes.shape == (n_samples, estimator.encoding_dim)
    assert codes.dtype == expected_dtype
    assert np.isfinite(codes).all()
    reconstruction = estimator.inverse_transform(codes)
    assert reconstruction.shape == (n_samples, n_features)
    assert reconstruction.dtype == expected_dtype
    assert np.isfinite(reconstruction).all()
    assert np.isfinite(estimator.score(X))


def _fit_or_raise(estimator, X, fit, *, incremental=False):
    allowed, must = _expected_errors(estimator, X, incremental=incremental)
    try:
        with warnings.catch_warnings():
            # The tiny data sets make numpy warn in PCA; the fit must still work.
            warnings.simplefilter("error", ConvergenceWarning)
            fit(X)
    except (ValueError, TypeError, RuntimeWarning) as error:
        matches = [pattern for pattern in allowed if re.search(pattern, str(error))]
        if not matches:
            raise
        event(f"raised: {matches[0]}")
        return
    assert not must, f"fit accepted input it should reject ({allowed})"
    _check_fitted(estimator, X)
    event("fitted and transformed")


@SETTINGS
@given(estimator=estimators(), X=datasets())
def test_fit_on_any_input(estimator, X):
    _fit_or_raise(estimator, X, estimator.fit)


@SETTINGS
@given(estimator=estimators(), X=datasets(), n_calls=st.integers(1, 3))
def test_partial_fit_on_any_input(estimator, X, n_calls):
    def partial_fit(X):
        for _ in range(n_calls):
            estimator.partial_fit(X)

    _fit_or_raise(estimator, X, partial_fit, incremental=True)


@SETTINGS
@given(
    params=st.fixed_dictionaries(
        {},
        optional={
            "encoding_dim": st.one_of(st.integers(-2, 0), st.floats(0.5, 3), st.just("2")),
            "hidden_layer_sizes": st.sampled_from([(0,), (-1,), (4, 0), 3]),
            "activation": st.sampled_from(["softmax", "", None]),
            "batch_size": st.sampled_from([0, -5, 1.5, "big"]),
            "max_iter": st.sampled_from([0, -1, 2.0]),
            "learning_rate_init": st.sampled_from([0.0, -1e-3, np.nan]),
            "alpha": st.sampled_from([-1.0, np.nan]),
            "tol": st.sampled_from([-1.0]),
            "n_iter_no_change": st.sampled_from([0, -np.inf]),
            "validation_fraction": st.sampled_from([0.0, 1.0, 2.0]),
            "noise": st.sampled_from(["salt", 0]),
            "noise_level": st.sampled_from([-0.1]),
            "device": st.sampled_from(["gpu", "cuda:x", 0, ""]),
            "random_state": st.sampled_from(["seed", 1.5]),
        },
    ).filter(bool)
)
def test_invalid_parameters_raise_before_training(params):
    X = np.random.RandomState(0).uniform(size=(20, 4))
    estimator = AutoencoderTransformer(**params)
    with pytest.raises(ValueError, match=r"parameter|must contain positive integers"):
        estimator.fit(X)
    assert not hasattr(estimator, "module_")
