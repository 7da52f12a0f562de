"""Feeds the local rules engine from Mosquitto, as its own client identity over mutual TLS."""

from __future__ import annotations

import logging
import queue
import threading
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from awscrt import mqtt5
from awsiot import mqtt5_client_builder

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], object]


class BridgeError(RuntimeError):
    """The rules engine could not connect or subscribe to the broker."""


class MqttBridge:
    """Subscribes to the rules' topics and hands each message to a worker.

    Messages of one topic always go to the same worker, so a thing's batches are processed in
    the order the broker delivered them, while different things proceed in parallel.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        cert: Path,
        key: Path,
        ca: Path,
        handler: MessageHandler,
        workers: int = 4,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self._handler = handler
        self._connected = threading.Event()
        self._stopped = threading.Event()
        self._failure: str | None = None
        self._pending = 0
        self._idle = threading.Condition()
        self._queues: list[queue.Queue[tuple[str, bytes] | None]] = [
            queue.Queue() for _ in range(workers)
        ]
        self._threads = [
            threading.Thread(target=self._work, args=(q,), name=f"rules-worker-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]
        self._connect_timeout_s = connect_timeout_s
        self._client = mqtt5_client_builder.mtls_from_path(
            endpoint=host,
            port=port,
            cert_filepath=str(cert),
            pri_key_filepath=str(key),
            ca_filepath=str(ca),
            client_id=client_id,
            clean_session=True,
            on_publish_received=self._on_publish,
            on_lifecycle_connection_success=lambda _: self._connected.set(),
            on_lifecycle_connection_failure=self._on_failure,
            on_lifecycle_stopped=lambda _: self._stopped.set(),
        )

    def _on_failure(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        self._failure = str(data.exception)

    def _on_publish(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        topic = packet.topic
        payload = bytes(packet.payload or b"")
        index = zlib.crc32(topic.encode()) % len(self._queues)
        with self._idle:
            self._pending += 1
        self._queues[index].put((topic, payload))

    def _work(self, inbox: queue.Queue[tuple[str, bytes] | None]) -> None:
        while True:
            item = inbox.get()
            if item is None:
                return
            try:
                self._handler(*item)
            except Exception:
                log.exception("rules engine failed on a message from %s", item[0])
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def start(self, topic_filters: Sequence[str], timeout_s: float = 10.0) -> None:
        for thread in self._threads:
            thread.start()
        self._client.start()
        if not self._connected.wait(self._connect_timeout_s):
            self.stop()
            raise BridgeError(
                f"rules engine could not connect to the broker: {self._failure or 'timed out'}"
            )
        packet = mqtt5.SubscribePacket(
            subscriptions=[
                mqtt5.Subscription(topic_filter=f, qos=mqtt5.QoS.AT_LEAST_ONCE)
                for f in topic_filters
            ]
        )
        suback = self._client.subscribe(packet).result(timeout_s)
        refused = [
            (f, code)
            for f, code in zip(topic_filters, suback.reason_codes, strict=False)
            if int(code) >= 0x80
        ]
        if refused:
            self.stop()
            raise BridgeError(f"broker refused the rules engine's subscriptions: {refused}")

    def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait until every message received so far has been processed; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._client.stop()
        self._stopped.wait(timeout_s)
        for inbox in self._queues:
            inbox.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout_s)
