import numpy as np
import pytest
import torch

from skae import AutoencoderTransformer
from skae._nn._batches import MaskedPairs
from skae._nn._optim import Adam, flat_parameters, learning_rate_at, views
from skae._nn._steps import AutogradStep, LinearStep, PerceptronStep
from skae._nn._train import TrainingOptions, train
from skae._nn.linear import Autoencoder
from skae._nn.residual import ResidualAutoencoder


def _options(**resolved):
    """Training options: the estimator's defaults, with choices made here.

    The loop has no defaults of its own; the values here are those the tests
    of the loop have always used: a constant rate of 1e-3, batches of 200 and
    200 epochs unless a test says otherwise, and no corruption.
    """
    choices = dict(
        batch_size=200,
        max_iter=200,
        learning_rate_init=1e-3,
        learning_rate="constant",
        noise_level=0.0,
    )
    return TrainingOptions.from_params(
        AutoencoderTransformer().get_params(), **{**choices, **resolved}
    )


def _module(output_activation, *, hidden=(), shift=None, scale=1.0, dtype=torch.float64):
    module = Autoencoder(12, 3, list(hidden), "relu", "identity", output_activation, dtype)
    module.set_normalization(shift, scale)
    module.init_random(torch.Generator().manual_seed(0))
    return module


def _data(n_samples=50, unit=True):
    rng = np.random.RandomState(0)
    X = rng.rand(n_samples, 12)
    return X if unit else 5 * X - 3


def _gradients(step_class, module, X, rows, **kwargs):
    """Summed loss and flat gradient of one step of ``step_class``."""
    with flat_parameters(list(module.parameters())) as (flat, grad):
        step = step_class(module, X, grad, **kwargs)
        batch_loss = step(rows)
        return float(batch_loss), grad.clone()


@pytest.mark.parametrize(
    "output_activation, loss, unit",
    [
        ("clip", "mse", True),
        ("identity", "mse", True),
        ("identity", "mse", False),
        ("sigmoid", "bce", True),
    ],
)
@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize("rows", [slice(10, 30), torch.tensor([4, 0, 17, 9, 33, 2])])
@pytest.mark.parametrize("ordered", [False, True])
def test_linear_step_matches_autograd(output_activation, loss, unit, alpha, rows, ordered):
    X = _data(unit=unit)
    shift, scale = (None, 1.0) if unit else (torch.as_tensor(X.mean(axis=0)), 2.5)
    module = _module(output_activation, shift=shift, scale=scale)
    # Push some outputs outside [0, 1] so that clipping matters.
    with torch.no_grad():
        module.decoder[0].bias.mul_(3.0).sub_(0.5)
    assert LinearStep.applies(module, X, _options(loss=loss, noise=None), torch.device("cpu"))
    expected = _gradients(
        AutogradStep,
        module,
        X,
        rows,
        options=_options(loss=loss, alpha=alpha, noise=None, ordered=ordered),
        generator=torch.Generator().manual_seed(5),
        device=torch.device("cpu"),
    )
    got = _gradients(
        LinearStep,
        module,
        X,
        rows,
        options=_options(loss=loss, batch_size=25, alpha=alpha, ordered=ordered),
        generator=torch.Generator().manual_seed(5),
    )
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-10)
    np.testing.assert_allclose(got[1].numpy(), expected[1].numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("step_class", [LinearStep, PerceptronStep])
def test_ordered_steps_truncate_the_codes(step_class):
    """Ordered, the hand-derived steps' gradients differ from the plain ones."""
    X = _data(unit=True)
    module = _module("clip")
    rows = torch.arange(20)
    kwargs = dict(generator=torch.Generator().manual_seed(5))
    if step_class is PerceptronStep:
        kwargs["device"] = torch.device("cpu")
    _, plain = _gradients(step_class, module, X, rows, options=_options(), **kwargs)
    kwargs["generator"] = torch.Generator().manual_seed(5)
    _, ordered = _gradients(step_class, module, X, rows, options=_options(ordered=True), **kwargs)
    assert not torch.allclose(plain, ordered)


def test_linear_step_applies_only_to_one_layer_networks():
    X = _data()
    cpu = torch.device("cpu")
    mse, noisy = _options(loss="mse", noise=None), _options(loss="mse", noise="gaussian")
    assert not LinearStep.applies(_module("clip", hidden=(5,)), X, mse, cpu)
    assert not LinearStep.applies(_module("sigmoid"), X, mse, cpu)
    assert not LinearStep.applies(_module("clip"), X, noisy, cpu)
    assert LinearStep.applies(_module("clip"), X, mse, cpu)


def _perceptron_module(kind, activation, output_activation, hidden):
    """A network with every weight away from its start, so that all paths matter.

    "residual" builds perceptrons beside a linear path; "stacked" the
    tutorials' network, its code activation that of the hidden layers.
    """
    rng = np.random.RandomState(1)
    network = ResidualAutoencoder if kind == "residual" else Autoencoder
    code_activation = "identity" if kind == "residual" else activation
    shift = torch.as_tensor(0.1 * rng.rand(12))
    module = network(12, 3, hidden, activation, code_activation, output_activation, torch.float64)
    module.set_normalization(shift, 1.3)
    module.init_random(torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.as_tensor(0.3 * rng.standard_normal(p.shape)))
        if kind == "residual":
            module.code_scale.copy_(torch.as_tensor(rng.rand(3) + 0.5))
    return module


@pytest.mark.parametrize("kind", ["residual", "stacked"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "elu", "gelu", "identity"])
@pytest.mark.parametrize(
    "output_activation, loss, hidden, noise, masked",
    [
        ("clip", "mse", (7,), None, False),
        ("identity", "mse", (6, 5), "gaussian", False),
        ("sigmoid", "bce", (7,), None, False),
        ("sigmoid", "mse", (6, 5), "masking", False),
        ("identity", "mse", (7,), None, True),
        ("clip", "mse", (6, 5), "gaussian", True),
    ],
)
@pytest.mark.parametrize("ordered", [False, True])
def test_perceptron_step_matches_autograd(
    kind, activation, output_activation, loss, hidden, noise, masked, ordered
):
    rng = np.random.RandomState(0)
    X = rng.rand(40, 12)
    if masked:
        X = MaskedPairs(X * (rng.rand(*X.shape) > 0.3), X, rng.rand(*X.shape) > 0.5)
    module = _perceptron_module(kind, activation, output_activation, hidden)
    options = _options(loss=loss, alpha=0.3, noise=noise, noise_level=0.2, ordered=ordered)
    cpu = torch.device("cpu")
    assert PerceptronStep.applies(module, X, options, cpu)
    rows = torch.tensor([3, 0, 17, 9, 33, 2])
    expected, got = (
        _gradients(
            step_class,
            module,
            X,
            rows,
            options=options,
            generator=torch.Generator().manual_seed(5),
            device=cpu,
        )
        for step_class in (AutogradStep, PerceptronStep)
    )
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)
    np.testing.assert_allclose(got[1].numpy(), expected[1].numpy(), rtol=1e-9, atol=1e-12)


