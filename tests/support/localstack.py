"""Test helpers for the local stack: a tap on the broker and a device's own connection."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from cloud.local.stack import LocalStack
from commands.simulator.fleet import Machine
from device.mqtt import MqttTransport
from device.transport import PublishOutcome


@dataclass
class Tap:
    """Every message the broker delivered on the rules' topics, as (topic, bytes)."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, topic: str, payload: bytes) -> None:
        with self.lock:
            self.messages.append((topic, payload))

    def telemetry(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return [(t, p) for t, p in self.messages if t.endswith("/telemetry")]


class DeviceConnection:
    """A device's own MQTT connection, to publish chosen bytes and read the broker's answer."""

    def __init__(self, stack: LocalStack, machine: Machine, client_id: str | None = None) -> None:
        info = stack.info
        assert info is not None
        self.machine = machine
        self._up = threading.Event()
        self.publisher = MqttTransport(
            endpoint=info.broker_host,
            port=info.broker_port,
            cert=machine.cert,
            key=machine.key,
            ca=machine.ca,
            client_id=client_id or machine.thing,
            on_connection=lambda change: self._up.set() if change.up else None,
            ack_timeout_s=5,
        )

    def __enter__(self) -> DeviceConnection:
        self.publisher.start()
        if not self._up.wait(10):
            self.publisher.stop()
            raise TimeoutError(f"{self.machine.thing} could not connect to the local broker")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.publisher.stop()

    def publish(self, topic_name: str, payload: bytes, timeout_s: float = 10) -> PublishOutcome:
        done = threading.Event()
        outcome: list[PublishOutcome] = []

        def on_done(result: PublishOutcome) -> None:
            outcome.append(result)
            done.set()

        self.publisher.publish(topic_name, payload, on_done)
        if not done.wait(timeout_s):
            raise TimeoutError(f"no answer from the broker to a publish on {topic_name}")
        return outcome[0]
