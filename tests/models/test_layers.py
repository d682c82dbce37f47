"""Layer functions: naming, TF-Slim defaults, normalizer/activation order, is_training, LRN
against a NumPy reference, initializers and regularizers (Slim's l2 meaning), argument errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import slimkit as slim
from slimkit.layers import initializers, regularizers


def build(fn, input_shape):
    x = keras.Input(input_shape)
    return keras.Model(x, fn(x))


def np_lrn(x, depth_radius, bias, alpha, beta):
    """Reference: out[c] = x[c] / (bias + alpha * sum_{|c'-c| <= r} x[c']^2) ** beta."""
    x = x.astype(np.float64)
    channels = x.shape[-1]
    out = np.empty_like(x)
    for c in range(channels):
        lo, hi = max(0, c - depth_radius), min(channels, c + depth_radius + 1)
        out[..., c] = x[..., c] / (bias + alpha * (x[..., lo:hi] ** 2).sum(-1)) ** beta
    return out


@pytest.mark.parametrize("params", [dict(), dict(depth_radius=5, bias=1.0, alpha=1e-3, beta=0.5),
                                    dict(depth_radius=0, bias=1.0, alpha=1.0, beta=1.0)])
def test_lrn_matches_numpy_reference(params):
    x = np.random.default_rng(1).normal(size=(2, 3, 3, 12)).astype(np.float32) * 20
    model = build(lambda t: slim.lrn(t, scope="norm1", **params), (3, 3, 12))
    full = dict(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75, **{})
    full.update(params)
    np.testing.assert_allclose(model(x).numpy(), np_lrn(x, **full), rtol=1e-5, atol=1e-6)
    assert model.layers[-1].name == "norm1"


def test_lrn_defaults_are_alexnets_and_alpha_is_not_divided_by_n():
    """Paper: b = a / (k + alpha * sum of n=5 squares)^beta with k=2, alpha=1e-4, beta=0.75."""
    x = np.zeros((1, 1, 1, 5), np.float32)
    x[..., 2] = 100.0
    out = build(slim.lrn, (1, 1, 5))(x).numpy()[0, 0, 0, 2]
    np.testing.assert_allclose(out, 100.0 / (2.0 + 1e-4 * 100.0 ** 2) ** 0.75, rtol=1e-6)


def test_lrn_runs_under_mixed_bfloat16():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build(lambda t: slim.lrn(t), (3, 3, 8))
    finally:
        keras.config.set_dtype_policy("float32")
    out = model(np.ones((1, 3, 3, 8), np.float32))
    assert out.dtype == tf.bfloat16


def test_conv2d_defaults_and_naming():
    model = build(lambda t: slim.conv2d(t, 4, [3, 5], stride=2, scope="conv1"), (9, 9, 2))
    layer = model.get_layer("conv1")
    assert layer.padding == "same" and layer.strides == (2, 2) and layer.kernel_size == (3, 5)
    assert layer.activation is keras.activations.relu and layer.use_bias
    assert [v.path for v in layer.weights] == ["conv1/kernel", "conv1/bias"]
    assert model.output.shape == (None, 5, 5, 4)


def test_tf_activation_functions_map_to_keras_names():
    model = build(lambda t: slim.fully_connected(t, 3, activation_fn=tf.nn.relu), (4,))
    assert model.layers[-1].get_config()["activation"] == "relu"


def test_grouped_conv2d_has_the_split_kernel():
    model = build(lambda t: slim.conv2d(t, 256, [5, 5], groups=2, scope="conv2"), (27, 27, 96))
    assert tuple(model.get_layer("conv2").kernel.shape) == (5, 5, 48, 256)
    assert model.count_params() == 5 * 5 * 48 * 256 + 256


def test_grouped_conv2d_matches_keras_grouped_convolution_and_its_gradient():
    """Ours runs one convolution per group; Keras' compiles a grouped one with XLA on CPU."""
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 7, 7, 6)).astype(np.float32))
    ours = build(lambda t: slim.conv2d(t, 4, 3, groups=2, activation_fn=None, scope="g"), (7, 7, 6))
    theirs = build(lambda t: keras.layers.Conv2D(4, 3, padding="same", groups=2)(t), (7, 7, 6))
    theirs.set_weights(ours.get_weights())
    assert type(ours.get_layer("g")).__name__ == "GroupedConv2D"
    results = []
    for model in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = model(x)
            loss = tf.reduce_sum(y * y)
        results.append([y, *tape.gradient(loss, [x, *model.trainable_variables])])
    for a, b in zip(*results):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    # group 0 sees only input channels 0-2: changing channel 5 leaves output channels 0-1 alone
    x2 = x.numpy().copy()
    x2[..., 5] += 1.0
    np.testing.assert_allclose(ours(x2).numpy()[..., :2], ours(x).numpy()[..., :2], atol=1e-6)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("compiled", [False, True])
