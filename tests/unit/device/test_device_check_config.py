"""`chantier agent check-config`: every problem at once, named, with a documented exit status."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chantier.cli import main
from device.config import load_config
from device.preflight import ERROR, NOTE, WARNING, Host, preflight
from provisioning.ca import CertificateAuthority


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A bundle as provisioning writes it: certificate, key (0600), root CA, agent.toml."""
    ca = CertificateAuthority.create_or_load(tmp_path / "ca", common_name="test-ca")
    issued = ca.issue_client_certificate("exc-01", tmp_path / "bundle")
    folder = issued.cert_path.parent
    (folder / "root-ca.pem").write_bytes(ca.cert_path.read_bytes())
    assert issued.key_path is not None
    (folder / "agent.toml").write_text(
        'thing = "exc-01"\nsite = "lyon"\nequipment = "excavator"\nendpoint = "127.0.0.1"\n'
        f'cert = "{issued.cert_path.name}"\nkey = "{issued.key_path.name}"\n'
        f'ca = "root-ca.pem"\nstate_dir = "{tmp_path / "state"}"\n'
        'clock_sync = "assume-synced"\n\n[[sensors]]\nname = "engine"\n'
    )
    return folder / "agent.toml"


def check(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str, str]:
    code = main(["agent", "check-config", "--config", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_provisioned_bundle_is_ready(
    bundle: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHANTIER_AGENT_PORT", raising=False)
    code, out, err = check(capsys, bundle)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1].startswith(f"{bundle}: ready (0 warnings): thing exc-01")
    assert "sensors engine (simulated)" in out


def test_every_problem_at_once_and_never_the_ready_line(
    bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = CertificateAuthority.create_or_load(tmp_path / "other", common_name="other")
    stray = other.issue_client_certificate("exc-01", tmp_path / "stray")
    assert stray.key_path is not None
    text = bundle.read_text()
    text = text.replace('key = "exc-01.key"', f'key = "{stray.key_path}"')
    text = text.replace('endpoint = "127.0.0.1"\n', "")  # a required key missing
    text = "prot = 8883\n" + text.replace('name = "engine"', 'name = "main"')
    text = text.replace(f'state_dir = "{tmp_path / "state"}"', f'state_dir = "{bundle}"')
    bundle.write_text(text)
    os.chmod(stray.key_path, 0o644)
    monkeypatch.setenv("CHANTIER_AGENT_SAMPLE_INTERVAL_S", "often")
    monkeypatch.setenv("CHANTIER_AGENT_QUEUE_MAX", "10")

    code, out, err = check(capsys, bundle)
    assert code == 1
    assert "ready" not in out
    lines = err.splitlines()
    expected = [
        f"error: {bundle}: key endpoint: expected a string (the key is required)",
        "error: environment CHANTIER_AGENT_SAMPLE_INTERVAL_S='often' (overrides key "
        f"sample_interval_s of {bundle}): expected a number",
        f"error: {bundle}: key prot: not a configuration key (did you mean port?)",
        "warning: CHANTIER_AGENT_QUEUE_MAX is set but sets nothing "
        "(did you mean CHANTIER_AGENT_QUEUE_MAX_READINGS?)",
        f"error: private key {stray.key_path} does not match certificate",
        f"warning: private key {stray.key_path} is readable by others (mode 0644)",
        f"error: state_dir {bundle} is not a folder",
        "warning: alert rule engine-overheat of a excavator watches sensor engine, and no "
        "[[sensors]] has that name: it can never fire",
    ]
    for start in expected:
        assert any(line.startswith(start) for line in lines), (start, lines)
    assert lines[-1] == f"{bundle}: 5 errors, 3 warnings: the agent would not start"
    assert len(lines) == 9  # nothing else, and no traceback


def test_exit_status_for_a_file_that_cannot_be_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = check(capsys, tmp_path / "missing.toml")
    assert code == 2 and out == ""
    assert (
        err.strip() == f"error: {tmp_path / 'missing.toml'}: the configuration file does not exist"
    )
    broken = tmp_path / "broken.toml"
    broken.write_text("thing = \n")
    assert check(capsys, broken)[0] == 2


def test_exit_status_is_documented() -> None:
    from device.cli import EXIT_ERRORS, EXIT_OK, EXIT_UNREADABLE

    guide = (Path(__file__).resolve().parents[3] / "docs" / "field-install.md").read_text()
    for code in (EXIT_OK, EXIT_ERRORS, EXIT_UNREADABLE):
        assert f"| {code} |" in guide


def findings(bundle: Path, host: Host, **env: str) -> list[tuple[str, str]]:
    return [(f.level, f.message) for f in preflight(load_config(bundle, env={}), env, host)]


def test_certificate_dates_against_the_clock(bundle: Path) -> None:
    later = datetime.now(UTC) + timedelta(days=400)
    expired = findings(bundle, Host(now=lambda: later))
    assert any(
        level == ERROR and "expired on" in m and "rotate exc-01" in m for level, m in expired
    )
    soon = findings(bundle, Host(now=lambda: datetime.now(UTC) + timedelta(days=350)))
    assert any(level == WARNING and "expires on" in m for level, m in soon)
    # a Pi without RTC before NTP: the certificate looks not yet valid
    past = findings(bundle, Host(now=lambda: datetime(1970, 1, 1, tzinfo=UTC)))
    assert any(level == ERROR and "synchronise the clock" in m for level, m in past)


def with_bme280(bundle: Path, bus: int = 1) -> None:
    bundle.write_text(
        bundle.read_text().replace(
            'name = "engine"', f'name = "engine"\ndriver = "bme280"\nbus = {bus}\naddress = 0x76'
        )
    )


def test_i2c_bus_on_a_pi_and_off_it(bundle: Path, tmp_path: Path) -> None:
    with_bme280(bundle)
    model = tmp_path / "model"
    model.write_text("Raspberry Pi 4 Model B Rev 1.4\x00")
    dev = tmp_path / "dev"
    dev.mkdir()
    on_pi = findings(bundle, Host(dev=dev, pi_model_file=model))
    assert (ERROR, f"sensor engine: {dev}/i2c-1 does not exist: enable I2C") in [
        (level, m[: m.index(" (sudo")]) for level, m in on_pi if "(sudo" in m
    ]
    off_pi = findings(bundle, Host(dev=dev, pi_model_file=tmp_path / "none"))
    assert [level for level, m in off_pi if "i2c-1" in m] == [NOTE]
    assert any("not a Raspberry Pi" in m for _, m in off_pi)


def test_i2c_chip_probed(bundle: Path, tmp_path: Path) -> None:
    with_bme280(bundle)
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "i2c-1").write_text("")

    def nobody(bus: int, address: int) -> int:
        raise OSError(121, "Remote I/O error")

    silent = findings(bundle, Host(dev=dev, read_chip_id=nobody))
    assert any(level == WARNING and "nothing answers at 0x76" in m for level, m in silent)
    bmp = findings(bundle, Host(dev=dev, read_chip_id=lambda bus, address: 0x58))
    assert any(level == WARNING and "is a BMP280" in m for level, m in bmp)
    good = findings(bundle, Host(dev=dev, read_chip_id=lambda bus, address: 0x60))
    assert not [m for _, m in good if "engine" in m]


def test_state_dir_that_cannot_be_created(bundle: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    bundle.write_text(bundle.read_text().replace(str(tmp_path / "state"), str(blocker / "state")))
    found = findings(bundle, Host())
    assert any(
        level == ERROR and "does not exist and user" in m and "StateDirectory=" in m
        for level, m in found
    )


def test_placeholder_endpoint_and_bundle_endpoint_file(bundle: Path) -> None:
    (bundle.parent / "endpoint.txt").write_text("broker.example:8883\n")
    moved = findings(bundle, Host())
    assert any(level == WARNING and "endpoint.txt says broker.example:8883" in m
               for level, m in moved)  # fmt: skip
    bundle.write_text(
        bundle.read_text().replace("127.0.0.1", "xxxxxxxxxxxxxx-ats.iot.eu-west-3.amazonaws.com")
    )
    assert any(level == ERROR and "placeholder" in m for level, m in findings(bundle, Host()))


def test_unsynchronised_clock_is_a_note(bundle: Path) -> None:
    bundle.write_text(bundle.read_text().replace('"assume-synced"', '"kernel"'))
    found = findings(bundle, Host(clock_synced=lambda mode: False))
    assert (NOTE, "the clock is not synchronised (clock_sync = kernel): the agent will keep "
            "readings on disk and publish them once it is; check timedatectl") in found  # fmt: skip


def test_the_agent_install_without_cryptography_still_matches_key_and_certificate(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    other = CertificateAuthority.create_or_load(tmp_path / "other", common_name="other")
    stray = other.issue_client_certificate("exc-01", tmp_path / "stray")
    bundle.write_text(bundle.read_text().replace('key = "exc-01.key"', f'key = "{stray.key_path}"'))
    monkeypatch.setitem(sys.modules, "cryptography", None)  # as in the agent-only install
    found = findings(bundle, Host())
    assert any(level == ERROR and "does not match certificate" in m for level, m in found)
    assert any(level == NOTE and "lacks the cryptography library" in m for level, m in found)


def test_keys_that_are_not_usable(bundle: Path) -> None:
    key = bundle.parent / "exc-01.key"
    key.write_text(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    assert any("is encrypted: the agent needs it unencrypted" in m
               for _, m in findings(bundle, Host()))  # fmt: skip
    key.write_text((bundle.parent / "exc-01.pem").read_text())  # the certificate, not the key
    assert (ERROR, f"private key {key} is not a PEM private key") in findings(bundle, Host())
