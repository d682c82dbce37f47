"""Shared fixtures.

Real data only: MNIST comes from the data root the product itself would use (``SLIMKIT_DATA_DIR``;
CI points it at ../shared/data). When it is unset and the checkout sits beside ../shared/data, that
folder is used, so `pytest` works the same in a developer's clone and in CI.
"""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
_SHARED = REPO.parent / "shared" / "data"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "SLIMKIT_DATA_DIR" not in os.environ and (_SHARED / "mnist").is_dir():
    os.environ["SLIMKIT_DATA_DIR"] = str(_SHARED)


@pytest.fixture(scope="session")
def data_root():
    """The data root (one folder per dataset), as the product resolves it."""
    root = os.environ.get("SLIMKIT_DATA_DIR")
    if not root or not (pathlib.Path(root) / "mnist").is_dir():
        pytest.fail("MNIST not found: set SLIMKIT_DATA_DIR to a folder holding mnist/ with the four "
                    "IDX files (CI uses ../shared/data)")
    return pathlib.Path(root)


@pytest.fixture(scope="session")
def mnist_dir(data_root):
    """The folder holding MNIST's four original IDX files (never copied into the repo)."""
    return data_root / "mnist"
