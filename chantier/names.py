"""Names of sites, things and sensors, and the MQTT topics built from them."""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
_NAME_RE = re.compile(NAME_PATTERN)

TOPIC_ROOT = "dt/chantier"
KINDS = ("telemetry", "health")
# Names under this prefix belong to the system's own identities (the local rules engine, its
# observer): no device may be provisioned under one, so no certificate can claim them.
RESERVED_PREFIX = "chantier-"
RULES_ENGINE_IDENTITY = "chantier-rules-engine"
OBSERVER_IDENTITY = "chantier-observer"


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


def is_reserved(name: str) -> bool:
    """True for a name kept for the system's own identities."""
    return name.startswith(RESERVED_PREFIX)


def check_device_name(value: object) -> str:
    """A valid thing name that is not reserved, else InvalidNameError."""
    name = check_name("thing", value)
    if is_reserved(name):
        raise InvalidNameError(
            f"thing {name!r} is reserved: names starting with {RESERVED_PREFIX!r} belong to "
            "the system's own identities; choose another name"
        )
    return name


def is_name(value: object) -> bool:
    return isinstance(value, str) and bool(_NAME_RE.match(value))


def topic(site: str, thing: str, kind: str, prefix: str = "") -> str:
    """Topic a thing publishes `kind` on, behind an optional Basic Ingest prefix.

    The prefix may hold `{kind}`, because each kind goes to its own topic rule:
    `$aws/rules/chantier_{kind}/` sends telemetry to rule `chantier_telemetry`.
    """
    check_name("site", site)
    check_name("thing", thing)
    if kind not in KINDS:
        raise TopicError(f"topic kind {kind!r} is unknown: expected one of {', '.join(KINDS)}")
    return f"{normalise_prefix(prefix, kind)}{TOPIC_ROOT}/{site}/{thing}/{kind}"


def normalise_prefix(prefix: str, kind: str = "telemetry") -> str:
    """Basic Ingest prefix for `kind`, with exactly one trailing slash, or '' when there is none."""
    prefix = prefix.strip().replace("{kind}", kind)
    if not prefix:
        return ""
    return prefix.rstrip("/") + "/"


def strip_basic_ingest(value: str) -> tuple[str | None, str]:
    """Split `$aws/rules/<rule>/<topic>` into (rule, topic); (None, topic) when not Basic Ingest."""
    if value.startswith("$aws/rules/"):
        parts = value.split("/", 3)
        if len(parts) == 4 and parts[2]:
            return parts[2], parts[3]
    return None, value


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
