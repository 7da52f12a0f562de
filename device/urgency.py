"""Which readings must leave at once: those crossing a level of the alert rules file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class UrgencyError(ValueError):
    """The alert rules file could not be loaded for the edge check."""


class Urgency(Protocol):
    """urgent(sensor, reading) is true when the reading must not wait for a batch."""

    def urgent(self, sensor: str, reading: dict[str, Any]) -> bool: ...


class NeverUrgent:
    """No edge rules: batching only."""

    def urgent(self, sensor: str, reading: dict[str, Any]) -> bool:
        return False


class RulesUrgency:
    """The cloud's own rules file, evaluated on each reading against the previous one."""

    def __init__(self, equipment: str, rules_file: Path | None = None) -> None:
        # imported here: the rules engine is optional on a device build
        from cloud.alerts.rules import RulesError, is_urgent, load_rules

        try:
            self._rules = load_rules(rules_file)
        except RulesError as exc:
            raise UrgencyError(str(exc)) from exc
        self._is_urgent = is_urgent
        self._equipment = equipment
        self._previous: dict[str, dict[str, Any]] = {}

    def urgent(self, sensor: str, reading: dict[str, Any]) -> bool:
        previous = self._previous.get(sensor)
        self._previous[sensor] = reading
        return self._is_urgent(self._rules, self._equipment, sensor, reading, previous)


def default_urgency(equipment: str, rules_file: Path | None) -> Urgency:
    """Rules-based check when the rules engine is installed, else batching only."""
    try:
        return RulesUrgency(equipment, rules_file)
    except ImportError:
        if rules_file is not None:
            raise UrgencyError(
                f"rules_file {rules_file} is set but the rules engine (cloud.alerts) is not "
                "installed: expected it in this build"
            ) from None
        return NeverUrgent()
