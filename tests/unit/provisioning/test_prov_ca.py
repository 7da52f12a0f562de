"""The local CA: file modes, certificate contents, CSR checks, CRL."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chantier.keys import generate_key_and_csr
from provisioning.ca import CaError, CertificateAuthority, CsrMismatchError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.create_or_load(tmp_path / "ca")


def test_create_writes_private_key_0600_folder_0700_and_an_empty_crl(tmp_path: Path) -> None:
    ca = CertificateAuthority.create_or_load(tmp_path / "ca")
    assert mode(ca.key_path) == 0o600
    assert mode(tmp_path / "ca") == 0o700
    crl = x509.load_pem_x509_crl(ca.crl_path.read_bytes())
    assert len(crl) == 0
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl.next_update_utc is not None
    assert crl.next_update_utc > datetime.now(UTC) + timedelta(days=300)


def test_ca_certificate_is_a_p256_ca_valid_for_the_requested_days(tmp_path: Path) -> None:
    ca = CertificateAuthority.create_or_load(tmp_path / "ca", common_name="Test CA", days=100)
    cert = load_cert(ca.cert_path)
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Test CA"
    remaining = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=99) < remaining <= timedelta(days=100)


def test_second_call_loads_the_same_ca(tmp_path: Path) -> None:
    first = CertificateAuthority.create_or_load(tmp_path / "ca")
    second = CertificateAuthority.create_or_load(tmp_path / "ca")
    assert first.certificate_id == second.certificate_id


def test_incomplete_ca_folder_is_reported(tmp_path: Path) -> None:
    ca = CertificateAuthority.create_or_load(tmp_path / "ca")
    ca.key_path.unlink()
    with pytest.raises(CaError, match=r"ca\.key is missing"):
        CertificateAuthority.create_or_load(tmp_path / "ca")


def test_repr_never_shows_the_key(ca: CertificateAuthority) -> None:
    key_text = ca.key_path.read_text()
    assert "PRIVATE" not in repr(ca)
    assert key_text.splitlines()[1] not in repr(ca)


def test_server_certificate_has_dns_and_ip_names_and_server_auth(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    issued = ca.issue_server_certificate("broker", ["localhost", "127.0.0.1"], tmp_path / "srv")
    assert issued.cert_path == tmp_path / "srv" / "broker.pem"
    assert issued.key_path == tmp_path / "srv" / "broker.key"
    assert mode(issued.key_path) == 0o600
    cert = load_cert(issued.cert_path)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    cert.verify_directly_issued_by(ca.certificate)


def test_client_certificate_cn_is_the_thing_and_id_is_sha256_of_der(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    issued = ca.issue_client_certificate("exc-01", tmp_path / "dev")
    assert issued.key_path is not None and mode(issued.key_path) == 0o600
    cert = load_cert(issued.cert_path)
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "exc-01"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert issued.serial == cert.serial_number
    assert issued.certificate_id == cert.fingerprint(hashes.SHA256()).hex()
    assert issued.not_after == cert.not_valid_after_utc
    key = serialization.load_pem_private_key(issued.key_path.read_bytes(), password=None)
    assert key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_client_certificate_never_outlives_the_ca(tmp_path: Path) -> None:
    ca = CertificateAuthority.create_or_load(tmp_path / "ca", days=10)
    issued = ca.issue_client_certificate("exc-01", tmp_path / "dev", days=365)
    assert issued.not_after <= ca.not_after


def test_certificate_from_csr_keeps_the_device_key_and_writes_none(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    key_path, csr_path = generate_key_and_csr("crane-02", tmp_path / "pi")
    assert mode(key_path) == 0o600
    issued = ca.issue_client_certificate(
        "crane-02", tmp_path / "out", csr_pem=csr_path.read_bytes()
    )
    assert issued.key_path is None
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["crane-02.pem"]
    device_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    cert = load_cert(issued.cert_path)
    assert device_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_csr_for_another_thing_is_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    _, csr_path = generate_key_and_csr("crane-02", tmp_path / "pi")
    with pytest.raises(CsrMismatchError, match="expected 'exc-01'"):
        ca.issue_client_certificate("exc-01", tmp_path / "out", csr_pem=csr_path.read_bytes())
    assert not (tmp_path / "out").exists()


def test_csr_with_a_broken_signature_is_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "exc-01")]))
        .sign(key, hashes.SHA256())
    )
    # Splice in another public key: the signature no longer matches the request body.
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    old = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    new = other.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    start = der.find(old)
    der[start : start + len(old)] = new
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CsrMismatchError, match="signature does not verify"):
        ca.issue_client_certificate("exc-01", tmp_path / "out", csr_pem=tampered)


def test_garbage_csr_is_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    with pytest.raises(CsrMismatchError, match="not a PEM certificate signing request"):
        ca.issue_client_certificate("exc-01", tmp_path / "out", csr_pem=b"hello")


def test_revoke_lists_the_serial_in_the_crl_and_survives_reload(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    issued = ca.issue_client_certificate("exc-01", tmp_path / "dev")
    kept = ca.issue_client_certificate("exc-02", tmp_path / "dev")
    ca.revoke(issued.serial)
    ca.revoke(issued.serial)  # idempotent
    crl = x509.load_pem_x509_crl(ca.crl_path.read_bytes())
    assert [r.serial_number for r in crl] == [issued.serial]
    assert crl.get_revoked_certificate_by_serial_number(kept.serial) is None
    reloaded = CertificateAuthority.create_or_load(tmp_path / "ca")
    assert reloaded.revoked_serials() == {issued.serial}
    assert reloaded.is_revoked(issued.serial)


def test_missing_crl_is_reissued_on_load(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = ca.issue_client_certificate("exc-01", tmp_path / "dev")
    ca.revoke(issued.serial)
    ca.crl_path.unlink()
    reloaded = CertificateAuthority.create_or_load(tmp_path / "ca")
    crl = reloaded.load_crl()
    assert [r.serial_number for r in crl] == [issued.serial]


def test_generate_key_and_csr_refuses_an_invalid_thing_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a valid name"):
        generate_key_and_csr("Bad_Name", tmp_path)
