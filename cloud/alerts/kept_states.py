"""A machine's alert states as this process last stored or read them, for its next batch.

The engine writes a batch's alert before it reads the machine's states when it holds them from
the machine's previous batch (same boot, the seq just before): the write is conditional on the
kept version, so a state someone else changed since fails it and is read again, and the read
that follows the writes catches a change that made no write. Any other batch (the machine's
first here, a gap in its seqs, a re-sent batch) reads first, as the engine always did.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from cloud.alerts.records import AlertKey, AlertState

# About 8 states of a few hundred bytes each per machine: 5,000 machines are a few tens of MB.
KEPT_MACHINES = 5_000


@dataclass(frozen=True)
class _Entry:
    boot: str
    seq: int
    states: dict[AlertKey, AlertState]


class KeptStates:
    """States per machine, handed back only for the batch that follows the one they came from."""

    def __init__(self, limit: int = KEPT_MACHINES) -> None:
        self._limit = limit
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # Lambda runs one invocation per instance at a time; in-process functions may not.
        self._lock = threading.Lock()

    def take(self, thing: str, boot: object, seq: object) -> dict[AlertKey, AlertState] | None:
        """The states kept for `thing` if its batch `boot`/`seq` comes right after theirs."""
        with self._lock:
            entry = self._entries.pop(thing, None)
        # Popped, so no one else holds them: `keep` made the copy.
        return entry.states if entry is not None and _precedes(entry, boot, seq) else None

    def has(self, thing: str, boot: object, seq: object) -> bool:
        """Whether `take` would hand states back for this batch."""
        with self._lock:
            entry = self._entries.get(thing)
        return entry is not None and _precedes(entry, boot, seq)

    def keep(
        self, thing: str, boot: object, seq: object, states: dict[AlertKey, AlertState]
    ) -> None:
        """Keep `states` as stored once `thing`'s batch `boot`/`seq` was applied."""
        if not isinstance(boot, str) or not isinstance(seq, int) or isinstance(seq, bool):
            return
        entry = _Entry(boot, seq, {key: state.copy() for key, state in states.items()})
        with self._lock:
            self._entries.pop(thing, None)
            self._entries[thing] = entry
            while len(self._entries) > self._limit:
                self._entries.popitem(last=False)


def _precedes(entry: _Entry, boot: object, seq: object) -> bool:
    """Whether `entry` came from the batch just before `boot`/`seq`."""
    return (
        entry.boot == boot
        and isinstance(seq, int)
        and not isinstance(seq, bool)
        and seq == entry.seq + 1
    )
