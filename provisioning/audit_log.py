"""Append-only JSON-lines record of provisioning actions: who, when, what; never a secret."""

from __future__ import annotations

import getpass
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chantier.files import make_private_dir

AUDIT_LOG_NAME = "provisioning-audit.jsonl"
# Only these keys may be recorded: an allow-list keeps key material out by construction.
ALLOWED_DETAILS = frozenset(
    {
        "site",
        "equipment",
        "hourlyCost",
        "certificateId",
        "previousCertificateIds",
        "serial",
        "notAfter",
        "bundle",
        "archive",
        "csr",
        "error",
        "warning",
        "row",
    }
)


class AuditLog:
    """One line per action appended with O_APPEND, so concurrent writers never interleave."""

    def __init__(self, path: Path, mode: str) -> None:
        self.path = path
        self.mode = mode

    def record(self, action: str, thing: str | None, outcome: str, **details: Any) -> None:
        unknown = set(details) - ALLOWED_DETAILS
        if unknown:
            raise ValueError(f"audit detail keys {sorted(unknown)} are not on the allow-list")
        entry = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "user": _user(),
            "mode": self.mode,
            "action": action,
            "thing": thing,
            "outcome": outcome,
            **{k: v for k, v in details.items() if v is not None},
        }
        line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
        make_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def entries(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"
