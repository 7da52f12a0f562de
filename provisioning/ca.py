"""The local certificate authority: EC P-256, server and device certificates, CRL."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chantier.files import make_private_dir, write_private, write_public
from chantier.keys import new_private_key, private_key_pem

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
CRL_FILE = "crl.pem"
REVOKED_FILE = "revoked.json"
LOCK_FILE = ".lock"
LOCK_TIMEOUT_S = 30.0

# A CRL past its next_update makes OpenSSL refuse every client, so it is issued for a year and
# re-issued when the CA is loaded with less than this left.
CRL_VALIDITY = timedelta(days=365)
CRL_REFRESH_BEFORE = timedelta(days=60)
# Clocks of freshly booted Pis lag a little; a backdated notBefore avoids "not yet valid".
BACKDATE = timedelta(minutes=5)


class CaError(RuntimeError):
    """The CA folder is incomplete or inconsistent."""


class CsrMismatchError(ValueError):
    """A certificate signing request is malformed, badly signed or for another subject."""


@dataclass(frozen=True)
class IssuedCertificate:
    cert_path: Path
    key_path: Path | None  # None when issued from a CSR (the key stays where it was made)
    serial: int
    certificate_id: str  # sha256 hex of the DER certificate, like AWS's certificateId
    not_after: datetime


def certificate_id(cert: x509.Certificate) -> str:
    """SHA-256 of the DER encoding, hex: the same form as AWS IoT's certificateId."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def common_name_of(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


class CertificateAuthority:
    """A CA kept in one folder: ca.pem, ca.key (0600), crl.pem and the revocation list."""

    def __init__(self, directory: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey):
        self.directory = directory
        self.cert_path = directory / CA_CERT_FILE
        self.key_path = directory / CA_KEY_FILE
        self.crl_path = directory / CRL_FILE
        self.certificate = cert
        self._key = key

    def __repr__(self) -> str:
        # Never shows the key, even in a traceback or a debugger.
        return f"CertificateAuthority({str(self.directory)!r}, subject={self.subject!r})"

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def certificate_id(self) -> str:
        return certificate_id(self.certificate)

    @classmethod
    def create_or_load(
        cls, directory: Path, common_name: str = "Chantier Connecte Local CA", days: int = 3650
    ) -> CertificateAuthority:
        """Load the CA in `directory`, creating it (and an empty CRL) the first time."""
        directory = make_private_dir(Path(directory))
        with _locked(directory):
            cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
            if cert_path.exists() != key_path.exists():
                present, missing = sorted((cert_path, key_path), key=lambda p: not p.exists())
                raise CaError(
                    f"CA folder {directory} is incomplete: {present.name} exists but "
                    f"{missing.name} is missing; restore it or move the folder away to start anew"
                )
            if cert_path.exists():
                ca = cls._load(directory)
            else:
                ca = cls._create(directory, common_name, days)
            ca._ensure_crl()
            return ca

    @classmethod
    def _load(cls, directory: Path) -> CertificateAuthority:
        cert = x509.load_pem_x509_certificate((directory / CA_CERT_FILE).read_bytes())
        key = serialization.load_pem_private_key(
            (directory / CA_KEY_FILE).read_bytes(), password=None
        )
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CaError(f"{directory / CA_KEY_FILE} is not an EC private key: expected P-256")
        cert_public = cert.public_key()
        if (
            not isinstance(cert_public, ec.EllipticCurvePublicKey)
            or key.public_key().public_numbers() != cert_public.public_numbers()
        ):
            raise CaError(
                f"{directory / CA_KEY_FILE} does not match {directory / CA_CERT_FILE}: "
                "expected the key the CA certificate was made with"
            )
        return cls(directory, cert, key)

    @classmethod
    def _create(cls, directory: Path, common_name: str, days: int) -> CertificateAuthority:
        key = new_private_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.now(UTC)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        # Key first: a crash between the two writes leaves a folder create_or_load reports.
        write_private(directory / CA_KEY_FILE, private_key_pem(key))
        write_public(directory / CA_CERT_FILE, cert.public_bytes(serialization.Encoding.PEM))
        return cls(directory, cert, key)

    # -- issuing -------------------------------------------------------------------------------

    def issue_server_certificate(
        self, name: str, hosts: Sequence[str], out_dir: Path, days: int = 825
    ) -> IssuedCertificate:
        """Key and certificate for a TLS server reachable under `hosts` (DNS names or IPs)."""
        if not hosts:
            raise ValueError("a server certificate needs at least one host name or IP address")
        alt_names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alt_names.append(x509.DNSName(host))
        key = new_private_key()
        builder = self._builder(name, key.public_key(), days, ExtendedKeyUsageOID.SERVER_AUTH)
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        return self._finish(builder, name, Path(out_dir), key)

    def issue_client_certificate(
        self,
        common_name: str,
        out_dir: Path,
        *,
        csr_pem: bytes | None = None,
        days: int = 365,
    ) -> IssuedCertificate:
        """Device certificate with CN = thing name, from a new key or from the device's CSR."""
        key: ec.EllipticCurvePrivateKey | None = None
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
        if csr_pem is None:
            key = new_private_key()
            public_key = key.public_key()
        else:
            public_key = check_csr(csr_pem, common_name)
        builder = self._builder(common_name, public_key, days, ExtendedKeyUsageOID.CLIENT_AUTH)
        return self._finish(builder, common_name, Path(out_dir), key)

    def _builder(
        self,
        common_name: str,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        days: int,
        usage: x509.ObjectIdentifier,
    ) -> x509.CertificateBuilder:
        now = datetime.now(UTC)
        not_after = min(now + timedelta(days=days), self.not_after)
        ca_ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
                critical=False,
            )
        )

    def _finish(
        self,
        builder: x509.CertificateBuilder,
        name: str,
        out_dir: Path,
        key: ec.EllipticCurvePrivateKey | None,
    ) -> IssuedCertificate:
        cert = builder.sign(self._key, hashes.SHA256())
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_path = None
        if key is not None:
            key_path = write_private(out_dir / f"{name}.key", private_key_pem(key))
        cert_path = write_public(
            out_dir / f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM)
        )
        return IssuedCertificate(
            cert_path=cert_path,
            key_path=key_path,
            serial=cert.serial_number,
            certificate_id=certificate_id(cert),
            not_after=cert.not_valid_after_utc,
        )

    # -- revocation ----------------------------------------------------------------------------

    def revoke(self, serial: int) -> None:
        """Record `serial` as revoked and rewrite the CRL at crl_path."""
        with _locked(self.directory):
            revoked = self._read_revoked()
            revoked.setdefault(str(serial), datetime.now(UTC).isoformat())
            self._write_revoked(revoked)
            self._write_crl(revoked)

    def revoked_serials(self) -> set[int]:
        return {int(serial) for serial in self._read_revoked()}

    def is_revoked(self, serial: int) -> bool:
        return str(serial) in self._read_revoked()

    def load_crl(self) -> x509.CertificateRevocationList:
        return x509.load_pem_x509_crl(self.crl_path.read_bytes())

    def _ensure_crl(self) -> None:
        # Called under the lock: (re)issue the CRL if missing, unreadable or close to expiry.
        try:
            next_update = self.load_crl().next_update_utc
        except (FileNotFoundError, ValueError):
            next_update = None
        if next_update is None or next_update - datetime.now(UTC) < CRL_REFRESH_BEFORE:
            self._write_crl(self._read_revoked())

    def _read_revoked(self) -> dict[str, str]:
        try:
            data = json.loads((self.directory / REVOKED_FILE).read_text())
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise CaError(f"{self.directory / REVOKED_FILE} is not a JSON object of serials")
        return {str(k): str(v) for k, v in data.items()}

    def _write_revoked(self, revoked: dict[str, str]) -> None:
        text = json.dumps(revoked, indent=2, sort_keys=True) + "\n"
        write_public(self.directory / REVOKED_FILE, text.encode())

    def _write_crl(self, revoked: dict[str, str]) -> None:
        now = datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now - BACKDATE)
            .next_update(now + CRL_VALIDITY)
            # RFC 5280 wants an increasing CRL number; the issue time in ms is one.
            .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
        )
        for serial, when in sorted(revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(int(serial))
                .revocation_date(datetime.fromisoformat(when))
                .build()
            )
        crl = builder.sign(self._key, hashes.SHA256())
        write_public(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))


