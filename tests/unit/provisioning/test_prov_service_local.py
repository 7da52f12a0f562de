"""Provisioning flows in local mode: local CA + registry (moto in-process)."""

from __future__ import annotations

import json
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from chantier.keys import generate_key_and_csr
from provisioning.bundle import BundleExistsError
from provisioning.ca import CertificateAuthority, CsrMismatchError
from provisioning.errors import (
    InvalidDeviceError,
    ThingExistsError,
    ThingNotFoundError,
    UnknownSiteError,
)
from provisioning.policy import DEVICE_POLICY_NAME, THING_TYPE_NAME
from provisioning.registry import Registry
from provisioning.service import DeviceSpec, Provisioner

EXC = DeviceSpec("exc-01", "lyon", "excavator", "85.50")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def registry_is_empty_of(iot: Any, thing: str) -> None:
    assert thing not in [t["thingName"] for t in iot.list_things()["things"]]
    statuses = [c["status"] for c in iot.list_certificates()["certificates"]]
    assert "ACTIVE" not in statuses


def test_device_creates_thing_certificate_policy_and_bundle(
    local: Provisioner, iot: Any, ca: CertificateAuthority, refresh: Any
) -> None:
    result = local.provision(EXC)

    thing = iot.describe_thing(thingName="exc-01")
    assert thing["thingTypeName"] == THING_TYPE_NAME
    assert thing["attributes"] == {"site": "lyon", "equipment": "excavator", "hourlyCost": "85.50"}
    groups = iot.list_thing_groups_for_thing(thingName="exc-01")["thingGroups"]
    assert [g["groupName"] for g in groups] == ["site-lyon"]
    cert_arn = iot.list_thing_principals(thingName="exc-01")["principals"][0]
    policies = iot.list_attached_policies(target=cert_arn)["policies"]
    assert [p["policyName"] for p in policies] == [DEVICE_POLICY_NAME]
    assert cert_arn.endswith(result.certificate_id)

    bundle = result.bundle_dir
    assert sorted(p.name for p in bundle.iterdir()) == [
        "agent.toml",
        "bundle.json",
        "endpoint.txt",
        "exc-01.key",
        "exc-01.pem",
        "root-ca.pem",
    ]
    assert mode(bundle / "exc-01.key") == 0o600
    assert mode(bundle) == 0o700
    assert (bundle / "root-ca.pem").read_bytes() == ca.cert_path.read_bytes()
    assert (bundle / "endpoint.txt").read_text() == "127.0.0.1:18883\n"
    cert = x509.load_pem_x509_certificate((bundle / "exc-01.pem").read_bytes())
    cert.verify_directly_issued_by(ca.certificate)
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["certificateId"] == result.certificate_id
    assert manifest["keyOnDevice"] is False
    assert refresh.calls == 1
    assert not list(local.out_root.glob(".staging-*"))


def test_agent_toml_is_accepted_by_the_agent_configuration(local: Provisioner) -> None:
    from device.config import load_config

    result = local.provision(EXC)
    config = load_config(result.bundle_dir / "agent.toml", env={})
    assert (config.thing, config.site, config.equipment) == ("exc-01", "lyon", "excavator")
    assert config.endpoint == "127.0.0.1" and config.port == 18883
    assert config.cert == result.bundle_dir / "exc-01.pem"
    assert config.key == result.bundle_dir / "exc-01.key"
    assert config.ca == result.bundle_dir / "root-ca.pem"
    assert [s.driver for s in config.sensors] == ["simulated"]


def test_csr_flow_signs_the_device_key_and_writes_no_key(
    local: Provisioner, tmp_path: Path
) -> None:
    key_path, csr_path = generate_key_and_csr("exc-01", tmp_path / "pi")
    result = local.provision(EXC, csr_pem=csr_path.read_bytes())
    assert not result.key_generated
    assert not (result.bundle_dir / "exc-01.key").exists()
    cert = x509.load_pem_x509_certificate((result.bundle_dir / "exc-01.pem").read_bytes())
    device_key = key_path.read_bytes()
    from cryptography.hazmat.primitives import serialization

    public = serialization.load_pem_private_key(device_key, None).public_key()
    assert public.public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    assert json.loads((result.bundle_dir / "bundle.json").read_text())["keyOnDevice"] is True


def test_csr_for_another_thing_creates_nothing(
    local: Provisioner, iot: Any, tmp_path: Path
) -> None:
    _, csr_path = generate_key_and_csr("crane-02", tmp_path / "pi")
    with pytest.raises(CsrMismatchError, match="expected 'exc-01'"):
        local.provision(EXC, csr_pem=csr_path.read_bytes())
    registry_is_empty_of(iot, "exc-01")
    assert not (local.out_root / "exc-01").exists()


