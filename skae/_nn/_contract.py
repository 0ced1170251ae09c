"""What every network kind provides.

A network kind is one subclass of :class:`Network` in a file of its own,
registered with :func:`~skae._nn._registry.register_kind`. The estimators, the training loop,
persistence and the ONNX export use a network only through the members
below; none of them asks which kind it has.

Building
    ``accepts(request)``: whether the kind is the one to build for a
    resolved request (a dict of ``n_features``, ``encoding_dim``,
    ``hidden_layer_sizes``, ``activation``, ``code_activation``,
    ``output_activation``, ``init``, ``image_shape`` and ``dtype``, and
    ``corrects_input`` where the network restores entries hidden from its
    input);
    :func:`choose_kind` asks the registered kinds, the latest first.
    ``from_spec(spec)``: the module, its weights not yet set, from plain
    values. ``check_spec(spec)``: a ``ValueError`` naming the first field of
    a description (read from a file, say) that the kind cannot build.

Starting
    ``init_random(generator)``; ``start_at(components, mean, generator,
    sample)``: the linear path set to a linear model (PCA's solution, or the
    imputer's), the rest at random, so that the network starts as that
    model does. ``held_out_by_default``: whether ``early_stopping="auto"``
    holds out rows to check that training beats the start.

Running
    ``normalize(x)``, ``forward(x, generator=None)`` (normalised input to
    the reconstruction's logits; ``generator`` draws any training-time
    noise of the kind), ``activate(logits)``, ``encode(x)`` and
    ``decode(codes)`` in the data's units; ``penalties()``: the penalty
    terms by name (``"l2"``: the sum of squared weights the L2 penalty
    covers), which :func:`skae._nn._objective.objective` weighs;
    ``hand_step(X, options, device)``: the class of a step whose gradients
    are worked out by hand, or None for autograd; ``linear_path``.

Ordered codes
    ``codes(x)``, normalised input to codes, and ``decode_logits(codes)``,
    codes to the reconstruction's logits, which ``forward`` composes;
    ``code_layers()``, the linear layers that make the code and those that
    read it, from which :meth:`Network.truncate` keeps the first units of
    the code and folds the others, held at a fixed value, into the biases.
    A kind without them trains without ordering its codes.

State
    ``spec``: plain values from which ``from_spec`` builds the same network;
    ``array_shapes(spec)``: the shapes of the weights and biases a network
    of ``spec`` holds; ``to_arrays()`` and ``load_arrays(arrays)``: the
    fitted state as named numpy arrays, ``coefs_``, ``intercepts_``,
    ``shift_`` and ``scale_``, which the estimators keep as their fitted
    attributes and persistence saves.

Cost and export
    ``cost_per_row()``: multiply-adds of a forward pass and the widest row
    of activations, for the thread rule and the bound on inference passes;
    ``onnx_encode(graph, arrays, spec, x)`` and ``onnx_decode(graph,
    arrays, spec, codes)``: the ONNX nodes of ``encode`` and ``decode``,
    written through the graph writer of :mod:`skae.onnx`;
    ``onnx_reconstruct(graph, arrays, spec, x)``, those of the whole
    reconstruction, ``decode`` of ``encode`` unless the kind's
    reconstruction reads more than its code.

Nothing here knows about scikit-learn.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from skae._nn._registry import KINDS, build_network, choose_kind, register_kind, start_network
from skae._nn._start import start_linear_path

__all__ = [
    "ACTIVATIONS",
    "COMMON_FIELDS",
    "DTYPES",
    "KINDS",
    "OUTPUT_ACTIVATIONS",
    "Network",
    "build_network",
    "check_fields",
    "choose_kind",
    "copy_into",
    "dense_shapes",
    "is_count",
    "positive_floats",
    "register_kind",
    "start_network",
]

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


def check_fields(spec, fields):
    """Check a description against ``fields``, a validator by field name.

    The first field that is missing, a bool, or not valid is named in a
    ``ValueError``, as are fields the description should not have.
    """
    if not isinstance(spec, dict):
        raise ValueError("The network's description is not a dictionary.")
    for name, valid in fields.items():
        if name not in spec or isinstance(spec[name], bool) or not valid(spec[name]):
            raise ValueError(f"The network has an invalid {name}: {spec.get(name, 'missing')!r}.")
    if set(spec) != set(fields):
        raise ValueError(f"The network has unknown fields {sorted(set(spec) - set(fields))}.")


def is_count(value, minimum=1):
    """Whether a value read from a file is an int (not a bool) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


