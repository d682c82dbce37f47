"""Learning-rate schedules by name: fixed, exponential, polynomial, piecewise, cosine, one-cycle.

Keras has exponential, polynomial and piecewise decay, used as they are. Cosine decay with a linear
warm-up and the one-cycle policy are written here as ``keras.optimizers.schedules.
LearningRateSchedule`` subclasses whose arguments say what they mean (Keras' ``CosineDecay`` calls
the warm-up's *starting* rate ``initial_learning_rate``).

A schedule is called with the optimizer's ``iterations`` (0 for the first update), so the rate of
update ``s + 1`` is ``schedule(s)``; a resumed run restores ``iterations`` with the optimizer and
continues on the same curve.

    >>> schedule = WarmupCosineDecay(0.1, total_steps=1000, warmup_steps=100)
    >>> float(schedule(99)), float(schedule(1000))
    (0.1, 0.0)
"""

import math

import keras
from keras import ops

# PyTorch's OneCycleLR defaults (Smith & Topin 2018): start at peak/25, end at start/1e4.
ONE_CYCLE_DIV_FACTOR = 25.0
ONE_CYCLE_FINAL_DIV_FACTOR = 1e4
ONE_CYCLE_DEFAULT_WARMUP = 0.3  # fraction of the steps spent going up


def _cos_anneal(start, end, fraction):
    """From ``start`` (fraction 0) to ``end`` (fraction 1) along half a cosine."""
    return end + (start - end) * 0.5 * (1.0 + ops.cos(math.pi * fraction))


class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak_learning_rate``, then cosine decay to ``end_learning_rate``.

    With ``W = warmup_steps`` and ``T = total_steps``::

        lr(s) = peak * (s + 1) / W                                   for s < W
        lr(s) = end + (peak - end) * (1 + cos(pi * (s - W) / (T - W))) / 2   for W <= s <= T
        lr(s) = end                                                  for s > T

    Args:
        peak_learning_rate: The rate reached at the end of warm-up.
        total_steps: Step at which the decay reaches ``end_learning_rate``.
        warmup_steps: Steps of linear warm-up (0: start at the peak).
        end_learning_rate: The final rate.

    Example:
        >>> s = WarmupCosineDecay(1.0, total_steps=10, warmup_steps=0)
        >>> round(float(s(5)), 6)
        0.5
    """

    def __init__(self, peak_learning_rate, total_steps, warmup_steps=0, end_learning_rate=0.0,
                 name="WarmupCosineDecay"):
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"Invalid cosine schedule. Expected 0 <= warmup_steps < total_steps. "
                             f"Received warmup_steps={warmup_steps}, total_steps={total_steps}.")
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.end_learning_rate = float(end_learning_rate)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak, end = self.peak_learning_rate, self.end_learning_rate
        warm = max(self.warmup_steps, 1)
        warmup = peak * (step + 1.0) / warm
        fraction = ops.clip((step - self.warmup_steps) / (self.total_steps - self.warmup_steps),
                            0.0, 1.0)
        decay = _cos_anneal(peak, end, fraction)
        return ops.where(step < self.warmup_steps, warmup, decay)

    def get_config(self):
        return dict(peak_learning_rate=self.peak_learning_rate, total_steps=self.total_steps,
                    warmup_steps=self.warmup_steps, end_learning_rate=self.end_learning_rate,
                    name=self.name)


class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The one-cycle policy: cosine up from ``peak/25`` to ``peak``, then down to ``peak/2.5e5``.

    As PyTorch's ``OneCycleLR`` (two phases, cosine annealing). With ``W = warmup_steps`` and
    ``T = total_steps``, ``start = peak / 25`` and ``final = start / 1e4``::

        lr(s) = anneal(start, peak, s / (W - 1))            for s < W
        lr(s) = anneal(peak, final, (s - W + 1) / (T - W))  for W <= s   (clipped at T - 1)

    where ``anneal(a, b, f) = b + (a - b) * (1 + cos(pi * f)) / 2``.

    Args:
        peak_learning_rate: The highest rate, reached at step ``warmup_steps - 1``.
        total_steps: Length of the cycle; the last update (step ``T - 1``) uses ``final``.
        warmup_steps: Steps going up (default: 30% of ``total_steps``).

    Example:
        >>> s = OneCycle(0.025, total_steps=100, warmup_steps=30)
        >>> round(float(s(0)), 6), round(float(s(29)), 6)
        (0.001, 0.025)
    """

    def __init__(self, peak_learning_rate, total_steps, warmup_steps=None, name="OneCycle"):
        if warmup_steps is None:
            warmup_steps = max(2, int(ONE_CYCLE_DEFAULT_WARMUP * total_steps))
        if not 2 <= warmup_steps < total_steps:
            raise ValueError(f"Invalid one-cycle schedule. Expected 2 <= warmup_steps < total_steps. "
                             f"Received warmup_steps={warmup_steps}, total_steps={total_steps}.")
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        start = peak / ONE_CYCLE_DIV_FACTOR
        final = start / ONE_CYCLE_FINAL_DIV_FACTOR
        w, t = self.warmup_steps, self.total_steps
        up = _cos_anneal(start, peak, ops.clip(step / (w - 1), 0.0, 1.0))
        down = _cos_anneal(peak, final, ops.clip((step - w + 1) / (t - w), 0.0, 1.0))
        return ops.where(step < w, up, down)

    def get_config(self):
        return dict(peak_learning_rate=self.peak_learning_rate, total_steps=self.total_steps,
                    warmup_steps=self.warmup_steps, name=self.name)


def make_schedule(config, total_steps, steps_per_epoch):
    """The learning rate (a float or a schedule) that ``config.lr_schedule`` names.

    Args:
        config: A :class:`~slimkit.training.config.TrainConfig`.
        total_steps: The run's number of steps (for cosine, one-cycle and polynomial decay).
        steps_per_epoch: Training examples / batch size (for exponential decay, whose period is
            ``num_epochs_per_decay`` epochs, staircase, as in TF-Slim).

    Returns:
        A float for ``fixed``, else a ``LearningRateSchedule``.

    Example:
        >>> make_schedule(TrainConfig(lr_schedule="fixed", learning_rate=0.5), 1000, 550)
        0.5
    """
    lr = config.learning_rate
    name = config.lr_schedule
    schedules = keras.optimizers.schedules
    if name == "fixed":
        return lr
    if name == "exponential":
        decay_steps = max(1, int(round(steps_per_epoch * config.num_epochs_per_decay)))
        return schedules.ExponentialDecay(lr, decay_steps, config.lr_decay_factor, staircase=True)
    if name == "polynomial":
        return schedules.PolynomialDecay(lr, total_steps, config.end_learning_rate,
                                         power=config.lr_power)
    if name == "piecewise":
        return schedules.PiecewiseConstantDecay(list(config.lr_boundaries), list(config.lr_values))
    if name == "cosine":
        return WarmupCosineDecay(lr, total_steps, config.warmup_steps or 0,
                                 config.end_learning_rate)
    if name == "one-cycle":
        return OneCycle(lr, total_steps, config.warmup_steps)
    raise ValueError(f"Unknown learning-rate schedule {name!r}.")  # TrainConfig validated it


def learning_rate_at(learning_rate, step):
    """The value of ``learning_rate`` (float or schedule) at ``step``, as a Python float."""
    if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        return float(learning_rate(step))
    return float(learning_rate)
