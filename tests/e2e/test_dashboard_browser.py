"""The local dashboard in headless Chromium: real data from MQTT, as a site manager uses it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.api_http import call
from support.browser import (
    PHONE,
    BrowserMissingError,
    browser_page,
    drag_chart,
    hover_chart,
    open_dashboard,
    take_screenshots,
)
from support.dashboard_site import DemoSite, build_demo_site, wait_for

from cloud.local.stack import LocalStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def demo_site(stack: LocalStack) -> DemoSite:
    return build_demo_site(stack, rich=True)


@pytest.fixture
def page() -> Iterator[Any]:
    try:
        with browser_page(width=1280, height=800) as opened:
            yield opened
    except BrowserMissingError as exc:
        pytest.skip(str(exc))


def _url_token(stack: LocalStack) -> tuple[str, str]:
    assert stack.info is not None
    return stack.info.api_url, stack.info.api_token


def test_site_lists_machines_worst_first_with_pending_and_coloured_values(
    stack: LocalStack, demo_site: DemoSite, page: Any
) -> None:
    url, token = _url_token(stack)
    open_dashboard(page, url, token)  # one site: the home page opens it
    page.wait_for_selector(f"[data-thing='{demo_site.hot}'][data-status='critical']")
    order = page.eval_on_selector_all(
        "[data-thing]", "cards => cards.map(c => [c.dataset.thing, c.dataset.status])"
    )
    assert [status for _, status in order] == ["critical", "critical", "pending", "ok"], order
    assert order[2][0] == demo_site.pending and order[3][0] == demo_site.calm
    # the critical cards are on screen at 1280x800 without scrolling
    box = page.locator(f"[data-thing='{demo_site.hot}']").bounding_box()
    assert box["y"] + box["height"] <= 800
    hot = f"[data-thing='{demo_site.hot}']"
    assert "84.5 °C" in page.inner_text(hot)
    assert page.locator(f"{hot} [data-sensor='engine'] .v[data-level='critical']").count() == 1
    calm = f"[data-thing='{demo_site.calm}']"
    assert page.locator(f"{calm} .v[data-level='critical']").count() == 0
    pending = page.inner_text(f"[data-thing='{demo_site.pending}']")
    assert "pending" in pending and "alert in" in pending and "no open alert" not in pending
    assert "token=" not in page.url, "the token must leave the address bar"


def test_machine_charts_have_time_hover_values_levels_dew_point_and_zoom(
    stack: LocalStack, demo_site: DemoSite, page: Any
) -> None:
    url, token = _url_token(stack)
    open_dashboard(page, url, token, f"#/machine/{demo_site.hot}")
    for field in ("temperature", "humidity", "pressure", "dewPointMargin"):
        page.wait_for_selector(f"figure[data-field='{field}'] canvas")
    temperature = "figure[data-field='temperature']"
    assert "critical 82" in page.get_attribute(temperature, "data-levels")
    assert page.get_attribute(temperature, "data-sensors") == "ambient engine"
    assert page.inner_text("[data-health='queue']") == "3 readings"
    # hovering shows each sensor's value and the moment, date included
    legend = hover_chart(page, "temperature", 0.9)
    assert re.search(r"\d+\.\d °C", legend), legend
    assert re.search(r"\d{4}", legend), f"no date in the hovered time: {legend}"
    # the dew-point chart carries the condensation levels only where a rule has them
    assert page.get_attribute("figure[data-field='dewPointMargin']", "data-sensors")
    # drag to zoom on a range; every chart follows; it survives the 5 s refresh
    drag_chart(page, "temperature", 0.6, 0.9)
    page.wait_for_selector(f"{temperature}[data-zoomed='true']")
    first = int(page.get_attribute(temperature, "data-to")) - int(
        page.get_attribute(temperature, "data-from")
    )
    assert first < 5 * 60_000 * 0.5
    page.wait_for_timeout(6_000)
    assert page.get_attribute(temperature, "data-zoomed") == "true"
    assert page.get_attribute("figure[data-field='humidity']", "data-zoomed") == "true"
    page.dblclick(f"{temperature} .u-over")
    page.wait_for_selector(f"{temperature}[data-zoomed='false']")


def test_a_latched_alert_shows_the_value_that_fired_it(
    stack: LocalStack, demo_site: DemoSite, page: Any
) -> None:
    url, token = _url_token(stack)
    open_dashboard(page, url, token, f"#/machine/{demo_site.latched}")
    item = f"li[data-alert='{demo_site.latched}/engine/engine-overheat']"
    page.wait_for_selector(f"{item} [data-fired='84.0']")
    assert "latched" in page.inner_text(item)


def test_acknowledge_asks_for_a_note_and_confirms(
    stack: LocalStack, demo_site: DemoSite, page: Any
) -> None:
    url, token = _url_token(stack)
    assert stack.info is not None
    alert = f"{demo_site.hot}/engine/engine-overheat"
    open_dashboard(page, url, token, f"#/alerts?site={demo_site.site}&severity=critical")
    page.click(f"button[data-action='ack'][data-key='{alert}']")
    page.wait_for_selector("#ack-dialog[open]")
    assert alert in page.inner_text("#ack-what")
    page.click("#ack-cancel")  # cancelling changes nothing
    page.wait_for_selector("#ack-dialog:not([open])", state="attached")
    assert page.get_attribute(f"tr[data-alert='{alert}']", "data-state") == "ACTIVE"
    page.click(f"button[data-action='ack'][data-key='{alert}']")
    page.fill("#ack-form textarea[name='note']", "engine stopped, coolant checked")
    page.click("#ack-confirm")
    page.wait_for_selector("#toast.shown")
    assert "Acknowledged" in page.inner_text("#toast")
    page.wait_for_selector(f"tr[data-alert='{alert}'][data-state='ACKNOWLEDGED']")
    status, machine = call(stack.info, "GET", f"/api/things/{demo_site.hot}")
    acked = [t for t in machine["history"] if t["to"] == "ACKNOWLEDGED"]
    assert status == 200 and acked[0]["note"] == "engine stopped, coolant checked"


def test_on_a_phone_nothing_is_off_screen_and_acknowledge_is_reachable(
    stack: LocalStack, demo_site: DemoSite, page: Any
) -> None:
    url, token = _url_token(stack)
    page.set_viewport_size(PHONE)
    for route, ready in (
        (f"#/site/{demo_site.site}", f"[data-thing='{demo_site.hot}']"),
        (f"#/alerts?site={demo_site.site}", "#alerts"),
        (f"#/machine/{demo_site.hot}", "figure[data-field='temperature'] canvas"),
    ):
        open_dashboard(page, url, token, route)
        page.wait_for_selector(ready)
        page.wait_for_timeout(300)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{route} is {width} px wide"
    open_dashboard(page, url, token, f"#/alerts?site={demo_site.site}")
    button = page.locator(f"button[data-action='ack'][data-key^='{demo_site.latched}/']")
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert box["height"] >= 30  # big enough for a thumb
    button.click()
    page.wait_for_selector("#ack-dialog[open]")
    dialog = page.locator("#ack-dialog").bounding_box()
    assert dialog["x"] >= 0 and dialog["x"] + dialog["width"] <= PHONE["width"]


def test_run_page_has_its_latency_and_alerts(
    stack: LocalStack, demo_site: DemoSite, page: Any
) -> None:
    url, token = _url_token(stack)
    assert stack.info is not None
    status, run = call(
        stack.info, "POST", "/api/runs/start", {"duration": 60, "interval": 1, "devices": 1}
    )
    assert status == 201
    reading = {"runId": run["id"], "thing": "probe-01", "sensorId": "probe", "temperature": 20}
    assert call(stack.info, "POST", "/api/sensors/data", reading)[0] == 201
    open_dashboard(page, url, token, f"#/runs/{run['id']}")
    page.wait_for_selector("#run-figures")
    assert page.inner_text("[data-figure='readings']") == "1"
    assert re.search(r"p50 \d+ ms", page.inner_text("[data-figure='latency']"))
    assert "Alerts during the run" in page.inner_text("main")
    wait_for(lambda: call(stack.info, "POST", "/api/runs/interrupt-all")[0] == 200)


def test_wrong_token_asks_for_one(stack: LocalStack, page: Any) -> None:
    url, _ = _url_token(stack)
    page.goto(f"{url}/#/alerts?token=wrong")
    page.wait_for_selector("form#token")
    assert "refused" in page.inner_text("main")


def test_screenshots_are_written(
    stack: LocalStack, demo_site: DemoSite, page: Any, tmp_path: Path
) -> None:
    url, token = _url_token(stack)
    paths = take_screenshots(page, url, token, demo_site.site, demo_site.hot, tmp_path)
    assert len(paths) == 8
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
        assert path.stat().st_size > 5_000, path
