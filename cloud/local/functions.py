"""Runs the template's Lambda handlers in process, each built with clients pointed at moto."""

from __future__ import annotations

import importlib
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud.local.template import FunctionSpec


class FunctionNotFoundError(LookupError):
    """A rule action names a function the template does not define."""


@dataclass(frozen=True)
class LocalContext:
    """The parts of the Lambda context object our handlers read."""

    function_name: str
    # A fresh id per invocation, as Lambda gives, so a call's log lines can be told apart.
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


class LocalFunctions:
    """Builds each handler once (like a warm Lambda container) and invokes it synchronously."""

    def __init__(
        self,
        specs: Mapping[str, FunctionSpec],
        boto3_kwargs: Mapping[str, str],
        log_path: Path,
        local_parts: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """`local_parts`: keyword arguments for some handler modules' `build`, by module name:
        the local stand-ins of AWS services boto3 cannot reach on moto (Athena)."""
        self._specs = dict(specs)
        self._local_parts = {name: dict(parts) for name, parts in (local_parts or {}).items()}
        self._boto3_kwargs = dict(boto3_kwargs)
        self._log_path = log_path
        self._handlers: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _build(self, arn: str) -> Any:

        spec = self._specs.get(arn)
        if spec is None:
            raise FunctionNotFoundError(f"no function with ARN {arn} in the template")
        module_name, _, _ = spec.handler.rpartition(".")
        module = importlib.import_module(module_name)
        from cloud.local.logfiles import file_logger
        from cloud.local.metrics import local_metrics

        # file_logger, not Logger(logger_handler=…): a second stack in one process would
        # otherwise get a handler without formatter and fail on the first append_keys.
        logger = file_logger(
            spec.environment.get("POWERTOOLS_SERVICE_NAME", spec.name), self._log_path
        )
        metrics = local_metrics(spec.environment.get("POWERTOOLS_METRICS_NAMESPACE"))
        return module.build(
            spec.environment,
            self._boto3_kwargs,
            logger=logger,
            metrics=metrics,
            **self._local_parts.get(module_name, {}),
        )

    def warm(self) -> None:
        """Build every handler now, as provisioned concurrency would, instead of on first use."""
        for arn in self._specs:
            self._handler(arn)

    def built(self) -> list[str]:
        """Names of the functions whose handler is built, sorted."""
        with self._lock:
            return sorted(self._specs[arn].name for arn in self._handlers)

    def _handler(self, arn: str) -> Any:
        with self._lock:
            handler = self._handlers.get(arn)
            if handler is None:
                handler = self._handlers[arn] = self._build(arn)
            return handler

    def invoke(self, arn: str, event: Any) -> Any:
        handler = self._handler(arn)
        name = self._specs[arn].name
        return handler(event, LocalContext(function_name=name, invoked_function_arn=arn))
