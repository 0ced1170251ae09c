"""One mini-batch's loss and gradients: by autograd, or by formulas worked out by hand.

A step is called with a selection of rows; it writes the gradients of the
objective (loss plus L2 penalty) to the flat gradient tensor and returns the
batch's summed loss as a tensor. Steps use the network only through the
contract of :mod:`skae._nn._contract`.
"""

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from skae._nn._batches import MaskedPairs, as_tensor, take
from skae._nn._linear_step import LinearStep, is_normalized
from skae._nn._objective import nested_dropout, objective
from skae._nn._optim import views

__all__ = ["AutogradStep", "LinearStep", "PerceptronStep", "corrupt", "trainable"]


def corrupt(batch, noise, noise_level, generator):
    """Return a corrupted copy of ``batch`` for denoising training."""
    if noise == "gaussian":
        gaussian = torch.randn(
            batch.shape, generator=generator, dtype=batch.dtype, device="cpu"
        ).to(batch.device)
        return batch + noise_level * gaussian
    keep = torch.rand(batch.shape, generator=generator, device="cpu") >= noise_level
    return batch * keep.to(batch.device)


class AutogradStep:
    """Loss and gradients of a mini-batch by automatic differentiation.

    Works for any network, input corruption and device, and for
    :class:`~skae._nn._batches.MaskedPairs`, whose loss is the mean over the
    batch's masked entries. Calling it with a selection of rows writes the
    gradients of the objective (loss plus L2 penalty) to the flat gradient
    and returns the batch's summed loss. Parameters that do not require
    gradients are left out.
    """

    def __init__(self, module, X, grad, *, options, generator, device):
        self.module = module
        self.pairs = None
        if isinstance(X, MaskedPairs):
            self.pairs = [as_tensor(X.inputs), as_tensor(X.targets), as_tensor(X.mask)]
            X = X.targets
        self.X = X
        self.dense = None if sp.issparse(X) else as_tensor(X)
        self.params = trainable(module)
        self.grads = views(grad, self.params)
        weights = {id(weight) for weight in module.penalized_parameters()}
        self.weights = [p for p in self.params if id(p) in weights]
        self.weight_grads = [
            g for p, g in zip(self.params, self.grads, strict=True) if id(p) in weights
        ]
        self.options = options
        self.loss = options.loss
        self.alpha = options.alpha
        self.noise = options.noise
        self.noise_level = options.noise_level
        self.ordered = options.ordered
        self.generator = generator
        self.device = device
        self.normalized = is_normalized(module)
        # In bfloat16 the parameters are a bfloat16 copy of the master
        # weights; autocast runs the products in bfloat16 and the loss is
        # taken in full precision.
        self.autocast = options.precision == "bfloat16"

    def batch(self, rows):
        """Normalised inputs, targets and mask (None for plain rows) of the selected rows."""
        module = self.module
        if self.pairs is None:
            targets = take(self.X, self.dense, rows).to(self.device, non_blocking=True)
            inputs, mask = targets, None
        else:
            inputs, targets, mask = (
                take(None, array, rows).to(self.device, non_blocking=True) for array in self.pairs
            )
        clean = inputs is targets
        if self.noise is not None:
            inputs, clean = corrupt(inputs, self.noise, self.noise_level, self.generator), False
        if self.normalized:
            targets = module.normalize(targets)
            inputs = targets if clean else module.normalize(inputs)
        return inputs, targets, mask

    def penalize(self, n_rows):
        """Add the L2 penalty's gradient, alpha * W / n_rows, to the weights' gradients.

        For the steps worked out by hand; the gradient of the ``"l2"`` term
        of :func:`~skae._nn._objective.objective`.
        """
        if self.alpha:
            with torch.no_grad():
                torch._foreach_add_(self.weight_grads, self.weights, alpha=self.alpha / n_rows)

    def __call__(self, rows):
        module = self.module
        inputs, targets, mask = self.batch(rows)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            if self.ordered:
                codes, _ = nested_dropout(module.codes(inputs), self.generator)
                logits = module.decode_logits(codes)
            else:
                logits = module(inputs, generator=self.generator)
        value, total = objective(module, logits.to(targets.dtype), targets, mask, self.options)
        grads = torch.autograd.grad(value, self.params)
        torch._foreach_copy_(self.grads, grads)
        return total


# The derivative of each hidden activation, applied to the gradient of its
# output, from its input ("pre") or its output ("out").
_ACTIVATION_BACKWARD = {
    nn.ReLU: lambda grad, pre, out: torch.ops.aten.threshold_backward(grad, out, 0.0),
    nn.Tanh: lambda grad, pre, out: torch.ops.aten.tanh_backward(grad, out),
    nn.Sigmoid: lambda grad, pre, out: torch.ops.aten.sigmoid_backward(grad, out),
    nn.ELU: lambda grad, pre, out: torch.ops.aten.elu_backward(grad, 1.0, 1, 1, True, out),
    nn.GELU: lambda grad, pre, out: torch.ops.aten.gelu_backward(grad, pre),
}


