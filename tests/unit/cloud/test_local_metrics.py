"""Metrics switched off locally stay silent, even past Powertools' 100-value auto-flush."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit

from cloud.local.metrics import local_metrics


def _add_many(count: int) -> None:
    metrics = local_metrics("ChantierTest")

    @metrics.log_metrics
    def handler(event: Any, context: Any) -> dict[str, Any]:
        for value in range(count):
            metrics.add_metric(name="temperature_avg", unit=MetricUnit.Count, value=value)
        return {}

    handler({}, None)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_disabled_metrics_print_nothing_past_100_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    _add_many(250)
    assert capsys.readouterr().out == ""


def test_enabled_metrics_still_print_their_emf(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    _add_many(150)
    out = capsys.readouterr().out
    assert out.count('"_aws"') >= 2 and "temperature_avg" in out  # auto-flushes and the end
