"""The systemd unit keeps what the agent needs on a Pi while it is sandboxed."""

from __future__ import annotations

from pathlib import Path

from device.config import DEFAULT_PATH, DEFAULT_STATE_DIR

UNIT = Path(__file__).resolve().parents[3] / "device" / "systemd" / "chantier-agent.service"


def settings() -> dict[str, list[str]]:
    """Every `Key=value` of the unit, values of repeated keys in order."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_the_sandbox_leaves_the_agent_what_it_needs_on_a_pi() -> None:
    unit = settings()
    # I2C: the device nodes stay visible, the cgroup lets the agent open them, group i2c
    assert unit.get("PrivateDevices", ["no"]) == ["no"]
    assert unit["DevicePolicy"] == ["closed"] and "char-i2c rw" in unit["DeviceAllow"]
    assert unit["SupplementaryGroups"] == ["i2c"]
    # the durable queue is the one writable place, and it is where state_dir points by default
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["StateDirectory"] == ["chantier"]
    assert Path("/var/lib") / unit["StateDirectory"][0] == DEFAULT_STATE_DIR
    assert f"--config {DEFAULT_PATH}" in unit["ExecStart"][0]
    # network to the broker, the notify socket and journald, name resolution
    families = unit["RestrictAddressFamilies"][0].split()
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(families)
    assert "PrivateNetwork" not in unit and "IPAddressDeny" not in unit
    # READY/WATCHDOG from the agent's own process
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert unit["WatchdogSec"]
    # the clock_sync check reads the kernel's sync state through adjtimex and boot_id in /proc
    assert "ProtectClock" not in unit and "ProcSubset" not in unit
    allowed = unit["SystemCallFilter"][0].split()
    assert {"adjtimex", "clock_adjtime"} <= set(allowed)
    # a filtered call fails with EPERM instead of killing the agent
    assert unit["SystemCallErrorNumber"] == ["EPERM"]
    assert unit["User"] == ["chantier"] and unit["CapabilityBoundingSet"] == [""]
