"""Names of sites, things and sensors, and the MQTT topics built from them."""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
_NAME_RE = re.compile(NAME_PATTERN)

TOPIC_ROOT = "dt/chantier"
KINDS = ("telemetry", "health")


class InvalidNameError(ValueError):
    """A site, thing or sensor name does not follow the naming rule."""


class TopicError(ValueError):
    """A topic does not follow dt/chantier/<site>/<thing>/<kind>."""


def check_name(what: str, value: object) -> str:
    """Return `value` if it is a valid name, else raise InvalidNameError naming `what`."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise InvalidNameError(
            f"{what} {value!r} is not a valid name: expected 1-64 lowercase letters, digits "
            "and dashes, not starting or ending with a dash"
        )
    return value


def is_name(value: object) -> bool:
    return isinstance(value, str) and bool(_NAME_RE.match(value))


def topic(site: str, thing: str, kind: str, prefix: str = "") -> str:
    """Topic a thing publishes `kind` on, behind an optional Basic Ingest prefix."""
    check_name("site", site)
    check_name("thing", thing)
    if kind not in KINDS:
        raise TopicError(f"topic kind {kind!r} is unknown: expected one of {', '.join(KINDS)}")
    return f"{normalise_prefix(prefix)}{TOPIC_ROOT}/{site}/{thing}/{kind}"


def normalise_prefix(prefix: str) -> str:
    """Basic Ingest prefix with exactly one trailing slash, or '' when there is none."""
    prefix = prefix.strip()
    if not prefix:
        return ""
    return prefix.rstrip("/") + "/"


def basic_ingest_prefix(rule_name: str) -> str:
    return f"$aws/rules/{rule_name}/"


@dataclass(frozen=True)
class ParsedTopic:
    site: str
    thing: str
    kind: str


def parse_topic(value: str) -> ParsedTopic:
    """Split a topic (without Basic Ingest prefix) into site, thing and kind."""
    parts = value.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != TOPIC_ROOT or parts[4] not in KINDS:
        raise TopicError(
            f"topic {value!r} does not follow {TOPIC_ROOT}/<site>/<thing>/<telemetry|health>"
        )
    if not (is_name(parts[2]) and is_name(parts[3])):
        raise TopicError(f"topic {value!r} has an invalid site or thing name")
    return ParsedTopic(site=parts[2], thing=parts[3], kind=parts[4])
