"""Released files fetched once (nas.fetch) and `--accuracy ofa`: only ever against a server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading

import numpy as np
import pytest

import nas
from nas.fetch import Remote, fetch
from search_spaces import get_space
from search_spaces.errors import UserError


class _Server:
    """An HTTP server on 127.0.0.1 that serves one payload at any path and counts requests."""

    def __init__(self, payload: bytes):
        self.payload, self.requests = payload, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.payload)))
                self.end_headers()
                self.wfile.write(outer.payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/acc_predictor.pth"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def serve(monkeypatch):
    """serve(bytes) -> a running 127.0.0.1 server; the test is online for it only."""
    monkeypatch.delenv("HWNAS_OFFLINE", raising=False)
    servers = []

    def start(payload: bytes) -> _Server:
        servers.append(_Server(payload))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def closed_port_url() -> str:
    """A 127.0.0.1 URL nothing listens on (the port was just free)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/acc_predictor.pth"


def tiny_remote(url: str, payload: bytes) -> Remote:
    return Remote("tiny.bin", (url,), hashlib.sha256(payload).hexdigest(), "a test file")


def test_fetch_caches_a_verified_copy_and_reuses_it_without_a_request(serve, offline_cache):
    server = serve(b"released bytes" * 1000)
    remote = tiny_remote(server.url, server.payload)
    path = fetch(remote, log=lambda m: None)
    assert path == offline_cache / "tiny.bin" and path.read_bytes() == server.payload
    assert fetch(remote, log=lambda m: None) == path and server.requests == 1
    assert [p.name for p in offline_cache.iterdir()] == ["tiny.bin"]  # no temporary file left


def test_fetch_rejects_a_corrupted_download_and_caches_nothing(serve, offline_cache):
    server = serve(b"corrupted bytes")
    remote = Remote("tiny.bin", (server.url,), hashlib.sha256(b"the real bytes").hexdigest(), "a test file")
    with pytest.raises(UserError, match="SHA-256") as e:
        fetch(remote, log=lambda m: None)
    assert "\n" not in str(e.value) and "nothing cached" in str(e.value)
    assert not offline_cache.exists() or list(offline_cache.iterdir()) == []


def test_a_cached_copy_that_no_longer_matches_is_fetched_again(serve, offline_cache):
    server = serve(b"good")
    remote = tiny_remote(server.url, b"good")
    offline_cache.mkdir(parents=True)
    (offline_cache / "tiny.bin").write_bytes(b"truncated")
    assert fetch(remote, log=lambda m: None).read_bytes() == b"good" and server.requests == 1


def test_offline_without_a_copy_names_the_file_and_the_folder(offline_cache):
    remote = tiny_remote("http://127.0.0.1:9/never-contacted", b"x")
    with pytest.raises(UserError) as e:
        fetch(remote)
    msg = str(e.value)
    assert "\n" not in msg and "tiny.bin" in msg and str(offline_cache) in msg and "HWNAS_OFFLINE" in msg


# ---- --accuracy ofa: Once-for-All's released predictor -------------------------------------------
@pytest.fixture
def released(shared_data):
    return (shared_data / "ofa" / "acc_predictor.pth").read_bytes()


def test_accuracy_ofa_fetches_the_released_predictor_once(serve, released, shared_data, offline_cache, monkeypatch):
    server = serve(released)
    monkeypatch.setenv("HWNAS_OFA_PREDICTOR_URL", server.url)
    sp = get_space("ofa")
    X = sp.sample_encoded(np.random.default_rng(0), 50)
    est = nas.get_estimator("ofa", sp)
    ref = nas.get_estimator(f"ofa-predictor:{shared_data / 'ofa' / 'acc_predictor.pth'}", sp)
    np.testing.assert_array_equal(est.predict(X), ref.predict(X))
    assert (offline_cache / "ofa_acc_predictor.pth").read_bytes() == released
    server.close()  # from now on only the cache can answer
    again = nas.get_estimator("ofa", sp)
    np.testing.assert_array_equal(again.predict(X), ref.predict(X))
    assert server.requests == 1


def test_accuracy_ofa_rejects_a_corrupted_predictor(serve, released, offline_cache, monkeypatch):
    bad = bytearray(released)
    bad[len(bad) // 2] ^= 0xFF
    monkeypatch.setenv("HWNAS_OFA_PREDICTOR_URL", serve(bytes(bad)).url)
    with pytest.raises(UserError, match="SHA-256"):
        nas.get_estimator("ofa", "ofa")
    assert not (offline_cache / "ofa_acc_predictor.pth").exists()


def test_accuracy_ofa_with_no_server_is_a_one_line_error(nas_cli, monkeypatch, offline_cache):
    monkeypatch.delenv("HWNAS_OFFLINE", raising=False)
    monkeypatch.setenv("HWNAS_OFA_PREDICTOR_URL", closed_port_url())
    code, out, err = nas_cli("search", "--space", "ofa", "--target", "pixel", "--latency", "40ms",
                             "--accuracy", "ofa", "--budget", "100", "--quiet", "--out", offline_cache.parent / "run")
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err
    assert lines[0].startswith("fetching http://127.0.0.1:")  # what it tried, then the one-line error
    assert len(lines) == 2 and "ofa_acc_predictor.pth" in lines[1] and str(offline_cache) in lines[1]
    assert "HWNAS_CACHE_DIR" in lines[1]
