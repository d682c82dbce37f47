"""The tutorial's ``variable_summaries``: mean, stddev, min and max of every trainable variable.

    stats = VariableStats(model.trainable_variables)
    stats()            # {"conv1/kernel/mean": 0.0012, "conv1/kernel/stddev": 0.087, ...}

One compiled function reads all variables and returns a (variables, 4) tensor, so the 4 x 8
scalars of Deep MNIST cost one host transfer (a few milliseconds for 3.3 M weights), not 32.
Tags are the Keras variable paths (``conv1/kernel``, ``fc1/bias``): TensorBoard groups them by
layer.
"""

STATS = ("mean", "stddev", "min", "max")


def variable_tag(variable):
    """``conv1/kernel`` for a Keras variable (its path), a TF variable's name without ``:0``."""
    path = getattr(variable, "path", None) or variable.name
    return path[:-2] if path.endswith(":0") else path


class VariableStats:
    """Mean, stddev, min, max of each of ``variables``, computed in one compiled call."""

    def __init__(self, variables):
        import tensorflow as tf

        self.variables = list(variables)
        self.tags = [variable_tag(v) for v in self.variables]

        @tf.function
        def stats():
            rows = []
            for variable in self.variables:
                x = tf.reshape(tf.cast(tf.convert_to_tensor(variable), tf.float32), [-1])
                mean, variance = tf.nn.moments(x, axes=[0])
                rows.append(tf.stack([mean, tf.sqrt(variance), tf.reduce_min(x),
                                      tf.reduce_max(x)]))
            return tf.stack(rows)

        self._stats = stats

    def __call__(self):
        """``{"<variable>/<stat>": float}`` for every variable and stat."""
        values = self._stats().numpy() if self.variables else []
        return {f"{tag}/{name}": float(value)
                for tag, row in zip(self.tags, values) for name, value in zip(STATS, row)}
