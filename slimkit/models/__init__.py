"""The model zoo (``slim.models.get_model("deep_mnist")``); see :mod:`slimkit.models.registry`.

Importing this package does not import TensorFlow; building a model does.
"""

from slimkit.models.registry import (ModelSpec, get_model, get_model_spec, list_models,
                                     register_model)

__all__ = ["ModelSpec", "get_model", "get_model_spec", "list_models", "register_model"]
