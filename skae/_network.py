"""Torch modules of the autoencoder: layer builders and initialisation."""

import itertools
import math

import torch
import torch.nn.functional as F
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
    for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
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

    With a linear output the network works on normalised data,
    ``(x - shift) / scale``, where ``shift`` is the mean of the training data
    and ``scale`` a single number, its root mean square deviation. One scale
    for all features keeps the least-squares objective as it is, while making
    training independent of the data's magnitude: :meth:`forward`,
    :meth:`activate` and the losses work in the normalised space, and
    :meth:`encode` and :meth:`decode` map from and to the data's own.

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

    shift : torch.Tensor of shape (n_features,) or None
        Subtracted from the inputs; zeros when None.

    scale : float
        Divides the inputs after ``shift``.
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
        shift=None,
        scale=1.0,
    ):
        super().__init__()
        widths = [n_features, *hidden_layer_sizes, encoding_dim]
        self.encoder = _stack(widths, activation, code_activation, dtype=dtype)
        self.decoder = _stack(widths[::-1], activation, "identity", dtype=dtype)
        self.output_activation = output_activation
        if shift is None:
            shift = torch.zeros(n_features, dtype=dtype)
        self.register_buffer("shift", torch.as_tensor(shift, dtype=dtype))
        self.register_buffer("scale", torch.tensor(scale, dtype=dtype))

    def normalize(self, x):
        """Map data to the space the layers work in."""
        return (x - self.shift) / self.scale

    def forward(self, x):
        """Reconstruct normalised ``x``, before the output activation."""
        return self.decoder(self.encoder(x))

    def encode(self, x):
        """Codes of data ``x``.

        The normalisation is folded into the first layer's weights and bias,
        which are small, rather than applied to ``x``, which may be large.
        """
        first = self.encoder[0]
        weight = first.weight / self.scale
        hidden = F.linear(x, weight, first.bias - weight @ self.shift)
        return self.encoder[1:](hidden)

    def activate(self, logits):
        """Apply the output activation."""
        if self.output_activation == "sigmoid":
            return torch.sigmoid(logits)
        if self.output_activation == "clip":
            return logits.clamp(0.0, 1.0)
        return logits

    def decode(self, codes):
        """Reconstruct data from codes, output activation included."""
        return self.activate(self.decoder(codes)) * self.scale + self.shift

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


def fit_logistic_decoder(decoder, codes, targets, *, n_iter=2, ridge=1e-4):
    """Refine a linear decoder followed by a sigmoid by Newton's method.

    With the codes fixed, fitting the decoder to targets in [0, 1] under the
    binary cross-entropy is one logistic regression per output feature, a
    convex problem that a couple of Newton (IRLS) steps nearly solve.

    Parameters
    ----------
    decoder : nn.Linear
        The decoder layer, updated in place from its current weights.

    codes : torch.Tensor of shape (n_samples, n_codes)
        Codes of a sample of the training data.

    targets : torch.Tensor of shape (n_samples, n_features)
        The same sample, in [0, 1].

    n_iter : int
        Newton steps.

    ridge : float
        Added to the diagonal of each Hessian.
    """
    n_samples, n_codes = codes.shape
    design = torch.cat([codes, codes.new_ones(n_samples, 1)], dim=1)
    coef = torch.cat([decoder.weight.T, decoder.bias[None, :]])
    outer = (design[:, :, None] * design[:, None, :]).reshape(n_samples, -1)
    eye = ridge * torch.eye(n_codes + 1, dtype=codes.dtype)
    for _ in range(n_iter):
        probabilities = torch.sigmoid(design @ coef)
        gradient = design.T @ (probabilities - targets)
        weights = probabilities * (1 - probabilities)
        hessians = (outer.T @ weights).T.reshape(-1, n_codes + 1, n_codes + 1) + eye
        coef -= torch.linalg.solve(hessians, gradient.T.unsqueeze(-1)).squeeze(-1).T
    decoder.weight.copy_(coef[:-1].T)
    decoder.bias.copy_(coef[-1])


def init_pca(module, components, mean, generator, sample=None):
    """Start a one-layer linear-code autoencoder at a PCA solution.

    The encoder projects centred data on ``components``. With a linear (or
    clipped) output the decoder maps codes back with the same components, so
    that before any training the network reconstructs exactly as PCA does.
    With a sigmoid output the decoder starts from the linearisation of the
    sigmoid around the mean, then :func:`fit_logistic_decoder` fits it to
    ``sample``: the start is then better than PCA, not only as good.
    Code units beyond the number of components get small random encoder
    weights and zero decoder weights.

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

    sample : torch.Tensor of shape (n_samples, n_features) or None
        Training rows to fit a sigmoid output's decoder to.
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
        if module.output_activation != "sigmoid":
            return
        # sigmoid(logit(m) + d) ~ m + m (1 - m) d near the mean m.
        clipped = mean.clamp(0.01, 0.99)
        decoder.weight /= (clipped * (1 - clipped)).clamp(min=0.1)[:, None]
        decoder.bias.copy_(torch.logit(clipped))
        if sample is not None and len(sample) > 1 and encoder.out_features <= 128:
            fit_logistic_decoder(decoder, encoder(sample), sample)
