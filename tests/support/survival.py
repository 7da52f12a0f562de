"""Real agents publishing fast while a test breaks the stack under them, and the count of what
landed: every reading a device took, in exactly one raw object (re-sends only as versions)."""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any

from device.agent import Agent
from device.bootstrap import build_agent
from device.config import AgentConfig
from support.alert_stack import wait_for


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

    def settle(self, timeout_s: float = 30.0) -> bool:
        """Wait until every agent holds less than a batch (nothing waiting for a retry), stop
        them (a clean stop sends the batch being filled); True when every queue is empty."""

        def unacked(agent: Agent) -> int:
            stats = agent.stats()
            return int(stats["readings"] - stats["readings_acked"])

        wait_for(lambda: all(unacked(a) < 8 for a in self.agents), timeout_s, poll_s=0.1)
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
