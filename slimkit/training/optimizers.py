"""Optimizers by name: sgd, momentum (and Nesterov), adam, adamw, rmsprop, adagrad, adadelta, ftrl.

Each name is a Keras 3 optimizer configured from a
:class:`~slimkit.training.config.TrainConfig`, with TF-Slim's flag names
(``train_image_classifier.py``'s ``--optimizer``, ``--momentum``, ``--adam_beta1``, ...):

    >>> optimizer = make_optimizer(TrainConfig(optimizer="momentum", nesterov=True), 0.01)
    >>> isinstance(optimizer, keras.optimizers.SGD), optimizer.nesterov
    (True, True)
    >>> isinstance(make_optimizer(TrainConfig(optimizer="adam"), 1e-3), keras.optimizers.Adam)
    True

Gradient clipping and EMA weights are done by the train step (:mod:`slimkit.training.step`), not
by the optimizer, so they behave the same with every optimizer and under ``tf.distribute``.

``adam`` and ``adamw`` are Keras' Adam and AdamW (the same slots, the same checkpoints, the same
math) with one difference: each variable's update is TensorFlow's fused ``ResourceApplyAdam``
kernel, one pass over the weights, where Keras runs about ten element-wise ops that each read and
write all of them. On Deep MNIST that update was 38% of a training step (a profile on a 2-core
Xeon; the fc1 kernel alone has 3.2M weights): it is memory traffic, not arithmetic. ``sgd`` and
``momentum`` are Keras' SGD in the same way, with TensorFlow's ``ResourceApplyGradientDescent`` and
``ResourceApplyKerasMomentum`` (which is Keras' momentum and Nesterov rule): AlexNet has 62M
weights, and Keras' momentum update reads and writes them about eight times.
"""

import keras
import tensorflow as tf


class _FusedAdamUpdate:
    """``update_step`` of Keras' Adam as one ``ResourceApplyAdam`` per variable (not amsgrad).

    TensorFlow's kernel computes what Keras' code does: ``m += (g - m)(1 - b1)``,
    ``v += (g^2 - v)(1 - b2)``, ``w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``
    with ``t`` = iterations + 1; results agree to float32 rounding.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]), beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype), beta1=beta_1,
            beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype),
            use_locking=False)


class FusedSGD(keras.optimizers.SGD):
    """Keras' SGD (plain, momentum, Nesterov) with TensorFlow's fused update kernels.

    ``ResourceApplyKerasMomentum`` computes Keras' rule: ``m = momentum * m - lr * g``, then
    ``w += m`` (Nesterov: ``w += momentum * m - lr * g``); without momentum
    ``ResourceApplyGradientDescent``: ``w -= lr * g``. Named ``SGD`` as Keras' own is.
    """

    def __init__(self, *args, name="SGD", **kwargs):
        super().__init__(*args, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        if isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        learning_rate, gradient = tf.cast(learning_rate, dtype), tf.cast(gradient, dtype)
        if self.momentum == 0:
            tf.raw_ops.ResourceApplyGradientDescent(var=_handle(variable), alpha=learning_rate,
                                                    delta=gradient, use_locking=False)
            return
        accum = self.momentums[self._get_variable_index(variable)]
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=_handle(variable), accum=_handle(accum), lr=learning_rate, grad=gradient,
            momentum=tf.cast(self.momentum, dtype), use_locking=False,
            use_nesterov=bool(self.nesterov))


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (a replica's own in tf.distribute)."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


class FusedAdam(_FusedAdamUpdate, keras.optimizers.Adam):
    """Keras' Adam with TensorFlow's fused update kernel (see the module docstring).

    Named ``adam`` as Keras' own is (its scope in the Graphs dashboard, its variables' paths).
    """

    def __init__(self, *args, name="adam", **kwargs):
        super().__init__(*args, name=name, **kwargs)


class FusedAdamW(_FusedAdamUpdate, keras.optimizers.AdamW):
    """Keras' AdamW (decoupled weight decay, applied before the update) with the fused update."""

    def __init__(self, *args, name="adamw", **kwargs):
        super().__init__(*args, name=name, **kwargs)


def make_optimizer(config, learning_rate):
    """The Keras optimizer that ``config.optimizer`` names.

    Args:
        config: A :class:`~slimkit.training.config.TrainConfig`.
        learning_rate: A float or a ``LearningRateSchedule`` (see
            :func:`slimkit.training.schedules.make_schedule`).

    Returns:
        A ``keras.optimizers.Optimizer``. Build it under the strategy's scope.

    Example:
        >>> make_optimizer(TrainConfig(optimizer="adam", opt_epsilon=1e-8), 1e-4).epsilon
        1e-08
    """
    c = config
    eps = {} if c.opt_epsilon is None else {"epsilon": c.opt_epsilon}
    opt = keras.optimizers
    name = c.optimizer
    if name == "sgd":
        return FusedSGD(learning_rate)
    if name == "momentum":
        return FusedSGD(learning_rate, momentum=c.momentum, nesterov=c.nesterov)
    if name == "adam":
        return FusedAdam(learning_rate, beta_1=c.adam_beta1, beta_2=c.adam_beta2, **eps)
    if name == "adamw":
        # Decoupled weight decay (Loshchilov & Hutter): the loop does not add L2 regularizers then.
        return FusedAdamW(learning_rate, weight_decay=c.weight_decay or 0.0, beta_1=c.adam_beta1,
                          beta_2=c.adam_beta2, **eps)
    if name == "rmsprop":
        return opt.RMSprop(learning_rate, rho=c.rmsprop_decay, momentum=c.rmsprop_momentum, **eps)
    if name == "adagrad":
        return opt.Adagrad(learning_rate,
                           initial_accumulator_value=c.adagrad_initial_accumulator_value, **eps)
    if name == "adadelta":
        return opt.Adadelta(learning_rate, rho=c.adadelta_rho, **eps)
    if name == "ftrl":
        return opt.Ftrl(learning_rate, learning_rate_power=c.ftrl_learning_rate_power,
                        initial_accumulator_value=c.ftrl_initial_accumulator_value,
                        l1_regularization_strength=c.ftrl_l1, l2_regularization_strength=c.ftrl_l2)
    raise ValueError(f"Unknown optimizer {name!r}.")  # TrainConfig validated it


def decoupled_weight_decay(config):
    """True if ``weight_decay`` is the optimizer's own (AdamW) rather than L2 regularizers."""
    return config.optimizer == "adamw"
