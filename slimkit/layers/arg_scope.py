"""`arg_scope`: default keyword arguments for layer functions, TF-Slim style.

    with slim.arg_scope([slim.conv2d, slim.fully_connected], activation_fn=tf.nn.relu):
        with slim.arg_scope([slim.conv2d], padding="VALID"):
            net = slim.conv2d(images, 32, [5, 5], scope="conv1")   # relu, VALID

Semantics (TF-Slim's, see tf_slim/ops/arg_scope.py):

- Only functions decorated with :func:`add_arg_scope` may be listed.
- Scopes nest: an inner scope adds to, and for the same function and key overrides, the outer one.
- An explicit keyword argument at the call always wins over the scope.
- :func:`current_arg_scope` captures the active scope; ``with arg_scope(captured):`` re-enters it
  (this is how a model's ``*_arg_scope()`` function hands its defaults to the caller).

Unlike TF-Slim, entering a scope checks every key against the listed function's signature, so a typo
(``paddin="SAME"``) fails where it is written instead of being silently ignored.

The only state is one ``contextvars.ContextVar`` holding an immutable mapping, so scopes are
per-thread and per-asyncio-task, and leaving a ``with`` block always restores the previous scope.
"""

import contextlib
import contextvars
import difflib
import functools
import inspect
import types

# {arg-scope key of a function: MappingProxy of its default kwargs}; immutable, replaced on entry.
_EMPTY = types.MappingProxyType({})
_CURRENT = contextvars.ContextVar("slimkit_arg_scope", default=_EMPTY)

_KEY_ATTR = "_slimkit_arg_scope_key"


def _key(func):
    return getattr(func, _KEY_ATTR, None)


def _func_name(func):
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))


def add_arg_scope(func):
    """Decorates a function so that :func:`arg_scope` can set its default keyword arguments.

    Args:
        func: the function to decorate.

    Returns:
        A wrapper that calls ``func(*args, **{**scope_defaults, **kwargs})``.

    Example:

    >>> @add_arg_scope
    ... def greet(name, greeting="hello"):
    ...     return f"{greeting} {name}"
    >>> with arg_scope([greet], greeting="hi"):
    ...     greet("slim")
    'hi slim'
    """
    key = f"{func.__module__}.{func.__qualname__}"

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        defaults = _CURRENT.get().get(key)
        if defaults:
            kwargs = {**defaults, **kwargs}
        return func(*args, **kwargs)

    setattr(wrapper, _KEY_ATTR, key)
    wrapper._slimkit_arg_names = _keyword_names(func)
    return wrapper


def _keyword_names(func):
    """Names accepted as keywords by `func`, or None if it takes **kwargs (anything goes)."""
    names = []
    for p in inspect.signature(func).parameters.values():
        if p.kind == p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.append(p.name)
    return tuple(names)


@contextlib.contextmanager
def arg_scope(list_ops_or_scope, **kwargs):
    """Sets default keyword arguments for the listed functions inside a ``with`` block.

    Args:
        list_ops_or_scope: a list or tuple of functions decorated with :func:`add_arg_scope`, or a
            scope captured earlier with :func:`current_arg_scope` (then `kwargs` must be empty).
        **kwargs: the defaults to set for every listed function.

    Yields:
        The new current scope (a read-only mapping), which can be re-entered later.

    Raises:
        TypeError: if a listed object is not a function decorated with :func:`add_arg_scope`.
        ValueError: if a keyword is not an argument of one of the listed functions, or if kwargs
            are given together with a captured scope.

    Example:

    >>> import slimkit as slim
    >>> with slim.arg_scope([slim.conv2d], padding="VALID") as sc:
    ...     pass
    >>> with slim.arg_scope(sc):       # re-enter the captured scope
    ...     slim.current_arg_scope() == sc
    True
    """
    if isinstance(list_ops_or_scope, (dict, types.MappingProxyType)):
        if kwargs:
            raise ValueError(
                "Invalid arguments for `arg_scope`. Expected either a list of functions with keyword "
                "defaults, or a captured scope alone. Received a captured scope together with "
                f"keywords {sorted(kwargs)}; enter the captured scope, then nest a second arg_scope.")
        new_scope = types.MappingProxyType(dict(list_ops_or_scope))
    else:
        if not isinstance(list_ops_or_scope, (list, tuple)):
            raise TypeError(
                "Invalid value for argument `list_ops_or_scope` of `arg_scope`. Expected a list or "
                "tuple of functions decorated with @add_arg_scope, or a scope captured with "
                f"current_arg_scope(). Received: {list_ops_or_scope!r}")
        merged = dict(_CURRENT.get())
        for func in list_ops_or_scope:
            key = _key(func)
            if key is None:
                raise TypeError(
                    f"`{_func_name(func)}` cannot be used in arg_scope: it is not decorated with "
                    "@add_arg_scope. Decorate it (from slimkit.layers.arg_scope import add_arg_scope) "
                    "or pass its arguments explicitly.")
            _check_keywords(func, kwargs)
            merged[key] = types.MappingProxyType({**merged.get(key, {}), **kwargs})
        new_scope = types.MappingProxyType(merged)
    token = _CURRENT.set(new_scope)
    try:
        yield new_scope
    finally:
        _CURRENT.reset(token)


def _check_keywords(func, kwargs):
    allowed = func._slimkit_arg_names
    if allowed is None:
        return
    unknown = [k for k in kwargs if k not in allowed]
    if unknown:
        key, name = unknown[0], _func_name(func)
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"Did you mean `{close[0]}`?" if close else f"Remove it or remove `{name}` from the list."
        raise ValueError(
            f"Invalid keyword argument `{key}` in arg_scope for `{name}`. Expected one of its "
            f"arguments: {', '.join(allowed)}. Received {key}={kwargs[key]!r}. {hint}")


def current_arg_scope():
    """Returns the active arg scope, a read-only mapping that :func:`arg_scope` can re-enter.

    Example:

    >>> import slimkit as slim
    >>> with slim.arg_scope([slim.max_pool2d], stride=1):
    ...     captured = slim.current_arg_scope()
    >>> with slim.arg_scope(captured):
    ...     dict(slim.current_arg_scope()) == dict(captured)
    True
    """
    return _CURRENT.get()

