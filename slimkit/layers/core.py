"""TF-Slim's layer functions on Keras 3: each call creates one named Keras layer and applies it.

    net = slim.conv2d(images, 32, [5, 5], scope="conv1")        # keras.layers.Conv2D named conv1
    net = slim.max_pool2d(net, [2, 2], scope="pool1")            # (N, 14, 14, 32)

The functions take TF-Slim's argument names and defaults (``num_outputs``, ``kernel_size``,
``stride``, ``padding="SAME"`` for convolutions and ``"VALID"`` for pooling, ``activation_fn=relu``,
``weights_initializer=xavier``, ``biases_initializer=zeros``, ``keep_prob``, ...). They are meant for
symbolic Keras tensors (``keras.Input``) when building a functional model; called on an eager tensor
they still work, but the new layer is not kept anywhere.

Naming: ``scope`` becomes the Keras layer name, so ``scope="conv1"`` gives variables ``conv1/kernel``
and ``conv1/bias``. Keras names may not contain ``/``, so where TF-Slim nests scopes we join with
``_``: the normalizer of ``conv1`` is the layer ``conv1_batch_norm`` and the activation that then
follows it ``conv1_relu``; ``repeat``/``stack`` with ``scope="conv3"`` create ``conv3_1``,
``conv3_2``, ... (TF-Slim: ``conv3/conv3_1``). A name prefix therefore still selects a layer
together with its normalizer, as TF-Slim's scope prefixes did. With ``scope=None`` Keras picks a
unique name (``conv2d``, ``conv2d_1``, ...).

``is_training`` (``dropout``, ``batch_norm``): None follows Keras' ``training`` flag, i.e.
``model(x, training=True)`` enables dropout; True or False pins the behaviour into the model.
"""

import inspect
import numbers

import keras
import tensorflow as tf

from slimkit.layers import initializers, regularizers
from slimkit.layers.arg_scope import add_arg_scope
from slimkit.layers.keras_layers import (Dense, Dropout, FixedModeBatchNormalization,
                                         FixedModeDropout, GroupedConv2D,
                                         LocalResponseNormalization)

# TensorFlow activation functions -> Keras names, so that models stay serializable.
_TF_ACTIVATIONS = {
    tf.nn.relu: "relu", tf.nn.relu6: "relu6", tf.nn.elu: "elu", tf.nn.selu: "selu",
    tf.nn.softmax: "softmax", tf.nn.sigmoid: "sigmoid", tf.math.sigmoid: "sigmoid",
    tf.nn.tanh: "tanh", tf.math.tanh: "tanh", tf.nn.gelu: "gelu", tf.nn.swish: "silu",
    tf.nn.softplus: "softplus", tf.nn.leaky_relu: "leaky_relu",
}


def layer_name(scope, suffix=None):
    """The Keras layer name for `scope` (None -> None: Keras picks one), checked for '/'."""
    if scope is None:
        return None
    if not isinstance(scope, str) or not scope or "/" in scope:
        raise ValueError("Invalid value for argument `scope`. Expected a non-empty string without "
                         "'/' (Keras layer names cannot contain '/'; join nested names with '_', "
                         f"e.g. 'conv3_1'). Received scope={scope!r}.")
    return f"{scope}_{suffix}" if suffix else scope


def get_activation(activation_fn):
    """None, a Keras activation name or function, or a TensorFlow one (mapped to its Keras name)."""
    if activation_fn is None:
        return None
    try:
        name = _TF_ACTIVATIONS.get(activation_fn)
    except TypeError:  # unhashable callable object
        name = None
    return keras.activations.get(name or activation_fn)


def _pair(value, argname):
    """An int or a pair of ints -> a tuple of two strictly positive ints."""
    try:
        pair = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    except TypeError:  # not iterable, e.g. 3.0
        pair = ()
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and v > 0 for v in pair):
        raise ValueError(f"Invalid value for argument `{argname}`. Expected a strictly positive "
                         f"integer or a pair of them. Received {argname}={value!r}.")
    return tuple(int(v) for v in pair)


def _padding(padding):
    if not isinstance(padding, str) or padding.upper() not in ("SAME", "VALID"):
        raise ValueError("Invalid value for argument `padding`. Expected 'SAME' or 'VALID'. "
                         f"Received padding={padding!r}.")
    return padding.lower()


def _positive_int(value, argname):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"Invalid value for argument `{argname}`. Expected a strictly positive "
                         f"integer. Received {argname}={value!r}.")
    return int(value)


