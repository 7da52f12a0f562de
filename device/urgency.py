"""Which readings must leave at once: those crossing a level of the alert rules file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from chantier.alerts.rules import RulesError, RuleSet, is_urgent, load_rules


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

    def __init__(self, equipment: str, rules: RuleSet | None = None) -> None:
        self._rules = rules if rules is not None else load_rules()
        self._equipment = equipment
        self._previous: dict[str, dict[str, Any]] = {}

    def urgent(self, sensor: str, reading: dict[str, Any]) -> bool:
        previous = self._previous.get(sensor)
        self._previous[sensor] = reading
        return is_urgent(self._rules, self._equipment, sensor, reading, previous)


def default_urgency(equipment: str, rules_file: Path | None) -> Urgency:
    """The rules file's check for this equipment (the packaged file unless one is given)."""
    try:
        return RulesUrgency(equipment, load_rules(rules_file))
    except RulesError as exc:
        raise UrgencyError(str(exc)) from exc
