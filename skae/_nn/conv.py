"""The convolutional kind: a linear autoencoder plus a convolutional correction for images.

As the residual kind, but the corrections beside the linear path see each
row as an image: the encoder's is a stack of stride-2 convolutions, the
decoder's its mirror image in transposed convolutions. Started at PCA's
solution, the network begins where PCA ends.
"""

import torch
from torch import nn

from skae._nn import _conv_graph
from skae._nn._contract import (
    ACTIVATIONS,
    Network,
    check_fields,
    positive_floats,
    register_kind,
)
from skae._nn._conv_layers import (
    KERNEL_SIZE,
    PADDING,
    STRIDE,
    WEIGHTED,
    ImageKind,
    empty_layer,
    feature_map_sizes,
    n_groups,
    normalization_layers,
    output_padding,
    weighted_layers,
)
from skae._nn.linear import dense_layer, glorot_uniform, he_uniform
from skae._nn.residual import CorrectionBesideLinearPath


@register_kind
class ConvolutionalAutoencoder(CorrectionBesideLinearPath, ImageKind, Network):
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
    n_features, encoding_dim, activation, output_activation, dtype
        As for :class:`~skae._nn.linear.Autoencoder`; ``n_features`` is the
        product of ``image_shape``.

    hidden_layer_sizes : tuple of int
        Output channels of the encoder's convolutions, outermost first.

    image_shape : tuple of int
        (height, width) or (channels, height, width) of an image.
    """

    kind = "conv"
    held_out_by_default = True

    def _build_layers(self, encoding_dim, dtype):
        channels, height, width = self.image_shape
        n_features, activation = self.n_features, self.activation
        self.sizes = feature_map_sizes(height, width, len(self.hidden_layer_sizes))
        maps = [channels, *self.hidden_layer_sizes]
        flat = maps[-1] * self.sizes[-1][0] * self.sizes[-1][1]
        self.encoder = dense_layer(n_features, encoding_dim, dtype=dtype)
        encoder_branch = []
        for n_in, n_out in zip(maps[:-1], maps[1:], strict=True):
            encoder_branch += [
                empty_layer(nn.Conv2d, n_in, n_out, KERNEL_SIZE, STRIDE, PADDING, dtype=dtype),
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
                empty_layer(
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
        return super().from_spec(spec).with_code_scale(spec)

    @classmethod
    def check_spec(cls, spec):
        check_fields(
            spec,
            {**cls.image_fields(spec), "code_scale": positive_floats(spec.get("encoding_dim"))},
        )

    @property
    def spec(self):
        # The code scale is fixed at the start: it describes the network.
        return self.base_spec(
            image_shape=list(self.image_shape), code_scale=self.code_scale.cpu().tolist()
        )

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
            layers += [m for m in branch if isinstance(m, (*WEIGHTED, nn.GroupNorm))]
        return layers

    def penalized_parameters(self):
        """The weights of the linear and convolutional layers, not the normalisations'."""
        return [layer.weight for layer in self.linear_layers() if isinstance(layer, WEIGHTED)]

    def _image(self, x):
        return x.reshape(x.shape[0], *self.image_shape)

    def codes(self, x):
        return self.encoder(x) + self.encoder_branch(self._image(x))

    def decode_logits(self, codes):
        return self.decoder(codes) + self.decoder_branch(codes / self.code_scale)

    def forward(self, x, generator=None):
        return self.decode_logits(self.codes(x))

    def encode(self, x):
        return self.codes(self.normalize(x))

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
                layers = weighted_layers(branch)
                for layer in layers:
                    fan_in = None
                    if isinstance(layer, nn.ConvTranspose2d):
                        fan_in = layer.weight.shape[0] * KERNEL_SIZE**2 / STRIDE**2
                    he_uniform(layer, generator, fan_in)
                layers[-1].weight.zero_()
                layers[-1].bias.zero_()
                for norm in normalization_layers(branch):
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

    # ONNX

    @classmethod
    def onnx_encode(cls, graph, arrays, spec, x):
        return _conv_graph.onnx_encode(graph, arrays, spec, x)

    @classmethod
    def onnx_decode(cls, graph, arrays, spec, codes):
        return _conv_graph.onnx_decode(graph, arrays, spec, codes)
