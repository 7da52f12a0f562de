"""The MQTT5 adapter against a real Mosquitto with TLS and an ACL."""

from __future__ import annotations

import threading
import time

import pytest
from functional.device.device_broker import Broker, Collector, Pki

from device.mqtt import MqttTransport
from device.transport import (
    ACKED,
    CONNECTED,
    FAILED,
    REFUSED,
    STOPPED,
    LinkChange,
    PublishOutcome,
    TransportError,
)

pytestmark = pytest.mark.functional


def publish_and_wait(pub: MqttTransport, topic: str, payload: bytes) -> PublishOutcome:
    done = threading.Event()
    box: list[PublishOutcome] = []

    def on_done(outcome: PublishOutcome) -> None:
        box.append(outcome)
        done.set()

    pub.publish(topic, payload, on_done)
    assert done.wait(10), "no outcome within 10 s"
    return box[0]


def make(broker: Broker, pki: Pki, thing: str, **kw: object) -> MqttTransport:
    cert, key = pki.issue(thing)
    return MqttTransport(
        endpoint="127.0.0.1",
        port=broker.port,
        cert=cert,
        key=key,
        ca=pki.ca_path,
        client_id=thing,
        **kw,  # type: ignore[arg-type]
    )


def test_ack_and_acl_refusal(broker: Broker, pki: Pki, collector: Collector) -> None:
    events: list[LinkChange] = []
    pub = make(broker, pki, "exc-01", on_connection=events.append)
    pub.start()
    try:
        assert pub.wait_connected(10)
        ok = publish_and_wait(pub, "dt/chantier/site-a/exc-01/telemetry", b'{"x":1}')
        assert ok.status == ACKED
        # another thing's topic: Mosquitto's ACL answers PUBACK 135 (not authorised)
        refused = publish_and_wait(pub, "dt/chantier/site-a/exc-02/telemetry", b'{"x":2}')
        assert refused.status == REFUSED and refused.code == 135
        assert "NOT_AUTHORIZED" in refused.reason
    finally:
        assert pub.stop(5)
    assert events[0].up is True
    # a stop asked for is not a lost connection
    assert [e.phase for e in events] == [CONNECTED, STOPPED]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not collector.messages:
        time.sleep(0.05)
    assert [p for _, p in collector.messages] == [b'{"x":1}']


def test_offline_publish_fails_and_stop_is_bounded(tmp_path, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    broker = Broker(tmp_path, pki)  # never started: nobody listens on the port
    pub = make(broker, pki, "exc-01", min_backoff_ms=100, max_backoff_ms=200)
    pub.start()
    try:
        assert not pub.wait_connected(0.5)
        outcome = publish_and_wait(pub, "dt/chantier/site-a/exc-01/telemetry", b"{}")
        assert outcome.status == FAILED
    finally:
        started = time.monotonic()
        pub.stop(5)
        assert time.monotonic() - started < 5


def test_missing_certificate_named(tmp_path, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TransportError, match=r"cert file .* does not exist"):
        MqttTransport(
            endpoint="127.0.0.1",
            port=1,
            cert=tmp_path / "nope.pem",
            key=tmp_path / "k",
            ca=pki.ca_path,
            client_id="exc-01",
        )


def test_publish_nobody_receives_is_not_taken_as_delivered(broker: Broker, pki: Pki) -> None:
    # No subscriber: Mosquitto answers PUBACK 0x10 "no matching subscribers", a success code.
    pub = make(broker, pki, "exc-01")
    pub.start()
    try:
        assert pub.wait_connected(10)
        outcome = publish_and_wait(pub, "dt/chantier/site-a/exc-01/telemetry", b"{}")
        assert outcome.status == REFUSED and outcome.code == 0x10, outcome
        assert "nobody received" in outcome.reason
    finally:
        pub.stop(5)


def test_reconnects_after_broker_restart(broker: Broker, pki: Pki) -> None:
    ups: list[bool] = []
    pub = make(
        broker,
        pki,
        "exc-01",
        on_connection=lambda change: ups.append(change.up),
        min_backoff_ms=100,
        max_backoff_ms=500,
    )
    pub.start()
    try:
        assert pub.wait_connected(10)
        broker.stop()
        deadline = time.monotonic() + 10
        while pub.connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pub.connected()
        broker.start()
        assert pub.wait_connected(10)
        cert, key = pki.issue("collector")
        listener = Collector(broker, cert, key)
        listener.start()
        try:
            ok = publish_and_wait(pub, "dt/chantier/site-a/exc-01/health", b"{}")
        finally:
            listener.stop()
        assert ok.status == ACKED
        assert ups[0] is True and False in ups and ups[-1] is True
    finally:
        pub.stop(5)
