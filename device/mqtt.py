"""The agent's transport over MQTT5 with the AWS IoT device SDK: mTLS, QoS 1, PUBACK reason
codes honoured. The only module of the agent that imports the MQTT client library."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from awscrt import mqtt5
from awsiot import mqtt5_client_builder

from device.transport import (
    ACKED,
    CONNECT_FAILED,
    CONNECTED,
    DISCONNECTED,
    FAILED,
    REFUSED,
    STOPPED,
    ConnectionListener,
    LinkChange,
    OnDone,
    PublishOutcome,
    TransportError,
)

# How the client says a disconnection was asked for (stop()), not suffered.
USER_REQUESTED_STOP = "AWS_ERROR_MQTT5_USER_REQUESTED_STOP"


class MqttTransport:
    """One MQTT5 connection; the CRT client reconnects by itself with backoff and jitter."""

    def __init__(
        self,
        *,
        endpoint: str,
        port: int,
        cert: Path,
        key: Path,
        ca: Path,
        client_id: str,
        on_connection: ConnectionListener | None = None,
        ack_timeout_s: int = 20,
        min_backoff_ms: int = 500,
        max_backoff_ms: int = 30_000,
        connect_timeout_ms: int = 10_000,
        keep_alive_s: int = 60,
    ) -> None:
        for what, path in (("cert", cert), ("key", key), ("ca", ca)):
            if not Path(path).is_file():
                raise TransportError(f"{what} file {path} does not exist: expected a PEM file")
        self._on_connection: ConnectionListener = on_connection or (lambda change: None)
        self._connected = threading.Event()
        self._stopped = threading.Event()
        self._stopping = False
        try:
            self._client = mqtt5_client_builder.mtls_from_path(
                endpoint=endpoint,
                port=port,
                cert_filepath=str(cert),
                pri_key_filepath=str(key),
                ca_filepath=str(ca),
                client_id=client_id,
                # Our queue is the only source of truth for what is unsent, so the client
                # fails in-flight publishes on disconnect and we re-send the same bytes.
                session_behavior=mqtt5.ClientSessionBehaviorType.CLEAN,
                offline_queue_behavior=mqtt5.ClientOperationQueueBehaviorType.FAIL_ALL_ON_DISCONNECT,
                retry_jitter_mode=mqtt5.ExponentialBackoffJitterMode.FULL,
                min_reconnect_delay_ms=min_backoff_ms,
                max_reconnect_delay_ms=max_backoff_ms,
                min_connected_time_to_reset_reconnect_delay_ms=30_000,
                connack_timeout_ms=connect_timeout_ms,
                ping_timeout_ms=5_000,
                ack_timeout_sec=ack_timeout_s,
                keep_alive_interval_sec=keep_alive_s,
                enable_metrics_collection=False,
                on_lifecycle_connection_success=self._on_success,
                on_lifecycle_connection_failure=self._on_failure,
                on_lifecycle_disconnection=self._on_disconnection,
                on_lifecycle_stopped=self._on_stopped,
            )
        except Exception as exc:
            raise TransportError(
                f"cannot build the MQTT client for {endpoint}:{port}: {exc}"
            ) from exc

    def _on_success(self, data: Any) -> None:
        self._connected.set()
        self._on_connection(LinkChange(CONNECTED))

    def _on_failure(self, data: Any) -> None:
        self._connected.clear()
        self._on_connection(_change(CONNECT_FAILED, data))

    def _on_disconnection(self, data: Any) -> None:
        self._connected.clear()
        change = _change(DISCONNECTED, data)
        if self._stopping or change.error == USER_REQUESTED_STOP:
            change = LinkChange(STOPPED, change.error, change.detail)
        self._on_connection(change)

    def _on_stopped(self, data: Any) -> None:
        self._connected.clear()
        self._stopped.set()

    def set_on_connection(self, listener: ConnectionListener) -> None:
        self._on_connection = listener

    def start(self) -> None:
        self._stopped.clear()
        self._stopping = False
        self._client.start()

    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def publish(self, topic: str, payload: bytes, on_done: OnDone) -> None:
        """QoS 1 publish; `on_done` runs once, on a client thread, with the outcome."""
        packet = mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE)
        try:
            future = self._client.publish(packet)
        except Exception as exc:
            on_done(PublishOutcome(FAILED, f"publish not accepted by the client: {exc}"))
            return
        future.add_done_callback(lambda f: on_done(outcome_of(f)))

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Disconnect; True if the client confirmed it stopped within the bound."""
        self._stopping = True
        try:
            self._client.stop()
        except Exception:
            return False
        return self._stopped.wait(timeout_s)


NO_MATCHING_SUBSCRIBERS = 0x10


def outcome_of(future: Future[Any]) -> PublishOutcome:
    """What a finished QoS 1 publish future means for the batch."""
    try:
        result = future.result(timeout=0)
    except Exception as exc:
        return PublishOutcome(FAILED, _describe(exc))
    puback = getattr(result, "puback", None)
    if puback is None:
        return PublishOutcome(FAILED, "no PUBACK for a QoS 1 publish")
    code = int(puback.reason_code)
    if code == NO_MATCHING_SUBSCRIBERS:
        # A success code in MQTT 5, but it says nobody received the batch: on the local stack
        # the rules engine is away (e.g. Mosquitto restarted). IoT Core never answers it, so
        # keeping the batch for a retry costs nothing there.
        return PublishOutcome(
            REFUSED, "no matching subscribers: nobody received the batch, kept for a retry", code
        )
    if code < 0x80:
        return PublishOutcome(ACKED, code=code)
    name = getattr(puback.reason_code, "name", str(code))
    detail = f": {puback.reason_string}" if getattr(puback, "reason_string", None) else ""
    return PublishOutcome(REFUSED, f"broker refused the publish ({name}){detail}", code)


def _change(phase: str, data: Any) -> LinkChange:
    """A failed attempt or a disconnection, with the broker's CONNACK refusal when there is one."""
    connack = getattr(data, "connack_packet", None)
    code = getattr(connack, "reason_code", None)
    if code is not None and int(code) >= 0x80:
        name = getattr(code, "name", str(int(code)))
        reason = getattr(connack, "reason_string", None) or ""
        return LinkChange(phase, f"CONNACK {name}", f"the broker refused: {name} {reason}".strip())
    exc = getattr(data, "exception", None)
    return LinkChange(phase, getattr(exc, "name", None), getattr(exc, "message", None) or "")


def _describe(exc: object) -> str:
    if exc is None:
        return "no reason given"
    name = getattr(exc, "name", None)
    return f"{name}: {exc}" if name else str(exc)
