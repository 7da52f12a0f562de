"""The alert engine: readings, health messages, the offline schedule and operator actions in,
state transitions out.

Idempotency, so one condition gives one alert however often a batch arrives:

- every (thing, sensor, rule) state remembers the newest reading time it applied
  (``last_ts``); older or equal readings are skipped, so a redelivered batch, a retried
  invocation or an out-of-order batch cannot replay a transition;
- every state write is conditional on the version read, or kept from the machine's previous
  batch (optimistic locking; cloud/alerts/kept_states.py); a lost race is re-evaluated from
  the stored state;
- evaluation is deterministic, so a batch that wrote nothing the first time writes nothing
  when it comes again;
- time-driven transitions (a snooze ending, a machine going silent) come from the scheduled
  ``check_offline`` only, never from re-processing a message.

Only changes are written: a batch that moves no state, starts no ``for`` timer and rolls no
rate bucket costs reads only.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from chantier.alerts.detectors import begin_batch, durable, observe, persistable
from chantier.alerts.fields import field_value
from chantier.alerts.rules import THING_SENSOR, Rule, RuleSet
from cloud.alerts import lifecycle
from cloud.alerts.kept_states import KeptStates
from cloud.alerts.records import AlertKey, AlertState, State, ThingSeen, Transition
from cloud.alerts.store import AlertStore, ConflictError

log = logging.getLogger(__name__)

# Last-seen is rewritten at most this often per machine (one write unit each). At the agent's
# defaults (a batch at most every 15 min, an early one at least 5 min apart, health riding with
# a batch) every batch refreshes it and a health message right after its batch does not; in
# the `live` profile (a batch and a health message a minute) this makes one write of four
# messages. Offline alerts fire at most this much late, never early: with the 16-minute rule
# and the check every minute, within 19 minutes of silence (docs/cost.md, docs/alert-rules.md).
SEEN_REFRESH_MS = 120_000
# Machines whose last-seen the engine keeps in memory (about 200 bytes each), the least recently
# refreshed or read dropped first.
SEEN_KEPT = 100_000
MAX_ATTEMPTS = 5
# A read started by read_ahead is waited for this long at most; botocore's own timeouts end it
# well before.
READ_AHEAD_WAIT_S = 180.0


class Notifier(Protocol):
    def notify(self, transitions: Sequence[Transition]) -> None: ...


class UnknownRuleError(LookupError):
    """An operator action names a rule that is not in the rules file."""


class AlertConcurrencyError(RuntimeError):
    """A state kept changing under the engine for MAX_ATTEMPTS tries."""


def epoch_ms() -> int:
    return time.time_ns() // 1_000_000


Step = Callable[[AlertState], tuple[list[Transition], bool]]


class AlertEngine:
    """Evaluates rules against a store; see the module docstring for the guarantees."""

    def __init__(
        self,
        rules: RuleSet,
        store: AlertStore,
        notifier: Notifier | None = None,
        clock: Callable[[], int] = epoch_ms,
        *,
        seen_refresh_ms: int = SEEN_REFRESH_MS,
    ) -> None:
        self.rules = rules
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.seen_refresh_ms = seen_refresh_ms
        self.notify_failures = 0
        self._seen: OrderedDict[str, ThingSeen] = OrderedDict()
        self._kept = KeptStates()
        self._reader: ThreadPoolExecutor | None = None
        self._ahead: tuple[str, Future[dict[AlertKey, AlertState]]] | None = None

    # ---- inputs from devices -------------------------------------------------------------

    def process_batch(self, batch: dict[str, Any]) -> list[Transition]:
        """Evaluate a validated schema-1 telemetry message; returns the transitions it caused."""
        now = self.clock()
        thing = batch["thing"]
        site, equipment = batch.get("site", ""), batch.get("equipment", "")
        by_sensor: dict[str, list[dict[str, Any]]] = {}
        for reading in batch.get("readings", ()):
            if isinstance(reading.get("sensorId"), str) and isinstance(reading.get("ts"), int):
                by_sensor.setdefault(reading["sensorId"], []).append(reading)
        for readings in by_sensor.values():
            readings.sort(key=_ts)

        def apply(
            states: dict[AlertKey, AlertState],
            written: dict[AlertKey, AlertState],
            only: set[AlertKey] | None = None,
        ) -> list[Transition]:
            return self._apply_readings(
                thing, site, equipment, by_sensor, states, now, written, only
            )

        written: dict[AlertKey, AlertState] = {}  # states stored after `states` was read
        ahead = self._take_ahead(thing)
        kept = self._kept.take(thing, batch.get("boot"), batch.get("seq"))
        if kept is None:
            states = ahead if ahead is not None else self.store.load_states(thing)
            transitions = apply(states, written)
        else:
            # The alert's write first, on the states kept from the previous batch; then the read
            # that the other rules' verdicts rest on (module docstring of kept_states).
            early: dict[AlertKey, AlertState] = {}
            transitions = apply(kept, early)
            states = self.store.load_states(thing)
            changed = {
                key
                for key in set(kept) | set(states)
                if key not in early and _version(kept.get(key)) != _version(states.get(key))
            }
            transitions += apply(states, written, changed)
        newest = max((r["ts"] for rs in by_sensor.values() for r in rs), default=0)
        evidence = max(newest, _int(batch.get("sentAt")) or 0)
        transitions += self._alive(thing, site, equipment, states, now, evidence, written)
        self._kept.keep(thing, batch.get("boot"), batch.get("seq"), {**states, **written})
        self._notify(transitions)
        return transitions

    def read_ahead(self, thing: str, boot: object, seq: object) -> None:
        """Start reading `thing`'s states in the background if its batch `boot`/`seq` will
        need them (nothing is kept from the batch before), for a caller with slow work to do
        before process_batch, such as a registry lookup; process_batch takes the answer.

        Only one read runs at a time, and every other method waits for it first: the store's
        client is used by one thread at a time.
        """
        if self._kept.has(thing, boot, seq):
            return
        self._settle_ahead()
        if self._reader is None:
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="alert-states-read")
        self._ahead = (thing, self._reader.submit(self.store.load_states, thing))

    def _settle_ahead(self) -> None:
        """Wait for a read started ahead, and drop it: the caller uses the store's client next."""
        self._take_ahead(None)

    def _take_ahead(self, thing: str | None) -> dict[AlertKey, AlertState] | None:
        """The states read ahead for `thing`, once it has finished; None if the read was for
        another machine (a refused message) or failed (process_batch then reads again)."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        for_thing, future = ahead
        try:
            states = future.result(timeout=READ_AHEAD_WAIT_S)
        except TimeoutError:
            raise TimeoutError(
                f"reading the alert states of {for_thing} ahead took over {READ_AHEAD_WAIT_S:g} s"
            ) from None
        except Exception:
            log.info("reading alert states ahead failed", extra={"thing": for_thing}, exc_info=True)
            return None
        return states if for_thing == thing else None

    def _apply_readings(
        self,
        thing: str,
        site: str,
        equipment: str,
        by_sensor: dict[str, list[dict[str, Any]]],
        states: dict[AlertKey, AlertState],
        now: int,
        written: dict[AlertKey, AlertState],
        only: set[AlertKey] | None = None,
    ) -> list[Transition]:
        """Each sensor rule applied to its readings (the rules of `only`, if given)."""
        transitions: list[Transition] = []
        for sensor, readings in by_sensor.items():
            for rule in self.rules.sensor_rules(equipment, sensor):
                key = AlertKey(thing, sensor, rule.id)
                if only is not None and key not in only:
                    continue
                current = states.get(key) or _fresh(key, site, equipment)
                step = self._readings_step(rule, readings, site)
                transitions += self._commit(current, now, step, written)
        return transitions

    def process_health(self, message: dict[str, Any]) -> list[Transition]:
        """Evaluate an agent health message: data loss, sensor status, the machine being alive."""
        now = self.clock()
        thing = message["thing"]
        self._settle_ahead()
        states = self.store.load_states(thing)
        site, equipment = message.get("site") or "", message.get("equipment") or ""
        if not (site and equipment):
            seen = self._known_seen(thing, now)
            site = site or (seen.site if seen else "")
            equipment = equipment or (seen.equipment if seen else "")
        ts = _int(message.get("sentAt")) or _int(message.get("ts")) or now
        transitions: list[Transition] = []
        dropped = dropped_counter(message)
        if dropped is not None:
            for rule in self.rules.thing_rules(equipment, "dataloss"):
                key = AlertKey(thing, THING_SENSOR, rule.id)
                current = states.get(key) or _fresh(key, site, equipment)
                step = self._dataloss_step(rule, dropped, ts)
                transitions += self._commit(current, now, step)
        for sensor_id, failing, errors in sensor_statuses(message):
            for rule in self.rules.status_rules(equipment, sensor_id):
                key = AlertKey(thing, sensor_id, rule.id)
                current = states.get(key) or _fresh(key, site, equipment)
                step = self._status_step(rule, failing, errors, ts)
                transitions += self._commit(current, now, step)
        transitions += self._alive(thing, site, equipment, states, now, ts)
        self._notify(transitions)
        return transitions

    # ---- the schedule --------------------------------------------------------------------

    def check_offline(self, now_ms: int | None = None) -> list[Transition]:
        """Scheduled check: fire offline alerts for silent machines, end due snoozes."""
        now = self.clock() if now_ms is None else now_ms
        self._settle_ahead()
        transitions: list[Transition] = []
        # Each machine's transitions are notified as soon as they are stored, so with a large
        # fleet the first offline alert does not wait for the whole scan.
        minutes = [r.minutes for r in self._all_rules() if r.kind == "offline"]
        if minutes:
            cutoff = now - int(min(minutes) * 60_000) - self.seen_refresh_ms
            for seen in self.store.stale_things(cutoff):
                fired = self._offline(seen, now)
                self._notify(fired)
                transitions += fired
        for snoozed in self.store.snoozes_due(now):
            ended = self._commit(snoozed, now, self._snooze_step(now))
            self._notify(ended)
            transitions += ended
        return transitions

    # ---- operator actions ----------------------------------------------------------------

    def acknowledge(
        self, thing: str, sensor: str, rule: str, who: str, note: str = ""
    ) -> Transition | None:
        return self._operate(
            AlertKey(thing, sensor, rule), lambda st, at: lifecycle.acknowledge(st, at, who, note)
        )

    def snooze(
        self, thing: str, sensor: str, rule: str, who: str, until_ms: int, note: str = ""
    ) -> Transition | None:
        return self._operate(
            AlertKey(thing, sensor, rule),
            lambda st, at: lifecycle.snooze(st, until_ms, at, who, note),
        )

    def disable(
        self, thing: str, sensor: str, rule: str, who: str, note: str = ""
    ) -> Transition | None:
        return self._operate(
            AlertKey(thing, sensor, rule), lambda st, at: lifecycle.disable(st, at, who, note)
        )

    def enable(
        self, thing: str, sensor: str, rule: str, who: str, note: str = ""
    ) -> Transition | None:
        return self._operate(
            AlertKey(thing, sensor, rule), lambda st, at: lifecycle.enable(st, at, who, note)
        )

    def reset(
        self, thing: str, sensor: str, rule: str, who: str, note: str = ""
    ) -> Transition | None:
        return self._operate(
            AlertKey(thing, sensor, rule), lambda st, at: lifecycle.reset(st, at, who, note)
        )

    # ---- internals -----------------------------------------------------------------------

    def _readings_step(self, rule: Rule, readings: list[dict[str, Any]], site: str) -> Step:
        def step(st: AlertState) -> tuple[list[Transition], bool]:
            transitions: list[Transition] = []
            moved_site = bool(site) and st.site != site
            if moved_site:
                st.site = site  # the machine moved: its open alerts follow it to the new site
            if st.state is State.DISABLED:
                return transitions, moved_site
            condition_before = st.condition
            durable_before = durable(rule, st.memory)
            memory = st.memory
            begin_batch(rule, memory)
            last = st.last_ts
            for reading in readings:
                ts = reading["ts"]
                if ts <= last:
                    continue
                last = ts
                value = field_value(reading, rule.field)
                if value is None:
                    continue
                condition, shown = observe(rule, memory, value, ts, st.condition)
                if condition is not None or st.condition is not None:
                    moved = lifecycle.apply_condition(st, condition, shown, ts, rule.latch)
                    if moved is not None:
                        transitions.append(moved)
            st.last_ts = last
            st.memory = persistable(rule, memory)
            dirty = (
                bool(transitions)
                or moved_site
                or st.condition != condition_before
                or durable(rule, st.memory) != durable_before
            )
            return transitions, dirty

        return step

    def _dataloss_step(self, rule: Rule, dropped: tuple[str, int], ts: int) -> Step:
        scope, count = dropped

        def step(st: AlertState) -> tuple[list[Transition], bool]:
            transitions: list[Transition] = []
            if st.state is State.DISABLED or ts <= st.last_ts:
                return transitions, bool(transitions)
            if count == 0 and not st.memory:
                # An empty memory already reads as nothing dropped in any scope: storing
                # {scope, 0} would cost every new machine (and its every new boot) a write.
                return transitions, False
            before = dict(st.memory)
            previous = st.memory.get("count", 0) if st.memory.get("scope") == scope else 0
            lost = count - previous
            condition = rule.severity if lost > 0 else None
            st.memory = {"scope": scope, "count": count}
            st.last_ts = ts
            moved = lifecycle.apply_condition(st, condition, float(max(lost, 0)), ts, rule.latch)
            if moved is not None:
                transitions.append(moved)
            return transitions, bool(transitions) or st.memory != before

        return step

    def _status_step(self, rule: Rule, failing: bool, errors: int, ts: int) -> Step:
        def step(st: AlertState) -> tuple[list[Transition], bool]:
            # Stored only when the verdict changes: a machine reporting "ok" every minute costs
            # no write. An older message than the last change is ignored.
            condition = rule.severity if failing else None
            if st.state is State.DISABLED or ts <= st.last_ts or condition == st.condition:
                return [], False
            st.last_ts = ts
            moved = lifecycle.apply_condition(st, condition, float(errors), ts, rule.latch)
            return ([moved] if moved is not None else []), True

        return step

    def _snooze_step(self, now: int) -> Step:
        def step(st: AlertState) -> tuple[list[Transition], bool]:
            moved = lifecycle.expire_snooze(st, now)
            return ([moved], True) if moved is not None else ([], False)

        return step

    def _alive(
        self,
        thing: str,
        site: str,
        equipment: str,
        states: dict[AlertKey, AlertState],
        now: int,
        evidence_ts: int,
        written: dict[AlertKey, AlertState] | None = None,
    ) -> list[Transition]:
        """The machine sent something: refresh last-seen, clear its offline alerts."""
        # Last-seen first: an offline check that reads the cleared state then reads this too,
        # and does not fire again on the stale last-seen it found before.
        seen = self._known_seen(thing, now)
        if (
            seen is None
            or now - seen.last_seen >= self.seen_refresh_ms
            or (seen.site, seen.equipment) != (site, equipment)
        ):
            seen = ThingSeen(thing, site, equipment, now)
            self.store.touch_thing(seen)
            self._remember(seen)
        transitions: list[Transition] = []
        for rule in self.rules.thing_rules(equipment, "offline"):
            current = states.get(AlertKey(thing, THING_SENSOR, rule.id))
            # Only data stamped after the alert proves the machine came back; a re-delivered old
            # batch does not.
            if current is None or current.condition is None or evidence_ts <= current.since:
                continue
            step = self._offline_step(rule, None, 0.0, now)
            transitions += self._commit(current, now, step, written)
        return transitions

    def _known_seen(self, thing: str, now: int) -> ThingSeen | None:
        """The machine's last-seen as this process refreshed or read it within the refresh
        period, else as the store has it now (then kept in memory).

        Either may be older than what is stored, never newer: at worst one refresh more. A
        warm instance so reads nothing for the health message a second after the batch it
        refreshed last-seen for; an instance that did not make the refresh reads it first, so
        a machine is refreshed at most once per period however many instances it reaches.
        """
        known = self._seen.get(thing)
        if known is not None and now - known.last_seen < self.seen_refresh_ms:
            return known
        stored = self.store.last_seen(thing)
        if stored is not None:
            self._remember(stored)
        return self._seen.get(thing)

    def _remember(self, seen: ThingSeen) -> None:
        known = self._seen.pop(seen.thing, None)
        self._seen[seen.thing] = (
            seen if known is None or known.last_seen < seen.last_seen else known
        )
        while len(self._seen) > SEEN_KEPT:
            self._seen.popitem(last=False)

    def _offline(self, listed: ThingSeen, now: int) -> list[Transition]:
        # The listing may lag, and the machine may have come back since: decide on its
        # states and last-seen read again, consistently.
        seen, states = self.store.load_thing(listed.thing)
        seen = seen or listed
        transitions: list[Transition] = []
        silent = now - seen.last_seen
        for rule in self.rules.thing_rules(seen.equipment, "offline"):
            # last-seen may lag by up to the refresh period; wait that long so we never fire early
            if silent < rule.minutes * 60_000 + self.seen_refresh_ms:
                continue
            key = AlertKey(seen.thing, THING_SENSOR, rule.id)
            current = states.get(key) or _fresh(key, seen.site, seen.equipment)
            if current.condition is not None:
                continue  # already firing (or firing under a snooze): nothing to write
            step = self._offline_step(rule, rule.severity, round(silent / 60_000, 1), now)
            transitions += self._commit(current, now, step)
        return transitions

    def _offline_step(self, rule: Rule, condition: str | None, minutes: float, now: int) -> Step:
        def step(st: AlertState) -> tuple[list[Transition], bool]:
            transitions: list[Transition] = []
            if st.state is State.DISABLED or st.condition == condition:
                return transitions, bool(transitions)
            moved = lifecycle.apply_condition(st, condition, minutes, now, rule.latch)
            if moved is not None:
                transitions.append(moved)
            return transitions, True

        return step

    def _operate(
        self, key: AlertKey, action: Callable[[AlertState, int], Transition | None]
    ) -> Transition | None:
        now = self.clock()
        self._settle_ahead()
        current = self.store.get_state(key)
        if current is None:
            seen, _ = self.store.load_thing(key.thing)
            equipment = seen.equipment if seen else ""
            if self.rules.find(equipment or None, key.rule) is None:
                raise UnknownRuleError(
                    f"{key}: no rule {key.rule!r} in the rules file (version {self.rules.version})"
                )
            current = _fresh(key, seen.site if seen else "", equipment)

        def step(st: AlertState) -> tuple[list[Transition], bool]:
            transitions: list[Transition] = []
            expired = lifecycle.expire_snooze(st, now)
            if expired is not None:
                transitions.append(expired)
            before = (st.memory, st.last_ts, st.condition)
            moved = action(st, now)
            if moved is not None:
                transitions.append(moved)
            return transitions, bool(transitions) or before != (st.memory, st.last_ts, st.condition)

        transitions = self._commit(current, now, step)
        self._notify(transitions)
        return transitions[-1] if transitions else None

    def _commit(
        self,
        current: AlertState,
        now: int,
        step: Step,
        written: dict[AlertKey, AlertState] | None = None,
    ) -> list[Transition]:
        """Apply `step` to a copy of the state and write it conditionally, retrying races;
        the state as stored goes into `written`."""
        for _ in range(MAX_ATTEMPTS):
            work = current.copy()
            transitions, dirty = step(work)
            if not dirty:
                return []
            if not transitions:
                work.version = current.version + 1
            work.updated_at = now
            try:
                self.store.save_state(work, current.version, transitions)
                if written is not None:
                    written[work.key] = work
                return transitions
            except ConflictError:
                log.info(
                    "alert state changed concurrently, re-evaluating", extra={"key": str(work.key)}
                )
                stored = self.store.get_state(current.key)
                current = stored or _fresh(current.key, current.site, current.equipment)
        raise AlertConcurrencyError(
            f"{current.key}: state changed concurrently {MAX_ATTEMPTS} times in a row"
        )

    def _notify(self, transitions: Sequence[Transition]) -> None:
        # After the write: a failed publish must not undo or repeat a recorded transition.
        if not transitions or self.notifier is None:
            return
        try:
            self.notifier.notify(transitions)
        except Exception:
            self.notify_failures += 1
            log.exception("alert notification failed", extra={"count": len(transitions)})

    def _all_rules(self) -> Iterable[Rule]:
        yield from self.rules.defaults
        for rules in self.rules.profiles.values():
            yield from rules


def dropped_counter(message: dict[str, Any]) -> tuple[str, int] | None:
    """(scope, count) of readings the agent dropped, from a health message.

    Accepted shapes: ``"dropped": {"total": n, "sinceBoot": m}``, ``"dropped": n`` (total),
    or ``"droppedTotal"`` / ``"droppedSinceBoot"``. A total wins over a per-boot count; a
    per-boot count is scoped to the message's ``boot``.
    """
    dropped = message.get("dropped")
    total = since_boot = None
    if isinstance(dropped, dict):
        total, since_boot = _int(dropped.get("total")), _int(dropped.get("sinceBoot"))
    elif dropped is not None:
        total = _int(dropped)
    total = total if total is not None else _int(message.get("droppedTotal"))
    since_boot = since_boot if since_boot is not None else _int(message.get("droppedSinceBoot"))
    if total is not None:
        return "total", total
    if since_boot is not None:
        return f"boot:{message.get('boot', '')}", since_boot
    return None


def sensor_statuses(message: dict[str, Any]) -> list[tuple[str, bool, int]]:
    """(sensor id, failing, error count) for each sensor a health message reports on.

    A sensor still ``starting`` has no verdict yet and is left out.
    """
    found: list[tuple[str, bool, int]] = []
    for sensor in message.get("sensors") or ():
        if not isinstance(sensor, dict) or not isinstance(sensor.get("sensorId"), str):
            continue
        status = sensor.get("status")
        if status in ("ok", "failing"):
            found.append((sensor["sensorId"], status == "failing", _int(sensor.get("errors")) or 0))
    return found


def _fresh(key: AlertKey, site: str, equipment: str) -> AlertState:
    return AlertState(key=key, site=site, equipment=equipment)


def _version(state: AlertState | None) -> int | None:
    return None if state is None else state.version


def _ts(reading: dict[str, Any]) -> int:
    return int(reading["ts"])


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)
