"""Real agents publishing fast while a test breaks the stack under them, and the count of what
landed: every reading a device took, in exactly one raw object (re-sends only as versions)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cloud.local.provisioning import provision_local_fleet
from cloud.local.stack import LocalStack
from cloud.local.stackinfo import StackInfo
from commands.simulator.fleet import Machine, agent_config
from device.agent import Agent
from device.bootstrap import build_agent
from device.config import AgentConfig
from device.link import UP
from provisioning.service import DeviceSpec
from support.alert_stack import wait_for

# Fewer unacknowledged readings than this: only the batch being filled, nothing in flight.
BATCH_READINGS = 8


def fast(config: AgentConfig) -> AgentConfig:
    """A cadence that makes a few seconds of a run hold many batches."""
    return dataclasses.replace(
        config,
        sample_interval_s=0.05,
        batch_max_age_s=0.3,
        reconnect_min_s=0.1,
        reconnect_max_s=0.5,
        health_interval_s=3600,
    )


class Fleet:
    """Agents running in threads of the test process, independent of the stack's process."""

    def __init__(self, configs: list[AgentConfig]) -> None:
        self.agents: list[Agent] = [build_agent(fast(config)) for config in configs]
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

    def behind(self, since_ms: int = 0) -> list[str]:
        """Agents not back to normal, each in words: not connected by a connection made after
        `since_ms` (epoch ms), or holding a batch or more not yet acknowledged."""
        found = []
        for agent in self.agents:
            stats, link = agent.stats(), agent.link.as_dict()
            unacked = int(stats["readings"] - stats["readings_acked"])
            if link["state"] != UP or link["since"] <= since_ms or unacked >= BATCH_READINGS:
                found.append(
                    f"{agent.config.thing}: {link['state']} since {link['since']} "
                    f"(last error {link['lastError']}), {unacked} readings unacknowledged, "
                    f"{stats['queue_depth']} queued"
                )
        return found

    def wait_back(self, timeout_s: float, since_ms: int = 0) -> list[str]:
        """Wait until no agent is `behind(since_ms)`; those still behind at the timeout."""
        last: list[str] = []

        def back() -> bool:
            last[:] = self.behind(since_ms)
            return not last

        wait_for(back, timeout_s, poll_s=0.1)
        return last

    def settle(self, timeout_s: float = 30.0) -> bool:
        """Wait until every agent is connected and holds less than a batch (nothing waiting for
        a retry), stop them (a clean stop sends the batch being filled); True when every queue
        is empty."""
        self.wait_back(timeout_s)
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout_s)
        return all(a.stats()["queue_depth"] == 0 for a in self.agents)


def landed_readings(
    s3: Any, bucket: str, site: str, thing: str
) -> tuple[set[tuple[str, int]], int]:
    """Readings of a thing found in its raw objects (asserting each is in one object only), and
    how many versions those objects have."""
    readings: set[tuple[str, int]] = set()
    prefix = f"raw/site={site}/thing={thing}/"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for reading in json.loads(body)["readings"]:
                key = (reading["sensorId"], reading["ts"])
                assert key not in readings, f"{key} of {thing} landed in two objects"
                readings.add(key)
    versions = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        versions += len(page.get("Versions", []))
    return readings, versions


def wait_for_landings(s3: Any, bucket: str, site: str, fleet: Fleet, timeout_s: float) -> bool:
    """Wait until the site's raw objects hold as many readings as the agents took (the rules
    engine may still be working through what the broker held); False on timeout."""
    expected = sum(int(agent.stats()["readings"]) for agent in fleet.agents)
    counted: dict[str, int] = {}  # a landed object never changes: each is read once

    def enough() -> bool:
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"raw/site={site}/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                if item["Key"] not in counted:
                    body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                    counted[item["Key"]] = len(json.loads(body)["readings"])
        return sum(counted.values()) >= expected

    return bool(wait_for(enough, timeout_s, poll_s=0.2))


def check_every_reading_landed_once(
    s3: Any, bucket: str, site: str, fleet: Fleet
) -> dict[str, int]:
    """Every reading each agent took is in exactly one raw object; returns the totals."""
    figures = {"taken": 0, "landed": 0, "queued": 0, "versions": 0}
    for agent in fleet.agents:
        stats = agent.stats()
        landed, versions = landed_readings(s3, bucket, site, agent.config.thing)
        figures["taken"] += stats["readings"]
        figures["landed"] += len(landed)
        figures["queued"] += stats["queue_depth"]
        figures["versions"] += versions
        assert stats["queue_depth"] == 0, f"{agent.config.thing} still holds readings"
        assert len(landed) == stats["readings"], (agent.config.thing, stats, len(landed))
    return figures


def provisioned_fleet(state: Path, info: StackInfo, site: str, count: int, seed: int) -> Fleet:
    """`count` machines provisioned on the stack of `state` (which may run in another process),
    each with a real agent."""
    specs = [DeviceSpec(f"gen-{i:02d}", site, "generator") for i in range(1, count + 1)]
    handle = SimpleNamespace(info=info)  # agent_config reads the stack's description only
    return Fleet(
        [
            agent_config(
                Machine(d.thing, d.site, d.equipment, d.bundle_dir),
                handle,  # type: ignore[arg-type]
                seed=seed + index,
                batch_age_s=0.3,
            )
            for index, d in enumerate(provision_local_fleet(specs, state_dir=state))
        ]
    )


class EngineConnection:
    """The rules engine's connection to the broker, for a stack running in this process; made
    before any device connects, when the engine's are the only sockets to the broker."""

    def __init__(self, stack: LocalStack) -> None:
        assert stack.info is not None and stack.bridge is not None
        self.bridge = stack.bridge
        self.port = stack.info.broker_port
        self.fds = broker_connections(self.port)
        assert self.fds, "the rules engine is not connected"

    def cut(self, timeout_s: float = 15.0) -> bool:
        """Cut it as a network failure would; True once the engine has connected again."""
        others = broker_connections(self.port) - self.fds
        before = self.bridge.connections
        cut(self.fds)
        again = wait_for(lambda: self.bridge.connections > before, timeout_s)
        self.fds = broker_connections(self.port) - others
        return bool(again)


def broker_connections(port: int) -> set[int]:
    """File descriptors of this process connected to the broker's port."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            copy = os.dup(fd)
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
        try:
            sock = socket.socket(fileno=copy)
        except OSError:
            os.close(copy)  # not a socket: its copy must not stay open
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


def cut(fds: set[int]) -> None:
    """Cut these TCP connections as a network failure would (the owner's fd stays open)."""
    for fd in fds:
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.close()
