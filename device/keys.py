"""Fallback key and CSR generation when the provisioning package is not installed."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chantier.names import check_name


def generate_key_and_csr(thing: str, out_dir: Path) -> tuple[Path, Path]:
    """Write `<thing>.key` (EC P-256, 0600) and `<thing>.csr` (CN = thing)."""
    check_name("thing", thing)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, thing)]))
        .sign(key, hashes.SHA256())
    )
    key_path = out_dir / f"{thing}.key"
    # created 0600 from the start: the key is never readable by others, even briefly
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    csr_path = out_dir / f"{thing}.csr"
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return key_path, csr_path
