"""Key and certificate signing request made on the device, so the private key never travels."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from chantier.names import check_name
from provisioning.ca import new_private_key, private_key_pem
from provisioning.files import make_private_dir, write_private, write_public


def generate_key_and_csr(thing: str, out_dir: Path) -> tuple[Path, Path]:
    """Write `<thing>.key` (0600) and `<thing>.csr` (CN = thing) in out_dir; return both paths."""
    check_name("thing", thing)
    out_dir = make_private_dir(Path(out_dir))
    key = new_private_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, thing)]))
        .sign(key, hashes.SHA256())
    )
    key_path = write_private(out_dir / f"{thing}.key", private_key_pem(key))
    csr_path = write_public(out_dir / f"{thing}.csr", csr.public_bytes(serialization.Encoding.PEM))
    return key_path, csr_path
