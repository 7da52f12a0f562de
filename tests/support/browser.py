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


def take_screenshots(
    page: Any, api_url: str, token: str, site: str, thing: str, out_dir: Path
) -> list[Path]:
    """The four views as PNG files in `out_dir`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shots = [
        ("dashboard-site.png", f"#/site/{site}", f"[data-thing='{thing}']"),
        ("dashboard-machine.png", f"#/machine/{thing}", "figure[data-field='temperature'] path"),
        ("dashboard-alerts.png", f"#/alerts?site={site}", "#alerts"),
        ("dashboard-runs.png", "#/runs", "h1"),
    ]
    paths = []
    for name, route, ready in shots:
        open_dashboard(page, api_url, token, route)
        page.wait_for_selector(ready)
        target = out_dir / name
        page.screenshot(path=str(target), full_page=True)
        paths.append(target)
    return paths