def test_fully_connected_matches_keras_dense_and_its_gradients(policy, compiled):
    """Ours computes the input gradient with BatchMatMulV2 (faster in oneDNN): same values."""
    x = tf.constant(np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32))
    keras.config.set_dtype_policy(policy)
    try:
        ours = build(lambda t: slim.fully_connected(t, 3, scope="fc"), (7,))
        theirs = build(lambda t: keras.layers.Dense(3, activation="relu")(t), (7,))
    finally:
        keras.config.set_dtype_policy("float32")
    theirs.set_weights(ours.get_weights())
    assert type(ours.get_layer("fc")).__name__ == "Dense"
    assert type(ours.get_layer("fc")) is not keras.layers.Dense

    def forward_and_gradients(model):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.cast(model(x), tf.float32)
            loss = tf.reduce_sum(y * tf.range(1.0, 4.0))
        return [y, *tape.gradient(loss, [x, *model.trainable_variables])]

    if compiled:
        forward_and_gradients = tf.function(forward_and_gradients)
    results = [forward_and_gradients(ours), forward_and_gradients(theirs)]
    assert results[0][1].dtype == tf.float32 and results[0][2].dtype == tf.float32
    tolerance = 1e-6 if policy == "float32" else 1e-2
    for a, b in zip(*results):
        assert np.abs(b.numpy()).max() > 0.1  # the rows and gradients compared are not all zero
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=tolerance, atol=tolerance)


def test_fully_connected_gradient_ops_sit_in_the_backward_scope_of_their_layer():
    """As TensorFlow names registered gradients: TensorBoard's graph and profiles group by it."""
    model = build(lambda t: slim.fully_connected(t, 3, scope="fc"), (7,))

    @tf.function
    def gradients(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x))
        return tape.gradient(loss, model.trainable_variables)

    graph = gradients.get_concrete_function(tf.TensorSpec([2, 7])).graph
    products = [op.name for op in graph.get_operations()
                if op.type in ("MatMul", "BatchMatMulV2") and "gradient_tape" in op.name]
    assert len(products) == 2
    forward = next(op.name for op in graph.get_operations() if op.type == "MatMul"
                   and not op.name.startswith("gradient_tape"))
    scope = forward.rsplit("/", 1)[0]  # e.g. functional_1/fc_1
    assert all(name.startswith(f"gradient_tape/{scope}/") for name in products), products


def test_fully_connected_keeps_keras_path_for_other_ranks():
    model = build(lambda t: slim.fully_connected(t, 3, activation_fn=None, scope="fc"), (4, 7))
    x = np.random.default_rng(1).random((2, 4, 7), dtype=np.float32)
    kernel, bias = model.get_layer("fc").get_weights()
    np.testing.assert_allclose(model(x).numpy(), x @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_normalizer_replaces_the_bias_and_precedes_the_activation():
    model = build(lambda t: slim.conv2d(t, 4, 3, normalizer_fn=slim.batch_norm,
                                        normalizer_params={"scale": True}, scope="conv1"),
                  (6, 6, 1))
    assert [layer.name for layer in model.layers[1:]] == ["conv1", "conv1_batch_norm", "conv1_relu"]
    assert not model.get_layer("conv1").use_bias
    assert model.get_layer("conv1_batch_norm").scale
    out = model(np.random.default_rng(0).normal(size=(8, 6, 6, 1)).astype(np.float32),
                training=True).numpy()
    assert out.min() == 0.0   # relu after normalizing: about half the values are clipped


def test_batch_norm_follows_or_fixes_the_training_mode():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(64, 4)).astype(np.float32)
    follow = build(lambda t: slim.batch_norm(t, scope="bn"), (4,))
    train = follow(x, training=True).numpy()
    np.testing.assert_allclose(train.mean(0), 0.0, atol=1e-4)     # batch statistics
    bn = follow.get_layer("bn")                                      # moving statistics
    expected = (x - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy() + 1e-3)
    np.testing.assert_allclose(follow(x, training=False).numpy(), expected, rtol=1e-4, atol=1e-5)
    assert abs(float(bn.moving_mean.numpy()[0]) - 0.001 * x[:, 0].mean()) < 1e-4   # decay 0.999
    fixed = build(lambda t: slim.batch_norm(t, is_training=True, scope="bn"), (4,))
    np.testing.assert_allclose(fixed(x, training=False).numpy().mean(0), 0.0, atol=1e-4)


