"""The dense kind: a stack of linear layers each way, the linear autoencoder among them.

With no hidden layers it is the linear autoencoder of the MNIST tutorials,
started at PCA's solution; with hidden layers and ``init="random"``, the
stacked network of Hinton and Salakhutdinov, started at random.
"""

import itertools
import math

import torch
from torch import nn

from skae._nn import _graph
from skae._nn._contract import (
    ACTIVATIONS,
    COMMON_FIELDS,
    DTYPES,
    Network,
    check_fields,
    dense_shapes,
    register_kind,
)
from skae._nn._steps import LinearStep, PerceptronStep


def dense_layer(n_in, n_out, *, dtype):
    """A ``nn.Linear`` whose storage is allocated but not initialised.

    Constructing ``nn.Linear`` normally draws its initial weights from the
    global torch generator; the weights are drawn later by
    :meth:`Network.init_random` from a local generator instead. The layer is
    made on the meta device, where nothing is drawn, and given real storage
    after: ``nn.utils.skip_init`` does the same through ``to_empty``, whose
    first call imports sympy, half a second.
    """
    layer = nn.Linear(n_in, n_out, device="meta", dtype=dtype)
    layer.weight = nn.Parameter(torch.empty(n_out, n_in, dtype=dtype))
    layer.bias = nn.Parameter(torch.empty(n_out, dtype=dtype))
    return layer


def perceptron(widths, activation, last_activation="identity", *, dtype):
    """Linear layers through ``widths``, each followed by ``activation`` but the last."""
    layers = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        layers.append(dense_layer(n_in, n_out, dtype=dtype))
        name = last_activation if i == len(widths) - 2 else activation
        if name != "identity":
            layers.append(ACTIVATIONS[name]())
    return nn.Sequential(*layers)


def glorot_uniform(layers, generator):
    """Glorot-uniform weights and zero biases, drawn from ``generator``."""
    with torch.no_grad():
        for layer in layers:
            fan_out, fan_in = layer.weight.shape
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.zero_()


@torch.no_grad()
def he_uniform(layer, generator, fan_in=None):
    """He-uniform weights, suited to rectifiers, and biases within ``1 / sqrt(fan_in)``.

    ``fan_in`` is the number of weights of one output unit (a dense
    layer's inputs, a convolution's input channels times its kernel's
    size) unless given.
    """
    fan_in = layer.weight[0].numel() if fan_in is None else fan_in
    bound = math.sqrt(6.0 / fan_in)
    layer.weight.uniform_(-bound, bound, generator=generator)
    bound = 1.0 / math.sqrt(fan_in)
    layer.bias.uniform_(-bound, bound, generator=generator)