# The fields every kind's description has.
COMMON_FIELDS = {
    "n_features": is_count,
    "encoding_dim": is_count,
    "hidden_layer_sizes": lambda v: isinstance(v, list) and all(is_count(w) for w in v),
    "activation": lambda v: v in ACTIVATIONS,
    "code_activation": lambda v: v in ACTIVATIONS,
    "output_activation": lambda v: v in OUTPUT_ACTIVATIONS,
    "dtype": lambda v: v in DTYPES,
}


def positive_floats(length):
    """A validator of a list of ``length`` finite positive floats."""
    return lambda v: (
        isinstance(v, list)
        and len(v) == length
        and all(isinstance(c, float) and math.isfinite(c) and c > 0 for c in v)
    )


def copy_into(tensor, array, name):
    """Copy ``array`` into ``tensor``, or say which shapes differ."""
    array = np.asarray(array)
    if tuple(array.shape) != tuple(tensor.shape):
        raise ValueError(
            f"A {name} of shape {tuple(array.shape)} does not fit the network's "
            f"{tuple(tensor.shape)}."
        )
    tensor.copy_(torch.from_numpy(np.ascontiguousarray(array)))


class Network(nn.Module):
    """The base of every network kind: normalisation and the members they share.

    A network works on normalised data, ``(x - shift) / scale``, where
    ``shift`` is the mean of the training data and ``scale`` a single number,
    its root mean square deviation, for a linear output, and on the data
    as they are for a bounded one. One scale for all features keeps the
    least-squares objective as it is, while making training independent of
    the data's magnitude: :meth:`forward`, :meth:`activate` and the losses
    work in the normalised space, :meth:`encode` and :meth:`decode` map from
    and to the data's own.

    Subclasses build their layers in ``__init__`` after calling this one,
    and provide the members the module docstring lists.

    Parameters
    ----------
    n_features : int
        Width of the input and of the reconstruction.

    output_activation : {"identity", "sigmoid", "clip"}
        Applied to the decoder's output by :meth:`activate`. "clip" clamps
        it to [0, 1].

    dtype : torch.dtype
        Dtype of the parameters.
    """

    kind = None
    held_out_by_default = False
    # The names of the fitted state's arrays, as to_arrays gives them.
    array_names = ("coefs_", "intercepts_", "shift_", "scale_")

    def __init__(self, n_features, output_activation, dtype):
        super().__init__()
        self.output_activation = output_activation
        self.register_buffer("shift", torch.zeros(n_features, dtype=dtype))
        self.register_buffer("scale", torch.tensor(1.0, dtype=dtype))

    @property
    def dtype(self):
        """Dtype of the parameters."""
        return self.scale.dtype

    @property
    def n_features(self):
        return self.shift.shape[0]

    @torch.no_grad()
    def set_normalization(self, shift, scale):
        """Work on ``(x - shift) / scale``; ``shift`` None for zeros."""
        if shift is not None:
            copy_into(self.shift, np.asarray(shift, dtype=self.shift.numpy().dtype), "shift")
        self.scale.fill_(float(scale))
        return self

    def normalize(self, x):
        """Map data to the space the layers work in."""
        return (x - self.shift) / self.scale

    def apply_normalized(self, layer, x):
        """``layer(normalize(x))`` for a linear ``layer``, without normalising x.

        The normalisation is folded into the layer's weights and bias, which
        are small, rather than applied to ``x``, which may be large.
        """
        weight = layer.weight / self.scale
        return F.linear(x, weight, layer.bias - weight @ self.shift)

    def activate(self, logits):
        """Apply the output activation."""
        if self.output_activation == "sigmoid":
            return torch.sigmoid(logits)
        if self.output_activation == "clip":
            return logits.clamp(0.0, 1.0)
        return logits

    def unnormalize(self, output):
        """Map an activated output back to the data's units."""
        return output * self.scale + self.shift

    def start_at(self, components, mean, generator, sample=None, encoder_components=None):
        """Start at a linear model: the linear path at it, the rest at random.

        See :func:`~skae._nn._start.start_linear_path` for the parameters;
        kinds that scale anything on the training rows do it on ``sample``.
        """
        start_linear_path(
            self,
            components,
            mean,
            generator,
            sample=sample if self.output_activation == "sigmoid" else None,
            encoder_components=encoder_components,
        )

    def linear_layers(self):
        """The ``nn.Linear`` layers, in the order of the fitted arrays."""
        return [m for m in self.modules() if isinstance(m, nn.Linear)]

    def penalized_parameters(self):
        """The weights the L2 penalty covers: every layer's, biases excluded."""
        return [layer.weight for layer in self.linear_layers()]

    def penalties(self):
        """The penalty terms by name, unweighted."""
        return {"l2": sum(weight.square().sum() for weight in self.penalized_parameters())}

    def cost_per_row(self):
        """Multiply-adds of a forward pass of one row, and its widest row of values.

        For dense layers, a multiply-add per weight and an add per bias, and
        the widest of the input and the layers' outputs.
        """
        weights = self.penalized_parameters()
        return (
            sum(parameter.numel() for parameter in self.parameters()),
            max(self.n_features, *(weight.shape[0] for weight in weights)),
        )

    def hand_step(self, X, options, device):
        """The step that works out this network's gradients by hand, or None."""
        return None

    def starts_at_optimum(self, options):
        """Whether PCA's solution, as this network starts, minimises the objective of ``options``.

        Then no step can improve on the start, and "auto" ``max_iter`` plans
        a single epoch.
        """
        return False

    @classmethod
    def onnx_reconstruct(cls, graph, arrays, spec, x):
        """The ONNX nodes of the reconstruction of data ``x``: ``decode`` of ``encode``."""
        return cls.onnx_decode(graph, arrays, spec, cls.onnx_encode(graph, arrays, spec, x))

    # Ordered codes

    def codes(self, x):
        """Codes of normalised ``x``; ``decode_logits`` of them is ``forward(x)``."""
        raise NotImplementedError

    def decode_logits(self, codes):
        """The reconstruction's logits, in the normalised space, from codes."""
        raise NotImplementedError

    def code_layers(self):
        """The linear layers that output the code, and those that read it.

        Returns ``(makers, readers)``: ``makers`` a list of ``nn.Linear``
        layers whose outputs are added (then activated) to make the code;
        ``readers`` a list of ``(layer, divisor)``, an ``nn.Linear`` layer
        that reads the code divided by ``divisor`` (a tensor, or None).
        """
        raise NotImplementedError

    @classmethod
    def orders_codes(cls):
        """Whether the kind provides what ordered codes need."""
        return all(
            getattr(cls, name) is not getattr(Network, name)
            for name in ("codes", "decode_logits", "code_layers")
        )

    @torch.no_grad()
    def truncate(self, n_codes, fill):
        """Keep the first ``n_codes`` units of the code; the others are held at ``fill``.

        The units dropped are folded into the biases of the layers that
        read the code, so that the network returns the reconstructions it
        returned with those units at ``fill`` (a vector of the full code's
        width, in the units of :meth:`codes`). Returns a new network; this
        one is left as it was.
        """
        fill = torch.as_tensor(fill, dtype=self.dtype)
        cut = build_network(self.spec).load_arrays(self.to_arrays())
        makers, readers = cut.code_layers()
        for layer, divisor in readers:
            held = fill[n_codes:] if divisor is None else fill[n_codes:] / divisor[n_codes:]
            layer.bias.add_(layer.weight[:, n_codes:] @ held)
            layer.weight = nn.Parameter(layer.weight[:, :n_codes].clone())
            layer.in_features = n_codes
        for layer in makers:
            layer.weight = nn.Parameter(layer.weight[:n_codes].clone())
            layer.bias = nn.Parameter(layer.bias[:n_codes].clone())
            layer.out_features = n_codes
        if isinstance(getattr(cut, "code_scale", None), torch.Tensor):
            cut.code_scale = cut.code_scale[:n_codes].clone()
        return build_network(cut.spec).load_arrays(cut.to_arrays())

    def to_arrays(self):
        """The fitted state as named numpy arrays, copied to CPU.

        ``coefs_`` and ``intercepts_`` hold a weight array and a bias vector
        per layer of :meth:`linear_layers`, a dense layer's weights as
        (n_in, n_out), as :class:`~sklearn.neural_network.MLPRegressor`
        holds its ``coefs_``, other layers' (convolutions', say) in torch's
        layout.
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

    def base_spec(self, **fields):
        """The fields every kind's ``spec`` has, then ``fields``."""
        return {
            "kind": self.kind,
            "n_features": int(self.n_features),
            "encoding_dim": int(self.encoding_dim),
            "hidden_layer_sizes": list(self.hidden_layer_sizes),
            "activation": self.activation,
            "code_activation": self.code_activation,
            "output_activation": self.output_activation,
            "dtype": str(self.dtype).removeprefix("torch."),
            **fields,
        }

    @classmethod
    def array_shapes(cls, spec):
        """Shapes of the ``coefs_`` and of the ``intercepts_`` of a network of ``spec``.

        Persistence compares a file's arrays with them before building
        anything, so that a forged description cannot make it allocate more
        than the file holds.
        """
        raise NotImplementedError


def dense_shapes(layers):
    """``array_shapes`` of dense layers given as (n_in, n_out) pairs."""
    layers = list(layers)
    return layers, [(n_out,) for _, n_out in layers]
