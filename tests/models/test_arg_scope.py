"""arg_scope: TF-Slim's semantics (nesting, overriding, explicit arguments win, capture and
re-entry), its validation errors, and that it keeps no state outside a ContextVar."""

import contextvars
import threading

import keras
import pytest

import slimkit as slim
from slimkit.layers.arg_scope import add_arg_scope, arg_scope, current_arg_scope


@add_arg_scope
def op(x, a=1, b=2, c=3):
    return {"x": x, "a": a, "b": b, "c": c}


@add_arg_scope
def other(x, a=10):
    return {"x": x, "a": a}


def plain(x, a=1):
    return x


def test_defaults_apply_to_listed_functions_only():
    with arg_scope([op], a=5):
        assert op(0) == {"x": 0, "a": 5, "b": 2, "c": 3}
        assert other(0) == {"x": 0, "a": 10}
    assert op(0)["a"] == 1


def test_nesting_adds_and_inner_overrides_outer():
    with arg_scope([op, other], a=5, ):
        with arg_scope([op], a=6, b=7):
            assert op(0) == {"x": 0, "a": 6, "b": 7, "c": 3}
            assert other(0)["a"] == 5
        assert op(0) == {"x": 0, "a": 5, "b": 2, "c": 3}


def test_explicit_arguments_win_over_the_scope():
    with arg_scope([op], a=5, b=6):
        assert op(0, a=9) == {"x": 0, "a": 9, "b": 6, "c": 3}


def test_capture_and_reenter():
    with arg_scope([op], a=5):
        with arg_scope([other], a=11) as captured:
            assert dict(current_arg_scope()) == dict(captured)
    assert op(0)["a"] == 1 and dict(current_arg_scope()) == {}
    with arg_scope(captured):
        assert op(0)["a"] == 5 and other(0)["a"] == 11
        with arg_scope([op], c=4):   # a captured scope can be extended like any other
            assert op(0) == {"x": 0, "a": 5, "b": 2, "c": 4}
    assert op(0)["a"] == 1


def test_reentering_a_captured_scope_replaces_the_current_one():
    with arg_scope([op], b=8) as captured:
        pass
    with arg_scope([op], a=5):
        with arg_scope(captured):   # TF-Slim: the captured scope is used as is
            assert op(0)["a"] == 1 and op(0)["b"] == 8


def test_a_model_arg_scope_function_works_like_tf_slims():
    def my_arg_scope(padding="VALID"):
        with slim.arg_scope([slim.conv2d, slim.max_pool2d], padding=padding) as sc:
            return sc

    with slim.arg_scope(my_arg_scope()):
        net = slim.conv2d(keras.Input((8, 8, 1)), 2, [3, 3])
        assert net.shape == (None, 6, 6, 2)


def test_unknown_keyword_names_the_function_and_the_key():
    with pytest.raises(ValueError, match=r"Invalid keyword argument `paddin` in arg_scope for "
                                         r"`conv2d`\..*Received paddin='SAME'\. "
                                         r"Did you mean `padding`\?"):
        with slim.arg_scope([slim.conv2d], paddin="SAME"):
            pass
    # valid for the first listed function, not for the second
    with pytest.raises(ValueError, match=r"`padding` in arg_scope for `flatten`"):
        with slim.arg_scope([slim.conv2d, slim.flatten], padding="SAME"):
            pass
    assert dict(current_arg_scope()) == {}   # a failed entry leaves no scope behind


def test_undecorated_function_is_rejected():
    with pytest.raises(TypeError, match=r"`plain` cannot be used in arg_scope: it is not "
                                        r"decorated with @add_arg_scope"):
        with arg_scope([plain], a=2):
            pass


def test_bad_first_argument_and_mixed_capture():
    with pytest.raises(TypeError, match=r"Expected a list or tuple of functions"):
        with arg_scope(op, a=2):
            pass
    with arg_scope([op], a=5) as captured:
        pass
    with pytest.raises(ValueError, match=r"captured scope together with keywords \['b'\]"):
        with arg_scope(captured, b=2):
            pass


def test_scope_is_restored_after_an_exception():
    with pytest.raises(RuntimeError):
        with arg_scope([op], a=5):
            raise RuntimeError("boom")
    assert op(0)["a"] == 1


def test_scopes_are_per_thread_and_per_context():
    seen = {}

    def worker():
        seen["thread"] = op(0)["a"]

    with arg_scope([op], a=5):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        in_copy = contextvars.copy_context().run(lambda: op(0)["a"])
    assert seen["thread"] == 1    # a new thread starts with an empty scope
    assert in_copy == 5           # a copied context (e.g. an asyncio task) inherits it


def test_captured_scope_is_read_only():
    with arg_scope([op], a=5) as captured:
        pass
    with pytest.raises(TypeError):
        captured["x"] = 1
