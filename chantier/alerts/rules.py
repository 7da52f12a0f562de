"""Alert rules: load and validate the versioned rules file, and the edge agent's urgency check.

The rules file (``chantier/alerts/rules/alert-rules.json``) holds ``version``, ``defaults`` (rules
every machine gets) and ``profiles`` (rules per equipment type; a profile rule with the id of a
default rule replaces it). :func:`load_rules` validates everything at load and raises
:class:`RulesError` naming the file, the rule and the field at fault.

Edge agent API (pure Python, no I/O after loading)::

    rules = load_rules()                      # once, at start
    if is_urgent(rules, "excavator", "engine", reading, previous):
        publish_now()                         # do not wait for the batch

``is_urgent`` is true when ``reading`` lies on the other side of any level, clear level or
valid-range bound than ``previous`` (the last reading of the same sensor), or, without a
previous reading, when it is already beyond a level. ``crossing_levels`` returns which rule and
bound were crossed. Both only compare floats against bounds precomputed once per (equipment,
sensor): a few microseconds per reading. Rate, stuck, offline and data-loss rules need history
and are evaluated in the cloud only, as are sensor-status rules, which follow the status the
agent reports for each sensor in its health messages.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chantier.alerts.fields import FIELDS, RAW_FIELDS, field_value

DEFAULT_RULES_FILE = Path(__file__).with_name("rules") / "alert-rules.json"
SEVERITIES = ("info", "warning", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
KINDS = ("threshold", "rate", "range", "stuck", "offline", "dataloss", "sensorstatus")
# Offline and data-loss concern the whole machine: their alerts use this sensor id.
THING_SENSOR = "*"
# The sensor a machine gets when its rules name none in particular.
DEFAULT_SENSOR = "ambient"
THING_KINDS = ("offline", "dataloss")
# Evaluated on health messages, per sensor, rather than on readings.
HEALTH_KINDS = ("sensorstatus",)
EQUIPMENT = ("excavator", "crane", "generator", "compressor", "concrete-mixer", "site-cabin")
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

_COMMON_KEYS = {"id", "kind", "description", "severity", "latch"}
_KIND_KEYS = {
    "threshold": {"sensors", "field", "direction", "levels", "clear", "for"},
    "rate": {"sensors", "field", "direction", "levels", "clear", "for", "window", "minSpan"},
    "range": {"sensors", "field", "min", "max", "for"},
    "stuck": {"sensors", "field", "seconds", "tolerance"},
    "offline": {"minutes"},
    "dataloss": set(),
    "sensorstatus": {"sensors"},
}


class RulesError(ValueError):
    """The rules file is invalid; the message names the file, rule and field."""


@dataclass(frozen=True)
class Level:
    severity: str
    at: float


@dataclass(frozen=True)
class Rule:
    """One validated rule; fields not used by its kind keep their defaults."""

    id: str
    kind: str
    description: str = ""
    sensors: tuple[str, ...] = (THING_SENSOR,)
    field: str = "temperature"
    direction: str = "above"
    levels: tuple[Level, ...] = ()
    clear: float | None = None
    for_s: float = 0.0
    latch: bool = False
    window_s: float = 0.0
    min_span_s: float = 0.0
    seconds: float = 0.0
    tolerance: float = 0.0
    min: float | None = None
    max: float | None = None
    minutes: float = 0.0
    severity: str | None = None

    def matches(self, sensor_id: str) -> bool:
        """Whether this rule watches the sensor (glob patterns on the sensor id)."""
        return any(fnmatch.fnmatchcase(sensor_id, pattern) for pattern in self.sensors)

    @property
    def thing_level(self) -> bool:
        return self.kind in THING_KINDS

    @property
    def per_reading(self) -> bool:
        return self.kind not in THING_KINDS and self.kind not in HEALTH_KINDS


@dataclass
class RuleSet:
    """Validated rules file with per-(equipment, sensor) look-ups cached."""

    version: int
    defaults: tuple[Rule, ...]
    profiles: dict[str, tuple[Rule, ...]]
    source: str = "<rules>"
    _by_equipment: dict[str, tuple[Rule, ...]] = field(default_factory=dict, repr=False)
    _by_sensor: dict[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict, repr=False)
    _bounds: dict[tuple[str, str], tuple[_Bounds, ...]] = field(default_factory=dict, repr=False)

    def rules_for(self, equipment: str) -> tuple[Rule, ...]:
        """Defaults merged with the equipment's profile (profile wins on equal ids)."""
        cached = self._by_equipment.get(equipment)
        if cached is None:
            merged = {rule.id: rule for rule in self.defaults}
            merged.update({rule.id: rule for rule in self.profiles.get(equipment, ())})
            cached = self._by_equipment[equipment] = tuple(merged.values())
        return cached

    def sensor_rules(self, equipment: str, sensor_id: str) -> tuple[Rule, ...]:
        """Per-reading rules that watch this sensor."""
        key = (equipment, sensor_id)
        cached = self._by_sensor.get(key)
        if cached is None:
            cached = tuple(
                rule
                for rule in self.rules_for(equipment)
                if rule.per_reading and rule.matches(sensor_id)
            )
            self._by_sensor[key] = cached
        return cached

    def status_rules(self, equipment: str, sensor_id: str) -> tuple[Rule, ...]:
        """Sensor-status rules that watch this sensor."""
        return tuple(
            rule
            for rule in self.rules_for(equipment)
            if rule.kind in HEALTH_KINDS and rule.matches(sensor_id)
        )

    def sensors_for(self, equipment: str) -> tuple[str, ...]:
        """Sensor names under which every per-reading rule of the equipment watches a sensor.

        Named after the rules' own patterns (`ambient*` gives `ambient`), as few as possible, in
        the order the rules come; when the rules watch any sensor, one sensor named `ambient`.
        """
        rules = self.rules_for(equipment)
        pending = [r for r in rules if r.per_reading and THING_SENSOR not in r.sensors]
        names = (_name_of(pattern) for rule in pending for pattern in rule.sensors)
        candidates = [name for name in dict.fromkeys(names) if name]
        chosen: list[str] = []
        while pending and candidates:
            best = max(candidates, key=lambda name: sum(r.matches(name) for r in pending))
            if not any(r.matches(best) for r in pending):
                break
            chosen.append(best)
            pending = [r for r in pending if not r.matches(best)]
        return tuple(chosen) or (DEFAULT_SENSOR,)

    def unwatched(self, equipment: str, sensors: Sequence[str]) -> tuple[Rule, ...]:
        """The equipment's per-sensor rules that none of these sensors would ever trigger."""
        return tuple(
            rule
            for rule in self.rules_for(equipment)
            if not rule.thing_level and not any(rule.matches(name) for name in sensors)
        )

    def thing_rules(self, equipment: str, kind: str) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules_for(equipment) if rule.kind == kind)

    def find(self, equipment: str | None, rule_id: str) -> Rule | None:
        """The rule with this id for the equipment, else in any profile."""
        if equipment:
            for rule in self.rules_for(equipment):
                if rule.id == rule_id:
                    return rule
        for rules in (self.defaults, *self.profiles.values()):
            for rule in rules:
                if rule.id == rule_id:
                    return rule
        return None

    def bounds(self, equipment: str, sensor_id: str) -> tuple[_Bounds, ...]:
        key = (equipment, sensor_id)
        cached = self._bounds.get(key)
        if cached is None:
            cached = tuple(
                b for rule in self.sensor_rules(equipment, sensor_id) if (b := _bounds_of(rule))
            )
            self._bounds[key] = cached
        return cached


