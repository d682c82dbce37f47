"""Learning-rate schedules against their closed forms, and optimizers by name."""

import math

import keras
import pytest

from slimkit.training.config import OPTIMIZERS, TrainConfig
from slimkit.training.optimizers import make_optimizer
from slimkit.training.schedules import OneCycle, WarmupCosineDecay, make_schedule


def _lr(schedule, step):
    return float(schedule(step)) if callable(schedule) else schedule


def test_warmup_cosine_closed_form():
    peak, end, total, warm = 0.1, 0.001, 1000, 100
    schedule = WarmupCosineDecay(peak, total, warm, end)
    for step in (0, 1, 50, 99):
        assert _lr(schedule, step) == pytest.approx(peak * (step + 1) / warm, rel=1e-6)
    for step in (100, 250, 550, 999, 1000):
        expected = end + (peak - end) * 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))
        assert _lr(schedule, step) == pytest.approx(expected, rel=1e-5)
    assert _lr(schedule, 5000) == pytest.approx(end)


def test_one_cycle_closed_form():
    peak, total, warm = 0.025, 100, 30
    schedule = OneCycle(peak, total, warm)
    start, final = peak / 25, peak / 25 / 1e4

    def anneal(a, b, f):
        return b + (a - b) * 0.5 * (1 + math.cos(math.pi * f))

    for step in range(0, 30, 7):
        assert _lr(schedule, step) == pytest.approx(anneal(start, peak, step / 29), rel=1e-5)
    for step in (30, 60, 99):
        assert _lr(schedule, step) == pytest.approx(anneal(peak, final, (step - 29) / 70), rel=1e-4)
    assert _lr(schedule, 29) == pytest.approx(peak)
    assert _lr(schedule, 99) == pytest.approx(final, rel=1e-3)
    assert OneCycle(1.0, 100).warmup_steps == 30   # default: 30% going up


def test_make_schedule_by_name():
    steps_per_epoch = 550
    fixed = make_schedule(TrainConfig(learning_rate=0.5), 1000, steps_per_epoch)
    assert fixed == 0.5
    exp = make_schedule(TrainConfig(lr_schedule="exponential", learning_rate=0.1,
                                    lr_decay_factor=0.5, num_epochs_per_decay=2.0),
                        10000, steps_per_epoch)
    assert _lr(exp, 1099) == pytest.approx(0.1)        # staircase: same until 2 epochs (1100)
    assert _lr(exp, 1100) == pytest.approx(0.05)
    poly = make_schedule(TrainConfig(lr_schedule="polynomial", learning_rate=0.1,
                                     end_learning_rate=0.01, lr_power=2.0), 1000, steps_per_epoch)
    assert _lr(poly, 500) == pytest.approx((0.1 - 0.01) * 0.5 ** 2 + 0.01)
    piece = make_schedule(TrainConfig(lr_schedule="piecewise", lr_boundaries=[10, 20],
                                      lr_values=[1.0, 0.1, 0.01]), 100, steps_per_epoch)
    assert [_lr(piece, s) for s in (10, 11, 20, 21)] == pytest.approx([1.0, 0.1, 0.1, 0.01])
    cos = make_schedule(TrainConfig(lr_schedule="cosine", learning_rate=1.0, warmup_steps=10),
                        110, steps_per_epoch)
    assert _lr(cos, 60) == pytest.approx(0.5, rel=1e-5)
    cycle = make_schedule(TrainConfig(lr_schedule="one-cycle", learning_rate=1.0), 100,
                          steps_per_epoch)
    assert isinstance(cycle, OneCycle) and cycle.warmup_steps == 30


def test_schedule_argument_errors():
    with pytest.raises(ValueError, match="Expected 0 <= warmup_steps < total_steps"):
        WarmupCosineDecay(0.1, total_steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="Expected 2 <= warmup_steps < total_steps"):
        OneCycle(0.1, total_steps=10, warmup_steps=10)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_by_name_takes_a_step(name):
    optimizer = make_optimizer(TrainConfig(optimizer=name, weight_decay=0.01), 0.1)
    variable = keras.Variable([1.0, -2.0])
    optimizer.apply([keras.ops.convert_to_tensor([0.5, 0.5])], [variable])
    assert int(optimizer.iterations.numpy()) == 1
    assert variable.numpy()[0] != 1.0


def test_optimizer_settings_are_passed():
    momentum = make_optimizer(TrainConfig(optimizer="momentum", momentum=0.8, nesterov=True), 0.1)
    assert (momentum.momentum, momentum.nesterov) == (0.8, True)
    adam = make_optimizer(TrainConfig(optimizer="adam", opt_epsilon=1e-8, adam_beta2=0.99), 1e-4)
    assert (adam.epsilon, adam.beta_2) == (1e-8, 0.99)
    adamw = make_optimizer(TrainConfig(optimizer="adamw", weight_decay=0.05), 1e-3)
    assert adamw.weight_decay == 0.05
