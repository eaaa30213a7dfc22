"""Weight downloads without the internet: a local HTTP server, a closed port, a loopback-only guard.

Tests import these by name (pytest puts tests/ on sys.path). Every weight URL of the library is
pointed at 127.0.0.1, and any connection elsewhere fails the test, so nothing here can reach the
real internet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stylegen.metrics import features, perceptual

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
        raise AssertionError(f"network access attempted: {address}")
    return _real_connect(self, address)


def forbid_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections to anything but 127.0.0.1 / ::1 raise AssertionError."""
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released): connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def point_weights_at(monkeypatch: pytest.MonkeyPatch, base_url: str, **sha256_prefix: str | None) -> None:
    """Download VGG16 and Inception from `base_url/<their file names>` instead of the internet.

    sha256_prefix: vgg16=..., inception=... override the expected hash prefixes (None: no check).
    """
    for module, attr, key in ((perceptual, "VGG16", "vgg16"), (features, "INCEPTION", "inception")):
        spec = getattr(module, attr)
        changes = {"url": f"{base_url}/{spec.filename}"}
        if key in sha256_prefix:
            changes["sha256_prefix"] = sha256_prefix[key]
        monkeypatch.setattr(module, attr, dataclasses.replace(spec, **changes))


def go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every weight URL refuses connections (a closed loopback port); the internet is forbidden."""
    forbid_internet(monkeypatch)
    point_weights_at(monkeypatch, f"http://127.0.0.1:{closed_port()}/models")


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 serving `directory`: yields (base URL, requests as 'GET /x')."""
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, format: str, *args) -> None:  # keep the test output clean
            requests.append(self.requestline.rsplit(" ", 1)[0])

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections and never answers: yields its base URL."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)  # the kernel completes the handshakes; nothing ever reads or replies
        yield f"http://127.0.0.1:{s.getsockname()[1]}"
