"""The landing journal: one JSON line for each object the local rules engine stores in S3.

The stack writes it; `chantier simulate` follows it to time each batch from its sentAt to the
moment the S3 put returned, instead of listing the bucket (a listing costs moto time in
proportion to every object stored, and a fleet stores tens of thousands).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
JOURNAL_NAME = "landings.jsonl"


def journal_path(state_dir: Path) -> Path:
    """Where the stack with this state folder writes its landing journal."""
    return Path(state_dir) / "logs" / JOURNAL_NAME


def landing_line(key: str, received_ms: int, stored_ms: int, message: Any) -> dict[str, Any]:
    """The journal line of one stored object: its key, when the rules engine took the message
    and when the S3 put returned, and the batch fields it holds."""
    line: dict[str, Any] = {"key": key, "receivedMs": received_ms, "storedMs": stored_ms}
    if isinstance(message, dict):
        for name in ("thing", "boot", "seq", "sentAt", "runId"):
            if name in message:
                line[name] = message[name]
        readings = message.get("readings")
        if isinstance(readings, list):
            line["readings"] = len(readings)
        elif isinstance(readings, int):  # a count already (the ingest function's summary)
            line["readings"] = readings
    return line


class LandingJournal:
    """Appends landings from any thread. It continues the journal of the state folder, as
    the stack's bucket continues from its mirror, so a follower keeps its place across a
    restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8")
        if self._file.tell() and not _ends_a_line(path):
            self._file.write("\n")  # a line cut by a kill: left alone, readers skip it

    def record(self, key: str, received_ms: int, stored_ms: int, message: Any) -> None:
        line = landing_line(key, received_ms, stored_ms, message)
        text = json.dumps(line, separators=(",", ":"))
        with self._lock:
            if self._file.closed:
                return  # an action finishing while the stack stops
            try:
                self._file.write(text + "\n")
                self._file.flush()  # a reader in another process sees each line at once
            except OSError as exc:
                # The journal only times batches: a full disk must not fail the S3 action.
                log.warning("landing journal %s not written: %s", self.path, exc)

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _ends_a_line(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"


class JournalReader:
    """Reads the lines appended since it was opened (or since the start, `from_start`)."""

    def __init__(self, path: Path, from_start: bool = False) -> None:
        self.path = path
        self._offset = 0 if from_start or not path.exists() else path.stat().st_size
        self._partial = b""

    def read_new(self) -> list[dict[str, Any]]:
        """Complete lines written since the last call; a line still being written waits."""
        try:
            with self.path.open("rb") as f:
                if f.seek(0, 2) < self._offset:  # a new stack started a new journal
                    self._offset, self._partial = 0, b""
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        out: list[dict[str, Any]] = []
        for line in lines:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                out.append(item)
        return out
