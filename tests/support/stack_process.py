"""`chantier stack up` as its own process, as a user runs it, for tests that kill it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cloud.local.stackinfo import StackInfo
from support.alert_stack import wait_for


def chantier(*args: str) -> list[str]:
    return [sys.executable, "-m", "chantier.cli", *args]


def stack_up(state: Path, log: Path) -> tuple[subprocess.Popen[bytes], StackInfo]:
    """Start `chantier stack up` and wait until it has described itself in `state`."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            chantier("stack", "up", "--state-dir", str(state)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def written() -> bool:
        try:
            return StackInfo.read(state).pid == process.pid
        except Exception:
            return False

    assert wait_for(written, 90, poll_s=0.1), f"stack did not come up:\n{log.read_text()[-3000:]}"
    return process, StackInfo.read(state)