def test_perceptron_step_applies_only_where_it_matches_autograd():
    X = _data()
    cpu = torch.device("cpu")
    module = _perceptron_module("residual", "relu", "clip", (5,))
    assert PerceptronStep.applies(module, X, _options(), cpu)
    assert not PerceptronStep.applies(module, X, _options(precision="bfloat16"), cpu)
    module.encoder.weight.requires_grad_(False)
    assert not PerceptronStep.applies(module, X, _options(), cpu)


def test_parameters_get_their_own_storage_back():
    module = _module("clip")
    params = list(module.parameters())
    before = [p.detach().clone() for p in params]
    with flat_parameters(params) as (flat, _):
        assert all(
            p.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr() for p in params
        )
        flat.add_(1.0)
    for p, old in zip(params, before, strict=True):
        assert p.is_contiguous()
        assert p.untyped_storage().nbytes() == p.numel() * p.element_size()
        torch.testing.assert_close(p.detach(), old + 1.0)


def test_channels_last_kernels_keep_their_layout_in_the_flat_tensor():
    """Each parameter's view of the flat tensor is laid out as the parameter was."""
    torch.manual_seed(0)
    layers = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.Conv2d(8, 8, 3))
    layers.to(memory_format=torch.channels_last)
    dense = torch.nn.Linear(4, 3)
    params = [*layers.parameters(), *dense.parameters()]
    before = [p.detach().clone() for p in params]
    strides = [p.stride() for p in params]
    x = torch.randn(2, 1, 7, 7).contiguous(memory_format=torch.channels_last)
    expected = torch.autograd.grad(layers(x).sum(), params[:4])
    with flat_parameters(params) as (flat, grad):
        assert [p.stride() for p in params] == strides
        for p, old in zip(params, before, strict=True):
            torch.testing.assert_close(p.detach(), old, rtol=0, atol=0)
        # The views cover the flat tensor once each.
        flat.zero_()
        for p in params:
            p.data.add_(1.0)
        assert (flat == 1.0).all()
        for p, old in zip(params, before, strict=True):
            p.data.copy_(old)
        gradients = views(grad, params)
        torch._foreach_copy_(gradients[:4], torch.autograd.grad(layers(x).sum(), params[:4]))
        for gradient, want in zip(gradients[:4], expected, strict=True):
            torch.testing.assert_close(gradient, want, rtol=0, atol=0)
    assert [p.stride() for p in params] == strides


