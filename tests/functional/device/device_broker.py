"""Throwaway PKI, a TLS Mosquitto on a free 127.0.0.1 port, and a collecting subscriber."""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud.local.processes import free_port, port_open
from provisioning.ca import CertificateAuthority

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
REPO = Path(__file__).resolve().parents[3]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable


@dataclass
class Pki:
    """The project's local CA in `root`, signing the broker's and clients' certificates."""

    root: Path
    ca: CertificateAuthority = field(init=False)

    def __post_init__(self) -> None:
        self.ca = CertificateAuthority.create_or_load(self.root / "ca", common_name="test-ca")

    @property
    def ca_path(self) -> Path:
        return self.ca.cert_path

    def issue(self, cn: str, *, server: bool = False) -> tuple[Path, Path]:
        """Certificate and key for `cn`; a server one carries SAN localhost and 127.0.0.1."""
        if server:
            issued = self.ca.issue_server_certificate(cn, ["localhost", "127.0.0.1"], self.root)
        else:
            issued = self.ca.issue_client_certificate(cn, self.root)
        assert issued.key_path is not None
        return issued.cert_path, issued.key_path


# Same rule as the IoT policy: a client publishes only under its own name (any site in this
# test broker), the collector reads everything.
ACL = """
user collector
topic read dt/#
topic read $aws/#

pattern write dt/chantier/+/%u/telemetry
pattern write dt/chantier/+/%u/health
pattern write $aws/rules/+/dt/chantier/+/%u/telemetry
pattern write $aws/rules/+/dt/chantier/+/%u/health
"""


@dataclass
class Broker:
    """Mosquitto with TLS, require_certificate and identity as user name, restartable."""

    workdir: Path
    pki: Pki
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    crl: bool = False  # refuse the certificates the CA revoked, as the local stack does

    def __post_init__(self) -> None:
        cert, key = self.pki.issue("localhost", server=True)
        (self.workdir / "acl").write_text(ACL)
        self.config = self.workdir / "mosquitto.conf"
        self.config.write_text(
            # persistence keeps the collector's session across a broker restart
            f"user {getpass.getuser()}\npersistence true\n"
            f"persistence_location {self.workdir}/\nautosave_interval 1\n"
            f"log_dest file {self.workdir / 'mosquitto.log'}\nlog_type error\n"
            f"log_type warning\nlog_type notice\n"
            f"listener {self.port} 127.0.0.1\ncafile {self.pki.ca_path}\n"
            f"certfile {cert}\nkeyfile {key}\nrequire_certificate true\n"
            f"use_identity_as_username true\nacl_file {self.workdir / 'acl'}\n"
            "max_inflight_messages 0\nmax_queued_messages 100000\nmessage_size_limit 0\n"
            + (f"crlfile {self.pki.ca.crl_path}\n" if self.crl else "")
        )

    def start(self, timeout_s: float = 10.0) -> None:
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}")
            if port_open(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout_s} s")

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout_s)


class Collector:
    """An MQTT5 subscriber (awscrt) that keeps every message received, in order."""

    def __init__(self, broker: Broker, cert: Path, key: Path, topic: str = "dt/#") -> None:
        from awscrt import mqtt5
        from awsiot import mqtt5_client_builder

        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._mqtt5 = mqtt5
        self.topic = topic
        self.client = mqtt5_client_builder.mtls_from_path(
            endpoint="127.0.0.1",
            port=broker.port,
            cert_filepath=str(cert),
            pri_key_filepath=str(key),
            ca_filepath=str(broker.pki.ca_path),
            client_id="collector",
            # a persistent session: messages sent while the collector reconnects are kept
            session_behavior=mqtt5.ClientSessionBehaviorType.REJOIN_ALWAYS,
            session_expiry_interval_sec=3600,
            min_reconnect_delay_ms=100,
            max_reconnect_delay_ms=1000,
            enable_metrics_collection=False,
            on_publish_received=self._on_publish,
            on_lifecycle_connection_success=self._on_connected,
            on_lifecycle_disconnection=lambda data: self._connected.clear(),
        )

    def _on_connected(self, data: Any) -> None:
        self._connected.set()

    def _on_publish(self, data: Any) -> None:
        packet = data.publish_packet
        with self._lock:
            self.messages.append((packet.topic, bytes(packet.payload)))

    def start(self, timeout_s: float = 10.0) -> None:
        self.client.start()
        if not self._connected.wait(timeout_s):
            raise RuntimeError("collector did not connect")
        future = self.client.subscribe(
            self._mqtt5.SubscribePacket(
                subscriptions=[
                    self._mqtt5.Subscription(
                        topic_filter=self.topic, qos=self._mqtt5.QoS.AT_LEAST_ONCE
                    )
                ]
            )
        )
        future.result(timeout_s)

    def telemetry(self) -> list[tuple[bytes, dict[str, Any]]]:
        with self._lock:
            items = [p for t, p in self.messages if t.endswith("/telemetry")]
        return [(p, json.loads(p)) for p in items]

    def health(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(p) for t, p in self.messages if t.endswith("/health")]

    def stop(self, timeout_s: float = 5.0) -> None:
        stopped = threading.Event()
        try:
            self.client.stop()
        except Exception:
            return
        stopped.wait(0.2)


