"""Pieces of ONNX graphs that network kinds share.

A kind writes the nodes of its ``encode`` and ``decode`` through a graph
writer (:class:`skae.onnx` passes one) with the methods ``node``,
``constant``, ``cast``, ``linear``, ``activation`` and
``output_activation``; these functions fold the normalisation into a kind's
first and last layers and chain layers, and ``ACTIVATIONS`` and
``OUTPUT_ACTIVATIONS`` write each activation's nodes. Weights are folded
in float64; the writer stores them in the graph's dtype. Nothing here
imports ONNX.
"""

import numpy as np


def fold_normalization(coef, intercept, arrays):
    """A first layer's weights and bias applied to data rather than normalised data."""
    coef = np.asarray(coef, dtype=np.float64) / arrays["scale_"]
    return coef, np.asarray(intercept, dtype=np.float64) - arrays["shift_"] @ coef


def fold_unnormalization(coef, intercept, arrays, *, shift=True):
    """A last layer's weights and bias giving the data's units, for a linear output."""
    coef = np.asarray(coef, dtype=np.float64) * arrays["scale_"]
    intercept = np.asarray(intercept, dtype=np.float64) * arrays["scale_"]
    return coef, intercept + arrays["shift_"] if shift else intercept


def normalize(graph, x, arrays):
    """Data mapped to the normalised space the layers work in."""
    if np.any(arrays["shift_"] != 0):
        x = graph.node("Sub", x, graph.constant(arrays["shift_"]))
    if arrays["scale_"] != 1.0:
        x = graph.node("Mul", x, graph.constant(1.0 / arrays["scale_"]))
    return x


def unnormalize(graph, logits, arrays, spec):
    """The output activation, then the normalisation undone."""
    output = graph.output_activation(logits, spec["output_activation"])
    if arrays["scale_"] != 1.0:
        output = graph.node("Mul", output, graph.constant(arrays["scale_"]))
    if np.any(arrays["shift_"] != 0):
        output = graph.node("Add", output, graph.constant(arrays["shift_"]))
    return output


def stack(graph, x, layers, activations):
    """Linear layers given as (coef, intercept) pairs, each followed by its activation."""
    for (coef, intercept), activation in zip(layers, activations, strict=True):
        x = graph.activation(graph.linear(x, coef, intercept), activation)
    return x


def branch(graph, x, layers, activation):
    """A perceptron, without an activation after its last layer."""
    return stack(graph, x, layers, [activation] * (len(layers) - 1) + ["identity"])


def _elu(graph, x):
    purpose = "the 'elu' activation"
    if not graph.double:
        return graph.node("Elu", x, alpha=1.0, purpose=purpose)
    # onnxruntime has no float64 Elu: relu(x) - relu(1 - exp(x)) is exactly
    # x for x > 0 and exp(x) - 1 otherwise.
    exp = graph.node("Exp", x, purpose=purpose)
    negative = graph.node(
        "Relu", graph.node("Sub", graph.constant(1.0), exp, purpose=purpose), purpose=purpose
    )
    return graph.node("Sub", graph.node("Relu", x, purpose=purpose), negative, purpose=purpose)


def _gelu(graph, x):
    """The exact GELU, ``x * (1 + erf(x / sqrt(2))) / 2``, as torch's ``nn.GELU()``."""
    purpose = "the 'gelu' activation"
    if not graph.double and graph.has("Gelu"):
        return graph.node("Gelu", x, purpose=purpose)
    scaled = graph.node("Mul", x, graph.constant(np.sqrt(0.5)), purpose=purpose)
    if graph.double:
        # onnxruntime has no float64 Erf.
        erf = graph.node("Erf", graph.cast(scaled, np.float32), purpose=purpose)
        erf = graph.cast(erf, np.float64)
    else:
        erf = graph.node("Erf", scaled, purpose=purpose)
    half = graph.node("Mul", x, graph.constant(0.5), purpose=purpose)
    return graph.node("Add", half, graph.node("Mul", half, erf, purpose=purpose), purpose=purpose)


ACTIVATIONS = {
    "identity": lambda graph, x: x,
    "relu": lambda graph, x: graph.node("Relu", x),
    "tanh": lambda graph, x: graph.node("Tanh", x),
    "logistic": lambda graph, x: graph.node("Sigmoid", x),
    "elu": _elu,
    "gelu": _gelu,
}

OUTPUT_ACTIVATIONS = {
    "identity": lambda graph, x: x,
    "sigmoid": lambda graph, x: graph.node("Sigmoid", x),
    "clip": lambda graph, x: graph.node(
        "Clip",
        x,
        graph.constant(0.0),
        graph.constant(1.0),
        purpose="the 'clip' output activation",
    ),
}
