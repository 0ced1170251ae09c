"""One call of the training loop, in three parts: set-up, one epoch, finish.

:class:`Run` holds what training needs between epochs: the flat parameters
and the optimizer, the step, the best weights so far and the stopping
rules. :func:`skae._nn._train.train` runs it epoch by epoch.
"""

import contextlib
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from skae._nn._accept import (
    PrefixErrors,
    prefix_dims,
    prefixes_significant,
    relative,
    significant,
)
from skae._nn._batches import (
    MaskedPairs,
    batches,
    entries_per_row,
    inference_rows,
    iter_pairs,
    reconstruction_error,
)
from skae._nn._objective import summed_loss
from skae._nn._optim import Adam, ComputeCopy, flat_parameters, learning_rate_at
from skae._nn._steps import AutogradStep, LinearStep, corrupt, trainable


@dataclass
class TrainingResult:
    """What a call to :func:`train` did.

    Attributes
    ----------
    loss_curve : list of float
        Mean training loss per element, one entry per epoch.

    validation_scores : list of float or None
        Negative mean squared reconstruction error on the validation set after
        each epoch; None without a validation set.

    best_epoch : int
        Epochs run before the weights kept: 0 when the starting weights were
        best.

    n_epochs : int
        Epochs run.

    stopped_early : bool
        Whether ``n_iter_no_change`` epochs without improvement ended the run.

    interrupted : bool
        Whether a KeyboardInterrupt ended the run.

    diverged : tuple of (int, float) or None
        The epoch and the per-element loss at which the loss grew far beyond
        that of the starting weights, ending the run; None if it did not.

    optimizer_state : dict
        The optimizer's state that goes with the weights kept, to continue
        training later.
    """

    loss_curve: list = field(default_factory=list)
    validation_scores: list | None = None
    best_epoch: int = 0
    n_epochs: int = 0
    stopped_early: bool = False
    interrupted: bool = False
    diverged: tuple | None = None
    optimizer_state: dict | None = None


class DivergenceError(ArithmeticError):
    """The starting weights themselves give a non-finite loss."""

    def __init__(self, loss):
        self.loss = loss
        super().__init__(f"the training loss of the starting weights is {loss}")


# A loss this many times that of the starting weights, or of an output of
# zeros, whichever is larger, ends training as diverged.
DIVERGENCE_FACTOR = 100.0
# ... and never below this loss per element, in the network's units.
DIVERGENCE_FLOOR = 1e-3
# Rows the starting weights' loss is measured on.
START_ROWS = 8192
# Batches between two checks of the loss within an epoch.
CHECK_EVERY = 8
# Training rows, at most, on which ordered codes are scored without
# validation rows.
ORDERED_SCORE_ROWS = 2048


