"""Child processes of the local stack (Mosquitto, moto server): start, wait ready, stop."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Children are started with a parent-death signal, so they die with the stack even when it is
# killed with SIGKILL. Linux sends that signal when the *thread* that started the child ends,
# so every child is started from this one thread, which lives as long as the process.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="child-spawner")
_SETPRIV = shutil.which("setpriv")


class ProcessStartError(RuntimeError):
    """A child process did not become ready in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a listener could bind this port now (as Mosquitto does, past TIME_WAIT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def http_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5):
            return True
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False


class ChildProcess:
    """A process started by the stack, with its output in a log file."""

    def __init__(
        self, name: str, argv: Sequence[str], log_path: Path, death_signal: str = "KILL"
    ) -> None:
        """`death_signal`: what the process gets when the stack dies, even by SIGKILL (KILL,
        or TERM for a child that must save something on its way out)."""
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.death_signal = death_signal
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else 0

    def start(self, ready: Callable[[], bool], timeout_s: float = 20.0) -> None:
        self.spawn(timeout_s)
        self.wait_ready(ready, timeout_s)

    def spawn(self, timeout_s: float = 20.0) -> None:
        """Start the process without waiting for it (children that start slowly are spawned
        together, then each waited for)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = _SPAWNER.submit(self._spawn).result(timeout=timeout_s)

    def wait_ready(self, ready: Callable[[], bool], timeout_s: float = 20.0) -> None:
        """Wait until `ready()`; ProcessStartError when the process ends or time runs out."""
        assert self.process is not None, f"{self.name} was not spawned"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ProcessStartError(
                    f"{self.name} exited with code {self.process.returncode} at start; "
                    f"see {self.log_path}:\n{self.tail()}"
                )
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        raise ProcessStartError(
            f"{self.name} was not ready after {timeout_s:.0f} s; see {self.log_path}"
        )

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                with_parent_death_signal(self.argv, self.death_signal),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches us, and we stop children in order
            )

    def exited(self) -> int | None:
        """The exit code once the process has ended, None while it runs (or never started)."""
        return self.process.poll() if self.process else None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def signal(self, signum: int) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self, timeout_s: float = 5.0) -> None:
        if not self.process or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout_s)


def with_parent_death_signal(argv: Sequence[str], death_signal: str = "KILL") -> list[str]:
    """`argv` run so that it receives `death_signal` when its parent dies (util-linux's
    setpriv)."""
    if _SETPRIV is None:
        return list(argv)  # not Linux, or util-linux missing: a stale stack file still reports it
    return [_SETPRIV, "--pdeathsig", death_signal, "--", *argv]


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return ""


def end_leftover(pid: int, marker: str, grace_s: float = 0.0) -> bool:
    """End process `pid` if its command line still holds `marker` (a child of a stack that
    died before it could stop it): SIGTERM and up to `grace_s` to finish (Mosquitto saves its
    queue), then SIGKILL. True when one was ended."""
    if pid <= 0 or marker not in _command_line(pid):
        return False  # gone, or the id now belongs to an unrelated process
    deadline = time.monotonic() + grace_s
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
        while marker in _command_line(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if marker in _command_line(pid):
            os.kill(pid, signal.SIGKILL)
    return True


def find_mosquitto() -> str:
    """Path of the mosquitto binary, or a plain error saying how to install it."""
    for candidate in (
        shutil.which("mosquitto"),
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ProcessStartError(
        "mosquitto is not installed: run `sudo apt-get install mosquitto` (or `make demo`, "
        "which installs it)"
    )


class MotoServer(ChildProcess):
    """moto's server through our launcher (cloud/local/moto_server.py), which removes its
    costs that grow with load, on `port` of 127.0.0.1. `mirror`: the folder where it mirrors
    raw objects as files (cloud/local/lake.py); `queues`: the folder where it keeps SQS
    messages until they are deleted."""

    def __init__(
        self,
        name: str,
        port: int,
        log_path: Path,
        mirror: Path | None = None,
        queues: Path | None = None,
    ) -> None:
        argv = [sys.executable, "-m", "cloud.local.moto_server", "-H", "127.0.0.1", "-p", str(port)]
        argv += ["--mirror", str(mirror)] if mirror is not None else []
        argv += ["--queues", str(queues)] if queues is not None else []
        super().__init__(name, argv, log_path)
        self.endpoint = f"http://127.0.0.1:{port}"

    def ready(self) -> bool:
        return http_ready(self.endpoint + "/moto-api/")


# dynalite, installed by `make install` (cloud/local/dynalite/package.json).
DYNALITE_CLI = Path(__file__).resolve().parent / "dynalite" / "node_modules" / "dynalite" / "cli.js"


def dynalite_available() -> bool:
    """dynalite and a Node.js to run it are installed."""
    return DYNALITE_CLI.is_file() and shutil.which("node") is not None


class DynaliteServer(ChildProcess):
    """dynalite, a DynamoDB API server on Node.js that keeps tables in memory, on `port` of
    127.0.0.1. For the calls of the alert path it spends about half of moto's CPU per request
    and keeps connections open (docs/performance.md). It has no transactions: tables that need
    them stay on a moto server (StackInfo.table_endpoints)."""

    def __init__(self, name: str, port: int, log_path: Path) -> None:
        node = shutil.which("node") or "node"
        # Tables are ACTIVE at once, as the stack creates them and uses them right away.
        argv = [node, str(DYNALITE_CLI), "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"]
        super().__init__(name, argv, log_path)
        self.endpoint = f"http://127.0.0.1:{port}"

    def ready(self) -> bool:
        return http_ready(self.endpoint)
