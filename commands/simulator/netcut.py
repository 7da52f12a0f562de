"""A TCP link between one simulated machine and the broker that can be cut and restored.

The demo puts it between an agent and Mosquitto to show a real network cut: the agent loses
its connection, keeps sampling into its queue, fails to reconnect while the link is cut, and
replays its backlog once it is back. TLS passes through untouched (the link only copies bytes).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

CHUNK = 65536
POLL_S = 0.2


class CuttableLink:
    """Listens on 127.0.0.1:<port> and forwards each connection to the target until cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL_S)
        self.port = int(self._listener.getsockname()[1])
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="netcut-accept", daemon=True)

    def start(self) -> CuttableLink:
        self._acceptor.start()
        return self

    def cut(self) -> None:
        """Drop every connection now and refuse new ones until restore()."""
        self._cut.set()
        self._close_all()

    def restore(self) -> None:
        self._cut.clear()

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._close_all()
        self._acceptor.join(timeout_s)
        for thread in self._threads:
            thread.join(timeout_s)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                client.close()  # the cable is out: the handshake never completes
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5.0)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            thread = threading.Thread(
                target=self._pipe, args=(client, upstream), name="netcut-pipe", daemon=True
            )
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            try:
                while not self._stop.is_set() and not self._cut.is_set():
                    for key, _ in selector.select(POLL_S):
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = source.recv(CHUNK)
                        if not data:
                            return
                        peers[source].setblocking(True)
                        peers[source].sendall(data)
                        peers[source].setblocking(False)
            except OSError:
                return
            finally:
                for sock in peers:
                    self._forget(sock)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        with contextlib.suppress(OSError):
            sock.close()

    def _close_all(self) -> None:
        with self._lock:
            victims = list(self._open)
            self._open.clear()
        for sock in victims:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
