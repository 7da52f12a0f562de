"""Provisioning flows in AWS mode against moto's IoT API (in-process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from chantier.keys import generate_key_and_csr
from provisioning.backends import AwsBackend, aws_backend
from provisioning.errors import CredentialsMissingError, ProvisioningError
from provisioning.registry import Registry
from provisioning.rootca import AMAZON_ROOT_CA_1, amazon_root_ca_1
from provisioning.service import DeviceSpec, Provisioner

EXC = DeviceSpec("exc-01", "lyon", "excavator")


def test_device_uses_create_certificate_from_csr_and_the_ats_endpoint(
    aws: Provisioner, iot: Any
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, dict(params)))

    iot.meta.events.register("provide-client-params.iot.*", record)
    result = aws.provision(EXC)
    assert ("DescribeEndpoint", {"endpointType": "iot:Data-ATS"}) in calls
    names = [name for name, _ in calls]
    assert "CreateCertificateFromCsr" in names
    assert "CreateKeysAndCertificate" not in names
    bundle = result.bundle_dir
    endpoint = (bundle / "endpoint.txt").read_text()
    assert endpoint.endswith("-ats.iot.eu-west-3.amazonaws.com:8883\n")
    assert f'endpoint = "{endpoint.split(":")[0]}"' in (bundle / "agent.toml").read_text()
    assert result.key_generated and (bundle / "exc-01.key").exists()
    root = x509.load_pem_x509_certificate((bundle / "root-ca.pem").read_bytes())
    assert f"CN={AMAZON_ROOT_CA_1}" in root.subject.rfc4514_string()
    described = iot.describe_certificate(certificateId=result.certificate_id)
    assert described["certificateDescription"]["status"] == "ACTIVE"
    assert not list(bundle.glob("*.csr"))  # the CSR made here is not left lying around


def test_csr_given_is_sent_as_is_and_no_key_written(
    aws: Provisioner, iot: Any, tmp_path: Path
) -> None:
    _, csr_path = generate_key_and_csr("exc-01", tmp_path / "pi")
    result = aws.provision(EXC, csr_pem=csr_path.read_bytes())
    assert not (result.bundle_dir / "exc-01.key").exists()
    cert = x509.load_pem_x509_certificate((result.bundle_dir / "exc-01.pem").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=exc-01"


def test_revoke_sets_revoked_and_detaches(aws: Provisioner, iot: Any) -> None:
    result = aws.provision(EXC)
    aws.revoke("exc-01")
    described = iot.describe_certificate(certificateId=result.certificate_id)
    assert described["certificateDescription"]["status"] == "REVOKED"
    assert iot.list_thing_principals(thingName="exc-01")["principals"] == []
    arn = described["certificateDescription"]["certificateArn"]
    assert iot.list_attached_policies(target=arn)["policies"] == []


def test_rotate_then_complete(aws: Provisioner) -> None:
    first = aws.provision(EXC)
    second = aws.rotate("exc-01")
    assert aws.complete_rotation("exc-01") == [first.certificate_id]
    assert [c.certificate_id for c in aws.show("exc-01").active] == [second.certificate_id]


def test_missing_policy_means_the_template_is_not_deployed(iot: Any, tmp_path: Path) -> None:
    provisioner = Provisioner(AwsBackend(Registry(iot)), tmp_path / "certs")
    provisioner.add_site("lyon")
    with pytest.raises(ProvisioningError, match=r"deploy cloud/template\.yaml"):
        provisioner.provision(EXC)
    assert iot.list_things()["things"] == []
    assert iot.list_certificates()["certificates"] == []


def test_missing_credentials_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(CredentialsMissingError, match="aws configure"):
        aws_backend(region="eu-west-3")


def test_amazon_root_ca_1_comes_from_the_installed_bundle() -> None:
    pem = amazon_root_ca_1()
    cert = x509.load_pem_x509_certificate(pem)
    assert AMAZON_ROOT_CA_1 in cert.subject.rfc4514_string()
    assert cert.issuer == cert.subject
