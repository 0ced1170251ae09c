"""The layers of the convolutional kind: sizes, paddings and normalisations."""

import torch
from torch import nn

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


def empty_layer(cls, *args, dtype, **kwargs):
    """A layer whose parameters are allocated but not initialised.

    As :func:`~skae._nn.linear.dense_layer`: made on the meta device, where
    nothing is drawn from the global generator, and given storage after.
    """
    layer = cls(*args, device="meta", dtype=dtype, **kwargs)
    for name, parameter in list(layer.named_parameters()):
        setattr(layer, name, nn.Parameter(torch.empty(parameter.shape, dtype=dtype)))
    return layer


def weighted_layers(stack):
    """The layers of ``stack`` that hold weights, in order."""
    return [m for m in stack if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]


def normalization_layers(stack):
    return [m for m in stack if isinstance(m, nn.GroupNorm)]


WEIGHTED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
