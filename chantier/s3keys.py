"""Object key layout of the raw bucket (Hive-style partitions for Athena)."""

from __future__ import annotations

from datetime import UTC, datetime

RAW_PREFIX = "raw/"
ERRORS_PREFIX = "errors/"


def utc_date(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def raw_key(site: str, thing: str, sent_at_ms: int, boot: str, seq: int) -> str:
    """Key of a batch; a re-sent batch maps to the same key, so it becomes a new version."""
    return f"{RAW_PREFIX}site={site}/thing={thing}/date={utc_date(sent_at_ms)}/{boot}-{seq}.json"


def error_key(reason: str, received_at_ms: int, unique: str) -> str:
    """Key of a message kept for inspection because it failed validation or a rule action."""
    date = utc_date(received_at_ms)
    return f"{ERRORS_PREFIX}reason={reason}/date={date}/{received_at_ms}-{unique}.json"
