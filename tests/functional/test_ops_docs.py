"""Ops documents stay true to the template: a runbook section per alarm, an alarm per function,
every parameter in docs/deploy.md."""

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
    assert len(alarms) >= 12
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


def test_every_function_has_an_errors_alarm(template: LocalTemplate) -> None:
    functions = [lid for lid, r in template.resources.items() if r["Type"] in FUNCTION_TYPES]
    watched = set()
    for alarm in _alarms(template).values():
        props = alarm["Properties"]
        if props.get("MetricName") != "Errors":
            continue
        for dimension in props.get("Dimensions", []):
            value = dimension.get("Value")
            if dimension.get("Name") == "FunctionName" and isinstance(value, dict):
                watched.add(value.get("Ref"))
    assert sorted(set(functions) - watched) == []


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
