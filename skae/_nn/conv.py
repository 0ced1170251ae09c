"""The convolutional kind: a linear autoencoder plus a convolutional correction for images.

As the residual kind, but the corrections beside the linear path see each
row as an image: the encoder's is a stack of stride-2 convolutions, the
decoder's its mirror image in transposed convolutions. Started at PCA's
solution, the network begins where PCA ends.
"""

import math

import numpy as np
import torch
from torch import nn

from skae._nn import _graph
from skae._nn._contract import (
    ACTIVATIONS,
    COMMON_FIELDS,
    DTYPES,
    Network,
    check_fields,
    copy_into,
    positive_floats,
    register_kind,
)
from skae._nn.linear import dense_layer, glorot_uniform

KERNEL_SIZE = 3
STRIDE = 2
PADDING = 1


def image_shape_3d(image_shape):
    """(channels, height, width) of an (height, width) or (channels, height, width) shape."""
    image_shape = tuple(int(size) for size in image_shape)
    return (1, *image_shape) if len(image_shape) == 2 else image_shape


def feature_map_sizes(height, width, n_layers):
    """The (height, width) of the image and after each stride-2 convolution.

    A convolution of kernel 3, stride 2 and padding 1 maps a side of n
    pixels to ceil(n / 2).
    """
    sizes = [(height, width)]
    for _ in range(n_layers):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def output_padding(size):
    """The output padding that makes a transposed convolution give back ``size``.

    It maps a side of m = ceil(n / 2) pixels to 2 m - 1 + padding: 0 for
    odd n, 1 for even n.
    """
    return tuple(1 - n % 2 for n in size)


def n_groups(channels):
    """Groups of the group normalisation of ``channels`` maps: of 4 maps, else one."""
    return channels // 4 if channels % 4 == 0 else 1


def _empty(cls, *args, dtype, **kwargs):
    """A layer whose parameters are allocated but not initialised.

    As :func:`~skae._nn.linear.dense_layer`: made on the meta device, where
    nothing is drawn from the global generator, and given storage after.
    """
    layer = cls(*args, device="meta", dtype=dtype, **kwargs)
    for name, parameter in list(layer.named_parameters()):
        setattr(layer, name, nn.Parameter(torch.empty(parameter.shape, dtype=dtype)))
    return layer


def _weighted(stack):
    """The layers of ``stack`` that hold weights, in order."""
    return [m for m in stack if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]


def _normalizations(stack):
    return [m for m in stack if isinstance(m, nn.GroupNorm)]


