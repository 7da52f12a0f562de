"""Device keys and certificate signing requests: made where the key is used, never sent anywhere.

The agent (`chantier agent keygen`) and provisioning (bundles made for a device) share this one
implementation, so a key is always EC P-256 in SEC1 PEM, written 0600 from its creation.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chantier.files import make_private_dir, write_private, write_public
from chantier.names import check_name


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """A fresh EC P-256 key (what IoT Core, Mosquitto and the AWS CRT all accept)."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Unencrypted SEC1 PEM, the form Mosquitto, OpenSSL and the AWS CRT all read."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


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
