"""The `chantier` command: one sub-command per role, each part registering its own."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from chantier import __version__

# Each module exposes register(subparsers) and sets `func` on its parsers; importing lazily keeps
# `chantier agent` on a Pi from loading boto3, and `chantier alerts` from loading awscrt.
COMMANDS: dict[str, tuple[str, str]] = {
    "agent": ("device.cli", "run and inspect the edge agent on a Pi"),
    "provision": ("commands.provision", "certificate authority, device certificates, audit"),
    "stack": ("commands.stack", "the local stack: broker, AWS APIs, rules engine, API"),
    "demo": ("commands.demo", "provision a simulated site and watch the whole pipeline"),
    "alerts": ("commands.alerts", "list, acknowledge, snooze, disable and enable alerts"),
    "simulate": ("commands.simulate", "run a fleet of simulated machines through the API"),
    "runs": ("commands.runs", "list, show and finish simulation runs"),
}
# The install (pyproject.toml extra) each command needs beyond the agent's.
EXTRAS = {"provision": "admin", "alerts": "admin", "stack": "local", "demo": "local"}
OWN_PACKAGES = ("chantier", "device", "cloud", "provisioning", "commands")


class CommandUnavailableError(RuntimeError):
    """A sub-command's module is not installed in this build."""


def _not_installed(sub: Any, name: str, help_text: str, missing: str) -> None:
    """A stand-in for a command whose libraries this install lacks: it says which install."""
    extra = EXTRAS.get(name, "local")
    advice = f"needs pip install 'chantier-connecte[{extra}]'"
    # No option of its own (not even --help): whatever follows gets the same answer.
    parser = sub.add_parser(name, help=f"{help_text} ({advice})", add_help=False, prefix_chars="\0")
    parser.add_argument("rest", nargs="*")

    def refuse(args: argparse.Namespace) -> int:
        print(
            f"chantier {name}: this install lacks the {missing} package: {advice} "
            f"(the {extra} install)",
            file=sys.stderr,
        )
        return 2

    parser.set_defaults(func=refuse)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chantier", description="Chantier Connecté: connected construction site."
    )
    parser.add_argument("--version", action="version", version=f"chantier {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                sub.add_parser(name, help=f"{help_text} (not available in this build)")
                continue
            missing = (exc.name or "").split(".")[0]
            if not missing or missing in OWN_PACKAGES:
                raise
            _not_installed(sub, name, help_text, missing)
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(only=first if first in COMMANDS else None)
    args = parser.parse_args(args_list)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining
        # again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
