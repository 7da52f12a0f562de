"""Configuration loading: defaults, environment overrides, and errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.config import ConfigError, load_config

BASE = """
thing = "exc-01"
site = "lyon-part-dieu"
equipment = "excavator"
endpoint = "127.0.0.1"
cert = "certs/exc-01.crt"
key = "certs/exc-01.key"
ca = "/etc/chantier/ca.pem"
"""
SENSOR = '\n[[sensors]]\nname = "engine"\ndriver = "simulated"\nseed = 7\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE + SENSOR), env={})
    assert config.port == 8883
    assert config.sample_interval_s == 5.0
    assert config.batch_max_bytes == 65536
    # reporting by exception: a steady machine sends a batch every 15 minutes, health hourly
    assert config.profile == "default"
    assert config.batch_max_age_s == 900.0
    assert config.health_interval_s == 3600.0
    assert config.health_early_min_s == 900.0
    assert (config.deadband_temperature, config.deadband_humidity) == (1.0, 3.0)
    assert config.deadband_pressure == 1.0
    assert config.early_min_interval_s == 300.0
    assert (config.early_burst, config.early_refill_s) == (3, 720.0)
    assert config.queue_max_readings == 200_000
    assert config.topic_prefix == ""
    assert config.cert == tmp_path / "certs/exc-01.crt"
    assert config.ca == Path("/etc/chantier/ca.pem")
    assert config.sensors[0].name == "engine"
    assert config.sensors[0].profile == "excavator"
    assert config.sensors[0].seed == 7


def test_live_profile_is_one_setting_away_and_explicit_values_win(tmp_path: Path) -> None:
    live = load_config(write(tmp_path, 'profile = "live"\n' + BASE + SENSOR), env={})
    assert (live.batch_max_age_s, live.health_interval_s) == (60.0, 60.0)
    tuned = load_config(
        write(tmp_path, 'profile = "live"\nbatch_max_age_s = 5\n' + BASE + SENSOR), env={}
    )
    assert (tuned.batch_max_age_s, tuned.health_interval_s) == (5.0, 60.0)
    from_env = load_config(write(tmp_path, BASE + SENSOR), env={"CHANTIER_AGENT_PROFILE": "live"})
    assert from_env.batch_max_age_s == 60.0
    with pytest.raises(ConfigError, match=r"key profile: expected one of default, live"):
        load_config(write(tmp_path, 'profile = "fast"\n' + BASE + SENSOR), env={})


def test_the_early_budget_and_health_spacing_are_checked_and_overridable(tmp_path: Path) -> None:
    text = BASE + "early_burst = 5\nearly_refill_s = 1200\nhealth_early_min_s = 300\n" + SENSOR
    config = load_config(write(tmp_path, text), env={"CHANTIER_AGENT_EARLY_BURST": "0"})
    assert (config.early_burst, config.early_refill_s, config.health_early_min_s) == (
        0,
        1200.0,
        300.0,
    )
    bad = BASE + "early_burst = 2.5\nearly_refil_s = 600\nhealth_early_min_s = -1\n" + SENSOR
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, bad), env={"CHANTIER_AGENT_EARLY_REFILL_S": "soon"})
    problems = "\n".join(info.value.problems)
    assert "key early_burst: expected an integer" in problems
    assert "key early_refil_s: not a configuration key (did you mean early_refill_s?)" in problems
    assert "key health_early_min_s: expected a number between 0 and 86400" in problems
    assert "environment CHANTIER_AGENT_EARLY_REFILL_S='soon'" in problems
    assert len(info.value.problems) == 4


def test_environment_overrides_win(tmp_path: Path) -> None:
    env = {
        "CHANTIER_AGENT_PORT": "18883",
        "CHANTIER_AGENT_THING": "exc-02",
        "CHANTIER_AGENT_STATE_DIR": str(tmp_path / "s"),
        "CHANTIER_STATE_DIR": "/elsewhere",
    }
    config = load_config(write(tmp_path, BASE + SENSOR), env=env)
    assert config.port == 18883
    assert config.thing == "exc-02"
    assert config.state_dir == tmp_path / "s"


def test_bme280_sensor_and_faults(tmp_path: Path) -> None:
    text = BASE + (
        '[[sensors]]\nname = "engine"\ndriver = "bme280"\nbus = 1\naddress = 0x77\n'
        'oversampling_temperature = 16\niir_filter = 4\nmode = "normal"\n'
        '[[sensors]]\nname = "cabin"\n'
        'faults = [{kind = "overheat", start_s = 10, duration_s = 30}]\n'
    )
    config = load_config(write(tmp_path, text), env={})
    engine, cabin = config.sensors
    assert (engine.driver, engine.bus, engine.address) == ("bme280", 1, 0x77)
    assert (engine.oversampling_temperature, engine.iir_filter, engine.mode) == (16, 4, "normal")
    assert cabin.faults[0].kind == "overheat"
    assert cabin.faults[0].start_s == 10.0 and cabin.faults[0].duration_s == 30.0


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            BASE.replace('thing = "exc-01"', 'thing = "Exc_01"'),
            "key thing: expected 1-64 lowercase",
        ),
        (
            BASE.replace('endpoint = "127.0.0.1"\n', ""),
            "key endpoint: expected a string (the key is required)",
        ),
        (BASE + "port = 0\n", "key port: expected an integer between 1 and 65535"),
        (BASE + 'port = "x"\n', "key port: expected an integer"),
        (BASE.replace("excavator", "bulldozer"), "key equipment: expected one of excavator"),
        (BASE + "batch_max_age_s = -1\n", "key batch_max_age_s: expected a number between"),
        (BASE + "colour = 1\n", "key colour: not a configuration key"),
    ],
)
def test_errors_name_file_key_and_expectation(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text + SENSOR)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(path) in str(info.value)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("sensor", "needle"),
    [
        (
            'name = "engine"\ndriver = "bme280"\naddress = 0x40\n',
            "sensors[0].address: expected 0x76 or 0x77",
        ),
        (
            'name = "engine"\ndriver = "bme280"\nbus = "two"\n',
            "sensors[0].bus: expected an I2C bus number",
        ),
        (
            'name = "engine"\ndriver = "ds18b20"\n',
            "sensors[0].driver: expected one of bme280, simulated",
        ),
        (
            'name = "engine"\noversampling_pressure = 3\n',
            "oversampling_pressure: expected one of 0, 1, 2",
        ),
        (
            'name = "engine"\nfaults = [{kind = "melt"}]\n',
            "sensors[0].faults[0].kind: expected one of",
        ),
    ],
)
def test_sensor_errors(tmp_path: Path, sensor: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        load_config(write(tmp_path, BASE + "[[sensors]]\n" + sensor), env={})
    assert needle in str(info.value)


def test_no_sensor_duplicate_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key sensors: expected at least one"):
        load_config(write(tmp_path, BASE), env={})
    with pytest.raises(ConfigError, match="a name used by no other sensor"):
        load_config(write(tmp_path, BASE + SENSOR + SENSOR), env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", env={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "thing = \n"), env={})


def test_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[3] / "device" / "agent.example.toml"
    config = load_config(example, env={})
    assert config.sensors


def test_every_problem_reported_at_once_with_suggestions(tmp_path: Path) -> None:
    text = (
        BASE.replace('endpoint = "127.0.0.1"\n', "")
        + "prot = 8883\nqueue_max_reading = 10\nbatch_max_age_s = -1\n"
        + '[[sensors]]\nname = "engine"\ndriver = "bme280"\nadress = 0x77\n'
        + '[[sensors]]\nname = "cabin"\ndriver = "bme280"\n'
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    problems = info.value.problems
    assert f"{path}: key prot: not a configuration key (did you mean port?)" in problems
    assert any("key queue_max_reading:" in p and "did you mean queue_max_readings?" in p
               for p in problems)  # fmt: skip
    assert any("key endpoint: expected a string (the key is required)" in p for p in problems)
    assert any("key batch_max_age_s: expected a number between" in p for p in problems)
    assert any("key sensors[0].adress:" in p and "did you mean address?" in p for p in problems)
    # both sensors sit at 0x76 once the misspelt address is ignored
    assert any("key sensors[1].address: expected an address no other BME280 uses" in p
               for p in problems)  # fmt: skip
    assert len(problems) == 6
    assert str(info.value).splitlines() == problems


def test_environment_overrides_are_named_in_errors(tmp_path: Path) -> None:
    from device.config import unknown_env

    path = write(tmp_path, BASE + SENSOR)
    env = {"CHANTIER_AGENT_PORT": "eighty", "CHANTIER_AGENT_SAMPLE_INTERVAL": "2"}
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    assert info.value.problems == [
        f"environment CHANTIER_AGENT_PORT='eighty' (overrides key port of {path}): "
        "expected an integer"
    ]
    assert unknown_env(env) == [
        "CHANTIER_AGENT_SAMPLE_INTERVAL is set but sets nothing "
        "(did you mean CHANTIER_AGENT_SAMPLE_INTERVAL_S?)"
    ]
