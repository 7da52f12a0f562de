"""A machine's status colour from its open alerts and when it was last heard from (no AWS)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chantier.alerts.rules import RuleSet
from cloud.alerts.engine import SEEN_REFRESH_MS

OK, WARNING, CRITICAL, OFFLINE = "ok", "warning", "critical", "offline"
# A level is crossed but the rule's `for` has not elapsed yet: no alert, but not "ok" either.
PENDING = "pending"
# Worst first: an offline machine says nothing about its temperatures, so it wins over all.
ORDER = (OFFLINE, CRITICAL, WARNING, PENDING, OK)
# How a site's machines are listed: what needs someone now comes first, then silence.
SORT_ORDER = (CRITICAL, OFFLINE, WARNING, PENDING, OK)
READING_FIELDS = ("temperature", "humidity", "pressure", "dewPoint", "dewPointMargin")
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
    pending: bool = False,
) -> str:
    """ok / pending / warning / critical / offline; `info` alerts leave a machine ok, and a
    level crossed whose rule's `for` has not elapsed makes it pending."""
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
    return PENDING if pending else OK


def sort_rank(status: str) -> int:
    return SORT_ORDER.index(status) if status in SORT_ORDER else len(SORT_ORDER)


def worst(statuses: Iterable[str]) -> str:
    """The worst of several statuses (a site's colour)."""
    present = set(statuses)
    return next((s for s in ORDER if s in present), OK)


def chart_levels(rules: RuleSet, equipment: str, sensor_id: str) -> list[dict[str, Any]]:
    """Threshold levels to draw on a sensor's charts, one entry per level and clear line."""
    out: list[dict[str, Any]] = []
    for rule in rules.sensor_rules(equipment, sensor_id):
        if rule.kind == "threshold" and rule.field in READING_FIELDS:
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


def reading_levels(
    rules: RuleSet, equipment: str, sensor_id: str, reading: Mapping[str, Any]
) -> dict[str, str]:
    """The level each field of a reading stands at (field -> severity), for colouring values;
    fields inside every threshold are left out. Derived fields (dew-point margin) included."""
    from chantier.alerts.fields import field_value
    from chantier.alerts.rules import SEVERITY_RANK

    out: dict[str, str] = {}
    for rule in rules.sensor_rules(equipment, sensor_id):
        if rule.field not in READING_FIELDS:
            continue
        value = field_value(dict(reading), rule.field)
        if value is None:
            continue
        reached = None
        if rule.kind == "threshold":
            for level in rule.levels:
                beyond = value >= level.at if rule.direction == "above" else value <= level.at
                if beyond:
                    reached = level.severity
        elif rule.kind == "range":
            outside = (rule.min is not None and value < rule.min) or (
                rule.max is not None and value > rule.max
            )
            reached = (rule.severity or WARNING) if outside else None
        current = out.get(rule.field)
        if reached and (current is None or SEVERITY_RANK[reached] > SEVERITY_RANK[current]):
            out[rule.field] = reached
    return out
