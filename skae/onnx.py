"""Conversion of skae's estimators to ONNX, with skl2onnx.

Importing this module registers a shape calculator and a converter with
`skl2onnx <https://onnx.ai/sklearn-onnx/>`_ for each of skae's estimators,
so that :func:`skl2onnx.to_onnx` converts them, alone or as steps of a
:class:`~sklearn.pipeline.Pipeline` beside scikit-learn's own estimators.
The graph runs in onnxruntime or any other ONNX runtime, without Python,
torch or skae.

The graph of :class:`~skae.AutoencoderTransformer` computes ``transform``:
the network's encoder, with the normalisation folded into its first layer
as ``transform`` does it. It is written in the dtype of the input it is
given, float32 (``X[:1].astype(np.float32)``, the usual choice) or float64,
and in float32 for integer input; a model fitted in float64 converts to
either.

onnxruntime has no float64 kernels for the ``Elu`` and ``Erf`` operators: a
float64 graph computes "elu" from other operators, exactly, and the error
function inside "gelu" in float32.

This module needs the optional dependencies of the ``onnx`` extra:
``pip install "skae[onnx]"``.

Examples
--------
>>> import numpy as np
>>> import onnxruntime
>>> import skl2onnx
>>> from sklearn.datasets import load_digits
>>> import skae.onnx
>>> from skae import AutoencoderTransformer
>>> X, _ = load_digits(return_X_y=True)
>>> X = (X / 16).astype(np.float32)
>>> ae = AutoencoderTransformer(encoding_dim=8, max_iter=3, random_state=0).fit(X)
>>> onx = skl2onnx.to_onnx(ae, X[:1])
>>> session = onnxruntime.InferenceSession(
...     onx.SerializeToString(), providers=["CPUExecutionProvider"]
... )
>>> codes = session.run(None, {"X": X})[0]
>>> codes.shape
(1797, 8)
>>> bool(np.allclose(codes, ae.transform(X), atol=1e-4))
True
"""

from dataclasses import dataclass

import numpy as np
from sklearn.utils.validation import check_is_fitted

try:
    from onnx import TensorProto
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
    )
    from skl2onnx.common.utils import (
        check_input_and_output_numbers,
        check_input_and_output_types,
    )
except ImportError as error:
    raise ImportError(
        "skae.onnx needs skl2onnx and onnx, which are not installed. Install them "
        'with: pip install "skae[onnx]"'
    ) from error

from skae._autoencoder import AutoencoderTransformer
from skae._nn._contract import KINDS

# The first opset of each operator the graphs use, in the form they use it
# (Add and its kin broadcast as numpy does from opset 7, Clip takes its
# bounds as inputs from opset 11).
_SINCE = {
    "Add": 7,
    "Cast": 6,
    "Clip": 11,
    "Conv": 1,
    "ConvTranspose": 1,
    "Elu": 6,
    "Erf": 9,
    "Exp": 6,
    "Flatten": 1,
    "Gelu": 20,
    "Identity": 1,
    "InstanceNormalization": 6,
    "MatMul": 1,
    "Mul": 7,
    "Relu": 6,
    "Reshape": 5,
    "Shape": 1,
    "Sigmoid": 6,
    "Sub": 7,
    "Tanh": 6,
}


@dataclass(frozen=True)
class _Network:
    """The fitted network of an estimator: its description, kind and named arrays."""

    spec: dict
    kind: type
    arrays: dict

    def encode(self, graph, x):
        """The nodes of the network's ``encode``."""
        return self.kind.onnx_encode(graph, self.arrays, self.spec, x)

    def decode(self, graph, codes):
        """The nodes of the network's ``decode``."""
        return self.kind.onnx_decode(graph, self.arrays, self.spec, codes)


