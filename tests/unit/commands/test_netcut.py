"""The demo's cuttable link: bytes flow, a cut drops and refuses connections, restore heals."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from commands.simulator.netcut import CuttableLink


@pytest.fixture
def echo() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(5)
    server.close()


def _talk(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as conn:
        conn.sendall(b"hello")
        return conn.recv(1024)


def test_forwards_cuts_and_restores(echo: int) -> None:
    link = CuttableLink("127.0.0.1", echo).start()
    try:
        assert _talk(link.port) == b"hello"
        live = socket.create_connection(("127.0.0.1", link.port), timeout=3)
        live.sendall(b"x")
        assert live.recv(10) == b"x"
        link.cut()
        assert live.recv(10) == b""  # the open connection is dropped
        live.close()
        try:
            answer = _talk(link.port)
        except OSError:
            answer = b""
        assert answer == b""  # a new connection is closed without an answer
        link.restore()
        assert _talk(link.port) == b"hello"
    finally:
        link.stop()
