"""Powertools metrics for the local stack: validated as in AWS, printed only when switched on.

Locally POWERTOOLS_METRICS_DISABLED is set, and Powertools honours it when a handler returns,
but not when one metric gathers 100 values within an invocation (a large batch, an API call
with many readings): it then prints the EMF document at once, about 3 KB on the terminal of
`chantier stack up`. This provider drops that document instead while metrics are off.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.constants import MAX_METRICS


class QuietWhenDisabledProvider(AmazonCloudWatchEMFProvider):
    """The EMF provider, minus its mid-invocation print while metrics are disabled."""

    def add_metric(self, name: str, unit: Any, value: float, resolution: Any = 60) -> None:
        if is_metrics_disabled():
            values = self.metric_set.get(name, {}).get("Value", [])
            if len(self.metric_set) >= MAX_METRICS - 1 or len(values) >= MAX_METRICS - 1:
                self.metric_set.clear()  # what the print would have flushed, unprinted
        super().add_metric(name=name, unit=unit, value=value, resolution=resolution)


def local_metrics(namespace: str | None = None) -> Metrics:
    """A Metrics object for a handler run by the local stack."""
    chosen = namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Chantier")
    shared = Metrics(namespace=chosen)  # its sets are shared by every Metrics of the process
    provider = QuietWhenDisabledProvider(
        namespace=chosen,
        metric_set=shared.metric_set,
        dimension_set=shared.dimension_set,
        metadata_set=shared.metadata_set,
        default_dimensions=shared.default_dimensions,
    )
    return Metrics(namespace=chosen, provider=provider)
