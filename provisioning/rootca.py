"""Amazon Root CA 1, found in the CA bundle already installed on this machine."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

AMAZON_ROOT_CA_1 = "Amazon Root CA 1"
SYSTEM_BUNDLES = (
    Path("/etc/ssl/certs/Amazon_Root_CA_1.pem"),
    Path("/etc/ssl/certs/ca-certificates.crt"),
    Path("/etc/pki/tls/certs/ca-bundle.crt"),
    Path("/etc/ssl/cert.pem"),
)


_PEM_BLOCK = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)


class RootCaNotFoundError(FileNotFoundError):
    """Amazon Root CA 1 is in none of the installed CA bundles."""


def _candidate_bundles() -> list[Path]:
    paths: list[Path] = []
    try:
        import certifi

        paths.append(Path(certifi.where()))
    except ImportError:
        pass
    return paths + list(SYSTEM_BUNDLES)


def find_root(common_name: str, bundles: Iterable[Path]) -> bytes | None:
    """PEM of the first certificate whose subject CN is `common_name` in the given bundles."""
    for bundle in bundles:
        try:
            data = bundle.read_bytes()
        except OSError:
            continue
        for block in _PEM_BLOCK.findall(data):
            cert = _load(block)
            if cert is None:
                continue
            names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if names and names[0].value == common_name:
                return cert.public_bytes(serialization.Encoding.PEM)
    return None


def _load(block: bytes) -> x509.Certificate | None:
    # One odd certificate in a system bundle must not hide the others (or spam warnings).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return x509.load_pem_x509_certificate(block)
        except ValueError:
            return None


def amazon_root_ca_1() -> bytes:
    """Amazon Root CA 1 as PEM; never downloaded, so a tampered network cannot swap it."""
    bundles = _candidate_bundles()
    found = find_root(AMAZON_ROOT_CA_1, bundles)
    if found is None:
        raise RootCaNotFoundError(
            f"{AMAZON_ROOT_CA_1} not found in {', '.join(map(str, bundles))}: install the "
            "ca-certificates package (or certifi)"
        )
    return found
