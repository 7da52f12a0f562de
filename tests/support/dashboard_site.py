"""A small demo-like site on a running local stack, built from crafted batches for dashboards."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chantier.names import topic
from cloud.local.stack import LocalStack
from commands.simulator.fleet import BASIC_INGEST_PREFIX, provision_machine
from support.localstack import DeviceConnection

STEP_MS = 5_000
POINTS = 60  # five minutes of readings, one every 5 s


@dataclass(frozen=True)
class DemoSite:
    site: str
    hot: str  # the excavator whose engine overheats (critical alert ACTIVE)
    calm: str  # the crane with normal readings
    started_ms: int
    ended_ms: int
    pending: str = ""  # with rich=True: a compressor whose engine just crossed 82 °C
    latched: str = ""  # with rich=True: a generator whose overheat fired and cleared


def wait_for(condition: Callable[[], Any], timeout_s: float = 15.0, what: str = "") -> Any:
    """Poll until `condition()` is truthy; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what or 'condition'} not met within {timeout_s} s")
        time.sleep(0.2)


def _engine_temperature(index: int) -> float:
    # Warm idle around 60 °C, then a climb through the warning level to the critical one.
    return 60.0 + index * 0.1 if index < 40 else min(84.5, 64.0 + (index - 40) * 1.4)


def _pending_temperature(index: int) -> float:
    # Steady, until the very last reading crosses 82 °C: the rule's 10 s have not elapsed.
    return 62.0 + index * 0.05 if index < POINTS - 1 else 83.2


def _latched_temperature(index: int) -> float:
    # An overheat in the middle of the window, then back to normal: the generator's rule
    # latches, so the alert waits for an acknowledgement though the engine is cool again.
    return 84.0 if 20 <= index < 30 else 61.0 + index * 0.03


def _batch(
    thing: str, site: str, equipment: str, seq: int, readings: list[dict[str, Any]], sent_at: int
) -> bytes:
    message = {
        "schema": 1,
        "thing": thing,
        "site": site,
        "equipment": equipment,
        "boot": "d5b0a7d1",
        "seq": seq,
        "runId": None,
        "sentAt": sent_at,
        "clockSynced": True,
        "readings": readings,
    }
    return json.dumps(message, separators=(",", ":")).encode()


def _health(thing: str, site: str, equipment: str, sensors: list[str], sent_at: int) -> bytes:
    message = {
        "schema": 1,
        "kind": "health",
        "thing": thing,
        "site": site,
        "equipment": equipment,
        "boot": "d5b0a7d1",
        "sentAt": sent_at,
        "agentVersion": "0.1.0",
        "uptimeS": 300.0,
        "clock": {"synced": True, "source": "assume-synced"},
        "queue": {"depth": 3, "batches": 0, "oldestReadingTs": None},
        "dropped": {"sinceBoot": 0, "total": 0},
        "sensors": [
            {"sensorId": s, "status": "ok", "lastError": None, "errors": 0} for s in sensors
        ],
    }
    return json.dumps(message, separators=(",", ":")).encode()


def build_demo_site(
    stack: LocalStack, site: str = "demo-dash", suffix: str = "01", rich: bool = False
) -> DemoSite:
    """Two machines with five minutes of readings; the excavator's engine overheats. `rich`
    adds a compressor whose alert is pending and a generator whose alert latched."""
    hot, calm = f"exc-{suffix}", f"crane-{suffix}"
    pending, latched = (f"comp-{suffix}", f"gen-{suffix}") if rich else ("", "")
    machines = {
        hot: (provision_machine(stack, hot, site, "excavator")[0], "excavator"),
        calm: (provision_machine(stack, calm, site, "crane")[0], "crane"),
    }
    if rich:
        machines[pending] = (provision_machine(stack, pending, site, "compressor")[0], "compressor")
        machines[latched] = (provision_machine(stack, latched, site, "generator")[0], "generator")
    engine_curve = {hot: _engine_temperature, pending: _pending_temperature}
    engine_curve[latched] = _latched_temperature
    end = (int(time.time() * 1000) // 1000) * 1000 - 1000
    start = end - (POINTS - 1) * STEP_MS
    for thing, (machine, equipment) in machines.items():
        sensors = ["cabin", "ambient"] if equipment == "crane" else ["engine", "ambient"]
        with DeviceConnection(stack, machine) as device:
            # Six batches of ten readings, the way the agent sends them.
            for seq in range(POINTS // 10):
                readings = []
                for index in range(seq * 10, seq * 10 + 10):
                    ts = start + index * STEP_MS
                    for sensor in sensors:
                        curve = engine_curve.get(thing) if sensor == "engine" else None
                        # Outside air is damper than an engine bay or a heated cabin.
                        humidity = 72.0 if sensor == "ambient" else 41.0
                        offset = 0.4 if sensor == "ambient" else 0.0
                        temperature = curve(index) if curve else 12.0 + index * 0.02
                        readings.append(
                            {
                                "sensorId": sensor,
                                "ts": ts,
                                "temperature": round(temperature, 2),
                                "humidity": round(humidity - index * 0.05, 2),
                                "pressure": round(1012.0 - index * 0.01 + offset, 2),
                            }
                        )
                sent_at = start + (seq * 10 + 9) * STEP_MS + 200
                payload = _batch(thing, site, equipment, seq, readings, sent_at)
                outcome = device.publish(
                    topic(site, thing, "telemetry", BASIC_INGEST_PREFIX), payload
                )
                assert outcome.status == "acked", outcome
            health = _health(thing, site, equipment, sensors, end + 500)
            outcome = device.publish(topic(site, thing, "health", BASIC_INGEST_PREFIX), health)
            assert outcome.status == "acked", outcome
    assert stack.drain(15), "the rules engine did not drain"
    return DemoSite(
        site=site,
        hot=hot,
        calm=calm,
        started_ms=start,
        ended_ms=end,
        pending=pending,
        latched=latched,
    )
