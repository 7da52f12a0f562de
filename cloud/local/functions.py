"""Runs the template's Lambda handlers, each built with clients pointed at moto: in this process,
or in worker processes for the functions given to `LocalFunctions(processes=…)`."""

from __future__ import annotations

import importlib
import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud.local.template import FunctionSpec

if TYPE_CHECKING:
    from cloud.bootstrap import Boto3Kwargs
    from cloud.local.function_processes import FunctionProcesses

log = logging.getLogger(__name__)
# Lambda waits about a minute, then two, between the attempts of an asynchronous event; the
# local stack keeps the same count and order in seconds, while the message stays unacknowledged
# to the broker (a stack killed meanwhile gets it again).
RETRY_PAUSES_S = (1.0, 2.0)


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
        boto3_kwargs: Boto3Kwargs,
        log_path: Path,
        local_parts: Mapping[str, Mapping[str, Any]] | None = None,
        retry_pauses_s: tuple[float, ...] = RETRY_PAUSES_S,
        processes: FunctionProcesses | None = None,
    ) -> None:
        """`local_parts`: keyword arguments for some handler modules' `build`, by module name:
        the local stand-ins of AWS services boto3 cannot reach on moto (Athena); `processes`
        runs the functions it names in its worker processes, the others run here."""
        self._specs = dict(specs)
        self._processes = processes
        self._retry_pauses_s = retry_pauses_s
        self._destinations: dict[str, Any] = {}
        self._stopping = threading.Event()
        self._local_parts = {name: dict(parts) for name, parts in (local_parts or {}).items()}
        self._boto3_kwargs = boto3_kwargs
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
            if self._processes is None or arn not in self._processes.arns:
                self._handler(arn)
        if self._processes is not None:
            self._processes.warm()

    def built(self) -> list[str]:
        """Names of the functions built in this process, sorted."""
        with self._lock:
            return sorted(self._specs[arn].name for arn in self._handlers)

    def _handler(self, arn: str) -> Any:
        with self._lock:
            handler = self._handlers.get(arn)
            if handler is None:
                handler = self._handlers[arn] = self._build(arn)
            return handler

    def invoke(self, arn: str, event: Any, request_id: str | None = None) -> Any:
        if self._processes is not None and arn in self._processes.arns:
            return self._processes.invoke(arn, event, request_id or str(uuid.uuid4()))
        handler = self._handler(arn)
        context = LocalContext(function_name=self._specs[arn].name, invoked_function_arn=arn)
        if request_id is not None:
            context = LocalContext(context.function_name, request_id, invoked_function_arn=arn)
        return handler(event, context)

    def invoke_async(self, arn: str, event: Any) -> Any:
        """Invoke as Lambda does an asynchronous event: retried as the function's
        EventInvokeConfig says, then kept in its on-failure destination with the error.
        Returns what the handler returned (None once the event is kept as a failure).

        Raises only when the event could be neither processed nor kept (then the caller must
        not drop it: the rules engine runs the rule's error action and so keeps it under errors/).
        """
        if arn not in self._specs:
            raise FunctionNotFoundError(f"no function with ARN {arn} in the template")
        spec = self._specs[arn]
        request_id = str(uuid.uuid4())  # one id for every attempt, as Lambda's retries keep it
        attempts = spec.asynchronous.max_retries + 1
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.invoke(arn, event, request_id)
            except Exception as exc:
                error = exc
            if attempt == attempts:
                break
            pause = self._retry_pauses_s[min(attempt, len(self._retry_pauses_s)) - 1]
            log.warning(
                "%s failed on event %s (attempt %d of %d): %s: %s; trying again in %.0f s",
                spec.name,
                request_id,
                attempt,
                attempts,
                type(error).__name__,
                error,
                pause,
            )
            if self._stopping.wait(pause):
                break  # the stack stops: keep it now rather than wait
        self._keep_failure(spec, arn, request_id, event, error, attempt)
        return None

    def _keep_failure(
        self,
        spec: FunctionSpec,
        arn: str,
        request_id: str,
        event: Any,
        error: Exception,
        attempts: int,
    ) -> None:
        from cloud.local.destinations import failure_record

        failure = (
            f"{spec.name} failed on event {request_id} after {attempts} attempt(s) "
            f"({type(error).__name__}: {error})"
        )
        if spec.asynchronous.on_failure is None:
            log.error(
                "%s; dropped: the template gives the function no on-failure destination", failure
            )
            return
        destination = self._destination(spec.asynchronous.on_failure)
        destination.keep(failure_record(arn, request_id, event, error, attempts))
        log.error(
            "%s: kept in queue %s (%d kept there); `chantier stack status` counts them, "
            "`chantier alerts redrive` replays them once the cause is fixed",
            failure,
            destination.name,
            destination.count(),
        )

    def _destination(self, arn: str) -> Any:
        from cloud.local.destinations import QueueDestination, queue_name

        with self._lock:
            if arn not in self._destinations:
                import boto3

                sqs = boto3.client("sqs", **self._boto3_kwargs("sqs"))
                self._destinations[arn] = QueueDestination(sqs, queue_name(arn))
            return self._destinations[arn]

    def close(self) -> None:
        """Stop waiting between attempts: failures under way are kept at once."""
        self._stopping.set()

    def stop_processes(self) -> None:
        """Stop the worker processes (once nothing invokes their functions any more)."""
        if self._processes is not None:
            self._processes.close()
