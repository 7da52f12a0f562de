"""`chantier agent …`: run, check-config, status and keygen on the device."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from device.config import DEFAULT_PATH, ENV_KEYS, ENV_PREFIX, AgentConfig, ConfigError, load_config

log = logging.getLogger("chantier.agent")


def register(subparsers: Any) -> None:
    """Add `agent` and its sub-commands to the `chantier` parser."""
    agent = subparsers.add_parser(
        "agent",
        help="run and inspect the edge agent on a Pi",
        description="The edge agent. Environment overrides: "
        + ", ".join(ENV_PREFIX + k.upper() for k in ENV_KEYS),
    )
    sub = agent.add_subparsers(dest="agent_command", metavar="ACTION")
    agent.set_defaults(func=lambda args: (agent.print_help(), 2)[1])

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            type=Path,
            default=DEFAULT_PATH,
            help=f"agent configuration file (default {DEFAULT_PATH})",
        )

    run = sub.add_parser("run", help="run the agent until SIGTERM")
    with_config(run)
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="check the configuration and the files it names")
    with_config(check)
    check.set_defaults(func=cmd_check_config)

    status = sub.add_parser("status", help="queue depth, oldest reading, drops, sensors")
    with_config(status)
    status.add_argument("--state-dir", type=Path, help="read this state directory instead")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    keygen = sub.add_parser(
        "keygen",
        help="make a private key (0600) and a CSR with CN=thing",
        description="Write <thing>.key (0600, never leaves this device) and <thing>.csr (for "
        "the fleet admin). Example: chantier agent keygen exc-01 --out /etc/chantier",
    )
    with_config(keygen)
    keygen.add_argument(
        "thing", nargs="?", help="thing name (default: `thing` from the configuration)"
    )
    # the spelling of earlier releases, still accepted
    keygen.add_argument("--thing", dest="thing_option", help=argparse.SUPPRESS)
    keygen.add_argument(
        "--out",
        type=Path,
        help="output folder (default: the current folder when THING is given, else the "
        "folder of `key` in the configuration)",
    )
    keygen.add_argument("--force", action="store_true", help="replace an existing key")
    keygen.set_defaults(func=cmd_keygen)


def _load(path: Path) -> AgentConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return None


def cmd_run(args: argparse.Namespace) -> int:
    """Run the agent; SIGTERM/SIGINT stop it cleanly with exit 0."""
    from chantier.signals import stop_on_signals
    from device.bootstrap import build_agent
    from device.logs import setup_logging
    from device.notify import Notifier

    config = _load(args.config)
    if config is None:
        return 2
    setup_logging(config.log_level)
    stop = stop_on_signals(
        on_signal=lambda name: log.info("signal", extra={"event": "signal", "signal": name})
    )
    notifier = Notifier()
    try:
        agent = build_agent(config, on_event=notifier.on_event)
    except Exception as exc:
        log.error("cannot start", extra={"event": "start-failed", "error": str(exc)})
        return 1
    notifier.watch(agent, stop)
    try:
        agent.run(stop)
    except Exception as exc:
        log.exception("agent failed", extra={"event": "failed", "error": str(exc)})
        return 1
    finally:
        notifier.close()
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Load the configuration and check the files it names exist and can be read."""
    config = _load(args.config)
    if config is None:
        return 2
    problems = []
    for what in ("cert", "key", "ca"):
        path: Path = getattr(config, what)
        try:
            with open(path, "rb") as f:
                head = f.read(64)
            if b"-----BEGIN" not in head:
                problems.append(f"{config.source}: key {what}: {path} is not a PEM file")
        except OSError as exc:
            problems.append(f"{config.source}: key {what}: cannot read {path}: {exc.strerror}")
    if config.rules_file is not None and not config.rules_file.is_file():
        problems.append(f"{config.source}: key rules_file: {config.rules_file} does not exist")
    for problem in problems:
        print(problem, file=sys.stderr)
    print(
        f"{config.source}: thing {config.thing}, site {config.site}, {config.equipment}, "
        f"{config.endpoint}:{config.port}, state in {config.state_dir}, "
        f"{len(config.sensors)} sensor(s): "
        + ", ".join(f"{s.name} ({s.driver})" for s in config.sensors)
    )
    return 1 if problems else 0


def _ms(value: Any) -> str:
    if not isinstance(value, int):
        return "never"
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC).isoformat(timespec="seconds")


def cmd_status(args: argparse.Namespace) -> int:
    """Queue and sensor state read from the state directory; the agent need not run."""
    from device.queue import QueueError, read_status

    state_dir = args.state_dir
    if state_dir is None:
        config = _load(args.config)
        if config is None:
            return 2
        state_dir = config.state_dir
    try:
        status = read_status(state_dir)
    except (QueueError, OSError) as exc:
        print(f"status: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a corrupt file: the agent sets it aside at its next start
        print(f"status: cannot read the queue in {state_dir}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    agent = status.get("agent") or {}
    print(f"queue depth      {status['depth']} readings ({status['batches']} batches formed)")
    print(f"oldest reading   {_ms(status['oldest_reading_ms'])}")
    print(f"dropped (total)  {status['dropped_total']}")
    print(f"last publish     {_ms(agent.get('lastPublishMs'))}")
    print(f"last ack         {_ms(agent.get('lastAckMs'))}")
    saved = agent.get("savedAtMs")
    if isinstance(saved, int):
        age = time.time() - saved / 1000
        print(f"agent            boot {agent.get('boot')}, status saved {age:.0f} s ago")
    for sensor in agent.get("sensors", []):
        error = f", last error: {sensor['lastError']}" if sensor.get("lastError") else ""
        print(
            f"sensor {sensor['sensorId']:<10} {sensor['status']}, "
            f"{sensor['readings']} readings, {sensor['errors']} errors{error}"
        )
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    """Key and CSR made on the device, so the private key never travels."""
    thing = args.thing or args.thing_option
    out = args.out
    if thing is None:
        config = _load(args.config)
        if config is None:
            print("keygen: give the thing name: chantier agent keygen <thing>", file=sys.stderr)
            return 2
        thing = config.thing
        out = out or config.key.parent
    out = Path(out or ".")
    try:
        from chantier.keys import generate_key_and_csr
    except ModuleNotFoundError as exc:
        if exc.name != "cryptography":
            raise
        print(
            "keygen: the cryptography package is not installed: install the agent with its "
            "keygen extra (pip install 'chantier-connecte[keygen]', or the wheel file "
            "followed by [keygen])",
            file=sys.stderr,
        )
        return 1
    existing = out / f"{thing}.key"
    if existing.exists() and not args.force:
        print(
            f"keygen: {existing} already exists: it may be the key this device's certificate "
            "was issued for; pass --force to replace it",
            file=sys.stderr,
        )
        return 1
    try:
        key_path, csr_path = generate_key_and_csr(thing, out)
    except (OSError, ValueError) as exc:
        print(f"keygen: {exc}", file=sys.stderr)
        return 1
    print(f"private key {key_path} (0600, stays on this device)")
    print(f"CSR         {csr_path} (send this to the fleet admin)")
    return 0
