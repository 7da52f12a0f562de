"""The local dashboard in headless Chromium: real data from MQTT, a click acknowledges."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import BrowserMissingError, browser_page, open_dashboard, take_screenshots
from support.dashboard_site import DemoSite, build_demo_site, wait_for

from cloud.local.stack import LocalStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def demo_site(stack: LocalStack) -> DemoSite:
    return build_demo_site(stack)


@pytest.fixture
def page() -> Iterator[Any]:
    try:
        with browser_page() as opened:
            yield opened
    except BrowserMissingError as exc:
        pytest.skip(str(exc))


def _url_token(stack: LocalStack) -> tuple[str, str]:
    assert stack.info is not None
    return stack.info.api_url, stack.info.api_token


def test_site_overview_shows_machines_with_status_and_readings(
    stack: LocalStack, demo_site: DemoSite, page: Any
) -> None:
    url, token = _url_token(stack)
    open_dashboard(page, url, token)  # one site: the home page opens it
    page.wait_for_selector(f"[data-thing='{demo_site.hot}'][data-status='critical']")
    page.wait_for_selector(f"[data-thing='{demo_site.calm}'][data-status='ok']")
    card = page.inner_text(f"[data-thing='{demo_site.hot}']")
    assert "84.5 °C" in card and "engine-overheat" in card
    assert "token=" not in page.url, "the token must leave the address bar"


def test_machine_page_draws_charts_with_alert_levels_and_health(
    stack: LocalStack, demo_site: DemoSite, page: Any
) -> None:
    url, token = _url_token(stack)
    open_dashboard(page, url, token, f"#/machine/{demo_site.hot}")
    for field in ("temperature", "humidity", "pressure"):
        page.wait_for_selector(f"figure[data-field='{field}'] path[data-sensor='engine']")
    assert page.locator("figure[data-field='temperature'] line.level-critical").count() == 1
    assert page.inner_text("[data-health='queue']") == "3 readings"
    assert "synced" in page.inner_text("[data-health='clock']")
    assert "ACTIVE" in page.inner_text("table")


def test_a_click_acknowledges_the_alert(stack: LocalStack, demo_site: DemoSite, page: Any) -> None:
    url, token = _url_token(stack)
    assert stack.info is not None
    table = stack.resource("dynamodb").Table(stack.info.alerts_table)
    key = {"pk": f"THING#{demo_site.hot}", "sk": "STATE#engine#engine-overheat"}
    assert table.get_item(Key=key)["Item"]["state"] == "ACTIVE"
    open_dashboard(page, url, token, f"#/alerts?site={demo_site.site}&severity=critical")
    alert = f"{demo_site.hot}/engine/engine-overheat"
    page.click(f"button[data-action='ack'][data-key='{alert}']")
    page.wait_for_selector(f"tr[data-alert='{alert}'][data-state='ACKNOWLEDGED']")
    wait_for(
        lambda: table.get_item(Key=key)["Item"]["state"] == "ACKNOWLEDGED",
        timeout_s=10,
        what="the state item to become ACKNOWLEDGED",
    )


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
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
        assert path.stat().st_size > 5_000, path
