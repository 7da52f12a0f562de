"""Fleet provisioning from CSV: validation up front, resumable, nothing duplicated."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from provisioning.csv_batch import Progress, check_fleet, read_fleet_csv, run_fleet
from provisioning.errors import InvalidDeviceError
from provisioning.service import DeviceSpec, Provisioner

CSV = """thing,site,equipment,hourly_cost
exc-01,lyon,excavator,85
crane-01,lyon,crane,
gen-01,paris,generator,40.5
mix-01,lyon,concrete-mixer,
"""


def write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.csv"
    path.write_text(text)
    return path


def quiet() -> Progress:
    return Progress(4, stream=io.StringIO())


def active_certificates(iot: Any) -> list[str]:
    return [
        c["certificateId"]
        for c in iot.list_certificates()["certificates"]
        if c["status"] == "ACTIVE"
    ]


def test_csv_rows_are_parsed(tmp_path: Path) -> None:
    rows = read_fleet_csv(write_csv(tmp_path, CSV))
    assert [(r.line, r.spec.thing, r.spec.hourly_cost) for r in rows] == [
        (2, "exc-01", "85"),
        (3, "crane-01", None),
        (4, "gen-01", "40.5"),
        (5, "mix-01", None),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("thing,site\nexc-01,lyon\n", "missing column"),
        (
            "thing,site,equipment\nexc-01,lyon,excavator\nexc-01,lyon,crane\n",
            ":3: thing 'exc-01' already on line 2",
        ),
        ("thing,site,equipment\nExc,lyon,excavator\n", ":2: thing 'Exc' is not a valid name"),
        ("thing,site,equipment\nexc-01,lyon,tractor\n", ":2: equipment 'tractor' is unknown"),
        ("thing,site,equipment,csr\nexc-01,lyon,crane,nope.csr\n", "CSR file"),
    ],
)
def test_bad_csv_is_refused_with_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidDeviceError, match=message):
        read_fleet_csv(write_csv(tmp_path, text))


def test_failure_stops_and_a_rerun_finishes_without_duplicates(
    local: Provisioner, iot: Any, tmp_path: Path
) -> None:
    rows = read_fleet_csv(write_csv(tmp_path, CSV))
    first = run_fleet(local, rows, progress=quiet())
    assert first.provisioned == ["exc-01", "crane-01"]
    assert [thing for thing, _ in first.failed] == ["gen-01"]  # site paris unknown
    assert "site add paris" in first.failed[0][1]

    second = run_fleet(local, rows, create_sites=True, progress=quiet())
    assert second.skipped == ["exc-01", "crane-01"]
    assert second.provisioned == ["gen-01", "mix-01"]
    assert second.ok

    third = run_fleet(local, rows, create_sites=True, progress=quiet())
    assert third.skipped == ["exc-01", "crane-01", "gen-01", "mix-01"]
    assert len(iot.list_things()["things"]) == 4
    assert len(active_certificates(iot)) == 4


def test_keep_going_provisions_the_other_rows(local: Provisioner, tmp_path: Path) -> None:
    rows = read_fleet_csv(write_csv(tmp_path, CSV))
    report = run_fleet(local, rows, keep_going=True, progress=quiet())
    assert report.provisioned == ["exc-01", "crane-01", "mix-01"]
    assert [thing for thing, _ in report.failed] == ["gen-01"]


def test_run_killed_half_way_is_repaired_on_resume(
    local: Provisioner, iot: Any, tmp_path: Path
) -> None:
    rows = read_fleet_csv(write_csv(tmp_path, CSV))
    result = local.provision(rows[0].spec)
    # What a kill -9 between "certificate attached" and "bundle published" leaves behind.
    staging = local.out_root / ".staging-exc-01-dead"
    result.bundle_dir.rename(staging)
    run_fleet(local, rows, create_sites=True, progress=quiet())
    assert not staging.exists()
    certs = local.registry.thing_certificates("exc-01")
    assert [c.status for c in certs] == ["ACTIVE"]
    assert certs[0].certificate_id != result.certificate_id
    orphan = local.registry.certificate(result.certificate_id)
    assert orphan.status == "REVOKED"
    assert len(active_certificates(iot)) == 4


def test_progress_without_terminal_prints_a_line_per_tenth() -> None:
    stream = io.StringIO()
    bar = Progress(20, stream=stream)
    for done in range(1, 21):
        bar.update(done, f"m-{done}")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "1/20 (5%) m-1"
    assert "20/20 (100%) m-20" in lines
    assert len(lines) <= 12


def test_every_bad_row_is_named_at_once(tmp_path: Path) -> None:
    text = "thing,site,equipment\nExc,lyon,excavator\nok-01,lyon,crane\nmix-01,lyon,tractor\n"
    with pytest.raises(InvalidDeviceError) as caught:
        read_fleet_csv(write_csv(tmp_path, text))
    message = str(caught.value)
    assert "2 problems" in message and ":2: thing 'Exc'" in message and ":4: equipment" in message


def test_an_unknown_site_is_refused_before_anything_is_created(
    local: Provisioner, iot: Any, tmp_path: Path
) -> None:
    rows = read_fleet_csv(write_csv(tmp_path, CSV))  # line 4 is on site paris, unknown
    with pytest.raises(InvalidDeviceError, match=r"line 4: site 'paris' is unknown.*--new-sites"):
        check_fleet(local, rows)
    assert iot.list_things()["things"] == [] and not (local.out_root / "exc-01").exists()
    check_fleet(local, rows, create_sites=True)  # the flag it names makes it pass


def forget_registry(iot: Any) -> None:
    """What a local stack restart does: moto starts with an empty registry."""
    for thing in iot.list_things()["things"]:
        name = thing["thingName"]
        for arn in iot.list_thing_principals(thingName=name)["principals"]:
            iot.detach_thing_principal(thingName=name, principal=arn)
            for policy in iot.list_attached_policies(target=arn)["policies"]:
                iot.detach_policy(policyName=policy["policyName"], target=arn)
        iot.delete_thing(thingName=name)
    for cert in iot.list_certificates()["certificates"]:
        iot.update_certificate(certificateId=cert["certificateId"], newStatus="INACTIVE")
        iot.delete_certificate(certificateId=cert["certificateId"], forceDelete=True)
    for group in iot.list_thing_groups()["thingGroups"]:
        iot.delete_thing_group(thingGroupName=group["groupName"])


def test_after_a_restart_the_fleet_says_restore_or_force_and_restore_keeps_the_keys(
    local: Provisioner, iot: Any, tmp_path: Path
) -> None:
    rows = read_fleet_csv(write_csv(tmp_path, CSV))
    assert run_fleet(local, rows, create_sites=True, progress=quiet()).ok
    key_before = (local.out_root / "exc-01" / "exc-01.key").read_bytes()
    forget_registry(iot)

    with pytest.raises(InvalidDeviceError) as caught:
        check_fleet(local, rows, create_sites=True)
    message = str(caught.value)
    assert "4 problems" in message and "chantier provision restore" in message
    assert "--force" in message

    from cloud.local.provisioning import LocalBackend
    from provisioning.registry import Registry

    assert isinstance(local.backend, LocalBackend)
    moved = LocalBackend(local.backend.ca, Registry(iot), ("127.0.0.1", 28883))
    restarted = Provisioner(moved, local.out_root, audit=local.audit)
    assert restarted.bundles() == ["crane-01", "exc-01", "gen-01", "mix-01"]
    certificate_id = restarted.restore("exc-01")
    assert certificate_id is not None
    manifest = json.loads((local.out_root / "exc-01" / "bundle.json").read_text())
    assert manifest["certificateId"] == certificate_id and manifest["port"] == 28883
    assert "port = 28883" in (local.out_root / "exc-01" / "agent.toml").read_text()
    assert (local.out_root / "exc-01" / "exc-01.key").read_bytes() == key_before
    view = restarted.show("exc-01")
    assert view.thing.site == "lyon" and [c.status for c in view.active] == ["ACTIVE"]
    assert restarted.restore("exc-01") is None  # once is enough

    # --force is the other way out: new certificates for the rest
    report = run_fleet(restarted, rows, create_sites=True, force=True, progress=quiet())
    assert report.skipped == ["exc-01"] and len(report.provisioned) == 3


def test_a_revoked_bundle_is_not_restored(local: Provisioner, iot: Any) -> None:
    from provisioning.errors import ProvisioningError

    local.provision(DeviceSpec("exc-01", "lyon", "excavator"))
    local.revoke("exc-01")
    forget_registry(iot)
    with pytest.raises(ProvisioningError, match=r"revoked.*--force"):
        local.restore("exc-01")
    assert iot.list_things()["things"] == []  # undone
