"""A real TensorBoard server (`slimkit board`) and a real headless Chromium for the tests.

    with serve(logdir) as board:              # `python -m slimkit board LOGDIR --port P`
        board.json("/data/plugin/scalars/tags")
        with chromium() as browser:
            browser.get(board.url + "#scalars")
            wait_for(browser, lambda: "loss" in page_text(browser))

Chromium is Debian's (``chromium``, ``chromium-driver``; ``.ci/run`` installs them), driven through
Selenium with the system chromedriver (never a downloaded one). Screenshots go to
``test-artifacts/tensorboard/`` in the checkout, kept after the run.
"""

import contextlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "tensorboard"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

# Every text node of the page, shadow DOMs included (TensorBoard's dashboards are web components).
_TEXT_JS = """
const out = [];
function walk(node) {
  if (node.nodeType === 3) { const t = node.textContent.trim(); if (t) out.push(t); return; }
  if (node.nodeType !== 1 && node.nodeType !== 11) return;
  if (node.tagName === 'STYLE' || node.tagName === 'SCRIPT') return;
  if (node.shadowRoot) walk(node.shadowRoot);
  for (const child of node.childNodes) walk(child);
}
walk(document.body);
return out.join('\\n');
"""
# Elements matching a CSS selector anywhere, shadow DOMs included; with a second selector, the
# elements matching it inside (shadow DOMs included) the ones matching the first.
_QUERY_JS = """
function all(root, selector) {
  const found = [];
  function walk(node) {
    for (const el of node.querySelectorAll('*')) {
      if (el.matches(selector)) found.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  }
  if (root.shadowRoot) walk(root.shadowRoot);
  walk(root);
  return found;
}
const hosts = all(document, arguments[0]);
if (!arguments[1]) return hosts;
return hosts.flatMap(host => all(host, arguments[1]));
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Board:
    def __init__(self, url, process):
        self.url, self.process = url, process

    def get(self, path, data=None):
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read()

    def json(self, path, body=None):
        return json.loads(self.get(path, None if body is None else json.dumps(body).encode()))


@contextlib.contextmanager
def serve(logdir, timeout=120):
    """`slimkit board LOGDIR` on a free port of 127.0.0.1; yields a :class:`Board`."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "slimkit", "board", str(logdir), "--port",
                                str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        deadline, lines = time.monotonic() + timeout, []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            lines.append(line)
            if line.startswith("TensorBoard ") and " at http://" in line:
                url = line.split(" at ", 1)[1].split()[0]
                break
        else:
            url = None
        if url is None:
            pytest.fail("slimkit board did not start:\n" + "".join(lines))
        assert url == f"http://127.0.0.1:{port}/"
        board = Board(url, process)
        _wait(lambda: board.json("/data/plugins_listing"), timeout)
        yield board
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        process.stdout.close()


def _wait(probe, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return probe()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_until(condition, timeout=90, every=1.0, what="condition"):
    """Polls ``condition()`` until it is truthy; returns its value, or fails naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def chromium_missing():
    """Why the browser tests cannot run here (None if they can)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        return (f"{' and '.join(missing)} not installed (Debian: apt-get install chromium "
                "chromium-driver; .ci/run installs them)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@contextlib.contextmanager
def chromium(width=1400, height=1000):
    """Headless Debian Chromium through the system chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}", "--no-first-run", "--disable-quic",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--enable-unsafe-swiftshader"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def page_text(driver):
    return driver.execute_script(_TEXT_JS)


def query(driver, selector, inside=None):
    """Elements matching ``selector`` anywhere in the page, shadow DOMs included; with ``inside``,
    the elements matching ``inside`` within those (e.g. ``query(d, "vz-line-chart2", "path")``)."""
    return driver.execute_script(_QUERY_JS, selector, inside)


def screenshot(driver, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
