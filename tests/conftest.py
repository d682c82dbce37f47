"""Shared fixtures.

Real data only, never downloaded by the tests. MNIST comes from, in order:

1. ``$SLIMKIT_DATA_DIR/mnist`` when the variable is set (CI points it at ../shared/data). A set
   variable is the user's choice: if its root holds no MNIST, the tests that need MNIST fail with a
   message naming the variable and its value, instead of silently reading another copy;
2. only when ``SLIMKIT_DATA_DIR`` is unset: ../shared/data beside this checkout, so `pytest` works
   the same in a developer's clone and in CI;
3. then wherever slimkit itself would read it (:func:`slimkit.data.registry.locate`): the user
   cache ``$XDG_CACHE_HOME/slimkit/mnist`` or ``~/.cache/slimkit/mnist``, where the quick-start's
   ``slimkit train`` downloads it on a fresh machine.

The root found is exported as ``SLIMKIT_DATA_DIR`` so in-process code and subprocesses read the same
files even when a test moves ``XDG_CACHE_HOME``.
"""

import os
import pathlib

import pytest

from slimkit.data import registry

REPO = pathlib.Path(__file__).resolve().parent.parent
_SHARED = REPO.parent / "shared" / "data"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_USER_ROOT = os.environ.get("SLIMKIT_DATA_DIR")  # empty counts as unset, as in the product
if not _USER_ROOT and (_SHARED / "mnist").is_dir():
    os.environ["SLIMKIT_DATA_DIR"] = str(_SHARED)


def _find_mnist():
    """The folder holding MNIST (no download), or None.

    A set ``SLIMKIT_DATA_DIR`` is the only place looked at: the product would fall back to the
    cache, but a suite silently reading another copy than the one named would hide a broken setup.
    """
    if _USER_ROOT:
        folder = pathlib.Path(_USER_ROOT).expanduser() / "mnist"
        return folder if registry.holds_dataset(folder, "mnist") else None
    folder, _ = registry.locate("mnist")
    return folder if registry.holds_dataset(folder, "mnist") else None


_MNIST = _find_mnist()
if _MNIST is not None:
    os.environ["SLIMKIT_DATA_DIR"] = str(_MNIST.parent)  # a data root: <root>/mnist/


@pytest.fixture(scope="session")
def data_root():
    """The data root (one folder per dataset), as the product resolves it."""
    if _MNIST is None and _USER_ROOT:
        folder = pathlib.Path(_USER_ROOT).expanduser() / "mnist"
        pytest.fail(f"SLIMKIT_DATA_DIR={_USER_ROOT} holds no MNIST: expected the four IDX files in "
                    f"{folder} (the tests never download, and never replace a set SLIMKIT_DATA_DIR "
                    "by another folder). Point SLIMKIT_DATA_DIR at the data root that holds mnist/ "
                    "(CI uses ../shared/data), or unset it to use ../shared/data beside the "
                    "checkout or the user cache.")
    if _MNIST is None:
        looked = ", ".join(str(path) for _, path in registry.candidate_dirs("mnist"))
        pytest.fail(f"MNIST not found (looked in {looked}; the tests never download). Expected "
                    "the four IDX files in <root>/mnist/: set SLIMKIT_DATA_DIR to that root "
                    "(CI uses ../shared/data), or run the quick-start's `slimkit train` once to "
                    "download MNIST into the user cache.")
    return _MNIST.parent


@pytest.fixture(scope="session")
def mnist_dir(data_root):
    """The folder holding MNIST's four original IDX files (never copied into the repo)."""
    return _MNIST