def test_unknown_site_creates_nothing(local: Provisioner, iot: Any) -> None:
    with pytest.raises(UnknownSiteError, match="site add paris"):
        local.provision(DeviceSpec("exc-01", "paris", "excavator"))
    registry_is_empty_of(iot, "exc-01")
    local.provision(DeviceSpec("exc-01", "paris", "excavator"), create_site=True)
    assert "paris" in local.sites()


def test_site_created_on_the_way_is_removed_when_the_flow_fails(
    local: Provisioner, iot: Any, tmp_path: Path
) -> None:
    _, csr_path = generate_key_and_csr("exc-01", tmp_path / "pi")

    def refuse(*_args: object) -> None:
        raise OSError("registry unavailable")

    local.registry.attach = refuse  # type: ignore[method-assign]
    with pytest.raises(OSError, match="registry unavailable"):
        local.provision(
            DeviceSpec("exc-01", "paris", "excavator"),
            csr_pem=csr_path.read_bytes(),
            create_site=True,
        )
    assert local.sites() == ["lyon"]
    registry_is_empty_of(iot, "exc-01")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (DeviceSpec("Exc_01", "lyon", "excavator"), "not a valid name"),
        (DeviceSpec("exc-01", "Lyon", "excavator"), "site 'Lyon' is not a valid name"),
        (DeviceSpec("exc-01", "lyon", "tractor"), "equipment 'tractor' is unknown"),
        (DeviceSpec("exc-01", "lyon", "excavator", "-3"), "hourly cost '-3' is not valid"),
        (DeviceSpec("chantier-rules-engine", "lyon", "site-cabin"), "is reserved"),
        (DeviceSpec("chantier-observer", "lyon", "site-cabin"), "is reserved"),
    ],
)
def test_invalid_device_is_refused_before_anything_is_created(
    local: Provisioner, iot: Any, spec: DeviceSpec, message: str
) -> None:
    with pytest.raises((ValueError, InvalidDeviceError), match=message):
        local.provision(spec)
    assert iot.list_things()["things"] == []


def test_existing_bundle_is_not_overwritten_without_force(local: Provisioner) -> None:
    first = local.provision(EXC)
    before = (first.bundle_dir / "exc-01.pem").read_bytes()
    with pytest.raises(BundleExistsError, match="--force"):
        local.provision(EXC)
    assert (first.bundle_dir / "exc-01.pem").read_bytes() == before


def test_thing_with_active_certificate_needs_force(local: Provisioner) -> None:
    first = local.provision(EXC)
    import shutil

    shutil.rmtree(first.bundle_dir)
    with pytest.raises(ThingExistsError, match="rotate exc-01"):
        local.provision(EXC)


def test_force_reprovisions_and_revokes_the_replaced_certificate(
    local: Provisioner, iot: Any, ca: CertificateAuthority
) -> None:
    first = local.provision(EXC)
    old_serial = x509.load_pem_x509_certificate(
        (first.bundle_dir / "exc-01.pem").read_bytes()
    ).serial_number
    second = local.provision(EXC, force=True)
    assert second.previous_certificate_ids == (first.certificate_id,)
    old = iot.describe_certificate(certificateId=first.certificate_id)["certificateDescription"]
    assert old["status"] == "REVOKED"
    assert ca.is_revoked(old_serial)
    principals = iot.list_thing_principals(thingName="exc-01")["principals"]
    assert [p.rsplit("/", 1)[1] for p in principals] == [second.certificate_id]
    assert not list(local.out_root.glob(".previous-*"))


