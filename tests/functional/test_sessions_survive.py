"""Nothing acknowledged into the void: broker crashes, a cut rules-engine connection and
identity thieves, against the real local stack with real agents."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from support.localstack import DeviceConnection

from chantier.names import RULES_ENGINE_IDENTITY, topic
from chantier.s3keys import raw_key
from cloud.local.stack import LocalStack
from commands.simulator.fleet import BASIC_INGEST_PREFIX, agent_config, provision_machine
from device import sending as sending_module
from device.agent import Agent
from device.bootstrap import build_agent

pytestmark = [pytest.mark.functional, pytest.mark.timeout(240)]
SITE = "survive-site"
EXAMPLE = Path(__file__).resolve().parents[2] / "chantier/contracts/examples/valid"


def _wait_for(condition, timeout_s: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


def _landed_readings(stack: LocalStack, thing: str) -> tuple[set[tuple[str, int]], int]:
    """Readings of a thing found in its raw objects (each at most once), and the versions."""
    assert stack.info is not None
    s3 = stack.client("s3")
    readings: set[tuple[str, int]] = set()
    versions = 0
    prefix = f"raw/site={SITE}/thing={thing}/"
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.info.raw_bucket, Prefix=prefix
    ):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=stack.info.raw_bucket, Key=item["Key"])["Body"].read()
            for reading in json.loads(body)["readings"]:
                key = (reading["sensorId"], reading["ts"])
                assert key not in readings, f"{key} of {thing} landed in two objects"
                readings.add(key)
    for page in s3.get_paginator("list_object_versions").paginate(
        Bucket=stack.info.raw_bucket, Prefix=prefix
    ):
        versions += len(page.get("Versions", []))
    return readings, versions


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Agents shut out while the engine resubscribes retry within a second, not minutes."""
    monkeypatch.setattr(sending_module, "REFUSED_BACKOFF_S", (0.2, 1.0))


class Fleet:
    """A few real agents publishing fast through Basic Ingest, in threads of this process."""

    def __init__(self, stack: LocalStack, names: list[str]) -> None:
        self.agents: list[Agent] = []
        for index, name in enumerate(names):
            machine, _ = provision_machine(stack, name, SITE, "generator")
            config = agent_config(machine, stack, seed=20 + index, batch_age_s=0.3)
            self.agents.append(
                build_agent(
                    dataclasses.replace(
                        config,
                        sample_interval_s=0.05,
                        reconnect_min_s=0.1,
                        reconnect_max_s=0.5,
                        health_interval_s=3600,
                    )
                )
            )
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=a.run, args=(self.stop,)) for a in self.agents]

    def __enter__(self) -> Fleet:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(20)

    def settle(self, timeout_s: float = 30.0) -> bool:
        """Wait until every agent holds less than a batch (nothing waiting for a retry), stop
        them (a clean stop sends the batch being filled); True when every queue is empty."""

        def unacked(agent: Agent) -> int:
            stats = agent.stats()
            return int(stats["readings"] - stats["readings_acked"])

        _wait_for(lambda: all(unacked(a) < 8 for a in self.agents), timeout_s)
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout_s)
        return all(a.stats()["queue_depth"] == 0 for a in self.agents)


def _check_every_reading_landed_once(stack: LocalStack, fleet: Fleet) -> dict[str, int]:
    assert stack.bridge is not None and stack.bridge.quiet(1.0, 20)
    figures = {"taken": 0, "landed": 0, "queued": 0, "versions": 0}
    for agent in fleet.agents:
        stats = agent.stats()
        landed, versions = _landed_readings(stack, agent.config.thing)
        figures["taken"] += stats["readings"]
        figures["landed"] += len(landed)
        figures["queued"] += stats["queue_depth"]
        figures["versions"] += versions
        assert stats["queue_depth"] == 0, f"{agent.config.thing} still holds readings"
        assert len(landed) == stats["readings"], (agent.config.thing, stats, len(landed))
    return figures


def _kill_broker(stack: LocalStack) -> None:
    assert stack.broker is not None
    old = stack.broker.process.pid
    os.kill(old, signal.SIGKILL)
    assert _wait_for(lambda: stack.broker is not None and stack.broker.process.pid != old), (
        "the broker was not restarted"
    )


