"""The Grafana dashboard only charts custom metrics the code emits, and stays loadable."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "dashboards" / "grafana" / "chantier.json"
NAMESPACE = "Chantier"
_DIRECT = re.compile(r"add_metric\(\s*name=\"([a-z0-9_]+)\"")
_LITERAL = re.compile(r"\"([a-z][a-z0-9_]+)\"")


def _targets(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for panel in dashboard["panels"] for t in panel.get("targets", [])]


def emitted_metrics() -> set[str]:
    """Names passed to add_metric, and string literals of modules whose add_metric takes a
    computed name (e.g. the run status → metric map in cloud/api/app.py)."""
    names: set[str] = set()
    for path in (ROOT / "cloud").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "add_metric(" not in text:
            continue
        names.update(_DIRECT.findall(text))
        if re.search(r"add_metric\(\s*name=(?!\")", text):
            names.update(n for n in _LITERAL.findall(text) if n.startswith("run_"))
    return names


def test_every_custom_metric_on_the_dashboard_is_emitted_by_the_code() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used = {
        t["metricName"]
        for t in _targets(dashboard)
        if t.get("queryMode") == "Metrics" and t.get("namespace") == NAMESPACE
    }
    assert used, "the dashboard shows no custom metric"
    missing = used - emitted_metrics()
    assert not missing, f"charted but never emitted: {sorted(missing)}"


def test_dashboard_covers_what_ops_asked_for() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    metrics = {(t.get("namespace"), t.get("metricName")) for t in _targets(dashboard)}
    for lambda_metric in ("Invocations", "Duration", "Errors", "Throttles"):
        assert ("AWS/Lambda", lambda_metric) in metrics
    for custom in ("sensor_data_ingested", "run_started", "run_completed", "temperature_avg"):
        assert (NAMESPACE, custom) in metrics
    assert ("AWS/DynamoDB", "ConsumedWriteCapacityUnits") in metrics
    logs = [t for t in _targets(dashboard) if t.get("queryMode") == "Logs"]
    assert any("transition.severity" in t["expression"] for t in logs), "alerts by severity"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
