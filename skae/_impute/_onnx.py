"""The ONNX graph of the imputer's ``transform``, written through :mod:`skae.onnx`'s writer.

The linear fill runs in float64 whatever the input's dtype. Each row's
system ``(I - P_MM) y_M = (y_O @ P)_M`` (see
:func:`~skae._impute._soft_impute.linear_fill`) is solved by conjugate
gradients in a ``Loop``, all rows at once, with the recurrences of
``linear_fill``'s own: to a relative residual of 1e-13, which is the exact
solution ``linear_fill`` computes for up to ``EXACT_FILL_FEATURES``
features (the system has at most rank + 1 distinct eigenvalues, so the
iterations are few), and to ``CG_TOL`` with its batch-wide stop beyond, as
``linear_fill`` does there. The network then runs on the filled rows in the
graph's dtype (float32, as ``transform`` runs it, for float32 input).
"""

import numpy as np
from onnx import TensorProto, helper

from skae._impute._soft_impute import CG_MAX_ITER, CG_TOL, EXACT_FILL_FEATURES

# Relative residual at which the graph's conjugate gradients stand for an exact solve.
EXACT_TOL = 1e-13


def _conjugate_gradients(graph, Y, missing, model):
    """The solution y of each row's system, zeros outside its missing entries.

    ``Y`` holds the rows minus the model's mean, zeros at missing entries,
    and ``missing`` is 1.0 at missing entries, 0.0 elsewhere, both float64.
    """
    _, components, weights = model
    n_features = components.shape[0]
    if n_features <= EXACT_FILL_FEATURES:
        tol, max_iter = EXACT_TOL, max(CG_MAX_ITER, 4 * n_features)
    else:
        tol, max_iter = CG_TOL, CG_MAX_ITER
    components = np.asarray(components, dtype=np.float64)
    scaled = graph.constant(components * weights, "scaled_components", dtype=np.float64)
    components_t = graph.constant(components.T, "components_t", dtype=np.float64)
    ones = graph.constant(np.ones((n_features, 1)), "ones", dtype=np.float64)
    tiny = graph.constant(1e-30, "tiny", dtype=np.float64)
    squared_tol = graph.constant(tol**2, "squared_tol", dtype=np.float64)

    projection = graph.node("MatMul", graph.node("MatMul", Y, scaled), components_t)
    residual = graph.node("Mul", missing, projection)
    target = graph.node(
        "Max", graph.node("MatMul", graph.node("Mul", residual, residual), ones), tiny
    )
    # The loop's body: one iteration of linear_fill's conjugate gradients,
    # carrying (y, residual, direction, squares); it refers to the
    # constants above by name.
    name = graph.scope.get_unique_variable_name
    y, r, p, s = name("y"), name("residual"), name("direction"), name("squares")
    nodes = []

    def body_node(op_type, *inputs, **attrs):
        output = name(f"cg_{op_type.lower()}")
        nodes.append(helper.make_node(op_type, list(inputs), [output], name=output, **attrs))
        return output

    projection = body_node("MatMul", body_node("MatMul", p, scaled), components_t)
    product = body_node("Sub", p, body_node("Mul", missing, projection))
    curvature = body_node("Max", body_node("MatMul", body_node("Mul", p, product), ones), tiny)
    step = body_node("Div", s, curvature)
    new_y = body_node("Add", y, body_node("Mul", step, p))
    new_r = body_node("Sub", r, body_node("Mul", step, product))
    new_s = body_node("MatMul", body_node("Mul", new_r, new_r), ones)
    worst = body_node("ReduceMax", body_node("Div", new_s, target), keepdims=0)
    going_on = body_node("Not", body_node("Less", worst, squared_tol))
    beta = body_node("Div", new_s, body_node("Max", s, tiny))
    new_p = body_node("Add", new_r, body_node("Mul", beta, p))

    def tensor(name, width):
        return helper.make_tensor_value_info(name, TensorProto.DOUBLE, [None, width])

    body = helper.make_graph(
        nodes,
        name("conjugate_gradients"),
        [
            helper.make_tensor_value_info(name("iteration"), TensorProto.INT64, []),
            helper.make_tensor_value_info(name("going_on"), TensorProto.BOOL, []),
            tensor(y, n_features),
            tensor(r, n_features),
            tensor(p, n_features),
            tensor(s, 1),
        ],
        [
            helper.make_tensor_value_info(going_on, TensorProto.BOOL, []),
            tensor(new_y, n_features),
            tensor(new_r, n_features),
            tensor(new_p, n_features),
            tensor(new_s, 1),
        ],
    )
    start = graph.node("Mul", residual, graph.constant(0.0, dtype=np.float64))
    outputs = graph.nodes(
        "Loop",
        graph.constant(max_iter, "max_iter", dtype=np.int64),
        graph.constant(True, "start", dtype=np.bool_),
        start,
        residual,
        residual,
        target,
        n_outputs=4,
        purpose="the linear fill",
        body=body,
    )
    return outputs[0]


