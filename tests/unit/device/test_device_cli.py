"""`chantier agent` sub-commands: check-config, status, keygen."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from chantier.cli import main
from device.batcher import Envelope
from device.queue import DurableQueue, NewReading


def config_file(tmp_path: Path, with_files: bool = True) -> Path:
    for name in ("device.crt", "device.key", "ca.pem"):
        if with_files:
            (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
    path = tmp_path / "agent.toml"
    path.write_text(
        'thing = "exc-01"\nsite = "lyon"\nequipment = "crane"\nendpoint = "127.0.0.1"\n'
        'cert = "device.crt"\nkey = "device.key"\nca = "ca.pem"\n'
        f'state_dir = "{tmp_path / "state"}"\n[[sensors]]\nname = "engine"\n'
    )
    return path


def test_status_reads_the_state_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(tmp_path)
    q = DurableQueue(tmp_path / "state")
    q.add([NewReading("engine", 1_763_733_600_000, 1, "b", 1_763_733_600_000, 20.0)])
    q.form_batch(Envelope("exc-01", "lyon", "crane", "abcdef01"), 1_763_733_600_500, 4800)
    q.add([NewReading("engine", 1_763_733_601_000, 2, "b", 1_763_733_601_000, 20.5)])
    q.set_meta("agent", {"lastPublishMs": 1_763_733_600_600, "sensors": []})
    q.close()
    assert main(["agent", "status", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "queue depth      2 readings (1 batches formed)" in out
    assert "oldest reading   2025-11-21T14:00:00+00:00" in out
    assert main(["agent", "status", "--state-dir", str(tmp_path / "state"), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["depth"] == 2 and status["agent"]["lastPublishMs"] == 1_763_733_600_600
    assert main(["agent", "status", "--state-dir", str(tmp_path / "nowhere")]) == 1


def test_keygen_writes_private_key_0600_and_csr(tmp_path: Path) -> None:
    from cryptography import x509

    out = tmp_path / "keys"
    assert main(["agent", "keygen", "--thing", "exc-01", "--out", str(out)]) == 0
    key = out / "exc-01.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    csr = x509.load_pem_x509_csr((out / "exc-01.csr").read_bytes())
    assert csr.subject.rfc4514_string() == "CN=exc-01"
    assert csr.is_signature_valid


def test_keygen_as_the_provisioning_guide_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "no-agent.toml"
    assert main(["agent", "keygen", "exc-01", "--config", str(missing)]) == 0
    assert stat.S_IMODE(os.stat(tmp_path / "exc-01.key").st_mode) == 0o600
    assert "exc-01.csr (send this to the fleet admin)" in capsys.readouterr().out
    # a second run must not destroy the key a certificate may already be issued for
    key_before = (tmp_path / "exc-01.key").read_bytes()
    assert main(["agent", "keygen", "exc-01"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "exc-01.key").read_bytes() == key_before
    assert main(["agent", "keygen", "exc-01", "--force"]) == 0
    assert (tmp_path / "exc-01.key").read_bytes() != key_before
    assert main(["agent", "keygen", "--config", str(missing)]) == 2
    assert "chantier agent keygen <thing>" in capsys.readouterr().err


def test_csr_mismatch_error_names_a_command_that_fixes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re
    import shlex

    from chantier.keys import generate_key_and_csr
    from provisioning.ca import CsrMismatchError, check_csr

    _, wrong = generate_key_and_csr("exc-02", tmp_path / "wrong")
    with pytest.raises(CsrMismatchError) as info:
        check_csr(wrong.read_bytes(), "exc-01")
    command = re.search(r"`chantier (agent keygen [^`]+)`", str(info.value))
    assert command, str(info.value)
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(command.group(1))) == 0
    check_csr((tmp_path / "exc-01.csr").read_bytes(), "exc-01")


def test_device_fallback_keygen(tmp_path: Path) -> None:
    from chantier.keys import generate_key_and_csr

    key, csr = generate_key_and_csr("gen-02", tmp_path / "k")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert b"CERTIFICATE REQUEST" in csr.read_bytes()
