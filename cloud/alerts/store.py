"""Where alert state lives: the AlertStore protocol and an in-memory store for tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cloud.alerts.records import AlertKey, AlertState, State, ThingSeen, Transition


class ConflictError(RuntimeError):
    """A conditional write lost a race: the stored version is not the one the writer read."""


class AlertStore(Protocol):
    """Persistence the engine needs; every state write is conditional on its version."""

    def load_thing(self, thing: str) -> tuple[ThingSeen | None, dict[AlertKey, AlertState]]:
        """The machine's last-seen record and every alert state it has, both current."""
        ...

    def load_states(self, thing: str) -> dict[AlertKey, AlertState]:
        """Every alert state the machine has, current."""
        ...

    def last_seen(self, thing: str) -> ThingSeen | None:
        """The machine's last-seen record; it may be a moment old (never newer than stored)."""
        ...

    def get_state(self, key: AlertKey) -> AlertState | None: ...

    def save_state(
        self, state: AlertState, expected_version: int, transitions: Sequence[Transition]
    ) -> None:
        """Write state and its transitions if the stored version is still `expected_version`
        (0: not stored yet); raise ConflictError otherwise. Once this returns, the state is
        stored and its transitions are in the history, or will be when the state is next read."""
        ...

    def history(self, key: AlertKey, limit: int = 100) -> list[Transition]:
        """Transitions of one key, oldest first."""
        ...

    def list_states(
        self, *, site: str | None = None, thing: str | None = None, open_only: bool = True
    ) -> list[AlertState]: ...

    def touch_thing(self, seen: ThingSeen) -> None:
        """Record that the machine sent data (never moves last_seen backwards)."""
        ...

    def stale_things(self, cutoff_ms: int) -> list[ThingSeen]:
        """Machines last seen before `cutoff_ms`."""
        ...

    def snoozes_due(self, now_ms: int) -> list[AlertState]:
        """Snoozed states whose snooze ended at or before `now_ms`."""
        ...


class InMemoryAlertStore:
    """AlertStore in dictionaries, with the same copy and version semantics as DynamoDB."""

    def __init__(self) -> None:
        self.states: dict[AlertKey, AlertState] = {}
        self.transitions: dict[AlertKey, list[Transition]] = {}
        self.seen: dict[str, ThingSeen] = {}
        self.writes = 0

    def load_thing(self, thing: str) -> tuple[ThingSeen | None, dict[AlertKey, AlertState]]:
        return self.last_seen(thing), self.load_states(thing)

    def load_states(self, thing: str) -> dict[AlertKey, AlertState]:
        return {k: s.copy() for k, s in self.states.items() if k.thing == thing}

    def last_seen(self, thing: str) -> ThingSeen | None:
        return self.seen.get(thing)

    def get_state(self, key: AlertKey) -> AlertState | None:
        state = self.states.get(key)
        return None if state is None else state.copy()

    def save_state(
        self, state: AlertState, expected_version: int, transitions: Sequence[Transition]
    ) -> None:
        current = self.states.get(state.key)
        stored_version = 0 if current is None else current.version
        if stored_version != expected_version:
            raise ConflictError(
                f"{state.key}: stored version {stored_version}, expected {expected_version}"
            )
        self.states[state.key] = state.copy()
        self.transitions.setdefault(state.key, []).extend(transitions)
        self.writes += 1

    def history(self, key: AlertKey, limit: int = 100) -> list[Transition]:
        return list(self.transitions.get(key, [])[-limit:])

    def list_states(
        self, *, site: str | None = None, thing: str | None = None, open_only: bool = True
    ) -> list[AlertState]:
        return sorted(
            (
                s.copy()
                for s in self.states.values()
                if (site is None or s.site == site)
                and (thing is None or s.key.thing == thing)
                and (not open_only or s.is_open)
            ),
            key=lambda s: s.key,
        )

    def touch_thing(self, seen: ThingSeen) -> None:
        current = self.seen.get(seen.thing)
        if current is None or current.last_seen < seen.last_seen:
            self.seen[seen.thing] = seen
            self.writes += 1

    def stale_things(self, cutoff_ms: int) -> list[ThingSeen]:
        return [s for s in self.seen.values() if s.last_seen < cutoff_ms]

    def snoozes_due(self, now_ms: int) -> list[AlertState]:
        return [
            s.copy()
            for s in self.states.values()
            if s.state is State.SNOOZED
            and s.snoozed_until is not None
            and s.snoozed_until <= now_ms
        ]
