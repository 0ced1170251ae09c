"""Pieces of ONNX graphs that network kinds share.

A kind writes the nodes of its ``encode`` and ``decode`` through a graph
writer (:class:`skae.onnx` passes one) with the methods ``node``,
``constant``, ``linear``, ``activation`` and ``output_activation``; these
functions fold the normalisation into a kind's first and last layers and
chain layers. Weights are folded in float64; the writer stores them in
the graph's dtype. Nothing here imports ONNX.
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
