"""Exponential moving average (EMA) of a model's weights, for evaluation.

TF-Slim's ``--moving_average_decay``: shadow copies of the weights follow them during training,
``shadow = decay * shadow + (1 - decay) * weight`` after every step, with TensorFlow's
``num_updates`` warm-up ``decay = min(decay, (1 + step) / (10 + step))`` so early shadows are not
stuck at the initial weights. Evaluation swaps the shadows in:

    >>> ema = ExponentialMovingAverage(model, decay=0.999)
    >>> ema.update(global_step)          # in the train step, after the optimizer's update
    >>> with ema.swapped_in():
    ...     accuracy = evaluate_model(model, images, labels)

The shadows are ``tf.Variable``s tracked by this ``tf.Module``, so they are saved in checkpoints
(``ema/shadows/N``) and a resumed run continues the same average.
"""

import contextlib

import tensorflow as tf


def averaged_variables(model):
    """The variables worth averaging: every floating-point weight (trainable or not, e.g. batch
    norm's moving statistics), not integer states such as dropout's seed generators."""
    return [v for v in model.variables if tf.as_dtype(v.dtype).is_floating]


class ExponentialMovingAverage(tf.Module):
    """Shadow weights of ``model`` (create it under the strategy's scope).

    Args:
        model: A built Keras model.
        decay: The decay, e.g. 0.999 (closer to 1: slower, smoother).

    Example:
        >>> ema = ExponentialMovingAverage(model, 0.99)
        >>> len(ema.shadows) == len(averaged_variables(model))
        True
    """

    def __init__(self, model, decay):
        super().__init__(name="ema")
        self.decay = float(decay)
        # Held through a plain object: the model's variables are saved with the model, not here.
        self._model_variables = _Untracked(averaged_variables(model))
        self.shadows = [tf.Variable(_value(v), trainable=False, name=f"ema_{i}")
                        for i, v in enumerate(self._variables)]

    @property
    def _variables(self):
        return self._model_variables.items

    def update(self, step):
        """Moves the shadows towards the weights (call in cross-replica context or eagerly).

        Args:
            step: The global step after this update (an integer tensor), for the warm-up.
        """
        step = tf.cast(step, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + step) / (10.0 + step))
        for shadow, variable in zip(self.shadows, self._variables):
            value = tf.cast(_value(variable), shadow.dtype)
            shadow.assign(decay * shadow + (1.0 - decay) * value)

    def reset(self):
        """Sets the shadows to the current weights (after a warm start from another checkpoint)."""
        for shadow, variable in zip(self.shadows, self._variables):
            shadow.assign(_value(variable))

    @contextlib.contextmanager
    def swapped_in(self):
        """Within the block, the model's weights are the averages; restored on exit."""
        backup = [tf.identity(_value(v)) for v in self._variables]
        for variable, shadow in zip(self._variables, self.shadows):
            variable.assign(shadow)
        try:
            yield
        finally:
            for variable, saved in zip(self._variables, backup):
                variable.assign(saved)


class _Untracked:
    """A list that TensorFlow's checkpoint tracking does not look into."""

    def __init__(self, items):
        self.items = list(items)


def _value(variable):
    """The tensor value of a Keras or TF variable."""
    return tf.convert_to_tensor(variable)
