"""The local-convolution kind: a linear autoencoder plus convolutions of the input image.

For a network that restores entries hidden from its input, as the
imputer's does: the correction beside the linear path reads the input
itself, at full resolution, rather than the code, so that each value is
restored from its neighbourhood in the image as well as from the code.
Its code is the linear path's; its reconstruction is not ``decode`` of
its code, so it serves networks whose code nobody reads.
"""

import torch
from torch import nn

from skae._nn import _conv_graph, _graph
from skae._nn._contract import (
    ACTIVATIONS,
    Network,
    check_fields,
    register_kind,
)
from skae._nn._conv_layers import KERNEL_SIZE, ImageKind, empty_layer, weighted_layers
from skae._nn.linear import dense_layer, glorot_uniform, he_uniform


@register_kind
class LocalConvolutionAutoencoder(ImageKind, Network):
    """A linear autoencoder plus convolutions of the input that start at zero.

    Each row of ``n_features`` values is an image of ``image_shape``
    (channels, height, width), raveled in that order. The reconstruction is
    the linear path's plus a stack of convolutions of the (normalised)
    image::

        r = W_d (W_e x + b_e) + b_d + g(x)

    ``g`` is one convolution per entry of ``hidden_layer_sizes`` (its output
    channels; kernel 3, stride 1, padding 1: the image keeps its size), each
    followed by the activation, then a convolution back to the image's
    channels, which starts at zero, so that the network starts as its
    linear path. Each restored value sees the ``2 * len(hidden_layer_sizes)
    + 3`` pixels square around it, and the whole image through the code.

    ``encode`` and ``decode`` are the linear path's; ``forward`` adds the
    correction, which needs the input. The kind is built only where a
    request sets ``corrects_input`` (the imputer's network, whose code
    nobody reads).

    Parameters
    ----------
    n_features, encoding_dim, activation, output_activation, dtype
        As for :class:`~skae._nn.linear.Autoencoder`; ``n_features`` is the
        product of ``image_shape``.

    hidden_layer_sizes : tuple of int
        Output channels of the hidden convolutions.

    image_shape : tuple of int
        (height, width) or (channels, height, width) of an image.
    """

    kind = "local_conv"
    held_out_by_default = True

    def _build_layers(self, encoding_dim, dtype):
        channels, n_features, activation = self.image_shape[0], self.n_features, self.activation
        self.encoder = dense_layer(n_features, encoding_dim, dtype=dtype)
        self.decoder = dense_layer(encoding_dim, n_features, dtype=dtype)
        maps = [channels, *self.hidden_layer_sizes, channels]
        layers = []
        for n_in, n_out in zip(maps[:-1], maps[1:], strict=True):
            layers += [
                empty_layer(nn.Conv2d, n_in, n_out, KERNEL_SIZE, 1, KERNEL_SIZE // 2, dtype=dtype),
                ACTIVATIONS[activation](),
            ]
        # Channels last: the layout in which the CPU's convolutions of many
        # channels run fastest (1.4 times as fast as channels first, for
        # three of 32 channels on 28 x 28 images).
        self.correction = nn.Sequential(*layers[:-1]).to(memory_format=torch.channels_last)

    @classmethod
    def accepts(cls, request):
        """Images restored from a corrupted input, by a network started at a linear model."""
        return (
            bool(request.get("corrects_input"))
            and request.get("image_shape") is not None
            and bool(request["hidden_layer_sizes"])
            and request["init"] == "pca"
        )

    @classmethod
    def check_spec(cls, spec):
        check_fields(spec, cls.image_fields(spec))

    @classmethod
    def array_shapes(cls, spec):
        """Shapes of the weights and biases, in the order of :meth:`linear_layers`.

        The linear path's weights are (n_in, n_out), the convolutions'
        (out, in, 3, 3), as torch and ONNX hold them.
        """
        channels = spec["image_shape"][0]
        d, k = spec["n_features"], spec["encoding_dim"]
        maps = [channels, *spec["hidden_layer_sizes"], channels]
        coefs, intercepts = [(d, k), (k, d)], [(k,), (d,)]
        for n_in, n_out in zip(maps[:-1], maps[1:], strict=True):
            coefs.append((n_out, n_in, KERNEL_SIZE, KERNEL_SIZE))
            intercepts.append((n_out,))
        return coefs, intercepts

    @property
    def encoding_dim(self):
        return self.decoder.in_features

    @property
    def linear_path(self):
        return self.encoder, self.decoder

    @property
    def is_linear(self):
        return False

    def linear_layers(self):
        """The encoder, the decoder, then the convolutions, as the fitted arrays hold them."""
        return [self.encoder, self.decoder, *weighted_layers(self.correction)]

    def forward(self, x, generator=None):
        image = x.reshape(x.shape[0], *self.image_shape)
        image = image.contiguous(memory_format=torch.channels_last)
        return self.decoder(self.encoder(x)) + self.correction(image).flatten(1)

    def encode(self, x):
        return self.apply_normalized(self.encoder, x)

    def decode(self, codes):
        return self.unnormalize(self.activate(self.decoder(codes)))

    def init_random(self, generator):
        """Random weights, the last convolution at zero.

        The linear path gets Glorot-uniform weights, the other convolutions
        He-uniform ones.
        """
        glorot_uniform([self.encoder, self.decoder], generator)
        with torch.no_grad():
            layers = weighted_layers(self.correction)
            for layer in layers[:-1]:
                he_uniform(layer, generator)
            layers[-1].weight.zero_()
            layers[-1].bias.zero_()

    def cost_per_row(self):
        """Multiply-adds of a forward pass of one row, and its widest row of values.

        A convolution costs its kernel's weights at each pixel.
        """
        d, k = self.n_features, self.encoding_dim
        channels, height, width = self.image_shape
        maps = [channels, *self.hidden_layer_sizes, channels]
        pixels = height * width
        cost = 2 * d * k + d + k
        for n_in, n_out in zip(maps[:-1], maps[1:], strict=True):
            cost += (n_in * n_out * KERNEL_SIZE**2 + n_out) * pixels
        return cost, max(maps) * pixels

    # ONNX

    @classmethod
    def onnx_encode(cls, graph, arrays, spec, x):
        encoder = arrays["coefs_"][0], arrays["intercepts_"][0]
        return graph.linear(x, *_graph.fold_normalization(*encoder, arrays))

    @classmethod
    def onnx_decode(cls, graph, arrays, spec, codes):
        decoder = arrays["coefs_"][1], arrays["intercepts_"][1]
        return _graph.unnormalize(graph, graph.linear(codes, *decoder), arrays, spec)

    @classmethod
    def onnx_reconstruct(cls, graph, arrays, spec, x):
        """The nodes of ``forward`` on data ``x``, in the data's units."""
        _conv_graph.check_graph_dtype(graph, spec)
        encoder, decoder, *convolutions = zip(arrays["coefs_"], arrays["intercepts_"], strict=True)
        codes = graph.linear(x, *_graph.fold_normalization(*encoder, arrays))
        image = _conv_graph.image_of(graph, _graph.normalize(graph, x, arrays), spec)
        for i, (kernel, bias) in enumerate(convolutions):
            if i:
                image = graph.activation(image, spec["activation"])
            image = _conv_graph.convolution(graph, "Conv", image, kernel, bias, stride=1)
        correction = graph.node("Flatten", image, axis=1)
        logits = graph.node("Add", graph.linear(codes, *decoder), correction)
        return _graph.unnormalize(graph, logits, arrays, spec)
