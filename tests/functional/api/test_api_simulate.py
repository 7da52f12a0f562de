"""`chantier simulate` on a running stack: real agents tagged with the run, data read back."""

from __future__ import annotations

import io
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from support.api_http import call, interrupt_all, start_body

from cloud.alerts.dynamodb_store import state_to_item
from cloud.local.stack import LocalStack
from commands.api_client import ApiClient
from commands.simulator.runner import SimulateOptions, Simulation, SimulationRefusedError
from device.queue import QUEUE_FILE

pytestmark = pytest.mark.functional


def _options(stack: LocalStack, **overrides: object) -> SimulateOptions:
    assert stack.info is not None
    values: dict[str, object] = {
        "devices": 2,
        "duration_s": 15.0,
        "interval_s": 1.0,
        "state": Path(stack.info.state_dir),
        "batch_age_s": 3.0,
        "fleet": "fsim",
        "site": "fsim-site",
    }
    values.update(overrides)
    return SimulateOptions(**values)  # type: ignore[arg-type]


def _stale_alert(stack: LocalStack, thing: str) -> str:
    """An overheat left open by an earlier run on `thing`; returns how the summary names it."""
    from cloud.alerts.dynamodb_store import DynamoAlertStore
    from cloud.alerts.records import AlertKey, AlertState, State

    assert stack.info is not None
    table = stack.resource("dynamodb").Table(stack.info.alerts_table)
    key = AlertKey(thing, "engine", "engine-overheat")
    state = AlertState(key=key, site="fsim-site", equipment="excavator", state=State.ACTIVE)
    state = replace(state, severity="critical", since=1_000, value=90.0, version=1)
    table.put_item(Item=state_to_item(state))
    assert DynamoAlertStore(table).get_state(key) is not None
    return f"{thing}/engine/engine-overheat"


def test_simulate_two_devices_and_read_back(stack: LocalStack) -> None:
    info = stack.info
    assert info is not None
    interrupt_all(info)
    stale = _stale_alert(stack, "fsim-exc-01")
    out = io.StringIO()
    api = ApiClient(info.api_url, info.api_token)
    summary = Simulation(_options(stack), api, out).run(threading.Event())
    text = out.getvalue()
    assert "started" in text and "landed in S3" in text, text
    assert summary.status == "COMPLETED"
    assert summary.published > 0 and summary.refused == 0
    assert summary.landed == summary.acknowledged > 0
    assert summary.readings_in_api == summary.landed_readings > 0
    assert summary.latency_ms["p50"] is not None
    # an alert an earlier run left open is not this run's
    assert not any(line.startswith(stale) for line in summary.alerts_open)

    status, page = call(info, "GET", f"/api/sensors/data?runId={summary.run_id}&limit=1000")
    assert status == 200
    things = {item["thing"] for item in page["items"]}
    assert things == {"fsim-exc-01", "fsim-crane-01"}
    assert all(item["runId"] == summary.run_id for item in page["items"])
    status, run = call(info, "GET", f"/api/runs/{summary.run_id}")
    assert run["status"] == "COMPLETED" and run["devices"] == 2
    assert run["params"]["site"] == "fsim-site"


def test_simulate_is_refused_when_five_runs_are_running(stack: LocalStack) -> None:
    info = stack.info
    assert info is not None
    interrupt_all(info)
    try:
        for _ in range(5):
            assert call(info, "POST", "/api/runs/start", start_body())[0] == 201
        api = ApiClient(info.api_url, info.api_token)
        with pytest.raises(SimulationRefusedError, match="5 runs are already running"):
            Simulation(_options(stack), api, io.StringIO()).run(threading.Event())
    finally:
        interrupt_all(info)


def test_simulate_in_worker_processes_with_a_ramp(stack: LocalStack, tmp_path: Path) -> None:
    info = stack.info
    assert info is not None
    interrupt_all(info)
    api = ApiClient(info.api_url, info.api_token)
    opts = _options(
        stack,
        devices=3,
        duration_s=10.0,
        fleet="psim",
        ramp_s=1.5,
        processes=2,
        health_interval_s=5.0,
        count_api_readings=False,
        queues=tmp_path / "queues",
    )
    simulation = Simulation(opts, api, io.StringIO())
    summary = simulation.run(threading.Event())
    assert summary.status == "COMPLETED"
    assert sorted(summary.devices) == ["psim-crane-01", "psim-exc-01", "psim-gen-01"]
    assert summary.acknowledged > 0 and summary.refused == 0
    # every acknowledged batch landed, is in the bucket, and every reading is accounted for
    assert summary.lost_batches == 0 and summary.in_bucket == summary.landed >= summary.acknowledged
    queued = summary.queued_at_stop
    assert summary.readings == summary.acknowledged_readings + queued
    assert summary.readings_in_api is None
    assert summary.ok
    assert simulation.started_at is not None and simulation.stopped_at_ms is not None
    assert all(item.batch[0].startswith("psim-") for item in simulation.landed)
    # the machines kept their queues in the folder given, not under the stack's state folder
    run_id = summary.run_id
    for thing in summary.devices:
        assert (tmp_path / "queues" / thing / "runs" / run_id / QUEUE_FILE).is_file()
        assert not (Path(info.state_dir) / "devices" / thing / "runs" / run_id).exists()


def test_a_second_run_on_a_busy_fleet_is_refused_and_closed(stack: LocalStack) -> None:
    info = stack.info
    assert info is not None
    interrupt_all(info)
    try:
        body = start_body(params={"fleet": "fsim", "site": "fsim-site"})
        status, first = call(info, "POST", "/api/runs/start", body)
        assert status == 201
        api = ApiClient(info.api_url, info.api_token)
        simulation = Simulation(_options(stack), api, io.StringIO())
        with pytest.raises(SimulationRefusedError, match=f"in use by run {first['id']}.*--fleet"):
            simulation.run(threading.Event())
        status, mine = call(info, "GET", f"/api/runs/{simulation.summary.run_id}")
        assert mine["status"] == "FAILED" and "in use" in mine["note"]
        # the refused run started no machine: the first run's fleet is untouched
        assert simulation.summary.devices == {}
        assert call(info, "GET", f"/api/runs/{first['id']}")[1]["status"] == "RUNNING"
    finally:
        interrupt_all(info)
