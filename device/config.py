"""Agent configuration: one TOML file plus environment overrides, checked field by field."""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chantier.names import is_name
from chantier.telemetry import EQUIPMENT, MAX_MESSAGE_BYTES

DEFAULT_PATH = Path("/etc/chantier/agent.toml")
DEFAULT_STATE_DIR = Path("/var/lib/chantier")
# Prefix of the environment overrides. Not plain CHANTIER_: the local stack already reads
# CHANTIER_STATE_DIR for its own folder, and an agent started from the same shell must not
# silently share it.
ENV_PREFIX = "CHANTIER_AGENT_"
ENV_KEYS = (
    "thing",
    "site",
    "equipment",
    "endpoint",
    "port",
    "cert",
    "key",
    "ca",
    "topic_prefix",
    "state_dir",
    "sample_interval_s",
    "profile",
    "batch_max_bytes",
    "batch_max_age_s",
    "health_interval_s",
    "deadband_temperature",
    "deadband_humidity",
    "deadband_pressure",
    "early_min_interval_s",
    "early_burst",
    "early_refill_s",
    "health_early_min_s",
    "queue_max_readings",
    "rules_file",
    "run_id",
    "clock_sync",
    "log_level",
    "reconnect_min_s",
    "reconnect_max_s",
)
DRIVERS = ("bme280", "simulated")
# Reporting profiles: (batch_max_age_s, health_interval_s). "default" reports by exception: a
# steady machine sends a batch every 15 minutes and a health message every hour (at once when
# something in it changed), a moving or alerting one sooner; "live" sends both every minute,
# for simulation runs and demos.
REPORTING_PROFILES = {"default": (900.0, 3600.0), "live": (60.0, 60.0)}
DEFAULT_BATCH_MAX_BYTES = 64 * 1024
# The early budget, chosen with the cost model (docs/cost.md): a value that starts moving
# leaves every early_min_interval_s for EARLY_BURST batches, then once per EARLY_REFILL_S.
DEFAULT_EARLY_BURST = 3
DEFAULT_EARLY_REFILL_S = 720.0
# A health message whose content changed (a sensor, dropped readings, the clock) goes at once,
# but at most this often.
DEFAULT_HEALTH_EARLY_MIN_S = 900.0
CLOCK_SYNC_MODES = ("auto", "systemd", "kernel", "assume-synced")
OVERSAMPLING = (0, 1, 2, 4, 8, 16)
IIR_FILTER = (0, 2, 4, 8, 16)
MODES = ("forced", "normal")
PLACEMENTS = ("engine", "cabin", "ambient")
FAULT_KINDS = ("overheat", "freeze", "condensation", "stuck", "dropout", "spikes", "storm")


class ConfigError(ValueError):
    """The agent configuration is missing, unreadable or has wrong values (all of them listed)."""

    def __init__(
        self, message: str, *, problems: list[str] | None = None, partial: Any = None
    ) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]
        # what could be read, bad values as INVALID: for check-config's further checks only
        self.partial = partial


@dataclass(frozen=True)
class FaultConfig:
    """One injected fault on a simulated sensor, active from start_s for duration_s."""

    kind: str
    start_s: float = 0.0
    duration_s: float | None = None
    # overheat peak / freeze floor in °C, spike amplitude, ... (meaning depends on kind)
    value: float | None = None
    probability: float = 0.2


@dataclass(frozen=True)
class SensorConfig:
    """One sensor on the device: a BME280 on a bus, or a simulated one."""

    name: str
    driver: str = "simulated"
    bus: int | str = 1
    address: int = 0x76
    oversampling_temperature: int = 1
    oversampling_humidity: int = 1
    oversampling_pressure: int = 1
    iir_filter: int = 0
    mode: str = "forced"
    profile: str | None = None
    placement: str | None = None
    seed: int = 0
    faults: tuple[FaultConfig, ...] = ()
    interval_s: float | None = None


