"""The built-in device policy stays expressible as the local broker's ACL."""

from __future__ import annotations

import pytest

from provisioning.policy import device_policy_document


def test_builtin_policy_renders_to_a_per_thing_acl() -> None:
    broker = pytest.importorskip("cloud.local.broker")
    document = device_policy_document("eu-west-3", "123456789012", ["chantier_telemetry"])
    acl = broker.render_acl(document, [("exc-01", "lyon")])
    assert "user exc-01" in acl
    assert "topic write dt/chantier/lyon/exc-01/#" in acl
    assert "topic write $aws/rules/chantier_telemetry/dt/chantier/lyon/exc-01/#" in acl
    assert broker.DEVICE_POLICY_NAME == "chantier-device"