class _Perceptron:
    """Forward and backward passes of a stack of linear layers and activations.

    ``stack`` is a sequence of ``nn.Linear`` layers, each followed by an
    activation module or not, and ``grad_of`` maps the ``id`` of each
    parameter that trains to its view of the flat gradient; a frozen
    layer's gradients are not computed.
    """

    def __init__(self, stack, grad_of):
        self.layers = []
        modules = list(stack)
        for i, layer in enumerate(modules):
            if isinstance(layer, nn.Linear):
                after = modules[i + 1] if i + 1 < len(modules) else None
                activation = None if isinstance(after, nn.Linear) else after
                self.layers.append(
                    (
                        layer.weight.detach(),
                        layer.bias.detach(),
                        grad_of.get(id(layer.weight)),
                        grad_of.get(id(layer.bias)),
                        activation,
                        None if activation is None else _ACTIVATION_BACKWARD[type(activation)],
                    )
                )
        self.saved = []
        self.frozen = all(layer[2] is None for layer in self.layers)

    @staticmethod
    def supports(stack):
        """Whether every module of ``stack`` is a linear layer or a known activation.

        A layer trains whole or not at all: its weight and bias both, or neither.
        """
        return all(
            (isinstance(m, nn.Linear) and m.weight.requires_grad == m.bias.requires_grad)
            or type(m) in _ACTIVATION_BACKWARD
            for m in stack
        )

    def forward(self, x):
        """The stack's output for ``x``, keeping what :meth:`backward` needs."""
        self.saved = []
        for weight, bias, _, _, activation, _ in self.layers:
            pre = torch.addmm(bias, x, weight.T)
            out = pre if activation is None else activation(pre)
            self.saved.append((x, pre, out))
            x = out
        return x

    def backward(self, grad, input_grad=True):
        """Write the layers' gradients, given that of the objective at the output.

        Returns the gradient with respect to the input of the last
        :meth:`forward`, or, without ``input_grad``, the first layer's
        pre-activation gradient, which costs one product less.
        """
        for i in reversed(range(len(self.layers))):
            weight, _, weight_grad, bias_grad, _, derivative = self.layers[i]
            x, pre, out = self.saved[i]
            if derivative is not None:
                grad = derivative(grad, pre, out)
            if weight_grad is not None:
                torch.mm(grad.T, x, out=weight_grad)
                torch.sum(grad, 0, out=bias_grad)
            if i > 0 or input_grad:
                grad = grad @ weight
        self.saved = []
        return grad


def _output_gradient(module, logits, targets, mask, loss):
    """The batch's summed loss and the gradient of the objective at the logits.

    The objective is the loss's mean over the batch's entries, or over its
    masked entries with a mask.
    """
    if loss == "bce" and mask is None:
        batch_loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
        return batch_loss, torch.sigmoid(logits).sub_(targets).div_(targets.numel())
    output = module.activate(logits)
    residual = output - targets
    if mask is not None:
        residual.mul_(mask)
    batch_loss = torch.dot(residual.view(-1), residual.view(-1))
    count = targets.numel() if mask is None else mask.sum().clamp(min=1)
    residual.mul_(2.0).div_(count)
    if module.output_activation == "clip":
        return batch_loss, torch.ops.aten.hardtanh_backward(residual, logits, 0.0, 1.0)
    if module.output_activation == "sigmoid":
        return batch_loss, torch.ops.aten.sigmoid_backward(residual, output)
    return batch_loss, residual


class PerceptronStep(AutogradStep):
    """Loss and gradients of a network made of perceptrons, worked out by hand.

    The network is an encoder and a decoder, each a stack of linear layers
    and activations, with, for a network built beside a linear path, a
    perceptron beside each (see :attr:`skae._nn.linear.Autoencoder.perceptrons`).
    The forward and backward passes run as matrix products into the flat
    gradient, without building an autograd graph, with the inputs,
    corruption, losses and penalty of :class:`AutogradStep`, and the same
    gradients. Layers that do not train (the imputer's linear path) get
    none, as autograd leaves them out.
    """

    def __init__(self, module, X, grad, *, options, generator, device):
        super().__init__(module, X, grad, options=options, generator=generator, device=device)
        grad_of = {id(p): g for p, g in zip(self.params, self.grads, strict=True)}
        self.encoder, self.decoder, self.encoder_branch, self.decoder_branch = (
            None if stack is None else _Perceptron(stack, grad_of) for stack in module.perceptrons
        )
        self.code_scale = module.code_scale if self.encoder_branch is not None else None

    @staticmethod
    def applies(module, X, options, device):
        """Whether this step computes the same gradients as autograd would."""
        combination = (options.loss, module.output_activation)
        return (
            combination
            in {("mse", "clip"), ("mse", "identity"), ("mse", "sigmoid"), ("bce", "sigmoid")}
            and all(
                _Perceptron.supports(stack) for stack in module.perceptrons if stack is not None
            )
            and options.precision != "bfloat16"
            and device.type == "cpu"
            and any(p.requires_grad for p in module.parameters())
        )

    @torch.no_grad()
    def __call__(self, rows):
        inputs, targets, mask = self.batch(rows)
        beside = self.encoder_branch is not None
        codes = self.encoder.forward(inputs)
        if beside:
            codes = codes + self.encoder_branch.forward(inputs)
        if self.ordered:
            codes, keep = nested_dropout(codes, self.generator)
        logits = self.decoder.forward(codes)
        if beside:
            logits = logits + self.decoder_branch.forward(codes / self.code_scale)
        batch_loss, grad = _output_gradient(self.module, logits, targets, mask, self.loss)
        codes_grad = self.decoder.backward(grad)
        if beside:
            codes_grad += self.decoder_branch.backward(grad).div_(self.code_scale)
        if self.ordered:
            codes_grad.mul_(keep)
        if beside:
            self.encoder_branch.backward(codes_grad, input_grad=False)
        if not self.encoder.frozen:
            self.encoder.backward(codes_grad, input_grad=False)
        self.penalize(targets.shape[0])
        return batch_loss


def trainable(module):
    """The parameters training updates: those that require gradients."""
    return [p for p in module.parameters() if p.requires_grad]