def _normalize_and_activate(outputs, scope, normalizer_fn, normalizer_params, activation):
    """TF-Slim's tail of conv2d/fully_connected: optional normalizer, then the activation."""
    if normalizer_fn is not None:
        params = dict(normalizer_params or {})
        if scope is not None and "scope" in inspect.signature(normalizer_fn).parameters:
            params.setdefault("scope", layer_name(scope, getattr(normalizer_fn, "__name__", "norm")))
        outputs = normalizer_fn(outputs, **params)
    if activation is not None:
        suffix = getattr(activation, "__name__", "activation")
        outputs = keras.layers.Activation(activation, name=layer_name(scope, suffix))(outputs)
    return outputs


@add_arg_scope
def conv2d(inputs, num_outputs, kernel_size, stride=1, padding="SAME", rate=1, groups=1,
           activation_fn=keras.activations.relu, normalizer_fn=None, normalizer_params=None,
           weights_initializer="glorot_uniform", weights_regularizer=None,
           biases_initializer="zeros", biases_regularizer=None, trainable=True, scope=None):
    """2-D convolution (NHWC), then the normalizer or the bias, then the activation.

    Args:
        inputs: a 4-D tensor (N, H, W, C).
        num_outputs: the number of filters.
        kernel_size: an int or [kernel_height, kernel_width].
        stride: an int or [stride_height, stride_width].
        padding: ``"SAME"`` or ``"VALID"``.
        rate: dilation rate (atrous convolution), an int or a pair.
        groups: split input and output channels into this many independent groups, as AlexNet's
            two-GPU layers did (kernel shape (kh, kw, C / groups, num_outputs)).
        activation_fn: None (linear), a Keras activation or name, or ``tf.nn.relu`` and friends.
        normalizer_fn: e.g. :func:`batch_norm`; when given, no bias is created (TF-Slim's rule).
        normalizer_params: keyword arguments for `normalizer_fn`.
        weights_initializer: see :func:`slimkit.layers.initializers.get`.
        weights_regularizer: e.g. ``slim.l2_regularizer(5e-4)``.
        biases_initializer: None for no bias.
        biases_regularizer: regularizer for the bias.
        trainable: whether the variables are trained.
        scope: the layer name.

    Returns:
        The output tensor (N, H', W', num_outputs).

    Example:

    >>> import keras, slimkit as slim
    >>> images = keras.Input((28, 28, 1))
    >>> slim.conv2d(images, 32, [5, 5], scope="conv1").shape
    (None, 28, 28, 32)
    """
    use_bias = normalizer_fn is None and biases_initializer is not None
    activation = get_activation(activation_fn)
    groups = _positive_int(groups, "groups")
    conv_class = GroupedConv2D if groups > 1 else keras.layers.Conv2D
    layer = conv_class(
        _positive_int(num_outputs, "num_outputs"), _pair(kernel_size, "kernel_size"),
        strides=_pair(stride, "stride"), padding=_padding(padding), dilation_rate=_pair(rate, "rate"),
        groups=groups,
        activation=activation if normalizer_fn is None else None, use_bias=use_bias,
        kernel_initializer=initializers.get(weights_initializer),
        bias_initializer=initializers.get(biases_initializer) if use_bias else "zeros",
        kernel_regularizer=regularizers.get(weights_regularizer),
        bias_regularizer=regularizers.get(biases_regularizer) if use_bias else None,
        trainable=trainable, name=layer_name(scope))
    outputs = layer(inputs)
    if normalizer_fn is None:
        return outputs
    return _normalize_and_activate(outputs, scope, normalizer_fn, normalizer_params, activation)