@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent needs to run on one device."""

    thing: str
    site: str
    equipment: str
    endpoint: str
    cert: Path
    key: Path
    ca: Path
    port: int = 8883
    topic_prefix: str = ""
    state_dir: Path = DEFAULT_STATE_DIR
    # One reading per 5 s per sensor: what construction machines' temperatures need, the rate
    # the cost model prices, and six days of outage in the default queue with two sensors.
    sample_interval_s: float = 5.0
    profile: str = "default"
    # A 15-minute batch at one reading per 5 s is about 17 KB: the budget lets the age decide.
    # With Basic Ingest there is no messaging charge, so a bigger message costs nothing more
    # per byte, while each extra batch costs an S3 PUT and an invocation (docs/cost.md).
    batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES
    batch_max_age_s: float = REPORTING_PROFILES["default"][0]
    health_interval_s: float = REPORTING_PROFILES["default"][1]
    # A batch leaves early when a value moved this far since the last batch (0: never).
    deadband_temperature: float = 1.0
    deadband_humidity: float = 3.0
    deadband_pressure: float = 1.0
    early_min_interval_s: float = 300.0
    early_burst: int = DEFAULT_EARLY_BURST
    early_refill_s: float = DEFAULT_EARLY_REFILL_S
    health_early_min_s: float = DEFAULT_HEALTH_EARLY_MIN_S
    queue_max_readings: int = 200_000
    rules_file: Path | None = None
    run_id: str | None = None
    clock_sync: str = "auto"
    log_level: str = "info"
    # exponential backoff with full jitter between reconnection attempts
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    sensors: tuple[SensorConfig, ...] = field(default_factory=tuple)
    source: str = "<code>"

    def sensor_interval(self, sensor: SensorConfig) -> float:
        return sensor.interval_s if sensor.interval_s is not None else self.sample_interval_s


class _Invalid:
    """Stands for a value that failed its check, so the rest can still be checked."""

    def __repr__(self) -> str:
        return "<invalid>"


INVALID: Any = _Invalid()


class _Problems:
    """Every problem found in one configuration, and where each value came from."""

    def __init__(self, source: str, env_names: Mapping[str, str]) -> None:
        self.source = source
        self.env_names = env_names  # top-level key -> environment variable that set it
        self.messages: list[str] = []

    def bad_value(self, where: str, key: str, expected: str, got: object = None) -> None:
        variable = None if where else self.env_names.get(key)
        if variable is not None:
            self.messages.append(
                f"environment {variable}={got!r} (overrides key {key} of {self.source}): "
                f"expected {expected}"
            )
            return
        shown = f", got {got!r}" if got is not None else ""
        self.messages.append(f"{self.source}: key {where}{key}: expected {expected}{shown}")

    def unknown_key(self, where: str, key: str, hint: str) -> None:
        self.messages.append(f"{self.source}: key {where}{key}: not a configuration key ({hint})")


class _Reader:
    """Typed access to one TOML table; each bad value is recorded and read as INVALID."""

    def __init__(self, problems: _Problems, table: Mapping[str, Any], where: str = "") -> None:
        self.problems = problems
        self.table = table
        self.where = where
        self.used: set[str] = set()

    def fail(self, key: str, expected: str, got: object = None) -> Any:
        self.problems.bad_value(self.where, key, expected, got)
        return INVALID

    def raw(self, key: str, default: Any = ..., expected: str = "a value") -> Any:
        self.used.add(key)
        if key in self.table:
            return self.table[key]
        if default is ...:
            return self.fail(key, f"{expected} (the key is required)")
        return default

    def _given(self, value: Any, default: Any) -> bool:
        """False when the value is the default (or already failed): nothing to check."""
        return value is not INVALID and not (value is default and default is not ...)

    def string(self, key: str, default: Any = ..., choices: tuple[str, ...] = ()) -> Any:
        expected = f"one of {', '.join(choices)}" if choices else "a string"
        value = self.raw(key, default, expected)
        if value is None or not self._given(value, default):
            return value
        if not isinstance(value, str) or (choices and value not in choices):
            return self.fail(key, expected, value)
        return value

    def name(self, key: str, default: Any = ...) -> Any:
        value = self.raw(key, default, "a name")
        if not self._given(value, default):
            return value
        if not is_name(value):
            return self.fail(
                key, "1-64 lowercase letters, digits and dashes, no dash at either end", value
            )
        return value

    def integer(self, key: str, default: Any = ..., low: int = 0, high: int | None = None) -> Any:
        value = self.raw(key, default, "an integer")
        if not self._given(value, default):
            return value
        if isinstance(value, str):
            try:
                value = int(value, 0)
            except ValueError:
                return self.fail(key, "an integer", value)
        if isinstance(value, bool) or not isinstance(value, int):
            return self.fail(key, "an integer", value)
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            return self.fail(key, f"an integer {bound}", value)
        return value

    def number(self, key: str, default: Any = ..., low: float = 0.0, high: float = 1e9) -> Any:
        value = self.raw(key, default, "a number")
        if not self._given(value, default):
            return value
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return self.fail(key, "a number", value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self.fail(key, "a number", value)
        if not low <= float(value) <= high:
            return self.fail(key, f"a number between {low:g} and {high:g}", value)
        return float(value)

    def path(self, key: str, base: Path, default: Any = ...) -> Any:
        value = self.raw(key, default, "a file path")
        if value is None or not self._given(value, default):
            return value
        if not isinstance(value, str) or not value:
            return self.fail(key, "a file path", value)
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else base / candidate

    def choice_int(self, key: str, default: int, choices: tuple[int, ...]) -> int:
        value = self.raw(key, default)
        if isinstance(value, bool) or value not in choices:
            return self.fail(key, f"one of {', '.join(map(str, choices))}", value)
        return int(value)

    def check_unknown(self) -> None:
        """Keys nobody asked for: a typo, named with the closest known key."""
        for key in sorted(set(self.table) - self.used):
            close = difflib.get_close_matches(str(key), sorted(self.used), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "see agent.example.toml for the keys"
            self.problems.unknown_key(self.where, key, hint)


def load_config(path: Path = DEFAULT_PATH, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Read and check the agent configuration; environment CHANTIER_AGENT_<KEY> wins.

    Raises ConfigError listing every problem found (one per line in its message)."""
    return config_from_mapping(read_toml(path), source=str(path), base=Path(path).parent, env=env)


