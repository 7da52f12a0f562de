"""Provisioning flows (device, rotate, revoke, list, show), all-or-nothing, mode-agnostic."""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from chantier.names import check_device_name, check_name
from chantier.telemetry import EQUIPMENT
from provisioning.audit_log import AuditLog
from provisioning.backends import Backend
from provisioning.bundle import (
    AgentSettings,
    BundleInfo,
    check_bundle_free,
    fill_bundle,
    new_staging_dir,
    publish,
    read_manifest,
    repoint_bundle,
    unpublish,
    unwatched_rule_warnings,
    write_archive,
)
from provisioning.ca import check_csr
from provisioning.errors import (
    InvalidDeviceError,
    ProvisioningError,
    ThingExistsError,
    ThingNotFoundError,
    UnknownSiteError,
)
from provisioning.policy import DEVICE_POLICY_NAME
from provisioning.registry import CertificateRecord, ThingRecord, is_not_found

_COST_RE = re.compile(r"^\d{1,7}(\.\d{1,2})?$")


@dataclass(frozen=True)
class DeviceSpec:
    """A machine to provision: thing name, site, equipment and optional hourly cost."""

    thing: str
    site: str
    equipment: str
    hourly_cost: str | None = None

    def checked(self) -> DeviceSpec:
        check_device_name(self.thing)
        check_name("site", self.site)
        if self.equipment not in EQUIPMENT:
            raise InvalidDeviceError(
                f"equipment {self.equipment!r} is unknown: expected one of {', '.join(EQUIPMENT)}"
            )
        if self.hourly_cost is not None and not _COST_RE.match(self.hourly_cost):
            raise InvalidDeviceError(
                f"hourly cost {self.hourly_cost!r} is not valid: expected a positive amount "
                "such as 85 or 85.50"
            )
        return self

    def attributes(self) -> dict[str, str]:
        attributes = {"site": self.site, "equipment": self.equipment}
        if self.hourly_cost is not None:
            attributes["hourlyCost"] = self.hourly_cost
        return attributes


@dataclass(frozen=True)
class ProvisionResult:
    thing: str
    bundle_dir: Path
    certificate_id: str
    not_after: datetime
    key_generated: bool
    archive: Path | None = None
    previous_certificate_ids: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    sensors: tuple[str, ...] = ()  # as listed in the bundle's agent.toml
    driver: str = "bme280"


@dataclass(frozen=True)
class DeviceView:
    thing: ThingRecord
    certificates: list[CertificateRecord]  # attached to the thing now
    bundle_dir: Path | None
    history: list[CertificateRecord] = field(default_factory=list)  # issued before, detached

    @property
    def active(self) -> list[CertificateRecord]:
        return [c for c in self.certificates if c.status == "ACTIVE"]

    def current(self) -> CertificateRecord | None:
        """The certificate that says how the thing stands: its newest active one, else its
        newest attached one, else the newest it had (a revoked thing has none attached)."""
        for pool in (self.active, self.certificates, self.history):
            if pool:
                return max(pool, key=lambda c: c.not_before or datetime.min.replace(tzinfo=UTC))
        return None

    def status(self, now: datetime) -> str:
        """ACTIVE, EXPIRED (active but past its date), REVOKED, INACTIVE… or NONE."""
        cert = self.current()
        if cert is None:
            return "NONE"
        if cert.status == "ACTIVE" and cert.not_after is not None and cert.not_after <= now:
            return "EXPIRED"
        return cert.status


@dataclass
class _Undo:
    """Compensating actions, run newest first when a flow fails half-way."""

    steps: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def push(self, what: str, action: Callable[[], None]) -> None:
        self.steps.append((what, action))

    def run(self) -> None:
        for what, action in reversed(self.steps):
            try:
                action()
            except Exception as exc:
                # Keep undoing the rest; say what is left so an admin can clean it by hand.
                print(f"warning: could not undo {what}: {exc}", file=sys.stderr)
        self.steps.clear()