def _neighbour_blend(graph, imputer, filled):
    """``filled`` blended with the mean observed values of its nearest training rows.

    As ``TrainingNeighbours.means`` and ``blend`` compute it: the rows are
    found between completed rows in X's units, and each feature's mean is
    over the neighbours that observed it; ``filled`` is float64.
    """
    F = np.float64
    rows = np.asarray(imputer._neighbor_rows, dtype=F)
    observed = imputer._neighbor_observed
    n_neighbors, weight = imputer.n_neighbors_, imputer.neighbor_weight_
    scale = np.asarray(imputer._column_scale, dtype=F)
    n_features = rows.shape[1]
    _, indices = graph.nearest(
        graph.node("Mul", filled, graph.constant(scale, "neighbor_scale", dtype=F)),
        rows * scale,
        n_neighbors,
        name="neighbor_rows",
        purpose="the nearest training rows",
    )
    # The neighbours' values and observed entries, (N, n_neighbors, n_features),
    # summed over the neighbours by a product with a row of ones.
    ones = graph.constant(np.ones((1, n_neighbors)), "neighbor_ones", dtype=F)
    shape = graph.integers([-1, n_features], "neighbor_shape")

    def total(table, name):
        gathered = graph.node("Gather", graph.constant(table, name, dtype=F), indices, axis=0)
        return graph.node("Reshape", graph.node("MatMul", ones, gathered), shape)

    totals = total(np.where(observed, rows, 0.0), "neighbor_values")
    counts = total(observed.astype(F), "neighbor_observed")
    means = graph.node("Div", totals, graph.node("Max", counts, graph.constant(1.0, dtype=F)))
    found = graph.node("Less", graph.constant(0.5, dtype=F), counts)
    blended = graph.node(
        "Add",
        graph.node("Mul", filled, graph.constant(1 - weight, dtype=F)),
        graph.node("Mul", means, graph.constant(weight, dtype=F)),
    )
    return graph.node("Where", found, blended, filled)


def imputer_graph(graph, imputer, network, X):
    """The nodes of ``imputer.transform`` on the graph's input ``X``.

    ``network`` is the imputer's network with an identity normalisation,
    whose encoder and decoder compute ``module(x)`` as ``transform`` calls it.
    """
    F = np.float64
    n_features = imputer.n_features_in_
    if isinstance(imputer.missing_values, float) and np.isnan(imputer.missing_values):
        missing = graph.node("IsNaN", X, purpose="finding missing values")
    else:
        value = graph.constant(imputer.missing_values, "missing_values")
        missing = graph.node("Equal", X, value, purpose="finding missing values")
    observed = graph.node("Not", missing)
    zero = graph.constant(0.0, "zero", dtype=F)
    location = graph.constant(imputer._column_location, "location", dtype=F)
    column_scale = graph.constant(imputer._column_scale, "column_scale", dtype=F)
    Z = graph.node("Where", observed, graph.cast(X, F), zero)
    Z = graph.node("Div", graph.node("Sub", Z, location), column_scale)
    Z = graph.node("Where", observed, Z, zero)
    model = (imputer._fill_mean, imputer._fill_components, imputer._fill_weights)
    mean = graph.constant(imputer._fill_mean, "fill_mean", dtype=F)
    Y = graph.node("Where", observed, graph.node("Sub", Z, mean), zero)
    y = _conjugate_gradients(graph, Y, graph.cast(missing, F), model)
    linear = graph.node("Where", observed, Z, graph.node("Add", y, mean))
    # The network runs in the graph's dtype: float32, as transform runs it, for float32 input.
    rows = graph.cast(linear, graph.dtype)
    restored = network.reconstruct(graph, rows)
    filled = graph.node("Where", observed, Z, graph.cast(restored, F))
    if imputer.neighbor_weight_ > 0:
        filled = graph.node("Where", observed, Z, _neighbour_blend(graph, imputer, filled))
    if imputer._empty_features.size:
        kept = np.ones(n_features, dtype=bool)
        kept[imputer._empty_features] = False
        filled = graph.node("Where", graph.constant(kept, "kept", dtype=np.bool_), filled, zero)
    filled = graph.node("Add", graph.node("Mul", filled, column_scale), location)
    for name, op_type in (("_min_value", "Max"), ("_max_value", "Min")):
        bound = getattr(imputer, name)
        if np.isfinite(bound).any():
            bound = graph.constant(bound, name[1:], dtype=F)
            filled = graph.node(op_type, filled, bound, purpose="the fill's bounds")
    imputed = graph.node("Where", observed, X, graph.cast(filled, graph.dtype))
    if imputer._empty_features.size and not imputer.keep_empty_features:
        kept = np.setdiff1d(np.arange(n_features), imputer._empty_features)
        imputed = graph.node(
            "Gather", imputed, graph.constant(kept, "kept_columns", dtype=np.int64), axis=1
        )
    if imputer.add_indicator:
        columns = graph.constant(imputer._missing_features, "missing_features", dtype=np.int64)
        indicator = graph.node("Gather", missing, columns, axis=1)
        imputed = graph.node("Concat", imputed, graph.cast(indicator, graph.dtype), axis=1)
    return imputed