@torch.no_grad()
def _start_losses(module, X, options, generator, device):
    """Per-element training losses of the starting weights and of a zero output.

    Both in the network's normalised units. With input corruption the inputs
    are corrupted as in training, drawing from a copy of ``generator``, so
    that the starting loss compares with the training loss and the
    training's random stream is left as it is.
    """
    loss = options.loss
    if options.noise is not None:
        generator = torch.Generator().set_state(generator.get_state())
    total, null = 0.0, 0.0
    # Passes of an eighth of the usual rows: their few temporaries stay small
    # beside the data, which a fit should not double.
    dtype = np.float32 if module.dtype == torch.float32 else np.float64
    rows = max(1, inference_rows(X.shape[1], dtype) // 8)
    # Every k-th row, at most START_ROWS of them: an estimate as good as the
    # epochs' mean losses it is compared with, at a fraction of an epoch's cost.
    X = X[:: -(-X.shape[0] // START_ROWS)]
    for inputs, batch, mask in iter_pairs(X, rows, device=device, dtype=module.dtype):
        target = module.normalize(batch)
        if options.noise is not None:
            inputs = corrupt(inputs, options.noise, options.noise_level, generator)
        logits = module(target if inputs is batch else module.normalize(inputs))
        total += float(summed_loss(module, logits, target, mask, loss))
        if loss == "bce" and mask is None:
            null += math.log(2.0) * target.numel()
        else:
            null += float((target.square() if mask is None else target.square() * mask).sum())
    n_elements = max(X.shape[0] * entries_per_row(X), 1)
    return total / n_elements, null / n_elements


class _Best:
    """The best master weights and optimizer state so far, and how they scored."""

    def __init__(self, flat, optimizer, value):
        self.flat = flat
        self.optimizer = optimizer
        self.keep(value, 0)

    def keep(self, value, epoch):
        self.value = value
        self.epoch = epoch
        self.weights = self.flat.clone()
        self.optimizer_state = self.optimizer.state_dict()

    def restore(self):
        self.flat.copy_(self.weights)
        self.optimizer.load_state(self.optimizer_state)


class Run:
    """One call of :func:`train` in three parts: set-up, one epoch, finish.

    Setting up measures the starting weights' loss, chooses the step (by
    hand where the network has one, else autograd) and holds the flat
    parameters and the optimizer; :meth:`epoch` runs one epoch and says
    whether training is to stop; :meth:`finish` restores the best weights.
    Used as a context manager, it owns the flat views of the parameters.
    """

    def __init__(self, module, X, options, *, generator, device, X_val, optimizer_state, **setup):
        self.module, self.X, self.X_val, self.options = module, X, X_val, options
        self.generator, self.device = generator, device
        self.optimizer_state = optimizer_state
        self.gather_ahead, self.keep_start = setup["gather_ahead"], setup["keep_start"]
        self.n_batches = math.ceil(X.shape[0] / options.batch_size)
        self.total_steps = max(options.max_iter * self.n_batches, 1)
        self.result = TrainingResult(validation_scores=None if X_val is None else [])
        self.loss_scale = float(module.scale) ** 2 if options.loss == "mse" else 1.0
        module.eval()
        start_loss, null_loss = _start_losses(module, X, options, generator, device)
        if not math.isfinite(start_loss):
            raise DivergenceError(start_loss)
        self.start_loss = start_loss
        # The floor keeps rounding noise on data reconstructed exactly (constant
        # data, say) from counting as growth.
        self.limit = DIVERGENCE_FACTOR * max(start_loss, null_loss, DIVERGENCE_FLOOR)
        self.tol = options.tol * self.loss_scale
        self.no_improvement = 0
        self.step = 0
        # Once the criterion stalls under "cosine": the step, the progress
        # along the schedule and the steps over which the rest of it runs.
        self.finishing = None
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        module, X, options = self.module, self.X, self.options
        params = trainable(module)
        compute_dtype = torch.bfloat16 if options.precision == "bfloat16" else module.dtype
        self.flat, grad = self._stack.enter_context(flat_parameters(params))
        self.copy = self._stack.enter_context(ComputeCopy(params, self.flat, compute_dtype))
        self.optimizer = Adam(self.flat, grad, state=self.optimizer_state)
        step_class = module.hand_step(X, options, self.device) or AutogradStep
        linear = step_class is LinearStep
        self.gather_ahead = self.gather_ahead and linear and options.shuffle
        if linear:
            self.batch_step = LinearStep(
                module,
                X,
                grad,
                options=options,
                generator=self.generator,
                gather_ahead=self.gather_ahead,
            )
        else:
            self.batch_step = step_class(
                module, X, grad, options=options, generator=self.generator, device=self.device
            )
        # Of the validation rows, every other one chooses the best epoch and
        # the others judge whether it beats the start: the best of many
        # epochs is luckier on the rows that chose it than it will be on new
        # rows, on small data by more than the gain it shows there.
        self.choose = slice(None) if self.X_val is None else slice(0, None, 2)
        self.judge = slice(1, None, 2)
        if options.ordered:
            # Ordered codes are scored by the errors of their prefixes: on
            # the validation rows, or on a fixed sample of the training rows.
            dims = prefix_dims(module.encoding_dim)
            if self.X_val is None:
                X_score = X[:: -(-X.shape[0] // ORDERED_SCORE_ROWS)]
            else:
                X_score = self.X_val
            self.prefix_errors = PrefixErrors(module, X_score, dims, device=self.device)
            self.start_errors = self._prefix_errors()
            self.start_means = self.start_errors[:, self.choose].mean(axis=1)
        if self.X_val is None:
            if options.ordered:
                start = float(self.start_means[-1]) if self.keep_start else math.inf
            else:
                start = self.start_loss * self.loss_scale if self.keep_start else math.inf
            self.best = _Best(self.flat, self.optimizer, start)
        elif options.ordered:
            self.best = _Best(self.flat, self.optimizer, -float(self.start_means[-1]))
        else:
            self.start_errors = _validation_errors(module, self.X_val, self.device, self.copy)
            start = -float(self.start_errors[self.choose].mean())
            self.best = _Best(self.flat, self.optimizer, start)
        self.start = self.best.weights, self.best.optimizer_state
        self.executor = ThreadPoolExecutor(1) if self.gather_ahead else None
        if self.executor is not None:
            self._stack.callback(self.executor.shutdown, cancel_futures=True)
        return self

    def __exit__(self, *exc_info):
        return self._stack.__exit__(*exc_info)

    def epoch(self, epoch):
        """Run one epoch; returns whether training is to stop."""
        module, X, options, result = self.module, self.X, self.options, self.result
        if result.n_epochs and isinstance(X, MaskedPairs):
            # Pairs that hide entries hide others every epoch after the first.
            X.new_epoch()
        module.train()
        order = torch.randperm(X.shape[0], generator=self.generator) if options.shuffle else None
        selections = batches(X.shape[0], options.batch_size, order)
        if self.executor is not None:
            selections = self.batch_step.ahead(selections, self.executor)
        batch_losses = []
        for rows in selections:
            batch_losses.append(self.batch_step(rows))
            self.optimizer.step(
                learning_rate_at(
                    options.learning_rate, options.learning_rate_init, self._progress()
                )
            )
            self.copy.refresh()
            self.step += 1
            if len(batch_losses) % CHECK_EVERY == 0:
                recent = _per_element(batch_losses[-CHECK_EVERY:], options.batch_size, X)
                if not recent <= self.limit:
                    result.diverged = (epoch, recent * self.loss_scale)
                    return True
        # One synchronisation per epoch: the batch losses stay tensors until here.
        epoch_loss = torch.stack(batch_losses).double().sum().item()
        epoch_loss /= X.shape[0] * entries_per_row(X)
        if not epoch_loss <= self.limit:
            result.diverged = (epoch, epoch_loss * self.loss_scale)
            return True
        epoch_loss *= self.loss_scale
        result.loss_curve.append(epoch_loss)
        result.n_epochs += 1
        return self._score(epoch, epoch_loss)

    def _score(self, epoch, epoch_loss):
        """Compare the epoch's weights with the best; returns whether to stop early."""
        options, result, best = self.options, self.result, self.best
        if self.X_val is None:
            value = -self._prefix_score() if options.ordered else epoch_loss
            improved = value <= best.value - self.tol
            is_best = value < best.value
        else:
            if options.ordered:
                value = self._prefix_score()
            else:
                errors = _validation_errors(self.module, self.X_val, self.device, self.copy)
                value = -float(errors[self.choose].mean())
            result.validation_scores.append(value)
            improved = value >= best.value + self.tol
            is_best = value > best.value
        if options.verbose:
            message = f"Iteration {epoch}, loss = {epoch_loss:.8f}"
            if self.X_val is not None:
                message += f", validation score = {value:.8f}"
            print(message, flush=True)
        if is_best:
            best.keep(value, result.n_epochs)
        self.no_improvement = 0 if improved else self.no_improvement + 1
        if self.finishing is None:
            if self.no_improvement <= options.n_iter_no_change or self._finish_schedule():
                return False
        else:
            start, _, steps = self.finishing
            if self.step < start + steps:
                return False
        result.stopped_early = True
        if options.verbose:
            print(
                f"Training stopped: no improvement of at least tol={options.tol} "
                f"for {options.n_iter_no_change} consecutive epochs.",
                flush=True,
            )
        return True

    def _progress(self):
        """How far along the learning-rate schedule the next step is, from 0 to 1."""
        if self.finishing is None:
            return self.step / self.total_steps
        start, progress, steps = self.finishing
        return progress + (1.0 - progress) * (self.step - start) / steps

    def _finish_schedule(self):
        """Run the rest of a cosine schedule over the next epochs, as the criterion stalled.

        Stopping where the criterion stalls would keep weights trained at
        a rate still near its peak; the rate decays to zero instead along
        the rest of its cosine, over ``n_iter_no_change`` epochs at most
        (or those ``max_iter`` leaves), and training stops there. Returns
        whether it does so, rather than stopping now.
        """
        options = self.options
        left = options.max_iter - self.result.n_epochs
        progress = self.step / self.total_steps
        if options.learning_rate != "cosine" or progress >= 1.0 or left < 1:
            return False
        epochs = min(left, options.n_iter_no_change)
        self.finishing = self.step, progress, epochs * self.n_batches
        if options.verbose:
            print(
                f"No improvement of at least tol={options.tol} for "
                f"{options.n_iter_no_change} consecutive epochs: the learning rate "
                f"decays to zero over the next {epochs} epochs.",
                flush=True,
            )
        return True

    def _prefix_errors(self):
        """Errors of the prefixes 1, 2, 4, ... on the rows that score ordered codes."""
        with self.copy.master():
            return self.prefix_errors()

    def _prefix_score(self):
        """The validation score of ordered codes.

        The negative mean over the prefixes of the ratio of their error to
        the start's, times the start's error with the whole code: the start
        scores as it does unordered, and every prefix weighs alike.
        """
        errors = self._prefix_errors()[:, self.choose]
        ratio = float(np.mean(relative(errors.mean(axis=1), self.start_means)))
        return -ratio * float(self.start_means[-1])

    def interrupt(self):
        """Drop the epochs after the best with their weights, so that the
        counters describe the weights kept."""
        result, best = self.result, self.best
        result.interrupted = True
        del result.loss_curve[best.epoch :]
        if result.validation_scores is not None:
            del result.validation_scores[best.epoch :]
        result.n_epochs = best.epoch

    def finish(self):
        """Restore the best weights, unless they do not clearly beat the start."""
        best, copy = self.best, self.copy
        best.restore()
        copy.refresh()
        if self.X_val is not None and best.epoch > 0:
            judge = self.judge
            if self.options.ordered:
                errors = self._prefix_errors()
                accepted = prefixes_significant(self.start_errors[:, judge], errors[:, judge])
            else:
                errors = _validation_errors(self.module, self.X_val, self.device, copy)
                accepted = significant(self.start_errors[judge] - errors[judge])
            if not accepted:
                best.weights, best.optimizer_state = self.start
                best.epoch = 0
                best.restore()
                copy.refresh()
        self.module.eval()
        self.result.best_epoch = best.epoch
        self.result.optimizer_state = best.optimizer_state
        return self.result


def _per_element(batch_losses, batch_size, X):
    """Mean loss per element of the last few mini-batches' summed losses."""
    total = torch.stack(batch_losses).double().sum().item()
    return total / (len(batch_losses) * min(batch_size, X.shape[0]) * entries_per_row(X))


def _validation_errors(module, X_val, device, copy):
    """Squared reconstruction error of each validation row, with the master weights."""
    with copy.master():
        return reconstruction_error(module, X_val, device=device)
