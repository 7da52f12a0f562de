"""Headless Chromium (Debian's package) driven by Playwright, kept off the network."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
# No background traffic at all: updates, sync, safe browsing lists, first-run pings.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000


class BrowserMissingError(RuntimeError):
    """Chromium or Playwright is not installed."""


def chromium_path() -> str:
    """Debian's Chromium; BrowserMissingError naming the install command otherwise."""
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    found = shutil.which("chromium")
    if found:
        return found
    raise BrowserMissingError(
        f"no Chromium at {CHROMIUM}: run `make chromium` (apt-get install chromium chromium-driver)"
    )


@contextmanager
def browser_page(width: int = 1280, height: int = 860) -> Iterator[Any]:
    """A fresh page in a fresh headless Chromium; everything closes on exit."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise BrowserMissingError(
            "Playwright for Python is missing: pip install -e '.[dev]'"
        ) from exc
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def open_dashboard(page: Any, api_url: str, token: str, route: str = "#/") -> None:
    """Load the page with the token in the fragment, the way the demo's link does."""
    separator = "&" if "?" in route else "?"
    page.goto(f"{api_url}/{route}{separator}token={token}")
    page.wait_for_selector("[data-loaded]")


PHONE = {"width": 390, "height": 844}


def hover_chart(page: Any, field: str = "temperature", at: float = 0.8) -> str:
    """Move the mouse over a chart at a fraction of its width; the legend's values there."""
    box = page.locator(f"figure[data-field='{field}'] .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * at, box["y"] + box["height"] / 2)
    return str(page.inner_text(f"figure[data-field='{field}'] .u-legend"))


def drag_chart(page: Any, field: str, start: float, end: float) -> None:
    """Drag across a chart from one fraction of its width to another (uPlot zooms to it)."""
    box = page.locator(f"figure[data-field='{field}'] .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * start, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * end, y, steps=8)
    page.mouse.up()


def take_screenshots(
    page: Any,
    api_url: str,
    token: str,
    site: str,
    thing: str,
    out_dir: Path,
    run_id: str | None = None,
) -> list[Path]:
    """The dashboard's views as PNG files in `out_dir` (desktop, then a 390 px phone)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    chart = "figure[data-field='temperature'] canvas"
    shots: list[tuple[str, str, str, Any]] = [
        ("dashboard-site.png", f"#/site/{site}", f"[data-thing='{thing}']", None),
        ("dashboard-machine.png", f"#/machine/{thing}", chart, lambda: hover_chart(page)),
        ("dashboard-alerts.png", f"#/alerts?site={site}", "#alerts", None),
        ("dashboard-ack.png", f"#/alerts?site={site}", "#alerts",
         lambda: page.click("button[data-action='ack']:not([disabled])")),
        ("dashboard-runs.png", "#/runs", "h1", None),
    ]  # fmt: skip
    if run_id:
        shots.append(("dashboard-run.png", f"#/runs/{run_id}", "#run-figures", None))
    phone = [
        ("dashboard-phone-site.png", f"#/site/{site}", f"[data-thing='{thing}']", None),
        ("dashboard-phone-alerts.png", f"#/alerts?site={site}", "#alerts", None),
        ("dashboard-phone-machine.png", f"#/machine/{thing}", chart, None),
    ]  # fmt: skip
    paths = []
    desktop = page.viewport_size
    for size, group in ((desktop, shots), (PHONE, phone)):
        page.set_viewport_size(size)
        for name, route, ready, action in group:
            open_dashboard(page, api_url, token, route)
            page.wait_for_selector(ready)
            if action is not None:
                action()
                page.wait_for_timeout(300)
            target = out_dir / name
            page.screenshot(path=str(target), full_page=action is None)
            page.keyboard.press("Escape")  # closes the acknowledge dialog, if the shot opened it
            paths.append(target)
    page.set_viewport_size(desktop)
    return paths
