"""`chantier runs list|show|finish|interrupt-all`: simulation runs through the HTTP API."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from commands.api_client import ApiCallError, ApiClient, ApiConfigError, client_from


def _time(ms: Any) -> str:
    if not isinstance(ms, int):
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_run_line(run: dict[str, Any]) -> str:
    return (
        f"{run['id']}  {run['status']:<11}  {run['username']:<12}  {_time(run.get('startedAt'))}"
        f"  {run['duration']:>6}s  {run['devices']:>4} devices"
    )


def format_run(run: dict[str, Any]) -> str:
    lines = [
        f"run        {run['id']}",
        f"status     {run['status']}",
        f"user       {run['username']}",
        f"started    {_time(run.get('startedAt'))} UTC",
        f"planned    {_time(run.get('endsAt'))} UTC ({run['duration']} s)",
        f"finished   {_time(run.get('finishedAt'))}"
        + (f" by {run['finishedBy']}" if run.get("finishedBy") else ""),
        f"devices    {run['devices']}, one reading every {run['interval']} s",
        f"params     {json.dumps(run.get('params') or {})}",
        f"dashboard  {run.get('dashboardUrl') or '-'}",
    ]
    if run.get("note"):
        lines.append(f"note       {run['note']}")
    return "\n".join(lines)


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
    if not items:
        print("no runs")
    for run in items:
        print(format_run_line(run))
    if cursor:
        print(f"more: chantier runs list --cursor {cursor}")
    return 0


def _cmd_show(args: argparse.Namespace, api: ApiClient) -> int:
    run = api.call("GET", f"/api/runs/{args.run_id}")
    print(json.dumps(run, indent=2) if args.json else format_run(run))
    return 0


def _cmd_finish(args: argparse.Namespace, api: ApiClient) -> int:
    body = {"status": "FAILED" if args.failed else "COMPLETED", "note": args.note}
    run = api.call("POST", f"/api/runs/{args.run_id}/finish", body)
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
        except (ApiCallError, ApiConfigError) as exc:
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
    show = action("show", "one run", _cmd_show)
    show.add_argument("run_id")
    finish = action("finish", "finish a run (owner or admin)", _cmd_finish)
    finish.add_argument("run_id")
    finish.add_argument("--failed", action="store_true", help="mark it FAILED, not COMPLETED")
    finish.add_argument("--note", default="", help="why (kept with the run)")
    action("interrupt-all", "interrupt every running run (admins group)", _cmd_interrupt_all)
