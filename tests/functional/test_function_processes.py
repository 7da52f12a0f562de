"""Functions run in worker processes of their own: results, errors, deaths and timeouts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from support.worker_handler import prepare

from cloud.local.function_processes import (
    FunctionProcesses,
    FunctionTimeoutError,
    RemoteFunctionError,
    WorkerExitedError,
    WorkerSetup,
)
from cloud.local.functions import LocalFunctions
from cloud.local.template import AsyncInvokeSpec, FunctionSpec

pytestmark = pytest.mark.functional

ARN = "arn:aws:lambda:eu-west-3:123456789012:function:probe"
SPEC = FunctionSpec(
    logical_id="ProbeFunction",
    name="probe",
    handler="support.worker_handler.handler",
    environment={"GREETING": "bonjour"},
    asynchronous=AsyncInvokeSpec(max_retries=1),
    timeout_s=2.0,
)


def nowhere(service: str, table: str = "") -> dict[str, str]:
    return {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-3"}


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[FunctionProcesses]:
    setup = WorkerSetup(
        {ARN: SPEC},
        nowhere,
        tmp_path / "functions.log",
        {**os.environ, "CHANTIER_PROBE": "from the stack"},
        prepare=prepare,
    )
    processes = FunctionProcesses(setup, size=2, affinity=lambda event: event.get("thing"))
    yield processes
    processes.close()


def invoke(workers: FunctionProcesses, event: dict[str, Any], request_id: str = "r-1") -> Any:
    return workers.invoke(ARN, event, request_id)


def test_an_invocation_runs_in_a_worker_with_the_stack_environment_and_its_setup(
    workers: FunctionProcesses,
) -> None:
    result = invoke(workers, {"variable": "CHANTIER_PROBE"}, "request-7")
    assert result["pid"] != os.getpid()
    assert result["request_id"] == "request-7"
    assert result["variable"] == "from the stack"
    assert result["function_env"] == "bonjour"
    assert result["prepared"] == [f"prepared in {result['pid']}"]
    # Warm: the next invocation finds the same worker and the handler it built.
    again = invoke(workers, {})
    assert (again["pid"], again["built_in"]) == (result["pid"], result["built_in"])


def test_invocations_at_once_each_have_a_worker_up_to_the_pool_size(
    workers: FunctionProcesses,
) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: invoke(workers, {"sleep_s": 1.0}), range(3)))
    pids = {result["pid"] for result in results}
    assert len(pids) == 2  # two ran side by side, the third waited for one of them
    assert set(workers.pids()) == pids


def test_a_machine_goes_back_to_the_idle_worker_that_served_it_last(
    workers: FunctionProcesses,
) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = dict(
            pool.map(
                lambda thing: (thing, invoke(workers, {"thing": thing, "sleep_s": 1.0})["pid"]),
                ["exc-01", "exc-02"],
            )
        )
    assert first["exc-01"] != first["exc-02"]
    # One at a time, each would otherwise land on the worker freed first.
    for thing in ["exc-01", "exc-02", "exc-01", "exc-02", "exc-02", "exc-01"]:
        assert invoke(workers, {"thing": thing})["pid"] == first[thing], thing
    # A machine never seen takes the idle worker freed longest ago, leaving the one freed last
    # to the machine it has just served.
    assert invoke(workers, {"thing": "exc-03"})["pid"] == first["exc-02"]


def test_a_modeled_aws_error_keeps_its_name_and_its_class(workers: FunctionProcesses) -> None:
    with pytest.raises(ClientError) as raised:
        invoke(workers, {"raise": "modeled"})
    assert type(raised.value).__name__ == "ResourceNotFoundException"
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_an_error_that_cannot_cross_arrives_as_its_type_and_text(
    workers: FunctionProcesses,
) -> None:
    with pytest.raises(RemoteFunctionError, match=r"TwoArgumentError: disk full \(28\)"):
        invoke(workers, {"raise": "unrebuildable"})
    assert invoke(workers, {})["pid"]  # the worker goes on serving


def test_a_worker_that_dies_fails_its_invocation_and_is_replaced(
    workers: FunctionProcesses,
) -> None:
    first = invoke(workers, {})["pid"]
    with pytest.raises(WorkerExitedError, match="exited with code 3"):
        invoke(workers, {"exit": 3})
    assert first not in workers.pids()
    assert invoke(workers, {})["pid"] != first


def test_an_invocation_past_the_function_timeout_stops_its_worker(
    workers: FunctionProcesses,
) -> None:
    first = invoke(workers, {})["pid"]
    with pytest.raises(FunctionTimeoutError, match=r"timed out after 2\.00 seconds"):
        invoke(workers, {"sleep_s": 30})
    assert first not in workers.pids()
    assert invoke(workers, {})["pid"] != first


def test_warm_starts_every_worker_and_close_stops_them(workers: FunctionProcesses) -> None:
    workers.warm()
    pids = workers.pids()
    assert len(pids) == 2
    workers.close()
    assert workers.pids() == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_local_functions_hand_the_workers_their_functions_and_keep_the_others(
    workers: FunctionProcesses, tmp_path: Path
) -> None:
    here = "arn:aws:lambda:eu-west-3:123456789012:function:here"
    specs = {ARN: SPEC, here: FunctionSpec(**{**SPEC.__dict__, "name": "here"})}
    functions = LocalFunctions(specs, nowhere, tmp_path / "functions.log", processes=workers)
    assert functions.invoke_async(ARN, {})["pid"] != os.getpid()
    assert functions.invoke(here, {})["pid"] == os.getpid()
    assert functions.built() == ["here"]  # the workers' function was never built here
