"""TF-Slim's layer API on Keras 3: ``slim.layers.conv2d(...)`` as in the TF-Slim walkthrough.

Importing this package imports TensorFlow and Keras.
"""

from slimkit.layers.arg_scope import add_arg_scope, arg_scope, current_arg_scope
from slimkit.layers.core import (avg_pool2d, batch_norm, conv2d, dropout, flatten,
                                 fully_connected, lrn, max_pool2d, repeat, stack)
from slimkit.layers.initializers import (constant_initializer, truncated_normal_initializer,
                                         variance_scaling_initializer, xavier_initializer)
from slimkit.layers.regularizers import l1_regularizer, l2_regularizer

__all__ = [
    "add_arg_scope", "arg_scope", "current_arg_scope", "avg_pool2d", "batch_norm", "conv2d",
    "dropout", "flatten", "fully_connected", "lrn", "max_pool2d", "repeat", "stack",
    "constant_initializer", "truncated_normal_initializer", "variance_scaling_initializer",
    "xavier_initializer", "l1_regularizer", "l2_regularizer",
]
