"""Provisioning many machines from a CSV file: checked up front, resumable, with progress."""

from __future__ import annotations

import csv
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from chantier.names import InvalidNameError
from provisioning.bundle import read_manifest
from provisioning.errors import InvalidDeviceError
from provisioning.service import DeviceSpec, Provisioner

REQUIRED_COLUMNS = ("thing", "site", "equipment")
COST_COLUMNS = ("hourly_cost", "hourlyCost", "hourly-cost")
MAX_LISTED = 10  # problems named one by one; more are counted


@dataclass(frozen=True)
class FleetRow:
    line: int
    spec: DeviceSpec
    csr: Path | None = None


@dataclass
class FleetReport:
    provisioned: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def read_fleet_csv(path: Path) -> list[FleetRow]:
    """Every row checked before anything is created; errors name the file and line."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidDeviceError(f"{path}: the fleet file does not exist") from None
    with handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise InvalidDeviceError(
                f"{path}: missing column(s) {', '.join(missing)}: expected a header line with "
                "thing,site,equipment[,hourly_cost][,csr]"
            )
        rows: list[FleetRow] = []
        problems: list[str] = []
        seen: dict[str, int] = {}
        for raw in reader:
            line = reader.line_num
            values = {str(k).strip(): (v or "").strip() for k, v in raw.items() if k}
            cost = next((values[c] for c in COST_COLUMNS if values.get(c)), None)
            spec = DeviceSpec(values["thing"], values["site"], values["equipment"], cost)
            try:
                spec.checked()
            except (InvalidNameError, InvalidDeviceError) as exc:
                problems.append(f"{path}:{line}: {exc}")
                continue
            if spec.thing in seen:
                problems.append(
                    f"{path}:{line}: thing {spec.thing!r} already on line {seen[spec.thing]}: "
                    "expected each thing once"
                )
                continue
            seen[spec.thing] = line
            csr = values.get("csr") or None
            csr_path = (path.parent / csr) if csr else None
            if csr_path is not None and not csr_path.is_file():
                problems.append(f"{path}:{line}: CSR file {csr_path} does not exist")
                continue
            rows.append(FleetRow(line, spec, csr_path))
    _refuse(problems, "the file")
    return rows


def _refuse(problems: list[str], what: str) -> None:
    """One error naming every problem (the first MAX_LISTED), so one fix-up pass is enough."""
    if not problems:
        return
    shown = problems[:MAX_LISTED]
    more = len(problems) - len(shown)
    if more:
        shown.append(f"... and {more} more")
    head = "" if len(problems) == 1 else f"{len(problems)} problems in {what}; nothing was done:\n"
    raise InvalidDeviceError(head + "\n".join(shown))


def check_fleet(
    provisioner: Provisioner,
    rows: Sequence[FleetRow],
    *,
    create_sites: bool = False,
    force: bool = False,
) -> None:
    """Every row checked against the registry and the bundles folder before anything is made.

    Unknown sites (without --new-sites), bundles whose thing the registry lost (a restarted
    local stack) and things that hold a certificate without a bundle here are all named in
    one error, with the flag or command that resolves them.
    """
    problems: list[str] = []
    sites = {row.spec.site for row in rows}
    if not create_sites:
        known = {site for site in sites if provisioner.registry.site_exists(site)}
        for row in rows:
            if row.spec.site not in known:
                problems.append(
                    f"line {row.line}: site {row.spec.site!r} is unknown: add it with "
                    f"`chantier provision site add {row.spec.site}`, or pass --new-sites"
                )
    if not force:
        for row in rows:
            thing = row.spec.thing
            has_bundle = read_manifest(provisioner.out_root / thing) is not None
            registered = provisioner.registry.get_thing(thing) is not None
            if has_bundle and not registered:
                problems.append(
                    f"line {row.line}: {provisioner.out_root / thing} exists but thing {thing!r} "
                    "is not in the registry (the local stack's registry starts empty at each "
                    "restart): run `chantier provision restore` to register the bundles again, "
                    "or pass --force to issue new certificates"
                )
            elif registered and not has_bundle and _has_active_certificate(provisioner, thing):
                problems.append(
                    f"line {row.line}: thing {thing!r} already has an active certificate but no "
                    f"bundle in {provisioner.out_root}: use `chantier provision rotate {thing}`, "
                    "or pass --force to re-provision it (its certificate is revoked)"
                )
    _refuse(problems, "the fleet")


def _has_active_certificate(provisioner: Provisioner, thing: str) -> bool:
    return any(c.status == "ACTIVE" for c in provisioner.registry.thing_certificates(thing))


class Progress:
    """A one-line bar on a terminal; a line every 10 % otherwise (logs, CI)."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1
        self._started = time.monotonic()

    def update(self, done: int, label: str) -> None:
        fraction = done / self.total
        if self.tty:
            filled = int(self.width * fraction)
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r[{bar}] {done}/{self.total} {label[:40]:<40}")
            self.stream.flush()
            return
        decile = int(fraction * 10)
        if decile != self._last_decile or done == self.total:
            self._last_decile = decile
            self.stream.write(f"{done}/{self.total} ({fraction:.0%}) {label}\n")
            self.stream.flush()

    def note(self, message: str) -> None:
        self.stream.write(("\n" if self.tty else "") + message + "\n")
        self.stream.flush()

    def close(self) -> None:
        elapsed = time.monotonic() - self._started
        if self.tty:
            self.stream.write("\n")
        self.stream.write(f"done in {elapsed:.1f} s\n")
        self.stream.flush()


def _already_done(provisioner: Provisioner, spec: DeviceSpec) -> bool:
    manifest = read_manifest(provisioner.out_root / spec.thing)
    return manifest is not None and provisioner.registry.get_thing(spec.thing) is not None


def _interrupted_here(provisioner: Provisioner, thing: str) -> bool:
    """A staging folder left by a killed run: remove it (it may hold a key) and say so."""
    leftovers = list(provisioner.out_root.glob(f".staging-{thing}-*"))
    for leftover in leftovers:
        shutil.rmtree(leftover, ignore_errors=True)
    return bool(leftovers)


def run_fleet(
    provisioner: Provisioner,
    rows: Sequence[FleetRow],
    *,
    create_sites: bool = False,
    archive: bool = False,
    keep_going: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> FleetReport:
    """Provision each row not already done; a re-run after a failure picks up where it stopped."""
    report = FleetReport()
    bar = progress or Progress(len(rows))
    for index, row in enumerate(rows, start=1):
        thing = row.spec.thing
        interrupted = _interrupted_here(provisioner, thing)
        if not interrupted and _already_done(provisioner, row.spec):
            report.skipped.append(thing)
            bar.update(index, f"{thing} (already done)")
            continue
        try:
            csr_pem = row.csr.read_bytes() if row.csr else None
            # After a killed run the thing may hold a certificate whose key died with the
            # staging folder: re-provisioning (force) revokes it and issues a fresh one.
            provisioner.provision(
                row.spec,
                csr_pem=csr_pem,
                force=interrupted or force,
                archive=archive,
                create_site=create_sites,
            )
            report.provisioned.append(thing)
        except Exception as exc:
            # provision() already rolled this row back; record it and stop (or go on).
            report.failed.append((thing, str(exc)))
            bar.note(f"line {row.line}: {thing}: {exc}")
            if not keep_going:
                bar.update(index, f"{thing} (failed)")
                break
        bar.update(index, thing)
    bar.close()
    return report
