"""The ONNX graph of the convolutional kind: Conv and ConvTranspose nodes.

Written through the graph writer of :mod:`skae.onnx`, from the kind's
named arrays; nothing here imports ONNX.
"""

import numpy as np

from skae._nn import _graph
from skae._nn._conv_layers import (
    KERNEL_SIZE,
    PADDING,
    STRIDE,
    feature_map_sizes,
    n_groups,
    output_padding,
)


def _layers(arrays, spec):
    """The encoder's (linear, branch) layers and the decoder's, as (coef, intercept)."""
    layers = list(zip(arrays["coefs_"], arrays["intercepts_"], strict=True))
    n_layers = len(spec["hidden_layer_sizes"])
    n_encoder = 1 + 2 * n_layers + 1
    encoder, decoder = layers[:n_encoder], layers[n_encoder:]
    return encoder[0], encoder[1:], decoder[0], decoder[1:]


def onnx_encode(graph, arrays, spec, x):
    check_graph_dtype(graph, spec)
    linear, branch, _, _ = _layers(arrays, spec)
    linear = graph.linear(x, *_graph.fold_normalization(*linear, arrays))
    image = image_of(graph, _graph.normalize(graph, x, arrays), spec)
    for i in range(len(spec["hidden_layer_sizes"])):
        (kernel, bias), (scale, offset) = branch[2 * i], branch[2 * i + 1]
        image = convolution(graph, "Conv", image, kernel, bias)
        image = _group_norm(graph, image, scale, offset)
        image = graph.activation(image, spec["activation"])
    flat = graph.node("Flatten", image, axis=1)
    return graph.node("Add", linear, graph.linear(flat, *branch[-1]))


def onnx_decode(graph, arrays, spec, codes):
    check_graph_dtype(graph, spec)
    _, _, linear, branch = _layers(arrays, spec)
    channels, height, width = spec["image_shape"]
    hidden = list(spec["hidden_layer_sizes"])
    sizes = feature_map_sizes(height, width, len(hidden))
    # The branch sees the codes divided by the code scale.
    coef, intercept = branch[0]
    code_scale = np.asarray(spec["code_scale"], dtype=np.float64)
    coef = np.asarray(coef, dtype=np.float64) / code_scale[:, np.newaxis]
    image = graph.activation(graph.linear(codes, coef, intercept), spec["activation"])
    image = graph.node("Reshape", image, graph.integers([-1, hidden[-1], *sizes[-1]]))
    rest = branch[1:]
    for i in range(len(hidden), 0, -1):
        kernel, bias = rest.pop(0)
        padding = list(output_padding(sizes[i - 1]))
        image = convolution(graph, "ConvTranspose", image, kernel, bias, output_padding=padding)
        if i > 1:
            image = _group_norm(graph, image, *rest.pop(0))
            image = graph.activation(image, spec["activation"])
    correction = graph.node("Flatten", image, axis=1)
    linear_output = spec["output_activation"] == "identity"
    if linear_output:
        linear = _graph.fold_unnormalization(*linear, arrays)
        if arrays["scale_"] != 1.0:
            correction = graph.node("Mul", correction, graph.constant(arrays["scale_"]))
    output = graph.node("Add", graph.linear(codes, *linear), correction)
    return output if linear_output else _graph.unnormalize(graph, output, arrays, spec)


def check_graph_dtype(graph, spec):
    """Refuse a float64 graph: onnxruntime has no float64 convolutions."""
    if graph.double:
        raise NotImplementedError(
            f"skae.onnx converts a network of kind {spec['kind']!r} to a float32 graph only: "
            "onnxruntime has no float64 convolutions. Pass float32 input, e.g. "
            "X[:1].astype(np.float32)."
        )


def image_of(graph, rows, spec):
    """Rows reshaped to images of ``spec["image_shape"]``."""
    return graph.node("Reshape", rows, graph.integers([-1, *spec["image_shape"]]))


def convolution(graph, op_type, image, kernel, bias, *, stride=STRIDE, **attrs):
    """A ``Conv`` or ``ConvTranspose`` node of kernel 3 and padding 1, stride 2 by default."""
    return graph.node(
        op_type,
        image,
        graph.constant(kernel, "kernel"),
        graph.constant(bias, "bias"),
        kernel_shape=[KERNEL_SIZE, KERNEL_SIZE],
        strides=[stride, stride],
        pads=[PADDING] * 4,
        **attrs,
    )


def _group_norm(graph, image, scale, offset):
    """Group normalisation from operators of opset 6.

    The maps are reshaped to (n, groups, -1), each group normalised by
    ``InstanceNormalization``, then reshaped back and scaled and offset per
    map: ONNX's own ``GroupNormalization`` needs opset 18, and its scale
    changed meaning in opset 21.
    """
    n_maps = len(scale)
    groups = n_groups(n_maps)
    shape = graph.node("Shape", image)
    grouped = graph.node("Reshape", image, graph.integers([0, groups, -1]))
    grouped = graph.node(
        "InstanceNormalization",
        grouped,
        graph.constant(np.ones(groups)),
        graph.constant(np.zeros(groups)),
        epsilon=1e-5,
    )
    image = graph.node("Reshape", grouped, shape)
    image = graph.node("Mul", image, graph.constant(np.reshape(scale, (n_maps, 1, 1))))
    return graph.node("Add", image, graph.constant(np.reshape(offset, (n_maps, 1, 1))))
