"""SNS notifications on alert transitions, filtered by minimum severity."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from chantier.alerts.rules import SEVERITIES, SEVERITY_RANK
from cloud.alerts.records import Transition

SUBJECT_LIMIT = 100  # SNS refuses longer subjects


class NotifierConfigError(ValueError):
    """The notifier was given an unknown minimum severity."""


class SnsNotifier:
    """Publishes one SNS message per transition at or above `min_severity`.

    The body is JSON (site, machine, sensor, rule, state, severity, value, since); message
    attributes ``severity``, ``state``, ``site``, ``rule`` and ``thing`` let subscriptions
    filter without parsing the body.
    """

    def __init__(self, client: Any, topic_arn: str, min_severity: str = "warning") -> None:
        if min_severity not in SEVERITY_RANK:
            raise NotifierConfigError(
                f"min_severity {min_severity!r}: expected one of {', '.join(SEVERITIES)}"
            )
        self.client = client
        self.topic_arn = topic_arn
        self.min_rank = SEVERITY_RANK[min_severity]

    def notify(self, transitions: Sequence[Transition]) -> None:
        for transition in transitions:
            if SEVERITY_RANK.get(transition.severity or "", -1) >= self.min_rank:
                self.client.publish(TopicArn=self.topic_arn, **render(transition))


def render(t: Transition) -> dict[str, Any]:
    """Subject, JSON body and message attributes for one transition."""
    since = datetime.fromtimestamp(t.at / 1000, tz=UTC).isoformat(timespec="seconds")
    machine = f"{t.key.thing} ({t.equipment})" if t.equipment else t.key.thing
    severity = t.severity or "info"
    subject = f"[{severity}] {t.to_state} {t.key.rule} on {t.key.thing}/{t.key.sensor} ({t.site})"
    body = {
        **t.as_dict(),
        "machine": machine,
        "since": since,
        "text": (
            f"{t.key.rule} {t.to_state.lower()} ({t.reason}) on {machine}, sensor "
            f"{t.key.sensor}, site {t.site}: value {t.value}, level {severity}, since {since}"
            + (f", by {t.who}" if t.who != "system" else "")
            + (f": {t.note}" if t.note else "")
        ),
    }
    attributes = {
        "severity": severity,
        "state": str(t.to_state),
        "site": t.site or "-",
        "rule": t.key.rule,
        "thing": t.key.thing,
    }
    return {
        "Subject": subject.encode("ascii", "replace").decode()[:SUBJECT_LIMIT],
        "Message": json.dumps(body, ensure_ascii=False),
        "MessageAttributes": {
            name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
        },
    }
