"""Which readings must leave at once: those crossing a level of the alert rules file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from chantier.alerts.fields import field_value
from chantier.alerts.rules import RulesError, RuleSet, crossing_levels, load_rules

# A value hovering on a level (noise around a dew-point margin of 3.0) crosses it back and
# forth with every reading; the first crossing of a bound each way leaves at once, the same
# bound the same way again within this many seconds rides with the next batch. Crossing
# another bound (a higher level, the clear level) is news and still leaves at once.
REPEAT_AFTER_S = 60.0


class UrgencyError(ValueError):
    """The alert rules file could not be loaded for the edge check."""


class Urgency(Protocol):
    """urgent(sensor, reading) is true when the reading must not wait for a batch."""

    def urgent(self, sensor: str, reading: dict[str, Any]) -> bool: ...


class NeverUrgent:
    """No edge rules: batching only (tests and benchmarks that measure batching alone)."""

    def urgent(self, sensor: str, reading: dict[str, Any]) -> bool:
        return False


class RulesUrgency:
    """The cloud's own rules file, evaluated on each reading against the previous one."""

    def __init__(
        self,
        equipment: str,
        rules: RuleSet | None = None,
        *,
        repeat_after_s: float = REPEAT_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rules = rules if rules is not None else load_rules()
        self._equipment = equipment
        self._previous: dict[str, dict[str, Any]] = {}
        self._repeat_after_s = repeat_after_s
        self._clock = clock
        self._last_sent: dict[tuple[str, str, float, str], float] = {}

    def urgent(self, sensor: str, reading: dict[str, Any]) -> bool:
        previous = self._previous.get(sensor)
        self._previous[sensor] = reading
        crossed = crossing_levels(self._rules, self._equipment, sensor, reading, previous)
        if not crossed:
            return False
        now = self._clock()
        news = False
        fields = {b.rule_id: b.field for b in self._rules.bounds(self._equipment, sensor)}
        for rule_id, bound in crossed:
            value = field_value(reading, fields[rule_id])
            before = None if previous is None else field_value(previous, fields[rule_id])
            # Each way counts on its own: leaving a level is news as much as reaching it.
            way = "first" if before is None or value is None else "up" if value > before else "down"
            key = (sensor, rule_id, bound, way)
            last = self._last_sent.get(key)
            if last is None or now - last >= self._repeat_after_s:
                self._last_sent[key] = now
                news = True
        return news


def default_urgency(equipment: str, rules_file: Path | None) -> Urgency:
    """The rules file's check for this equipment (the packaged file unless one is given)."""
    try:
        return RulesUrgency(equipment, load_rules(rules_file))
    except RulesError as exc:
        raise UrgencyError(str(exc)) from exc
