"""The step of a one-layer linear autoencoder, its gradients worked out by hand.

For a linear encoder and decoder, the forward and backward passes of a
mini-batch are five matrix products into buffers allocated once, without
an autograd graph; :class:`LinearStep` computes the gradients autograd
would, at little more than the cost of its arithmetic.
"""

import scipy.sparse as sp
import torch
import torch.nn.functional as F

from skae._nn._batches import MaskedPairs, as_tensor
from skae._nn._objective import nested_dropout
from skae._nn._optim import views


class LinearStep:
    """Loss and gradients of a one-layer linear autoencoder, worked out by hand.

    For an encoder and a decoder that are single linear layers with a linear
    code, a mean squared error on a clipped or linear output, or a binary
    cross-entropy on a sigmoid output, the forward and backward passes are
    five matrix products and a few element-wise operations. They are run
    here into buffers allocated once, without building an autograd graph: a
    step then costs little more than its arithmetic.
    """

    def __init__(self, module, X, grad, *, options, generator=None, gather_ahead=False):
        encoder, decoder = module.linear_path
        self.generator = generator if options.ordered else None
        self.X = as_tensor(X)
        self.We, self.be = encoder.weight.detach(), encoder.bias.detach()
        self.Wd, self.bd = decoder.weight.detach(), decoder.bias.detach()
        self.gWe, self.gbe, self.gWd, self.gbd = views(grad, list(module.parameters()))
        self.output = "sigmoid" if options.loss == "bce" else module.output_activation
        self.alpha = options.alpha
        batch_size = options.batch_size
        self.normalized = is_normalized(module)
        self.shift = module.shift.detach()
        self.scale = float(module.scale)
        n_features, n_codes = self.Wd.shape
        dtype = self.We.dtype
        self.x = torch.empty(batch_size, n_features, dtype=dtype)
        # With gather_ahead, the rows of the next batch are gathered into a
        # second buffer while this one trains (see ``ahead``).
        self.x_next = torch.empty_like(self.x) if gather_ahead else None
        self.gathered = None
        self.z = torch.empty(batch_size, n_codes, dtype=dtype)
        self.dz = torch.empty(batch_size, n_codes, dtype=dtype)
        self.a = torch.empty(batch_size, n_features, dtype=dtype)
        self.r = torch.empty(batch_size, n_features, dtype=dtype)
        self.ones = torch.ones(batch_size, dtype=dtype)
        # Transposed views made once: making them costs microseconds per call.
        self.WeT, self.WdT = self.We.T, self.Wd.T
        self.full = self._buffers(batch_size)

    def _buffers(self, n):
        """The buffers for a batch of n rows, and views of them the step needs."""
        x, z, dz, a, r = self.x[:n], self.z[:n], self.dz[:n], self.a[:n], self.r[:n]
        return x, z, dz, a, r, a.T, dz.T, r.view(-1), self.ones[:n]

    @staticmethod
    def applies(module, X, options, device):
        """Whether this step computes the same gradients as autograd would."""
        combination = (options.loss, module.output_activation)
        return (
            module.is_linear
            and combination in {("mse", "clip"), ("mse", "identity"), ("bce", "sigmoid")}
            and options.noise is None
            and options.precision != "bfloat16"
            and device.type == "cpu"
            and not sp.issparse(X)
            and not isinstance(X, MaskedPairs)
            and all(p.requires_grad for p in module.parameters())
        )

    def _rows(self, rows, out):
        """The selected rows of X, normalised, in ``out`` or as a view of X."""
        if isinstance(rows, slice) and not self.normalized:
            return self.X[rows]
        if isinstance(rows, slice):
            x = torch.sub(self.X[rows], self.shift, out=out)
        else:
            x = torch.index_select(self.X, 0, rows, out=out)
            if self.normalized:
                x.sub_(self.shift)
        if self.normalized:
            x.div_(self.scale)
        return x

    def ahead(self, batches, executor):
        """Yield ``batches``, gathering each one's rows while the previous one trains.

        The rows of a shuffled batch lie scattered over X, and copying them
        together costs a tenth of a small network's step; ``executor``'s
        thread does it for batch i + 1 into one buffer while batch i trains
        from the other, on a core the process may use but torch does not.
        """
        buffers = self.x, self.x_next

        def gather(i):
            return executor.submit(self._rows, batches[i], buffers[i % 2][: len(batches[i])])

        future = gather(0)
        for i, rows in enumerate(batches):
            self.gathered = future.result()
            if i + 1 < len(batches):
                future = gather(i + 1)
            yield rows
        self.gathered = None

    def __call__(self, rows):
        x = self.gathered
        if x is not None:
            n = x.shape[0]
        elif isinstance(rows, slice):
            n = len(range(*rows.indices(self.X.shape[0])))
        else:
            n = rows.shape[0]
        buffers = self.full if n == self.x.shape[0] else self._buffers(n)
        x_buffer, z, dz, a, r, aT, dzT, r_flat, ones = buffers
        if x is None:
            x = self._rows(rows, x_buffer)
        torch.addmm(self.be, x, self.WeT, out=z)
        if self.generator is not None:
            # Nested dropout: the mean is held fixed, so only the kept
            # units pass gradients back to the encoder.
            truncated, keep = nested_dropout(z, self.generator)
            z.copy_(truncated)
        torch.addmm(self.bd, z, self.WdT, out=a)
        # The gradient of the summed loss with respect to the output's
        # pre-activation overwrites a.
        if self.output == "sigmoid":
            batch_loss = F.binary_cross_entropy_with_logits(a, x, reduction="sum")
            a.sigmoid_().sub_(x)
            scale = 1.0 / x.numel()
        else:
            if self.output == "clip":
                torch.clamp(a, 0.0, 1.0, out=r).sub_(x)
                torch.ops.aten.hardtanh_backward.grad_input(r, a, 0.0, 1.0, grad_input=a)
            else:
                r_flat = a.sub_(x).view(-1)
            batch_loss = torch.dot(r_flat, r_flat)
            scale = 2.0 / x.numel()
        decay = self.alpha / n
        torch.addmm(self.Wd, aT, z, beta=decay, alpha=scale, out=self.gWd)
        torch.addmv(self.bd, aT, ones, beta=0.0, alpha=scale, out=self.gbd)
        torch.mm(a, self.Wd, out=dz)
        if self.generator is not None:
            dz.mul_(keep)
        torch.addmm(self.We, dzT, x, beta=decay, alpha=scale, out=self.gWe)
        torch.addmv(self.be, dzT, ones, beta=0.0, alpha=scale, out=self.gbe)
        return batch_loss


def is_normalized(module):
    """Whether the module works on data shifted or scaled from the input's."""
    return bool(module.scale != 1) or bool(module.shift.any())
