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


# What each check looks at, in the words the audit prints before its findings.
CHECKS = {
    "certificate-shared": "one certificate attached to several things",
    "certificate-expired": "active certificates past their end date",
    "certificate-expiring": f"active certificates expiring within {CERT_EXPIRY_WARNING.days} days",
    "revoked-still-attached": (
        "revoked or inactive certificates still attached to a thing or policy"
    ),
    "registry-crl-mismatch": "certificates on the CA's CRL but active in the registry (local CA)",
    "ca-expiring": f"the CA expiring within {CA_EXPIRY_WARNING.days} days (local CA)",
    "crl-expiring": f"the CRL's next update within {CRL_EXPIRY_WARNING.days} days (local CA)",
    "policy-wildcard": "policies allowing an action on a wildcard resource",
}


def audit_scope(snapshot: Snapshot) -> dict[str, Any]:
    """What the audit looked at: counts by certificate status, policies, the CA, the checks."""
    statuses: dict[str, int] = {}
    for cert in snapshot.certificates:
        statuses[cert.status] = statuses.get(cert.status, 0) + 1
    ca = snapshot.ca
    return {
        "at": snapshot.now.isoformat(),
        "certificates": len(snapshot.certificates),
        "certificatesByStatus": dict(sorted(statuses.items())),
        "policies": sorted(snapshot.policies),
        "ca": None
        if ca is None
        else {
            "subject": ca.subject,
            "notAfter": ca.not_after.isoformat(),
            "crlNextUpdate": ca.crl_next_update.isoformat() if ca.crl_next_update else None,
            "revokedSerials": len(ca.revoked_serials),
        },
        "checks": [name for name in CHECKS if ca is not None or "(local CA)" not in CHECKS[name]],
    }


def describe_scope(scope: dict[str, Any]) -> str:
    """The audit's scope as a few lines for people."""
    by_status = ", ".join(f"{n} {s.lower()}" for s, n in scope["certificatesByStatus"].items())
    policies = scope["policies"]
    lines = [
        f"checked {scope['certificates']} certificate(s)"
        + (f" ({by_status})" if by_status else ""),
        f"checked {len(policies)} polic{'y' if len(policies) == 1 else 'ies'}"
        + (f": {', '.join(policies)}" if policies else ""),
    ]
    ca = scope["ca"]
    if ca is None:
        lines.append("CA: Amazon's (not audited here)")
    else:
        lines.append(
            f"checked the local CA {ca['subject']} (valid until {ca['notAfter'][:10]}, CRL with "
            f"{ca['revokedSerials']} revoked, next update {str(ca['crlNextUpdate'])[:10]})"
        )
    lines.append("checks:")
    lines += [f"  {name}: {CHECKS[name]}" for name in scope["checks"]]
    return "\n".join(lines)
