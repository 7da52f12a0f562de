"""Screenshots of the local dashboard for docs/img/: a fresh local stack, a small demo-like site.

    .venv/bin/python scripts/screenshots.py [--out docs/img]

Needs Mosquitto and Debian's Chromium (`make chromium` installs it); Chromium never goes to the
network (see tests/support/browser.py for its flags).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The site builder and browser helpers are the ones the tests use, so the pictures show
# exactly what the tests check.
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def _runs(info: object, thing: str) -> str:
    """One finished run and one running run, so the runs view has something to show; the id
    of the finished one, whose page shows its batches, latency and alerts."""
    from support.api_http import call

    finished = ""
    for params, finish in (
        ({"site": "lab", "profile": "generator"}, True),
        ({"site": "lab"}, False),
    ):
        status, run = call(
            info,
            "POST",
            "/api/runs/start",
            {  # type: ignore[arg-type]
                "duration": 600,
                "interval": 1.0,
                "devices": 4,
                "params": params,
            },
        )
        if status != 201:
            raise RuntimeError(f"starting a run answered {status}: {run}")
        for value in (21.5, 21.7, 22.0):
            reading = {
                "runId": run["id"],
                "sensorId": "probe",
                "temperature": value,
                "thing": thing,
            }
            call(info, "POST", "/api/sensors/data", reading)  # type: ignore[arg-type]
        if finish:
            call(info, "POST", f"/api/runs/{run['id']}/finish", {"note": "bench ok"})  # type: ignore[arg-type]
            finished = run["id"]
    return finished


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args(argv)

    from support.browser import browser_page, take_screenshots
    from support.dashboard_site import build_demo_site

    from cloud.local.stack import LocalStack

    with (
        tempfile.TemporaryDirectory(prefix="chantier-shots-") as state,
        LocalStack(Path(state)) as stack,
    ):
        info = stack.info
        assert info is not None
        site = build_demo_site(stack, site="lyon-part-dieu", rich=True)
        run_id = _runs(info, "gen-09")
        with browser_page(width=1280, height=800) as page:
            paths = take_screenshots(
                page, info.api_url, info.api_token, site.site, site.hot, args.out, run_id
            )
    for path in paths:
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