def check_csr(csr_pem: bytes, common_name: str) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """Public key of a well-formed, self-consistent CSR whose subject CN is `common_name`."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise CsrMismatchError(
            "the CSR is not a PEM certificate signing request: expected the file written by "
            "`chantier agent keygen` (-----BEGIN CERTIFICATE REQUEST-----)"
        ) from None
    try:
        valid = csr.is_signature_valid
    except (InvalidSignature, ValueError):
        valid = False
    if not valid:
        raise CsrMismatchError(
            "the CSR signature does not verify: expected a CSR signed by its own private key"
        )
    subject_cn = common_name_of(csr.subject)
    if subject_cn != common_name:
        raise CsrMismatchError(
            f"the CSR subject CN is {subject_cn!r}: expected {common_name!r} (the thing name); "
            f"generate it on the device with `chantier agent keygen {common_name}`"
        )
    public_key = csr.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in ("secp256r1", "secp384r1"):
            raise CsrMismatchError(
                f"the CSR key is on curve {public_key.curve.name}: expected P-256 or P-384"
            )
        return public_key
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise CsrMismatchError(
                f"the CSR key is RSA {public_key.key_size}: expected at least RSA 2048 or EC P-256"
            )
        return public_key
    raise CsrMismatchError("the CSR key type is not supported: expected EC P-256 or RSA 2048+")


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # Several `chantier provision` processes may share one CA (fleet runs, the demo): the lock
    # keeps two from creating two different CAs or losing each other's revocations.
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    with open(directory / LOCK_FILE, "a") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise CaError(
                        f"the CA in {directory} stayed locked for {LOCK_TIMEOUT_S:.0f} s: "
                        "expected another `chantier provision` to finish; retry afterwards"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
