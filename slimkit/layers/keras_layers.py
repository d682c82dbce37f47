"""The Keras layer classes that slimkit's layer functions need beyond Keras' own.

- :class:`LocalResponseNormalization` for :func:`slimkit.layers.core.lrn` (Keras has none).
- :class:`Dense` for :func:`slimkit.layers.core.fully_connected`: Keras' Dense with a cheaper
  gradient for its input. TensorFlow's gradient of ``MatMul`` computes it as ``MatMul(dy, kernel,
  transpose_b=True)``, which oneDNN runs 1.5-4.2x slower in float32 than the same product as
  ``BatchMatMulV2(dy, kernel, adj_y=True)`` (Deep MNIST's fc1 at batch 50: 6.4 vs 2.5 ms;
  AlexNet's fc6 at batch 32: 39 vs 9 ms, on a Zen 5 EPYC); in bfloat16, with oneDNN's AVX2
  kernels and with oneDNN off, the two cost about the same (``bench/results/matmul_grad*.md``).
- :class:`GroupedConv2D` for ``conv2d(..., groups=2)``: Keras' own grouped convolution compiles
  each call with XLA on TensorFlow, which on a CPU ran AlexNet's conv2 forward+backward about 12x
  slower than one ordinary convolution per group (measured: 0.65 s vs 0.056 s at batch 16).
- :class:`Dropout` for :func:`slimkit.layers.core.dropout`: Keras' Dropout draws its seed from one
  ``SeedGenerator`` state that every replica of a ``tf.distribute`` strategy shares, so all
  replicas drop the same units (examples i and i + B/2 of a global batch got the same mask). Ours
  folds the replica's id into the seed when there is more than one replica.
- :class:`FixedModeDropout` and :class:`FixedModeBatchNormalization` for ``is_training=True/False``:
  a Keras functional model passes its own ``training`` flag to every layer whose ``call`` accepts
  one, overriding a value given when the layer was applied. These subclasses' ``call`` takes no
  ``training`` argument, so the mode chosen when the model was built is the one that runs.

All are registered for Keras serialization under the package name ``slimkit``.
"""

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="slimkit")
class LocalResponseNormalization(keras.layers.Layer):
    """``tf.nn.local_response_normalization`` as a layer; see :func:`slimkit.layers.core.lrn`.

    Computes in float32 (TensorFlow has no bfloat16 LRN kernel on CPU) and returns the input dtype.

    Example:

    >>> import numpy as np
    >>> LocalResponseNormalization()(np.ones((1, 2, 2, 3), "float32")).shape
    TensorShape([1, 2, 2, 3])
    """

    def __init__(self, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75, **kwargs):
        super().__init__(**kwargs)
        self.depth_radius, self.bias, self.alpha, self.beta = depth_radius, bias, alpha, beta

    def call(self, inputs):
        outputs = tf.nn.local_response_normalization(
            tf.cast(inputs, tf.float32), depth_radius=self.depth_radius, bias=self.bias,
            alpha=self.alpha, beta=self.beta)
        return tf.cast(outputs, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "depth_radius": self.depth_radius, "bias": self.bias,
                "alpha": self.alpha, "beta": self.beta}


@tf.custom_gradient
def matmul(inputs, kernel):
    """``inputs @ kernel`` for 2-D operands, whose input gradient is a ``BatchMatMulV2``.

    The gradients are the same products as TensorFlow's own for ``MatMul`` (``dy @ kernel.T`` and
    ``inputs.T @ dy``); only the kernel that computes ``dy @ kernel.T`` differs (see the module
    docstring).

    Example:

    >>> import numpy as np
    >>> matmul(np.ones((2, 3), "float32"), np.ones((3, 4), "float32")).shape
    TensorShape([2, 4])
    """
    # TensorFlow names the ops of registered gradients "gradient_tape/<forward scope>/...";
    # a custom gradient's ops would land at the graph's top level (in TensorBoard's graph, and
    # in profiles, outside the backward pass) without this scope.
    scope = f"gradient_tape/{tf.get_current_name_scope()}/".replace("//", "/")

    def grad(dy):
        with tf.name_scope(scope):
            return (tf.raw_ops.BatchMatMulV2(x=dy, y=kernel, adj_y=True),
                    tf.matmul(inputs, dy, transpose_a=True))

    return tf.matmul(inputs, kernel), grad


