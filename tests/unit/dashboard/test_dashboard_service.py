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
