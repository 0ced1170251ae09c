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

The graph of :class:`~skae.AutoencoderImputer` computes ``transform``:
observed entries pass through; missing ones get the linear model's fill,
solved in float64 by conjugate gradients in a ``Loop``, then the network's
correction. The graph of :class:`~skae.AutoencoderOutlierDetector` gives
``predict``'s labels and ``decision_function``, as skl2onnx's outlier
detectors do, and ``score_samples`` with ``{"score_samples": True}``.

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
from skae._detect._onnx import detector_scores
from skae._impute._onnx import imputer_graph
from skae._imputer import AutoencoderImputer
from skae._nn._contract import KINDS
from skae._nn._graph import ACTIVATIONS as _ACTIVATIONS
from skae._nn._graph import OUTPUT_ACTIVATIONS as _OUTPUT_ACTIVATIONS
from skae._outlier import AutoencoderOutlierDetector

# The first opset of each operator the graphs use, in the form they use it
# (Add and its kin broadcast as numpy does from opset 7, Clip takes its
# bounds as inputs from opset 11).
_SINCE = {
    "Add": 7,
    "Cast": 6,
    "Clip": 11,
    "Concat": 4,
    "Conv": 1,
    "ConvTranspose": 1,
    "Div": 7,
    "Elu": 6,
    "Equal": 11,
    "Erf": 9,
    "Exp": 6,
    "Flatten": 1,
    "Gather": 1,
    "Gelu": 20,
    "Identity": 1,
    "InstanceNormalization": 6,
    "IsNaN": 9,
    "Less": 9,
    "Loop": 11,
    "MatMul": 1,
    "Max": 8,
    "Min": 8,
    "Mul": 7,
    "Neg": 6,
    "Not": 1,
    "Relu": 6,
    "Reshape": 5,
    "Shape": 1,
    "Sigmoid": 6,
    "Sqrt": 6,
    "Sub": 7,
    "Tanh": 6,
    "TopK": 11,
    "Where": 9,
}
_PROTO_TYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.bool_): TensorProto.BOOL,
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

    def reconstruct(self, graph, x):
        """The nodes of the network's reconstruction of ``x``."""
        return self.kind.onnx_reconstruct(graph, self.arrays, self.spec, x)


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
        if output is None:
            output = self.scope.get_unique_variable_name(op_type.lower())
        self.nodes(op_type, *inputs, outputs=[output], purpose=purpose, **attrs)
        return output

    def nodes(self, op_type, *inputs, n_outputs=1, outputs=None, purpose="the network", **attrs):
        """Add a node of ``n_outputs`` outputs, or of ``outputs``, and return their names."""
        if not self.has(op_type):
            raise RuntimeError(
                f"{self.owner} cannot be converted to ONNX with target_opset="
                f"{self.opset}: {purpose} uses the operator {op_type}, added in "
                f"opset {_SINCE[op_type]}. Pass target_opset={_SINCE[op_type]} or later."
            )
        if outputs is None:
            name = op_type.lower()
            outputs = [self.scope.get_unique_variable_name(name) for _ in range(n_outputs)]
        self.container.add_node(
            op_type,
            list(inputs),
            outputs,
            name=self.scope.get_unique_operator_name(op_type),
            **attrs,
        )
        return outputs

    def constant(self, value, name="c", *, dtype=None):
        """Add an initializer holding ``value`` in ``dtype``, the graph's by default."""
        value = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        output = self.scope.get_unique_variable_name(name)
        self.container.add_initializer(
            output, _PROTO_TYPES[value.dtype], value.shape, value.ravel()
        )
        return output

    def cast(self, x, dtype):
        """``x`` cast to the float ``dtype``."""
        return self.node("Cast", x, to=_PROTO_TYPES[np.dtype(dtype)])

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

    def nearest(self, x, rows, n_neighbors, *, name="rows", purpose):
        """The ``n_neighbors`` nearest of ``rows`` to each row of ``x``, nearest first.

        Returns their distances, (N, n_neighbors) float64, and their
        indices among ``rows``. ``x`` is float64; the distances come from
        their expansion, in float64, exact to about 1e-8 of the rows' norms.
        """
        float64 = np.float64
        rows = np.asarray(rows, dtype=float64)
        ones = self.constant(np.ones((rows.shape[1], 1)), "ones", dtype=float64)
        squares = self.node(
            "Add",
            self.node("MatMul", self.node("Mul", x, x), ones),
            self.node("MatMul", x, self.constant(-2 * rows.T, name, dtype=float64)),
        )
        squares = self.node("Add", squares, self.constant((rows**2).sum(axis=1), dtype=float64))
        distances = self.node("Sqrt", self.node("Max", squares, self.constant(0.0, dtype=float64)))
        nearest, indices = self.nodes(
            "TopK",
            self.node("Neg", distances),
            self.constant([n_neighbors], "n_neighbors", dtype=np.int64),
            n_outputs=2,
            purpose=purpose,
            axis=1,
        )
        return self.node("Neg", nearest), indices

    def activation(self, x, name):
        """One of the hidden or code activations of ``skae._nn._contract.ACTIVATIONS``."""
        return _ACTIVATIONS[name](self, x)

    def output_activation(self, x, name):
        """One of the output activations of ``skae._nn._contract.OUTPUT_ACTIVATIONS``."""
        return _OUTPUT_ACTIVATIONS[name](self, x)


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


