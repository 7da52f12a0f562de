"""Alert states, the allowed transitions between them, and the records the store keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class State(StrEnum):
    NORMAL = "NORMAL"
    ACTIVE = "ACTIVE"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    LATCHED = "LATCHED"  # condition cleared, but the rule requires an acknowledgement first
    SNOOZED = "SNOOZED"  # evaluated silently until `snoozed_until`
    DISABLED = "DISABLED"  # not evaluated at all


# Every edge a transition may take. ACTIVE -> ACTIVE is a severity change (escalation or
# de-escalation), SNOOZED -> SNOOZED an extended snooze; no other self-edge exists.
ALLOWED: dict[State, frozenset[State]] = {
    State.NORMAL: frozenset({State.ACTIVE, State.SNOOZED, State.DISABLED}),
    State.ACTIVE: frozenset(
        {
            State.ACTIVE,
            State.ACKNOWLEDGED,
            State.NORMAL,
            State.LATCHED,
            State.SNOOZED,
            State.DISABLED,
        }
    ),
    State.ACKNOWLEDGED: frozenset({State.ACTIVE, State.NORMAL, State.SNOOZED, State.DISABLED}),
    State.LATCHED: frozenset({State.ACTIVE, State.NORMAL, State.SNOOZED, State.DISABLED}),
    State.SNOOZED: frozenset({State.SNOOZED, State.ACTIVE, State.NORMAL, State.DISABLED}),
    State.DISABLED: frozenset({State.NORMAL}),
}
# Alerts an operator still has to look at (dashboards, `chantier alerts list`).
OPEN_STATES = frozenset({State.ACTIVE, State.ACKNOWLEDGED, State.LATCHED})
SYSTEM = "system"


class InvalidTransitionError(ValueError):
    """An operator action is not allowed from the alert's current state."""


@dataclass(frozen=True, order=True)
class AlertKey:
    thing: str
    sensor: str
    rule: str

    def __str__(self) -> str:
        return f"{self.thing}/{self.sensor}/{self.rule}"


@dataclass
class AlertState:
    """Current state of one (thing, sensor, rule), with the detector's memory."""

    key: AlertKey
    site: str = ""
    equipment: str = ""
    state: State = State.NORMAL
    severity: str | None = None
    since: int = 0  # epoch ms of the last transition
    value: float | None = None
    version: int = 0  # 0 = never stored; the store's conditional writes compare it
    last_ts: int = 0  # newest reading time applied: older readings are ignored
    condition: str | None = None  # severity the detector currently reports, None when clear
    snoozed_until: int | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    updated_at: int = 0

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def copy(self) -> AlertState:
        return AlertState(
            key=self.key,
            site=self.site,
            equipment=self.equipment,
            state=self.state,
            severity=self.severity,
            since=self.since,
            value=self.value,
            version=self.version,
            last_ts=self.last_ts,
            condition=self.condition,
            snoozed_until=self.snoozed_until,
            memory=_deep_copy(self.memory),
            updated_at=self.updated_at,
        )


@dataclass(frozen=True)
class Transition:
    """One recorded change of state; `version` is the state version it produced."""

    key: AlertKey
    site: str
    from_state: State
    to_state: State
    severity: str | None
    at: int
    value: float | None
    who: str
    note: str
    reason: str
    version: int
    equipment: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, as logged and sent in notifications."""
        return {
            "thing": self.key.thing,
            "sensorId": self.key.sensor,
            "rule": self.key.rule,
            "site": self.site,
            "equipment": self.equipment,
            "from": str(self.from_state),
            "to": str(self.to_state),
            "severity": self.severity,
            "at": self.at,
            "value": self.value,
            "who": self.who,
            "note": self.note,
            "reason": self.reason,
            "version": self.version,
        }


@dataclass
class ThingSeen:
    """When a machine last sent data, for the offline check."""

    thing: str
    site: str
    equipment: str
    last_seen: int  # epoch ms, server clock


def _deep_copy(value: Any) -> Any:
    # Memory holds only JSON types; this is several times faster than copy.deepcopy.
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
