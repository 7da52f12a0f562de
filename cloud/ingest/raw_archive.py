"""The raw bucket's batches: each one written once, as the exact bytes the device sent.

A batch is named by its key (site, thing, date, boot, seq) and the contract says a re-sent
batch is byte-identical. The first write is conditional (`If-None-Match: *`): it stores the
batch unless its key exists. When it does, the stored bytes are read back: the same bytes are
a re-delivery (nothing to write), other bytes are a conflicting re-send, which must not
replace what is stored (the caller keeps it under errors/).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

STORED, DUPLICATE, CONFLICT = "stored", "duplicate", "conflict"


@dataclass(frozen=True)
class RawWrite:
    """What became of a batch's bytes: stored, a duplicate of the stored ones, or a conflict."""

    outcome: str
    key: str
    stored_ms: int
    version: str | None = None  # of the object written, or of the one found


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3RawArchive:
    """Writes batches to the raw bucket without ever replacing one."""

    def __init__(self, s3_client: Any, bucket: str) -> None:
        self._s3 = s3_client
        self._bucket = bucket

    def keep(self, key: str, body: bytes) -> RawWrite:
        try:
            response = self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except Exception as exc:
            # 412: the key exists. (S3 answers 409 to two such writes at the same instant: the
            # invocation fails and its retry finds the winner's object.)
            if _code(exc) not in ("PreconditionFailed", "412"):
                raise
            return self._compare(key, body)
        return RawWrite(STORED, key, _now_ms(), response.get("VersionId"))

    def _compare(self, key: str, body: bytes) -> RawWrite:
        current = self._s3.get_object(Bucket=self._bucket, Key=key)
        same = current["Body"].read() == body
        return RawWrite(DUPLICATE if same else CONFLICT, key, _now_ms(), current.get("VersionId"))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