class Provisioner:
    """Runs the provisioning flows against one backend (local stack or AWS)."""

    def __init__(
        self,
        backend: Backend,
        out_root: Path,
        *,
        audit: AuditLog | None = None,
        settings: AgentSettings | None = None,
    ) -> None:
        self.backend = backend
        self.registry = backend.registry
        self.out_root = Path(out_root)
        self.audit = audit or AuditLog(self.out_root / "provisioning-audit.jsonl", backend.mode)
        self.settings = settings or AgentSettings()
        self._prepared = False

    def _prepare(self) -> None:
        # Thing type and policy are shared by the whole fleet: checked once per process.
        if not self._prepared:
            self.registry.ensure_thing_type()
            self.backend.ensure_device_policy()
            self._prepared = True

    # -- sites -------------------------------------------------------------------------------

    def add_site(self, site: str, description: str = "") -> None:
        check_name("site", site)
        self.registry.create_site(site, description)
        self.audit.record("site-add", None, "ok", site=site)

    def sites(self) -> list[str]:
        return self.registry.sites()

    # -- device ------------------------------------------------------------------------------

    def provision(
        self,
        spec: DeviceSpec,
        *,
        csr_pem: bytes | None = None,
        force: bool = False,
        archive: bool = False,
        create_site: bool = False,
        settings: AgentSettings | None = None,
    ) -> ProvisionResult:
        """Thing, certificate, policy, bundle; on any failure nothing is left behind."""
        spec.checked()
        with self._audited("device", spec.thing, site=spec.site, csr=csr_pem is not None) as log:
            result = self._provision(spec, csr_pem, force, archive, create_site, settings)
            log.update(
                certificateId=result.certificate_id,
                notAfter=result.not_after.isoformat(),
                previousCertificateIds=list(result.previous_certificate_ids) or None,
                bundle=str(result.bundle_dir),
                archive=str(result.archive) if result.archive else None,
            )
            return result

    def _provision(
        self,
        spec: DeviceSpec,
        csr_pem: bytes | None,
        force: bool,
        archive: bool,
        create_site: bool,
        settings: AgentSettings | None,
    ) -> ProvisionResult:
        thing = spec.thing
        check_bundle_free(self.out_root, thing, force)
        if csr_pem is not None:
            check_csr(csr_pem, thing)  # before anything is created
        new_site = not self.registry.site_exists(spec.site)
        if new_site and not create_site:
            raise UnknownSiteError(
                f"site {spec.site!r} is unknown: add it with `chantier provision site add "
                f"{spec.site}` (or pass --new-site)"
            )
        existing = self.registry.get_thing(thing)
        previous = self.registry.thing_certificates(thing) if existing else []
        previous_active = [c for c in previous if c.status == "ACTIVE"]
        if previous_active and not force:
            ids = ", ".join(c.certificate_id[:12] for c in previous_active)
            raise ThingExistsError(
                f"thing {thing!r} already has an active certificate ({ids}): use `rotate "
                f"{thing}` to renew it, or --force to re-provision and revoke it"
            )
        self._prepare()
        undo = _Undo()
        try:
            if new_site:
                self.registry.create_site(spec.site)
                undo.push(f"site {spec.site}", lambda: self.registry.delete_site(spec.site))
            self._upsert_thing(spec, existing, undo)
            result, backup = self._deliver(spec, csr_pem, archive, settings, undo)
        except BaseException:
            undo.run()
            raise
        _remove(backup)
        # Committed. The replaced certificates' keys went with the old bundle: cut them off.
        # A failure here must not undo the new device, so it becomes a warning.
        warnings = []
        for old in previous_active:
            try:
                self._revoke_certificate(thing, old)
            except Exception as exc:
                warnings.append(
                    f"could not revoke the replaced certificate {old.certificate_id} ({exc}): "
                    f"run `chantier provision revoke {thing} --certificate {old.certificate_id}`"
                )
        warning = self.backend.after_change()
        return replace(
            result,
            previous_certificate_ids=tuple(c.certificate_id for c in previous_active),
            warnings=(*result.warnings, *warnings, *([warning] if warning else [])),
        )

    def _upsert_thing(self, spec: DeviceSpec, existing: ThingRecord | None, undo: _Undo) -> None:
        thing = spec.thing
        if existing is None:
            self.registry.create_thing(thing, spec.attributes())
            undo.push(f"thing {thing}", lambda: self.registry.delete_thing(thing))
            self.registry.add_to_site(thing, spec.site)
            undo.push(
                f"site membership of {thing}",
                lambda: self.registry.remove_from_site(thing, spec.site),
            )
            return
        old_attributes = existing.attributes
        self.registry.update_thing(thing, spec.attributes())
        undo.push(
            f"attributes of {thing}", lambda: self.registry.update_thing(thing, old_attributes)
        )
        if existing.site != spec.site:
            self.registry.add_to_site(thing, spec.site)
            undo.push(
                f"site membership of {thing}",
                lambda: self.registry.remove_from_site(thing, spec.site),
            )
            if existing.site and self.registry.site_exists(existing.site):
                self.registry.remove_from_site(thing, existing.site)
                undo.push(
                    f"former site membership of {thing}",
                    lambda: self.registry.add_to_site(thing, existing.site),
                )

    def _deliver(
        self,
        spec: DeviceSpec,
        csr_pem: bytes | None,
        archive: bool,
        settings: AgentSettings | None,
        undo: _Undo,
    ) -> tuple[ProvisionResult, Path | None]:
        """Issue and attach a certificate and put the bundle in place (undoable).

        Returns the result and the previous bundle kept aside, to delete once all succeeded.
        """
        thing = spec.thing
        staging = new_staging_dir(self.out_root, thing)
        undo.push(f"staging folder {staging}", lambda: shutil.rmtree(staging, True))
        issued = self.backend.issue(thing, csr_pem, staging)
        undo.push(f"certificate {issued.certificate_id}", lambda: self.backend.discard(issued))
        self.registry.attach(thing, issued.certificate_arn, DEVICE_POLICY_NAME)
        undo.push(
            f"attachments of {issued.certificate_id}",
            lambda: self.registry.detach(thing, issued.certificate_arn),
        )
        host, port = self.backend.endpoint()
        info = BundleInfo(
            thing=thing,
            site=spec.site,
            equipment=spec.equipment,
            hourly_cost=spec.hourly_cost,
            mode=self.backend.mode,
            certificate_id=issued.certificate_id,
            certificate_arn=issued.certificate_arn,
            serial=issued.serial,
            not_after=issued.not_after,
            endpoint=host,
            port=port,
            key_on_device=issued.key_path is None,
        )
        chosen = settings or self.settings
        sensors = chosen.sensor_names(spec.equipment)
        fill_bundle(staging, info, self.backend.root_ca_pem(), chosen)
        final = self.out_root / thing
        backup = publish(staging, final)
        undo.push(f"bundle {final}", lambda: unpublish(final, backup))
        archive_path = None
        if archive:
            archive_path = write_archive(final, self.out_root / f"{thing}.tar.gz")
        result = ProvisionResult(
            thing=thing,
            bundle_dir=final,
            certificate_id=issued.certificate_id,
            not_after=issued.not_after,
            key_generated=issued.key_path is not None,
            archive=archive_path,
            warnings=tuple(unwatched_rule_warnings(spec.equipment, sensors)),
            sensors=sensors,
            driver=chosen.driver,
        )
        return result, backup

    # -- restore -----------------------------------------------------------------------------

    def restore(self, thing: str) -> str | None:
        """Register a bundle's thing and certificate again; None if it needed nothing.

        The local stack keeps its registry in memory, so a restart forgets every thing while
        the bundles and the CA (on disk) stay valid: this puts each thing back as its bundle
        describes it, with the same certificate and key, and points the bundle at the new
        broker address. Returns the certificate id.
        """
        check_name("thing", thing)
        bundle = self.out_root / thing
        manifest = read_manifest(bundle)
        if manifest is None:
            raise ThingNotFoundError(f"no bundle in {bundle}: nothing to restore for {thing!r}")
        if self.registry.get_thing(thing) is not None:
            return None
        adopt = getattr(self.backend, "adopt", None)
        if adopt is None:
            raise ProvisioningError(
                f"restore is for the local stack, whose registry a restart empties; in "
                f"{self.backend.mode} mode re-provision {thing} with --force"
            )
        spec = DeviceSpec(
            thing,
            str(manifest.get("site", "")),
            str(manifest.get("equipment", "")),
            manifest.get("hourlyCost"),
        ).checked()
        with self._audited("restore", thing, site=spec.site) as log:
            self._prepare()
            undo = _Undo()
            try:
                if not self.registry.site_exists(spec.site):
                    self.registry.create_site(spec.site)
                    undo.push(f"site {spec.site}", lambda: self.registry.delete_site(spec.site))
                self._upsert_thing(spec, None, undo)
                certificate_id, arn = adopt(thing, (bundle / f"{thing}.pem").read_bytes())
                self.registry.attach(thing, arn, DEVICE_POLICY_NAME)
            except BaseException:
                undo.run()
                raise
            repoint_bundle(bundle, *self.backend.endpoint())
            log.update(certificateId=certificate_id)
            self._warn(self.backend.after_change())
            return str(certificate_id)

    def bundles(self) -> list[str]:
        """Things that have a bundle in the output folder, sorted."""
        if not self.out_root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.out_root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and read_manifest(p) is not None
        )

    # -- rotate ------------------------------------------------------------------------------

    def rotate(
        self,
        thing: str,
        *,
        csr_pem: bytes | None = None,
        archive: bool = False,
        settings: AgentSettings | None = None,
    ) -> ProvisionResult:
        """New certificate and bundle; the old certificate keeps working until complete_rotation."""
        check_name("thing", thing)
        with self._audited("rotate", thing, csr=csr_pem is not None) as log:
            record = self._require_thing(thing)
            if csr_pem is not None:
                check_csr(csr_pem, thing)
            spec = DeviceSpec(
                thing, record.site, record.equipment, record.attributes.get("hourlyCost")
            )
            old = [c for c in self.registry.thing_certificates(thing) if c.status == "ACTIVE"]
            undo = _Undo()
            try:
                result, backup = self._deliver(spec, csr_pem, archive, settings, undo)
            except BaseException:
                undo.run()
                raise
            _remove(backup)
            log.update(
                certificateId=result.certificate_id,
                notAfter=result.not_after.isoformat(),
                previousCertificateIds=[c.certificate_id for c in old],
            )
            warning = self.backend.after_change()
            return replace(
                result,
                previous_certificate_ids=tuple(c.certificate_id for c in old),
                warnings=(*result.warnings, *([warning] if warning else [])),
            )

    def complete_rotation(self, thing: str) -> list[str]:
        """Revoke every certificate of `thing` but the newest active one; their ids."""
        check_name("thing", thing)
        with self._audited("rotate-complete", thing) as log:
            self._require_thing(thing)
            active = [c for c in self.registry.thing_certificates(thing) if c.status == "ACTIVE"]
            current = self._current_certificate(thing, active)
            revoked = []
            for cert in active:
                if current is not None and cert.certificate_id == current.certificate_id:
                    continue
                self._revoke_certificate(thing, cert)
                revoked.append(cert.certificate_id)
            log.update(previousCertificateIds=revoked)
            self._warn(self.backend.after_change())
            return revoked

    def _current_certificate(
        self, thing: str, active: list[CertificateRecord]
    ) -> CertificateRecord | None:
        # The bundle says which certificate was delivered last; without one (CSR flow, another
        # admin machine) the most recently issued certificate is the current one.
        manifest = read_manifest(self.out_root / thing) or {}
        for cert in active:
            if cert.certificate_id == manifest.get("certificateId"):
                return cert
        dated = [(c.not_before, c) for c in active if c.not_before is not None]
        return max(dated, key=lambda pair: pair[0])[1] if dated else None

    # -- revoke ------------------------------------------------------------------------------

    def revoke(self, thing: str, certificate_id: str | None = None) -> list[str]:
        """Revoke and detach the thing's certificates (or one of them); their ids."""
        check_name("thing", thing)
        with self._audited("revoke", thing, certificateId=certificate_id) as log:
            self._require_thing(thing)
            certs = self.registry.thing_certificates(thing)
            if certificate_id is not None:
                certs = [c for c in certs if c.certificate_id.startswith(certificate_id)]
                if not certs:
                    raise ThingNotFoundError(
                        f"no certificate starting with {certificate_id!r} is attached to "
                        f"{thing!r}: see `chantier provision show {thing}`"
                    )
            for cert in certs:
                self._revoke_certificate(thing, cert)
            log.update(previousCertificateIds=[c.certificate_id for c in certs])
            self._warn(self.backend.after_change())
            return [c.certificate_id for c in certs]

    def _revoke_certificate(self, thing: str, cert: CertificateRecord) -> None:
        # Status first: even if detaching fails half-way, the certificate is already refused.
        self.backend.revoke(cert)
        self.registry.detach(thing, cert.arn)

    # -- read --------------------------------------------------------------------------------

    def devices(self, *, with_links: bool = False) -> list[DeviceView]:
        """Every thing with its certificates, past ones included (so a revoked one shows)."""
        past = self._past_certificate_ids()
        return [
            self._with_history(self._view(record, with_links=with_links), past, with_links)
            for record in sorted(self.registry.things(), key=lambda t: t.name)
        ]

    def show(self, thing: str) -> DeviceView:
        """The thing, its attached certificates and those it had before (from the audit log)."""
        check_name("thing", thing)
        view = self._view(self._require_thing(thing), with_links=True)
        return self._with_history(view, self._past_certificate_ids(), True)

    def _with_history(
        self, view: DeviceView, past: dict[str, list[str]], with_links: bool
    ) -> DeviceView:
        attached = {c.certificate_id for c in view.certificates}
        history = []
        for certificate_id in past.get(view.thing.name, []):
            if certificate_id in attached:
                continue
            try:
                history.append(self.registry.certificate(certificate_id, with_links=with_links))
            except Exception as exc:
                if not is_not_found(exc):
                    raise
        return replace(view, history=history)

    def _past_certificate_ids(self) -> dict[str, list[str]]:
        # Revoked certificates are detached, so the registry no longer links them to the thing;
        # the audit log still does. Read once for every thing.
        ids: dict[str, list[str]] = {}
        for entry in self.audit.entries():
            thing = entry.get("thing")
            if not isinstance(thing, str) or entry.get("outcome") != "ok":
                continue
            known = ids.setdefault(thing, [])
            for value in [entry.get("certificateId"), *entry.get("previousCertificateIds", [])]:
                if isinstance(value, str) and value and value not in known:
                    known.append(value)
        return ids

    def _view(self, record: ThingRecord, *, with_links: bool) -> DeviceView:
        certs = [
            self.registry.certificate(arn.rsplit("/", 1)[-1], with_links=with_links)
            for arn in self.registry.thing_principals(record.name)
            if ":cert/" in arn
        ]
        bundle = self.out_root / record.name
        return DeviceView(record, certs, bundle if bundle.exists() else None)

    def _require_thing(self, thing: str) -> ThingRecord:
        record = self.registry.get_thing(thing)
        if record is None and read_manifest(self.out_root / thing) is not None:
            raise ThingNotFoundError(
                f"thing {thing!r} is not in the registry, though its bundle is in "
                f"{self.out_root / thing}: after a local stack restart, run `chantier provision "
                "restore` to register the bundles again"
            )
        if record is None:
            raise ThingNotFoundError(
                f"thing {thing!r} is not in the registry: check the name with "
                "`chantier provision list`"
            )
        return record

    # -- helpers -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _audited(
        self, action: str, thing: str | None, **details: object
    ) -> Iterator[dict[str, object]]:
        """Record the action's outcome; the flow adds details to the yielded dict."""
        try:
            yield details
        except Exception as exc:
            self.audit.record(action, thing, "failed", error=str(exc), **details)
            raise
        self.audit.record(action, thing, "ok", **details)

    @staticmethod
    def _warn(message: str | None) -> None:
        if message:
            print(f"warning: {message}", file=sys.stderr)


def _remove(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
