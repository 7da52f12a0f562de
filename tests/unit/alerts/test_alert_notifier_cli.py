"""SNS message rendering and severity filter; the `chantier alerts` command line."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest
from support.alert_testkit import MINUTE, T0, batch, make_engine

from cloud.alerts.notifier import NotifierConfigError, SnsNotifier, render
from commands import alerts as cli


class FakeSns:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, str]:
        self.published.append(kwargs)
        return {"MessageId": str(len(self.published))}


def test_notifier_filters_by_severity_and_renders_the_facts() -> None:
    sns = FakeSns()
    engine, _, clock = make_engine(
        notifier=SnsNotifier(sns, "arn:aws:sns:eu-west-3:1:alerts", "critical")
    )
    clock.now = T0 + MINUTE
    engine.process_batch(batch(1, [80] * 12 + [83] * 12, T0))
    assert len(sns.published) == 1  # the warning was filtered out, the escalation was not
    message = sns.published[0]
    assert message["TopicArn"].endswith(":alerts")
    assert message["Subject"].startswith("[critical] ACTIVE engine-overheat on exc-01/engine")
    assert len(message["Subject"]) <= 100
    body = json.loads(message["Message"])
    assert body["site"] == "lyon-part-dieu" and body["machine"] == "exc-01 (excavator)"
    assert body["sensorId"] == "engine" and body["value"] == 83 and body["severity"] == "critical"
    assert body["since"].startswith("2025-11-21T14:00:2")
    assert message["MessageAttributes"]["severity"] == {
        "DataType": "String",
        "StringValue": "critical",
    }


def test_clear_transitions_carry_the_severity_they_end() -> None:
    engine, _store, clock = make_engine()
    clock.now = T0 + MINUTE
    transitions = engine.process_batch(batch(1, [80] * 12 + [60], T0))
    rendered = render(transitions[-1])
    assert rendered["MessageAttributes"]["state"]["StringValue"] == "NORMAL"
    assert rendered["MessageAttributes"]["severity"]["StringValue"] == "warning"


def test_notifier_refuses_unknown_severity() -> None:
    with pytest.raises(NotifierConfigError, match="'urgent'"):
        SnsNotifier(FakeSns(), "arn", "urgent")


def test_parse_until() -> None:
    assert cli.parse_until("30m", T0) == T0 + 30 * MINUTE
    assert cli.parse_until("2h", T0) == T0 + 120 * MINUTE
    assert cli.parse_until("2025-11-21T15:00:00Z", 0) == T0 + 60 * MINUTE
    assert cli.parse_until("2025-11-21T15:00:00", 0) == T0 + 60 * MINUTE
    with pytest.raises(cli.TimeSpecError, match="tomorrow"):
        cli.parse_until("tomorrow", T0)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="chantier")
    cli.register(root.add_subparsers(dest="command"))
    return root


def test_cli_actions_and_listing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine, store, clock = make_engine()
    clock.now = T0 + MINUTE
    engine.process_batch(batch(1, [80] * 12, T0))
    monkeypatch.setattr(cli, "_store", lambda args: store)
    monkeypatch.setattr(cli, "_engine", lambda args: engine)

    args = parser().parse_args(["alerts", "list", "--site", "lyon-part-dieu"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "engine-overheat" in out and "ACTIVE" in out and "warning" in out

    args = parser().parse_args(
        ["alerts", "ack", "exc-01", "engine", "engine-overheat", "--note", "seen", "--who", "marie"]
    )
    assert args.func(args) == 0
    assert "ACTIVE -> ACKNOWLEDGED" in capsys.readouterr().out

    args = parser().parse_args(["alerts", "ack", "exc-01", "engine", "engine-overheat"])
    assert args.func(args) == 1
    assert "only an ACTIVE or LATCHED" in capsys.readouterr().err

    args = parser().parse_args(
        ["alerts", "snooze", "exc-01", "engine", "engine-overheat", "--until", "1h"]
    )
    assert args.func(args) == 0
    args = parser().parse_args(["alerts", "list", "--state", "SNOOZED", "--json"])
    assert args.func(args) == 0
    listed = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    assert [item["state"] for item in listed] == ["SNOOZED"]
    assert listed[0]["snoozedUntil"] == T0 + 61 * MINUTE

    args = parser().parse_args(["alerts", "history", "exc-01", "engine", "engine-overheat"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "marie" in out and "seen" in out and "SNOOZED" in out


def test_cli_defaults_who_to_os_user() -> None:
    args = parser().parse_args(["alerts", "disable", "exc-01", "engine", "engine-overheat"])
    assert args.who and args.note == ""


def test_cli_aws_needs_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["alerts", "list", "--aws"])
    assert args.func(args) == 2
    assert "--table" in capsys.readouterr().err


def test_cli_rules_shows_each_profile_and_names_what_is_wrong_in_a_bad_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    args = parser().parse_args(["alerts", "rules", "--equipment", "crane"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "valid, version" in out
    assert "storm-risk" in out and "pressure change fall warning at 3" in out
    assert "engine-overheat" not in out  # an excavator rule

    broken = tmp_path / "rules.json"
    broken.write_text(
        json.dumps(
            {
                "version": 3,
                "defaults": [{"id": "gone", "kind": "offline", "minutes": 0, "severity": "info"}],
            }
        )
    )
    args = parser().parse_args(["alerts", "rules", "--rules", str(broken)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "'gone'" in err and "minutes" in err
