"""Ops documents stay true to the template: a runbook section per alarm, every function's
failures alarmed, every parameter in docs/deploy.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cloud.local.template import TEMPLATE_PATH, LocalTemplate

DOCS = Path(TEMPLATE_PATH).resolve().parents[1] / "docs"
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")


def _sections(markdown: str) -> dict[str, str]:
    """Level-2 sections of a markdown file: heading text -> body."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


@pytest.fixture(scope="module")
def template() -> LocalTemplate:
    return LocalTemplate()


@pytest.fixture(scope="module")
def runbook() -> dict[str, str]:
    return _sections((DOCS / "runbook.md").read_text())


def _alarms(template: LocalTemplate) -> dict[str, dict[str, Any]]:
    return {
        lid: res
        for lid, res in template.resources.items()
        if res["Type"] == "AWS::CloudWatch::Alarm"
    }


def test_every_alarm_links_its_runbook_section(
    template: LocalTemplate, runbook: dict[str, str]
) -> None:
    alarms = _alarms(template)
    assert alarms
    for logical_id in alarms:
        description = template.properties(logical_id)["AlarmDescription"]
        assert description.endswith(f"What to do: docs/runbook.md#{logical_id.lower()}"), logical_id
        body = runbook.get(logical_id)
        assert body is not None, f"docs/runbook.md has no section `## {logical_id}`"
        for part in ("**Meaning.**", "**First checks.**", "**Fixes.**"):
            assert part in body, f"{logical_id}: no {part} in its runbook section"
        assert "`" in body.split("**First checks.**")[1], f"{logical_id}: no command to run"


def test_every_runbook_alarm_section_names_an_alarm(
    template: LocalTemplate, runbook: dict[str, str]
) -> None:
    alarms = _alarms(template)
    stale = [title for title in runbook if title.endswith("Alarm") and title not in alarms]
    assert stale == []


def test_every_function_has_its_failures_alarmed(template: LocalTemplate) -> None:
    """Asynchronous functions through the failures queue they keep failed events in, the HTTP
    API's function through the API's 5xx count (its errors, timeouts and throttles)."""
    watched: set[tuple[str, str, str]] = set()
    for alarm in _alarms(template).values():
        props = alarm["Properties"]
        for dimension in props.get("Dimensions", []):
            value = dimension.get("Value")
            name = value.get("Ref") or value.get("Fn::GetAtt", [""])[0]
            watched.add((props["Namespace"], props["MetricName"], name))
    functions = [lid for lid, r in template.resources.items() if r["Type"] in FUNCTION_TYPES]
    configs = {
        r["Properties"]["FunctionName"]["Ref"]: r["Properties"]
        for r in template.resources.values()
        if r["Type"] == "AWS::Lambda::EventInvokeConfig"
    }
    unwatched = []
    for function in functions:
        events = template.resources[function]["Properties"].get("Events", {}).values()
        if any(e["Type"] == "HttpApi" for e in events):
            api = next(e["Properties"]["ApiId"]["Ref"] for e in events if e["Type"] == "HttpApi")
            ok = ("AWS/ApiGateway", "5xx", api) in watched
        else:
            destination = configs.get(function, {}).get("DestinationConfig", {})
            queue = destination.get("OnFailure", {}).get("Destination", {}).get("Fn::GetAtt")
            ok = (
                bool(queue)
                and (
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    queue[0],
                )
                in watched
            )
        if not ok:
            unwatched.append(function)
    assert len(functions) >= 5
    assert unwatched == []


def test_deploy_guide_lists_every_parameter_with_its_default(template: LocalTemplate) -> None:
    guide = (DOCS / "deploy.md").read_text()
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `(\w+)` \| ([^|]*) \|", guide, flags=re.MULTILINE)
    }
    for name, spec in template.document["Parameters"].items():
        assert name in rows, f"docs/deploy.md: parameter {name} is not in the table"
        default = str(spec.get("Default", ""))
        shown = rows[name].strip()
        assert (f"`{default}`" in shown) if default else ("empty" in shown), (name, shown)


def test_deploy_guide_does_not_call_built_parts_missing() -> None:
    guide = (DOCS / "deploy.md").read_text()
    assert "left for later" not in guide and "not in the template yet" not in guide
    for part in ("Glue", "Athena", "QuickSight", "Grafana"):
        assert part in guide
