"""The Mosquitto ACL is derived from the template's IoT policy, thing by thing."""

from __future__ import annotations

import pytest

from cloud.local.broker import RULES_ENGINE_IDENTITY, AclError, render_acl
from cloud.local.template import LocalTemplate


def test_acl_grants_each_thing_only_its_own_topics_on_its_site() -> None:
    policy = LocalTemplate().iot_policy_document("chantier-device")
    acl = render_acl(policy, [("exc-01", "lyon"), ("crane-02", "grenoble")])
    lines = [line for line in acl.splitlines() if not line.startswith("#")]
    blocks = {
        block.splitlines()[0]: block.splitlines()[1:] for block in "\n".join(lines).split("\n\n")
    }
    assert blocks["user exc-01"] == [
        "topic write dt/chantier/lyon/exc-01/telemetry",
        "topic write dt/chantier/lyon/exc-01/health",
        "topic write $aws/rules/chantier_telemetry/dt/chantier/lyon/exc-01/telemetry",
        "topic write $aws/rules/chantier_health/dt/chantier/lyon/exc-01/health",
    ]
    assert all("crane-02" not in line for line in blocks["user exc-01"])
    assert "topic read $aws/rules/#" in blocks[f"user {RULES_ENGINE_IDENTITY}"]
    assert "#" not in " ".join(blocks["user crane-02"])


def test_policy_with_mqtt_wildcards_cannot_be_translated() -> None:
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:r:1:topic/dt/+/x"}
        ]
    }
    with pytest.raises(AclError, match="wildcard"):
        render_acl(policy, [("a", "b")])
