"""What the kinds for images share: their shape and description, and the layers' sizes."""

import math

import torch
from torch import nn

from skae._nn._contract import COMMON_FIELDS, DTYPES, is_count

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


class ImageKind:
    """The image's shape, the convolutions' channels and the description of a kind for images.

    Mixed in before :class:`~skae._nn._contract.Network`, it keeps the
    image's (channels, height, width) and the hidden layers' channels, then
    calls the kind's ``_build_layers(encoding_dim, dtype)``; the code is
    linear.
    """

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
        self._build_layers(encoding_dim, dtype)

    @classmethod
    def from_spec(cls, spec):
        return cls(
            spec["n_features"],
            spec["encoding_dim"],
            spec["hidden_layer_sizes"],
            spec["activation"],
            spec["output_activation"],
            dtype=DTYPES[spec["dtype"]],
            image_shape=spec["image_shape"],
        )

    @classmethod
    def image_fields(cls, spec):
        """Validators of the fields a description of the kind has, for ``check_fields``."""
        return {
            "kind": lambda v: v == cls.kind,
            **COMMON_FIELDS,
            "hidden_layer_sizes": lambda v: (
                isinstance(v, list) and len(v) >= 1 and all(is_count(w) for w in v)
            ),
            "code_activation": lambda v: v == "identity",
            "image_shape": lambda v: (
                isinstance(v, list)
                and len(v) == 3
                and all(is_count(s) for s in v)
                and math.prod(v) == spec.get("n_features")
            ),
        }

    @property
    def spec(self):
        return self.base_spec(image_shape=list(self.image_shape))
