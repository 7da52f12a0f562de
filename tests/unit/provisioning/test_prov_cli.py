"""`chantier provision …` end to end through the root command (AWS mode on moto, local CA)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chantier.cli import main
from chantier.keys import generate_key_and_csr
from provisioning.policy import DEVICE_POLICY_NAME, device_policy_document


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["provision", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def aws_cli(iot: Any, tmp_path: Path) -> list[str]:
    iot.create_policy(
        policyName=DEVICE_POLICY_NAME,
        policyDocument=json.dumps(device_policy_document("eu-west-3", "123456789012")),
    )
    return ["--aws", "--region", "eu-west-3", "--out", str(tmp_path / "certs")]


def test_ca_init_and_show_never_print_the_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    code, out, _ = run(capsys, "ca", "init", "--state-dir", str(state))
    assert code == 0 and out.startswith("CA created")
    code, out, _ = run(capsys, "ca", "show", "--state-dir", str(state))
    assert code == 0
    assert "EC P-256" in out and "(mode 0600)" in out and "0 revoked" in out
    key_line = (state / "ca" / "ca.key").read_text().splitlines()[1]
    assert key_line not in out and "PRIVATE" not in out
    code, out, _ = run(capsys, "ca", "init", "--state-dir", str(state))
    assert out.startswith("CA already exists")


def test_local_mode_without_a_stack_says_how_to_start_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        capsys,
        "device", "exc-01", "--site", "lyon", "--equipment", "excavator",
        "--state-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "certs"),
    )  # fmt: skip
    assert code == 2
    assert "chantier stack up" in one_line_error(err)
    assert not (tmp_path / "certs" / "exc-01").exists()


def test_device_list_show_revoke_in_aws_mode(
    capsys: pytest.CaptureFixture[str], aws_cli: list[str], tmp_path: Path
) -> None:
    assert run(capsys, "site", "add", "lyon", *aws_cli)[0] == 0
    code, out, err = run(
        capsys, "device", "exc-01", "--site", "lyon", "--equipment", "excavator",
        "--hourly-cost", "85", "--archive", *aws_cli,
    )  # fmt: skip
    assert code == 0, err
    assert "provisioned exc-01" in out
    assert "BEGIN" not in out + err  # no PEM of any kind on the terminal
    assert (tmp_path / "certs" / "exc-01.tar.gz").exists()

    code, _, err = run(
        capsys, "device", "exc-01", "--site", "lyon", "--equipment", "excavator", *aws_cli
    )
    assert code == 2 and "--force" in one_line_error(err)

    code, out, _ = run(capsys, "list", *aws_cli)
    header, row = out.strip().splitlines()
    assert header.split() == ["THING", "SITE", "EQUIPMENT", "CERTIFICATE", "STATUS", "EXPIRES"]
    assert row.split()[:3] == ["exc-01", "lyon", "excavator"] and "ACTIVE" in row

    code, out, _ = run(capsys, "show", "exc-01", "--json", *aws_cli)
    shown = json.loads(out)
    assert shown["attributes"]["hourlyCost"] == "85"
    assert shown["certificates"][0]["policies"] == [DEVICE_POLICY_NAME]

    code, out, _ = run(capsys, "revoke", "exc-01", *aws_cli)
    assert code == 0 and "revoked and detached" in out
    code, out, _ = run(capsys, "list", *aws_cli)
    assert out.splitlines()[1].split()[4] == "REVOKED"  # the detached certificate still tells


def test_rotate_prints_how_to_complete(
    capsys: pytest.CaptureFixture[str], aws_cli: list[str]
) -> None:
    run(capsys, "site", "add", "lyon", *aws_cli)
    run(capsys, "device", "exc-01", "--site", "lyon", "--equipment", "excavator", *aws_cli)
    code, out, _ = run(capsys, "rotate", "exc-01", *aws_cli)
    assert code == 0 and "rotate exc-01 --complete" in out
    code, out, _ = run(capsys, "rotate", "exc-01", "--complete", *aws_cli)
    assert code == 0 and "revoked previous certificate" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["device", "Exc_01", "--site", "lyon", "--equipment", "crane"], "not a valid name"),
        (["device", "exc-01", "--site", "paris", "--equipment", "crane"], "site add paris"),
        (["show", "ghost-01"], "not in the registry"),
        (["device", "exc-01", "--site", "lyon", "--equipment", "crane", "--hourly-cost", "x"],
         "hourly cost"),
    ],
)  # fmt: skip
def test_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], aws_cli: list[str], argv: list[str], expected: str
) -> None:
    run(capsys, "site", "add", "lyon", *aws_cli)
    code, _, err = run(capsys, *argv, *aws_cli)
    assert code == 2
    assert expected in one_line_error(err)


def test_csr_subject_mismatch_is_one_line_and_creates_nothing(
    capsys: pytest.CaptureFixture[str], aws_cli: list[str], iot: Any, tmp_path: Path
) -> None:
    run(capsys, "site", "add", "lyon", *aws_cli)
    _, csr = generate_key_and_csr("crane-02", tmp_path / "pi")
    code, _, err = run(
        capsys, "device", "exc-01", "--site", "lyon", "--equipment", "excavator",
        "--csr", str(csr), *aws_cli,
    )  # fmt: skip
    assert code == 2 and "CSR subject CN is 'crane-02'" in one_line_error(err)
    assert iot.list_things()["things"] == []
    assert iot.list_certificates()["certificates"] == []


def test_missing_aws_credentials_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, _, err = run(capsys, "list", "--aws", "--region", "eu-west-3")
    assert code == 2 and "aws configure" in one_line_error(err)


def test_fleet_progress_goes_to_stderr(
    capsys: pytest.CaptureFixture[str], aws_cli: list[str], tmp_path: Path
) -> None:
    csv_path = tmp_path / "fleet.csv"
    csv_path.write_text("thing,site,equipment\nexc-01,lyon,excavator\ncrane-01,lyon,crane\n")
    code, out, err = run(capsys, "fleet", "--from", str(csv_path), "--new-sites", *aws_cli)
    assert code == 0
    assert "2/2 (100%)" in err and "2/2" not in out
    assert "2 provisioned, 0 already done, 0 failed" in out
    code, out, _ = run(capsys, "fleet", "--from", str(csv_path), "--new-sites", *aws_cli)
    assert "0 provisioned, 2 already done" in out


def test_audit_exit_code_follows_fail_on(
    capsys: pytest.CaptureFixture[str], aws_cli: list[str], iot: Any
) -> None:
    code, out, _ = run(capsys, "audit", *aws_cli)
    assert code == 0 and out.strip().endswith("no findings")
    assert f"checked 1 policy: {DEVICE_POLICY_NAME}" in out and "policy-wildcard:" in out
    iot.create_policy(
        policyName="too-open",
        policyDocument=json.dumps(
            {"Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"}]}
        ),
    )
    code, out, _ = run(capsys, "audit", *aws_cli)
    assert code == 1 and "policy-wildcard" in out
    assert run(capsys, "audit", "--fail-on", "critical", *aws_cli)[0] == 0
    assert run(capsys, "audit", "--fail-on", "none", *aws_cli)[0] == 0


def test_aws_bundle_publishes_through_basic_ingest(
    capsys: pytest.CaptureFixture[str], aws_cli: list[str], tmp_path: Path
) -> None:
    from chantier.names import topic
    from device.config import load_config

    run(capsys, "site", "add", "lyon", *aws_cli)
    code, _, err = run(
        capsys, "device", "exc-01", "--site", "lyon", "--equipment", "excavator", *aws_cli
    )
    assert code == 0, err
    config = load_config(tmp_path / "certs" / "exc-01" / "agent.toml", env={})
    assert [s.driver for s in config.sensors] == ["bme280"]
    assert topic("lyon", "exc-01", "health", config.topic_prefix) == (
        "$aws/rules/chantier_health/dt/chantier/lyon/exc-01/health"
    )


def test_list_filters_and_json_equal_to_show(
    capsys: pytest.CaptureFixture[str], aws_cli: list[str]
) -> None:
    for thing, site in (("exc-01", "lyon"), ("exc-02", "lyon"), ("gen-01", "paris")):
        code, _, err = run(
            capsys, "device", thing, "--site", site, "--equipment", "excavator", "--new-site",
            *aws_cli,
        )  # fmt: skip
        assert code == 0, err
    assert run(capsys, "revoke", "exc-02", *aws_cli)[0] == 0

    def things(*argv: str) -> list[str]:
        code, out, err = run(capsys, "list", *argv, *aws_cli)
        assert code == 0, err
        return [line.split()[0] for line in out.strip().splitlines()[1:]]

    assert things("--site", "lyon") == ["exc-01", "exc-02"]
    assert things("--status", "revoked") == ["exc-02"]
    assert things("--status", "ACTIVE", "--site", "paris") == ["gen-01"]
    assert things("--expiring", "400") == ["exc-01", "gen-01"]  # AWS-mode moto: one year
    assert run(capsys, "list", "--expiring", "30", *aws_cli)[1].strip() == "no thing matches"

    code, out, _ = run(capsys, "list", "--json", *aws_cli)
    listed = {item["thing"]: item for item in json.loads(out)}
    for thing in ("exc-01", "exc-02", "gen-01"):
        shown = json.loads(run(capsys, "show", thing, "--json", *aws_cli)[1])
        assert listed[thing] == shown
    assert listed["exc-01"]["certificates"][0]["things"] == ["exc-01"]
    assert listed["exc-01"]["certificates"][0]["policies"] == [DEVICE_POLICY_NAME]
    assert listed["exc-02"]["status"] == "REVOKED" and listed["exc-02"]["history"]


def test_bundle_sensors_follow_the_equipment_rules_and_are_printed(
    capsys: pytest.CaptureFixture[str], aws_cli: list[str], tmp_path: Path
) -> None:
    from device.config import load_config

    assert run(capsys, "site", "add", "lyon", *aws_cli)[0] == 0
    code, out, err = run(
        capsys, "device", "gen-01", "--site", "lyon", "--equipment", "generator", *aws_cli
    )
    assert code == 0, err
    assert "engine (BME280 0x76), enclosure (BME280 0x77)" in out
    config = load_config(tmp_path / "certs" / "gen-01" / "agent.toml", env={})
    assert [(s.name, s.driver, s.address) for s in config.sensors] == [
        ("engine", "bme280", 0x76),
        ("enclosure", "bme280", 0x77),
    ]
    assert not err

    code, out, err = run(
        capsys, "device", "exc-01", "--site", "lyon", "--equipment", "excavator",
        "--sensor", "main", *aws_cli,
    )  # fmt: skip
    assert code == 0 and "main (BME280 0x76)" in out
    assert "engine-overheat watches sensor engine" in err and "cannot fire" in err

    for bad in (["--sensor", "Engine"], ["--sensor", "a", "--sensor", "b", "--sensor", "c"]):
        code, _, err = run(
            capsys, "device", "exc-02", "--site", "lyon", "--equipment", "excavator",
            *bad, *aws_cli,
        )  # fmt: skip
        assert code == 2 and "sensor" in one_line_error(err)
        assert not (tmp_path / "certs" / "exc-02").exists()


def test_site_list_is_a_table_with_its_things(
    capsys: pytest.CaptureFixture[str], aws_cli: list[str]
) -> None:
    assert run(capsys, "site", "list", *aws_cli)[1].startswith("no site")
    run(capsys, "site", "add", "lyon", *aws_cli)
    run(capsys, "site", "add", "paris", *aws_cli)
    run(capsys, "device", "exc-01", "--site", "lyon", "--equipment", "excavator", *aws_cli)
    code, out, _ = run(capsys, "site", "list", *aws_cli)
    assert code == 0
    assert [line.split() for line in out.strip().splitlines()] == [
        ["SITE", "THINGS"],
        ["lyon", "1"],
        ["paris", "0"],
    ]
