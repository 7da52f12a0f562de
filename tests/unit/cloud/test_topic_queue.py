"""The rules engine's inbox: a topic's messages in order, one at a time; topics share workers."""

from __future__ import annotations

import threading

from cloud.local.topic_queue import TopicQueue


def test_a_topics_messages_come_out_in_order_and_one_at_a_time() -> None:
    inbox: TopicQueue[int] = TopicQueue()
    for n in (1, 2, 3):
        inbox.put("dt/a", n)
    assert inbox.take(0) == ("dt/a", 1)
    # The taker has not finished message 1: message 2 must wait, even for an idle worker.
    assert inbox.take(0) is None
    inbox.done("dt/a")
    assert inbox.take(0) == ("dt/a", 2)
    inbox.done("dt/a")
    assert inbox.take(0) == ("dt/a", 3)
    inbox.done("dt/a")
    assert len(inbox) == 0


def test_a_busy_topic_does_not_hold_back_another_topic() -> None:
    inbox: TopicQueue[str] = TopicQueue()
    inbox.put("dt/busy", "first")
    inbox.put("dt/busy", "second")
    inbox.put("dt/alert", "hot")
    assert inbox.take(0) == ("dt/busy", "first")
    assert inbox.take(0) == ("dt/alert", "hot")


def test_topics_are_served_in_the_order_they_became_ready() -> None:
    inbox: TopicQueue[str] = TopicQueue()
    inbox.put("dt/a", "a1")
    inbox.put("dt/b", "b1")
    inbox.put("dt/a", "a2")
    inbox.put("dt/c", "c1")
    assert inbox.take(0) == ("dt/a", "a1")
    inbox.done("dt/a")  # a2 now waits behind b1 and c1, which were ready before it
    assert [inbox.take(0) for _ in range(3)] == [("dt/b", "b1"), ("dt/c", "c1"), ("dt/a", "a2")]


def test_close_hands_out_what_is_ready_then_none_and_wakes_waiting_takers() -> None:
    inbox: TopicQueue[str] = TopicQueue()
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(inbox.take(5)))
    waiter.start()
    inbox.close()
    waiter.join(5)
    assert got == [None] and not waiter.is_alive()
    inbox.put("dt/a", "late")
    assert inbox.take(0) == ("dt/a", "late")
    inbox.done("dt/a")
    assert inbox.take() is None


def test_many_workers_keep_each_topics_order() -> None:
    inbox: TopicQueue[int] = TopicQueue()
    seen: dict[str, list[int]] = {}
    lock = threading.Lock()

    def work() -> None:
        while (taken := inbox.take(5)) is not None:
            topic, n = taken
            with lock:
                seen.setdefault(topic, []).append(n)
            inbox.done(topic)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    for n in range(200):
        for topic in ("dt/a", "dt/b", "dt/c"):
            inbox.put(topic, n)
    inbox.close()
    for worker in workers:
        worker.join(10)
    assert seen == {topic: list(range(200)) for topic in ("dt/a", "dt/b", "dt/c")}
