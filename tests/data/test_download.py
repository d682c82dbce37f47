"""Downloads against a real HTTP server on 127.0.0.1 serving the shared MNIST files.

The server's root holds ``good/`` (a symlink to the shared MNIST folder), ``corrupt/`` (same names,
wrong bytes) and nothing else (so any other path is a 404); ``/truncated/<file>`` promises the whole
file and hangs up half-way; ``/reset/<file>`` sends half of it and resets the connection. The same
handler also serves over TLS, where ``/tls-broken/<file>`` sends half of the file and then a record
no TLS client can decrypt.
"""

import functools
import hashlib
import http.server
import io
import os
import pathlib
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading

import pytest

from slimkit.data.download import ChecksumError, DownloadError, _Progress, ensure_files, file_md5
from slimkit.data.registry import get_dataset_info, load_arrays

INFO = get_dataset_info("mnist")
NAMES = sorted(f.name for f in INFO.files)


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        broken = self.path.split("/")[1]
        if broken not in ("truncated", "reset", "tls-broken"):
            return super().do_GET()
        body = (self.server.mnist_dir / self.path.rsplit("/", 1)[1]).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True
        if broken == "reset":  # SO_LINGER 0: close() sends a RST (no FIN), the client's read fails
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # its reference would defer the close
            self.connection.close()
        elif broken == "tls-broken":  # an application-data record with a bogus MAC, under TLS
            with socket.socket(fileno=os.dup(self.connection.fileno())) as raw:
                raw.sendall(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)