@dataclass(frozen=True)
class _Bounds:
    rule_id: str
    field: str
    # (bound, upward): the side of a value is `value >= bound` if upward else `value <= bound`.
    edges: tuple[tuple[float, bool], ...]
    low: float | None  # already in alarm without history when value is beyond these
    high: float | None
    strict: bool  # range rules alarm strictly outside [low, high]; thresholds at the level

    def alarm(self, value: float) -> float | None:
        """The bound a value lies beyond, None when inside."""
        if self.high is not None and (value > self.high if self.strict else value >= self.high):
            return self.high
        if self.low is not None and (value < self.low if self.strict else value <= self.low):
            return self.low
        return None


def _bounds_of(rule: Rule) -> _Bounds | None:
    if rule.kind == "threshold":
        upward = rule.direction == "above"
        edges = [(level.at, upward) for level in rule.levels]
        if rule.clear is not None:
            edges.append((rule.clear, upward))
        first = rule.levels[0].at
        low, high = (None, first) if upward else (first, None)
        return _Bounds(rule.id, rule.field, tuple(edges), low, high, strict=False)
    if rule.kind == "range":
        assert rule.min is not None and rule.max is not None
        bounds = ((rule.min, True), (rule.max, False))
        return _Bounds(rule.id, rule.field, bounds, rule.min, rule.max, strict=True)
    return None


def _name_of(pattern: str) -> str | None:
    """A sensor name a glob pattern matches (`ambient*` -> `ambient`), None if none is plain."""
    name = pattern.rstrip("*")
    return name if _ID.match(name) and fnmatch.fnmatchcase(name, pattern) else None


