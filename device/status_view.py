"""`chantier agent status`: what the agent saved in its state folder, summed up for a person."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

# The agent saves its status every 5 s; older than this, it is not running (or is stuck).
FRESH_S = 30.0


def iso(ms: Any) -> str:
    """An epoch-milliseconds time as UTC ISO 8601, or `never`."""
    if not isinstance(ms, int):
        return "never"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def ago(seconds: float) -> str:
    """A duration as a person reads it: 42 s, 7 min, 3 h 2 min, 2 d 4 h."""
    s = int(max(0, seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # it exists, under another user
    except OSError:
        return False
    return True


def summarise(status: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """The queue figures and the agent's saved status, with ages and whether it runs."""
    agent = status.get("agent") or {}
    saved = agent.get("savedAtMs")
    age_s = (now_ms - saved) / 1000 if isinstance(saved, int) else None
    stopped = agent.get("stoppedAtMs")
    running = stopped is None and _alive(agent.get("pid")) and age_s is not None and age_s < FRESH_S
    oldest = status.get("oldest_reading_ms")
    limit = agent.get("queueMaxReadings")
    return {
        "running": running,
        "pid": agent.get("pid"),
        "boot": agent.get("boot"),
        "statusSavedAt": saved,
        "stoppedAt": stopped,
        "statusAgeS": None if age_s is None else round(age_s, 1),
        "connection": agent.get("link")
        or {"state": "connected" if agent.get("connected") else "unknown"},
        "clock": agent.get("clock") or {"synced": agent.get("clockSynced"), "mode": None},
        "queue": {
            "depth": status.get("depth"),
            "batches": status.get("batches"),
            "maxReadings": limit,
            "oldestReading": oldest,
            "oldestReadingAgeS": None if not isinstance(oldest, int) else (now_ms - oldest) // 1000,
            "droppedTotal": status.get("dropped_total"),
        },
        "lastPublish": agent.get("lastPublishMs"),
        "lastAck": agent.get("lastAckMs"),
        "sensors": agent.get("sensors", []),
        "attention": agent.get("attention", []),
    }


def render(summary: dict[str, Any]) -> list[str]:
    """The text lines of `chantier agent status`."""
    lines = [_agent_line(summary)]
    lines += _connection_lines(summary["connection"], summary["running"])
    clock = summary["clock"]
    mode = f" (clock_sync = {clock['mode']})" if clock.get("mode") else ""
    if clock.get("synced") is False:
        lines.append(
            f"clock            NOT synchronised{mode}: readings wait on disk, nothing is "
            "published until it is"
        )
    elif clock.get("synced"):
        lines.append(f"clock            synchronised{mode}")
    queue = summary["queue"]
    share = (
        f", {queue['depth'] / queue['maxReadings']:.0%} of {queue['maxReadings']}"
        if queue.get("maxReadings")
        else ""
    )
    lines.append(
        f"queue depth      {queue['depth']} readings ({queue['batches']} batches formed){share}"
    )
    oldest = iso(queue["oldestReading"])
    if queue["oldestReadingAgeS"] is not None:
        oldest += f" ({ago(queue['oldestReadingAgeS'])} ago)"
    lines.append(f"oldest reading   {oldest}")
    lines.append(f"dropped (total)  {queue['droppedTotal']}")
    lines.append(f"last publish     {iso(summary['lastPublish'])}")
    lines.append(f"last ack         {iso(summary['lastAck'])}")
    for sensor in summary["sensors"]:
        error = ""
        if sensor.get("lastError"):
            error = f", last error {iso(sensor.get('lastErrorAt'))}: {sensor['lastError']}"
        lines.append(
            f"sensor {sensor['sensorId']:<10} {sensor['status']}, "
            f"{sensor['readings']} readings, {sensor['errors']} errors{error}"
        )
    for item in summary["attention"]:
        lines.append(f"attention        {item['event']} since {iso(item['since'])}: {item['text']}")
    return lines


def _agent_line(summary: dict[str, Any]) -> str:
    boot = f"boot {summary['boot']}, " if summary.get("boot") else ""
    if summary["statusAgeS"] is None:
        return "agent            no status saved yet (has it run with this state_dir?)"
    saved = ago(summary["statusAgeS"])
    if summary["running"]:
        return f"agent            running (pid {summary['pid']}, {boot}status saved {saved} ago)"
    if summary.get("stoppedAt"):
        when = f"stopped at {iso(summary['stoppedAt'])}"
    else:  # killed, crashed or the machine lost power: the last save is all there is
        when = f"last status saved {saved} ago"
    return f"agent            not running ({boot}{when}; as it was then:)"


def _connection_lines(link: dict[str, Any], running: bool) -> list[str]:
    state = link.get("state", "unknown")
    where = f" {link['endpoint']}" if link.get("endpoint") else ""
    since = f" since {iso(link['since'])}" if link.get("since") else ""
    if state == "connected":
        lines = [f"connection       connected to{where}{since}"]
    elif state == "cannot-connect":
        attempts = link.get("failedAttempts") or 0
        lines = [
            f"connection       cannot connect to{where}{since} ({attempts} failed attempts): "
            f"{link.get('cause')}",
            f"                 check {link.get('check')}",
        ]
    elif state == "disconnected":
        cause = f": {link['cause']}" if link.get("cause") and running else ""
        lines = [f"connection       disconnected from{where}{since}{cause}"]
    else:
        lines = [f"connection       {state}{where}"]
    if link.get("lastError"):
        lines.append(f"last error       {iso(link.get('lastErrorAt'))} {link['lastError']}")
    return lines
