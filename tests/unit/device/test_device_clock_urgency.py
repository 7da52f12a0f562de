"""Clock synchronisation probes and the edge alert check."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.clock import SystemClock, kernel_synced, probe_for, systemd_synced
from device.urgency import NeverUrgent, RulesUrgency, UrgencyError, default_urgency


def test_systemd_flag(tmp_path: Path) -> None:
    flag = tmp_path / "timesync" / "synchronized"
    assert systemd_synced(flag) is None  # no timesyncd on this machine
    flag.parent.mkdir()
    assert systemd_synced(flag) is False
    flag.touch()
    assert systemd_synced(flag) is True


def test_kernel_probe_answers_a_boolean_or_none() -> None:
    assert kernel_synced() in (True, False, None)


def test_assume_synced_and_recheck() -> None:
    assert probe_for("assume-synced")() is True
    answers = iter([False, True])
    clock = SystemClock(probe=lambda: next(answers), recheck_s=0.0)
    assert clock.synced() is False
    assert clock.synced() is True
    cached = SystemClock(probe=lambda: True, recheck_s=3600)
    assert cached.synced() and cached.synced()


def test_rules_urgency_fires_on_crossing_not_on_every_hot_reading() -> None:
    urgency = RulesUrgency("excavator")
    assert not urgency.urgent("engine", {"temperature": 60.0})
    assert urgency.urgent("engine", {"temperature": 76.0})  # crosses the 75 °C warning
    assert not urgency.urgent("engine", {"temperature": 77.0})  # still above: no new crossing
    assert urgency.urgent("engine", {"temperature": 83.0})  # crosses the 82 °C critical level
    assert not urgency.urgent("cabin", {"temperature": 20.0})


def test_rules_file_errors_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "rules.json"
    bad.write_text("{not json")
    with pytest.raises(UrgencyError, match=r"rules.json"):
        default_urgency("excavator", bad)
    assert not isinstance(default_urgency("excavator", None), NeverUrgent)