def crossing_levels(
    rules: RuleSet,
    equipment: str,
    sensor_id: str,
    reading: dict[str, Any],
    previous: dict[str, Any] | None = None,
) -> list[tuple[str, float]]:
    """(rule id, bound) pairs that ``reading`` crossed since ``previous`` (see module doc)."""
    crossed: list[tuple[str, float]] = []
    for bounds in rules.bounds(equipment, sensor_id):
        value = field_value(reading, bounds.field)
        if value is None:
            continue
        before = None if previous is None else field_value(previous, bounds.field)
        if before is None:
            bound = bounds.alarm(value)
            if bound is not None:
                crossed.append((bounds.rule_id, bound))
            continue
        for bound, upward in bounds.edges:
            if (value >= bound if upward else value <= bound) != (
                before >= bound if upward else before <= bound
            ):
                crossed.append((bounds.rule_id, bound))
    return crossed


def is_urgent(
    rules: RuleSet,
    equipment: str,
    sensor_id: str,
    reading: dict[str, Any],
    previous: dict[str, Any] | None = None,
) -> bool:
    """Whether the agent should publish ``reading`` at once instead of batching it."""
    return bool(crossing_levels(rules, equipment, sensor_id, reading, previous))


def load_rules(path: Path | str | None = None) -> RuleSet:
    """Read and validate a rules file (default: the one shipped with the package)."""
    target = Path(path) if path is not None else DEFAULT_RULES_FILE
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(f"{target}: rules file not found") from None
    except json.JSONDecodeError as exc:
        raise RulesError(f"{target}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return parse_rules(data, source=str(target))


def parse_rules(data: Any, source: str = "<rules>") -> RuleSet:
    """Validate an already-decoded rules document."""
    if not isinstance(data, dict):
        raise RulesError(f"{source}: expected a JSON object at the top level")
    unknown = set(data) - {"version", "description", "defaults", "profiles"}
    if unknown:
        raise RulesError(
            f"{source}: unknown top-level key(s) {sorted(unknown)}; "
            "expected version, description, defaults, profiles"
        )
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RulesError(f"{source}: 'version' must be an integer >= 1, got {version!r}")
    defaults = _parse_list(data.get("defaults", []), source, "defaults")
    profiles_raw = data.get("profiles", {})
    if not isinstance(profiles_raw, dict):
        raise RulesError(f"{source}: 'profiles' must be an object keyed by equipment type")
    profiles: dict[str, tuple[Rule, ...]] = {}
    for equipment, rules in profiles_raw.items():
        if equipment not in EQUIPMENT:
            raise RulesError(
                f"{source}: unknown profile {equipment!r}; expected one of {', '.join(EQUIPMENT)}"
            )
        profiles[equipment] = _parse_list(rules, source, f"profile {equipment}")
    return RuleSet(version=version, defaults=defaults, profiles=profiles, source=source)


def _parse_list(raw: Any, source: str, where: str) -> tuple[Rule, ...]:
    if not isinstance(raw, list):
        raise RulesError(f"{source}: {where} must be a list of rules")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        rule = _RuleParser(item, source, f"{where}, rule #{index + 1}").parse()
        if rule.id in seen:
            raise RulesError(f"{source}: {where}: rule {rule.id!r} is defined twice")
        seen.add(rule.id)
        rules.append(rule)
    return tuple(rules)


class _RuleParser:
    """Validates one rule object; every error names the rule and the field."""

    def __init__(self, raw: Any, source: str, where: str) -> None:
        self.raw = raw
        self.source = source
        self.name = where

    def fail(self, key: str, expected: str) -> RulesError:
        got = self.raw.get(key, "<missing>") if isinstance(self.raw, dict) else self.raw
        return RulesError(
            f"{self.source}: rule {self.name}, field {key!r}: expected {expected}, got {got!r}"
        )

    def number(self, key: str, default: float | None = None, positive: bool = False) -> float:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, "a number")
        if positive and value <= 0:
            raise self.fail(key, "a number > 0")
        if value < 0:
            raise self.fail(key, "a number >= 0")
        return float(value)

    def signed(self, key: str) -> float:
        value = self.raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, "a number")
        return float(value)

    def severity(self, key: str = "severity") -> str:
        value = self.raw.get(key)
        if value not in SEVERITIES:
            raise self.fail(key, f"one of {', '.join(SEVERITIES)}")
        return str(value)

    def parse(self) -> Rule:
        raw = self.raw
        if not isinstance(raw, dict):
            raise RulesError(f"{self.source}: rule {self.name}: expected an object, got {raw!r}")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not _ID.match(rule_id):
            raise self.fail("id", "lowercase letters, digits and dashes")
        self.name = repr(rule_id)
        kind = raw.get("kind")
        if kind not in KINDS:
            raise self.fail("kind", f"one of {', '.join(KINDS)}")
        unknown = set(raw) - _COMMON_KEYS - _KIND_KEYS[kind]
        if unknown:
            allowed = ", ".join(sorted(_COMMON_KEYS | _KIND_KEYS[kind]))
            raise self.fail(sorted(unknown)[0], f"only the keys of kind {kind!r}: {allowed}")
        description = raw.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", "a string")
        latch = raw.get("latch", False)
        if not isinstance(latch, bool):
            raise self.fail("latch", "true or false")
        common: dict[str, Any] = {
            "id": rule_id,
            "kind": kind,
            "description": description,
            "latch": latch,
        }
        if kind in THING_KINDS:
            common["severity"] = self.severity()
            if kind == "offline":
                common["minutes"] = self.number("minutes", positive=True)
            return Rule(**common)
        common["sensors"] = self.sensors()
        if kind in HEALTH_KINDS:
            return Rule(**common, severity=self.severity())
        common["field"] = self.field(raw_only=kind in ("rate", "stuck"))
        if kind in ("threshold", "rate"):
            return Rule(**common, **self.leveled(kind))
        if kind == "range":
            low, high = self.signed("min"), self.signed("max")
            if low >= high:
                raise self.fail("max", f"a number greater than min ({low})")
            return Rule(
                **common,
                min=low,
                max=high,
                for_s=self.number("for", 0.0),
                severity=self.severity(),
            )
        return Rule(
            **common,
            seconds=self.number("seconds", positive=True),
            tolerance=self.number("tolerance", 0.0),
            severity=self.severity(),
        )

    def sensors(self) -> tuple[str, ...]:
        value = self.raw.get("sensors")
        if isinstance(value, str):
            value = [value]
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(p, str) and p for p in value)
        ):
            raise self.fail("sensors", "a non-empty list of sensor id patterns such as 'engine*'")
        return tuple(value)

    def field(self, raw_only: bool) -> str:
        allowed = RAW_FIELDS if raw_only else FIELDS
        value = self.raw.get("field")
        if value not in allowed:
            raise self.fail("field", f"one of {', '.join(allowed)}")
        return str(value)

    def leveled(self, kind: str) -> dict[str, Any]:
        directions = ("above", "below") if kind == "threshold" else ("fall", "rise")
        direction = self.raw.get("direction")
        if direction not in directions:
            raise self.fail("direction", f"one of {', '.join(directions)}")
        levels = self.levels()
        # Rate rules compare the size of the change, so they behave like an upward threshold.
        upward = direction != "below"
        ats = [level.at for level in levels]
        if ats != sorted(ats, reverse=not upward) or len(set(ats)) != len(ats):
            order = "increasing" if upward else "decreasing"
            raise self.fail("levels", f"levels of rising severity at {order} values")
        clear = self.raw.get("clear")
        if clear is not None:
            clear = self.signed("clear")
            if (upward and clear >= ats[0]) or (not upward and clear <= ats[0]):
                side = "below" if upward else "above"
                raise self.fail("clear", f"a value {side} the first level ({ats[0]})")
        extra: dict[str, Any] = {
            "direction": direction,
            "levels": levels,
            "clear": clear,
            "for_s": self.number("for", 0.0),
        }
        if kind == "rate":
            window = self.number("window", positive=True)
            min_span = self.number("minSpan", window / 2)
            if min_span > window:
                raise self.fail("minSpan", f"at most the window ({window:g} s)")
            if ats[0] <= 0:
                raise self.fail("levels", "changes greater than 0")
            extra.update(window_s=window, min_span_s=min_span)
        return extra

    def levels(self) -> tuple[Level, ...]:
        raw = self.raw.get("levels")
        if not isinstance(raw, list) or not raw:
            raise self.fail("levels", "a non-empty list of {severity, at}")
        levels: list[Level] = []
        for item in raw:
            if (
                not isinstance(item, dict)
                or set(item) != {"severity", "at"}
                or item["severity"] not in SEVERITIES
                or isinstance(item["at"], bool)
                or not isinstance(item["at"], int | float)
            ):
                raise self.fail("levels", f"items {{severity: {'|'.join(SEVERITIES)}, at: number}}")
            levels.append(Level(item["severity"], float(item["at"])))
        ranks = [SEVERITY_RANK[level.severity] for level in levels]
        if ranks != sorted(set(ranks)):
            raise self.fail("levels", "each severity once, from least to most severe")
        return tuple(levels)
