"""The local scheduler and the template reader's conditions and schedules."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cloud.local.scheduler import (
    SCALE_ENV,
    LocalScheduler,
    ScheduleError,
    rate_seconds,
    scale_from_env,
)
from cloud.local.template import LocalTemplate, ScheduleSpec


def test_rate_expressions() -> None:
    assert rate_seconds("rate(1 minute)") == 60
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("rate(2 hours)") == 7200
    with pytest.raises(ScheduleError, match="rate\\(N minute"):
        rate_seconds("cron(0 12 * * ? *)")


def test_scale_from_env() -> None:
    assert scale_from_env({}) == 1.0
    assert scale_from_env({SCALE_ENV: "0.01"}) == 0.01
    with pytest.raises(ScheduleError, match=SCALE_ENV):
        scale_from_env({SCALE_ENV: "fast"})
    with pytest.raises(ScheduleError, match="above 0"):
        scale_from_env({SCALE_ENV: "0"})


def test_scheduler_invokes_on_the_scaled_period_and_stops() -> None:
    calls: list[tuple[str, Any]] = []
    twice = threading.Event()

    def invoke(arn: str, event: Any) -> None:
        calls.append((arn, event))
        if len(calls) >= 2:
            twice.set()

    spec = ScheduleSpec("Check.Every", "arn:fn", "rate(1 minute)")
    scheduler = LocalScheduler([spec], invoke, scale=0.001)  # 60 ms
    scheduler.start()
    try:
        assert twice.wait(5)
    finally:
        started = time.monotonic()
        scheduler.stop(timeout_s=5)
    assert time.monotonic() - started < 1
    assert calls[0][0] == "arn:fn"
    assert calls[0][1]["detail-type"] == "Scheduled Event"
    runs, failures = scheduler.counts()["Check.Every"]
    assert runs >= 2 and failures == 0


def test_a_failing_invocation_is_counted_and_the_schedule_goes_on() -> None:
    failed = threading.Event()

    def invoke(arn: str, event: Any) -> None:
        if scheduler.counts()["Boom"][1] >= 1:
            failed.set()
        raise RuntimeError("handler failed")

    scheduler = LocalScheduler([ScheduleSpec("Boom", "arn:fn", "rate(1 minute)")], invoke, 0.001)
    scheduler.start()
    try:
        assert failed.wait(5)
    finally:
        scheduler.stop(timeout_s=5)
    assert scheduler.counts()["Boom"][1] >= 1


def test_template_schedules_conditions_and_topic_arns() -> None:
    template = LocalTemplate()
    schedules = {s.function_arn: s.expression for s in template.schedules()}
    assert schedules[template.arn("OfflineCheckFunction")] == "rate(1 minute)"
    # E-mail subscriptions are conditional on an address; the default is none.
    assert template.of_type("AWS::SNS::Subscription") == {}
    env = template.functions()[template.arn("IngestFunction")].environment
    assert env["ALERTS_TOPIC_ARN"] == template.arn("AlertsTopic")
    assert env["ALERTS_TOPIC_ARN"].startswith("arn:aws:sns:")


def test_fn_if_and_no_value(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "Parameters:\n"
        "  Mail: {Type: String, Default: ''}\n"
        "Conditions:\n"
        "  HasMail: !Not [!Equals [!Ref Mail, '']]\n"
        "Resources:\n"
        "  Q:\n"
        "    Type: AWS::SQS::Queue\n"
        "    Properties:\n"
        "      A: !If [HasMail, !Ref Mail, none]\n"
        "      B: !If [HasMail, x, !Ref AWS::NoValue]\n",
        encoding="utf-8",
    )
    template = LocalTemplate(path)
    assert template.properties("Q") == {"A": "none"}
