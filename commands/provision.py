"""`chantier provision …`: argument parsing and output; the flows live in provisioning.service."""

from __future__ import annotations

import argparse
import contextlib
import json
import stat
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chantier.names import InvalidNameError
from chantier.telemetry import EQUIPMENT
from cloud.local.provisioning import local_ca, local_state_dir
from commands.bootstrap import DEFAULT_OUT, open_provisioner, wants_aws
from commands.tables import pairs, table
from provisioning.bundle import BME280_ADDRESSES, AgentSettings, BundleExistsError
from provisioning.ca import CA_CERT_FILE, CaError, CertificateAuthority, CsrMismatchError
from provisioning.csv_batch import check_fleet, read_fleet_csv, run_fleet
from provisioning.errors import ProvisioningError
from provisioning.registry import CertificateRecord
from provisioning.rootca import RootCaNotFoundError
from provisioning.security_audit import (
    SEVERITIES,
    at_or_above,
    audit_scope,
    describe_scope,
    run_checks,
    take_snapshot,
)
from provisioning.service import DeviceSpec, DeviceView, Provisioner

EXIT_ERROR = 2
EXIT_FINDINGS = 1
LIST_STATUSES = ("ACTIVE", "EXPIRED", "REVOKED", "INACTIVE", "PENDING_TRANSFER", "NONE")

# Errors an admin can fix from the message alone: printed as one line, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ProvisioningError,
    InvalidNameError,
    CsrMismatchError,
    BundleExistsError,
    CaError,
    RootCaNotFoundError,
)


