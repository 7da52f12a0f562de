"""Rules file: loading, validation errors that name rule and field, the edge urgency check."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from support.alert_testkit import RULES

from chantier.alerts.rules import (
    EQUIPMENT,
    RulesError,
    crossing_levels,
    is_urgent,
    load_rules,
    parse_rules,
)

GOOD: dict[str, Any] = {
    "version": 3,
    "defaults": [{"id": "offline", "kind": "offline", "minutes": 10, "severity": "warning"}],
    "profiles": {
        "excavator": [
            {
                "id": "engine-overheat",
                "kind": "threshold",
                "sensors": ["engine*"],
                "field": "temperature",
                "direction": "above",
                "levels": [{"severity": "warning", "at": 75}, {"severity": "critical", "at": 82}],
                "clear": 72,
                "for": 10,
            }
        ]
    },
}


def test_packaged_file_has_a_profile_per_equipment_type() -> None:
    assert RULES.version >= 1
    assert set(RULES.profiles) == set(EQUIPMENT)
    overheat = RULES.find("excavator", "engine-overheat")
    assert overheat is not None
    assert [(lv.severity, lv.at) for lv in overheat.levels] == [
        ("warning", 75.0),
        ("critical", 82.0),
    ]
    assert overheat.clear == 72.0
    # the BME280 tops out at 85 °C, so every level must be reachable
    assert all(lv.at < 85 for lv in overheat.levels)


def test_every_starting_profile_is_present() -> None:
    kinds = {(rule.id, rule.kind) for eq in EQUIPMENT for rule in RULES.rules_for(eq)}
    assert {
        ("engine-overheat", "threshold"),
        ("freeze-risk", "threshold"),
        ("condensation", "threshold"),
        ("storm-risk", "rate"),
        ("sensor-fault-range", "range"),
        ("sensor-fault-stuck", "stuck"),
        ("offline", "offline"),
        ("data-loss", "dataloss"),
    } <= kinds
    assert RULES.find("crane", "condensation").field == "dewPointMargin"  # type: ignore[union-attr]


def test_sensor_selection_by_pattern() -> None:
    crane_cabin = {r.id for r in RULES.sensor_rules("crane", "cabin")}
    crane_ambient = {r.id for r in RULES.sensor_rules("crane", "ambient-2")}
    crane_engine = {r.id for r in RULES.sensor_rules("crane", "engine")}
    assert {"storm-risk", "condensation"} <= crane_cabin
    assert "storm-risk" in crane_ambient and "condensation" not in crane_ambient
    assert "storm-risk" not in crane_engine
    # machine-wide rules never attach to a sensor
    assert "offline" not in crane_cabin


@pytest.mark.parametrize("equipment", EQUIPMENT)
def test_default_sensors_leave_no_rule_of_the_profile_unwatched(equipment: str) -> None:
    sensors = RULES.sensors_for(equipment)
    assert sensors and len(sensors) <= 2  # two BME280 addresses on one bus
    assert RULES.unwatched(equipment, sensors) == ()


def test_default_sensors_named_after_the_rules() -> None:
    assert RULES.sensors_for("excavator") == ("engine",)
    assert RULES.sensors_for("crane") == ("cabin",)  # storm risk and condensation both
    assert RULES.sensors_for("site-cabin") == ("ambient",)  # its rules watch any sensor
    data = copy.deepcopy(GOOD)  # a glob pattern gives its plain prefix
    assert parse_rules(data).sensors_for("excavator") == ("engine",)
    unwatched = parse_rules(data).unwatched("excavator", ["main"])
    assert [rule.id for rule in unwatched] == ["engine-overheat"]


def test_profile_rule_replaces_default_with_same_id() -> None:
    data = copy.deepcopy(GOOD)
    data["profiles"]["crane"] = [
        {"id": "offline", "kind": "offline", "minutes": 3, "severity": "critical"}
    ]
    rules = parse_rules(data)
    assert rules.find("crane", "offline").minutes == 3  # type: ignore[union-attr]
    assert rules.find("excavator", "offline").minutes == 10  # type: ignore[union-attr]


def test_load_rules_from_file(tmp_path: Path) -> None:
    target = tmp_path / "rules.json"
    target.write_text(json.dumps(GOOD))
    assert load_rules(target).version == 3


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    node: Any = data
    for step in path[:-1]:
        node = node[step]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


RULE = ["profiles", "excavator", 0]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_broken(["version"], KeyError), ["'version'"]),
        (_broken(["version"], "1"), ["'version'"]),
        (_broken([*RULE, "kind"], "thresold"), ["engine-overheat", "'kind'"]),
        (_broken([*RULE, "fro"], 10), ["engine-overheat", "'fro'"]),
        (_broken([*RULE, "field"], "temp"), ["engine-overheat", "'field'"]),
        (_broken([*RULE, "direction"], "up"), ["engine-overheat", "'direction'"]),
        (_broken([*RULE, "clear"], 76), ["engine-overheat", "'clear'", "75"]),
        (_broken([*RULE, "for"], -1), ["engine-overheat", "'for'"]),
        (_broken([*RULE, "sensors"], []), ["engine-overheat", "'sensors'"]),
        (_broken([*RULE, "latch"], "yes"), ["engine-overheat", "'latch'"]),
        (
            _broken(
                [*RULE, "levels"],
                [{"severity": "critical", "at": 82}, {"severity": "warning", "at": 75}],
            ),
            ["engine-overheat", "'levels'"],
        ),
        (
            _broken([*RULE, "levels"], [{"severity": "urgent", "at": 82}]),
            ["engine-overheat", "'levels'"],
        ),
        (_broken([*RULE, "id"], "Engine Overheat"), ["'id'"]),
        (_broken(["defaults", 0, "minutes"], 0), ["offline", "'minutes'"]),
        (_broken(["defaults", 0, "severity"], "high"), ["offline", "'severity'"]),
        (_broken(["profiles", "bulldozer"], []), ["bulldozer"]),
    ],
)
def test_invalid_rules_name_rule_and_field(data: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(data, source="rules.json")
    message = str(caught.value)
    assert "rules.json" in message
    for part in expected:
        assert part in message


def test_duplicate_rule_id_is_refused() -> None:
    data = copy.deepcopy(GOOD)
    data["profiles"]["excavator"].append(copy.deepcopy(data["profiles"]["excavator"][0]))
    with pytest.raises(RulesError, match=r"engine-overheat.*twice"):
        parse_rules(data)


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (
            {
                "kind": "rate",
                "field": "pressure",
                "direction": "fall",
                "window": 3600,
                "minSpan": 7200,
                "levels": [{"severity": "warning", "at": 3}],
            },
            "'minSpan'",
        ),
        (
            {
                "kind": "rate",
                "field": "dewPoint",
                "direction": "fall",
                "window": 3600,
                "levels": [{"severity": "warning", "at": 3}],
            },
            "'field'",
        ),
        (
            {"kind": "range", "field": "temperature", "min": 10, "max": 5, "severity": "warning"},
            "'max'",
        ),
        (
            {"kind": "stuck", "field": "temperature", "seconds": 0, "severity": "warning"},
            "'seconds'",
        ),
        ({"kind": "sensorstatus", "severity": "urgent"}, "'severity'"),
        ({"kind": "sensorstatus", "field": "temperature", "severity": "warning"}, "'field'"),
    ],
)
def test_invalid_kind_specific_fields(rule: dict[str, Any], field: str) -> None:
    data = {"version": 1, "defaults": [{"id": "broken-rule", "sensors": ["*"], **rule}]}
    with pytest.raises(RulesError) as caught:
        parse_rules(data)
    assert "broken-rule" in str(caught.value) and field in str(caught.value)


def test_sensor_status_rules_watch_health_messages_not_readings() -> None:
    assert [r.id for r in RULES.status_rules("crane", "cabin")] == ["sensor-fault-reported"]
    assert "sensor-fault-reported" not in {r.id for r in RULES.sensor_rules("crane", "cabin")}
    # nothing for the edge agent to check on a reading
    assert crossing_levels(RULES, "crane", "cabin", {"temperature": 20}, None) == []


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="not found"):
        load_rules(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{version: 1")
    with pytest.raises(RulesError, match=r"bad.json.*not valid JSON"):
        load_rules(bad)


def test_crossing_levels_upward_and_back() -> None:
    assert crossing_levels(
        RULES, "excavator", "engine", {"temperature": 76}, {"temperature": 74}
    ) == [("engine-overheat", 75.0)]
    assert crossing_levels(
        RULES, "excavator", "engine", {"temperature": 83}, {"temperature": 74}
    ) == [
        ("engine-overheat", 75.0),
        ("engine-overheat", 82.0),
    ]
    # dropping under the clear level is urgent too: the alert should clear promptly
    assert ("engine-overheat", 72.0) in crossing_levels(
        RULES, "excavator", "engine", {"temperature": 71}, {"temperature": 73}
    )


def test_is_urgent() -> None:
    assert not is_urgent(RULES, "excavator", "engine", {"temperature": 60.1}, {"temperature": 60})
    assert not is_urgent(RULES, "excavator", "engine", {"temperature": 60})
    assert is_urgent(RULES, "excavator", "engine", {"temperature": 78})
    assert not is_urgent(RULES, "excavator", "cabin", {"temperature": 78})
    # range bound: 85 °C is the sensor's ceiling, a fault
    assert is_urgent(RULES, "excavator", "cabin", {"temperature": 85.0}, {"temperature": 80})
    # freezing concrete, going down through 5 °C
    assert is_urgent(RULES, "concrete-mixer", "drum", {"temperature": 4.9}, {"temperature": 5.2})


def test_is_urgent_on_derived_dew_point_margin() -> None:
    dry = {"temperature": 15.0, "humidity": 60.0}
    damp = {"temperature": 15.0, "humidity": 95.0}
    assert is_urgent(RULES, "site-cabin", "inside", damp, dry)
    assert not is_urgent(RULES, "site-cabin", "inside", dry, dry)
    # no humidity, no dew point: nothing to say
    assert not is_urgent(RULES, "site-cabin", "inside", {"temperature": 15.0}, dry)


def test_provisioning_guide_lists_the_default_sensors() -> None:
    import re

    guide = (Path(__file__).resolve().parents[3] / "docs" / "provisioning.md").read_text()
    rows = re.findall(r"^\| ([a-z, -]+) \| (`.+) \|$", guide, re.MULTILINE)
    listed = {
        equipment.strip(): tuple(re.findall(r"`([a-z-]+)`", sensors))
        for names, sensors in rows
        for equipment in names.split(",")
    }
    assert listed == {equipment: RULES.sensors_for(equipment) for equipment in EQUIPMENT}
