"""One local stack per state folder: an advisory lock held for the stack's whole life.

Two stacks on one folder would share its CA, queues and `stack.json`, and the one stopping
first would delete the other's description. The lock is the kernel's (flock), so a stack
killed with -9 releases it at once and leaves nothing to clean by hand.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "stack.lock"


class StateFolderInUseError(RuntimeError):
    """Another local stack runs with this state folder."""


class StateLock:
    """Held from start to stop of a LocalStack; the file says which process holds it."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            folder = self.path.parent
            raise StateFolderInUseError(
                f"a local stack already runs with state in {folder} (process {holder}): use it "
                f"(`chantier stack status --state-dir {folder}` says where), stop it first, or "
                "give this command another --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
