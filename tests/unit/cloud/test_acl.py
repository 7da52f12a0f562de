"""The Mosquitto ACL is derived from the template's IoT policy, thing by thing."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.local.broker import (
    OBSERVER_IDENTITY,
    RULES_ENGINE_IDENTITY,
    AclError,
    BrokerFiles,
    render_acl,
    render_config,
)
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


def test_internal_identities_only_read_and_a_reserved_thing_gets_nothing() -> None:
    policy = LocalTemplate().iot_policy_document("chantier-device")
    acl = render_acl(policy, [("chantier-rules-engine", "lyon"), ("exc-01", "lyon")])
    lines = "\n".join(line for line in acl.splitlines() if not line.startswith("#"))
    blocks = [block.splitlines() for block in lines.split("\n\n") if block.strip()]
    by_user = {b[0]: b[1:] for b in blocks if b[0].startswith("user ")}
    for internal in (RULES_ENGINE_IDENTITY, OBSERVER_IDENTITY):
        assert by_user[f"user {internal}"] == [
            "topic read dt/chantier/#",
            "topic read $aws/rules/#",
        ]
    # The registry entry under a reserved name adds no write right to the engine's identity.
    assert not any(
        line.startswith("topic write") for line in by_user[f"user {RULES_ENGINE_IDENTITY}"]
    )


def test_broker_takes_the_client_id_from_the_certificate_and_queues_for_the_engine() -> None:
    files = BrokerFiles(Path("/state/broker"))
    config = render_config(8883, files, Path("ca"), Path("c"), Path("k"), Path("crl"))
    lines = config.splitlines()
    assert "use_identity_as_username true" in lines
    assert "use_username_as_clientid true" in lines
    assert "require_certificate true" in lines
    # Without it, a message to the rules engine sometimes waited 30-40 ms for the engine's
    # acknowledgement of the previous one (Nagle's algorithm; docs/performance.md).
    assert "set_tcp_nodelay true" in lines
    queued = next(line for line in lines if line.startswith("max_queued_messages "))
    assert int(queued.split()[1]) >= 100_000


def test_broker_keeps_its_queue_in_the_state_folder_across_restarts() -> None:
    files = BrokerFiles(Path("/state/broker"))
    lines = render_config(8883, files, Path("ca"), Path("c"), Path("k"), Path("crl")).splitlines()
    assert "persistence true" in lines
    assert "persistence_location /state/broker/" in lines
    assert "persistence_file mosquitto.db" in lines
    saves = next(line for line in lines if line.startswith("autosave_interval "))
    assert 0 < int(saves.split()[1]) <= 60
    assert not any(line.startswith("autosave_on_changes") for line in lines)  # seconds, not changes
