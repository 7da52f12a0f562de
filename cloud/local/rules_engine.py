"""Local stand-in for the AWS IoT rules engine: runs the template's topic rules on each message."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from chantier.names import strip_basic_ingest
from cloud.local.iot_sql import (
    EvaluationError,
    MessageContext,
    Statement,
    compile_statement,
    render_template,
)
from cloud.local.template import TopicRuleSpec

log = logging.getLogger(__name__)

Invoker = Callable[[str, Any], Any]
EventSink = Callable[[str, dict[str, Any]], None]
ACTION_TIMEOUT_S = 60.0


class ActionError(RuntimeError):
    """A rule action could not be carried out."""


@dataclass
class CompiledRule:
    spec: TopicRuleSpec
    statement: Statement


@dataclass
class EngineStats:
    messages: int = 0
    unmatched: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)


class RulesEngine:
    """Evaluates rules and performs their S3 and Lambda actions, or the error action."""

    def __init__(
        self,
        rules: list[TopicRuleSpec],
        s3_client: Any,
        invoke: Invoker,
        on_event: EventSink | None = None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        action_threads: int = 8,
    ) -> None:
        """`invoke` hands an event to a function as Lambda's asynchronous invocation does
        (retries and the on-failure destination are its concern, cloud/local/functions.py);
        `action_threads` bounds the actions of rules with several actions under way at once,
        all messages together; a rule's only action runs on the thread that handles the
        message."""
        self.rules = [CompiledRule(spec, compile_statement(spec.sql)) for spec in rules]
        self._s3 = s3_client
        self._invoke = invoke
        self._on_event = on_event or (lambda kind, details: None)
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self._actions = ThreadPoolExecutor(
            max_workers=action_threads, thread_name_prefix="rule-action"
        )
        self.stats = EngineStats()

    def close(self) -> None:
        """Stop the action threads once the actions under way are done."""
        self._actions.shutdown(wait=True, cancel_futures=True)

    def subscriptions(self) -> list[str]:
        """Topic filters the engine must receive: each rule's FROM and its Basic Ingest topic."""
        filters: list[str] = []
        for rule in self.rules:
            filters.append(rule.statement.topic_filter)
            filters.append(f"$aws/rules/{rule.spec.name}/#")
        return filters

    def handle(self, topic: str, payload: bytes, client_id: str = "") -> int:
        """Run every rule that applies to one message; returns how many actions succeeded."""
        rule_name, plain_topic = strip_basic_ingest(topic)
        ctx = MessageContext.create(plain_topic, payload, client_id, self._clock_ms())
        with self._lock:
            self.stats.messages += 1
        done = 0
        matched = False
        for rule in self.rules:
            if rule_name is not None and rule.spec.name != rule_name:
                continue
            if not rule.statement.matches(plain_topic) or not rule.statement.accepts(ctx):
                continue
            matched = True
            done += self._run(rule, ctx, topic)
        if not matched:
            with self._lock:
                self.stats.unmatched += 1
            log.warning("no rule applies to topic %s", topic)
        return done

    def _run(self, rule: CompiledRule, ctx: MessageContext, topic: str) -> int:
        try:
            selected = rule.statement.select(ctx)
        except EvaluationError as exc:
            self._error_action(rule, ctx, topic, [("SELECT", rule.spec.name, str(exc))])
            return 0
        # IoT Core runs a rule's actions independently of each other, so the alerting Lambda
        # does not wait for the S3 write; the actions of one message run side by side here too.
        # A rule's only action runs on this thread: nothing runs beside it, and handing it to
        # an action thread cost the alert path one more wait for the interpreter lock.
        actions = [next(iter(action.items())) for action in rule.spec.actions]
        if len(actions) == 1:
            kind, params = actions[0]
            errors = [(kind, params, self._attempt(kind, params, ctx, selected))]
        else:
            submitted = [
                (kind, params, self._actions.submit(self._perform, kind, params, ctx, selected))
                for kind, params in actions
            ]
            errors = [(kind, params, _awaited(future)) for kind, params, future in submitted]
        failures: list[tuple[str, str, str]] = []
        for kind, params, error in errors:
            with self._lock:
                if error is None:
                    self.stats.actions[kind] += 1
                else:
                    self.stats.failures[kind] += 1
            if error is not None:
                failures.append((f"{kind}Action", _resource(kind, params), error))
        if failures:
            self._error_action(rule, ctx, topic, failures)
        return len(errors) - len(failures)

    def _attempt(
        self,
        kind: str,
        params: dict[str, Any],
        ctx: MessageContext,
        selected: bytes | dict[str, Any],
    ) -> str | None:
        """Perform one action here; its error message, None when it succeeded."""
        try:
            self._perform(kind, params, ctx, selected)
        except Exception as exc:  # any failure of an action is the error action's, as in AWS
            return str(exc) or type(exc).__name__
        return None

    def _perform(
        self,
        kind: str,
        params: dict[str, Any],
        ctx: MessageContext,
        selected: bytes | dict[str, Any],
    ) -> None:
        body = selected if isinstance(selected, bytes) else json.dumps(selected).encode()
        if kind == "S3":
            key = render_template(params["Key"], ctx)
            try:
                response = self._s3.put_object(Bucket=params["BucketName"], Key=key, Body=body)
            except Exception as exc:  # any client failure is an action failure, as in AWS
                raise ActionError(f"S3 put_object {key} failed: {exc}") from exc
            self._on_event(
                "s3",
                {
                    "key": key,
                    "bytes": len(body),
                    "version": response.get("VersionId"),
                    "topic": ctx.topic,
                    "received_ms": ctx.timestamp_ms,
                    "stored_ms": self._clock_ms(),
                    "message": selected if isinstance(selected, dict) else _document(ctx),
                },
            )
            return
        if kind == "Lambda":
            try:
                event = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise ActionError(f"Lambda action needs a JSON payload: {exc!r:.200}") from None
            # Raises only when the event could not even be kept: an action failure, as in AWS.
            result = self._invoke(params["FunctionArn"], event)
            self._on_event("lambda", {"function": params["FunctionArn"], "result": result})
            return
        raise ActionError(f"action {kind} is not supported by the local rules engine")

    def _error_action(
        self,
        rule: CompiledRule,
        ctx: MessageContext,
        topic: str,
        failures: list[tuple[str, str, str]],
    ) -> None:
        error_action = rule.spec.error_action
        document = {
            "ruleName": rule.spec.name,
            "topic": topic,
            "cloudwatchTraceId": str(uuid.uuid4()),
            "clientId": ctx.client_id,
            "base64OriginalPayload": base64.b64encode(ctx.payload).decode(),
            "failures": [
                {"failedAction": action, "failedResource": resource, "errorMessage": message}
                for action, resource, message in failures
            ],
        }
        log.warning("rule %s failed on %s: %s", rule.spec.name, topic, failures)
        if not error_action:
            return
        ((kind, params),) = error_action.items()
        if kind != "S3":
            log.error("error action %s is not supported locally", kind)
            return
        error_ctx = MessageContext.create(
            ctx.topic, json.dumps(document).encode(), ctx.client_id, ctx.timestamp_ms
        )
        key = render_template(params["Key"], error_ctx)
        self._s3.put_object(
            Bucket=params["BucketName"], Key=key, Body=json.dumps(document).encode()
        )
        with self._lock:
            self.stats.actions["ErrorAction"] += 1
        self._on_event("error-action", {"key": key, "rule": rule.spec.name, "failures": failures})


def _awaited(future: Future[None]) -> str | None:
    """The error message of an action performed on an action thread, None when it succeeded."""
    try:
        future.result(timeout=ACTION_TIMEOUT_S)
    except Exception as exc:  # any failure of an action is the error action's, as in AWS
        return str(exc) or "timed out"
    return None


def _document(ctx: MessageContext) -> Any:
    """The message as parsed JSON (already parsed by the context), or None when it is not."""
    try:
        return ctx.document()
    except EvaluationError:
        return None


def _resource(kind: str, params: dict[str, Any]) -> str:
    return str(params.get("BucketName") or params.get("FunctionArn") or kind)