def test_dropout_keep_prob_and_fixed_mode():
    x = np.ones((1000, 10), np.float32)
    model = build(lambda t: slim.dropout(t, keep_prob=0.8, scope="dropout"), (10,))
    out = model(x, training=True).numpy()
    assert set(np.unique(out)) <= {0.0, 1.25} and abs((out > 0).mean() - 0.8) < 0.02
    np.testing.assert_array_equal(model(x, training=False), x)
    always = build(lambda t: slim.dropout(t, 0.5, is_training=True), (10,))
    assert (always(x, training=False).numpy() == 0).any()
    never = build(lambda t: slim.dropout(t, 0.5, is_training=False), (10,))
    np.testing.assert_array_equal(never(x, training=True), x)


def test_pool_defaults_are_slims():
    model = build(lambda t: slim.max_pool2d(t, [3, 3], scope="pool1"), (55, 55, 1))
    assert model.output.shape == (None, 27, 27, 1)   # stride 2, VALID
    model = build(lambda t: slim.avg_pool2d(t, 2, padding="SAME"), (5, 5, 1))
    assert model.output.shape == (None, 3, 3, 1)


def test_repeat_and_stack_naming():
    def net(t):
        t = slim.repeat(t, 3, slim.conv2d, 4, [3, 3], scope="conv3")
        return slim.stack(t, slim.conv2d, [(8, [3, 3]), (16, [1, 1])], scope="conv4")

    model = build(net, (8, 8, 1))
    assert [layer.name for layer in model.layers[1:]] == [
        "conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2"]
    assert tuple(model.get_layer("conv4_2").kernel.shape) == (1, 1, 8, 16)
    fc = build(lambda t: slim.stack(t, slim.fully_connected, [32, 64], scope="fc"), (5,))
    assert [layer.name for layer in fc.layers[1:]] == ["fc_1", "fc_2"]


def test_unnamed_layers_get_unique_keras_names():
    model = build(lambda t: slim.repeat(t, 2, slim.fully_connected, 3), (4,))
    names = [layer.name for layer in model.layers[1:]]
    assert len(set(names)) == 2


def test_l2_regularizer_is_half_of_keras_l2():
    w = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    ours = float(slim.l2_regularizer(0.01)(w))
    np.testing.assert_allclose(ours, 0.01 * np.sum(w.astype(np.float64) ** 2) / 2, rtol=1e-6)
    np.testing.assert_allclose(ours, float(keras.regularizers.L2(0.01)(w)) / 2, rtol=1e-6)
    np.testing.assert_allclose(float(slim.l1_regularizer(0.01)(w)), 0.01 * np.abs(w).sum(),
                               rtol=1e-5)
    assert slim.l2_regularizer(0.0) is None and slim.l1_regularizer(0) is None


def test_regularizers_reach_model_losses_and_serialize():
    model = build(lambda t: slim.fully_connected(t, 3, weights_regularizer=slim.l2_regularizer(0.5),
                                                 scope="fc"), (4,))
    kernel = model.get_layer("fc").kernel.numpy()
    np.testing.assert_allclose(float(model.losses[0]), 0.5 * np.sum(kernel ** 2) / 2, rtol=1e-5)
    config = keras.regularizers.serialize(slim.l2_regularizer(0.5))
    assert keras.regularizers.deserialize(config).scale == 0.5


def test_regularizer_scale_errors():
    with pytest.raises(ValueError, match=r"argument `scale`\. Expected a number >= 0\. "
                                         r"Received scale=-1"):
        slim.l2_regularizer(-1)


def test_initializers_have_slims_meaning():
    values = slim.truncated_normal_initializer(stddev=0.1)((200_000,)).numpy()
    assert np.abs(values).max() <= 0.2 + 1e-6 and abs(values.std() - 0.1 * 0.8796) < 0.002
    np.testing.assert_array_equal(slim.constant_initializer(0.1)((3,)).numpy(), np.float32(0.1))
    he = slim.variance_scaling_initializer()((1000, 400)).numpy()
    np.testing.assert_allclose(he.var(), 2.0 / 1000, rtol=0.05)
    xavier = slim.xavier_initializer()((300, 100)).numpy()
    np.testing.assert_allclose(xavier.var(), 2.0 / 400, rtol=0.05)
    with pytest.raises(ValueError, match=r"argument `mode`\. Expected one of FAN_IN"):
        slim.variance_scaling_initializer(mode="fan")