def test_adam_state_round_trips_as_plain_arrays():
    flat = torch.zeros(16, dtype=torch.float64)
    grad = torch.arange(16, dtype=torch.float64)
    adam = Adam(flat, grad)
    adam.step(0.1)
    state = adam.state_dict()
    assert set(state) == {"exp_avg", "exp_avg_sq", "step"}
    for key in ("exp_avg", "exp_avg_sq"):
        assert isinstance(state[key], np.ndarray) and state[key].shape == (16,)
    assert state["step"] == 1.0 and isinstance(state["step"], float)
    resumed = Adam(flat.clone(), grad, state=state)
    adam.step(0.1)
    resumed.step(0.1)
    torch.testing.assert_close(resumed.flat, adam.flat)
    # After one step the first moment is (1 - beta1) times the gradient; the
    # saved state is a copy, which later steps leave alone.
    np.testing.assert_allclose(state["exp_avg"], 0.1 * np.arange(16))
    assert adam.state_dict()["step"] == 2.0
    with pytest.raises(ValueError, match="holds 16 values for 4 parameters"):
        Adam(torch.zeros(4, dtype=torch.float64), grad[:4], state=state)


def test_cosine_schedule_warms_up_then_decays_to_zero():
    rates = [learning_rate_at("cosine", 1.0, p) for p in np.linspace(0, 1, 101)]
    peak = int(np.argmax(rates))
    assert 8 <= peak <= 11
    assert rates[0] < 0.05 and rates[-1] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(rates[peak:]) <= 0)
    assert learning_rate_at("constant", 0.3, 0.7) == 0.3


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_a_stalled_cosine_schedule_runs_its_decay_before_stopping(monkeypatch, schedule):
    # tol=1e9: no epoch improves, so the criterion stalls after 3 epochs,
    # past the warm-up of the 20 epochs planned.
    rates = []

    def recorded(*args):
        rates.append(learning_rate_at(*args))
        return rates[-1]

    monkeypatch.setattr("skae._nn._run.learning_rate_at", recorded)
    options = _options(
        batch_size=20, max_iter=20, learning_rate=schedule, tol=1e9, n_iter_no_change=2
    )
    result = train(
        _module("clip"),
        _data(200),
        options,
        generator=torch.Generator().manual_seed(0),
        device="cpu",
    )
    if schedule == "constant":
        assert result.n_epochs == 3 and result.stopped_early
        return
    # Then the rest of the cosine, from where it was to zero, over 2 epochs.
    assert result.n_epochs == 5 and result.stopped_early
    stalled, finish = rates[:30], np.array(rates[30:])
    assert len(finish) == 20
    assert finish[0] == pytest.approx(stalled[-1], rel=0.05)
    assert np.all(np.diff(finish) < 0) and finish[-1] < 0.01 * max(rates)
    assert finish[0] > 0.5 * max(rates)


@pytest.mark.parametrize("noise", [None, "masking"])
def test_train_lowers_the_loss_and_records_each_epoch(noise):
    X = _data(200).astype(np.float32)
    module = _module("clip", dtype=torch.float32)
    result = train(
        module,
        X,
        _options(
            batch_size=20, max_iter=5, learning_rate_init=1e-2, tol=0, noise=noise, noise_level=0.2
        ),
        generator=torch.Generator().manual_seed(0),
        device="cpu",
    )
    assert result.n_epochs == len(result.loss_curve) == 5
    assert result.loss_curve[-1] < result.loss_curve[0]
    assert not any(p.requires_grad is False for p in module.parameters())


@pytest.mark.parametrize("unit", [True, False])
def test_gathering_rows_ahead_trains_the_same_network(unit):
    # 53 rows at batch 10: six batches a pass, the last one short.
    X = _data(53, unit=unit)
    shift, scale = (None, 1.0) if unit else (torch.as_tensor(X.mean(axis=0)), 2.5)
    results, weights = [], []
    for gather_ahead in (False, True):
        module = _module("clip" if unit else "identity", shift=shift, scale=scale)
        results.append(
            train(
                module,
                X,
                _options(batch_size=10, max_iter=3, tol=0),
                generator=torch.Generator().manual_seed(0),
                device="cpu",
                gather_ahead=gather_ahead,
            )
        )
        weights.append([p.detach().clone() for p in module.parameters()])
    assert results[0].loss_curve == results[1].loss_curve
    for expected, got in zip(*weights, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
