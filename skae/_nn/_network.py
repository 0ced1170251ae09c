"""Torch modules of the autoencoders, behind one contract.

The training loop and the estimators use a network only through these
members, never through its layer layout:

- ``normalize(x)``: data to the space the layers work in;
- ``forward(x)``: normalised input to the reconstruction's logits;
- ``activate(logits)``: the output activation;
- ``encode(x)`` and ``decode(codes)``: data to codes and back, in the data's
  own units;
- ``penalized_parameters()``: the weights the L2 penalty covers;
- ``dtype``;
- ``linear_path``: the encoder and decoder layers of the network's linear
  part, which a PCA start sets, or None; ``is_linear``: whether the network
  is that linear part alone; ``perceptrons``: the encoder, the decoder and
  the perceptrons beside them (None without), each a sequence of linear
  layers and activations, and, with perceptrons beside, ``code_scale``
  that divides the codes the decoder's perceptron sees;
- ``init_random(generator)``;
- ``spec``, ``to_arrays()`` and ``load_arrays(...)``: a description of plain
  values and the weights as numpy arrays, from which :func:`build_network`
  makes the same network again.

Nothing here knows about scikit-learn.
"""

import itertools
import math

import numpy as np
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

OUTPUT_ACTIVATIONS = ("identity", "sigmoid", "clip")

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _linear(n_in, n_out, *, dtype):
    """A ``nn.Linear`` whose storage is allocated but not initialised.

    Constructing ``nn.Linear`` normally draws its initial weights from the
    global torch generator; the weights are drawn later by
    :meth:`Autoencoder.init_random` from a local generator instead. The
    layer is made on the meta device, where nothing is drawn, and given
    real storage after: ``nn.utils.skip_init`` does the same through
    ``to_empty``, whose first call imports sympy, half a second.
    """
    layer = nn.Linear(n_in, n_out, device="meta", dtype=dtype)
    layer.weight = nn.Parameter(torch.empty(n_out, n_in, dtype=dtype))
    layer.bias = nn.Parameter(torch.empty(n_out, dtype=dtype))
    return layer


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
        shift=None,
        scale=1.0,
    ):
        super().__init__()
        self.hidden_layer_sizes = tuple(int(width) for width in hidden_layer_sizes)
        self.activation = activation
        self.code_activation = code_activation
        self.output_activation = output_activation
        self._build_layers([n_features, *self.hidden_layer_sizes, encoding_dim], dtype)
        if shift is None:
            shift = torch.zeros(n_features, dtype=dtype)
        self.register_buffer("shift", torch.as_tensor(shift, dtype=dtype))
        self.register_buffer("scale", torch.tensor(scale, dtype=dtype))

    def _build_layers(self, widths, dtype):
        """The layers for ``widths``, from the input through the hidden layers to the code."""
        self.encoder = _stack(widths, self.activation, self.code_activation, dtype=dtype)
        self.decoder = _stack(widths[::-1], self.activation, "identity", dtype=dtype)

    @property
    def dtype(self):
        """Dtype of the parameters."""
        return self.scale.dtype

    @property
    def n_features(self):
        return self.shift.shape[0]

    @property
    def encoding_dim(self):
        return self.decoder[0].in_features

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

    def _linear_layers(self):
        """The ``nn.Linear`` layers, encoder first."""
        return [m for m in self.modules() if isinstance(m, nn.Linear)]

    def penalized_parameters(self):
        """The weights the L2 penalty covers: every layer's, biases excluded."""
        return [layer.weight for layer in self._linear_layers()]

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
        with torch.no_grad():
            for layer in self._linear_layers():
                fan_out, fan_in = layer.weight.shape
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.zero_()

    @property
    def spec(self):
        """Plain values from which :func:`build_network` makes this network."""
        return {
            "kind": self.kind,
            "n_features": int(self.n_features),
            "encoding_dim": int(self.encoding_dim),
            "hidden_layer_sizes": list(self.hidden_layer_sizes),
            "activation": self.activation,
            "code_activation": self.code_activation,
            "output_activation": self.output_activation,
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    @staticmethod
    def coef_shapes(spec):
        """Shapes of the ``coefs`` of :meth:`to_arrays` for a network of ``spec``."""
        widths = [spec["n_features"], *spec["hidden_layer_sizes"], spec["encoding_dim"]]
        encoder = list(itertools.pairwise(widths))
        return encoder + [(n_out, n_in) for n_in, n_out in reversed(encoder)]

    def to_arrays(self):
        """The weights as numpy arrays, copied to CPU.

        Returns
        -------
        coefs : list of ndarray
            Weight matrices of shape (n_in, n_out), one per linear layer,
            encoder first, as :class:`~sklearn.neural_network.MLPRegressor`
            holds its ``coefs_``.

        intercepts : list of ndarray
            Bias vectors, in the same order.

        shift : ndarray of shape (n_features,)

        scale : float
        """
        layers = self._linear_layers()
        coefs = [layer.weight.detach().cpu().T.numpy().copy() for layer in layers]
        intercepts = [layer.bias.detach().cpu().numpy().copy() for layer in layers]
        return coefs, intercepts, self.shift.cpu().numpy().copy(), float(self.scale)

    @torch.no_grad()
    def load_arrays(self, coefs, intercepts, shift, scale):
        """Set the weights from arrays shaped as :meth:`to_arrays` returns them."""
        layers = self._linear_layers()
        if len(coefs) != len(layers) or len(intercepts) != len(layers):
            raise ValueError(
                f"The network has {len(layers)} layers, got {len(coefs)} weight "
                f"matrices and {len(intercepts)} bias vectors."
            )
        for layer, coef, intercept in zip(layers, coefs, intercepts, strict=True):
            _copy_into(layer.weight, np.asarray(coef).T, "weight")
            _copy_into(layer.bias, intercept, "bias")
        _copy_into(self.shift, shift, "shift")
        self.scale.fill_(float(scale))
        return self


def _copy_into(tensor, array, name):
    array = np.asarray(array)
    if tuple(array.shape) != tuple(tensor.shape):
        raise ValueError(
            f"A {name} of shape {tuple(array.shape)} does not fit the network's "
            f"{tuple(tensor.shape)}."
        )
    tensor.copy_(torch.from_numpy(np.ascontiguousarray(array)))


def _branch(widths, activation, *, dtype):
    """A perceptron through ``widths``, without an activation after its last layer."""
    return _stack(widths, activation, "identity", dtype=dtype)


class ResidualAutoencoder(Autoencoder):
    """A linear autoencoder plus a nonlinear correction that starts at zero.

    The code is a linear map of the (normalised) input plus a perceptron of
    it, and the reconstruction a linear map of the code plus a perceptron
    of it::

        z = W_e x + b_e + g_e(x)
        r = W_d z + b_d + g_d(z / code_scale)

    ``g_e`` runs through ``hidden_layer_sizes`` and ``g_d`` mirrors it. The
    last layer of each starts at zero (see :meth:`init_random`), so that the
    network starts as its linear path: started at PCA's solution, it begins
    where PCA ends. ``code_scale`` holds the spread of each code at the
    start, so that the decoder's perceptron sees codes of unit scale.

    The parameters are those of :class:`Autoencoder`; ``code_activation``
    must be "identity".
    """

    kind = "residual"

    def _build_layers(self, widths, dtype):
        if self.code_activation != "identity":
            raise ValueError("A residual autoencoder has a linear code.")
        n_features, encoding_dim = widths[0], widths[-1]
        self.encoder = _linear(n_features, encoding_dim, dtype=dtype)
        self.encoder_branch = _branch(widths, self.activation, dtype=dtype)
        self.decoder = _linear(encoding_dim, n_features, dtype=dtype)
        self.decoder_branch = _branch(widths[::-1], self.activation, dtype=dtype)
        self.register_buffer("code_scale", torch.ones(encoding_dim, dtype=dtype))

    @property
    def encoding_dim(self):
        return self.decoder.in_features

    def forward(self, x):
        return self._decode_logits(self.encoder(x) + self.encoder_branch(x))

    def _decode_logits(self, codes):
        return self.decoder(codes) + self.decoder_branch(codes / self.code_scale)

    def encode(self, x):
        weight = self.encoder.weight / self.scale
        linear = F.linear(x, weight, self.encoder.bias - weight @ self.shift)
        return linear + self.encoder_branch(self.normalize(x))

    def decode(self, codes):
        return self.activate(self._decode_logits(codes)) * self.scale + self.shift

    @property
    def linear_path(self):
        return self.encoder, self.decoder

    @property
    def perceptrons(self):
        return [self.encoder], [self.decoder], self.encoder_branch, self.decoder_branch

    @torch.no_grad()
    def set_code_scale(self, sample):
        """Set ``code_scale`` to the spread of each code over rows of data.

        Codes that barely vary (beyond the data's rank) get a hundredth of
        the largest spread, so that dividing by it amplifies nothing.
        """
        if len(sample) < 2:
            return
        spread = self.encode(sample.to(self.dtype)).std(dim=0)
        floor = 1e-2 * float(spread.max())
        self.code_scale.copy_(spread.clamp(min=floor) if floor > 0 else torch.ones_like(spread))

    @property
    def is_linear(self):
        return False

    def init_random(self, generator):
        """Random weights, the last layer of each perceptron at zero.

        The linear path gets Glorot-uniform weights, the perceptrons' other
        layers He-uniform ones, suited to the rectifiers they are built for.
        """
        super().init_random(generator)
        with torch.no_grad():
            for branch in (self.encoder_branch, self.decoder_branch):
                layers = [m for m in branch if isinstance(m, nn.Linear)]
                for layer in layers[:-1]:
                    bound = math.sqrt(6.0 / layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    bound = 1.0 / math.sqrt(layer.in_features)
                    layer.bias.uniform_(-bound, bound, generator=generator)
                layers[-1].weight.zero_()

    @staticmethod
    def coef_shapes(spec):
        widths = [spec["n_features"], *spec["hidden_layer_sizes"], spec["encoding_dim"]]
        branch = list(itertools.pairwise(widths))
        d, k = spec["n_features"], spec["encoding_dim"]
        return [(d, k), *branch, (k, d), *[(n_out, n_in) for n_in, n_out in reversed(branch)]]

    @property
    def spec(self):
        # The code scale is fixed at the start: it describes the network.
        return {**super().spec, "code_scale": self.code_scale.cpu().tolist()}


NETWORKS = {cls.kind: cls for cls in (Autoencoder, ResidualAutoencoder)}


def build_network(spec):
    """A network, its weights not yet set, from :attr:`Autoencoder.spec`."""
    module = NETWORKS[spec["kind"]](
        spec["n_features"],
        spec["encoding_dim"],
        spec["hidden_layer_sizes"],
        spec["activation"],
        spec["code_activation"],
        spec["output_activation"],
        dtype=DTYPES[spec["dtype"]],
    )
    if "code_scale" in spec:
        with torch.no_grad():
            _copy_into(module.code_scale, np.asarray(spec["code_scale"]), "code scale")
    return module
