"""The model zoo: every registered model builds, runs forward and backward, and has the exact
parameter count and end points its source describes; the registry's errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import slimkit as slim
from slimkit.models import registry

# name -> (default num_classes, parameters at that num_classes, end points {name: shape w/o batch}).
EXPECTED = {
    # conv1 416 + conv2 6,960 + fc3 885,248 + logits 5,130
    "mnist_speedrun": (10, 897_754, {
        "crop": (24, 24, 1), "conv1": (12, 12, 16), "conv2": (12, 12, 48), "pool2": (6, 6, 48),
        "flatten": (1728,), "fc3": (512,), "logits": (10,)}),
    "softmax_regression": (10, 7_850, {"flatten": (784,), "logits": (10,)}),
    "deep_mnist": (10, 3_274_634, {
        "conv1": (28, 28, 32), "pool1": (14, 14, 32), "conv2": (14, 14, 64), "pool2": (7, 7, 64),
        "flatten": (3136,), "fc1": (1024,), "dropout": (1024,), "fc2": (10,)}),
    "lenet": (10, 3_274_634, {
        "conv1": (28, 28, 32), "pool1": (14, 14, 32), "conv2": (14, 14, 64), "pool2": (7, 7, 64),
        "flatten": (3136,), "fc3": (1024,), "dropout3": (1024,), "fc4": (10,)}),
    # conv1 34,944 + conv2 614,656 + conv3 885,120 + conv4 1,327,488 + conv5 884,992
    # + fc6 37,752,832 + fc7 16,781,312 + fc8 4,097,000
    "alexnet": (1000, 62_378_344, {
        "conv1": (56, 56, 96), "lrn1": (56, 56, 96), "pool1": (27, 27, 96),
        "conv2": (27, 27, 256), "lrn2": (27, 27, 256), "pool2": (13, 13, 256),
        "conv3": (13, 13, 384), "conv4": (13, 13, 384), "conv5": (13, 13, 256),
        "pool5": (6, 6, 256), "flatten": (9216,), "fc6": (4096,), "dropout6": (4096,),
        "fc7": (4096,), "dropout7": (4096,), "fc8": (1000,)}),
    # the paper's groups halve conv2, conv4 and conv5: 307,456 + 663,936 + 442,624 (Caffe's
    # bvlc_alexnet has the same 60,965,224)
    "alexnet_paper": (1000, 60_965_224, {
        "conv1": (55, 55, 96), "lrn1": (55, 55, 96), "pool1": (27, 27, 96),
        "conv2": (27, 27, 256), "lrn2": (27, 27, 256), "pool2": (13, 13, 256),
        "conv3": (13, 13, 384), "conv4": (13, 13, 384), "conv5": (13, 13, 256),
        "pool5": (6, 6, 256), "flatten": (9216,), "fc6": (4096,), "dropout6": (4096,),
        "fc7": (4096,), "dropout7": (4096,), "fc8": (1000,)}),
}


def test_every_registered_model_has_expectations():
    assert sorted(EXPECTED) == slim.list_models()


def _random_batch(model, n=2):
    shape = (n, *model.input.shape[1:])
    return np.random.default_rng(0).random(shape, dtype=np.float32)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_builds_runs_and_matches_its_description(name):
    num_classes, params, end_points = EXPECTED[name]
    model = slim.get_model(name)
    assert model.count_params() == params
    assert model.spec.name == name and model.spec.num_classes == num_classes
    assert tuple(model.input.shape[1:]) == model.spec.input_shape
    assert list(model.end_points) == list(end_points)
    assert {k: tuple(v.shape[1:]) for k, v in model.end_points.items()} == end_points

    images = _random_batch(model)
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        loss = slim.losses.get_total_loss(
            model, slim.losses.sparse_softmax_cross_entropy(logits, [0, 1]))
    grads = tape.gradient(loss, model.trainable_variables)
    assert logits.shape == (2, num_classes) and logits.dtype == tf.float32
    assert np.isfinite(logits.numpy()).all()
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
    # every variable is connected to the loss: each receives a non-zero gradient somewhere
    assert all(np.any(g.numpy() != 0) for g in grads), [
        v.path for v, g in zip(model.trainable_variables, grads) if not np.any(g.numpy() != 0)]

    # every layer that owns variables is named by its scope, as checkpoint scopes expect
    for layer in model.layers:
        if layer.weights:
            assert "/" not in layer.name and not layer.name.startswith(("conv2d", "dense"))
            assert all(v.path.startswith(layer.name + "/") for v in layer.weights)


def test_num_classes_and_input_shape_overrides():
    model = slim.get_model("deep_mnist", num_classes=3, input_shape=(32, 32, 3))
    assert model.output.shape == (None, 3)
    assert model.end_points["pool2"].shape == (None, 8, 8, 64)
    assert model.count_params() == 3_274_634 - 832 + (5 * 5 * 3 * 32 + 32) \
        - 3136 * 1024 + 4096 * 1024 - 7 * 1024 - 7


def test_logits_are_float32_under_mixed_bfloat16():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = slim.get_model("deep_mnist")
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.end_points["fc1"].dtype == "bfloat16"
    assert model.output.dtype == "float32"
    assert model.get_layer("conv1").kernel.dtype == "float32"   # variables stay float32
    assert model(_random_batch(model)).dtype == tf.float32


def test_two_models_in_one_process_do_not_collide():
    a, b = slim.get_model("deep_mnist"), slim.get_model("deep_mnist")
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
    assert a.get_layer("conv1").kernel is not b.get_layer("conv1").kernel
    images = _random_batch(a)
    assert not np.allclose(a(images), b(images))   # independently initialized


def test_deep_mnist_uses_the_tutorial_initialization():
    model = slim.get_model("deep_mnist")
    for scope in ("conv1", "conv2", "fc1", "fc2"):
        kernel = model.get_layer(scope).kernel.numpy()
        bias = model.get_layer(scope).bias.numpy()
        np.testing.assert_allclose(bias, 0.1)
        assert np.abs(kernel).max() <= 0.2 + 1e-6    # truncated at 2 stddev
    kernel = model.get_layer("fc1").kernel.numpy()   # 3.2M draws: the stddev is well estimated
    assert abs(kernel.std() - 0.1 * 0.8796) < 0.002  # stddev of N(0, 0.1) truncated at ±2σ
    assert model.get_layer("conv2").padding == "same"
    assert model.get_layer("pool2").padding == "same"


def test_deep_mnist_dropout_follows_the_training_flag():
    model = slim.get_model("deep_mnist")
    images = _random_batch(model)
    np.testing.assert_array_equal(model(images, training=False), model(images, training=False))
    assert not np.allclose(model(images, training=True), model(images, training=False))
    fixed = slim.get_model("deep_mnist", is_training=False)
    fixed.set_weights(model.get_weights())
    np.testing.assert_allclose(fixed(images, training=True), model(images, training=False),
                               rtol=1e-5, atol=1e-5)


def test_weight_decay_goes_to_the_arg_scope_function():
    model = slim.get_model("deep_mnist", weight_decay=0.01)
    expected = sum(0.01 * 0.5 * np.sum(model.get_layer(s).kernel.numpy() ** 2)
                   for s in ("conv1", "conv2", "fc1", "fc2"))
    assert len(model.losses) == 4
    np.testing.assert_allclose(float(slim.losses.get_total_loss(model, 0.0)), expected, rtol=1e-5)
    assert slim.get_model("deep_mnist").losses == []


def test_unknown_model_name_suggests_close_matches():
    with pytest.raises(ValueError, match=r"Unknown model 'deep_mnst'\. Did you mean 'deep_mnist'\?"):
        slim.get_model("deep_mnst")
    with pytest.raises(ValueError, match=r"Expected one of: .*softmax_regression"):
        slim.get_model_spec("resnet")


def test_invalid_get_model_arguments_are_named():
    with pytest.raises(ValueError, match=r"argument `num_classes`.*Received num_classes=0\."):
        slim.get_model("deep_mnist", num_classes=0)
    with pytest.raises(ValueError, match=r"argument `input_shape`"):
        slim.get_model("deep_mnist", input_shape=(28, 28))
    with pytest.raises(ValueError, match=r"Received input_shape=28\."):
        slim.get_model("deep_mnist", input_shape=28)
    with pytest.raises(ValueError, match=r"keyword argument `keep_prob` for model `deep_mnist`"):
        slim.get_model("deep_mnist", keep_prob=0.5)


def test_duplicate_model_name_is_an_error(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    def deep_mnist(images, num_classes=10):
        return images, {}

    with pytest.raises(ValueError, match=r"A model named `deep_mnist` is already registered "
                                         r"\(by slimkit\.models\.deep_mnist\.deep_mnist\)"):
        slim.register_model(image_size=28, channels=1, source="test")(deep_mnist)


def test_registering_a_new_model(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @slim.register_model(image_size=(8, 6), channels=2, num_classes=4, source="a test")
    def tiny(images, num_classes=4, scope="tiny"):
        net = slim.flatten(images, scope="flatten")
        logits = slim.fully_connected(net, num_classes, activation_fn=None, scope="logits")
        return logits, {"flatten": net, "logits": logits}

    assert "tiny" in slim.list_models()
    spec = slim.get_model_spec("tiny")
    assert spec.input_shape == (8, 6, 2) and spec.fn is tiny and spec.arg_scope_fn is None
    model = slim.get_model("tiny")
    assert model.name == "tiny" and model.count_params() == 8 * 6 * 2 * 4 + 4


def test_alexnet_paper_has_the_papers_groups_and_initialization():
    model = slim.get_model("alexnet_paper", num_classes=10)
    kernels = {s: tuple(model.get_layer(s).kernel.shape) for s in ("conv2", "conv3", "conv4", "conv5")}
    assert kernels == {"conv2": (5, 5, 48, 256), "conv3": (3, 3, 256, 384),
                       "conv4": (3, 3, 192, 384), "conv5": (3, 3, 192, 256)}
    for scope, bias in [("conv1", 0), ("conv2", 1), ("conv3", 0), ("conv4", 1), ("conv5", 1),
                        ("fc6", 1), ("fc7", 1), ("fc8", 0)]:
        np.testing.assert_array_equal(model.get_layer(scope).bias.numpy(), bias)
    fc6 = model.get_layer("fc6").kernel.numpy()
    assert abs(fc6.std() - 0.01) < 2e-4 and abs(fc6.mean()) < 1e-4        # N(0, 0.01)
    assert model.get_layer("conv1").padding == "valid"
    assert model.count_params() == 60_965_224 - 4_097_000 + 4096 * 10 + 10
    lrn = model.get_layer("lrn1")
    assert (lrn.depth_radius, lrn.bias, lrn.alpha, lrn.beta) == (2, 2.0, 1e-4, 0.75)
    assert len(model.losses) == 8                                           # weight decay on all


def test_alexnet_with_the_tutorial_articles_same_pooling():
    model = slim.get_model("alexnet", pool_padding="SAME")
    assert model.count_params() == 76_009_832  # the AlexNet tutorial article's figure
    shapes = {name: tuple(model.end_points[name].shape[1:]) for name in ("pool1", "pool2", "pool5")}
    assert shapes == {"pool1": (28, 28, 96), "pool2": (14, 14, 256), "pool5": (7, 7, 256)}
    assert slim.get_model("alexnet").count_params() == 62_378_344  # VALID stays the default
    with pytest.raises(ValueError, match=r"Invalid value for argument `pool_padding` of alexnet. "
                                         r"Expected 'VALID' or 'SAME'. Received pool_padding='same'"):
        slim.get_model("alexnet", pool_padding="same")


def test_mnist_speedrun_keeps_its_earlier_form():
    # conv1 at stride 1 on 24x24 maps then pool1, conv2 64: the net until 2026-12-06, whose
    # checkpoints restore with --model-kwargs conv1_stride=1,conv2=64
    model = slim.get_model("mnist_speedrun", conv1_stride=1, conv2=64)
    assert model.count_params() == 1_194_986
    shapes = {name: tuple(t.shape[1:]) for name, t in model.end_points.items()}
    assert shapes == {"crop": (24, 24, 1), "conv1": (24, 24, 16), "pool1": (12, 12, 16),
                      "conv2": (12, 12, 64), "pool2": (6, 6, 64), "flatten": (2304,),
                      "fc3": (512,), "logits": (10,)}
    with pytest.raises(ValueError, match=r"Invalid value for argument `conv1_stride` of "
                                         r"mnist_speedrun. Expected 1 or 2. Received "
                                         r"conv1_stride=3"):
        slim.get_model("mnist_speedrun", conv1_stride=3)
