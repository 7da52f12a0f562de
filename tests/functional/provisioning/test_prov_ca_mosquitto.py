"""The local CA against a real Mosquitto: issued certificates accepted, revoked ones refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from chantier.keys import generate_key_and_csr
from provisioning.ca import CertificateAuthority

pytestmark = [pytest.mark.functional, pytest.mark.timeout(120)]


def test_issued_certificate_connects_and_is_refused_after_revoke_and_reload(
    tmp_path: Path, broker_factory, mqtt
) -> None:
    ca = CertificateAuthority.create_or_load(tmp_path / "ca")
    broker = broker_factory(tmp_path, ca)
    broker.start()
    device = ca.issue_client_certificate("exc-01", tmp_path / "dev")
    assert device.key_path is not None

    session = mqtt.connect(broker.port, device.cert_path, device.key_path, ca.cert_path, "exc-01")
    session.close()
    assert "as exc-01 (p5" in broker.log_path.read_text()  # the CN became the user name
    assert "u'exc-01'" in broker.log_path.read_text()

    ca.revoke(device.serial)
    broker.reload()
    reason = mqtt.refused(broker.port, device.cert_path, device.key_path, ca.cert_path, "exc-01")
    assert "TLS" in reason
    assert "certificate verify failed" in broker.log_path.read_text()


def test_crl_is_only_read_at_start_or_on_sighup(tmp_path: Path, broker_factory, mqtt) -> None:
    ca = CertificateAuthority.create_or_load(tmp_path / "ca")
    broker = broker_factory(tmp_path, ca)
    broker.start()
    device = ca.issue_client_certificate("exc-01", tmp_path / "dev")
    assert device.key_path is not None
    args = (broker.port, device.cert_path, device.key_path, ca.cert_path, "exc-01")

    ca.revoke(device.serial)
    # Without a signal Mosquitto keeps the CRL it loaded: revocation needs the reload.
    mqtt.connect(*args).close()
    broker.reload()
    mqtt.refused(*args)


def test_other_devices_still_connect_after_a_revocation(
    tmp_path: Path, broker_factory, mqtt
) -> None:
    ca = CertificateAuthority.create_or_load(tmp_path / "ca")
    broker = broker_factory(tmp_path, ca)
    broker.start()
    stolen = ca.issue_client_certificate("exc-01", tmp_path / "dev")
    key_path, csr_path = generate_key_and_csr("crane-02", tmp_path / "pi")
    kept = ca.issue_client_certificate("crane-02", tmp_path / "dev", csr_pem=csr_path.read_bytes())
    ca.revoke(stolen.serial)
    broker.reload()
    mqtt.connect(broker.port, kept.cert_path, key_path, ca.cert_path, "crane-02").close()


def test_certificate_from_another_ca_is_refused(tmp_path: Path, broker_factory, mqtt) -> None:
    ca = CertificateAuthority.create_or_load(tmp_path / "ca")
    rogue = CertificateAuthority.create_or_load(tmp_path / "rogue")
    broker = broker_factory(tmp_path, ca)
    broker.start()
    forged = rogue.issue_client_certificate("exc-01", tmp_path / "forged")
    assert forged.key_path is not None
    mqtt.refused(broker.port, forged.cert_path, forged.key_path, ca.cert_path, "exc-01")


def test_an_open_session_survives_the_crl_reload(tmp_path: Path, broker_factory, mqtt) -> None:
    # Documents a limit: the CRL is checked at the TLS handshake only, so cutting a live
    # session needs the ACL (checked per publish) or a broker restart.
    ca = CertificateAuthority.create_or_load(tmp_path / "ca")
    broker = broker_factory(tmp_path, ca)
    broker.start()
    device = ca.issue_client_certificate("exc-01", tmp_path / "dev")
    assert device.key_path is not None
    session = mqtt.connect(broker.port, device.cert_path, device.key_path, ca.cert_path, "exc-01")
    ca.revoke(device.serial)
    broker.reload()
    assert session.publish("dt/chantier/lyon/exc-01/telemetry", b"still open") < 0x80
    assert not session.disconnected.is_set()
