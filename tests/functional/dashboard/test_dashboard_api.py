"""Dashboard endpoints and page on a real local stack, with data that came through MQTT."""

from __future__ import annotations

import pytest
from support.api_http import call
from support.dashboard_site import DemoSite

from cloud.local.stack import LocalStack

pytestmark = pytest.mark.functional


def _info(stack: LocalStack):  # type: ignore[no-untyped-def]
    assert stack.info is not None
    return stack.info


def test_page_and_files_are_served_without_token_and_lock_down_the_origin(
    stack: LocalStack,
) -> None:
    status, body = call(_info(stack), "GET", "/", token=None)
    assert status == 200 and '<script src="/dashboard/app.js">' in body
    assert call(_info(stack), "GET", "/dashboard/app.js", token=None)[0] == 200
    assert call(_info(stack), "GET", "/dashboard/style.css", token=None)[0] == 200
    for missing in ("/dashboard/nope.js", "/dashboard/../stack.py", "/dashboard/.env.js"):
        assert call(_info(stack), "GET", missing, token=None)[0] == 404, missing
    assert call(_info(stack), "GET", "/api/sites", token=None)[0] == 401


def test_sites_and_machines_show_status_last_readings_and_open_alerts(
    stack: LocalStack, demo_site: DemoSite
) -> None:
    status, body = call(_info(stack), "GET", "/api/sites")
    assert status == 200
    site = next(s for s in body["items"] if s["site"] == demo_site.site)
    assert site == {"site": demo_site.site, "machines": 2, "openAlerts": 1, "status": "critical"}

    status, body = call(_info(stack), "GET", f"/api/sites/{demo_site.site}/machines")
    assert status == 200, body
    machines = {m["thing"]: m for m in body["machines"]}
    hot, calm = machines[demo_site.hot], machines[demo_site.calm]
    assert (hot["status"], calm["status"]) == ("critical", "ok")
    assert hot["readings"]["engine"]["temperature"] == 84.5
    assert hot["lastReadingAt"] == demo_site.ended_ms
    assert set(calm["readings"]) == {"cabin", "ambient"}
    [alert] = hot["openAlerts"]
    assert (alert["rule"], alert["severity"], alert["state"]) == (
        "engine-overheat",
        "critical",
        "ACTIVE",
    )
    assert calm["openAlerts"] == []


def test_machine_has_health_history_and_levels_from_the_rules_file(
    stack: LocalStack, demo_site: DemoSite
) -> None:
    status, body = call(_info(stack), "GET", f"/api/things/{demo_site.hot}")
    assert status == 200, body
    assert body["health"]["queue"]["depth"] == 3
    assert body["health"]["clock"]["synced"] is True
    assert body["sensors"] == ["ambient", "engine"]
    moves = [(t["from"], t["to"], t["severity"]) for t in reversed(body["history"])]
    assert moves[0] == ("NORMAL", "ACTIVE", "warning")
    assert ("ACTIVE", "ACTIVE", "critical") in moves
    levels = {(lv["severity"], lv["value"]) for lv in body["levels"]["engine"]}
    assert {("warning", 75.0), ("critical", 82.0), ("clear", 72.0)} <= levels
    assert call(_info(stack), "GET", "/api/things/no-such-machine")[0] == 404
    assert call(_info(stack), "GET", "/api/things/Bad_Name")[0] == 422


def test_readings_come_per_sensor_oldest_first_within_the_window(
    stack: LocalStack, demo_site: DemoSite
) -> None:
    path = f"/api/things/{demo_site.hot}/readings?from={demo_site.started_ms}"
    status, body = call(_info(stack), "GET", path)
    assert status == 200, body
    engine = body["series"]["engine"]
    assert len(engine) == 60 and len(body["series"]["ambient"]) == 60
    assert [r["ts"] for r in engine] == sorted(r["ts"] for r in engine)
    assert engine[-1]["temperature"] == 84.5
    status, body = call(_info(stack), "GET", f"{path}&limit=10")
    assert [r["ts"] for r in body["series"]["engine"]][-1] == demo_site.ended_ms
    assert len(body["series"]["engine"]) == 10
    assert call(_info(stack), "GET", f"{path}&limit=0")[0] == 422


def test_alerts_filter_by_site_and_severity(stack: LocalStack, demo_site: DemoSite) -> None:
    def rules(query: str) -> list[str]:
        status, body = call(_info(stack), "GET", f"/api/alerts{query}")
        assert status == 200, body
        return [a["rule"] for a in body["items"]]

    assert rules(f"?site={demo_site.site}") == ["engine-overheat"]
    assert rules(f"?site={demo_site.site}&severity=critical,warning") == ["engine-overheat"]
    assert rules(f"?site={demo_site.site}&severity=info") == []
    assert rules("?site=elsewhere") == []
    status, body = call(_info(stack), "GET", "/api/alerts?severity=bogus")
    assert status == 422 and "bogus" in body["message"]


def test_acknowledge_and_snooze_go_through_the_engine_with_the_callers_name(
    stack: LocalStack, demo_site: DemoSite
) -> None:
    info = _info(stack)
    path = f"/api/alerts/{demo_site.hot}/engine/engine-overheat"
    status, body = call(info, "POST", f"{path}/ack", {"note": "crew informed"})
    assert status == 200, body
    assert body["alert"]["state"] == "ACKNOWLEDGED"
    table = stack.resource("dynamodb").Table(info.alerts_table)
    item = table.get_item(
        Key={"pk": f"THING#{demo_site.hot}", "sk": "STATE#engine#engine-overheat"}
    )
    assert item["Item"]["state"] == "ACKNOWLEDGED"
    assert body["transition"]["who"] and body["transition"]["note"] == "crew informed"

    status, body = call(info, "POST", f"{path}/ack")
    assert status == 409 and "ACKNOWLEDGED" in body["message"]
    assert call(info, "POST", f"{path}/snooze", {"minutes": 0})[0] == 422
    assert call(info, "POST", f"{path}/snooze", {"minutes": 5, "who": "mallory"})[0] == 422
    status, body = call(info, "POST", f"{path}/snooze", {"minutes": 30})
    assert status == 200 and body["alert"]["state"] == "SNOOZED"
    assert body["alert"]["snoozedUntil"] > body["transition"]["at"]
    unknown = f"/api/alerts/{demo_site.hot}/engine/no-such-rule/ack"
    assert call(info, "POST", unknown)[0] == 404
