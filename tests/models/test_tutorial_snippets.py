"""The TF-Slim walkthrough's code runs on slimkit with only the import lines changed.

The two snippets below are kept verbatim as text and executed with ``exec`` so that nobody can
"fix" them silently. What "unchanged" can mean:

- LeNet uses ``slim.layers.conv2d``, ``slim.layers.max_pool2d``, ``slim.layers.flatten`` and
  ``slim.layers.fully_connected(..., activation_fn=None, scope=...)``: it runs exactly as written
  with ``import slimkit as slim``; ``images`` is a ``keras.Input`` and the result a Keras tensor
  from which we build a ``keras.Model``.
- The arg_scope snippet calls ``tf.truncated_normal_initializer(stddev=0.01)``, which TensorFlow 2
  no longer has at the top level (``AttributeError``, tested below). TensorFlow's own migration path
  for TF1 code is ``import tensorflow.compat.v1 as tf``; with that import line the snippet runs
  unchanged, and slimkit converts the TF1 initializer object to the equivalent Keras
  ``TruncatedNormal``. The other accepted spelling is ``slim.truncated_normal_initializer``
  (the only variant where one token of the code differs from the original).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import slimkit

LENET_SNIPPET = """
def lenet(images):
    net = slim.layers.conv2d(images, 20, [5,5], scope='conv1')
    net = slim.layers.max_pool2d(net, [2,2], scope='pool1')
    net = slim.layers.conv2d(net, 50, [5,5], scope='conv2')
    net = slim.layers.max_pool2d(net, [2,2], scope='pool2')
    net = slim.layers.flatten(net, scope='flatten3')
    net = slim.layers.fully_connected(net, 500, scope='fully_connected4')
    net = slim.layers.fully_connected(net, 10, activation_fn=None, scope='fully_connected5')
    return net
"""

ARG_SCOPE_SNIPPET = """
with slim.arg_scope([slim.conv2d], padding='SAME',
                    weights_initializer=tf.truncated_normal_initializer(stddev=0.01),
                    weights_regularizer=slim.l2_regularizer(0.0005)):
    net = slim.conv2d(inputs, 64, [11, 11], scope='conv1')
    net = slim.conv2d(net, 128, [11, 11], padding='VALID', scope='conv2')
    net = slim.conv2d(net, 256, [11, 11], scope='conv3')
"""


def run_snippet(code, tf_module, **names):
    namespace = {"slim": slimkit, "tf": tf_module, **names}
    exec(compile(code, "<tutorial snippet>", "exec"), namespace)
    return namespace


def test_lenet_snippet_runs_unchanged():
    images = keras.Input((28, 28, 1))
    lenet = run_snippet(LENET_SNIPPET, tf)["lenet"]
    model = keras.Model(images, lenet(images))
    assert [layer.name for layer in model.layers[1:]] == [
        "conv1", "pool1", "conv2", "pool2", "flatten3", "fully_connected4", "fully_connected5"]
    # conv 5x5x1x20 + conv 5x5x20x50 + fc (7*7*50)x500 + fc 500x10, with biases
    assert model.count_params() == 520 + 25_050 + 1_225_500 + 5_010
    assert model.get_layer("pool2").output.shape == (None, 7, 7, 50)   # SAME convs, VALID pools
    assert model.get_layer("fully_connected5").get_config()["activation"] == "linear"

    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    with tf.GradientTape() as tape:
        logits = model(x)
        loss = slimkit.losses.sparse_softmax_cross_entropy(logits, [3, 7])
    grads = tape.gradient(loss, model.trainable_variables)
    assert logits.shape == (2, 10) and all(np.isfinite(g.numpy()).all() for g in grads)


@pytest.mark.parametrize("tf_module, code", [
    (tf.compat.v1, ARG_SCOPE_SNIPPET),
    (tf, ARG_SCOPE_SNIPPET.replace("tf.truncated_normal_initializer",
                                   "slim.truncated_normal_initializer")),
], ids=["tf.compat.v1", "slim.truncated_normal_initializer"])
def test_arg_scope_snippet_runs(tf_module, code):
    inputs = keras.Input((16, 16, 3))
    net = run_snippet(code, tf_module, inputs=inputs)["net"]
    model = keras.Model(inputs, net)
    conv1, conv2, conv3 = (model.get_layer(s) for s in ("conv1", "conv2", "conv3"))
    assert (conv1.padding, conv2.padding, conv3.padding) == ("same", "valid", "same")
    assert model.output.shape == (None, 6, 6, 256)
    for layer in (conv1, conv2, conv3):
        assert isinstance(layer.kernel_initializer, keras.initializers.TruncatedNormal)
        assert layer.kernel_initializer.stddev == 0.01
        assert np.abs(layer.kernel.numpy()).max() <= 0.02 + 1e-7
    # one penalty per conv, in TF-Slim's meaning: 0.0005 * sum(w**2) / 2
    expected = [0.0005 * np.sum(layer.kernel.numpy().astype(np.float64) ** 2) / 2
                for layer in (conv1, conv2, conv3)]
    np.testing.assert_allclose([float(v) for v in model.losses], expected, rtol=1e-5)


def test_arg_scope_snippet_with_plain_tf2_import_fails_where_tf2_lacks_the_name():
    with pytest.raises(AttributeError, match="truncated_normal_initializer"):
        run_snippet(ARG_SCOPE_SNIPPET, tf, inputs=keras.Input((16, 16, 3)))
