"""Who sent a message: the identity its channel proves, checked against what the message says.

Over MQTT the device policy lets a certificate publish only on its own thing's topic, on its own
site, so the topic rule hands the function the topic's site and thing; over HTTP the API has
checked the caller (cloud/api/sensors.py). Equipment comes from the thing registry, a run from
the run's own list of machines. A message whose identity fields say anything else is refused:
it could otherwise open or silence alerts, refresh last-seen or write readings for a machine,
a site or a run that is not the sender's.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from chantier.names import is_name
from cloud.ingest.validation import Rejection

MQTT, HTTP = "mqtt", "http"
KINDS = ("telemetry", "health")
# Reasons of a refusal for identity, as kept under errors/reason=<reason>/ and counted.
IDENTITY_REASONS = frozenset({"identity-mismatch", "unknown-thing", "run-not-member"})


@dataclass(frozen=True)
class Source:
    """Who a message comes from, as its channel proves it (never as the message says)."""

    site: str
    thing: str
    received_ms: int
    channel: str = MQTT
    # Only over HTTP, for a machine that is not a registered device but one of the caller's
    # run: the API vouches for its equipment (there is no registry entry to take it from).
    equipment: str | None = None
    # Only over HTTP: the run the API has checked the caller may write into for this machine.
    run_id: str | None = None


@dataclass(frozen=True)
class ThingInfo:
    """What the registry says of a thing."""

    thing: str
    site: str
    equipment: str


class ThingDirectory(Protocol):
    """The thing registry, read-only: None for a thing it does not know."""

    def lookup(self, thing: str) -> ThingInfo | None: ...


class RunMembers(Protocol):
    """The machines a run was started with (empty for an unknown run or one without a list)."""

    def members(self, run_id: str) -> frozenset[str]: ...


class RuleEventError(ValueError):
    """An event is not what the topic rules hand the ingest function."""


def source_from_rule(event: Any, now_ms: int) -> tuple[str, bytes, Source]:
    """(kind, the message's bytes, its source) from a topic rule's event.

    The rules select ``encode(*, 'base64') AS payload, topic(3) AS site, topic(4) AS thing,
    topic(5) AS kind, timestamp() AS receivedAt``: the bytes exactly as published, the site and
    thing of the topic the device policy authorised.
    """
    if not isinstance(event, dict):
        raise RuleEventError("event is not a JSON object: expected a topic rule's event")
    kind, site, thing = event.get("kind"), event.get("site"), event.get("thing")
    if kind not in KINDS or not is_name(site) or not is_name(thing):
        raise RuleEventError(
            f"event kind {kind!r:.20}, site {site!r:.70}, thing {thing!r:.70}: expected "
            "telemetry or health and the topic's site and thing (topic(5), topic(3), topic(4))"
        )
    payload = event.get("payload")
    if not isinstance(payload, str):
        raise RuleEventError("event has no payload: expected the message as encode(*, 'base64')")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise RuleEventError("event payload is not base64: expected encode(*, 'base64')") from None
    received = event.get("receivedAt")
    if isinstance(received, bool) or not isinstance(received, int) or received <= 0:
        received = now_ms  # the rule's timestamp() is the better clock; this one is close
    return str(kind), raw, Source(site=str(site), thing=str(thing), received_ms=received)


def bind(
    message: dict[str, Any], source: Source, things: ThingDirectory, runs: RunMembers
) -> Rejection | None:
    """None when every identity field of a valid message is its sender's; else why not."""
    for name in ("thing", "site"):
        said, proven = message.get(name), getattr(source, name)
        if said != proven:
            return Rejection(
                "identity-mismatch",
                f"{name} {said!r} in the message but {proven!r} by its {_by(source)}: "
                "a machine speaks only for itself",
            )
    equipment = source.equipment
    if equipment is None:
        info = things.lookup(source.thing)
        if info is None:
            return Rejection(
                "unknown-thing",
                f"thing {source.thing!r} is not in the registry: expected a provisioned thing",
            )
        if info.site and info.site != source.site:
            return Rejection(
                "identity-mismatch",
                f"site {source.site!r}, but the registry puts thing {source.thing!r} on "
                f"site {info.site!r}",
            )
        equipment = info.equipment
    if message.get("equipment") != equipment:
        return Rejection(
            "identity-mismatch",
            f"equipment {message.get('equipment')!r} in the message, but thing "
            f"{source.thing!r} is a {equipment!r} in the registry",
        )
    run_id = message.get("runId")
    if run_id and run_id != source.run_id and source.thing not in runs.members(run_id):
        return Rejection(
            "run-not-member",
            f"run {run_id!r} was not started with thing {source.thing!r}: a machine writes "
            "only into a run that lists it",
        )
    return None


def _by(source: Source) -> str:
    return "topic" if source.channel == MQTT else "request"


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Values loaded on demand and kept for a while; an empty answer is kept for less.

    Written here rather than taken from a library: it is the only cache the functions need,
    and the Lambda zip carries no third-party code (boto3, Powertools and pydantic come with
    the runtime and its layer).
    """

    def __init__(
        self,
        load: Callable[[K], V],
        ttl_s: float,
        empty_ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._empty_ttl_s = empty_ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def has(self, key: K) -> bool:
        """Whether `get(key)` would answer without loading."""
        return self._unexpired(key, self._clock()) is not None

    def get(self, key: K) -> V:
        now = self._clock()
        entry = self._unexpired(key, now)
        if entry is not None:
            return entry[1]
        value = self._load(key)
        ttl = self._ttl_s if value else self._empty_ttl_s
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()  # rare (a fleet above max_entries): start over
            self._entries[key] = (now + ttl, value)
        return value

    def _unexpired(self, key: K, now: float) -> tuple[float, V] | None:
        with self._lock:
            entry = self._entries.get(key)
        return entry if entry is not None and entry[0] > now else None


class CachedThings:
    """A ThingDirectory whose answers are kept `ttl_s` (an unknown thing for less)."""

    def __init__(self, inner: ThingDirectory, ttl_s: float, empty_ttl_s: float = 30.0) -> None:
        self._cache: TtlCache[str, ThingInfo | None] = TtlCache(inner.lookup, ttl_s, empty_ttl_s)

    def lookup(self, thing: str) -> ThingInfo | None:
        return self._cache.get(thing)

    def has(self, thing: str) -> bool:
        return self._cache.has(thing)


def answers_at_once(things: ThingDirectory, thing: str) -> bool:
    """Whether `things` knows `thing` without asking the registry (a warm cache)."""
    return isinstance(things, CachedThings) and things.has(thing)


class CachedRuns:
    """RunMembers whose answers are kept `ttl_s` (a run without members for less)."""

    def __init__(self, inner: RunMembers, ttl_s: float, empty_ttl_s: float = 30.0) -> None:
        self._cache: TtlCache[str, frozenset[str]] = TtlCache(inner.members, ttl_s, empty_ttl_s)

    def members(self, run_id: str) -> frozenset[str]:
        return self._cache.get(run_id)