@add_arg_scope
def fully_connected(inputs, num_outputs, activation_fn=keras.activations.relu, normalizer_fn=None,
                    normalizer_params=None, weights_initializer="glorot_uniform",
                    weights_regularizer=None, biases_initializer="zeros", biases_regularizer=None,
                    trainable=True, scope=None):
    """Fully connected layer ``activation(inputs @ weights + biases)`` over the last axis.

    Arguments as in :func:`conv2d`. `inputs` is usually 2-D (N, K); flatten images first.

    Example:

    >>> import keras, slimkit as slim
    >>> x = keras.Input((784,))
    >>> slim.fully_connected(x, 10, activation_fn=None, scope="logits").shape
    (None, 10)
    """
    use_bias = normalizer_fn is None and biases_initializer is not None
    activation = get_activation(activation_fn)
    layer = Dense(
        _positive_int(num_outputs, "num_outputs"),
        activation=activation if normalizer_fn is None else None, use_bias=use_bias,
        kernel_initializer=initializers.get(weights_initializer),
        bias_initializer=initializers.get(biases_initializer) if use_bias else "zeros",
        kernel_regularizer=regularizers.get(weights_regularizer),
        bias_regularizer=regularizers.get(biases_regularizer) if use_bias else None,
        trainable=trainable, name=layer_name(scope))
    outputs = layer(inputs)
    if normalizer_fn is None:
        return outputs
    return _normalize_and_activate(outputs, scope, normalizer_fn, normalizer_params, activation)


@add_arg_scope
def max_pool2d(inputs, kernel_size, stride=2, padding="VALID", scope=None):
    """Max pooling over `kernel_size` windows (TF-Slim's defaults: stride 2, VALID).

    Example:

    >>> import keras, slimkit as slim
    >>> slim.max_pool2d(keras.Input((28, 28, 32)), [2, 2], scope="pool1").shape
    (None, 14, 14, 32)
    """
    return keras.layers.MaxPooling2D(_pair(kernel_size, "kernel_size"), _pair(stride, "stride"),
                                     padding=_padding(padding), name=layer_name(scope))(inputs)


@add_arg_scope
def avg_pool2d(inputs, kernel_size, stride=2, padding="VALID", scope=None):
    """Average pooling over `kernel_size` windows (TF-Slim's defaults: stride 2, VALID).

    Example:

    >>> import keras, slimkit as slim
    >>> slim.avg_pool2d(keras.Input((7, 7, 64)), [7, 7], stride=1).shape
    (None, 1, 1, 64)
    """
    return keras.layers.AveragePooling2D(_pair(kernel_size, "kernel_size"), _pair(stride, "stride"),
                                         padding=_padding(padding), name=layer_name(scope))(inputs)


