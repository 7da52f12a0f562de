"""Builds the alert engine a Lambda handler uses, from the function's environment.

Variables: ``ALERTS_TABLE`` (required); ``ALERTS_TOPIC_ARN`` (SNS notifications, off when
unset); ``MIN_NOTIFY_SEVERITY`` (default ``warning``); ``ALERT_RULES_FILE`` (default: the
packaged rules file); ``ALERT_SEEN_REFRESH_MS`` (how often last-seen is rewritten, default
the engine's; tests shorten it to see offline alerts within seconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloud.alerts.engine import SEEN_REFRESH_MS, AlertEngine


class HandlerConfigError(ValueError):
    """A function's environment variable is missing or malformed."""


def _int_setting(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HandlerConfigError(
            f"environment variable {name}={raw!r}: expected a whole number of milliseconds"
        ) from None
    if value < 0:
        raise HandlerConfigError(f"environment variable {name}={raw!r}: expected 0 or more")
    return value


def alert_engine(
    env: Mapping[str, str], boto3_kwargs: Mapping[str, str] | None = None, dynamodb: Any = None
) -> AlertEngine:
    """The engine on the alerts table, with an SNS notifier when a topic is configured."""
    import boto3

    from chantier.alerts.rules import load_rules
    from cloud.alerts.dynamodb_store import DynamoAlertStore
    from cloud.alerts.notifier import SnsNotifier

    if not env.get("ALERTS_TABLE"):
        raise HandlerConfigError("environment variable ALERTS_TABLE: expected the table name")
    kwargs = dict(boto3_kwargs or {})
    dynamodb = dynamodb or boto3.resource("dynamodb", **kwargs)
    notifier = None
    topic_arn = env.get("ALERTS_TOPIC_ARN", "")
    if topic_arn:
        notifier = SnsNotifier(
            boto3.client("sns", **kwargs),
            topic_arn,
            min_severity=env.get("MIN_NOTIFY_SEVERITY") or "warning",
        )
    return AlertEngine(
        load_rules(env.get("ALERT_RULES_FILE") or None),
        DynamoAlertStore(dynamodb.Table(env["ALERTS_TABLE"])),
        notifier=notifier,
        seen_refresh_ms=_int_setting(env, "ALERT_SEEN_REFRESH_MS", SEEN_REFRESH_MS),
    )
