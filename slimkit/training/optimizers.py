"""Optimizers by name: sgd, momentum (and Nesterov), adam, adamw, rmsprop, adagrad, adadelta, ftrl.

Each name is a Keras 3 optimizer configured from a
:class:`~slimkit.training.config.TrainConfig`, with TF-Slim's flag names
(``train_image_classifier.py``'s ``--optimizer``, ``--momentum``, ``--adam_beta1``, ...):

    >>> optimizer = make_optimizer(TrainConfig(optimizer="momentum", nesterov=True), 0.01)
    >>> type(optimizer).__name__, optimizer.nesterov
    ('SGD', True)

Gradient clipping and EMA weights are done by the train step (:mod:`slimkit.training.step`), not
by the optimizer, so they behave the same with every optimizer and under ``tf.distribute``.
"""

import keras


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
        return opt.SGD(learning_rate)
    if name == "momentum":
        return opt.SGD(learning_rate, momentum=c.momentum, nesterov=c.nesterov)
    if name == "adam":
        return opt.Adam(learning_rate, beta_1=c.adam_beta1, beta_2=c.adam_beta2, **eps)
    if name == "adamw":
        # Decoupled weight decay (Loshchilov & Hutter): the loop does not add L2 regularizers then.
        return opt.AdamW(learning_rate, weight_decay=c.weight_decay or 0.0, beta_1=c.adam_beta1,
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
