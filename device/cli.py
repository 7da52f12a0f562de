"""`chantier agent …`: run, check-config, status and keygen on the device."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from device.config import DEFAULT_PATH, ENV_KEYS, ENV_PREFIX, AgentConfig, ConfigError, load_config

log = logging.getLogger("chantier.agent")

# check-config's exit status (documented in its --help and docs/field-install.md)
EXIT_OK, EXIT_ERRORS, EXIT_UNREADABLE = 0, 1, 2


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

    check = sub.add_parser(
        "check-config",
        help="check the configuration, files, state folder and sensors, without the network",
        description="Check everything that can be checked without the network, and report "
        "every problem at once: the TOML, each key's type and range (a misspelt key gets the "
        "closest known one), environment overrides, the certificate, key and root CA (present, "
        "readable, matching, key mode, validity dates), the state folder, the rules file and "
        "the sensors its rules expect, the I2C buses and chips, the endpoint and the clock.",
        epilog=f"exit status: {EXIT_OK} ready (warnings may be printed), {EXIT_ERRORS} errors "
        f"found (the agent would not start), {EXIT_UNREADABLE} the configuration file is "
        "missing, unreadable or not TOML",
    )
    with_config(check)
    check.set_defaults(func=cmd_check_config)

    status = sub.add_parser(
        "status",
        help="connection, last error, clock, queue, sensors (the agent need not run)",
    )
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
        for problem in exc.problems:
            print(f"configuration error: {problem}", file=sys.stderr)
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
        cause = _start_failure(config, exc)
        log.error(f"cannot start: {cause}", extra={"event": "start-failed", "error": str(exc)})
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


def _start_failure(config: AgentConfig, exc: Exception) -> str:
    """The certificate, key or CA problem behind a failed start, else the error itself."""
    from device.preflight import ERROR, pem_findings

    try:
        found = [f.message for f in pem_findings(config) if f.level == ERROR]
    except Exception:  # the diagnosis must not hide the failure it explains
        found = []
    return "; ".join(found) + f" ({exc})" if found else str(exc)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Check the configuration, the files and devices it names, all at once; exit 0, 1 or 2."""
    from device.config import check_mapping, read_toml
    from device.preflight import ERROR, NOTE, preflight

    try:
        data = read_toml(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    config, problems = check_mapping(data, source=str(args.config), base=args.config.parent)
    findings = [(ERROR, problem) for problem in problems]
    findings += [(f.level, f.message) for f in preflight(config)]
    for level, message in findings:
        print(f"{level}: {message}", file=sys.stdout if level == NOTE else sys.stderr)
    errors = sum(level == ERROR for level, _ in findings)
    warnings = len([level for level, _ in findings if level not in (ERROR, NOTE)])
    if errors:
        print(
            f"{args.config}: {_count(errors, 'error')}, {_count(warnings, 'warning')}: "
            "the agent would not start",
            file=sys.stderr,
        )
        return EXIT_ERRORS
    print(
        f"{args.config}: ready ({_count(warnings, 'warning')}): thing {config.thing}, site "
        f"{config.site}, {config.equipment}, {config.endpoint}:{config.port}, state in "
        f"{config.state_dir}, sensors "
        + ", ".join(f"{s.name} ({_sensor_place(s)})" for s in config.sensors)
    )
    return EXIT_OK


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _sensor_place(sensor: Any) -> str:
    if sensor.driver != "bme280":
        return sensor.driver
    bus = "emulated bus" if sensor.bus == "emulated" else f"/dev/i2c-{sensor.bus}"
    return f"BME280 0x{sensor.address:02x} on {bus}"


def cmd_status(args: argparse.Namespace) -> int:
    """Connection, clock, queue and sensors from the state folder; the agent need not run."""
    from device.queue import QueueError, read_status
    from device.status_view import render, summarise

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
    summary = summarise(status, int(time.time() * 1000))
    if args.json:
        print(json.dumps({**status, **summary}, indent=2))
        return 0
    print("\n".join(render(summary)))
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
