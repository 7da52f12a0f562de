"""What the dashboard shows, assembled from the alert store and the readings (no AWS here)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from chantier.alerts.fields import field_value
from chantier.alerts.rules import THING_SENSOR, RuleSet
from cloud.alerts.records import AlertKey, AlertState, State, Transition
from cloud.dashboard.status import (
    chart_levels,
    machine_status,
    offline_minutes,
    reading_levels,
    sort_rank,
    worst,
)

SEVERITIES = ("info", "warning", "critical")
_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
HISTORY_LIMIT = 50
DEFAULT_WINDOW_MS = 30 * 60_000
FIELDS = ("temperature", "humidity", "pressure")


class UnknownMachineError(LookupError):
    """No machine of that name has ever sent data or had an alert."""


class DashboardReader(Protocol):
    """Read access to machines, their health and their readings."""

    def machines(self) -> list[dict[str, Any]]:
        """Every machine heard from: thing, site, equipment, lastSeen (epoch ms)."""
        ...

    def machine(self, thing: str) -> dict[str, Any] | None: ...

    def health(self, thing: str) -> dict[str, Any] | None:
        """The last health message the machine sent, with `receivedAt`."""
        ...

    def latest(self, thing: str, sensor_id: str) -> dict[str, Any] | None: ...

    def series(
        self, thing: str, sensor_id: str, start_ms: int, end_ms: int, limit: int
    ) -> list[dict[str, Any]]:
        """Readings of one sensor in [start, end], oldest first, the newest `limit` of them."""
        ...

    def run_batches(self, run_id: str) -> list[dict[str, Any]]:
        """The batches of a run: thing, sentAt, storedAt (epoch ms), count."""
        ...


class AlertReader(Protocol):
    def list_states(
        self, *, site: str | None = None, thing: str | None = None, open_only: bool = True
    ) -> list[AlertState]: ...

    def history(self, key: AlertKey, limit: int = 100) -> list[Transition]: ...

    def get_state(self, key: AlertKey) -> AlertState | None: ...


def epoch_ms() -> int:
    return time.time_ns() // 1_000_000


# States whose value is no longer the one that fired them: show that one too.
_FIRED_STATES = (State.LATCHED, State.ACKNOWLEDGED, State.SNOOZED)


def alert_dict(
    state: AlertState, rules: RuleSet, fired: Transition | None = None
) -> dict[str, Any]:
    """The JSON form of an alert state, with the rule's description for people.

    `pendingSince`: when a level was crossed whose rule's `for` has not elapsed yet (no alert,
    or a worse severity to come); `firedValue`/`firedAt`: what the alert fired on (`fired`,
    its last transition to ACTIVE), since a latched alert's value is the one that cleared it.
    """
    rule = rules.find(state.equipment or None, state.key.rule)
    pending = (state.memory or {}).get("pending")
    return {
        "thing": state.key.thing,
        "sensorId": state.key.sensor,
        "rule": state.key.rule,
        "site": state.site,
        "equipment": state.equipment,
        "state": str(state.state),
        "severity": state.severity,
        "since": state.since,
        "value": state.value,
        "snoozedUntil": state.snoozed_until,
        "description": rule.description if rule else "",
        "pendingSince": int(pending) if isinstance(pending, int | float) else None,
        "forS": rule.for_s if rule else 0,
        "firedValue": fired.value if fired is not None else None,
        "firedAt": fired.at if fired is not None else None,
    }


def _is_pending(state: AlertState) -> bool:
    return isinstance((state.memory or {}).get("pending"), int | float)


def _sorted_alerts(alerts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        alerts,
        key=lambda a: (_SEVERITY_RANK.get(str(a.get("severity")), 3), -int(a.get("since") or 0)),
    )


@dataclass
class DashboardService:
    """Answers of the dashboard routes; operator actions go through the alert engine."""

    reader: DashboardReader
    alerts: AlertReader
    rules: RuleSet
    engine: Any = None  # cloud.alerts.engine.AlertEngine, for operator actions
    clock: Callable[[], int] = epoch_ms

    def sites(self) -> list[dict[str, Any]]:
        by_site: dict[str, list[dict[str, Any]]] = {}
        for machine in self.reader.machines():
            by_site.setdefault(str(machine.get("site") or ""), []).append(machine)
        out = []
        for site in sorted(by_site):
            open_alerts = self.alerts.list_states(site=site, open_only=True)
            statuses = self._statuses(by_site[site], open_alerts)
            out.append(
                {
                    "site": site,
                    "machines": len(by_site[site]),
                    "openAlerts": len(open_alerts),
                    "status": worst(statuses.values()),
                }
            )
        return out

    def site_machines(self, site: str) -> dict[str, Any]:
        """A site's machines, worst first: critical, offline, warning, pending, ok."""
        machines = [m for m in self.reader.machines() if m.get("site") == site]
        now = self.clock()
        rows = []
        for machine in machines:
            thing = str(machine["thing"])
            equipment = str(machine.get("equipment") or "")
            states = self.alerts.list_states(thing=thing, open_only=False)
            alerts = self._alert_views([s for s in states if s.is_open])
            pending = [alert_dict(s, self.rules) for s in states if _is_pending(s)]
            readings = self._latest_readings(thing, equipment, self._sensor_ids(thing, states))
            status = machine_status(
                alerts,
                _int(machine.get("lastSeen")),
                now,
                offline_minutes(self.rules, equipment),
                pending=bool(pending),
            )
            rows.append(
                {
                    **machine,
                    "status": status,
                    "readings": readings,
                    "lastReadingAt": max((r["ts"] for r in readings.values()), default=None),
                    "openAlerts": _sorted_alerts(alerts),
                    "pending": pending,
                }
            )
        rows.sort(key=lambda row: (sort_rank(row["status"]), str(row["thing"])))
        return {
            "site": site,
            "now": now,
            "status": worst(row["status"] for row in rows),
            "machines": rows,
        }

    def machine(self, thing: str) -> dict[str, Any]:
        machine = self.reader.machine(thing)
        states = self.alerts.list_states(thing=thing, open_only=False)
        if machine is None and not states:
            raise UnknownMachineError(
                f"machine {thing[:80]!r} is unknown: it never sent data nor had an alert"
            )
        if machine is None:
            first = states[0]
            machine = {
                "thing": thing,
                "site": first.site,
                "equipment": first.equipment,
                "lastSeen": None,
            }
        equipment = str(machine.get("equipment") or "")
        open_alerts = self._alert_views([s for s in states if s.is_open])
        pending = [alert_dict(s, self.rules) for s in states if _is_pending(s)]
        history: list[dict[str, Any]] = []
        for state in states:
            history += [t.as_dict() for t in self.alerts.history(state.key, HISTORY_LIMIT)]
        history.sort(key=lambda t: (t["at"], t["version"]), reverse=True)
        sensors = self._sensor_ids(thing, states)
        return {
            **machine,
            "status": machine_status(
                open_alerts,
                _int(machine.get("lastSeen")),
                self.clock(),
                offline_minutes(self.rules, equipment),
                pending=bool(pending),
            ),
            "now": self.clock(),
            "health": self.reader.health(thing),
            "alerts": _sorted_alerts(
                [*open_alerts, *(alert_dict(s, self.rules) for s in states if not s.is_open)]
            ),
            "pending": pending,
            "history": history[:HISTORY_LIMIT],
            "sensors": sensors,
            "readings": self._latest_readings(thing, equipment, sensors),
            "levels": {s: chart_levels(self.rules, equipment, s) for s in sensors},
        }

    def readings(
        self, thing: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> dict[str, Any]:
        end = end_ms if end_ms is not None else self.clock()
        start = start_ms if start_ms is not None else end - DEFAULT_WINDOW_MS
        start = min(start, end)  # `from` in the future: an empty window, not an error
        series = {
            sensor: [
                _with_dew_point(r) for r in self.reader.series(thing, sensor, start, end, limit)
            ]
            for sensor in self._sensor_ids(thing)
        }
        return {"thing": thing, "from": start, "to": end, "series": series}

    def run(self, run_id: str, start_ms: int, end_ms: int | None) -> dict[str, Any]:
        """A run's machines, batch latency (sentAt to stored) and alert transitions."""
        end = end_ms if end_ms is not None else self.clock()
        batches = self.reader.run_batches(run_id)
        latencies = sorted(
            int(b["storedAt"]) - int(b["sentAt"])
            for b in batches
            if isinstance(b.get("storedAt"), int) and isinstance(b.get("sentAt"), int)
        )
        things = sorted({str(b["thing"]) for b in batches if b.get("thing")})
        transitions: list[dict[str, Any]] = []
        for thing in things:
            for state in self.alerts.list_states(thing=thing, open_only=False):
                transitions += [
                    {**t.as_dict(), "description": _description(self.rules, state)}
                    for t in self.alerts.history(state.key, HISTORY_LIMIT)
                    if start_ms <= t.at <= end
                ]
        transitions.sort(key=lambda t: (t["at"], t["version"]))
        return {
            "runId": run_id,
            "machines": things,
            "batches": len(batches),
            "readings": sum(int(b.get("count") or 0) for b in batches),
            "latencyMs": _latency_figures(latencies),
            "transitions": transitions,
        }

    def open_alerts(self, site: str | None, severities: set[str] | None) -> list[dict[str, Any]]:
        sites = [site] if site else sorted({str(m.get("site")) for m in self.reader.machines()})
        out = []
        for name in sites:
            states = [
                s
                for s in self.alerts.list_states(site=name, open_only=True)
                if not severities or s.severity in severities
            ]
            out += self._alert_views(states)
        return _sorted_alerts(out)

    def acknowledge(self, key: AlertKey, who: str, note: str = "") -> dict[str, Any]:
        """Acknowledge through the engine, which records who did it and notifies."""
        moved = self.engine.acknowledge(key.thing, key.sensor, key.rule, who, note)
        return self._action_result(key, moved)

    def snooze(self, key: AlertKey, who: str, minutes: float, note: str = "") -> dict[str, Any]:
        until = self.clock() + int(minutes * 60_000)
        moved = self.engine.snooze(key.thing, key.sensor, key.rule, who, until, note)
        return self._action_result(key, moved)

    # ---- internals -----------------------------------------------------------------------

    def _alert_views(self, states: list[AlertState]) -> list[dict[str, Any]]:
        """Alert dicts; those no longer showing the value that fired them get it back."""
        out = []
        for state in states:
            fired = None
            if state.state in _FIRED_STATES:
                fired = next(
                    (
                        t
                        for t in reversed(self.alerts.history(state.key, HISTORY_LIMIT))
                        if t.to_state is State.ACTIVE
                    ),
                    None,
                )
            out.append(alert_dict(state, self.rules, fired))
        return out

    def _action_result(self, key: AlertKey, moved: Transition | None) -> dict[str, Any]:
        state = self.alerts.get_state(key)
        return {
            "transition": moved.as_dict() if moved is not None else None,
            "alert": self._alert_views([state])[0] if state is not None else None,
        }

    def _statuses(
        self, machines: list[dict[str, Any]], open_states: list[AlertState]
    ) -> dict[str, str]:
        now = self.clock()
        out = {}
        for machine in machines:
            thing = str(machine["thing"])
            alerts = [
                {"rule": s.key.rule, "severity": s.severity}
                for s in open_states
                if s.key.thing == thing
            ]
            out[thing] = machine_status(
                alerts,
                _int(machine.get("lastSeen")),
                now,
                offline_minutes(self.rules, str(machine.get("equipment") or "")),
            )
        return out

    def _sensor_ids(self, thing: str, states: list[AlertState] | None = None) -> list[str]:
        # Readings are keyed by (thing, sensor) with no index by thing alone; the sensors the
        # agent reports in its health message and those with alert state name them all.
        ids: set[str] = set()
        health = self.reader.health(thing)
        for sensor in (health or {}).get("sensors") or []:
            if isinstance(sensor, dict) and isinstance(sensor.get("sensorId"), str):
                ids.add(sensor["sensorId"])
        if states is None:
            states = self.alerts.list_states(thing=thing, open_only=False)
        ids.update(s.key.sensor for s in states if s.key.sensor != THING_SENSOR)
        return sorted(ids)

    def _latest_readings(
        self, thing: str, equipment: str, sensors: list[str]
    ) -> dict[str, dict[str, Any]]:
        """Each sensor's newest reading, with its dew point and the level each value is at."""
        out = {}
        for sensor in sensors:
            reading = self.reader.latest(thing, sensor)
            if reading is not None:
                reading = _with_dew_point(reading)
                reading["levels"] = reading_levels(self.rules, equipment, sensor, reading)
                out[sensor] = reading
        return out


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _with_dew_point(reading: dict[str, Any]) -> dict[str, Any]:
    """The reading with its dew point and dew-point margin (°C) when it has a humidity."""
    out = dict(reading)
    for name in ("dewPoint", "dewPointMargin"):
        value = field_value(reading, name)
        if value is not None:
            out[name] = round(value, 2)
    return out


def _description(rules: RuleSet, state: AlertState) -> str:
    rule = rules.find(state.equipment or None, state.key.rule)
    return rule.description if rule else ""


def _latency_figures(ordered: list[int]) -> dict[str, int | None]:
    """Nearest-rank p50, p95, p99 and max of sorted latencies (None without any)."""
    if not ordered:
        return {"p50": None, "p95": None, "p99": None, "max": None}

    def rank(fraction: float) -> int:
        return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]

    return {"p50": rank(0.5), "p95": rank(0.95), "p99": rank(0.99), "max": ordered[-1]}
