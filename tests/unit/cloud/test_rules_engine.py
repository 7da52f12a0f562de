"""The local rules engine: where a rule's actions run, and what a failed one leads to."""

from __future__ import annotations

import json
import threading
from typing import Any

from cloud.local.rules_engine import RulesEngine
from cloud.local.template import TopicRuleSpec

SQL = "SELECT * FROM 'dt/chantier/+/+/telemetry'"
TOPIC = "dt/chantier/site-1/exc-1/telemetry"
LAMBDA = {"Lambda": {"FunctionArn": "arn:aws:lambda:eu-west-3:123456789012:function:ingest"}}
S3 = {"S3": {"BucketName": "raw", "Key": "raw/${topic(4)}/${timestamp()}.json"}}
ERRORS = {"S3": {"BucketName": "errors", "Key": "errors/${timestamp()}.json"}}


class Bucket:
    """An S3 client that keeps what is put, and can wait for another action first."""

    def __init__(self, wait_for: threading.Event | None = None) -> None:
        self.puts: list[tuple[str, str, dict[str, Any]]] = []
        self.started = threading.Event()
        self._wait_for = wait_for

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> dict[str, Any]:  # noqa: N803
        self.started.set()
        if self._wait_for is not None and not self._wait_for.wait(5):
            raise TimeoutError("the other action never started: the actions ran one by one")
        self.puts.append((Bucket, Key, json.loads(Body)))
        return {"VersionId": str(len(self.puts))}


def _engine(actions: list[dict[str, Any]], s3: Bucket, invoke: Any) -> RulesEngine:
    rule = TopicRuleSpec("Telemetry", "telemetry", SQL, actions, ERRORS)
    return RulesEngine([rule], s3, invoke, clock_ms=lambda: 1_700_000_000_000)


def test_a_single_action_runs_on_the_thread_that_handles_the_message() -> None:
    threads: list[threading.Thread] = []

    def invoke(arn: str, event: Any) -> dict[str, Any]:
        threads.append(threading.current_thread())
        return {"ok": event["seq"]}

    engine = _engine([LAMBDA], Bucket(), invoke)
    try:
        assert engine.handle(TOPIC, b'{"seq": 7}') == 1
    finally:
        engine.close()
    assert threads == [threading.current_thread()]
    assert engine.stats.actions["Lambda"] == 1


def test_the_actions_of_one_rule_run_side_by_side() -> None:
    invoked = threading.Event()
    s3 = Bucket(wait_for=invoked)

    def invoke(arn: str, event: Any) -> None:
        # The S3 put is still waiting for this call: had they run one after the other, the
        # put would have timed out first.
        assert s3.started.wait(5)
        invoked.set()

    engine = _engine([S3, LAMBDA], s3, invoke)
    try:
        assert engine.handle(TOPIC, b'{"seq": 8}') == 2
    finally:
        engine.close()
    assert s3.puts == [("raw", "raw/exc-1/1700000000000.json", {"seq": 8})]
    assert engine.stats.actions == {"S3": 1, "Lambda": 1}


def test_a_failed_single_action_goes_to_the_error_action() -> None:
    def invoke(arn: str, event: Any) -> None:
        raise RuntimeError("the function could not keep the event")

    s3 = Bucket()
    engine = _engine([LAMBDA], s3, invoke)
    try:
        assert engine.handle(TOPIC, b'{"seq": 9}') == 0
    finally:
        engine.close()
    [(bucket, key, document)] = s3.puts
    assert (bucket, key) == ("errors", "errors/1700000000000.json")
    assert document["failures"] == [
        {
            "failedAction": "LambdaAction",
            "failedResource": LAMBDA["Lambda"]["FunctionArn"],
            "errorMessage": "the function could not keep the event",
        }
    ]
    assert engine.stats.failures["Lambda"] == 1
