"""The model zoo: models declared like TF-Slim, registered like timm.

    @register_model(image_size=28, channels=1, num_classes=10, source="...")
    def deep_mnist(images, num_classes=10, is_training=None, ..., scope="deep_mnist"):
        ...
        return logits, end_points

    model = get_model("deep_mnist")                  # a keras.Model, input (N, 28, 28, 1)
    model.end_points["conv1"]                        # (N, 28, 28, 32)

The function name is the model name; registering a name twice is an error. The built-in models
live one per module, listed in ``_BUILTIN_MODULES`` and imported on first use.
"""

import contextlib
import dataclasses
import difflib
import importlib
import inspect
import json
import numbers
from typing import Callable, Optional

_BUILTIN_MODULES = (
    "slimkit.models.softmax",
    "slimkit.models.deep_mnist",
    "slimkit.models.lenet",
    "slimkit.models.alexnet",
    "slimkit.models.alexnet_paper",
    "slimkit.models.speedrun",
)

_REGISTRY = {}  # name -> ModelSpec, filled by @register_model


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about a model.

    Attributes:
        name: the model name (= the function name).
        fn: ``fn(images, num_classes=..., **kwargs) -> (logits, end_points)``.
        image_size: default input (height, width).
        channels: default input channels.
        num_classes: default number of classes.
        source: where the architecture comes from (paper or tutorial).
        arg_scope_fn: returns the model's default arg scope (its ``*_arg_scope`` function), or None.
        earlier_forms: ``(when, kwargs)`` pairs, newest first: the keyword arguments that give the
            model as its defaults were before they changed (e.g. ``("until 2026-12-06",
            {"conv1_stride": 1, "conv2": 64})``). A run's ``config.json`` records the whole form
            it trained (:func:`model_form`) since then; one saved before names only the model,
            and loading it (``slimkit.runs.load_run``) builds the earlier form its checkpoint
            holds.
    """

    name: str
    fn: Callable
    image_size: tuple
    channels: int
    num_classes: int
    source: str
    arg_scope_fn: Optional[Callable] = None
    earlier_forms: tuple = ()

    @property
    def input_shape(self):
        """The default input shape (H, W, C)."""
        return (*self.image_size, self.channels)


def register_model(image_size, channels, source, num_classes=1000, arg_scope_fn=None,
                   earlier_forms=()):
    """Decorator adding a model function to the registry under its function name.

    Args:
        image_size: default input size, an int or (height, width).
        channels: default input channels.
        source: where the architecture comes from, e.g. "Krizhevsky et al., NIPS 2012".
        num_classes: default number of classes.
        arg_scope_fn: the model's ``*_arg_scope()`` function, entered by :func:`get_model`.
        earlier_forms: ``(when, kwargs)`` pairs, newest first, for a model whose defaults changed:
            see :class:`ModelSpec`.

    Raises:
        ValueError: if a model of that name is already registered.

    Example:

    >>> import slimkit as slim
    >>> @slim.register_model(image_size=28, channels=1, num_classes=10, source="an example")
    ... def tiny_example(images, num_classes=10, scope="tiny_example"):
    ...     net = slim.flatten(images, scope="flatten")
    ...     logits = slim.fully_connected(net, num_classes, activation_fn=None, scope="logits")
    ...     return logits, {"flatten": net, "logits": logits}
    >>> slim.get_model("tiny_example").count_params()
    7850
    """
    size = (image_size, image_size) if isinstance(image_size, numbers.Integral) else tuple(image_size)

    def decorator(fn):
        name = fn.__name__
        if name in _REGISTRY:
            other = _REGISTRY[name].fn
            raise ValueError(
                f"A model named `{name}` is already registered (by {other.__module__}."
                f"{other.__qualname__}). Model names must be unique: rename the function "
                f"{fn.__module__}.{fn.__qualname__}.")
        _REGISTRY[name] = ModelSpec(name, fn, size, int(channels), int(num_classes), source,
                                    arg_scope_fn, tuple((str(when), dict(kwargs))
                                                        for when, kwargs in earlier_forms))
        return fn

    return decorator


def _load_builtins():
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


# Arguments of a model function that are not its form: the input, what get_model sets, its name,
# and dropout (a training setting: --keep-prob may change it on resume).
_NOT_FORM = ("images", "num_classes", "is_training", "scope", "dropout_keep_prob", "keep_prob")


def model_form(name, model_kwargs=None):
    """The arguments that define model ``name``'s layers: its defaults, ``model_kwargs`` over them.

    What a run records in ``config.json`` (``model_form``), so that its checkpoints rebuild after
    the model's defaults change. Only the model function's own arguments count (not dropout, not
    its arg scope's such as ``weight_decay``, not unknown keys: building the model names those),
    with JSON values (a tuple becomes a list; a default that is no JSON value is left out).

    Example:

    >>> model_form("mnist_speedrun", {"conv2": 64, "weight_decay": 0.0})
    {'crop': 2, 'conv1': 16, 'conv2': 64, 'fc': 512, 'conv1_stride': 2}
    >>> model_form("alexnet", {"dropout_keep_prob": 0.7})
    {'pool_padding': 'VALID'}
    """
    parameters = inspect.signature(get_model_spec(name).fn).parameters.values()
    defaults = {p.name: p.default for p in parameters if p.name not in _NOT_FORM and
                p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    form = {k: v for k, v in defaults.items() if v is not inspect.Parameter.empty}
    form.update((k, v) for k, v in (model_kwargs or {}).items() if k in defaults)
    return {k: v for k, v in json.loads(json.dumps(form, default=lambda _: None)).items()
            if v is not None or form[k] is None}


def list_models():
    """Names of all registered models, sorted.

    Example:

    >>> "deep_mnist" in list_models()
    True
    """
    _load_builtins()
    return sorted(_REGISTRY)


def get_model_spec(name):
    """The :class:`ModelSpec` of a registered model.

    Raises:
        ValueError: for an unknown name, listing close matches and all models.

    Example:

    >>> get_model_spec("deep_mnist").input_shape
    (28, 28, 1)
    """
    _load_builtins()
    spec = _REGISTRY.get(name)
    if spec is None:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"Unknown model {name!r}.{hint} Expected one of: "
                         f"{', '.join(sorted(_REGISTRY))} (see `slimkit models`).")
    return spec


def get_model(name, num_classes=None, input_shape=None, **model_kwargs):
    """Builds a registered model as a Keras functional model.

    The input is float32 images (N, H, W, C); the output is float32 logits (N, num_classes), also
    under the ``mixed_bfloat16`` dtype policy (a final float32 ``logits_float32`` identity layer
    is added only when the last layer computes in another dtype). The model is built inside its
    ``*_arg_scope()``, and carries ``model.end_points`` (scope name -> symbolic output, in layer
    order) and ``model.spec`` (the :class:`ModelSpec`).

    Args:
        name: a registered model name (see :func:`list_models`).
        num_classes: number of classes (default: the model's).
        input_shape: (H, W, C) (default: the model's).
        **model_kwargs: passed to the model function (e.g. ``dropout_keep_prob=0.7``), except
            those that only the model's ``*_arg_scope`` function takes (e.g. ``weight_decay=0``),
            which go there.

    Returns:
        A ``keras.Model`` named after the model's scope.

    Raises:
        ValueError: for an unknown name or an invalid num_classes / input_shape.

    Example:

    >>> model = get_model("deep_mnist", num_classes=10)
    >>> model.count_params(), model.output.shape
    (3274634, (None, 10))
    """
    import keras

    from slimkit.layers.arg_scope import arg_scope

    spec = get_model_spec(name)
    num_classes = spec.num_classes if num_classes is None else num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 1:
        raise ValueError("Invalid value for argument `num_classes`. Expected a strictly positive "
                         f"integer. Received num_classes={num_classes!r}.")
    shape = spec.input_shape if input_shape is None else input_shape
    shape = tuple(shape) if isinstance(shape, (list, tuple)) else ()
    if len(shape) != 3 or not all(isinstance(d, numbers.Integral) and d > 0 for d in shape):
        raise ValueError("Invalid value for argument `input_shape`. Expected (height, width, "
                         f"channels) of strictly positive integers. Received input_shape={input_shape!r}.")
    scope_kwargs = _split_arg_scope_kwargs(spec, model_kwargs)
    images = keras.Input(shape=shape, dtype="float32", name="images")
    if spec.arg_scope_fn is None:
        context = contextlib.nullcontext()
    else:
        context = arg_scope(spec.arg_scope_fn(**scope_kwargs))
    with context:
        logits, end_points = spec.fn(images, num_classes=int(num_classes), **model_kwargs)
    if logits.dtype != "float32":
        logits = keras.layers.Activation("linear", dtype="float32", name="logits_float32")(logits)
    model_name = model_kwargs.get("scope", _default(spec.fn, "scope", name))
    model = keras.Model(images, logits, name=model_name)
    model.end_points = dict(end_points)
    model.spec = spec
    return model


def _default(fn, argname, fallback):
    param = inspect.signature(fn).parameters.get(argname)
    return fallback if param is None or param.default is param.empty else param.default


def _split_arg_scope_kwargs(spec, model_kwargs):
    """Removes from `model_kwargs` (in place) and returns those meant for the arg-scope function."""
    model_params = inspect.signature(spec.fn).parameters
    scope_params = inspect.signature(spec.arg_scope_fn).parameters if spec.arg_scope_fn else {}
    scope_kwargs = {k: model_kwargs.pop(k) for k in list(model_kwargs)
                    if k in scope_params and k not in model_params}
    unknown = [k for k in model_kwargs if k not in model_params]
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in model_params.values()):
        accepted = sorted(set(model_params) - {"images", "num_classes"} | set(scope_params))
        raise ValueError(f"Invalid keyword argument `{unknown[0]}` for model `{spec.name}`. "
                         f"Expected one of: {', '.join(accepted)}.")
    return scope_kwargs
