"""What every Lambda entry point shares: Powertools defaults and wiring on first use."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics

Handler = Callable[[Any, Any], dict[str, Any]]


def powertools(
    env: Mapping[str, str], logger: Logger | None, metrics: Metrics | None
) -> tuple[Logger, Metrics]:
    """The given logger and metrics, or ones named from the function's environment."""
    return (
        logger or Logger(service=env.get("POWERTOOLS_SERVICE_NAME", "chantier")),
        metrics or Metrics(namespace=env.get("POWERTOOLS_METRICS_NAMESPACE", "Chantier")),
    )


class LazyHandler:
    """Lambda entry point that wires its handler from the environment on the first event.

    Wiring at import time would make every cold start pay for clients a failed import never
    needs, and would stop tests from importing the module without AWS settings.
    """

    def __init__(self, build: Callable[[Mapping[str, str]], Handler]) -> None:
        self._build = build
        self._handler: Handler | None = None

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        if self._handler is None:
            self._handler = self._build(os.environ)
        return self._handler(event, context)
