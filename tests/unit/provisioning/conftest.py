"""In-process moto IoT registry and a local CA in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cloud.local.provisioning import LocalBackend
from provisioning.backends import AwsBackend
from provisioning.bundle import AgentSettings
from provisioning.ca import CertificateAuthority
from provisioning.registry import Registry
from provisioning.service import Provisioner

REGION = "eu-west-3"


@pytest.fixture
def iot(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.client("iot", region_name=REGION)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.create_or_load(tmp_path / "state" / "ca")


class RefreshSpy:
    """Stands in for the broker refresh of the local stack; counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


@pytest.fixture
def refresh() -> RefreshSpy:
    return RefreshSpy()


@pytest.fixture
def local(iot: Any, ca: CertificateAuthority, tmp_path: Path, refresh: RefreshSpy) -> Provisioner:
    backend = LocalBackend(ca, Registry(iot), ("127.0.0.1", 18883), refresh=refresh)
    settings = AgentSettings(driver="simulated", state_dir=str(tmp_path / "agent-state"))
    provisioner = Provisioner(backend, tmp_path / "certs", settings=settings)
    provisioner.add_site("lyon")
    return provisioner


@pytest.fixture
def aws(iot: Any, tmp_path: Path) -> Provisioner:
    from provisioning.policy import DEVICE_POLICY_NAME, device_policy_document

    registry = Registry(iot)
    # In AWS the template deploys the policy; here the test plays that part.
    registry.ensure_policy(DEVICE_POLICY_NAME, device_policy_document(REGION, "123456789012"))
    provisioner = Provisioner(AwsBackend(registry), tmp_path / "certs")
    provisioner.add_site("lyon")
    return provisioner
