"""`chantier alerts`: list open alerts, show history, and the operator actions."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chantier.alerts.rules import EQUIPMENT, SEVERITIES, SEVERITY_RANK, Rule, RulesError, load_rules
from cloud.alerts.records import OPEN_STATES, AlertState, InvalidTransitionError, State, Transition
from commands.tables import table, utc

if TYPE_CHECKING:
    from cloud.bootstrap import Boto3Kwargs

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class TimeSpecError(ValueError):
    """A --until value is neither a duration like 2h nor an ISO 8601 time."""


def register(subparsers: Any) -> None:
    """Add `alerts` and its sub-commands to the root parser."""
    alerts = subparsers.add_parser(
        "alerts", help="list, acknowledge, snooze, disable and enable alerts"
    )
    alerts.set_defaults(func=lambda args: _help(alerts))
    sub = alerts.add_subparsers(dest="alerts_command", metavar="ACTION")

    listing = sub.add_parser("list", help="open alerts (ACTIVE, ACKNOWLEDGED, LATCHED)")
    _target_options(listing)
    listing.add_argument("--site")
    listing.add_argument("--thing")
    listing.add_argument("--severity", choices=SEVERITIES, help="at least this severity")
    listing.add_argument("--state", choices=[s.value for s in State], type=str.upper)
    listing.add_argument("--all", action="store_true", help="include NORMAL, SNOOZED, DISABLED")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_list)

    rules = sub.add_parser(
        "rules", help="check a rules file and show the rules each equipment profile gets"
    )
    rules.add_argument("--rules", help="rules file (default: the packaged one)")
    rules.add_argument("--equipment", choices=EQUIPMENT, help="only this profile")
    rules.set_defaults(func=_rules)

    history = sub.add_parser("history", help="transitions of one alert, oldest first")
    _target_options(history)
    _key_arguments(history)
    history.add_argument("--limit", type=int, default=50)
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=_history)

    actions: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
        "ack": ("acknowledge an ACTIVE or LATCHED alert", _action("acknowledge")),
        "snooze": ("silence an alert until a time", _snooze),
        "disable": ("stop evaluating a rule for this sensor", _action("disable")),
        "enable": ("evaluate a disabled rule again", _action("enable")),
        "reset": ("back to NORMAL, forgetting what the rule remembered", _action("reset")),
    }
    for name, (help_text, func) in actions.items():
        parser = sub.add_parser(name, help=help_text)
        _target_options(parser)
        _key_arguments(parser)
        parser.add_argument("--note", default="", help="why (kept in the history)")
        parser.add_argument("--who", default=_os_user(), help="operator name (default: OS user)")
        if name == "snooze":
            parser.add_argument(
                "--until", required=True, help="a duration (30m, 2h, 1d) or an ISO 8601 time"
            )
        parser.set_defaults(func=func)

    from commands import redrive

    redrive.add_parser(sub, _guarded)


def parse_until(text: str, now_ms: int) -> int:
    """Epoch ms from a duration relative to now or an ISO 8601 time (UTC if no zone)."""
    match = _DURATION.match(text.strip())
    if match:
        return now_ms + int(match.group(1)) * _UNIT_MS[match.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TimeSpecError(
            f"--until {text!r}: expected a duration like 30m, 2h, 1d or an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def _target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--aws", action="store_true", help="use AWS instead of the local stack")
    parser.add_argument("--table", help="alerts table name (required with --aws)")
    parser.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    parser.add_argument("--rules", help="rules file (default: the packaged one)")
    parser.add_argument(
        "--topic-arn",
        help="SNS topic notified of operator actions (with --aws: default $ALERTS_TOPIC_ARN, "
        "the stack output AlertsTopicArn; locally: the stack's topic)",
    )
    parser.add_argument(
        "--min-notify-severity",
        choices=SEVERITIES,
        default="warning",
        help="notify transitions of at least this severity (default: warning, as deployed)",
    )


def _key_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("thing")
    parser.add_argument(
        "sensor", help="sensor id, or * for machine-wide rules (offline, data loss)"
    )
    parser.add_argument("rule")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _target(args: argparse.Namespace) -> tuple[Boto3Kwargs, dict[str, str]]:
    """boto3 client arguments by service and the settings an alerting function would have."""
    if args.aws:
        if not args.table:
            raise _UsageError("--aws needs --table NAME (the alerts table of the deployed stack)")
        region = {"region_name": args.region} if args.region else {}

        def kwargs(service: str, table: str = "") -> dict[str, str]:
            return region

        topic = args.topic_arn or os.environ.get("ALERTS_TOPIC_ARN", "")
        table = args.table
    else:
        from cloud.local.stackinfo import StackInfo
        from cloud.local.template import LocalTemplate

        info = StackInfo.load()
        kwargs = info.boto3_kwargs
        table = args.table or info.alerts_table
        topic = args.topic_arn or LocalTemplate().arn("AlertsTopic")
    env = {
        "ALERTS_TABLE": table,
        "ALERTS_TOPIC_ARN": topic,
        "MIN_NOTIFY_SEVERITY": args.min_notify_severity,
        "ALERT_RULES_FILE": args.rules or "",
    }
    return kwargs, env


def _store(args: argparse.Namespace) -> Any:
    import boto3

    from cloud.alerts.dynamodb_store import DynamoAlertStore

    kwargs, env = _target(args)
    return DynamoAlertStore(
        boto3.resource("dynamodb", **kwargs("dynamodb", env["ALERTS_TABLE"])).Table(
            env["ALERTS_TABLE"]
        )
    )


def _engine(args: argparse.Namespace) -> Any:
    """The engine as the alerting functions build it, so operator actions are notified too."""
    from cloud.bootstrap import CloudParts

    kwargs, env = _target(args)
    if not env["ALERTS_TOPIC_ARN"]:
        print(
            "no SNS topic given (--topic-arn or ALERTS_TOPIC_ARN): this change is recorded "
            "but not notified",
            file=sys.stderr,
        )
    return CloudParts(env, kwargs).alert_engine


class _UsageError(ValueError):
    """Bad combination of command-line options."""


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from cloud.alerts.engine import UnknownRuleError
        from cloud.local.stackinfo import StackNotRunningError

        try:
            return func(args)
        except (StackNotRunningError, _UsageError, RulesError, TimeSpecError) as exc:
            print(f"chantier alerts: {exc}", file=sys.stderr)
            return 2
        except (InvalidTransitionError, UnknownRuleError) as exc:
            print(f"chantier alerts: {exc}", file=sys.stderr)
            return 1

    return run


@_guarded
def _rules(args: argparse.Namespace) -> int:
    ruleset = load_rules(args.rules)
    print(f"{ruleset.source}: valid, version {ruleset.version}")
    for equipment in [args.equipment] if args.equipment else EQUIPMENT:
        print(f"\n{equipment}")
        for rule in ruleset.rules_for(equipment):
            print(f"  {rule.id:<24} {rule.kind:<13} {_rule_summary(rule)}")
    return 0


def _rule_summary(rule: Rule) -> str:
    watched = "" if rule.thing_level else f"sensors {','.join(rule.sensors)}: "
    if rule.levels:
        levels = ", ".join(f"{level.severity} at {level.at:g}" for level in rule.levels)
        subject = rule.field if rule.kind == "threshold" else f"{rule.field} change"
        clear = "" if rule.clear is None else f", clear at {rule.clear:g}"
        timer = f", for {rule.for_s:g} s" if rule.for_s else ""
        return f"{watched}{subject} {rule.direction} {levels}{clear}{timer}"
    if rule.kind == "range":
        detail = f"{rule.field} outside {rule.min:g}..{rule.max:g}"
    elif rule.kind == "stuck":
        detail = f"{rule.field} unchanged for {rule.seconds:g} s"
    elif rule.kind == "offline":
        detail = f"no data for {rule.minutes:g} min"
    elif rule.kind == "dataloss":
        detail = "readings dropped by the agent"
    else:
        detail = "sensor reported failing in health messages"
    latch = ", latched" if rule.latch else ""
    return f"{watched}{detail} -> {rule.severity}{latch}"


@_guarded
def _list(args: argparse.Namespace) -> int:
    open_states = {s.value for s in OPEN_STATES}
    open_only = not args.all and (args.state is None or args.state in open_states)
    states = _store(args).list_states(site=args.site, thing=args.thing, open_only=open_only)
    if args.state:
        states = [s for s in states if s.state == args.state]
    if args.severity:
        floor = SEVERITY_RANK[args.severity]
        states = [s for s in states if SEVERITY_RANK.get(s.severity or "", -1) >= floor]
    if args.json:
        for s in states:
            print(json.dumps(_state_dict(s)))
        return 0
    rows = [
        (
            s.key.thing,
            s.key.sensor,
            s.key.rule,
            s.state.value,
            s.severity or "-",
            _fmt_value(s.value),
            _fmt_time(s.since),
            s.site,
        )
        for s in states
    ]
    headers = ("thing", "sensor", "rule", "state", "severity", "value", "since", "site")
    print(table(headers, rows, empty="no alerts"))
    return 0


@_guarded
def _history(args: argparse.Namespace) -> int:
    from cloud.alerts.records import AlertKey

    transitions = _store(args).history(AlertKey(args.thing, args.sensor, args.rule), args.limit)
    if args.json:
        for t in transitions:
            print(json.dumps(t.as_dict()))
        return 0
    rows = [
        (
            _fmt_time(t.at),
            f"{t.from_state.value} -> {t.to_state.value}",
            t.severity or "-",
            _fmt_value(t.value),
            t.reason,
            t.who,
            t.note,
        )
        for t in transitions
    ]
    headers = ("when", "transition", "severity", "value", "reason", "who", "note")
    empty = f"no history for {args.thing}/{args.sensor}/{args.rule}"
    print(table(headers, rows, empty=empty))
    return 0


def _action(name: str) -> Callable[[argparse.Namespace], int]:
    @_guarded
    def run(args: argparse.Namespace) -> int:
        engine = _engine(args)
        method = getattr(engine, name)
        transition = method(args.thing, args.sensor, args.rule, who=args.who, note=args.note)
        _report(transition, args)
        return 0

    return run


@_guarded
def _snooze(args: argparse.Namespace) -> int:
    engine = _engine(args)
    until = parse_until(args.until, engine.clock())
    transition = engine.snooze(
        args.thing, args.sensor, args.rule, who=args.who, until_ms=until, note=args.note
    )
    _report(transition, args)
    return 0


def _report(transition: Transition | None, args: argparse.Namespace) -> None:
    key = f"{args.thing}/{args.sensor}/{args.rule}"
    if transition is None:
        print(f"{key}: unchanged")
        return
    print(
        f"{key}: {transition.from_state.value} -> {transition.to_state.value} "
        f"({transition.reason}, by {transition.who})"
    )


def _state_dict(s: AlertState) -> dict[str, Any]:
    return {
        "thing": s.key.thing,
        "sensorId": s.key.sensor,
        "rule": s.key.rule,
        "site": s.site,
        "equipment": s.equipment,
        "state": s.state.value,
        "severity": s.severity,
        "since": s.since,
        "value": s.value,
        "snoozedUntil": s.snoozed_until,
    }


def _fmt_time(ms: int) -> str:
    return utc(ms)


def _fmt_value(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
