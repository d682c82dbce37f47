"""slimkit: TF-Slim-style image classifiers on TensorFlow 2 and Keras 3.

    import slimkit as slim

    with slim.arg_scope([slim.conv2d], padding="SAME"):
        net = slim.conv2d(images, 32, [5, 5], scope="conv1")

Public names are listed explicitly in ``_EXPORTS`` and imported on first use, so that
``slimkit --help`` and ``slimkit datasets`` answer without loading TensorFlow (about 3 s on a
2-core machine). ``import slimkit`` itself is cheap; ``slimkit.conv2d`` imports TensorFlow.
"""

import importlib
import os
import platform

__version__ = "0.1.0"

# TensorFlow turns its oneDNN (MKL-DNN) CPU kernels on by default only on Intel CPUs with
# AVX512_VNNI/BF16 or AMX. On other x86-64 CPUs (AMD, older Intel: most laptops) they made Deep
# MNIST train 1.6x faster in fp32 end to end on a 2-core AVX2 EPYC, for the same accuracy
# (bench/results/time_to_accuracy_avx2.md).
# The variable is read when TensorFlow is first imported: importing slimkit first turns them on,
# and TF_ENABLE_ONEDNN_OPTS=0 in the environment keeps them off.
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# public name -> module that defines it (the name is the same in that module).
_EXPORTS = {
    # data
    "read_data_sets": "slimkit.data.mnist",
    "list_datasets": "slimkit.data.registry",
    "get_dataset_info": "slimkit.data.registry",
    "load_arrays": "slimkit.data.registry",
    "ArrayFeed": "slimkit.data.feed",
    "ImageFolder": "slimkit.data.image_folder",
    "preprocess_digit": "slimkit.data.digits",
    # layers
    "arg_scope": "slimkit.layers.arg_scope",
    "add_arg_scope": "slimkit.layers.arg_scope",
    "current_arg_scope": "slimkit.layers.arg_scope",
    "conv2d": "slimkit.layers.core",
    "max_pool2d": "slimkit.layers.core",
    "avg_pool2d": "slimkit.layers.core",
    "fully_connected": "slimkit.layers.core",
    "flatten": "slimkit.layers.core",
    "dropout": "slimkit.layers.core",
    "batch_norm": "slimkit.layers.core",
    "lrn": "slimkit.layers.core",
    "repeat": "slimkit.layers.core",
    "stack": "slimkit.layers.core",
    "truncated_normal_initializer": "slimkit.layers.initializers",
    "constant_initializer": "slimkit.layers.initializers",
    "xavier_initializer": "slimkit.layers.initializers",
    "variance_scaling_initializer": "slimkit.layers.initializers",
    "l1_regularizer": "slimkit.layers.regularizers",
    "l2_regularizer": "slimkit.layers.regularizers",
    # models
    "register_model": "slimkit.models.registry",
    "get_model": "slimkit.models.registry",
    "get_model_spec": "slimkit.models.registry",
    "list_models": "slimkit.models.registry",
    # training
    "train": "slimkit.training.loop",
    "TrainConfig": "slimkit.training.config",
    "evaluate": "slimkit.evaluation",
    "make_train_step": "slimkit.training.step",
    "NonFiniteLossError": "slimkit.training.loop",
    "list_presets": "slimkit.training.presets",
    # using a trained run
    "load_run": "slimkit.runs",
    "Run": "slimkit.runs",
    "predict": "slimkit.prediction",
    "predict_files": "slimkit.prediction",
    "inspect_run": "slimkit.inspect",
    "export_model": "slimkit.export",
}

# submodules reachable as attributes, as in TF-Slim (`slim.layers.conv2d`, `slim.losses.get_total_loss`).
_SUBMODULES = ("cli", "data", "layers", "losses", "models", "training", "summaries", "evaluation",
               "metrics", "runs", "prediction", "inspect", "export")

__all__ = sorted(_EXPORTS) + list(_SUBMODULES)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"slimkit.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'slimkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__():
    return __all__ + ["__version__"]