@add_arg_scope
def flatten(inputs, scope=None):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...), keeping the batch axis.

    Example:

    >>> import keras, slimkit as slim
    >>> slim.flatten(keras.Input((7, 7, 64))).shape
    (None, 3136)
    """
    return keras.layers.Flatten(name=layer_name(scope))(inputs)


@add_arg_scope
def dropout(inputs, keep_prob=0.5, noise_shape=None, is_training=None, seed=None, scope=None):
    """Keeps each element with probability `keep_prob`, scaled by 1 / keep_prob, when training.

    Args:
        inputs: any tensor.
        keep_prob: probability of keeping an element, in (0, 1] (TF1's convention; Keras' rate is
            1 - keep_prob).
        noise_shape: optional shape of the keep/drop mask, for broadcasting.
        is_training: None follows Keras' ``training`` call flag; True/False fixes it.
        seed: optional integer seed. Under ``tf.distribute`` each replica folds its id into the
            seed, so replicas draw different masks (see :class:`slimkit.layers.keras_layers.Dropout`).
        scope: the layer name.

    Example:

    >>> import keras, slimkit as slim
    >>> slim.dropout(keras.Input((1024,)), 0.5, scope="dropout").shape
    (None, 1024)
    """
    if isinstance(keep_prob, bool) or not isinstance(keep_prob, numbers.Real) or not 0 < keep_prob <= 1:
        raise ValueError("Invalid value for argument `keep_prob`. Expected a probability in (0, 1]. "
                         f"Received keep_prob={keep_prob!r}.")
    rate, name = 1.0 - float(keep_prob), layer_name(scope)
    if is_training is None:
        return Dropout(rate, noise_shape=noise_shape, seed=seed, name=name)(inputs)
    return FixedModeDropout(rate, is_training, noise_shape=noise_shape, seed=seed, name=name)(inputs)


def repeat(inputs, repetitions, layer, *args, scope=None, **kwargs):
    """Applies ``layer(net, *args, **kwargs)`` `repetitions` times, naming them scope_1, scope_2...

    Example:

    >>> import keras, slimkit as slim
    >>> net = slim.repeat(keras.Input((56, 56, 128)), 3, slim.conv2d, 256, [3, 3], scope="conv3")
    >>> net.shape
    (None, 56, 56, 256)
    """
    _positive_int(repetitions, "repetitions")
    outputs = inputs
    for i in range(repetitions):
        outputs = layer(outputs, *args, scope=layer_name(scope, str(i + 1)), **kwargs)
    return outputs


def stack(inputs, layer, stack_args, scope=None, **kwargs):
    """Applies `layer` once per element of `stack_args`, naming them scope_1, scope_2, ...

    Each element holds the positional arguments of one call, as a tuple or list (``(64, [3, 3])``)
    or as a single non-sequence argument (``64``), as in TF-Slim; `kwargs` go to every call.

    Example:

    >>> import keras, slimkit as slim
    >>> net = slim.stack(keras.Input((784,)), slim.fully_connected, [32, 64, 128], scope="fc")
    >>> net.shape
    (None, 128)
    """
    if not isinstance(stack_args, (list, tuple)) or not stack_args:
        raise ValueError("Invalid value for argument `stack_args`. Expected a non-empty list of "
                         f"argument tuples, one per layer. Received stack_args={stack_args!r}.")
    outputs = inputs
    for i, args in enumerate(stack_args):
        args = args if isinstance(args, (list, tuple)) else (args,)
        outputs = layer(outputs, *args, scope=layer_name(scope, str(i + 1)), **kwargs)
    return outputs



@add_arg_scope
def batch_norm(inputs, decay=0.999, center=True, scale=False, epsilon=0.001, activation_fn=None,
               is_training=None, trainable=True, scope=None):
    """Batch normalization over the last axis (Ioffe & Szegedy, 2015), TF-Slim's defaults.

    Args:
        inputs: a tensor (N, ..., C).
        decay: momentum of the moving mean and variance (Keras' `momentum`).
        center: add a learned offset beta.
        scale: multiply by a learned gamma (TF-Slim leaves it off: the next layer can scale).
        epsilon: added to the variance.
        activation_fn: optional activation applied after normalizing.
        is_training: None follows Keras' ``training`` flag; True/False fixes it.
        trainable: whether beta/gamma are trained (False also freezes the statistics in Keras).
        scope: the layer name.

    Example:

    >>> import keras, slimkit as slim
    >>> x = keras.Input((28, 28, 1))
    >>> slim.conv2d(x, 8, 3, normalizer_fn=slim.batch_norm, scope="conv1").shape
    (None, 28, 28, 8)
    """
    kwargs = dict(momentum=decay, epsilon=epsilon, center=center, scale=scale, trainable=trainable,
                  name=layer_name(scope))
    if is_training is None:
        outputs = keras.layers.BatchNormalization(**kwargs)(inputs)
    else:
        outputs = FixedModeBatchNormalization(is_training, **kwargs)(inputs)
    activation = get_activation(activation_fn)
    if activation is not None:
        suffix = getattr(activation, "__name__", "activation")
        outputs = keras.layers.Activation(activation, name=layer_name(scope, suffix))(outputs)
    return outputs


@add_arg_scope
def lrn(inputs, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75, scope=None):
    """Local response normalization across channels; the defaults are AlexNet's (paper, sec. 3.3).

    ``out[..., c] = in[..., c] / (bias + alpha * sum(in[..., c'] ** 2)) ** beta`` with the sum over
    ``c - depth_radius <= c' <= c + depth_radius`` (clipped at the edges). This is
    ``tf.nn.local_response_normalization``'s convention, and the paper's with ``n = 2 *
    depth_radius + 1``, ``k = bias``: the paper's alpha multiplies the plain sum, so AlexNet's
    (k=2, n=5, alpha=1e-4, beta=0.75) is ``lrn(x, 2, 2.0, 1e-4, 0.75)``. Caffe and PyTorch divide
    alpha by n; to port their settings, pass ``alpha / n``.

    Args:
        inputs: a 4-D tensor (N, H, W, C).
        depth_radius: half-width of the channel window.
        bias: the offset k.
        alpha: the scale of the sum of squares.
        beta: the exponent.
        scope: the layer name.

    Example:

    >>> import keras, slimkit as slim
    >>> slim.lrn(keras.Input((55, 55, 96)), scope="lrn1").shape
    (None, 55, 55, 96)
    """
    layer = LocalResponseNormalization(depth_radius=_positive_or_zero(depth_radius), bias=bias,
                                       alpha=alpha, beta=beta, name=layer_name(scope))
    return layer(inputs)


def _positive_or_zero(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError("Invalid value for argument `depth_radius`. Expected an integer >= 0. "
                         f"Received depth_radius={value!r}.")
    return int(value)