def read_toml(path: Path) -> dict[str, Any]:
    """The configuration file as a dict; ConfigError when it is missing, unreadable or not TOML."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: the configuration file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def env_overrides(env: Mapping[str, str]) -> dict[str, str]:
    """Keys set from the environment: key -> variable name."""
    return {key: ENV_PREFIX + key.upper() for key in ENV_KEYS if ENV_PREFIX + key.upper() in env}


def unknown_env(env: Mapping[str, str]) -> list[str]:
    """CHANTIER_AGENT_* variables that set nothing, each with the closest known one."""
    known = [ENV_PREFIX + key.upper() for key in ENV_KEYS]
    found = []
    for name in sorted(v for v in env if v.startswith(ENV_PREFIX) and v not in known):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        found.append(
            f"{name} is set but sets nothing" + (f" (did you mean {close[0]}?)" if close else "")
        )
    return found


def config_from_mapping(
    data: Mapping[str, Any],
    *,
    source: str = "<mapping>",
    base: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> AgentConfig:
    """Check an already parsed configuration (the TOML document as a dict)."""
    config, problems = check_mapping(data, source=source, base=base, env=env)
    if problems:
        raise ConfigError("\n".join(problems), problems=problems, partial=config)
    return config


def check_mapping(
    data: Mapping[str, Any],
    *,
    source: str = "<mapping>",
    base: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[AgentConfig, list[str]]:
    """The configuration and every problem in it; values with a problem are INVALID."""
    env = os.environ if env is None else env
    merged = dict(data)
    env_names = env_overrides(env)
    for key, variable in env_names.items():
        merged[key] = env[variable]
    problems = _Problems(source, env_names)
    base = base or Path.cwd()
    r = _Reader(problems, merged)
    equipment = r.string("equipment", choices=EQUIPMENT)
    run_id = r.raw("run_id", None)
    if run_id is not None and (not isinstance(run_id, str) or not run_id):
        run_id = r.fail("run_id", "a non-empty string of letters, digits, _ and -", run_id)
    batch_max_bytes = r.integer(
        "batch_max_bytes", DEFAULT_BATCH_MAX_BYTES, low=512, high=MAX_MESSAGE_BYTES
    )
    profile = r.string("profile", "default", choices=tuple(REPORTING_PROFILES))
    max_age_default, health_default = REPORTING_PROFILES.get(profile, REPORTING_PROFILES["default"])
    sensors_raw = r.raw("sensors", [])
    if not isinstance(sensors_raw, list) or not sensors_raw:
        sensors_raw = []
        r.fail("sensors", "at least one [[sensors]] table", None)
    config = AgentConfig(
        thing=r.name("thing"),
        site=r.name("site"),
        equipment=equipment,
        endpoint=r.string("endpoint"),
        port=r.integer("port", 8883, low=1, high=65535),
        cert=r.path("cert", base),
        key=r.path("key", base),
        ca=r.path("ca", base),
        topic_prefix=r.string("topic_prefix", ""),
        state_dir=r.path("state_dir", base, DEFAULT_STATE_DIR),
        sample_interval_s=r.number("sample_interval_s", 5.0, low=0.001, high=3600),
        profile=profile,
        batch_max_bytes=batch_max_bytes,
        batch_max_age_s=r.number("batch_max_age_s", max_age_default, low=0.0, high=86400),
        health_interval_s=r.number("health_interval_s", health_default, low=0.1, high=86400),
        deadband_temperature=r.number("deadband_temperature", 1.0, low=0.0, high=1000),
        deadband_humidity=r.number("deadband_humidity", 3.0, low=0.0, high=100),
        deadband_pressure=r.number("deadband_pressure", 1.0, low=0.0, high=1000),
        early_min_interval_s=r.number("early_min_interval_s", 300.0, low=0.0, high=86400),
        early_burst=r.integer("early_burst", DEFAULT_EARLY_BURST, low=0, high=100),
        early_refill_s=r.number("early_refill_s", DEFAULT_EARLY_REFILL_S, low=0.0, high=86400),
        health_early_min_s=r.number(
            "health_early_min_s", DEFAULT_HEALTH_EARLY_MIN_S, low=0.0, high=86400
        ),
        queue_max_readings=r.integer("queue_max_readings", 200_000, low=10),
        rules_file=r.path("rules_file", base, None),
        run_id=run_id,
        clock_sync=r.string("clock_sync", "auto", choices=CLOCK_SYNC_MODES),
        log_level=r.string("log_level", "info", choices=("debug", "info", "warning", "error")),
        reconnect_min_s=r.number("reconnect_min_s", 1.0, low=0.05, high=600),
        reconnect_max_s=r.number("reconnect_max_s", 60.0, low=0.1, high=3600),
        sensors=tuple(
            s
            for i, item in enumerate(sensors_raw)
            if (s := _sensor(problems, i, item, equipment)) is not None
        ),
        source=source,
    )
    r.check_unknown()
    _check_sensor_set(r, config.sensors)
    return config, problems.messages


def _check_sensor_set(r: _Reader, sensors: tuple[SensorConfig, ...]) -> None:
    """Names used once; two BME280s never at the same address of the same bus."""
    names: set[str] = set()
    places: dict[tuple[object, int], str] = {}
    for i, sensor in enumerate(sensors):
        if sensor.name is not INVALID and sensor.name in names:
            r.fail(f"sensors[{i}].name", "a name used by no other sensor", sensor.name)
        names.add(sensor.name)
        if sensor.driver != "bme280" or INVALID in (sensor.bus, sensor.address):
            continue
        place = (sensor.bus, sensor.address)
        if place in places:
            r.fail(
                f"sensors[{i}].address",
                f"an address no other BME280 uses on bus {sensor.bus} (sensor {places[place]} "
                "is there; wire SDO to 3.3 V for 0x77)",
                sensor.address,
            )
        places.setdefault(place, sensor.name)


def _sensor(problems: _Problems, index: int, item: object, equipment: str) -> SensorConfig | None:
    where = f"sensors[{index}]."
    if not isinstance(item, Mapping):
        problems.bad_value("", f"sensors[{index}]", "a table", item)
        return None
    r = _Reader(problems, item, where)
    driver = r.string("driver", "simulated", choices=DRIVERS)
    bus = r.raw("bus", 1)
    if driver == "bme280" and not (
        bus == "emulated" or (isinstance(bus, int) and not isinstance(bus, bool) and bus >= 0)
    ):
        bus = r.fail("bus", 'an I2C bus number (e.g. 1 for /dev/i2c-1) or "emulated"', bus)
    address = r.integer("address", 0x76)
    if address is not INVALID and address not in (0x76, 0x77):
        address = r.fail("address", "0x76 or 0x77 (118 or 119)", address)
    faults_raw = r.raw("faults", [])
    if not isinstance(faults_raw, list):
        faults_raw = []
        r.fail("faults", "a list of {kind=..., start_s=..., duration_s=...} tables", None)
    profile = equipment if equipment is not INVALID else None
    sensor = SensorConfig(
        name=r.name("name"),
        driver=driver,
        bus=bus,
        address=address,
        oversampling_temperature=r.choice_int("oversampling_temperature", 1, OVERSAMPLING),
        oversampling_humidity=r.choice_int("oversampling_humidity", 1, OVERSAMPLING),
        oversampling_pressure=r.choice_int("oversampling_pressure", 1, OVERSAMPLING),
        iir_filter=r.choice_int("iir_filter", 0, IIR_FILTER),
        mode=r.string("mode", "forced", choices=MODES),
        profile=r.string("profile", profile, choices=EQUIPMENT),
        placement=r.string("placement", None, choices=PLACEMENTS),
        seed=r.integer("seed", 0, low=-(2**63)),
        faults=tuple(
            f for j, item in enumerate(faults_raw) if (f := _fault(problems, index, j, item))
        ),
        interval_s=r.number("interval_s", None, low=0.001, high=3600),
    )
    r.check_unknown()
    return sensor


def _fault(problems: _Problems, index: int, j: int, item: object) -> FaultConfig | None:
    where = f"sensors[{index}].faults[{j}]."
    if not isinstance(item, Mapping):
        problems.bad_value("", where[:-1], "a table", item)
        return None
    r = _Reader(problems, item, where)
    fault = FaultConfig(
        kind=r.string("kind", choices=FAULT_KINDS),
        start_s=r.number("start_s", 0.0, low=0.0),
        duration_s=r.number("duration_s", None, low=0.0),
        value=r.number("value", None, low=-1e6, high=1e6),
        probability=r.number("probability", 0.2, low=0.0, high=1.0),
    )
    r.check_unknown()
    return fault
