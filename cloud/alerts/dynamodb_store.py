"""AlertStore on one DynamoDB table (pk/sk, GSI ``gsi1`` on gsi1pk/gsi1sk, TTL ``expiresAt``).

Item layout (single table):

- alert state: pk ``THING#<thing>``, sk ``STATE#<sensor>#<rule>``; while ACTIVE, ACKNOWLEDGED
  or LATCHED gsi1pk ``OPEN#<site>``, gsi1sk ``<thing>#<sensor>#<rule>``; while SNOOZED gsi1pk
  ``SNOOZED``, gsi1sk ``<until ms, 13 digits>#<thing>#<sensor>#<rule>``; otherwise no gsi1 keys.
- last seen: pk ``SEEN``, sk ``<thing>``, no index entry, so a refresh is one write unit
  (``cloud/alerts/seen_entries.py``: the layout, its partition's throughput, and how entries of
  the previous layout, in the machine's partition and in gsi1, are read and moved).
- transition: pk ``HIST#<thing>#<sensor>#<rule>``, sk ``T#<version, 10 digits>``.

A machine's states share its partition, so one Query per batch loads them; the engine reads
its last seen apart, and only when it has not refreshed or read it within the refresh period
(one eventually consistent GetItem, half a read unit). Every machine's last seen (for the
offline check) is one Query of the ``SEEN`` partition; due snoozes and open alerts per site
are single GSI queries. State items carry plain attributes ``thing``, ``site``,
``equipment``, ``sensorId``, ``rule``, ``severity``, ``state``, ``since``, ``value``,
``version``, ``lastTs``, ``condition``, ``snoozedUntil``, ``updatedAt`` and ``memory`` (JSON
text).

A state and its transitions are written with an outbox rather than a transaction:

1. one PutItem, conditional on the version read, stores the state with its new transitions in
   ``unrecorded`` (JSON text). This is the commit point: the alert is visible once it lands;
2. the transitions are put under ``HIST#…``, keyed by version, so putting one twice is harmless;
3. the state is put again without ``unrecorded``, conditional on the same version.

A reader that finds ``unrecorded`` on a state (its writer died between 1 and 3, or is still
at it) records those transitions itself before handing the state out. The next write replaces
the item, so step 1 is also conditional on no ``unrecorded``: a writer that did not read the
item first (the engine's kept states) gets a conflict and reads it, which records them. The
path to an alert is then a single conditional write, and a transition costs 3 write units
instead of the 4 of a two-item transaction.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import BotoCoreError, ClientError

from cloud.alerts import seen_entries
from cloud.alerts.records import OPEN_STATES, AlertKey, AlertState, State, ThingSeen, Transition
from cloud.alerts.store import ConflictError
from cloud.dynamodb_pages import all_items

log = logging.getLogger(__name__)

UNRECORDED = "unrecorded"  # the outbox attribute: transitions not yet in the history


def state_pk(thing: str) -> str:
    return f"THING#{thing}"


def state_sk(sensor: str, rule: str) -> str:
    return f"STATE#{sensor}#{rule}"


def history_pk(key: AlertKey) -> str:
    return f"HIST#{key.thing}#{key.sensor}#{key.rule}"


class DynamoAlertStore:
    """AlertStore over a boto3 DynamoDB Table resource (``boto3.resource(...).Table(name)``)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    # ---- states --------------------------------------------------------------------------

    def load_thing(self, thing: str) -> tuple[ThingSeen | None, dict[AlertKey, AlertState]]:
        legacy: dict[str, Any] | None = None
        states: dict[AlertKey, AlertState] = {}
        for item in self._partition(thing):
            if seen_entries.is_legacy(item):
                legacy = item
            elif item["sk"].startswith("STATE#"):
                state = self._state(item)
                states[state.key] = state
        # Last seen after the states: the engine refreshes it before clearing an offline alert,
        # so a check that read the cleared state reads the refresh too.
        entry = seen_entries.get_entry(self.table, thing, consistent=True)
        found = seen_entries.newest([entry, legacy])
        return (None if found is None else _seen_from_item(found)), states

    def load_states(self, thing: str) -> dict[AlertKey, AlertState]:
        states = (self._state(i) for i in self._partition(thing) if i["sk"].startswith("STATE#"))
        return {state.key: state for state in states}

    def last_seen(self, thing: str) -> ThingSeen | None:
        # Eventually consistent (half a read unit): an older answer costs one refresh more.
        item = seen_entries.get_entry(self.table, thing, consistent=False)
        return None if item is None else _seen_from_item(item)

    def _partition(self, thing: str) -> Iterator[dict[str, Any]]:
        """The machine's items (states, last health, an old-layout last seen), read consistently."""
        return all_items(
            self.table.query,
            KeyConditionExpression=Key("pk").eq(state_pk(thing)),
            ConsistentRead=True,
        )

    def get_state(self, key: AlertKey) -> AlertState | None:
        response = self.table.get_item(
            Key={"pk": state_pk(key.thing), "sk": state_sk(key.sensor, key.rule)},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else self._state(item)

    def save_state(
        self, state: AlertState, expected_version: int, transitions: Sequence[Transition]
    ) -> None:
        item = state_to_item(state)
        if transitions:
            item[UNRECORDED] = json.dumps([t.as_dict() for t in transitions], separators=(",", ":"))
        self._put_state(item, expected_version)
        if not transitions:
            return
        try:
            self._record(item)
        except (BotoCoreError, ClientError):
            # The state is committed; failing now would lose the notification on the retry.
            # The transitions stay in the outbox and the next reader of the state records them.
            log.warning(
                "transitions left in the outbox", extra={"key": str(state.key)}, exc_info=True
            )

    def _put_state(
        self, item: dict[str, Any], expected_version: int, *, over_outbox: bool = False
    ) -> None:
        """Put a state item if its stored version is `expected_version` and, unless
        `over_outbox`, it has no transitions left to record (the engine may write without
        reading first: cloud/alerts/kept_states.py; a conflict makes it read, which records
        them)."""
        condition, values = _version_condition(expected_version)
        if expected_version and not over_outbox:
            condition += f" AND attribute_not_exists({UNRECORDED})"
        extra = {"ExpressionAttributeValues": values} if values else {}
        try:
            self.table.put_item(Item=item, ConditionExpression=condition, **extra)
        except ClientError as exc:
            key = AlertKey(item["thing"], item["sensorId"], item["rule"])
            raise _conflict(exc, key, expected_version) from exc

    def _record(self, item: dict[str, Any]) -> None:
        """Put the transitions a state item carries into its history, then drop them from it."""
        pending = [transition_from_item(t) for t in json.loads(item[UNRECORDED])]
        if len(pending) == 1:
            self.table.put_item(Item=transition_to_item(pending[0]))
        else:
            with self.table.batch_writer() as writer:
                for transition in pending:
                    writer.put_item(Item=transition_to_item(transition))
        recorded = {k: v for k, v in item.items() if k != UNRECORDED}
        # A newer write may have replaced the item, and with it the outbox: nothing left to do.
        with contextlib.suppress(ConflictError):
            self._put_state(recorded, int(item["version"]), over_outbox=True)

    def _state(self, item: dict[str, Any]) -> AlertState:
        if UNRECORDED in item:
            try:
                self._record(item)
            except (BotoCoreError, ClientError):
                # The state itself is sound; the next reader tries the repair again.
                log.warning(
                    "could not record transitions left in the outbox",
                    extra={"pk": item.get("pk"), "sk": item.get("sk")},
                    exc_info=True,
                )
        return state_from_item(item)

    def history(self, key: AlertKey, limit: int = 100) -> list[Transition]:
        response = self.table.query(
            KeyConditionExpression=Key("pk").eq(history_pk(key)),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [transition_from_item(item) for item in reversed(response.get("Items", []))]

    def list_states(
        self, *, site: str | None = None, thing: str | None = None, open_only: bool = True
    ) -> list[AlertState]:
        if thing is not None:
            items = all_items(
                self.table.query,
                KeyConditionExpression=Key("pk").eq(state_pk(thing))
                & Key("sk").begins_with("STATE#"),
            )
        elif site is not None and open_only:
            items = all_items(
                self.table.query,
                IndexName="gsi1",
                KeyConditionExpression=Key("gsi1pk").eq(f"OPEN#{site}"),
            )
        else:
            items = all_items(self.table.scan, FilterExpression=Attr("sk").begins_with("STATE#"))
        states = [self._state(item) for item in items]
        return sorted(
            (
                s
                for s in states
                if (site is None or s.site == site) and (not open_only or s.is_open)
            ),
            key=lambda s: s.key,
        )

    def snoozes_due(self, now_ms: int) -> list[AlertState]:
        items = all_items(
            self.table.query,
            IndexName="gsi1",
            KeyConditionExpression=Key("gsi1pk").eq("SNOOZED")
            & Key("gsi1sk").lt(f"{now_ms + 1:013d}"),
        )
        return [self._state(item) for item in items]

    # ---- last seen ----------------------------------------------------------------------

    def touch_thing(self, seen: ThingSeen) -> None:
        # A newer last-seen already stored stays: the write is conditional.
        seen_entries.put_entry(self.table, seen.thing, seen.site, seen.equipment, seen.last_seen)

    def stale_things(self, cutoff_ms: int) -> list[ThingSeen]:
        # Reads every machine's entry (about 100 bytes each: 1,000 machines in 12.5 read units)
        # and, while a table deployed before holds some, those of the previous layout.
        entries, legacy = seen_entries.list_entries(self.table)
        self._move_legacy(legacy)
        return [_seen_from_item(item) for item in entries if int(item["lastSeen"]) < cutoff_ms]

    def _move_legacy(self, legacy: Sequence[dict[str, Any]]) -> None:
        """Put old-layout entries into the SEEN partition, so their index reads can end."""
        moved = 0
        for item in legacy:
            try:
                moved += seen_entries.move_legacy(self.table, item)
            except (BotoCoreError, ClientError):
                # Listing still merges what is left; the next run tries again.
                log.warning(
                    "could not move old last-seen entries",
                    extra={"left": len(legacy) - moved},
                    exc_info=True,
                )
                return
        if legacy:
            log.info(
                "moved old last-seen entries", extra={"moved": moved, "left": len(legacy) - moved}
            )


def state_to_item(state: AlertState) -> dict[str, Any]:
    key = state.key
    item: dict[str, Any] = {
        "pk": state_pk(key.thing),
        "sk": state_sk(key.sensor, key.rule),
        "thing": key.thing,
        "site": state.site,
        "equipment": state.equipment,
        "sensorId": key.sensor,
        "rule": key.rule,
        "state": str(state.state),
        "severity": state.severity,
        "since": state.since,
        "value": _decimal(state.value),
        "version": state.version,
        "lastTs": state.last_ts,
        "condition": state.condition,
        "snoozedUntil": state.snoozed_until,
        "memory": json.dumps(state.memory, separators=(",", ":")),
        "updatedAt": state.updated_at,
    }
    if state.state in OPEN_STATES:
        item["gsi1pk"] = f"OPEN#{state.site}"
        item["gsi1sk"] = f"{key.thing}#{key.sensor}#{key.rule}"
    elif state.state is State.SNOOZED and state.snoozed_until is not None:
        item["gsi1pk"] = "SNOOZED"
        item["gsi1sk"] = f"{state.snoozed_until:013d}#{key.thing}#{key.sensor}#{key.rule}"
    return item


def state_from_item(item: dict[str, Any]) -> AlertState:
    return AlertState(
        key=AlertKey(item["thing"], item["sensorId"], item["rule"]),
        site=item.get("site", ""),
        equipment=item.get("equipment", ""),
        state=State(item["state"]),
        severity=item.get("severity"),
        since=int(item.get("since", 0)),
        value=_float(item.get("value")),
        version=int(item.get("version", 0)),
        last_ts=int(item.get("lastTs", 0)),
        condition=item.get("condition"),
        snoozed_until=None if item.get("snoozedUntil") is None else int(item["snoozedUntil"]),
        memory=json.loads(item.get("memory") or "{}"),
        updated_at=int(item.get("updatedAt", 0)),
    )


def transition_to_item(t: Transition) -> dict[str, Any]:
    item = t.as_dict()
    item["value"] = _decimal(t.value)
    item["pk"] = history_pk(t.key)
    item["sk"] = f"T#{t.version:010d}"
    return item


def transition_from_item(item: dict[str, Any]) -> Transition:
    return Transition(
        key=AlertKey(item["thing"], item["sensorId"], item["rule"]),
        site=item.get("site", ""),
        from_state=State(item["from"]),
        to_state=State(item["to"]),
        severity=item.get("severity"),
        at=int(item["at"]),
        value=_float(item.get("value")),
        who=item.get("who", ""),
        note=item.get("note", ""),
        reason=item.get("reason", ""),
        version=int(item["version"]),
        equipment=item.get("equipment", ""),
    )


def _seen_from_item(item: dict[str, Any]) -> ThingSeen:
    return ThingSeen(
        thing=item["thing"],
        site=item.get("site", ""),
        equipment=item.get("equipment", ""),
        last_seen=int(item["lastSeen"]),
    )


def _version_condition(expected: int) -> tuple[str, dict[str, Any]]:
    if expected == 0:
        return "attribute_not_exists(pk)", {}
    return "version = :expected", {":expected": expected}


def _conflict(exc: ClientError, key: AlertKey, expected: int) -> Exception:
    code = exc.response.get("Error", {}).get("Code", "")
    if code != "ConditionalCheckFailedException":
        return exc
    return ConflictError(
        f"{key}: stored version is not {expected}, or its transitions are not recorded yet ({code})"
    )


def _decimal(value: float | None) -> Decimal | None:
    # DynamoDB numbers are decimals; going through str keeps 78.41 as 78.41, not its binary twin.
    return None if value is None else Decimal(str(value))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
