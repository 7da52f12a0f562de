"""The dashboard service over the in-memory alert store and a fake reader."""

from __future__ import annotations

from typing import Any

import pytest

from chantier.alerts.rules import load_rules
from cloud.alerts.engine import AlertEngine
from cloud.alerts.records import AlertKey, State
from cloud.alerts.store import InMemoryAlertStore
from cloud.dashboard.service import DashboardService, UnknownMachineError

NOW = 1_800_000_000_000


class FakeReader:
    def __init__(self) -> None:
        self.seen = {
            "exc-01": {"thing": "exc-01", "site": "s1", "equipment": "excavator", "lastSeen": NOW},
            "gen-01": {
                "thing": "gen-01",
                "site": "s1",
                "equipment": "generator",
                "lastSeen": NOW - 3_600_000,
            },
        }
        self.readings = {
            ("exc-01", "engine"): [
                {"ts": NOW - 1000 * i, "temperature": 90.0 - i} for i in range(5)
            ][::-1]
        }

    def machines(self) -> list[dict[str, Any]]:
        return list(self.seen.values())

    def machine(self, thing: str) -> dict[str, Any] | None:
        return self.seen.get(thing)

    def health(self, thing: str) -> dict[str, Any] | None:
        if thing != "exc-01":
            return None
        return {"sensors": [{"sensorId": "engine"}], "queue": {"depth": 0}}

    def latest(self, thing: str, sensor_id: str) -> dict[str, Any] | None:
        series = self.readings.get((thing, sensor_id))
        return series[-1] if series else None

    def series(self, thing: str, sensor_id: str, start: int, end: int, limit: int) -> list[Any]:
        rows = [r for r in self.readings.get((thing, sensor_id), []) if start <= r["ts"] <= end]
        return rows[-limit:]


@pytest.fixture
def service() -> DashboardService:
    store = InMemoryAlertStore()
    engine = AlertEngine(load_rules(), store, clock=lambda: NOW)
    batch = {
        "thing": "exc-01",
        "site": "s1",
        "equipment": "excavator",
        "boot": "ab12cd34",
        "seq": 1,
        "sentAt": NOW,
        "readings": [
            {"sensorId": "engine", "ts": NOW - 60_000 + i * 5000, "temperature": 83.0}
            for i in range(13)
        ],
    }
    engine.process_batch(batch)
    return DashboardService(FakeReader(), store, engine.rules, engine=engine, clock=lambda: NOW)


def test_site_machines_colour_silent_machines_offline(service: DashboardService) -> None:
    data = service.site_machines("s1")
    status = {m["thing"]: m["status"] for m in data["machines"]}
    assert status == {"exc-01": "critical", "gen-01": "offline"}
    assert data["status"] == "offline"
    exc = next(m for m in data["machines"] if m["thing"] == "exc-01")
    assert exc["readings"]["engine"]["temperature"] == 90.0


def test_acknowledge_and_snooze_record_the_user(service: DashboardService) -> None:
    key = AlertKey("exc-01", "engine", "engine-overheat")
    result = service.acknowledge(key, "marie", "on it")
    assert result["alert"]["state"] == str(State.ACKNOWLEDGED)
    assert result["transition"]["who"] == "marie"
    result = service.snooze(key, "marie", 15)
    assert result["alert"]["snoozedUntil"] == NOW + 15 * 60_000
    assert service.open_alerts("s1", None) == []


def test_unknown_machine_and_filters(service: DashboardService) -> None:
    with pytest.raises(UnknownMachineError, match="never sent data"):
        service.machine("nope-01")
    assert [a["rule"] for a in service.open_alerts(None, {"critical"})] == ["engine-overheat"]
    assert service.open_alerts(None, {"info"}) == []
    window = service.readings("exc-01", NOW - 2500, None, 100)
    assert [r["ts"] for r in window["series"]["engine"]] == [NOW - 2000, NOW - 1000, NOW]


def _engine_batch(thing: str, equipment: str, seq: int, temps: list[float], start: int) -> dict:
    return {
        "thing": thing,
        "site": "s1",
        "equipment": equipment,
        "boot": "ab12cd34",
        "seq": seq,
        "sentAt": start + 5000 * len(temps),
        "readings": [
            {"sensorId": "engine", "ts": start + 5000 * i, "temperature": t}
            for i, t in enumerate(temps)
        ],
    }


