"""Missing entries: their markers, the scaled units of the fill, and the network's fill."""

import math
import sys
from numbers import Real

import numpy as np
import scipy.sparse as sp
import torch

from skae._impute._copies import NETWORK_DTYPE
from skae._nn._batches import inference_passes


def is_nan(value):
    """Whether ``value`` marks missing entries as NaN does: NaN, or pandas' NA."""
    return (isinstance(value, Real) and math.isnan(value)) or is_pandas_na(value)


def is_pandas_na(value):
    pandas = sys.modules.get("pandas")
    return pandas is not None and value is pandas.NA


def pandas_na_as_nan(X):
    """X with pandas' NA entries as NaN, for ``missing_values=pd.NA``.

    Only what may hold NA is converted: a pandas DataFrame's nullable and
    object columns (the frame, its names and its other columns' dtypes
    kept), and lists or object arrays. Numeric and boolean arrays, sparse
    matrices and other dataframes (polars' nulls are its own) are returned
    as they are, for ``validate_data`` to check.
    """
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(X, pandas.DataFrame):
        columns = [
            i
            for i, dtype in enumerate(X.dtypes)
            if not (isinstance(dtype, np.dtype) and dtype.kind in "biuf")
        ]
        if columns:
            X = X.copy()
            for i in columns:
                column = X.iloc[:, i]
                X.isetitem(i, column.astype(object).where(column.notna(), np.nan))
        return X
    if (
        sp.issparse(X)
        or hasattr(X, "columns")
        or (hasattr(X, "dtype") and getattr(X.dtype, "kind", "O") in "biuf")
    ):
        return X
    X = np.asarray(X, dtype=object)
    return np.where(np.frompyfunc(is_pandas_na, 1, 1)(X).astype(bool), np.nan, X)


def observed_entries(X, missing_values):
    """Whether each entry of X is observed, not ``missing_values``."""
    if is_nan(missing_values):
        return ~np.isnan(X)
    return X != missing_values


def scaled(X, observed, location, scale, dtype):
    """X in the scaled units of the linear model, zeros at missing entries."""
    Z = np.where(observed, X, 0.0).astype(dtype, copy=False)
    Z -= location.astype(dtype)
    Z /= scale.astype(dtype)
    return np.where(observed, Z, 0.0).astype(dtype, copy=False)


@torch.no_grad()
def restore(module, filled):
    """The network's restoration of linear fills, in their dtype, a pass at a time."""
    restored = [
        module.activate(module(rows)).numpy()
        for rows in inference_passes(module, filled.astype(NETWORK_DTYPE))
    ]
    return np.concatenate(restored).astype(filled.dtype, copy=False)
