"""The examples in the docstrings of the layer, loss and model modules run and print what they say."""

import doctest
import importlib

import pytest

from slimkit.models import registry

MODULES = [
    "slimkit.layers.arg_scope", "slimkit.layers.core", "slimkit.layers.initializers",
    "slimkit.layers.regularizers", "slimkit.layers.keras_layers", "slimkit.losses",
    "slimkit.models.registry", "slimkit.models.flops", "slimkit.models.softmax",
    "slimkit.models.deep_mnist", "slimkit.models.lenet", "slimkit.models.alexnet",
    "slimkit.models.alexnet_paper", "slimkit.models.speedrun",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    registry.list_models()  # load the built-in models, then let examples register throwaway ones
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
