"""Machine status colours and chart levels from the rules file."""

from __future__ import annotations

from chantier.alerts.rules import load_rules
from cloud.dashboard.status import chart_levels, machine_status, offline_minutes, worst

NOW = 1_800_000_000_000
RULES = load_rules()


def test_status_is_worst_open_severity_and_info_stays_ok() -> None:
    recent = NOW - 30_000
    assert machine_status([], recent, NOW, 10) == "ok"
    assert machine_status([{"rule": "condensation", "severity": "info"}], recent, NOW, 10) == "ok"
    warning = {"rule": "sensor-fault-range", "severity": "warning"}
    critical = {"rule": "engine-overheat", "severity": "critical"}
    assert machine_status([warning], recent, NOW, 10) == "warning"
    assert machine_status([warning, critical], recent, NOW, 10) == "critical"


def test_silence_or_an_offline_alert_means_offline() -> None:
    assert machine_status([], None, NOW, 10) == "offline"
    assert machine_status([], NOW - 11 * 60_000, NOW, 10) == "offline"
    assert machine_status([], NOW - 9 * 60_000, NOW, 10) == "ok"
    offline = {"rule": "offline", "severity": "warning"}
    assert machine_status([offline], NOW, NOW, 10) == "offline"


def test_worst_orders_offline_critical_warning_ok() -> None:
    assert worst([]) == "ok"
    assert worst(["ok", "warning"]) == "warning"
    assert worst(["warning", "critical", "ok"]) == "critical"
    assert worst(["critical", "offline"]) == "offline"


def test_offline_minutes_come_from_the_rules_file_plus_the_last_seen_lag() -> None:
    # the rule's 16 minutes, plus the 2 minutes last-seen may lag behind the last message
    assert offline_minutes(RULES, "excavator") == 18


def test_chart_levels_of_an_excavator_engine() -> None:
    levels = chart_levels(RULES, "excavator", "engine")
    overheat = {(lv["severity"], lv["value"]) for lv in levels if lv["rule"] == "engine-overheat"}
    assert overheat == {("warning", 75.0), ("critical", 82.0), ("clear", 72.0)}
    assert all(lv["field"] in ("temperature", "humidity", "pressure") for lv in levels)