def _normalized(network):
    """The network with an identity normalisation: its layers as ``forward`` applies them."""
    arrays = {**network.arrays, "shift_": np.zeros_like(network.arrays["shift_"]), "scale_": 1.0}
    return _Network(network.spec, network.kind, arrays)


def _check_input(operator, n_features, n_outputs=1):
    """Check that the operator has one 2-D float input of ``n_features`` columns."""
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=n_outputs)
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


def _imputer_shape(operator):
    """Shape calculator of AutoencoderImputer: (N, n_features) to (N, n_features_out)."""
    imputer = operator.raw_operator
    network = _fitted_network(imputer)
    _check_input(operator, network.spec["n_features"])
    n_samples = operator.inputs[0].get_first_dimension()
    n_out = len(imputer.get_feature_names_out())
    operator.outputs[0].type = _output_type(operator)([n_samples, n_out])


def _convert_imputer(scope, operator, container):
    """Converter of AutoencoderImputer: the graph of ``transform``."""
    network = _normalized(_fitted_network(operator.raw_operator))
    graph = _Graph(scope, operator, container)
    graph.output(imputer_graph(graph, operator.raw_operator, network, graph.input()))


update_registered_converter(
    AutoencoderImputer, "SkaeAutoencoderImputer", _imputer_shape, _convert_imputer
)


# The outlier detector's graph: labels, decision_function and optionally
# score_samples, as skl2onnx's converters of scikit-learn's detectors give them.


def _parse_detector(scope, model, inputs, custom_parsers=None):
    """The detector's outputs: label, scores and, with that option, score_samples."""
    operator = scope.declare_local_operator("SkaeAutoencoderOutlierDetector", model)
    operator.inputs = inputs
    operator.outputs.append(scope.declare_local_variable("label", Int64TensorType()))
    score_samples = scope.get_options(model, {"score_samples": False})["score_samples"]
    for name in ["scores", "score_samples"][: 1 + score_samples]:
        operator.outputs.append(scope.declare_local_variable(name, _output_type(operator)()))
    return operator.outputs


def _detector_shape(operator):
    """Shape calculator of AutoencoderOutlierDetector: (N,) labels and (N,) scores."""
    network = _fitted_network(operator.raw_operator)
    _check_input(operator, network.spec["n_features"], n_outputs=[2, 3])
    n_samples = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = Int64TensorType([n_samples])
    for output in operator.outputs[1:]:
        output.type = _output_type(operator)([n_samples])


def _convert_detector(scope, operator, container):
    """Converter of AutoencoderOutlierDetector: predict, decision_function, score_samples."""
    detector, n_outputs = operator.raw_operator, len(operator.outputs)
    network = _fitted_network(detector)
    graph = _Graph(scope, operator, container)
    F = np.float64
    decision, scores = detector_scores(
        graph, detector, network, _normalized(network), graph.input()
    )
    outlier = graph.node("Less", decision, graph.constant(0.0, dtype=F))
    labels = (graph.constant(value, dtype=np.int64) for value in (-1, 1))
    graph.node("Where", outlier, *labels, output=operator.outputs[0].full_name)
    outputs = zip(operator.outputs[1:], (decision, scores)[: n_outputs - 1], strict=True)
    for output, values in outputs:
        graph.node("Cast", values, to=_PROTO_TYPES[np.dtype(graph.dtype)], output=output.full_name)


update_registered_converter(
    AutoencoderOutlierDetector,
    "SkaeAutoencoderOutlierDetector",
    _detector_shape,
    _convert_detector,
    parser=_parse_detector,
    options={"score_samples": [True, False]},
)