class _Graph:
    """Writes the nodes of one estimator's graph into skl2onnx's container.

    Weights are folded in float64 and stored in the dtype of the graph, the
    dtype of its input.
    """

    def __init__(self, scope, operator, container):
        self.scope = scope
        self.operator = operator
        self.container = container
        self.owner = type(operator.raw_operator).__name__
        self.double = isinstance(operator.inputs[0].type, DoubleTensorType)
        self.dtype = np.float64 if self.double else np.float32
        self.opset = container.target_opset

    def input(self):
        """The estimator's input, cast to float32 when it holds integers."""
        variable = self.operator.inputs[0]
        if isinstance(variable.type, Int64TensorType):
            return self.node("Cast", variable.full_name, to=TensorProto.FLOAT)
        return variable.full_name

    def output(self, x):
        """Make ``x`` the estimator's output."""
        self.node("Identity", x, output=self.operator.outputs[0].full_name)

    def has(self, op_type):
        """Whether the target opset has ``op_type``."""
        return self.opset is None or self.opset >= _SINCE[op_type]

    def node(self, op_type, *inputs, output=None, purpose="the network", **attrs):
        """Add a node of one output and return the output's name.

        ``output`` names the output; a new name is made when it is None.
        """
        if not self.has(op_type):
            raise RuntimeError(
                f"{self.owner} cannot be converted to ONNX with target_opset="
                f"{self.opset}: {purpose} uses the operator {op_type}, added in "
                f"opset {_SINCE[op_type]}. Pass target_opset={_SINCE[op_type]} or later."
            )
        if output is None:
            output = self.scope.get_unique_variable_name(op_type.lower())
        self.container.add_node(
            op_type,
            list(inputs),
            output,
            name=self.scope.get_unique_operator_name(op_type),
            **attrs,
        )
        return output

    def constant(self, value, name="c"):
        """Add an initializer holding ``value`` in the graph's dtype."""
        value = np.asarray(value, dtype=self.dtype)
        output = self.scope.get_unique_variable_name(name)
        proto = TensorProto.DOUBLE if self.double else TensorProto.FLOAT
        self.container.add_initializer(output, proto, value.shape, value.ravel())
        return output

    def integers(self, values, name="shape"):
        """Add an initializer holding int64 ``values``, a shape, say."""
        values = np.asarray(values, dtype=np.int64)
        output = self.scope.get_unique_variable_name(name)
        self.container.add_initializer(output, TensorProto.INT64, values.shape, values.ravel())
        return output

    def linear(self, x, coef, intercept):
        """``x @ coef + intercept``."""
        product = self.node("MatMul", x, self.constant(coef, "coef"))
        return self.node("Add", product, self.constant(intercept, "intercept"))

    def activation(self, x, name):
        """One of the hidden or code activations of ``skae._nn._contract.ACTIVATIONS``."""
        return _ACTIVATIONS[name](self, x)

    def output_activation(self, x, name):
        """One of the output activations of ``skae._nn._contract.OUTPUT_ACTIVATIONS``."""
        return _OUTPUT_ACTIVATIONS[name](self, x)


def _elu(graph, x):
    purpose = "the 'elu' activation"
    if not graph.double:
        return graph.node("Elu", x, alpha=1.0, purpose=purpose)
    # onnxruntime has no float64 Elu: relu(x) - relu(1 - exp(x)) is exactly
    # x for x > 0 and exp(x) - 1 otherwise.
    exp = graph.node("Exp", x, purpose=purpose)
    negative = graph.node(
        "Relu", graph.node("Sub", graph.constant(1.0), exp, purpose=purpose), purpose=purpose
    )
    return graph.node("Sub", graph.node("Relu", x, purpose=purpose), negative, purpose=purpose)


def _gelu(graph, x):
    """The exact GELU, ``x * (1 + erf(x / sqrt(2))) / 2``, as torch's ``nn.GELU()``."""
    purpose = "the 'gelu' activation"
    if not graph.double and graph.has("Gelu"):
        return graph.node("Gelu", x, purpose=purpose)
    scaled = graph.node("Mul", x, graph.constant(np.sqrt(0.5)), purpose=purpose)
    if graph.double:
        # onnxruntime has no float64 Erf.
        single = graph.node("Cast", scaled, to=TensorProto.FLOAT, purpose=purpose)
        erf = graph.node("Erf", single, purpose=purpose)
        erf = graph.node("Cast", erf, to=TensorProto.DOUBLE, purpose=purpose)
    else:
        erf = graph.node("Erf", scaled, purpose=purpose)
    half = graph.node("Mul", x, graph.constant(0.5), purpose=purpose)
    return graph.node("Add", half, graph.node("Mul", half, erf, purpose=purpose), purpose=purpose)


