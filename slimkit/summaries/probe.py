"""A look at the network on a fixed probe batch: every end point's output, every variable's gradient.

    probe = Probe(model, loss_fn, model.trainable_variables, images, labels)
    activations, gradients = probe()        # {end point: tensor}, {variable tag: tensor}

The probe runs the model in inference mode (``training=False``): dropout off, so the pictures of
one step compare with the next, and the dropout seed generators are not advanced (a resumed run
must draw the same masks as an uninterrupted one). The gradients are those of the run's loss
(mean cross entropy + regularization) on the probe batch. It is its own compiled function, called
only at heavy-summary points: the train step does not return its tensors.
"""

from slimkit.summaries.variables import variable_tag

_MAX_VALUES = 4_000_000  # floats in the largest end point's output over the probe batch


def probe_batch_size(model, wanted=64):
    """Up to ``wanted`` examples, fewer for big inputs (AlexNet's conv1: 301,056 values each)."""
    import numpy as np

    largest = max([int(np.prod(t.shape[1:])) for t in model.end_points.values()] + [1])
    return int(max(4, min(wanted, _MAX_VALUES // largest)))


class Probe:
    """Activations of every end point and gradients of every variable on one fixed batch.

    Args:
        model: A slimkit model (``model.end_points``).
        loss_fn: ``loss_fn(logits, labels)``, the run's data loss.
        variables: The trainable variables whose gradients are shown.
        images: The probe batch (b, H, W, C) float32.
        labels: (b,) int32.
    """

    def __init__(self, model, loss_fn, variables, images, labels):
        import keras
        import tensorflow as tf

        from slimkit.losses import get_total_loss

        self.names = list(model.end_points)
        self.images = tf.constant(images)
        self.labels = tf.constant(labels)
        self.variables = list(variables)
        self.tags = [variable_tag(v) for v in self.variables]
        outputs = [model.end_points[name] for name in self.names] + [model.output]
        wide = keras.Model(model.input, outputs, name=f"{model.name}_probe")  # shares the layers

        @tf.function
        def run(images, labels):
            with tf.GradientTape() as tape:
                values = wide(images, training=False)
                logits = tf.cast(values[-1], tf.float32)
                loss = get_total_loss(model, tf.cast(loss_fn(logits, labels), tf.float32))
            gradients = tape.gradient(loss, self.variables)
            return [tf.cast(v, tf.float32) for v in values[:-1]], gradients

        self._run = run

    def __call__(self):
        """``({end point: activations}, {variable tag: gradient})`` as float32 tensors."""
        activations, gradients = self._run(self.images, self.labels)
        return (dict(zip(self.names, activations)),
                {tag: g for tag, g in zip(self.tags, gradients) if g is not None})
