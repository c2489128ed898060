"""Security tests: the attacker's view (through HTTP, as a member, an admin and a stranger).

Reuses the API cast (a token per role) and adds small local servers an attacker would aim at.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.api.conftest import PROVIDER_SECRET, Api, api, world  # noqa: F401

Handler = Callable[[BaseHTTPRequestHandler], None]


class Recorder:
    """A local HTTP server that records every request it gets and answers with `respond`."""

    def __init__(self, respond: Handler) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        recorder = self

        class _Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.requests.append((self.path, dict(self.headers), body))
                respond(self)

            do_GET = do_POST = _any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_server() -> Iterator[Callable[[Handler], Recorder]]:
    started: list[Recorder] = []

    def start(respond: Handler) -> Recorder:
        started.append(Recorder(respond))
        return started[-1]

    yield start
    for recorder in started:
        recorder.close()


def answer(status: int, body: bytes = b"{}", **headers: str) -> Handler:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


@pytest.fixture
def raw_tcp_server() -> Iterator[Callable[[bytes | None], int]]:
    """A TCP listener that sends `greeting` (not HTTP) or nothing at all, then holds the line."""
    sockets: list[socket.socket] = []

    def start(greeting: bytes | None) -> int:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        sockets.append(listener)

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                sockets.append(conn)
                if greeting is not None:
                    conn.sendall(greeting)

        threading.Thread(target=serve, daemon=True).start()
        return listener.getsockname()[1]

    yield start
    for sock in sockets:
        sock.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
