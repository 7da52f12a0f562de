"""A real Mosquitto on a free 127.0.0.1 port, and an MQTT 5 client with timeouts."""

from __future__ import annotations

import getpass
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloud.local.processes import free_port
from provisioning.ca import CertificateAuthority

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
START_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0


@dataclass
class Broker:
    """One Mosquitto process with TLS, client certificates, identity as user name and a CRL."""

    workdir: Path
    ca: CertificateAuthority
    acl: str = ""
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        server = self.ca.issue_server_certificate(
            "broker", ["localhost", "127.0.0.1"], self.workdir / "server"
        )
        acl_line = ""
        if self.acl:
            (self.workdir / "acl").write_text(self.acl)
            acl_line = f"acl_file {self.workdir / 'acl'}\n"
        config = self.workdir / "mosquitto.conf"
        # Started as root, Mosquitto would switch to the `mosquitto` user, which cannot read
        # the 0700 CA folder; naming the current user keeps it as is.
        config.write_text(
            f"user {getpass.getuser()}\npersistence false\nlog_dest file {self.log_path}\n"
            f"log_type all\nlistener {self.port} 127.0.0.1\ncafile {self.ca.cert_path}\n"
            f"certfile {server.cert_path}\nkeyfile {server.key_path}\n"
            "require_certificate true\nuse_identity_as_username true\n"
            f"crlfile {self.ca.crl_path}\n{acl_line}"
        )
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._wait_for_log("running", occurrences=1)

    def write_acl(self, text: str) -> None:
        tmp = self.workdir / "acl.tmp"
        tmp.write_text(text)
        tmp.replace(self.workdir / "acl")

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its configuration, ACL and CRL."""
        assert self.process is not None
        before = self._log_text().count("Reloading config")
        self.process.send_signal(signal.SIGHUP)
        self._wait_for_log("Reloading config", occurrences=before + 1)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _wait_for_log(self, text: str, occurrences: int) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while self._log_text().count(text) < occurrences:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited: {stderr}{self._log_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto did not log {text!r} within {START_TIMEOUT_S} s")
            time.sleep(0.05)
        # The log line is written just before the new settings apply; give it a moment.
        time.sleep(0.1)


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[type[Broker]]:
    started: list[Broker] = []

    class _Tracked(Broker):
        def start(self) -> None:
            started.append(self)
            super().start()

    yield _Tracked
    for broker in started:
        broker.stop()


@dataclass
class Session:
    """A connected MQTT 5 client; publish() waits for the PUBACK."""

    client: object
    disconnected: threading.Event
    received: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)
    closed: bool = False

    def subscribe(self, topic: str) -> None:
        from awscrt import mqtt5

        assert isinstance(self.client, mqtt5.Client)
        packet = mqtt5.SubscribePacket(
            subscriptions=[mqtt5.Subscription(topic, mqtt5.QoS.AT_LEAST_ONCE)]
        )
        suback = self.client.subscribe(packet).result(CONNECT_TIMEOUT_S)
        assert int(suback.reason_codes[0]) <= 2, f"subscription to {topic} refused"

    def next_message(self, timeout: float = 3.0) -> tuple[str, bytes] | None:
        try:
            return self.received.get(timeout=timeout)
        except queue.Empty:
            return None

    def publish(self, topic: str, payload: bytes) -> int:
        from awscrt import mqtt5

        assert isinstance(self.client, mqtt5.Client)
        packet = mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE)
        result = self.client.publish(packet).result(CONNECT_TIMEOUT_S)
        return int(result.puback.reason_code)

    def close(self) -> None:
        from awscrt import mqtt5

        assert isinstance(self.client, mqtt5.Client)
        if not self.closed:
            self.closed = True
            self.client.stop()


class ConnectRefusedError(Exception):
    """The broker did not accept the connection."""


def mqtt_connect(
    port: int, cert: Path, key: Path, ca: Path, client_id: str, sessions: list[Session]
) -> Session:
    """Connect over TLS with a client certificate; raise ConnectRefusedError when refused."""
    from awscrt import mqtt5
    from awsiot import mqtt5_client_builder

    connected, failed, disconnected = threading.Event(), threading.Event(), threading.Event()
    errors: list[str] = []
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()

    def on_publish(data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        received.put((str(packet.topic), bytes(packet.payload or b"")))

    def on_failure(data: mqtt5.LifecycleConnectFailureData) -> None:
        errors.append(repr(data.exception))
        failed.set()

    client = mqtt5_client_builder.mtls_from_path(
        endpoint="127.0.0.1",
        port=port,
        cert_filepath=str(cert),
        pri_key_filepath=str(key),
        ca_filepath=str(ca),
        client_id=client_id,
        on_lifecycle_connection_success=lambda _data: connected.set(),
        on_lifecycle_connection_failure=on_failure,
        on_lifecycle_disconnection=lambda _data: disconnected.set(),
        on_publish_received=on_publish,
    )
    client.start()
    session = Session(client, disconnected, received)
    sessions.append(session)
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while not (connected.is_set() or failed.is_set()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no connection outcome within {CONNECT_TIMEOUT_S} s")
        time.sleep(0.02)
    if not connected.is_set():
        session.close()
        raise ConnectRefusedError(errors[0] if errors else "refused")
    return session


class Mqtt:
    """Opens sessions for a test and closes them all afterwards."""

    def __init__(self) -> None:
        self.sessions: list[Session] = []

    def connect(self, port: int, cert: Path, key: Path, ca: Path, client_id: str) -> Session:
        """Connected session; fails the test if the broker refuses."""
        try:
            return mqtt_connect(port, cert, key, ca, client_id, self.sessions)
        except ConnectRefusedError as exc:
            pytest.fail(f"connection refused: {exc}")

    def refused(
        self, port: int, cert: Path, key: Path, ca: Path, client_id: str, within: float = 0.0
    ) -> str:
        """The refusal reason; fails the test if the broker still accepts after `within` s.

        `within` covers a reload the caller signalled but did not wait for.
        """
        deadline = time.monotonic() + within
        while True:
            try:
                session = mqtt_connect(port, cert, key, ca, client_id, self.sessions)
            except ConnectRefusedError as exc:
                return str(exc)
            session.close()
            if time.monotonic() >= deadline:
                pytest.fail(f"{client_id} was accepted, expected a refusal")
            time.sleep(0.1)

    def close(self) -> None:
        for session in self.sessions:
            session.close()


@pytest.fixture
def mqtt() -> Iterator[Mqtt]:
    clients = Mqtt()
    yield clients
    clients.close()


@pytest.fixture
def iot(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The IoT registry, from moto in-process (the broker is the real part under test)."""
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("iot", region_name="eu-west-3")
