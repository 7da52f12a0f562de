"""Condition detectors: from a rule, its memory and one value, the severity the rule reports now.

Detectors are pure: they read and update a JSON-compatible ``memory`` dict kept with the alert
state. :func:`durable` projects the part of that memory that must be written back to the store;
everything else (latest value, intra-bucket extremes) may be recomputed or lost without
changing a decision, so an uneventful batch costs no write.
"""

from __future__ import annotations

from typing import Any

from chantier.alerts.rules import SEVERITY_RANK, Rule

RATE_BUCKETS = 12  # a rate window is kept as this many min/max buckets, not raw readings


def observe(
    rule: Rule, memory: dict[str, Any], value: float, ts: int, condition: str | None
) -> tuple[str | None, float]:
    """Severity the rule reports after this value (None: clear) and the value to record."""
    kind = rule.kind
    if kind == "threshold":
        return _leveled(rule, memory, value, ts, condition), value
    if kind == "rate":
        return _rate(rule, memory, value, ts, condition)
    if kind == "range":
        return _range(rule, memory, value, ts, condition), value
    if kind == "stuck":
        return _stuck(rule, memory, value, ts), value
    raise ValueError(f"rule {rule.id!r}: kind {kind!r} is not evaluated per reading")


def durable(rule: Rule, memory: dict[str, Any]) -> Any:
    """The part of the memory whose change must be persisted."""
    kind = rule.kind
    if kind == "rate":
        return memory.get("pending"), tuple(bucket[0] for bucket in memory.get("b", ()))
    if kind == "stuck":
        kept = persistable(rule, memory)
        return kept.get("ref"), kept.get("since")
    return memory.get("pending")


def begin_batch(rule: Rule, memory: dict[str, Any]) -> None:
    """Mark the start of a batch (stuck runs that start mid-batch are not stored)."""
    if rule.kind == "stuck":
        memory["new"] = True


def persistable(rule: Rule, memory: dict[str, Any]) -> dict[str, Any]:
    """The memory as it should be stored."""
    if rule.kind != "stuck":
        return memory
    # A run that began inside this batch means the batch itself varied: a live sensor. Storing
    # it would cost a write per batch; dropping it only delays detection by one batch.
    if memory.get("mid") or "ref" not in memory:
        return {}
    return {"ref": memory["ref"], "since": memory["since"]}


def _leveled(
    rule: Rule, memory: dict[str, Any], value: float, ts: int, condition: str | None
) -> str | None:
    upward = rule.direction != "below"
    reached: str | None = None
    for level in rule.levels:
        if (value >= level.at) if upward else (value <= level.at):
            reached = level.severity
    if condition is not None:
        if rule.clear is None:
            cleared = reached is None
        else:
            cleared = value < rule.clear if upward else value > rule.clear
        if cleared:
            memory.pop("pending", None)
            return None
        # Between the clear level and the first level the alert holds at the lowest severity.
        target: str | None = reached or rule.levels[0].severity
    else:
        target = reached
    if target is None:
        memory.pop("pending", None)
        return None
    if condition is not None and SEVERITY_RANK[target] <= SEVERITY_RANK[condition]:
        # De-escalation applies at once; only getting worse waits for the `for` duration.
        memory.pop("pending", None)
        return target
    return _after_for(rule, memory, ts, target, condition)


def _after_for(
    rule: Rule, memory: dict[str, Any], ts: int, target: str, condition: str | None
) -> str | None:
    if rule.for_s <= 0:
        memory.pop("pending", None)
        return target
    pending = memory.get("pending")
    if pending is None:
        memory["pending"] = ts
        return condition
    if ts - pending >= rule.for_s * 1000:
        memory.pop("pending", None)
        return target
    return condition


def _rate(
    rule: Rule, memory: dict[str, Any], value: float, ts: int, condition: str | None
) -> tuple[str | None, float]:
    window = int(rule.window_s * 1000)
    size = max(window // RATE_BUCKETS, 1)
    start = ts - ts % size
    buckets: list[list[float]] = memory.setdefault("b", [])
    if buckets and buckets[-1][0] == start:
        last = buckets[-1]
        last[1] = min(last[1], value)
        last[2] = max(last[2], value)
    elif not buckets or buckets[-1][0] < start:
        buckets.append([start, value, value])
    cutoff = ts - window
    while buckets and buckets[0][0] + size <= cutoff:
        buckets.pop(0)
    if ts - buckets[0][0] < rule.min_span_s * 1000:
        # Too little history to judge a trend: keep whatever was reported before.
        return condition, 0.0
    if rule.direction == "fall":
        change = max(bucket[2] for bucket in buckets) - value
    else:
        change = value - min(bucket[1] for bucket in buckets)
    return _leveled(rule, memory, change, ts, condition), round(change, 3)


def _range(
    rule: Rule, memory: dict[str, Any], value: float, ts: int, condition: str | None
) -> str | None:
    assert rule.min is not None and rule.max is not None and rule.severity is not None
    if rule.min <= value <= rule.max:
        memory.pop("pending", None)
        return None
    if condition is not None:
        return condition
    return _after_for(rule, memory, ts, rule.severity, condition)


def _stuck(rule: Rule, memory: dict[str, Any], value: float, ts: int) -> str | None:
    first = memory.pop("new", False)
    ref = memory.get("ref")
    if ref is None or abs(value - ref) > rule.tolerance:
        memory.clear()
        memory["ref"] = value
        memory["since"] = ts
        if not first:
            memory["mid"] = True
        return None
    if ts - memory["since"] >= rule.seconds * 1000:
        return rule.severity
    return None
