"""Messages waiting for the rules engine's workers: one topic at a time, any free worker.

A topic's messages are handed out in the order they arrived, and never two of one topic at
once, so a thing's batches reach the handlers in order. Different topics share every worker:
a free worker takes the topic that has waited longest, so no message waits behind another
topic's while a worker is idle (with one queue per worker, chosen by a hash of the topic, an
alert's batch waited for its worker to finish other machines' batches while the others idled).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class TopicQueue(Generic[T]):
    """FIFO per topic, topics served in the order they became ready; thread-safe."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._waiting: dict[str, deque[T]] = {}
        self._ready: deque[str] = deque()  # topics with a message and no worker on them
        self._busy: set[str] = set()
        self._closed = False

    def put(self, topic: str, item: T) -> None:
        with self._changed:
            waiting = self._waiting.setdefault(topic, deque())
            waiting.append(item)
            if len(waiting) == 1 and topic not in self._busy:
                self._ready.append(topic)
                self._changed.notify()

    def take(self, timeout_s: float | None = None) -> tuple[str, T] | None:
        """The next message of the topic waiting longest, which stays the taker's until
        `done(topic)`; None once closed with nothing ready, or after `timeout_s`."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._ready or self._closed, timeout_s):
                return None
            if not self._ready:
                return None
            topic = self._ready.popleft()
            waiting = self._waiting[topic]
            item = waiting.popleft()
            if not waiting:
                del self._waiting[topic]
            self._busy.add(topic)
            return topic, item

    def done(self, topic: str) -> None:
        """The taker of `topic` finished its message: the topic's next one may go."""
        with self._changed:
            self._busy.discard(topic)
            if topic in self._waiting:
                self._ready.append(topic)
                self._changed.notify()

    def close(self) -> None:
        """Takers get what is ready, then None."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def __len__(self) -> int:
        with self._changed:
            return sum(len(waiting) for waiting in self._waiting.values())