def register(subparsers: Any) -> None:
    """Add `provision` and its sub-commands to the root `chantier` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--aws", action="store_true", help="use AWS IoT Core (default: the local stack)"
    )
    common.add_argument("--region", help="AWS region (AWS mode)")
    common.add_argument("--profile", help="AWS profile (AWS mode)")
    common.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="bundles folder (default: certs)"
    )
    common.add_argument("--state-dir", type=Path, help="local stack state folder")

    parser = subparsers.add_parser(
        "provision", help="certificate authority, device certificates, audit"
    )
    sub = parser.add_subparsers(dest="provision_command", metavar="COMMAND", required=True)

    ca = sub.add_parser("ca", help="the local certificate authority")
    ca_sub = ca.add_subparsers(dest="ca_command", metavar="COMMAND", required=True)
    init = ca_sub.add_parser("init", parents=[common], help="create the local CA (EC P-256)")
    init.add_argument("--days", type=int, default=3650, help="validity (default 3650)")
    init.add_argument("--common-name", default="Chantier Connecte Local CA")
    init.set_defaults(func=_guarded(cmd_ca_init))
    show_ca = ca_sub.add_parser("show", parents=[common], help="validity, CRL, key file mode")
    show_ca.set_defaults(func=_guarded(cmd_ca_show))

    site = sub.add_parser("site", help="construction sites (thing groups)")
    site_sub = site.add_subparsers(dest="site_command", metavar="COMMAND", required=True)
    site_add = site_sub.add_parser("add", parents=[common], help="register a site")
    site_add.add_argument("site")
    site_add.add_argument("--description", default="")
    site_add.set_defaults(func=_guarded(cmd_site_add))
    site_list = site_sub.add_parser("list", parents=[common], help="list sites")
    site_list.set_defaults(func=_guarded(cmd_site_list))

    device = sub.add_parser("device", parents=[common], help="provision one machine")
    device.add_argument("thing")
    device.add_argument("--site", required=True)
    device.add_argument("--equipment", required=True, choices=EQUIPMENT)
    device.add_argument("--hourly-cost", help="hourly cost of the machine, e.g. 85.50")
    _add_delivery_options(device)
    device.add_argument("--force", action="store_true", help="replace an existing bundle")
    device.add_argument("--new-site", action="store_true", help="create the site if unknown")
    device.set_defaults(func=_guarded(cmd_device))

    listing = sub.add_parser("list", parents=[common], help="things and their certificates")
    listing.add_argument("--site", help="only the things of this site")
    listing.add_argument(
        "--status",
        type=str.upper,
        choices=LIST_STATUSES,
        help="only things whose current certificate has this status",
    )
    listing.add_argument(
        "--expiring",
        type=int,
        metavar="DAYS",
        help="only things whose active certificate expires within DAYS days (or has expired)",
    )
    listing.add_argument("--json", action="store_true", help="one object per thing, as `show`")
    listing.set_defaults(func=_guarded(cmd_list))

    show = sub.add_parser("show", parents=[common], help="one thing in detail")
    show.add_argument("thing")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_guarded(cmd_show))

    revoke = sub.add_parser("revoke", parents=[common], help="cut a device off")
    revoke.add_argument("thing")
    revoke.add_argument("--certificate", help="only this certificate (id or id prefix)")
    revoke.set_defaults(func=_guarded(cmd_revoke))

    rotate = sub.add_parser(
        "rotate", parents=[common], help="new certificate; --complete revokes the old one"
    )
    rotate.add_argument("thing")
    _add_delivery_options(rotate)
    rotate.add_argument(
        "--complete",
        action="store_true",
        help="the device runs on its new certificate: revoke the previous one(s)",
    )
    rotate.set_defaults(func=_guarded(cmd_rotate))

    fleet = sub.add_parser("fleet", parents=[common], help="provision machines from a CSV")
    fleet.add_argument("--from", dest="source", type=Path, required=True, metavar="FILE.csv")
    fleet.add_argument("--new-sites", action="store_true", help="create unknown sites")
    fleet.add_argument("--archive", action="store_true", help="also write <thing>.tar.gz")
    fleet.add_argument("--keep-going", action="store_true", help="do not stop at a failure")
    fleet.add_argument(
        "--force",
        action="store_true",
        help="issue new certificates where a bundle exists but the registry lost its thing, "
        "or a thing has a certificate but no bundle here",
    )
    fleet.set_defaults(func=_guarded(cmd_fleet))

    restore = sub.add_parser(
        "restore",
        parents=[common],
        help="register the bundles again after a local stack restart (same keys)",
    )
    restore.add_argument("things", nargs="*", help="only these things (default: every bundle)")
    restore.set_defaults(func=_guarded(cmd_restore))

    audit = sub.add_parser("audit", parents=[common], help="certificate and policy checks")
    audit.add_argument(
        "--fail-on",
        choices=(*SEVERITIES, "none"),
        default="high",
        help="exit 1 when a finding is at least this severe (default high)",
    )
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(func=_guarded(cmd_audit))


def _add_delivery_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csr", type=Path, help="CSR made on the device (key stays there)")
    parser.add_argument(
        "--key-path", help="where the key is on the device, for agent.toml (with --csr)"
    )
    parser.add_argument("--archive", action="store_true", help="also write <thing>.tar.gz")
    parser.add_argument("--driver", choices=("bme280", "simulated"), help="sensor driver")
    parser.add_argument(
        "--sensor",
        action="append",
        dest="sensors",
        metavar="NAME",
        help="sensor name for agent.toml, repeatable (default: the sensors the equipment's "
        "alert rules watch, e.g. engine for an excavator; BME280s at 0x76 then 0x77)",
    )
    parser.add_argument(
        "--rule-prefix",
        default="chantier",
        help="RulePrefix of the deployed template (AWS mode: Basic Ingest topics)",
    )
    parser.add_argument(
        "--topic-prefix",
        help="topic prefix for agent.toml; may hold {kind} "
        "(default AWS: $aws/rules/<rule-prefix>_{kind}/, local: none)",
    )
    parser.add_argument("--agent-state-dir", default="/var/lib/chantier")


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the errors an admin can act on into one line on stderr and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return command(args)
        except USER_ERRORS as exc:
            print(f"error: {exc}", file=sys.stderr)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            print(f"error: AWS IoT refused: {error.get('Message') or exc}", file=sys.stderr)
        except BotoCoreError as exc:
            print(f"error: {_explain_botocore(exc, args)}", file=sys.stderr)
        return EXIT_ERROR

    return run


def _explain_botocore(exc: Exception, args: argparse.Namespace) -> str:
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found: run `aws configure` or set AWS_PROFILE"
    if isinstance(exc, EndpointConnectionError) and not wants_aws(args.aws):
        return f"the local stack does not answer ({exc}): start it with `chantier stack up`"
    return str(exc)


def _provisioner(args: argparse.Namespace, settings: AgentSettings | None = None) -> Provisioner:
    return open_provisioner(
        aws=args.aws,
        out_root=args.out,
        state_dir=args.state_dir,
        region=args.region,
        profile=args.profile,
        settings=settings,
    )


def _settings(args: argparse.Namespace) -> AgentSettings:
    driver = args.driver or ("bme280" if wants_aws(args.aws) else "simulated")
    return AgentSettings(
        driver=driver,
        sensors=tuple(args.sensors or ()),
        state_dir=args.agent_state_dir,
        topic_prefix=_topic_prefix(args),
        key_path=args.key_path,
    )


def _topic_prefix(args: argparse.Namespace) -> str:
    if args.topic_prefix is not None:
        return str(args.topic_prefix)
    # In AWS each kind goes to its own rule through Basic Ingest (no messaging charge).
    return f"$aws/rules/{args.rule_prefix}_{{kind}}/" if wants_aws(args.aws) else ""


def _read_csr(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ProvisioningError(
            f"cannot read the CSR {path}: {exc.strerror}; expected the .csr file "
            "written by `chantier agent keygen`"
        ) from None


# -- commands ----------------------------------------------------------------------------------


def _require_local(args: argparse.Namespace, what: str) -> None:
    if wants_aws(args.aws):
        raise ProvisioningError(
            f"`{what}` is about the local CA of the local stack; in AWS mode Amazon's CA signs "
            "device certificates"
        )


def cmd_ca_init(args: argparse.Namespace) -> int:
    _require_local(args, "ca init")
    directory = local_state_dir(args.state_dir) / "ca"
    existed = (directory / CA_CERT_FILE).exists()
    ca = CertificateAuthority.create_or_load(
        directory, common_name=args.common_name, days=args.days
    )
    print(("CA already exists: " if existed else "CA created: ") + str(ca.cert_path))
    _print_ca(ca)
    return 0


def cmd_ca_show(args: argparse.Namespace) -> int:
    _require_local(args, "ca show")
    _print_ca(local_ca(args.state_dir))
    return 0


def _print_ca(ca: CertificateAuthority) -> None:
    now = datetime.now(UTC)
    crl = ca.load_crl()
    key_mode = stat.S_IMODE(ca.key_path.stat().st_mode)
    rows = [
        ("subject", ca.subject),
        ("key", "EC P-256"),
        ("valid from", f"{ca.not_before:%Y-%m-%d %H:%M} UTC"),
        ("valid until", f"{ca.not_after:%Y-%m-%d %H:%M} UTC ({(ca.not_after - now).days} days)"),
        ("certificate", str(ca.cert_path)),
        ("certificate id", ca.certificate_id),
        ("private key", f"{ca.key_path} (mode {key_mode:04o})"),
        ("CRL", f"{ca.crl_path} ({len(crl)} revoked, next update {crl.next_update_utc:%Y-%m-%d})"),
    ]
    _print_pairs(rows)
    if key_mode & 0o077:
        print(f"warning: {ca.key_path} is readable by others: chmod 600 it", file=sys.stderr)


def cmd_site_add(args: argparse.Namespace) -> int:
    _provisioner(args).add_site(args.site, args.description)
    print(f"site {args.site} registered")
    return 0


def cmd_site_list(args: argparse.Namespace) -> int:
    provisioner = _provisioner(args)
    by_site: dict[str, int] = {}
    for thing in provisioner.registry.things():
        by_site[thing.site] = by_site.get(thing.site, 0) + 1
    rows = [(site, by_site.get(site, 0)) for site in provisioner.sites()]
    print(table(("site", "things"), rows, empty="no site: add one with `provision site add`"))
    return 0


def cmd_device(args: argparse.Namespace) -> int:
    spec = DeviceSpec(args.thing, args.site, args.equipment, args.hourly_cost)
    csr_pem = _read_csr(args.csr)
    provisioner = _provisioner(args)
    result = provisioner.provision(
        spec,
        csr_pem=csr_pem,
        force=args.force,
        archive=args.archive,
        create_site=args.new_site,
        settings=_settings(args),
    )
    _print_result("provisioned", result)
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    provisioner = _provisioner(args)
    if args.complete:
        revoked = provisioner.complete_rotation(args.thing)
        if revoked:
            print(f"{args.thing}: revoked previous certificate(s) " + ", ".join(revoked))
        else:
            print(f"{args.thing}: nothing to revoke, one active certificate")
        return 0
    result = provisioner.rotate(
        args.thing, csr_pem=_read_csr(args.csr), archive=args.archive, settings=_settings(args)
    )
    _print_result("rotated", result)
    if result.previous_certificate_ids:
        print(
            f"the previous certificate still works; once the device runs on the new bundle: "
            f"chantier provision rotate {args.thing} --complete"
        )
    return 0


def _print_result(verb: str, result: Any) -> None:
    rows = [
        ("thing", result.thing),
        ("certificate id", result.certificate_id),
        ("valid until", f"{result.not_after:%Y-%m-%d %H:%M} UTC"),
        ("bundle", str(result.bundle_dir)),
        (
            "private key",
            f"{result.bundle_dir / (result.thing + '.key')} (0600)"
            if result.key_generated
            else "stays on the device (CSR)",
        ),
    ]
    rows.append(("sensors", _sensors_text(result)))
    if result.archive:
        rows.append(("archive", str(result.archive)))
    if result.previous_certificate_ids and verb == "provisioned":
        rows.append(("revoked", ", ".join(result.previous_certificate_ids)))
    print(f"{verb} {result.thing}")
    _print_pairs(rows)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _sensors_text(result: Any) -> str:
    if result.driver == "bme280":
        placed = zip(result.sensors, BME280_ADDRESSES, strict=False)
        return ", ".join(f"{name} (BME280 0x{address:02x})" for name, address in placed)
    return ", ".join(f"{name} ({result.driver})" for name in result.sensors)


def cmd_revoke(args: argparse.Namespace) -> int:
    revoked = _provisioner(args).revoke(args.thing, args.certificate)
    if not revoked:
        print(f"{args.thing}: no certificate attached, nothing to revoke")
    for certificate_id in revoked:
        print(f"{args.thing}: revoked and detached {certificate_id}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    views = _provisioner(args).devices(with_links=args.json)
    views = [v for v in views if _listed(v, args, now)]
    if args.json:
        print(json.dumps([_view_json(v, now) for v in views], indent=2))
        return 0
    rows = []
    for view in views:
        cert = view.current()
        more = len(view.certificates) + len(view.history) - 1
        rows.append(
            (
                view.thing.name,
                view.thing.site,
                view.thing.equipment,
                (cert.certificate_id[:12] + (f" +{more}" if more > 0 else "")) if cert else None,
                view.status(now),
                f"{cert.not_after:%Y-%m-%d}" if cert and cert.not_after else None,
            )
        )
    headers = ("thing", "site", "equipment", "certificate", "status", "expires")
    print(table(headers, rows, empty="no thing matches" if _filtered(args) else "no thing"))
    return 0


def _filtered(args: argparse.Namespace) -> bool:
    return bool(args.site or args.status or args.expiring is not None)


def _listed(view: DeviceView, args: argparse.Namespace, now: datetime) -> bool:
    if args.site and view.thing.site != args.site:
        return False
    if args.status and view.status(now) != args.status:
        return False
    if args.expiring is not None:
        cert = view.current()
        if cert is None or cert.status != "ACTIVE" or cert.not_after is None:
            return False
        return cert.not_after <= now + timedelta(days=args.expiring)
    return True


def cmd_show(args: argparse.Namespace) -> int:
    view = _provisioner(args).show(args.thing)
    now = datetime.now(UTC)
    if args.json:
        print(json.dumps(_view_json(view, now), indent=2))
        return 0
    rows = [
        ("thing", view.thing.name),
        ("thing type", view.thing.thing_type or "-"),
        *((f"attribute {k}", v) for k, v in sorted(view.thing.attributes.items())),
        ("bundle", str(view.bundle_dir) if view.bundle_dir else "-"),
        ("status", view.status(now)),
    ]
    _print_pairs(rows)
    if not view.certificates:
        print("no certificate attached")
    for cert in view.certificates:
        print()
        _print_pairs(
            [
                ("certificate id", cert.certificate_id),
                ("status", cert.status),
                ("valid until", f"{cert.not_after:%Y-%m-%d %H:%M} UTC" if cert.not_after else "-"),
                ("things", ", ".join(cert.things) or "-"),
                ("policies", ", ".join(cert.policies) or "-"),
            ]
        )
    if view.history:
        print("\nprevious certificates (detached)")
        rows_past = [
            (c.certificate_id, c.status, f"{c.not_after:%Y-%m-%d}" if c.not_after else None)
            for c in view.history
        ]
        print(table(("certificate", "status", "expires"), rows_past))
    return 0


def _view_json(view: DeviceView, now: datetime) -> dict[str, Any]:
    return {
        "thing": view.thing.name,
        "status": view.status(now),
        "attributes": view.thing.attributes,
        "bundle": str(view.bundle_dir) if view.bundle_dir else None,
        "certificates": [_cert_json(c) for c in view.certificates],
        "history": [_cert_json(c) for c in view.history],
    }


def _cert_json(cert: CertificateRecord) -> dict[str, Any]:
    return {
        "certificateId": cert.certificate_id,
        "status": cert.status,
        "notAfter": cert.not_after.isoformat() if cert.not_after else None,
        "things": list(cert.things),
        "policies": list(cert.policies),
    }


def cmd_fleet(args: argparse.Namespace) -> int:
    rows = read_fleet_csv(args.source)
    provisioner = _provisioner(args)
    check_fleet(provisioner, rows, create_sites=args.new_sites, force=args.force)
    # Local mode: one broker refresh for the whole file rather than one per machine.
    deferred = getattr(provisioner.backend, "deferred_refresh", None)
    batch = deferred() if deferred is not None else contextlib.nullcontext([])
    with batch as warnings:
        report = run_fleet(
            provisioner,
            rows,
            create_sites=args.new_sites,
            archive=args.archive,
            keep_going=args.keep_going,
            force=args.force,
        )
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"fleet: {len(report.provisioned)} provisioned, {len(report.skipped)} already done, "
        f"{len(report.failed)} failed"
    )
    if report.failed:
        print(
            f"fix the row(s) above and run the same command again: finished machines are "
            f"skipped; {len(rows) - len(report.provisioned) - len(report.skipped)} left",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    _require_local(args, "restore")
    provisioner = _provisioner(args)
    things = args.things or provisioner.bundles()
    if not things:
        print(f"no bundle in {provisioner.out_root}: nothing to restore")
        return 0
    rows: list[tuple[str, str, str | None]] = []
    deferred = getattr(provisioner.backend, "deferred_refresh", None)
    batch = deferred() if deferred is not None else contextlib.nullcontext([])
    failed = 0
    with batch as warnings:
        for thing in things:
            try:
                certificate_id = provisioner.restore(thing)
            except USER_ERRORS as exc:
                failed += 1
                rows.append((thing, "FAILED", str(exc)))
                continue
            if certificate_id is None:
                rows.append((thing, "already registered", None))
            else:
                rows.append((thing, "restored", f"certificate {certificate_id[:12]}"))
    print(table(("thing", "result", "detail"), rows))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_ERROR if failed else 0


def cmd_audit(args: argparse.Namespace) -> int:
    provisioner = _provisioner(args)
    snapshot = take_snapshot(
        provisioner.registry, provisioner.backend.ca_status(), datetime.now(UTC)
    )
    findings = run_checks(snapshot)
    scope = audit_scope(snapshot)
    if args.json:
        print(json.dumps({"checked": scope, "findings": [f.__dict__ for f in findings]}, indent=2))
    else:
        print(describe_scope(scope))
        print()
        rows = [(f.severity.upper(), f.check, f.resource, f.detail) for f in findings]
        headers = ("severity", "check", "resource", "detail")
        print(table(headers, rows, empty="no findings"))
    provisioner.audit.record("audit", None, "ok", warning=f"{len(findings)} finding(s)")
    if args.fail_on != "none" and at_or_above(findings, args.fail_on):
        return EXIT_FINDINGS
    return 0


# -- output helpers ----------------------------------------------------------------------------


def _print_pairs(rows: list[tuple[str, str]]) -> None:
    print(pairs(rows))