def agent_toml(
    path: Path,
    *,
    broker: Broker,
    thing: str,
    cert: Path,
    key: Path,
    state_dir: Path,
    extra: str = "",
    sensors: str = "",
) -> Path:
    """An agent configuration pointing at the test broker."""
    sensors = sensors or (
        '[[sensors]]\nname = "engine"\ndriver = "simulated"\nseed = 1\n\n'
        '[[sensors]]\nname = "cabin"\ndriver = "simulated"\nseed = 2\n'
    )
    path.write_text(
        f'thing = "{thing}"\nsite = "test-site"\nequipment = "excavator"\n'
        f'endpoint = "127.0.0.1"\nport = {broker.port}\ncert = "{cert}"\nkey = "{key}"\n'
        f'ca = "{broker.pki.ca_path}"\nstate_dir = "{state_dir}"\nclock_sync = "assume-synced"\n'
        f"{extra}\n{sensors}"
    )
    return path


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`chantier agent run` as a real process, its JSON log appended to `log`."""
    with open(log, "ab") as err:
        return subprocess.Popen(
            [PYTHON, "-m", "chantier.cli", "agent", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=REPO,
        )


ReadingKey = tuple[str, int, float]


def reading_keys(message: dict[str, Any]) -> list[ReadingKey]:
    return [(r["sensorId"], r["ts"], r["temperature"]) for r in message["readings"]]


def queue_snapshot(state_dir: Path) -> set[ReadingKey]:
    """Every reading on disk in the agent's queue, loose or already in a batch."""
    import sqlite3

    path = state_dir / "queue.db"
    if not path.exists():
        return set()
    db = sqlite3.connect(path, timeout=10)  # read-write: lets SQLite recover the WAL
    try:
        keys = {
            (s, int(ts), float(t))
            for s, ts, t in db.execute("SELECT sensor, ts, temperature FROM readings")
        }
        for (payload,) in db.execute("SELECT payload FROM batches"):
            keys.update(reading_keys(json.loads(payload)))
    finally:
        db.close()
    return keys


def check_delivery(
    collector: Collector, on_disk: set[ReadingKey], still_queued: set[ReadingKey]
) -> tuple[int, int]:
    """Every reading seen on disk arrived (or is still queued); duplicates only as
    byte-identical re-sends of one (boot, seq). Returns (batches, readings) delivered."""
    by_name: dict[tuple[str, int], bytes] = {}
    owner: dict[ReadingKey, tuple[str, int]] = {}
    for payload, message in collector.telemetry():
        name = (message["boot"], message["seq"])
        if name in by_name:
            assert by_name[name] == payload, f"batch {name} re-sent with different bytes"
            continue
        by_name[name] = payload
        for key in reading_keys(message):
            assert key not in owner, f"reading {key} in two batches {owner[key]} and {name}"
            owner[key] = name
    missing = on_disk - set(owner) - still_queued
    assert not missing, (
        f"{len(missing)} readings committed to disk never arrived: {sorted(missing)[:5]}"
    )
    seqs = sorted(seq for _, seq in by_name)
    assert len(seqs) == len(set(seqs)), "a sequence number was used by two different boots"
    return len(by_name), len(owner)


def wait_until(predicate: Any, timeout_s: float, step_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())