@register_kind
class ConvolutionalAutoencoder(Network):
    """A linear autoencoder plus convolutional corrections that start at zero.

    Each row of ``n_features`` values is an image of ``image_shape``
    (channels, height, width), raveled in that order. The code is a linear
    map of the (normalised) input plus a convolutional network of the
    image, and the reconstruction a linear map of the code plus a
    transposed-convolutional network of it::

        z = W_e x + b_e + g_e(x)
        r = W_d z + b_d + g_d(z / code_scale)

    ``g_e`` is one convolution per entry of ``hidden_layer_sizes`` (its
    output channels; kernel 3, stride 2, padding 1: each halves the image's
    sides, rounding up), each followed by a group normalisation and the
    activation, then a linear layer to the code. ``g_d`` mirrors it: a
    linear layer and the activation, then transposed convolutions back to
    the image's channels and size, each followed by a group normalisation
    and the activation but the last. The last layer of each starts at zero,
    so that the network starts as its linear path.

    Parameters
    ----------
    n_features : int
        Width of the input and of the reconstruction: the product of
        ``image_shape``.

    encoding_dim : int
        Width of the code.

    hidden_layer_sizes : tuple of int
        Output channels of the encoder's convolutions, outermost first.

    activation : str
        Activation after each hidden layer, a key of ``ACTIVATIONS``.

    output_activation : {"identity", "sigmoid", "clip"}
        Applied to the decoder's output by :meth:`activate`.

    dtype : torch.dtype
        Dtype of the parameters.

    image_shape : tuple of int
        (height, width) or (channels, height, width) of an image.
    """

    kind = "conv"
    held_out_by_default = True

    def __init__(
        self,
        n_features,
        encoding_dim,
        hidden_layer_sizes,
        activation,
        output_activation,
        dtype,
        image_shape,
    ):
        super().__init__(n_features, output_activation, dtype)
        self.image_shape = image_shape_3d(image_shape)
        channels, height, width = self.image_shape
        if channels * height * width != n_features:
            raise ValueError(
                f"An image of shape {self.image_shape} has {channels * height * width} "
                f"values, not the {n_features} features of a row."
            )
        self.hidden_layer_sizes = tuple(int(width) for width in hidden_layer_sizes)
        self.activation = activation
        self.code_activation = "identity"
        self.sizes = feature_map_sizes(height, width, len(self.hidden_layer_sizes))
        maps = [channels, *self.hidden_layer_sizes]
        flat = maps[-1] * self.sizes[-1][0] * self.sizes[-1][1]
        self.encoder = dense_layer(n_features, encoding_dim, dtype=dtype)
        encoder_branch = []
        for n_in, n_out in zip(maps[:-1], maps[1:], strict=True):
            encoder_branch += [
                _empty(nn.Conv2d, n_in, n_out, KERNEL_SIZE, STRIDE, PADDING, dtype=dtype),
                nn.GroupNorm(n_groups(n_out), n_out, dtype=dtype),
                ACTIVATIONS[activation](),
            ]
        encoder_branch += [nn.Flatten(), dense_layer(flat, encoding_dim, dtype=dtype)]
        self.encoder_branch = nn.Sequential(*encoder_branch)
        self.decoder = dense_layer(encoding_dim, n_features, dtype=dtype)
        decoder_branch = [
            dense_layer(encoding_dim, flat, dtype=dtype),
            ACTIVATIONS[activation](),
            nn.Unflatten(1, (maps[-1], *self.sizes[-1])),
        ]
        n_layers = len(self.hidden_layer_sizes)
        for i in range(n_layers, 0, -1):
            decoder_branch.append(
                _empty(
                    nn.ConvTranspose2d,
                    maps[i],
                    maps[i - 1],
                    KERNEL_SIZE,
                    STRIDE,
                    PADDING,
                    output_padding(self.sizes[i - 1]),
                    dtype=dtype,
                )
            )
            if i > 1:
                decoder_branch += [
                    nn.GroupNorm(n_groups(maps[i - 1]), maps[i - 1], dtype=dtype),
                    ACTIVATIONS[activation](),
                ]
        decoder_branch.append(nn.Flatten())
        self.decoder_branch = nn.Sequential(*decoder_branch)
        self.register_buffer("code_scale", torch.ones(encoding_dim, dtype=dtype))

    @classmethod
    def accepts(cls, request):
        """Images, for a network with hidden layers started at PCA's solution."""
        return (
            request.get("image_shape") is not None
            and bool(request["hidden_layer_sizes"])
            and request["init"] == "pca"
        )

    @classmethod
    def from_spec(cls, spec):
        module = cls(
            spec["n_features"],
            spec["encoding_dim"],
            spec["hidden_layer_sizes"],
            spec["activation"],
            spec["output_activation"],
            dtype=DTYPES[spec["dtype"]],
            image_shape=spec["image_shape"],
        )
        if "code_scale" in spec:
            with torch.no_grad():
                copy_into(module.code_scale, np.asarray(spec["code_scale"]), "code scale")
        return module

    @classmethod
    def check_spec(cls, spec):
        check_fields(
            spec,
            {
                "kind": lambda v: v == cls.kind,
                **COMMON_FIELDS,
                "hidden_layer_sizes": lambda v: (
                    isinstance(v, list)
                    and len(v) >= 1
                    and all(isinstance(w, int) and w >= 1 for w in v)
                ),
                "code_activation": lambda v: v == "identity",
                "image_shape": lambda v: (
                    isinstance(v, list)
                    and len(v) == 3
                    and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in v)
                    and math.prod(v) == spec.get("n_features")
                ),
                "code_scale": positive_floats(spec.get("encoding_dim")),
            },
        )

    @property
    def spec(self):
        return {
            "kind": self.kind,
            "n_features": int(self.n_features),
            "encoding_dim": int(self.encoding_dim),
            "hidden_layer_sizes": list(self.hidden_layer_sizes),
            "activation": self.activation,
            "code_activation": self.code_activation,
            "output_activation": self.output_activation,
            "dtype": str(self.dtype).removeprefix("torch."),
            "image_shape": list(self.image_shape),
            # The code scale is fixed at the start: it describes the network.
            "code_scale": self.code_scale.cpu().tolist(),
        }

    @classmethod
    def array_shapes(cls, spec):
        """Shapes of the weights and biases, in the order of :meth:`linear_layers`.

        The linear path's and the dense layers' weights are (n_in, n_out);
        a convolution's (out, in, 3, 3) and a transposed convolution's
        (in, out, 3, 3), as torch and ONNX hold them; a group
        normalisation's scale and offset are a weight and a bias.
        """
        channels, height, width = spec["image_shape"]
        d, k = spec["n_features"], spec["encoding_dim"]
        maps = [channels, *spec["hidden_layer_sizes"]]
        h, w = feature_map_sizes(height, width, len(maps) - 1)[-1]
        flat = maps[-1] * h * w
        kernel = (KERNEL_SIZE, KERNEL_SIZE)
        coefs, intercepts = [(d, k)], [(k,)]
        for n_in, n_out in zip(maps[:-1], maps[1:], strict=True):
            coefs += [(n_out, n_in, *kernel), (n_out,)]
            intercepts += [(n_out,), (n_out,)]
        coefs += [(flat, k), (k, d), (k, flat)]
        intercepts += [(k,), (d,), (flat,)]
        for i in range(len(maps) - 1, 0, -1):
            coefs.append((maps[i], maps[i - 1], *kernel))
            intercepts.append((maps[i - 1],))
            if i > 1:
                coefs.append((maps[i - 1],))
                intercepts.append((maps[i - 1],))
        return coefs, intercepts

    @property
    def encoding_dim(self):
        return self.decoder.in_features

    def linear_layers(self):
        """The layers holding weights, in the order of the fitted arrays.

        The encoder's linear layer, its branch's convolutions and group
        normalisations and its last linear layer; then the decoder's
        likewise.
        """
        layers = []
        for first, branch in (
            (self.encoder, self.encoder_branch),
            (self.decoder, self.decoder_branch),
        ):
            layers.append(first)
            layers += [m for m in branch if isinstance(m, (*_WEIGHTED, nn.GroupNorm))]
        return layers

    def penalized_parameters(self):
        """The weights of the linear and convolutional layers, not the normalisations'."""
        return [layer.weight for layer in self.linear_layers() if isinstance(layer, _WEIGHTED)]

    def _image(self, x):
        return x.reshape(x.shape[0], *self.image_shape)

    def _codes(self, x):
        return self.encoder(x) + self.encoder_branch(self._image(x))

    def _decode_logits(self, codes):
        return self.decoder(codes) + self.decoder_branch(codes / self.code_scale)

    def forward(self, x, generator=None):
        return self._decode_logits(self._codes(x))

    def encode(self, x):
        return self._codes(self.normalize(x))

    def decode(self, codes):
        return self.unnormalize(self.activate(self._decode_logits(codes)))

    @property
    def linear_path(self):
        return self.encoder, self.decoder

    @property
    def is_linear(self):
        return False

    @property
    def wants_sample(self):
        return True

    @torch.no_grad()
    def set_code_scale(self, sample):
        """Set ``code_scale`` to the spread of each code over rows of data.

        As the residual kind's: codes that barely vary get a hundredth of
        the largest spread.
        """
        if len(sample) < 2:
            return
        spread = self.encode(sample.to(self.dtype)).std(dim=0)
        floor = 1e-2 * float(spread.max())
        self.code_scale.copy_(spread.clamp(min=floor) if floor > 0 else torch.ones_like(spread))

    def start_at(self, components, mean, generator, sample=None, encoder_components=None):
        """Start the linear path at a linear model, then scale the codes on ``sample``."""
        super().start_at(components, mean, generator, sample, encoder_components)
        if sample is not None:
            self.set_code_scale(sample)

    def init_random(self, generator):
        """Random weights, the last layer of each correction at zero.

        The linear path gets Glorot-uniform weights; the corrections' other
        layers He-uniform ones, with the fan-in a transposed convolution of
        stride 2 has on average, a quarter of its kernel's; the group
        normalisations start as the identity.
        """
        glorot_uniform(self.linear_layers()[:1], generator)
        glorot_uniform([self.decoder], generator)
        with torch.no_grad():
            for branch in (self.encoder_branch, self.decoder_branch):
                layers = _weighted(branch)
                for layer in layers:
                    fan_in = layer.weight[0].numel()
                    if isinstance(layer, nn.ConvTranspose2d):
                        fan_in = layer.weight.shape[0] * KERNEL_SIZE**2 / STRIDE**2
                    bound = math.sqrt(6.0 / fan_in)
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    bound = 1.0 / math.sqrt(fan_in)
                    layer.bias.uniform_(-bound, bound, generator=generator)
                layers[-1].weight.zero_()
                layers[-1].bias.zero_()
                for norm in _normalizations(branch):
                    norm.weight.fill_(1.0)
                    norm.bias.zero_()

    def cost_per_row(self):
        """Multiply-adds of a forward pass of one row, and its widest row of values.

        A convolution costs its kernel's weights at each position of its
        output, a transposed one at each position of its input; the widest
        row is the largest of the image and the feature maps.
        """
        d, k = self.n_features, self.encoding_dim
        maps = [self.image_shape[0], *self.hidden_layer_sizes]
        cost = 2 * (d * k + d + k)
        widest = d
        for i in range(1, len(maps)):
            h, w = self.sizes[i]
            # The convolution and its mirror image, and their normalisations.
            cost += 2 * (maps[i - 1] * maps[i] * KERNEL_SIZE**2 * h * w + 3 * maps[i] * h * w)
            widest = max(widest, maps[i] * h * w)
        flat = maps[-1] * self.sizes[-1][0] * self.sizes[-1][1]
        cost += 2 * (flat * k + flat + k)
        return cost, widest

    def to_arrays(self):
        """The fitted state as named numpy arrays, copied to CPU.

        ``coefs_`` and ``intercepts_`` hold a weight array and a bias vector
        per layer of :meth:`linear_layers`, shaped as :meth:`array_shapes`
        says.
        """
        coefs, intercepts = [], []
        for layer in self.linear_layers():
            weight = layer.weight.detach().cpu()
            coefs.append((weight.T if isinstance(layer, nn.Linear) else weight).numpy().copy())
            intercepts.append(layer.bias.detach().cpu().numpy().copy())
        return {
            "coefs_": coefs,
            "intercepts_": intercepts,
            "shift_": self.shift.cpu().numpy().copy(),
            "scale_": float(self.scale),
        }

    @torch.no_grad()
    def load_arrays(self, arrays):
        """Set the weights from arrays named and shaped as :meth:`to_arrays` gives them."""
        layers = self.linear_layers()
        coefs, intercepts = arrays["coefs_"], arrays["intercepts_"]
        if len(coefs) != len(layers) or len(intercepts) != len(layers):
            raise ValueError(
                f"The network has {len(layers)} layers, got {len(coefs)} weight "
                f"arrays and {len(intercepts)} bias vectors."
            )
        for layer, coef, intercept in zip(layers, coefs, intercepts, strict=True):
            coef = np.asarray(coef)
            copy_into(layer.weight, coef.T if isinstance(layer, nn.Linear) else coef, "weight")
            copy_into(layer.bias, intercept, "bias")
        return self.set_normalization(arrays["shift_"], arrays["scale_"])

    # ONNX

    @staticmethod
    def _layers(arrays, spec):
        """The encoder's (linear, branch) layers and the decoder's, as (coef, intercept)."""
        layers = list(zip(arrays["coefs_"], arrays["intercepts_"], strict=True))
        n_layers = len(spec["hidden_layer_sizes"])
        n_encoder = 1 + 2 * n_layers + 1
        encoder, decoder = layers[:n_encoder], layers[n_encoder:]
        return encoder[0], encoder[1:], decoder[0], decoder[1:]

    @classmethod
    def onnx_encode(cls, graph, arrays, spec, x):
        _check_graph_dtype(graph)
        linear, branch, _, _ = cls._layers(arrays, spec)
        linear = graph.linear(x, *_graph.fold_normalization(*linear, arrays))
        normalized = x
        if np.any(arrays["shift_"] != 0):
            normalized = graph.node("Sub", normalized, graph.constant(arrays["shift_"]))
        if arrays["scale_"] != 1.0:
            normalized = graph.node("Mul", normalized, graph.constant(1.0 / arrays["scale_"]))
        image = graph.node("Reshape", normalized, graph.integers([-1, *spec["image_shape"]]))
        for i in range(len(spec["hidden_layer_sizes"])):
            (kernel, bias), (scale, offset) = branch[2 * i], branch[2 * i + 1]
            image = graph.node(
                "Conv",
                image,
                graph.constant(kernel, "kernel"),
                graph.constant(bias, "bias"),
                kernel_shape=[KERNEL_SIZE, KERNEL_SIZE],
                strides=[STRIDE, STRIDE],
                pads=[PADDING] * 4,
            )
            image = _group_norm(graph, image, scale, offset)
            image = graph.activation(image, spec["activation"])
        flat = graph.node("Flatten", image, axis=1)
        return graph.node("Add", linear, graph.linear(flat, *branch[-1]))

    @classmethod
    def onnx_decode(cls, graph, arrays, spec, codes):
        _check_graph_dtype(graph)
        _, _, linear, branch = cls._layers(arrays, spec)
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
            image = graph.node(
                "ConvTranspose",
                image,
                graph.constant(kernel, "kernel"),
                graph.constant(bias, "bias"),
                kernel_shape=[KERNEL_SIZE, KERNEL_SIZE],
                strides=[STRIDE, STRIDE],
                pads=[PADDING] * 4,
                output_padding=list(output_padding(sizes[i - 1])),
            )
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


_WEIGHTED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def _check_graph_dtype(graph):
    if graph.double:
        raise NotImplementedError(
            "skae.onnx converts a network of kind 'conv' to a float32 graph only: "
            "onnxruntime has no float64 convolutions. Pass float32 input, e.g. "
            "X[:1].astype(np.float32)."
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
