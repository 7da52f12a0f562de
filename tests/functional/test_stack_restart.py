"""A stack started again in the same state folder takes back what is on disk: the landed
objects, the kept failure records, the registry from the bundles (a revoked thing stays out),
and the broker's port."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from support.alert_stack import crafted_batch, telemetry_topic, wait_for
from support.localstack import DeviceConnection

from chantier.s3keys import raw_key
from cloud.local.broker import BrokerFiles
from cloud.local.destinations import QueueDestination
from cloud.local.processes import free_port
from cloud.local.provisioning import provision_local_fleet
from cloud.local.stack import LocalStack
from commands.bootstrap import open_provisioner
from commands.simulator.fleet import Machine
from device.transport import ACKED
from provisioning.service import DeviceSpec

pytestmark = pytest.mark.functional
SITE = "restart-site"


def test_a_restarted_stack_keeps_objects_things_and_port(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with LocalStack(state) as first:
        assert first.info is not None
        port = first.info.broker_port
        kept, _revoked = provision_local_fleet(
            [DeviceSpec("gen-kept", SITE, "generator"), DeviceSpec("gen-gone", SITE, "generator")],
            state_dir=state,
        )
        open_provisioner(out_root=state / "certs", state_dir=state).revoke("gen-gone")
        machine = Machine(kept.thing, kept.site, kept.equipment, kept.bundle_dir)
        batch = crafted_batch(machine, 1, [40.0, 40.5])
        with DeviceConnection(first, machine) as device:
            assert device.publish(telemetry_topic(machine), batch).status == ACKED
        sent_at = json.loads(batch)["sentAt"]
        key = raw_key(SITE, machine.thing, sent_at, "a1b2c3d4", 1)
        QueueDestination(first.client("sqs"), first.info.failures_queue).keep({"kept": 1})
        s3 = first.client("s3")
        assert wait_for(
            lambda: s3.list_objects_v2(Bucket=first.info.raw_bucket, Prefix=key)["KeyCount"], 10
        )  # type: ignore[union-attr]

    with LocalStack(state) as second:
        assert second.info is not None
        assert second.info.broker_port == port
        assert second.restored_things == ["gen-kept"]
        s3 = second.client("s3")
        assert s3.get_object(Bucket=second.info.raw_bucket, Key=key)["Body"].read() == batch
        assert QueueDestination(second.client("sqs"), second.info.failures_queue).count() == 1
        iot = second.client("iot")
        assert [t["thingName"] for t in iot.list_things()["things"]] == ["gen-kept"]
        acl = BrokerFiles(state / "broker").acl.read_text()
        assert "user gen-kept" in acl and "gen-gone" not in acl
        # The device carries on with the same bundle, on the same port.
        with DeviceConnection(second, machine) as device:
            again = crafted_batch(machine, 2, [41.0])
            assert device.publish(telemetry_topic(machine), again).status == ACKED


def test_a_taken_port_moves_the_broker_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    files = BrokerFiles(state / "broker")
    files.directory.mkdir(parents=True)
    taken = free_port()
    files.port.write_text(f"{taken}\n")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with LocalStack(state) as stack:
            assert stack.info is not None
            moved = stack.info.broker_port
    assert moved != taken
    assert f"port {taken} of the last broker" in caplog.text
    assert files.port.read_text().strip() == str(moved)