def test_broker_killed_at_random_moments_loses_nothing(stack: LocalStack) -> None:
    seed = int(os.environ.get("KILL_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    with Fleet(stack, ["gen-k1", "gen-k2", "gen-k3"]) as fleet:
        for _ in range(3):
            time.sleep(rng.uniform(0.5, 2.0))
            _kill_broker(stack)
        time.sleep(1.0)
        assert fleet.settle(), (
            f"agents kept readings after the broker came back (seed {seed}): "
            f"{[a.stats() for a in fleet.agents]}"
        )
    figures = _check_every_reading_landed_once(stack, fleet)
    assert figures["taken"] > 50, figures
    assert stack.supervisor is not None
    assert stack.supervisor.restarts()["mosquitto"] >= 3
    info = json.loads((Path(stack.state_dir) / "stack.json").read_text())
    assert info["broker_pid"] == stack.broker.process.pid  # type: ignore[union-attr]


def _broker_connections(port: int) -> set[int]:
    """File descriptors of this process connected to the broker's port."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            stream = sock.type == socket.SOCK_STREAM and sock.family == socket.AF_INET
            if stream and sock.getpeername()[1] == port:
                found.add(fd)
        except OSError:
            pass
        finally:
            sock.close()
    return found


def _cut(fds: set[int]) -> None:
    """Cut these TCP connections as a network failure would (the owner's fd stays open)."""
    for fd in fds:
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.close()


def test_rules_engine_connection_cut_loses_nothing(stack: LocalStack) -> None:
    assert stack.bridge is not None and stack.info is not None
    port = stack.info.broker_port
    engine = _broker_connections(port)  # no device is connected yet: only the engine
    assert engine
    with Fleet(stack, ["gen-c1", "gen-c2"]) as fleet:
        for _ in range(3):
            time.sleep(0.8)
            others = _broker_connections(port) - engine
            connections = stack.bridge.connections
            _cut(engine)
            assert _wait_for(lambda c=connections: stack.bridge.connections > c), (  # type: ignore[union-attr]
                "the rules engine did not reconnect"
            )
            engine = _broker_connections(port) - others
        time.sleep(1.0)
        assert fleet.settle(), "agents kept readings after the engine came back"
    _check_every_reading_landed_once(stack, fleet)


def test_no_device_can_take_the_rules_engines_identity(stack: LocalStack) -> None:
    assert stack.bridge is not None
    thief, _ = provision_machine(stack, "gen-thief", SITE, "generator")
    victim, _ = provision_machine(stack, "gen-victim", SITE, "generator")
    connections = stack.bridge.connections
    batch = json.loads((EXAMPLE / "excavator-engine.json").read_bytes())
    batch.update(thing="gen-victim", site=SITE, equipment="generator", boot="0000beef", seq=7)
    raw = json.dumps(batch).encode()
    with (
        DeviceConnection(stack, thief, client_id=RULES_ENGINE_IDENTITY),
        DeviceConnection(stack, victim) as device,
    ):
        time.sleep(0.5)
        outcome = device.publish(topic(SITE, "gen-victim", "telemetry", BASIC_INGEST_PREFIX), raw)
        assert outcome.status == "acked" and outcome.code == 0, outcome
    key = raw_key(SITE, "gen-victim", batch["sentAt"], "0000beef", 7)
    assert stack.info is not None
    s3 = stack.client("s3")
    assert _wait_for(
        lambda: s3.list_objects_v2(Bucket=stack.info.raw_bucket, Prefix=key).get("KeyCount") == 1  # type: ignore[union-attr]
    ), "the batch did not land: the engine lost its session to a device"
    assert stack.bridge.connections == connections, "the engine was disconnected"


def test_a_device_cannot_take_another_devices_client_id(stack: LocalStack) -> None:
    victim, _ = provision_machine(stack, "gen-owner", SITE, "generator")
    thief, _ = provision_machine(stack, "gen-copycat", SITE, "generator")
    batch = json.loads((EXAMPLE / "excavator-engine.json").read_bytes())
    batch.update(thing="gen-owner", site=SITE, equipment="generator", boot="0000cafe", seq=1)
    with DeviceConnection(stack, victim) as device:
        drops: list[bool] = []
        device.publisher._on_connection = lambda change: drops.append(change.up)  # type: ignore[attr-defined]
        with DeviceConnection(stack, thief, client_id="gen-owner"):
            time.sleep(1.0)
            outcome = device.publish(
                topic(SITE, "gen-owner", "telemetry", BASIC_INGEST_PREFIX),
                json.dumps(batch).encode(),
            )
        assert outcome.status == "acked", outcome
        assert False not in drops, "the owner was disconnected by a device using its client id"