@pytest.fixture(scope="module")
def server(tmp_path_factory, mnist_dir):
    root = tmp_path_factory.mktemp("mirror")
    (root / "good").symlink_to(mnist_dir)
    (root / "corrupt").mkdir()
    for name in NAMES:
        (root / "corrupt" / name).write_bytes(b"\x1f\x8b not really gzip " * 100)
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    httpd.mnist_dir = mnist_dir
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, mnist_dir):
    """The handler over TLS, with a certificate for 127.0.0.1 that urllib is made to trust.

    urllib's default context honours ``SSL_CERT_FILE`` (OpenSSL reads it when the context loads its
    default certificates), so the client code is the one users run.
    """
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    keys = tmp_path_factory.mktemp("tls")
    cert, key = keys / "cert.pem", keys / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    root = tmp_path_factory.mktemp("tls_mirror")
    (root / "good").symlink_to(mnist_dir)
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.mnist_dir = mnist_dir
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}", cert
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def closed_port():
    """A URL on a port where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def _assert_complete(folder):
    assert sorted(p.name for p in folder.iterdir()) == NAMES  # no .part files left behind
    for f in INFO.files:
        assert file_md5(folder / f.name) == f.md5


def test_good_mirror(server, tmp_path, capsys):
    folder = tmp_path / "new" / "MNIST_data"
    assert ensure_files("mnist", folder, mirrors=[server + "/good/"]) == folder
    _assert_complete(folder)
    err = capsys.readouterr().err  # not a terminal: plain start and end lines
    assert f"Downloading {server}/good/train-images-idx3-ubyte.gz (9.9 MB)" in err
    assert "train-images-idx3-ubyte.gz: 9.9 MB, MD5 ok" in err


def test_failing_mirrors_fall_through(server, closed_port, tmp_path):
    folder = tmp_path / "data"
    ensure_files("mnist", folder, mirrors=[closed_port, server + "/missing/", server + "/good"])
    _assert_complete(folder)


def test_corrupt_and_truncated_mirrors_are_rejected(server, tmp_path, capsys):
    folder = tmp_path / "data"
    ensure_files("mnist", folder, mirrors=[server + "/corrupt/", server + "/truncated/",
                                           server + "/good/"])
    _assert_complete(folder)
    err = capsys.readouterr().err
    assert re.search(r"train-labels-idx1-ubyte.gz: 0.0 MB, rejected: MD5 [0-9a-f]{32}, expected "
                     r"d53e105ee54ea40749a09fcbcd1e9432", err)


def test_all_mirrors_failing_says_which_files_go_where(server, closed_port, tmp_path, capsys):
    folder = tmp_path / "MNIST_data"
    with pytest.raises(DownloadError) as raised:
        ensure_files("mnist", folder, mirrors=[closed_port, server + "/missing", server +
                                               "/corrupt", server + "/truncated"])
    message = str(raised.value)
    assert message.startswith(
        f"Dataset mnist is incomplete in {folder}: downloading failed. Put these files in "
        f"{folder}: train-images-idx3-ubyte.gz (MD5 f68b3c2dcbeaaa9fbdd348bbdeb94873), "
        f"train-labels-idx1-ubyte.gz (MD5 d53e105ee54ea40749a09fcbcd1e9432), "
        f"t10k-images-idx3-ubyte.gz (MD5 9fb629c4189551a2d022fa330f9573f3), "
        f"t10k-labels-idx1-ubyte.gz (MD5 ec29112dd5afa0611ce80d1b7f02629c)")
    assert "or point --data-dir / SLIMKIT_DATA_DIR at a folder that holds them." in message
    assert f"{closed_port}train-images-idx3-ubyte.gz: cannot connect (Connection refused)" \
        in message
    assert message.count("cannot connect") == 1  # a dead host is not retried for every file
    assert f"{server}/missing/t10k-labels-idx1-ubyte.gz: HTTP error 404 File not found" in message
    assert f"{server}/corrupt/t10k-labels-idx1-ubyte.gz: wrong checksum (MD5 " in message
    assert f"{server}/truncated/t10k-labels-idx1-ubyte.gz: incomplete download (2271 of 4542 " \
        f"bytes)" in message
    assert not folder.exists()  # the folder it created is removed again, with no partial files


def test_a_reset_connection_mid_body_falls_through_to_the_next_mirror(server, tmp_path):
    folder = tmp_path / "data"
    ensure_files("mnist", folder, mirrors=[server + "/reset/", server + "/good/"])
    _assert_complete(folder)
    with pytest.raises(DownloadError, match=re.escape(
            f"{server}/reset/train-images-idx3-ubyte.gz: ConnectionResetError: [Errno 104]")):
        ensure_files("mnist", tmp_path / "again", mirrors=[server + "/reset/"])
    assert not (tmp_path / "again").exists()


def test_a_tls_error_mid_body_is_a_network_error_not_an_unwritable_folder(tls_server, tmp_path,
                                                                         monkeypatch):
    """ssl.SSLError's errno is SSL_ERROR_SSL (1), which is also EPERM: no longer "Cannot write"."""
    url, cert = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    folder = tmp_path / "data"
    ensure_files("mnist", folder, mirrors=[url + "/tls-broken/", url + "/good/"])
    _assert_complete(folder)
    with pytest.raises(DownloadError) as raised:
        ensure_files("mnist", tmp_path / "again", mirrors=[url + "/tls-broken/"])
    assert re.search(re.escape(f"{url}/tls-broken/train-images-idx3-ubyte.gz: SSLError: [SSL: ") +
                     r"[A-Z_]+\] ", str(raised.value))
    assert not (tmp_path / "again").exists()  # the folder it created is removed again


_FILE_SIZE_LIMIT = """
import resource, signal, sys
from slimkit.data.download import ensure_files
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    ensure_files("mnist", sys.argv[1], mirrors=[sys.argv[2]])
except OSError as e:
    print(type(e).__name__, e)
"""