class SiteReader(FakeReader):
    """Four machines on one site: critical, pending, latched (critical) and calm."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = {
            thing: {"thing": thing, "site": "s1", "equipment": equipment, "lastSeen": NOW}
            for thing, equipment in (
                ("a-calm", "excavator"),
                ("b-pending", "excavator"),
                ("c-latched", "generator"),
                ("exc-01", "excavator"),
            )
        }
        self.readings[("b-pending", "engine")] = [{"ts": NOW, "temperature": 83.0}]
        self.readings[("a-calm", "engine")] = [{"ts": NOW, "temperature": 61.0, "humidity": 40.0}]

    def health(self, thing: str) -> dict[str, Any] | None:
        return {"sensors": [{"sensorId": "engine"}]}

    def run_batches(self, run_id: str) -> list[dict[str, Any]]:
        return [
            {"thing": "exc-01", "sentAt": NOW - 9000, "storedAt": NOW - 8990, "count": 10},
            {"thing": "exc-01", "sentAt": NOW - 4000, "storedAt": NOW - 3970, "count": 10},
        ]


@pytest.fixture
def site() -> DashboardService:
    store = InMemoryAlertStore()
    engine = AlertEngine(load_rules(), store, clock=lambda: NOW)
    engine.process_batch(_engine_batch("exc-01", "excavator", 1, [83.0] * 13, NOW - 65_000))
    # crossed 82 two seconds ago: the rule's 10 s have not elapsed
    engine.process_batch(_engine_batch("b-pending", "excavator", 1, [83.0], NOW - 2000))
    # a generator's overheat latches: fired at 84, cleared at 60
    engine.process_batch(_engine_batch("c-latched", "generator", 1, [84.0] * 4, NOW - 60_000))
    engine.process_batch(_engine_batch("c-latched", "generator", 2, [60.0], NOW - 5000))
    engine.process_batch(_engine_batch("a-calm", "excavator", 1, [61.0], NOW - 1000))
    return DashboardService(SiteReader(), store, engine.rules, engine=engine, clock=lambda: NOW)


def test_machines_worst_first_with_a_pending_state(site: DashboardService) -> None:
    data = site.site_machines("s1")
    assert [(m["thing"], m["status"]) for m in data["machines"]] == [
        ("c-latched", "critical"),  # latched: cleared but never acknowledged
        ("exc-01", "critical"),
        ("b-pending", "pending"),
        ("a-calm", "ok"),
    ]
    pending = next(m for m in data["machines"] if m["thing"] == "b-pending")
    assert pending["openAlerts"] == []
    assert pending["pending"][0]["rule"] == "engine-overheat"
    assert pending["pending"][0]["pendingSince"] == NOW - 2000
    assert pending["pending"][0]["forS"] == 10


def test_values_carry_their_level_and_dew_point(site: DashboardService) -> None:
    machines = {m["thing"]: m for m in site.site_machines("s1")["machines"]}
    assert machines["b-pending"]["readings"]["engine"]["levels"] == {"temperature": "critical"}
    calm = machines["a-calm"]["readings"]["engine"]
    assert calm["levels"] == {} and 0 < calm["dewPoint"] < calm["temperature"]


def test_a_latched_alert_shows_the_value_that_fired_it(site: DashboardService) -> None:
    alert = site.machine("c-latched")["alerts"][0]
    assert alert["state"] == "LATCHED" and alert["value"] == 60.0
    assert alert["firedValue"] == 84.0 and alert["firedAt"] is not None


def test_run_activity_has_latency_and_the_run_window_transitions(
    site: DashboardService,
) -> None:
    activity = site.run("r" * 32, NOW - 70_000, None)
    assert activity["machines"] == ["exc-01"] and activity["readings"] == 20
    assert activity["latencyMs"] == {"p50": 10, "p95": 30, "p99": 30, "max": 30}
    assert [t["to"] for t in activity["transitions"]] == ["ACTIVE"]
    assert site.run("r" * 32, NOW + 1, None)["transitions"] == []