@register_kind
class Autoencoder(Network):
    """A symmetric multi-layer autoencoder.

    The encoder maps ``n_features`` inputs through ``hidden_layer_sizes`` to
    ``encoding_dim`` codes; the decoder mirrors it. The decoder's last layer
    is linear: :meth:`forward` returns its pre-activation output ("logits"),
    and the output activation is applied by :meth:`activate`, so that losses
    such as binary cross-entropy can be computed from logits stably.

    Parameters
    ----------
    n_features : int
        Width of the input and of the reconstruction.

    encoding_dim : int
        Width of the code.

    hidden_layer_sizes : tuple of int
        Widths of the encoder's hidden layers, outermost first.

    activation : str
        Activation of the hidden layers, a key of ``ACTIVATIONS``.

    code_activation : str
        Activation of the code layer, a key of ``ACTIVATIONS``.

    output_activation : {"identity", "sigmoid", "clip"}
        Applied to the decoder's output by :meth:`activate`.

    dtype : torch.dtype
        Dtype of the parameters.
    """

    kind = "dense"

    def __init__(
        self,
        n_features,
        encoding_dim,
        hidden_layer_sizes,
        activation,
        code_activation,
        output_activation,
        dtype,
    ):
        super().__init__(n_features, output_activation, dtype)
        self.hidden_layer_sizes = tuple(int(width) for width in hidden_layer_sizes)
        self.activation = activation
        self.code_activation = code_activation
        self._build_layers([n_features, *self.hidden_layer_sizes, encoding_dim], dtype)

    def _build_layers(self, widths, dtype):
        """The layers for ``widths``, from the input through the hidden layers to the code."""
        self.encoder = perceptron(widths, self.activation, self.code_activation, dtype=dtype)
        self.decoder = perceptron(widths[::-1], self.activation, dtype=dtype)

    @classmethod
    def accepts(cls, request):
        """Any request: the kind of last resort.

        An image shape changes nothing for it: the linear autoencoder, or
        the stacked network started at random, sees rows as rows.
        """
        return True

    @classmethod
    def from_spec(cls, spec):
        return cls(
            spec["n_features"],
            spec["encoding_dim"],
            spec["hidden_layer_sizes"],
            spec["activation"],
            spec["code_activation"],
            spec["output_activation"],
            dtype=DTYPES[spec["dtype"]],
        )

    @classmethod
    def check_spec(cls, spec):
        check_fields(spec, {"kind": lambda v: v == cls.kind, **COMMON_FIELDS})

    @property
    def spec(self):
        """Plain values from which :meth:`from_spec` makes this network."""
        return self.base_spec()

    @classmethod
    def array_shapes(cls, spec):
        widths = [spec["n_features"], *spec["hidden_layer_sizes"], spec["encoding_dim"]]
        encoder = list(itertools.pairwise(widths))
        return dense_shapes(encoder + [(n_out, n_in) for n_in, n_out in reversed(encoder)])

    @property
    def encoding_dim(self):
        return self.decoder[0].in_features

    def forward(self, x, generator=None):
        """Reconstruct normalised ``x``, before the output activation."""
        return self.decoder(self.encoder(x))

    def codes(self, x):
        return self.encoder(x)

    def decode_logits(self, codes):
        return self.decoder(codes)

    def code_layers(self):
        encoder = [m for m in self.encoder if isinstance(m, nn.Linear)]
        return [encoder[-1]], [(self.decoder[0], None)]

    def encode(self, x):
        """Codes of data ``x``, the normalisation folded into the first layer."""
        return self.encoder[1:](self.apply_normalized(self.encoder[0], x))

    def decode(self, codes):
        """Reconstruct data from codes, output activation included."""
        return self.unnormalize(self.activate(self.decoder(codes)))

    @property
    def linear_path(self):
        """The encoder and decoder layers of a network without hidden layers."""
        if self.hidden_layer_sizes:
            return None
        return self.encoder[0], self.decoder[0]

    @property
    def is_linear(self):
        """Whether the network is one linear layer each way, nothing else."""
        return len(self.encoder) == 1 and len(self.decoder) == 1

    def starts_at_optimum(self, options):
        """PCA's solution minimises the squared error of a linear code through a linear output."""
        return (
            self.is_linear
            and self.code_activation == self.output_activation == "identity"
            and options.loss == "mse"
            and options.noise is None
            and options.alpha == 0
        )

    @property
    def wants_sample(self):
        """Whether :meth:`start_at` fits anything to a sample of the rows."""
        return self.output_activation == "sigmoid"

    @property
    def perceptrons(self):
        """The encoder and the decoder, and the perceptrons beside them: none here.

        Each is a sequence of ``nn.Linear`` layers and activation modules,
        the code activation at the end of the encoder; the output
        activation is left to :meth:`activate`.
        """
        return self.encoder, self.decoder, None, None

    def init_random(self, generator):
        """Glorot-uniform weights and zero biases, drawn from ``generator``."""
        glorot_uniform(self.linear_layers(), generator)

    def hand_step(self, X, options, device):
        if LinearStep.applies(self, X, options, device):
            return LinearStep
        if PerceptronStep.applies(self, X, options, device):
            return PerceptronStep
        return None

    @staticmethod
    def _layers(arrays, spec):
        layers = list(zip(arrays["coefs_"], arrays["intercepts_"], strict=True))
        n_encoder = len(spec["hidden_layer_sizes"]) + 1
        return layers[:n_encoder], layers[n_encoder:]

    @classmethod
    def onnx_encode(cls, graph, arrays, spec, x):
        layers, _ = cls._layers(arrays, spec)
        layers[0] = _graph.fold_normalization(*layers[0], arrays)
        activations = [spec["activation"]] * (len(layers) - 1) + [spec["code_activation"]]
        return _graph.stack(graph, x, layers, activations)

    @classmethod
    def onnx_decode(cls, graph, arrays, spec, codes):
        _, layers = cls._layers(arrays, spec)
        activations = [spec["activation"]] * (len(layers) - 1) + ["identity"]
        if spec["output_activation"] == "identity":
            layers[-1] = _graph.fold_unnormalization(*layers[-1], arrays)
            return _graph.stack(graph, codes, layers, activations)
        return _graph.unnormalize(
            graph, _graph.stack(graph, codes, layers, activations), arrays, spec
        )
