"""Feeds the local rules engine from Mosquitto, as its own client identity over mutual TLS.

Nothing is acknowledged into the void: the engine keeps a persistent session (the broker holds
messages for it while it is away), subscribes again on every connection (a restarted broker
knows the session only as of its last save), and acknowledges each message only once the
engine has carried out its rule actions, so a message whose handling was cut short comes back
after a reconnect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from awscrt import mqtt5
from awsiot import mqtt5_client_builder

from cloud.local.topic_queue import TopicQueue

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], object]
# How long the broker keeps the session (and queues messages) while the engine is away.
SESSION_EXPIRY_S = 7 * 24 * 3600
# A message whose handling failed (e.g. the AWS endpoint is down) is tried again after this
# pause, doubling up to the maximum, until it succeeds or the bridge stops.
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0


class BridgeError(RuntimeError):
    """The rules engine could not connect or subscribe to the broker."""


class MqttBridge:
    """Subscribes to the rules' topics and hands each message to a worker.

    A topic's messages are processed one at a time in the order the broker delivered them (a
    thing's batches stay in order), different topics in parallel on any free worker
    (cloud/local/topic_queue.py).
    `persistent` keeps the session across reconnects (the rules engine); an observer that must
    not hold messages for later passes False.
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
        persistent: bool = True,
        receive_maximum: int = 100,
    ) -> None:
        self._handler = handler
        self._filters: list[str] = []
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._stopped = threading.Event()
        self._stopping = threading.Event()
        self._failure: str | None = None
        self._pending = 0
        self._last_received = time.monotonic()
        self._idle = threading.Condition()
        self.connections = 0
        self._inbox: TopicQueue[tuple[bytes, Any]] = TopicQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"rules-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        self._connect_timeout_s = connect_timeout_s
        session = (
            mqtt5.ClientSessionBehaviorType.REJOIN_ALWAYS
            if persistent
            else mqtt5.ClientSessionBehaviorType.CLEAN
        )
        self._client = mqtt5_client_builder.mtls_from_path(
            endpoint=host,
            port=port,
            cert_filepath=str(cert),
            pri_key_filepath=str(key),
            ca_filepath=str(ca),
            client_id=client_id,
            session_behavior=session,
            session_expiry_interval_sec=SESSION_EXPIRY_S if persistent else 0,
            receive_maximum=receive_maximum,
            min_reconnect_delay_ms=100,
            max_reconnect_delay_ms=2000,
            on_publish_received=self._on_publish,
            on_lifecycle_connection_success=self._on_connected,
            on_lifecycle_connection_failure=self._on_failure,
            on_lifecycle_disconnection=self._on_disconnected,
            on_lifecycle_stopped=lambda _: self._stopped.set(),
        )

    # ---------- connection ----------
    def _on_connected(self, data: mqtt5.LifecycleConnectSuccessData) -> None:
        self.connections += 1
        resumed = bool(data.connack_packet and data.connack_packet.session_present)
        if self.connections > 1:
            log.warning(
                "rules engine reconnected to the broker (session %s)",
                "resumed" if resumed else "new: subscribing again",
            )
        self._connected.set()
        # Subscribing again to a resumed session costs one round trip and changes nothing;
        # not subscribing to a new one would leave every device publishing into the void.
        if self._filters:
            self._subscribe()

    def _on_disconnected(self, data: mqtt5.LifecycleDisconnectData) -> None:
        self._subscribed.clear()
        if not self._stopping.is_set():
            log.warning("rules engine lost the broker: %s", data.exception)

    def _on_failure(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        self._failure = str(data.exception)

    def _subscribe(self) -> None:
        packet = mqtt5.SubscribePacket(
            subscriptions=[
                mqtt5.Subscription(topic_filter=f, qos=mqtt5.QoS.AT_LEAST_ONCE)
                for f in self._filters
            ]
        )
        self._client.subscribe(packet).add_done_callback(self._on_suback)

    def _on_suback(self, future: Any) -> None:
        try:
            suback = future.result()
        except Exception as exc:
            # The connection dropped meanwhile; the next connection subscribes again.
            log.warning("rules engine subscription not confirmed: %s", exc)
            return
        refused = [
            (f, int(code))
            for f, code in zip(self._filters, suback.reason_codes, strict=False)
            if int(code) >= 0x80
        ]
        if refused:
            self._failure = f"broker refused the rules engine's subscriptions: {refused}"
            log.error(self._failure)
            return
        self._subscribed.set()

    # ---------- messages ----------
    def _on_publish(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        topic = packet.topic
        payload = bytes(packet.payload or b"")
        acquire = getattr(data, "acquire_publish_acknowledgement_control", None)
        ack = acquire() if acquire is not None else None
        with self._idle:
            self._pending += 1
            self._last_received = time.monotonic()
        self._inbox.put(topic, (payload, ack))

    def _work(self) -> None:
        while True:
            taken = self._inbox.take()
            if taken is None:
                return
            topic, (payload, ack) = taken
            try:
                if self._handle_until_done(topic, payload) and ack is not None:
                    self._acknowledge(ack)
            finally:
                self._inbox.done(topic)
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _handle_until_done(self, topic: str, payload: bytes) -> bool:
        """Run the handler until it succeeds; False when the bridge stopped first."""
        pause = RETRY_FIRST_S
        while True:
            try:
                self._handler(topic, payload)
                return True
            except Exception:
                log.exception("rules engine failed on a message from %s: retrying", topic)
            if self._stopping.wait(pause):
                # Left unacknowledged: the broker sends it again to the next session.
                return False
            pause = min(pause * 2, RETRY_MAX_S)

    def _acknowledge(self, ack: Any) -> None:
        try:
            self._client.invoke_publish_acknowledgement(ack)
        except Exception as exc:
            # The connection that delivered it is gone: the broker delivers it again.
            log.info("acknowledgement not sent (%s): the broker will deliver it again", exc)

    # ---------- lifecycle ----------
    def start(self, topic_filters: Sequence[str], timeout_s: float = 10.0) -> None:
        self._filters = list(topic_filters)
        for thread in self._threads:
            thread.start()
        self._client.start()
        if not self._connected.wait(self._connect_timeout_s):
            self.stop()
            raise BridgeError(
                f"rules engine could not connect to the broker: {self._failure or 'timed out'}"
            )
        if not self._subscribed.wait(timeout_s):
            failure = self._failure or "no answer from the broker"
            self.stop()
            raise BridgeError(f"rules engine could not subscribe: {failure}")

    def expect_new_session(self) -> None:
        """Forget the current subscription: the broker is about to start afresh."""
        self._subscribed.clear()

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Wait until the current connection's subscriptions are confirmed."""
        return self._subscribed.wait(timeout_s)

    def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait until every message received so far has been processed; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout_s)

    def quiet(self, for_s: float = 0.3, timeout_s: float = 10.0) -> bool:
        """Wait until nothing is pending and nothing arrived for `for_s`; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while True:
                now = time.monotonic()
                calm_until = self._last_received + for_s
                if self._pending == 0 and now >= calm_until:
                    return True
                if now >= deadline:
                    return False
                self._idle.wait(min(deadline, max(calm_until, now + 0.05)) - now)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        self._client.stop()
        self._stopped.wait(timeout_s)
        self._inbox.close()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout_s)