@keras.saving.register_keras_serializable(package="slimkit")
class Dense(keras.layers.Dense):
    """``keras.layers.Dense`` whose 2-D products use :func:`matmul`; otherwise Keras' own.

    Same arguments, weights and outputs as Keras' layer. Inputs of another rank, LoRA and
    quantized kernels take Keras' path.

    Example:

    >>> import numpy as np
    >>> Dense(4)(np.ones((2, 3), "float32")).shape
    TensorShape([2, 4])
    """

    def call(self, inputs, training=None):
        if len(inputs.shape) != 2 or self.lora_enabled or self.quantization_mode is not None:
            return super().call(inputs, training=training)
        # The kernel's value (cast to the compute dtype under mixed precision), not the variable:
        # the gradient flows on to the variable through the read.
        outputs = matmul(inputs, tf.convert_to_tensor(self.kernel))
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


@keras.saving.register_keras_serializable(package="slimkit")
class Dropout(keras.layers.Dropout):
    """``keras.layers.Dropout`` whose replicas draw different masks under ``tf.distribute``.

    The seed comes from the layer's ``SeedGenerator`` as in Keras (so it is saved in checkpoints
    and a resumed run draws the same masks). With more than one replica in sync, the replica's id
    in the sync group (global across the workers of a MultiWorkerMirroredStrategy) is folded into
    that seed: each replica's mask is then a deterministic function of the seed state and its id.
    With one replica the masks are exactly Keras' own.

    Example:

    >>> import numpy as np
    >>> out = Dropout(0.5, seed=0)(np.ones((1, 1000), "float32"), training=True).numpy()
    >>> sorted(set(out.ravel().tolist()))
    [0.0, 2.0]
    """

    def call(self, inputs, training=False):
        return self._dropout(inputs, training)

    def _dropout(self, inputs, training):
        context = tf.distribute.get_replica_context()
        if not training or self.rate == 0 or context is None or context.num_replicas_in_sync == 1:
            return super().call(inputs, training=training)
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32)
        seed = tf.random.experimental.stateless_fold_in(seed, context.replica_id_in_sync_group)
        return tf.nn.experimental.stateless_dropout(
            inputs, rate=self.rate, noise_shape=self._concrete_noise_shape(inputs), seed=seed)

    def _concrete_noise_shape(self, inputs):
        if self.noise_shape is None:
            return None
        dynamic = tf.shape(inputs)
        return [dynamic[i] if dim is None else dim for i, dim in enumerate(self.noise_shape)]


@keras.saving.register_keras_serializable(package="slimkit")
class FixedModeDropout(Dropout):
    """:class:`Dropout` that always runs in training mode (`training=True`) or never (`False`).

    Example:

    >>> import numpy as np
    >>> FixedModeDropout(0.5, training=False)(np.ones((1, 4), "float32")).numpy().tolist()
    [[1.0, 1.0, 1.0, 1.0]]
    """

    def __init__(self, rate, training, **kwargs):
        super().__init__(rate, **kwargs)
        self.fixed_training = bool(training)

    def call(self, inputs):
        return self._dropout(inputs, self.fixed_training)

    def get_config(self):
        return {**super().get_config(), "training": self.fixed_training}


@keras.saving.register_keras_serializable(package="slimkit")
class FixedModeBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization with batch statistics (`training=True`) or moving ones (`False`), always.

    Example:

    >>> import numpy as np
    >>> FixedModeBatchNormalization(training=False)(np.ones((2, 3), "float32")).shape
    TensorShape([2, 3])
    """

    def __init__(self, training, **kwargs):
        super().__init__(**kwargs)
        self.fixed_training = bool(training)

    def call(self, inputs, mask=None):
        return super().call(inputs, training=self.fixed_training, mask=mask)

    def get_config(self):
        return {**super().get_config(), "training": self.fixed_training}


@keras.saving.register_keras_serializable(package="slimkit")
class GroupedConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with ``groups > 1``, computed as one convolution per group.

    Same arguments, kernel shape (kh, kw, C_in / groups, filters) and results as Keras' layer;
    group g maps input channels [g * C_in / groups, (g + 1) * C_in / groups) to output channels
    [g * filters / groups, (g + 1) * filters / groups).

    Example:

    >>> import numpy as np
    >>> layer = GroupedConv2D(4, 3, groups=2, padding="same")
    >>> layer(np.ones((1, 5, 5, 6), "float32")).shape, tuple(layer.kernel.shape)
    (TensorShape([1, 5, 5, 4]), (3, 3, 3, 4))
    """

    def convolution_op(self, inputs, kernel):
        if self.groups == 1:
            return super().convolution_op(inputs, kernel)
        parts = zip(ops.split(inputs, self.groups, axis=-1), ops.split(kernel, self.groups, axis=-1))
        return ops.concatenate([super(GroupedConv2D, self).convolution_op(x, k) for x, k in parts],
                               axis=-1)
