"""Alert lifecycle: how conditions and operator actions move an AlertState along ALLOWED edges.

Every function mutates the given state and returns the Transition it recorded (None when the
state did not change). Each transition bumps ``state.version`` by one, so a transition's version
names it uniquely within its key.
"""

from __future__ import annotations

from chantier.alerts.rules import SEVERITY_RANK
from cloud.alerts.records import (
    ALLOWED,
    SYSTEM,
    AlertState,
    InvalidTransitionError,
    State,
    Transition,
)


def move(
    st: AlertState,
    to: State,
    at: int,
    *,
    reason: str,
    who: str = SYSTEM,
    note: str = "",
    value: float | None = None,
    severity: str | None = None,
) -> Transition:
    """Record a transition along an allowed edge."""
    if to not in ALLOWED[st.state]:
        raise InvalidTransitionError(
            f"{st.key}: cannot go from {st.state} to {to} ({reason}); "
            f"allowed from {st.state}: {', '.join(sorted(ALLOWED[st.state])) or 'none'}"
        )
    before = st.state
    # A transition out of an alert keeps the severity it ended with, so clears can be filtered.
    recorded = severity if severity is not None else st.severity
    st.state = to
    st.severity = None if to in (State.NORMAL, State.DISABLED) else severity
    st.since = at
    if value is not None:
        st.value = value
    st.version += 1
    if to is not State.SNOOZED:
        st.snoozed_until = None
    return Transition(
        key=st.key,
        site=st.site,
        from_state=before,
        to_state=to,
        severity=recorded,
        at=at,
        value=st.value if value is None else value,
        who=who,
        note=note,
        reason=reason,
        version=st.version,
        equipment=st.equipment,
    )


def apply_condition(
    st: AlertState, condition: str | None, value: float, at: int, latch: bool
) -> Transition | None:
    """Follow the detector's verdict (severity or None for clear)."""
    previous = st.condition
    st.condition = condition
    state = st.state
    if state is State.DISABLED:
        return None
    if state is State.SNOOZED:
        return None  # evaluated silently; expire_snooze decides where it lands
    if state is State.NORMAL:
        if condition is None:
            return None
        return move(st, State.ACTIVE, at, reason="fired", value=value, severity=condition)
    if state is State.LATCHED:
        if condition is None:
            return None
        return move(st, State.ACTIVE, at, reason="refired", value=value, severity=condition)
    if state is State.ACTIVE:
        if condition is None:
            target = State.LATCHED if latch else State.NORMAL
            reason = "latched" if latch else "cleared"
            return move(st, target, at, reason=reason, value=value, severity=st.severity)
        if condition != st.severity:
            worse = SEVERITY_RANK[condition] > SEVERITY_RANK[st.severity or "info"]
            reason = "escalated" if worse else "deescalated"
            return move(st, State.ACTIVE, at, reason=reason, value=value, severity=condition)
        return None
    # ACKNOWLEDGED: clearing ends it; getting worse than what was acknowledged alerts again.
    if condition is None:
        return move(st, State.NORMAL, at, reason="cleared", value=value)
    if SEVERITY_RANK[condition] > SEVERITY_RANK[st.severity or "info"]:
        return move(st, State.ACTIVE, at, reason="escalated", value=value, severity=condition)
    if condition != previous:
        st.severity = condition  # a milder acknowledged alert needs no new acknowledgement
    return None


def expire_snooze(st: AlertState, now: int) -> Transition | None:
    """End a snooze whose time has come: ACTIVE if the condition still holds, else NORMAL."""
    if st.state is not State.SNOOZED or st.snoozed_until is None or now < st.snoozed_until:
        return None
    if st.condition is not None:
        return move(st, State.ACTIVE, now, reason="snooze-expired", severity=st.condition)
    return move(st, State.NORMAL, now, reason="snooze-expired")


def acknowledge(st: AlertState, at: int, who: str, note: str = "") -> Transition:
    """ACTIVE -> ACKNOWLEDGED; LATCHED -> NORMAL (the condition is already gone)."""
    if st.state is State.ACTIVE:
        return move(
            st,
            State.ACKNOWLEDGED,
            at,
            reason="acknowledged",
            who=who,
            note=note,
            severity=st.severity,
        )
    if st.state is State.LATCHED:
        return move(st, State.NORMAL, at, reason="acknowledged", who=who, note=note)
    raise InvalidTransitionError(
        f"{st.key}: only an ACTIVE or LATCHED alert can be acknowledged, this one is {st.state}"
    )


def snooze(st: AlertState, until: int, at: int, who: str, note: str = "") -> Transition:
    """Silence the alert until a time; evaluation goes on underneath."""
    if until <= at:
        raise InvalidTransitionError(f"{st.key}: snooze end {until} must be after now ({at})")
    if st.state is State.DISABLED:
        raise InvalidTransitionError(f"{st.key}: a DISABLED alert cannot be snoozed; enable it")
    severity = st.severity
    transition = move(
        st, State.SNOOZED, at, reason="snoozed", who=who, note=note, severity=severity
    )
    st.snoozed_until = until
    return transition


def disable(st: AlertState, at: int, who: str, note: str = "") -> Transition:
    """Stop evaluating the rule for this key."""
    if st.state is State.DISABLED:
        raise InvalidTransitionError(f"{st.key}: already DISABLED")
    transition = move(st, State.DISABLED, at, reason="disabled", who=who, note=note)
    _forget(st, at)
    return transition


def enable(st: AlertState, at: int, who: str, note: str = "") -> Transition:
    """Evaluate the rule again, from readings newer than now."""
    if st.state is not State.DISABLED:
        raise InvalidTransitionError(
            f"{st.key}: only a DISABLED alert can be enabled, not {st.state}"
        )
    transition = move(st, State.NORMAL, at, reason="enabled", who=who, note=note)
    _forget(st, at)
    return transition


def reset(st: AlertState, at: int, who: str, note: str = "") -> Transition | None:
    """Back to NORMAL, forgetting the detector's memory; None if already NORMAL."""
    _forget(st, at)
    if st.state is State.NORMAL:
        return None
    return move(st, State.NORMAL, at, reason="reset", who=who, note=note)


def _forget(st: AlertState, at: int) -> None:
    st.condition = None
    st.memory = {}
    # Readings taken before the action belong to the forgotten past, even if they arrive later.
    st.last_ts = max(st.last_ts, at)
