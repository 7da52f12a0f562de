"""A machine's status colour from its open alerts and when it was last heard from (no AWS)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chantier.alerts.rules import RuleSet
from cloud.alerts.engine import SEEN_REFRESH_MS

OK, WARNING, CRITICAL, OFFLINE = "ok", "warning", "critical", "offline"
# Worst first: an offline machine says nothing about its temperatures, so it wins over all.
ORDER = (OFFLINE, CRITICAL, WARNING, OK)
DEFAULT_OFFLINE_MINUTES = 16.0


def offline_minutes(rules: RuleSet, equipment: str) -> float:
    """Age of the stored last-seen past which the machine shows offline: its `offline` rule
    (else 16 min), plus the time last-seen may lag behind the last message, as the offline
    check allows, so the page never shows offline a machine the check still counts alive."""
    minutes = [r.minutes for r in rules.thing_rules(equipment, "offline") if r.minutes > 0]
    return (min(minutes) if minutes else DEFAULT_OFFLINE_MINUTES) + SEEN_REFRESH_MS / 60_000


def machine_status(
    open_alerts: Iterable[Mapping[str, Any]],
    last_seen_ms: int | None,
    now_ms: int,
    offline_after_min: float,
) -> str:
    """ok / warning / critical / offline; `info` alerts leave a machine ok."""
    alerts = list(open_alerts)
    if any(a.get("rule") == "offline" for a in alerts):
        return OFFLINE
    if last_seen_ms is None or now_ms - last_seen_ms > offline_after_min * 60_000:
        return OFFLINE
    severities = {a.get("severity") for a in alerts}
    if CRITICAL in severities:
        return CRITICAL
    if WARNING in severities:
        return WARNING
    return OK


def worst(statuses: Iterable[str]) -> str:
    """The worst of several statuses (a site's colour)."""
    present = set(statuses)
    return next((s for s in ORDER if s in present), OK)


def chart_levels(rules: RuleSet, equipment: str, sensor_id: str) -> list[dict[str, Any]]:
    """Threshold levels to draw on a sensor's charts, one entry per level and clear line."""
    out: list[dict[str, Any]] = []
    for rule in rules.sensor_rules(equipment, sensor_id):
        if rule.kind == "threshold" and rule.field in ("temperature", "humidity", "pressure"):
            for level in rule.levels:
                out.append(
                    {
                        "rule": rule.id,
                        "field": rule.field,
                        "severity": level.severity,
                        "value": level.at,
                        "direction": rule.direction,
                    }
                )
            if rule.clear is not None:
                out.append(
                    {
                        "rule": rule.id,
                        "field": rule.field,
                        "severity": "clear",
                        "value": rule.clear,
                        "direction": rule.direction,
                    }
                )
        elif rule.kind == "range" and rule.field in ("temperature", "humidity", "pressure"):
            for bound in (rule.min, rule.max):
                if bound is not None:
                    out.append(
                        {
                            "rule": rule.id,
                            "field": rule.field,
                            "severity": rule.severity or "warning",
                            "value": bound,
                            "direction": "range",
                        }
                    )
    return out
