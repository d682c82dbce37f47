"""tests/conftest.py finds MNIST like the product does, never downloads, and says how to fix.

Each case copies the conftest into a fresh checkout-like folder (so ../shared/data is not beside
it unless the case puts it there) and runs pytest on a probe test in a subprocess.
"""

import os
import shutil
import subprocess
import sys

import pytest

from slimkit.data.registry import get_dataset_info

CONFTEST = os.path.join(os.path.dirname(os.path.dirname(__file__)), "conftest.py")
PROBE = '''
import os


def test_probe(data_root, mnist_dir):
    print("DATA_ROOT", data_root)
    print("MNIST_DIR", mnist_dir)
    print("ENV", os.environ["SLIMKIT_DATA_DIR"])
'''


def _link_mnist(source, folder):
    folder.mkdir(parents=True)
    for f in get_dataset_info("mnist").files:
        (folder / f.name).symlink_to(source / f.name)
    return folder


@pytest.fixture()
def checkout(tmp_path):
    """tmp/work/repo/tests/{conftest.py,test_probe.py}; tmp/work/shared/data is empty."""
    tests = tmp_path / "work" / "repo" / "tests"
    tests.mkdir(parents=True)
    shutil.copy(CONFTEST, tests / "conftest.py")
    (tests / "test_probe.py").write_text(PROBE)
    return tmp_path


def _run(checkout, **env_vars):
    env = {k: v for k, v in os.environ.items() if k not in ("SLIMKIT_DATA_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(checkout / "home"), SLIMKIT_MIRRORS="http://127.0.0.1:9/", **env_vars)
    repo = checkout / "work" / "repo"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                             "tests/test_probe.py"], cwd=repo, env=env, capture_output=True,
                            text=True, timeout=120)
    found = dict(line.split(" ", 1) for line in result.stdout.splitlines()
                 if line.startswith(("DATA_ROOT ", "MNIST_DIR ", "ENV ")))
    return result, found


def test_user_cache_of_the_quick_start_is_used(checkout, mnist_dir):
    cache = checkout / "xdg"
    _link_mnist(mnist_dir, cache / "slimkit" / "mnist")
    result, found = _run(checkout, XDG_CACHE_HOME=str(cache))
    assert result.returncode == 0, result.stdout + result.stderr
    root = cache / "slimkit"
    assert found == {"DATA_ROOT": str(root), "MNIST_DIR": str(root / "mnist"), "ENV": str(root)}


def test_default_cache_under_home(checkout, mnist_dir):
    cache = checkout / "home" / ".cache" / "slimkit"
    _link_mnist(mnist_dir, cache / "mnist")
    result, found = _run(checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert found["MNIST_DIR"] == str(cache / "mnist")


def test_slimkit_data_dir_first_then_shared_data_beside_the_checkout(checkout, mnist_dir):
    shared = checkout / "work" / "shared" / "data"
    _link_mnist(mnist_dir, shared / "mnist")
    _link_mnist(mnist_dir, checkout / "xdg" / "slimkit" / "mnist")
    result, found = _run(checkout, XDG_CACHE_HOME=str(checkout / "xdg"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert found["MNIST_DIR"] == str(shared / "mnist")  # beside the checkout beats the cache
    _link_mnist(mnist_dir, checkout / "root" / "mnist")
    result, found = _run(checkout, XDG_CACHE_HOME=str(checkout / "xdg"),
                         SLIMKIT_DATA_DIR=str(checkout / "root"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert found["MNIST_DIR"] == str(checkout / "root" / "mnist")


def test_nothing_found_fails_with_how_to_fix_and_downloads_nothing(checkout):
    cache = checkout / "xdg"
    result, _ = _run(checkout, XDG_CACHE_HOME=str(cache))
    assert result.returncode == 1
    message = (f"MNIST not found (looked in {cache / 'slimkit' / 'mnist'}; the tests never "
               "download). Expected the four IDX files in <root>/mnist/: set SLIMKIT_DATA_DIR to "
               "that root (CI uses ../shared/data), or run the quick-start's `slimkit train` once "
               "to download MNIST into the user cache.")
    assert message in result.stdout
    assert not cache.exists()


def test_a_set_slimkit_data_dir_without_mnist_fails_instead_of_falling_back(checkout, mnist_dir):
    """The fallbacks (../shared/data, the user cache) apply only when the variable is unset."""
    _link_mnist(mnist_dir, checkout / "work" / "shared" / "data" / "mnist")
    _link_mnist(mnist_dir, checkout / "xdg" / "slimkit" / "mnist")
    root = checkout / "root"  # a typo'd or stale root: no mnist/ in it
    result, found = _run(checkout, XDG_CACHE_HOME=str(checkout / "xdg"), SLIMKIT_DATA_DIR=str(root))
    assert result.returncode == 1 and found == {}
    message = (f"SLIMKIT_DATA_DIR={root} holds no MNIST: expected the four IDX files in "
               f"{root / 'mnist'} (the tests never download, and never replace a set "
               "SLIMKIT_DATA_DIR by another folder). Point SLIMKIT_DATA_DIR at the data root that "
               "holds mnist/ (CI uses ../shared/data), or unset it to use ../shared/data beside "
               "the checkout or the user cache.")
    assert message in " ".join(result.stdout.split())  # pytest may wrap the long line
