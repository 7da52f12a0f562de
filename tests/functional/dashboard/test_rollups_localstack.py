"""Daily rollups on the local stack: raw batches and alert history in, curated JSON lines out."""

from __future__ import annotations

import json

import pytest
from support.api_http import call
from support.dashboard_site import DemoSite

from chantier.s3keys import utc_date
from cloud.analytics.rollups import curated_key
from cloud.local.stack import LocalStack

pytestmark = pytest.mark.functional
HOURLY_COST = 85.0


def test_rollups_count_readings_running_hours_cost_and_alerts(
    stack: LocalStack, demo_site: DemoSite
) -> None:
    info = stack.info
    assert info is not None
    stack.client("iot").update_thing(
        thingName=demo_site.hot,
        attributePayload={"attributes": {"hourlyCost": str(HOURLY_COST)}, "merge": True},
    )
    path = f"/api/alerts/{demo_site.hot}/engine/engine-overheat/ack"
    assert call(info, "POST", path)[0] == 200
    days = sorted({utc_date(demo_site.started_ms), utc_date(demo_site.ended_ms)})

    result = stack.functions.invoke(  # type: ignore[union-attr]
        stack.template.arn("RollupsFunction"), {"dates": days}
    )
    assert set(result["written"]) == set(days)

    rows: list[dict[str, object]] = []
    s3 = stack.client("s3")
    for day in days:
        body = s3.get_object(Bucket=info.raw_bucket, Key=curated_key(day))["Body"].read()
        rows += [json.loads(line) for line in body.splitlines()]
    mine = [r for r in rows if r["site"] == demo_site.site]
    hot = [r for r in mine if r["thing"] == demo_site.hot]
    calm = [r for r in mine if r["thing"] == demo_site.calm]
    assert sum(int(r["readings"]) for r in hot) == 120  # type: ignore[call-overload]
    assert sum(int(r["readings"]) for r in calm) == 120  # type: ignore[call-overload]

    if len(days) == 1:  # the crafted site did not straddle midnight UTC
        [row] = hot
        # 60 engine readings 5 s apart, all far above the ambient air: 59 intervals running.
        assert row["runningHours"] == round(59 * 5 / 3600, 3)
        assert row["cost"] == round(row["runningHours"] * HOURLY_COST, 2)  # type: ignore[operator]
        assert (row["alertsOpenedWarning"], row["alertsOpenedCritical"]) == (1, 0)
        assert row["acknowledged"] == 1 and row["ackSecondsAvg"] > 0  # type: ignore[operator]
        engine = {
            s["field"]: s
            for s in row["sensors"]  # type: ignore[attr-defined]
            if s["sensorId"] == "engine"
        }
        assert engine["temperature"]["max"] == 84.5 and engine["temperature"]["count"] == 60
        [crane] = calm
        assert crane["runningHours"] == 0 and crane["cost"] is None
        assert crane["alertsOpened"] == 0

    again = stack.functions.invoke(  # type: ignore[union-attr]
        stack.template.arn("RollupsFunction"), {"dates": days}
    )
    assert again["written"] == result["written"]  # same keys, rewritten whole
