"""Torch modules of the autoencoder: layer builders and initialisation."""

import math

import torch
from torch import nn

ACTIVATIONS = {
    "identity": nn.Identity,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "elu": nn.ELU,
    "gelu": nn.GELU,
}


def _linear(n_in, n_out, *, dtype):
    """A ``nn.Linear`` whose storage is allocated but not initialised.

    Constructing ``nn.Linear`` normally draws its initial weights from the
    global torch generator; the weights are drawn later by
    :func:`init_random` from a local generator instead.
    """
    return nn.utils.skip_init(nn.Linear, n_in, n_out, dtype=dtype)


def _stack(widths, activation, last_activation, *, dtype):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(_linear(n_in, n_out, dtype=dtype))
        name = last_activation if i == len(widths) - 2 else activation
        if name != "identity":
            layers.append(ACTIVATIONS[name]())
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
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
        Applied to the decoder's output by :meth:`activate`. "clip" clamps
        it to [0, 1].

    dtype : torch.dtype
        Dtype of the parameters.
    """

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
        super().__init__()
        widths = [n_features, *hidden_layer_sizes, encoding_dim]
        self.encoder = _stack(widths, activation, code_activation, dtype=dtype)
        self.decoder = _stack(widths[::-1], activation, "identity", dtype=dtype)
        self.output_activation = output_activation

    def forward(self, x):
        """Reconstruct ``x``, before the output activation."""
        return self.decoder(self.encoder(x))

    def activate(self, logits):
        """Apply the output activation."""
        if self.output_activation == "sigmoid":
            return torch.sigmoid(logits)
        if self.output_activation == "clip":
            return logits.clamp(0.0, 1.0)
        return logits

    def decode(self, codes):
        """Reconstruct inputs from codes, output activation included."""
        return self.activate(self.decoder(codes))

    @property
    def linear_layers(self):
        """The ``nn.Linear`` layers, encoder first."""
        return [m for m in self.modules() if isinstance(m, nn.Linear)]


def init_random(module, generator):
    """Glorot-uniform weights and zero biases, drawn from ``generator``."""
    with torch.no_grad():
        for layer in module.linear_layers:
            fan_out, fan_in = layer.weight.shape
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.zero_()


def init_pca(module, components, mean, generator):
    """Start a one-layer linear autoencoder at a PCA solution.

    The encoder projects centred data on ``components`` and the decoder maps
    codes back with the same components, so that before any training the
    network reconstructs exactly as PCA does. Code units beyond the number
    of components get small random encoder weights and zero decoder weights,
    so they do not change the reconstruction until trained.

    Parameters
    ----------
    module : Autoencoder
        A network without hidden layers.

    components : torch.Tensor of shape (n_components, n_features)
        Orthonormal principal axes.

    mean : torch.Tensor of shape (n_features,)
        Mean of the training data.

    generator : torch.Generator
        Source of the random weights of extra code units.
    """
    encoder, decoder = module.linear_layers
    n_components = components.shape[0]
    init_random(module, generator)
    with torch.no_grad():
        encoder.weight[:n_components] = components
        encoder.weight[n_components:] *= 1e-2
        encoder.bias.copy_(-(encoder.weight @ mean))
        decoder.weight.zero_()
        decoder.weight[:, :n_components] = components.T
        decoder.bias.copy_(mean)
