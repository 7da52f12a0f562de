"""`chantier runs list|show|finish|interrupt-all`: simulation runs through the HTTP API."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from commands.api_client import ApiCallError, ApiClient, ApiConfigError, client_from
from commands.tables import pairs, table, utc

FULL_ID = re.compile(r"^[a-z0-9]{32}$")
SHORT_ID = re.compile(r"^[a-z0-9]{4,31}$")
SHORT_ID_LENGTH = 8  # what the dashboard and `runs list` show
RUN_HEADERS = ("run", "status", "user", "started", "duration", "devices", "site")


class RunIdError(ValueError):
    """A run id (or id prefix) that names no run, or more than one."""


def resolve_run_id(api: ApiClient, text: str) -> str:
    """The full id of a run named by its id or by a prefix of it (as the dashboard shows)."""
    wanted = text.strip().lower()
    if FULL_ID.match(wanted):
        return wanted
    if not SHORT_ID.match(wanted):
        raise RunIdError(
            f"run id {text[:80]!r}: expected the 32 characters of an id, or at least its "
            "first 4 (as `chantier runs list` shows them)"
        )
    matches = [r["id"] for r in api.call("GET", "/api/runs/all")["items"]]
    matches = [run_id for run_id in matches if run_id.startswith(wanted)]
    if not matches:
        raise RunIdError(f"no run id starts with {wanted!r}: see `chantier runs list`")
    if len(matches) > 1:
        raise RunIdError(
            f"{len(matches)} runs start with {wanted!r} ({', '.join(sorted(matches)[:5])}): "
            "give more characters"
        )
    return str(matches[0])


def run_row(run: dict[str, Any]) -> tuple[Any, ...]:
    params = run.get("params") or {}
    return (
        str(run["id"])[:SHORT_ID_LENGTH],
        run["status"],
        run["username"],
        utc(run.get("startedAt")),
        f"{run['duration']} s",
        run["devices"],
        params.get("site") if isinstance(params, dict) else None,
    )


def format_run(run: dict[str, Any]) -> str:
    finished = utc(run.get("finishedAt"))
    if run.get("finishedBy"):
        finished += f" by {run['finishedBy']}"
    rows = [
        ("run", run["id"]),
        ("status", run["status"]),
        ("user", run["username"]),
        ("started", utc(run.get("startedAt"))),
        ("planned end", f"{utc(run.get('endsAt'))} ({run['duration']} s)"),
        ("finished", finished),
        ("devices", f"{run['devices']}, one reading every {run['interval']} s"),
        ("params", json.dumps(run.get("params") or {})),
        ("dashboard", run.get("dashboardUrl")),
    ]
    if run.get("note"):
        rows.append(("note", run["note"]))
    return pairs(rows)


def _client(args: argparse.Namespace) -> ApiClient:
    state = Path(args.state_dir).resolve() if args.state_dir else None
    return client_from(args.url, args.token, state)


def _list(args: argparse.Namespace, api: ApiClient) -> Any:
    if args.running:
        items = api.call("GET", "/api/runs/running")["items"]
        return items, None
    if args.all:
        return api.call("GET", "/api/runs/all")["items"], None
    page = api.call("GET", "/api/runs", query={"limit": args.limit, "cursor": args.cursor})
    return page["items"], page.get("nextCursor")


def _cmd_list(args: argparse.Namespace, api: ApiClient) -> int:
    items, cursor = _list(args, api)
    if args.json:
        print(json.dumps({"items": items, "nextCursor": cursor}, indent=2))
        return 0
    print(table(RUN_HEADERS, (run_row(r) for r in items), empty="no runs"))
    if cursor:
        print(f"more: chantier runs list --cursor {cursor}")
    return 0


def _cmd_show(args: argparse.Namespace, api: ApiClient) -> int:
    run = api.call("GET", f"/api/runs/{resolve_run_id(api, args.run_id)}")
    print(json.dumps(run, indent=2) if args.json else format_run(run))
    return 0


def _cmd_finish(args: argparse.Namespace, api: ApiClient) -> int:
    body = {"status": "FAILED" if args.failed else "COMPLETED", "note": args.note}
    run = api.call("POST", f"/api/runs/{resolve_run_id(api, args.run_id)}/finish", body)
    print(json.dumps(run, indent=2) if args.json else f"run {run['id']} is now {run['status']}")
    return 0


def _cmd_interrupt_all(args: argparse.Namespace, api: ApiClient) -> int:
    result = api.call("POST", "/api/runs/interrupt-all")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"interrupted {result['count']} run(s)")
        for run_id in result["interrupted"]:
            print(f"  {run_id}")
    return 0


def _runner(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(command(args, _client(args)))
        except (ApiCallError, ApiConfigError, RunIdError) as exc:
            print(f"chantier runs: {exc}", file=sys.stderr)
            return 1

    return run


def add_api_options(parser: argparse.ArgumentParser) -> None:
    """--url, --token and --state-dir, shared by the commands that call the API."""
    parser.add_argument("--url", help="API base URL (default: $CHANTIER_API_URL, else local)")
    parser.add_argument(
        "--token", help="bearer token (default: $CHANTIER_API_TOKEN, else the local stack's)"
    )
    parser.add_argument(
        "--state-dir", help="local stack state folder (default ./state or $CHANTIER_STATE_DIR)"
    )


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "runs", help="list, show and finish simulation runs", description=__doc__
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, text: str, command: Any) -> argparse.ArgumentParser:
        child: argparse.ArgumentParser = actions.add_parser(name, help=text, description=text)
        add_api_options(child)
        child.add_argument("--json", action="store_true", help="print the API's JSON")
        child.set_defaults(func=_runner(command))
        return child

    listing = action("list", "runs, newest first, one page at a time", _cmd_list)
    listing.add_argument("--limit", type=int, default=20, help="runs per page (1-100)")
    listing.add_argument("--cursor", help="nextCursor of a previous page")
    which = listing.add_mutually_exclusive_group()
    which.add_argument("--running", action="store_true", help="only running runs")
    which.add_argument("--all", action="store_true", help="every run, no paging")
    id_help = "run id, or its first characters (at least 4) as `runs list` shows them"
    show = action("show", "one run", _cmd_show)
    show.add_argument("run_id", help=id_help)
    finish = action("finish", "finish a run (owner or admin)", _cmd_finish)
    finish.add_argument("run_id", help=id_help)
    finish.add_argument("--failed", action="store_true", help="mark it FAILED, not COMPLETED")
    finish.add_argument("--note", default="", help="why (kept with the run)")
    action("interrupt-all", "interrupt every running run (admins group)", _cmd_interrupt_all)
