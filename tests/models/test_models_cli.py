"""`slimkit models` and the FLOP counter behind it."""

import subprocess
import sys

import keras
import pytest

import slimkit as slim
from slimkit.cli import main
from slimkit.models.flops import count_flops


def conv(h, w, c_out, k, c_in, groups=1):
    """2 * H_out * W_out * C_out * K_h * K_w * C_in / groups."""
    return 2 * h * w * c_out * k * k * c_in // groups


def test_deep_mnist_flops_per_layer():
    flops = count_flops(slim.get_model("deep_mnist"))
    assert flops.per_layer == {"conv1": conv(28, 28, 32, 5, 1), "conv2": conv(14, 14, 64, 5, 32),
                               "fc1": 2 * 3136 * 1024, "fc2": 2 * 1024 * 10}
    assert flops.total == 27_767_808 and flops.uncounted == ()


def test_alexnet_paper_flops_count_groups():
    flops = count_flops(slim.get_model("alexnet_paper"))
    expected = {
        "conv1": conv(55, 55, 96, 11, 3), "conv2": conv(27, 27, 256, 5, 96, groups=2),
        "conv3": conv(13, 13, 384, 3, 256), "conv4": conv(13, 13, 384, 3, 384, groups=2),
        "conv5": conv(13, 13, 256, 3, 384, groups=2),
        "fc6": 2 * 9216 * 4096, "fc7": 2 * 4096 * 4096, "fc8": 2 * 4096 * 1000}
    assert flops.per_layer == expected
    assert flops.total == 1_448_813_632   # 724M multiply-adds, the usual figure for AlexNet


def test_dense_on_a_sequence_counts_every_position_and_unknown_layers_are_listed():
    x = keras.Input((5, 8))
    y = keras.layers.Dense(3, name="proj")(x)
    y = keras.layers.Conv1D(2, 3, name="odd")(y)
    flops = count_flops(keras.Model(x, y))
    assert flops.per_layer == {"proj": 2 * 5 * 8 * 3} and flops.uncounted == ("odd",)


def test_batch_norm_is_not_reported_as_uncounted():
    x = keras.Input((4, 4, 1))
    y = slim.conv2d(x, 2, 3, normalizer_fn=slim.batch_norm, scope="c")
    flops = count_flops(keras.Model(x, y))
    assert list(flops.per_layer) == ["c"] and flops.uncounted == ()


def test_models_table(capsys):
    assert main(["models", "deep_mnist", "softmax_regression"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["model", "input", "parameters", "MFLOPs", "classes", "source"]
    deep = next(line for line in lines if line.startswith("deep_mnist"))
    assert deep.split()[:5] == ["deep_mnist", "28x28x1", "3,274,634", "27.77", "10"]
    assert 'TF tutorial "Deep MNIST for Experts"' in deep
    soft = next(line for line in lines if line.startswith("softmax_regression"))
    assert soft.split()[:5] == ["softmax_regression", "28x28x1", "7,850", "0.02", "10"]
    assert "a multiply-add counts as 2 FLOPs" in out


def test_models_table_lists_every_model_by_default(capsys):
    assert main(["models", "--num-classes", "10"]) == 0
    out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.splitlines()[2:] if line and not line.startswith("MFLOPs")]
    assert rows == slim.list_models()
    assert "60,965,224" not in out and "56,909,194" in out   # alexnet_paper at 10 classes


def test_unknown_model_is_one_line_and_exit_2(capsys):
    assert main(["models", "deep_mnst"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("slimkit models: error: Unknown model 'deep_mnst'. Did you mean "
                           "'deep_mnist'? Expected one of: alexnet, alexnet_paper, deep_mnist, "
                           "lenet, mnist_speedrun, softmax_regression (see `slimkit models`).")


def test_cli_module_does_not_import_tensorflow():
    code = "import sys, slimkit.cli.models; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


@pytest.mark.parametrize("bad", [["--num-classes", "x"]])
def test_bad_flag_is_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["models", *bad])
    assert exc.value.code == 2
