"""Fleet security audit in the spirit of Device Defender: pure checks over a registry snapshot."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from provisioning.backends import CaStatus
from provisioning.policy import wildcard_grants
from provisioning.registry import CertificateRecord, Registry

SEVERITIES = ("low", "medium", "high", "critical")
CERT_EXPIRY_WARNING = timedelta(days=30)
CA_EXPIRY_WARNING = timedelta(days=180)
CRL_EXPIRY_WARNING = timedelta(days=30)


@dataclass(frozen=True)
class Finding:
    severity: str
    check: str
    resource: str
    detail: str

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self.severity)


@dataclass(frozen=True)
class Snapshot:
    """Everything the checks look at, read once from the registry (and the local CA)."""

    certificates: list[CertificateRecord]
    policies: Mapping[str, Mapping[str, Any]]
    ca: CaStatus | None
    now: datetime


def take_snapshot(registry: Registry, ca: CaStatus | None, now: datetime) -> Snapshot:
    certificates = [registry.certificate(cid) for cid in registry.certificate_ids()]
    return Snapshot(certificates, registry.policy_documents(), ca, now)


def run_checks(snapshot: Snapshot) -> list[Finding]:
    """All findings, most severe first."""
    findings = [
        *_shared_certificates(snapshot.certificates),
        *_expiring_certificates(snapshot.certificates, snapshot.now),
        *_revoked_still_attached(snapshot.certificates),
        *_revoked_but_active(snapshot.certificates, snapshot.ca),
        *_ca_expiry(snapshot.ca, snapshot.now),
        *_wildcard_policies(snapshot.policies),
    ]
    return sorted(findings, key=lambda f: (-f.rank, f.check, f.resource))


def _shared_certificates(certs: Iterable[CertificateRecord]) -> Iterable[Finding]:
    for cert in certs:
        if len(cert.things) > 1:
            yield Finding(
                "critical",
                "certificate-shared",
                cert.certificate_id[:12],
                f"one certificate identifies {len(cert.things)} things: "
                f"{', '.join(sorted(cert.things))}; give each machine its own",
            )


def _expiring_certificates(certs: Iterable[CertificateRecord], now: datetime) -> Iterable[Finding]:
    for cert in certs:
        if cert.status != "ACTIVE" or cert.not_after is None:
            continue
        left = cert.not_after - now
        owner = ", ".join(cert.things) or "no thing"
        if left <= timedelta(0):
            yield Finding(
                "high",
                "certificate-expired",
                cert.certificate_id[:12],
                f"expired on {cert.not_after:%Y-%m-%d} ({owner}): rotate it",
            )
        elif left <= CERT_EXPIRY_WARNING:
            yield Finding(
                "medium",
                "certificate-expiring",
                cert.certificate_id[:12],
                f"expires on {cert.not_after:%Y-%m-%d}, in {left.days} days ({owner}): rotate it",
            )


def _revoked_still_attached(certs: Iterable[CertificateRecord]) -> Iterable[Finding]:
    for cert in certs:
        if cert.status in ("REVOKED", "INACTIVE") and (cert.things or cert.policies):
            links = [*(f"thing {t}" for t in cert.things), *(f"policy {p}" for p in cert.policies)]
            yield Finding(
                "high",
                "revoked-still-attached",
                cert.certificate_id[:12],
                f"{cert.status} but still attached to {', '.join(links)}: detach it",
            )


def _revoked_but_active(
    certs: Iterable[CertificateRecord], ca: CaStatus | None
) -> Iterable[Finding]:
    if ca is None:
        return
    for cert in certs:
        if cert.status == "ACTIVE" and cert.serial in ca.revoked_serials:
            yield Finding(
                "medium",
                "registry-crl-mismatch",
                cert.certificate_id[:12],
                "on the CA's CRL but ACTIVE in the registry: revoke it in the registry too",
            )


def _ca_expiry(ca: CaStatus | None, now: datetime) -> Iterable[Finding]:
    if ca is None:
        return
    left = ca.not_after - now
    if left <= CA_EXPIRY_WARNING:
        yield Finding(
            "critical" if left <= CERT_EXPIRY_WARNING else "high",
            "ca-expiring",
            ca.subject,
            f"the CA expires on {ca.not_after:%Y-%m-%d}: every device certificate dies with it; "
            "create a new CA and rotate the fleet",
        )
    if ca.crl_next_update is not None and ca.crl_next_update - now <= CRL_EXPIRY_WARNING:
        yield Finding(
            "high",
            "crl-expiring",
            ca.subject,
            f"the CRL's next update is {ca.crl_next_update:%Y-%m-%d}: after it the broker "
            "refuses every device; run `chantier provision ca show` to re-issue it",
        )


def _wildcard_policies(policies: Mapping[str, Mapping[str, Any]]) -> Iterable[Finding]:
    for name, document in sorted(policies.items()):
        for grant in wildcard_grants(document):
            yield Finding(
                "high",
                "policy-wildcard",
                name,
                f"{grant.action} allowed on {grant.resource}: restrict it to the thing's own "
                "client id and topics",
            )


def at_or_above(findings: Iterable[Finding], severity: str) -> list[Finding]:
    threshold = SEVERITIES.index(severity)
    return [f for f in findings if f.rank >= threshold]


def render_table(findings: list[Finding]) -> str:
    if not findings:
        return "no findings"
    rows = [("SEVERITY", "CHECK", "RESOURCE", "DETAIL")]
    rows += [(f.severity.upper(), f.check, f.resource, f.detail) for f in findings]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        for row in rows
    ]
    return "\n".join(lines)
