"""A device connection through paho-mqtt, a client this project did not write (as an attacker's)."""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.local.stack import LocalStack
from commands.simulator.fleet import Machine


class PahoDevice:
    """Connects with a provisioned device's certificate; `publish` returns the PUBACK's code."""

    def __init__(self, stack: LocalStack, machine: Machine) -> None:
        info = stack.info
        assert info is not None, "stack not started"
        self._address = (info.broker_host, info.broker_port)
        self._connected = threading.Event()
        self._acks: dict[int, int] = {}
        self._acked = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=machine.thing, protocol=mqtt.MQTTv5
        )
        self.client.tls_set(
            ca_certs=str(machine.ca), certfile=str(machine.cert), keyfile=str(machine.key)
        )
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            self._connected.set()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._acked:
            self._acks[mid] = int(reason.value)
            self._acked.notify_all()

    def __enter__(self) -> PahoDevice:
        self.client.connect(*self._address, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(10):
            self.__exit__()
            raise TimeoutError("paho could not connect to the local broker")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, timeout_s: float = 10.0) -> int:
        """Publish at QoS 1 and return the PUBACK reason code (0: accepted)."""
        info = self.client.publish(topic, payload, qos=1)
        with self._acked:
            if not self._acked.wait_for(lambda: info.mid in self._acks, timeout_s):
                raise TimeoutError(f"no PUBACK for a publish on {topic}")
            return self._acks.pop(info.mid)