def test_failure_half_way_rolls_everything_back(
    local: Provisioner, iot: Any, ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_root_ca() -> bytes:
        raise OSError("disk full")

    monkeypatch.setattr(local.backend, "root_ca_pem", broken_root_ca)
    with pytest.raises(OSError, match="disk full"):
        local.provision(EXC)
    assert iot.list_things()["things"] == []
    assert iot.list_certificates()["certificates"] == []  # discarded, not just deactivated
    assert len(ca.revoked_serials()) == 1  # the signed certificate is on the CRL
    assert not (local.out_root / "exc-01").exists()
    assert not list(local.out_root.glob(".staging-*"))


def test_failure_after_force_restores_the_previous_bundle(
    local: Provisioner, iot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = local.provision(EXC)
    before = (first.bundle_dir / "exc-01.pem").read_bytes()

    def broken_archive(*_args: object) -> Path:
        raise OSError("no space left")

    monkeypatch.setattr("provisioning.service.write_archive", broken_archive)
    with pytest.raises(OSError, match="no space left"):
        local.provision(EXC, force=True, archive=True)
    assert (first.bundle_dir / "exc-01.pem").read_bytes() == before
    current = iot.describe_certificate(certificateId=first.certificate_id)
    assert current["certificateDescription"]["status"] == "ACTIVE"
    assert iot.describe_thing(thingName="exc-01")["attributes"]["site"] == "lyon"


def test_archive_holds_the_bundle_and_is_private(local: Provisioner) -> None:
    result = local.provision(EXC, archive=True)
    assert result.archive == local.out_root / "exc-01.tar.gz"
    assert mode(result.archive) == 0o600
    with tarfile.open(result.archive) as tar:
        names = sorted(tar.getnames())
        key_member = tar.getmember("exc-01/exc-01.key")
    assert "exc-01/agent.toml" in names
    assert key_member.mode & 0o077 == 0


def test_rotate_keeps_the_old_certificate_until_complete(
    local: Provisioner, iot: Any, ca: CertificateAuthority
) -> None:
    first = local.provision(EXC)
    rotated = local.rotate("exc-01")
    assert rotated.previous_certificate_ids == (first.certificate_id,)
    statuses = {c.certificate_id: c.status for c in local.registry.thing_certificates("exc-01")}
    assert statuses == {first.certificate_id: "ACTIVE", rotated.certificate_id: "ACTIVE"}
    assert local.complete_rotation("exc-01") == [first.certificate_id]
    remaining = local.registry.thing_certificates("exc-01")
    assert [(c.certificate_id, c.status) for c in remaining] == [(rotated.certificate_id, "ACTIVE")]
    old = local.registry.certificate(first.certificate_id)
    assert old.status == "REVOKED" and old.serial is not None and ca.is_revoked(old.serial)
    assert local.complete_rotation("exc-01") == []


def test_rotate_unknown_thing_is_reported(local: Provisioner) -> None:
    with pytest.raises(ThingNotFoundError, match="provision list"):
        local.rotate("ghost-01")


def test_revoke_marks_revoked_detaches_and_updates_the_crl(
    local: Provisioner, ca: CertificateAuthority, refresh: Any
) -> None:
    result = local.provision(EXC)
    revoked = local.revoke("exc-01")
    assert revoked == [result.certificate_id]
    cert = local.registry.certificate(result.certificate_id)
    assert cert.status == "REVOKED"
    assert cert.things == () and cert.policies == ()
    assert cert.serial is not None
    crl = ca.load_crl()
    assert crl.get_revoked_certificate_by_serial_number(cert.serial) is not None
    assert refresh.calls == 2
    shown = local.show("exc-01")
    assert shown.certificates == []
    assert [(c.certificate_id, c.status) for c in shown.history] == [
        (result.certificate_id, "REVOKED")
    ]


def test_revoked_thing_can_be_provisioned_again_with_force(local: Provisioner) -> None:
    local.provision(EXC)
    local.revoke("exc-01")
    result = local.provision(EXC, force=True)  # --force: the old bundle folder is still there
    assert local.show("exc-01").active[0].certificate_id == result.certificate_id


def test_list_and_show(local: Provisioner) -> None:
    local.provision(EXC)
    local.provision(DeviceSpec("crane-02", "lyon", "crane"))
    views = local.devices()
    assert [v.thing.name for v in views] == ["crane-02", "exc-01"]
    assert all(len(v.active) == 1 for v in views)
    shown = local.show("exc-01")
    assert shown.certificates[0].things == ("exc-01",)
    assert shown.certificates[0].policies == (DEVICE_POLICY_NAME,)
    assert shown.bundle_dir == local.out_root / "exc-01"


def test_audit_log_records_actions_and_never_key_material(
    local: Provisioner, tmp_path: Path
) -> None:
    result = local.provision(EXC)
    local.rotate("exc-01")
    local.revoke("exc-01")
    with pytest.raises(BundleExistsError):
        local.provision(EXC)
    log = local.audit.path
    assert mode(log) == 0o600
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["action"], e["outcome"]) for e in entries] == [
        ("site-add", "ok"),
        ("device", "ok"),
        ("rotate", "ok"),
        ("revoke", "ok"),
        ("device", "failed"),
    ]
    assert entries[1]["certificateId"] == result.certificate_id
    text = log.read_text()
    assert "PRIVATE KEY" not in text
    key_body = (result.bundle_dir / "exc-01.key").read_text().splitlines()[1]
    assert key_body not in text


def test_a_second_provisioner_on_the_same_registry_sees_the_thing(
    local: Provisioner, iot: Any, ca: CertificateAuthority, tmp_path: Path
) -> None:
    from cloud.local.provisioning import LocalBackend

    local.provision(EXC)
    other = Provisioner(LocalBackend(ca, Registry(iot), ("127.0.0.1", 1)), tmp_path / "other")
    with pytest.raises(ThingExistsError):
        other.provision(EXC)


def test_reprovisioning_on_another_site_moves_the_thing(local: Provisioner, iot: Any) -> None:
    local.provision(EXC)
    local.provision(DeviceSpec("exc-01", "paris", "excavator"), force=True, create_site=True)
    groups = iot.list_thing_groups_for_thing(thingName="exc-01")["thingGroups"]
    assert [g["groupName"] for g in groups] == ["site-paris"]
    assert iot.describe_thing(thingName="exc-01")["attributes"]["site"] == "paris"
