"""The residual kind: a linear autoencoder plus a nonlinear correction that starts at zero."""

import itertools

import numpy as np
import torch
from torch import nn

from skae._nn import _graph
from skae._nn._contract import (
    COMMON_FIELDS,
    check_fields,
    copy_into,
    dense_shapes,
    positive_floats,
    register_kind,
)
from skae._nn._steps import PerceptronStep
from skae._nn.linear import Autoencoder, dense_layer, glorot_uniform, he_uniform, perceptron


class CorrectionBesideLinearPath:
    """What the kinds with corrections beside a linear path share.

    The encoder and decoder attributes are the linear path; the
    corrections' last layers start at zero, so that the network starts as
    that path, and ``code_scale`` (a buffer) holds the spread of each code
    at the start, by which the decoder's correction divides the codes.
    """

    @property
    def linear_path(self):
        return self.encoder, self.decoder

    @property
    def is_linear(self):
        return False

    @property
    def wants_sample(self):
        return True

    def decode(self, codes):
        return self.unnormalize(self.activate(self.decode_logits(codes)))

    def code_layers(self):
        branch = [m for m in self.encoder_branch if isinstance(m, nn.Linear)]
        return [self.encoder, branch[-1]], [
            (self.decoder, None),
            (self.decoder_branch[0], self.code_scale),
        ]

    @torch.no_grad()
    def with_code_scale(self, spec):
        """Take the code scale of a description, when it has one."""
        if "code_scale" in spec:
            copy_into(self.code_scale, np.asarray(spec["code_scale"]), "code scale")
        return self

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

    def start_at(self, components, mean, generator, sample=None, encoder_components=None):
        """Start the linear path at a linear model, then scale the codes on ``sample``."""
        super().start_at(components, mean, generator, sample, encoder_components)
        if sample is not None:
            self.set_code_scale(sample)


@register_kind
class ResidualAutoencoder(CorrectionBesideLinearPath, Autoencoder):
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

    The parameters are those of :class:`~skae._nn.linear.Autoencoder`;
    ``code_activation`` must be "identity".
    """

    kind = "residual"
    held_out_by_default = True

    def _build_layers(self, widths, dtype):
        if self.code_activation != "identity":
            raise ValueError("A residual autoencoder has a linear code.")
        n_features, encoding_dim = widths[0], widths[-1]
        self.encoder = dense_layer(n_features, encoding_dim, dtype=dtype)
        self.encoder_branch = perceptron(widths, self.activation, dtype=dtype)
        self.decoder = dense_layer(encoding_dim, n_features, dtype=dtype)
        self.decoder_branch = perceptron(widths[::-1], self.activation, dtype=dtype)
        self.register_buffer("code_scale", torch.ones(encoding_dim, dtype=dtype))

    @classmethod
    def accepts(cls, request):
        """A network with hidden layers started at PCA's solution."""
        return (
            request.get("image_shape") is None
            and bool(request["hidden_layer_sizes"])
            and request["init"] == "pca"
        )

    @classmethod
    def from_spec(cls, spec):
        module = super().from_spec(spec)
        return module.with_code_scale(spec)

    @classmethod
    def check_spec(cls, spec):
        check_fields(
            spec,
            {
                "kind": lambda v: v == cls.kind,
                **COMMON_FIELDS,
                "code_activation": lambda v: v == "identity",
                "code_scale": positive_floats(spec.get("encoding_dim")),
            },
        )

    @property
    def spec(self):
        # The code scale is fixed at the start: it describes the network.
        return {**super().spec, "code_scale": self.code_scale.cpu().tolist()}

    @classmethod
    def array_shapes(cls, spec):
        widths = [spec["n_features"], *spec["hidden_layer_sizes"], spec["encoding_dim"]]
        branch = list(itertools.pairwise(widths))
        d, k = spec["n_features"], spec["encoding_dim"]
        return dense_shapes(
            [(d, k), *branch, (k, d), *[(n_out, n_in) for n_in, n_out in reversed(branch)]]
        )

    @property
    def encoding_dim(self):
        return self.decoder.in_features

    def forward(self, x, generator=None):
        return self.decode_logits(self.codes(x))

    def codes(self, x):
        return self.encoder(x) + self.encoder_branch(x)

    def decode_logits(self, codes):
        return self.decoder(codes) + self.decoder_branch(codes / self.code_scale)

    def encode(self, x):
        branch = self.apply_normalized(self.encoder_branch[0], x)
        return self.apply_normalized(self.encoder, x) + self.encoder_branch[1:](branch)

    @property
    def perceptrons(self):
        return [self.encoder], [self.decoder], self.encoder_branch, self.decoder_branch

    def init_random(self, generator):
        """Random weights, the last layer of each perceptron at zero.

        The linear path gets Glorot-uniform weights, the perceptrons' other
        layers He-uniform ones, suited to the rectifiers they are built for.
        """
        glorot_uniform(self.linear_layers(), generator)
        with torch.no_grad():
            for branch in (self.encoder_branch, self.decoder_branch):
                layers = [m for m in branch if isinstance(m, nn.Linear)]
                for layer in layers[:-1]:
                    he_uniform(layer, generator)
                layers[-1].weight.zero_()

    def hand_step(self, X, options, device):
        return PerceptronStep if PerceptronStep.applies(self, X, options, device) else None

    @staticmethod
    def _layers(arrays, spec):
        """The encoder's linear layer, its perceptron's layers, and the decoder's likewise."""
        layers = list(zip(arrays["coefs_"], arrays["intercepts_"], strict=True))
        n_branch = len(spec["hidden_layer_sizes"]) + 1
        return layers[0], layers[1 : 1 + n_branch], layers[1 + n_branch], layers[2 + n_branch :]

    @classmethod
    def onnx_encode(cls, graph, arrays, spec, x):
        linear, branch, _, _ = cls._layers(arrays, spec)
        branch[0] = _graph.fold_normalization(*branch[0], arrays)
        linear = graph.linear(x, *_graph.fold_normalization(*linear, arrays))
        return graph.node("Add", linear, _graph.branch(graph, x, branch, spec["activation"]))

    @classmethod
    def onnx_decode(cls, graph, arrays, spec, codes):
        _, _, linear, branch = cls._layers(arrays, spec)
        # The perceptron sees the codes divided by the code scale.
        coef, intercept = branch[0]
        code_scale = np.asarray(spec["code_scale"], dtype=np.float64)
        branch[0] = np.asarray(coef, dtype=np.float64) / code_scale[:, np.newaxis], intercept
        linear_output = spec["output_activation"] == "identity"
        if linear_output:
            linear = _graph.fold_unnormalization(*linear, arrays)
            branch[-1] = _graph.fold_unnormalization(*branch[-1], arrays, shift=False)
        output = graph.node(
            "Add",
            graph.linear(codes, *linear),
            _graph.branch(graph, codes, branch, spec["activation"]),
        )
        return output if linear_output else _graph.unnormalize(graph, output, arrays, spec)
