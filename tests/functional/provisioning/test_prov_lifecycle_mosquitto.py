"""Device lifecycle on a real Mosquitto: issue, connect, publish, revoke, refused, rotate."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chantier.keys import generate_key_and_csr
from cloud.local.provisioning import LocalBackend
from provisioning.bundle import AgentSettings
from provisioning.ca import CertificateAuthority, IssuedCertificate
from provisioning.registry import Registry
from provisioning.service import DeviceSpec, Provisioner, ProvisionResult

pytestmark = [pytest.mark.functional, pytest.mark.timeout(180)]

OBSERVER = "observer"


def render_acl(registry: Registry) -> str:
    """The device policy as a Mosquitto ACL, for things holding an active certificate."""
    lines = [f"user {OBSERVER}", "topic read dt/chantier/#", ""]
    for thing in registry.things():
        if any(c.status == "ACTIVE" for c in registry.thing_certificates(thing.name)):
            lines += [f"user {thing.name}", f"topic write dt/chantier/{thing.site}/{thing.name}/#"]
    return "\n".join(lines) + "\n"


@dataclass
class LocalSite:
    provisioner: Provisioner
    broker: Any
    ca: CertificateAuthority
    observer: IssuedCertificate


@pytest.fixture
def site(tmp_path: Path, broker_factory: Any, iot: Any) -> LocalSite:
    ca = CertificateAuthority.create_or_load(tmp_path / "state" / "ca")
    broker = broker_factory(tmp_path / "broker", ca, acl=f"user {OBSERVER}\n")
    broker.start()
    registry = Registry(iot)

    def refresh() -> None:
        broker.write_acl(render_acl(registry))
        broker.reload()

    backend = LocalBackend(ca, registry, ("127.0.0.1", broker.port), refresh=refresh)
    provisioner = Provisioner(
        backend, tmp_path / "certs", settings=AgentSettings(driver="simulated")
    )
    provisioner.add_site("lyon")
    observer = ca.issue_client_certificate(OBSERVER, tmp_path / "observer")
    return LocalSite(provisioner, broker, ca, observer)


def connect_bundle(site: LocalSite, mqtt: Any, result: ProvisionResult, client_id: str) -> Any:
    bundle = result.bundle_dir
    return mqtt.connect(
        site.broker.port,
        bundle / f"{result.thing}.pem",
        bundle / f"{result.thing}.key",
        bundle / "root-ca.pem",
        client_id,
    )


def observe(site: LocalSite, mqtt: Any) -> Any:
    assert site.observer.key_path is not None
    session = mqtt.connect(
        site.broker.port,
        site.observer.cert_path,
        site.observer.key_path,
        site.ca.cert_path,
        OBSERVER,
    )
    session.subscribe("dt/chantier/#")
    return session


def test_issue_connect_publish_revoke_refused(site: LocalSite, mqtt: Any) -> None:
    result = site.provisioner.provision(DeviceSpec("exc-01", "lyon", "excavator"))
    watcher = observe(site, mqtt)
    device = connect_bundle(site, mqtt, result, "exc-01")

    device.publish("dt/chantier/lyon/exc-01/telemetry", b'{"seq": 1}')
    assert watcher.next_message() == ("dt/chantier/lyon/exc-01/telemetry", b'{"seq": 1}')

    # Another thing's topic, or its own name on another site: dropped by the broker.
    device.publish("dt/chantier/lyon/crane-02/telemetry", b"forged")
    device.publish("dt/chantier/paris/exc-01/telemetry", b"elsewhere")
    assert watcher.next_message(timeout=1.5) is None
    device.close()

    site.provisioner.revoke("exc-01")
    bundle = result.bundle_dir
    mqtt.refused(
        site.broker.port,
        bundle / "exc-01.pem",
        bundle / "exc-01.key",
        bundle / "root-ca.pem",
        "exc-01",
    )


def test_a_certificate_cannot_publish_as_another_thing(site: LocalSite, mqtt: Any) -> None:
    site.provisioner.provision(DeviceSpec("crane-02", "lyon", "crane"))
    stolen = site.provisioner.provision(DeviceSpec("exc-01", "lyon", "excavator"))
    watcher = observe(site, mqtt)
    # exc-01's certificate with crane-02's client id: the identity is the certificate CN.
    impostor = connect_bundle(site, mqtt, stolen, "crane-02")
    impostor.publish("dt/chantier/lyon/crane-02/telemetry", b"forged")
    assert watcher.next_message(timeout=1.5) is None
    assert "u'exc-01'" in site.broker.log_path.read_text()


def test_rotate_keeps_the_old_certificate_until_complete(
    site: LocalSite, mqtt: Any, tmp_path: Path
) -> None:
    first = site.provisioner.provision(DeviceSpec("crane-02", "lyon", "crane"))
    old = tmp_path / "old"
    shutil.copytree(first.bundle_dir, old)  # what the device still runs on during rotation

    rotated = site.provisioner.rotate("crane-02")
    assert rotated.certificate_id != first.certificate_id
    watcher = observe(site, mqtt)
    new_session = connect_bundle(site, mqtt, rotated, "crane-02")
    new_session.publish("dt/chantier/lyon/crane-02/health", b"new")
    assert watcher.next_message() == ("dt/chantier/lyon/crane-02/health", b"new")
    new_session.close()
    old_args = (
        site.broker.port,
        old / "crane-02.pem",
        old / "crane-02.key",
        old / "root-ca.pem",
        "crane-02",
    )
    mqtt.connect(*old_args).close()  # still valid until the rotation is completed

    site.provisioner.complete_rotation("crane-02")
    mqtt.refused(*old_args)
    again = connect_bundle(site, mqtt, rotated, "crane-02")
    again.publish("dt/chantier/lyon/crane-02/telemetry", b"after")
    assert watcher.next_message() == ("dt/chantier/lyon/crane-02/telemetry", b"after")


def test_csr_flow_device_key_connects(site: LocalSite, mqtt: Any, tmp_path: Path) -> None:
    key_path, csr_path = generate_key_and_csr("gen-01", tmp_path / "pi")
    result = site.provisioner.provision(
        DeviceSpec("gen-01", "lyon", "generator"), csr_pem=csr_path.read_bytes()
    )
    assert not (result.bundle_dir / "gen-01.key").exists()
    mqtt.connect(
        site.broker.port,
        result.bundle_dir / "gen-01.pem",
        key_path,
        result.bundle_dir / "root-ca.pem",
        "gen-01",
    ).close()