def test_tensorflow_initializer_objects_are_converted():
    v1 = initializers.get(tf.compat.v1.truncated_normal_initializer(stddev=0.01, seed=3))
    assert isinstance(v1, keras.initializers.TruncatedNormal) and v1.stddev == 0.01
    v2 = initializers.get(tf.random_normal_initializer(stddev=2.0))
    assert isinstance(v2, keras.initializers.RandomNormal) and v2.stddev == 2.0
    const = initializers.get(tf.compat.v1.constant_initializer(0.1))
    assert isinstance(const, keras.initializers.Constant)
    with pytest.raises(ValueError, match=r"Invalid initializer"):
        initializers.get(42)


def test_one_initializer_shared_through_arg_scope_gives_different_weights():
    """A Keras 3 initializer instance repeats its values; each layer must get a fresh copy."""
    def net(t):
        with slim.arg_scope([slim.fully_connected],
                            weights_initializer=slim.truncated_normal_initializer(stddev=0.1)):
            return slim.fully_connected(slim.fully_connected(t, 4, scope="a"), 4, scope="b")

    model = build(net, (4,))
    assert not np.allclose(model.get_layer("a").kernel.numpy(), model.get_layer("b").kernel.numpy())


@pytest.mark.parametrize("call, match", [
    (lambda t: slim.conv2d(t, 0, 3), r"argument `num_outputs`.*Received num_outputs=0\."),
    (lambda t: slim.conv2d(t, 2, [3, 3, 3]), r"argument `kernel_size`.*Received kernel_size="),
    (lambda t: slim.conv2d(t, 2, 3.0), r"argument `kernel_size`.*Received kernel_size=3\.0\."),
    (lambda t: slim.conv2d(t, 3, 3, groups=2), r"number of groups"),   # Keras' own check
    (lambda t: slim.conv2d(t, 2, 3, padding="same-ish"), r"argument `padding`\. Expected 'SAME'"),
    (lambda t: slim.conv2d(t, 2, 3, scope="a/b"), r"cannot contain '/'.*Received scope='a/b'"),
    (lambda t: slim.dropout(t, keep_prob=0), r"argument `keep_prob`.*Received keep_prob=0\."),
    (lambda t: slim.lrn(t, depth_radius=-1), r"argument `depth_radius`"),
    (lambda t: slim.stack(t, slim.conv2d, []), r"argument `stack_args`"),
])
def test_argument_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(keras.Input((8, 8, 2)))


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # Keras saving
def test_models_with_slimkit_layers_round_trip_through_keras_files(tmp_path):
    """Custom layers and regularizers are registered, so `export` can write a .keras file."""
    def net(t):
        t = slim.conv2d(t, 4, 3, groups=2, weights_regularizer=slim.l2_regularizer(1e-3), scope="c1")
        t = slim.lrn(t, depth_radius=1, scope="n1")
        t = slim.conv2d(t, 4, 3, normalizer_fn=slim.batch_norm,
                        normalizer_params={"is_training": False}, scope="c2")
        t = slim.dropout(slim.flatten(t), 0.5, is_training=False, scope="drop")
        t = slim.dropout(t, 1.0, scope="keep_all")  # follows `training`; keeps all: comparable
        return slim.fully_connected(t, 3, activation_fn=tf.nn.relu6, scope="fc")

    model = build(net, (6, 6, 2))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(0).random((2, 6, 6, 2), dtype=np.float32)
    np.testing.assert_allclose(loaded(x, training=True).numpy(), model(x, training=True).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert [type(layer).__name__ for layer in loaded.layers[1:4]] == [
        "GroupedConv2D", "LocalResponseNormalization", "Conv2D"]
    dropouts = [layer for layer in loaded.layers if layer.name in ("drop", "keep_all")]
    assert [type(layer) for layer in dropouts] == [slim.layers.keras_layers.FixedModeDropout,
                                                   slim.layers.keras_layers.Dropout]
    np.testing.assert_allclose(float(loaded.losses[0]), float(model.losses[0]), rtol=1e-6)