_ACTIVATIONS = {
    "identity": lambda graph, x: x,
    "relu": lambda graph, x: graph.node("Relu", x),
    "tanh": lambda graph, x: graph.node("Tanh", x),
    "logistic": lambda graph, x: graph.node("Sigmoid", x),
    "elu": _elu,
    "gelu": _gelu,
}

_OUTPUT_ACTIVATIONS = {
    "identity": lambda graph, x: x,
    "sigmoid": lambda graph, x: graph.node("Sigmoid", x),
    "clip": lambda graph, x: graph.node(
        "Clip",
        x,
        graph.constant(0.0),
        graph.constant(1.0),
        purpose="the 'clip' output activation",
    ),
}


def _fitted_network(estimator):
    """The estimator's fitted network, or an error saying why it cannot be converted."""
    name = type(estimator).__name__
    check_is_fitted(
        estimator,
        msg=f"This {name} instance is not fitted yet: fit it before converting it to ONNX.",
    )
    spec = estimator._network_spec
    kind = KINDS.get(spec["kind"])
    if not hasattr(kind, "onnx_encode"):
        convertible = sorted(name for name, cls in KINDS.items() if hasattr(cls, "onnx_encode"))
        raise NotImplementedError(
            f"skae.onnx cannot convert {name} with a network of kind {spec['kind']!r}; "
            f"it converts the kinds {convertible}."
        )
    for parameter, known in (
        ("activation", _ACTIVATIONS),
        ("code_activation", _ACTIVATIONS),
        ("output_activation", _OUTPUT_ACTIVATIONS),
    ):
        if spec[parameter] not in known:
            raise NotImplementedError(
                f"skae.onnx cannot convert {name} with {parameter}={spec[parameter]!r}; "
                f"it converts {sorted(known)}."
            )
    arrays = {name: getattr(estimator, name) for name in kind.array_names}
    return _Network(spec, kind, arrays)


def _check_input(operator, n_features):
    """Check that the operator has one 2-D float input of ``n_features`` columns."""
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=1)
    check_input_and_output_types(
        operator, good_input_types=[FloatTensorType, DoubleTensorType, Int64TensorType]
    )
    shape = operator.inputs[0].type.shape
    name = type(operator.raw_operator).__name__
    if len(shape) != 2:
        raise RuntimeError(f"{name} converts 2-D inputs, got shape {shape}.")
    if isinstance(shape[1], int) and shape[1] != n_features:
        raise RuntimeError(
            f"The input has {shape[1]} features, but {name} is expecting {n_features} "
            "features as input."
        )


def _output_type(operator):
    """float64 for a float64 input, float32 for the others."""
    if isinstance(operator.inputs[0].type, DoubleTensorType):
        return DoubleTensorType
    return FloatTensorType


def _transformer_shape(operator):
    """Shape calculator of AutoencoderTransformer: (N, n_features) to (N, n_components_)."""
    network = _fitted_network(operator.raw_operator)
    _check_input(operator, network.spec["n_features"])
    n_samples = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = _output_type(operator)([n_samples, network.spec["encoding_dim"]])


def _convert_transformer(scope, operator, container):
    """Converter of AutoencoderTransformer: the graph of ``transform``."""
    network = _fitted_network(operator.raw_operator)
    graph = _Graph(scope, operator, container)
    graph.output(network.encode(graph, graph.input()))


update_registered_converter(
    AutoencoderTransformer,
    "SkaeAutoencoderTransformer",
    _transformer_shape,
    _convert_transformer,
)