def test_a_folder_that_cannot_be_written_stops_at_once(server, tmp_path):
    """A local write error (here EFBIG, under a file-size limit) names the folder; no mirror is
    tried after it, and the folder it created is removed again."""
    folder = tmp_path / "new"
    result = subprocess.run(
        [sys.executable, "-c", _FILE_SIZE_LIMIT, str(folder), server + "/good/"],
        capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == (
        f"WriteFaultError Cannot write {folder}/train-images-idx3-ubyte.gz: file too large for "
        "this process's file-size limit of 100000 bytes (`ulimit -f`). Raise the limit (`ulimit -f "
        "unlimited` in the shell that starts slimkit).")
    assert not folder.exists()


def test_only_missing_files_are_fetched(server, tmp_path, mnist_dir):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in NAMES[1:]:
        (folder / name).symlink_to(mnist_dir / name)
    ensure_files("mnist", folder, mirrors=[server + "/good/"])
    assert not (folder / NAMES[0]).is_symlink() and (folder / NAMES[1]).is_symlink()
    _assert_complete(folder)


def test_corrupt_cached_file_is_reported_not_used(server, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    bad = folder / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(b"garbage")
    with pytest.raises(ChecksumError, match=re.escape(
            f"Checksum mismatch for {bad}: expected MD5 ec29112dd5afa0611ce80d1b7f02629c (the "
            f"published t10k-labels-idx1-ubyte.gz) or 27ae3e4e09519cfbb04c329615203637 (its "
            f"uncompressed content), found c8e8df895c2cae166bad027fdf15335b. The file is corrupt "
            f"or not the original; delete it")):
        ensure_files("mnist", folder, mirrors=[server + "/good/"])
    assert bad.read_bytes() == b"garbage"  # never deleted or overwritten behind the user's back
    with pytest.raises(ChecksumError):
        load_arrays("mnist", folder, download=False)


def test_environment_mirrors_and_load_arrays_download(server, tmp_path, monkeypatch):
    """load_arrays(download=True) with an empty data root: into the cache, mirrors from the env."""
    monkeypatch.setenv("SLIMKIT_DATA_DIR", str(tmp_path / "root"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SLIMKIT_MIRRORS", f"{server}/missing/, {server}/good/")
    splits = load_arrays("mnist", validation_size=5000)
    assert splits.train.images.shape == (55000, 28, 28, 1)
    _assert_complete(tmp_path / "cache" / "slimkit" / "mnist")


def test_unwritable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(PermissionError, match=re.escape(
            f"Cannot create the folder {blocker / 'mnist'} to download mnist")):
        ensure_files("mnist", blocker / "mnist", mirrors=["http://127.0.0.1:9/"])


def test_progress_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    progress = _Progress("x.gz", "http://h/x.gz", total=2_000_000, stream=stream)
    for _ in range(4):
        progress.update(500_000)
    progress.done("MD5 ok")
    text = stream.getvalue()
    assert text.startswith("\rx.gz: ") and "100% of 2.0 MB" in text
    assert text.endswith("x.gz: 2.0 MB, MD5 ok" + " " * 50 + "\n")
    assert "Downloading" not in text


@pytest.mark.skipif(not pathlib.Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_published_fashion_mnist_md5s_match_debians_copy():
    """Debian's .gz files are the published ones minus the gzip header's file name and time.

    Putting back the original header (FNAME flag, the file name, and the time stamp of
    2017-08-31, found once by search) around Debian's deflate streams gives byte-identical files:
    their MD5s are the ones the Fashion-MNIST README publishes and slimkit pins.
    """
    mtimes = {"train": 1504176606, "t10k": 1504176627}
    for data_file in get_dataset_info("fashion_mnist").files:
        debian = (pathlib.Path("/usr/share/datasets/fashion-mnist") / data_file.name).read_bytes()
        assert debian[3] == 0  # no FNAME: Debian dropped it
        mtime = mtimes[data_file.name.split("-")[0]].to_bytes(4, "little")
        original = (b"\x1f\x8b\x08\x08" + mtime + debian[8:10] + data_file.raw_name.encode() +
                    b"\x00" + debian[10:])
        assert hashlib.md5(original).hexdigest() == data_file.md5
