"""What `chantier agent check-config` checks beyond the keys, without the network.

Files (certificate, key, root CA: present, readable, parsed, key matching the certificate,
key not readable by others, validity dates), the state folder (writable, free space), the rules
file and the sensors it expects, the I2C buses and chips, the endpoint and the clock. Each
problem is a Finding; nothing here raises for a problem it can describe.
"""

from __future__ import annotations

import os
import shutil
import ssl
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from device.config import INVALID, AgentConfig, unknown_env

ERROR, WARNING, NOTE = "error", "warning", "note"
CERT_RENEW_WARNING = timedelta(days=30)
# Below this, a week offline (two sensors at one reading per second) may not fit on the card.
LOW_DISK_BYTES = 64 * 1024 * 1024
PI_MODEL_FILE = Path("/proc/device-tree/model")
REG_CHIP_ID, BME280_CHIP_ID, BMP280_CHIP_ID = 0xD0, 0x60, 0x58
ENDPOINT_FILE = "endpoint.txt"


@dataclass(frozen=True)
class Finding:
    """One result: an error stops the agent from starting, a warning or a note does not."""

    level: str
    message: str


@dataclass(frozen=True)
class Host:
    """What the checks look at on this machine; tests point it elsewhere."""

    dev: Path = Path("/dev")
    pi_model_file: Path = PI_MODEL_FILE
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    clock_synced: Callable[[str], bool] | None = None
    read_chip_id: Callable[[int, int], int] | None = None

    def on_pi(self) -> bool:
        try:
            return "Raspberry Pi" in self.pi_model_file.read_text(errors="replace")
        except OSError:
            return False


def preflight(
    config: AgentConfig, env: Mapping[str, str] | None = None, host: Host | None = None
) -> list[Finding]:
    """Every finding about a configuration whose keys were read (bad ones are INVALID)."""
    host = host or Host()
    env = os.environ if env is None else env
    findings = [Finding(WARNING, line) for line in unknown_env(env)]
    for check in (_pem_files, _state_dir, _sensors_and_rules, _i2c, _endpoint, _clock):
        findings.extend(check(config, host))
    return findings


def _usable(*values: Any) -> bool:
    return all(v is not INVALID and v is not None for v in values)


# -- certificate, key, CA ---------------------------------------------------------------------


def _read(path: Path, what: str) -> tuple[bytes | None, Finding | None]:
    try:
        return path.read_bytes(), None
    except FileNotFoundError:
        return None, Finding(ERROR, f"{what} {path} does not exist")
    except PermissionError:
        user = _user()
        return None, Finding(
            ERROR,
            f"{what} {path} cannot be read by user {user}: check its owner and mode "
            f"(run this check as the agent's user: sudo -u chantier chantier agent check-config)",
        )
    except IsADirectoryError:
        return None, Finding(ERROR, f"{what} {path} is a folder: expected a PEM file")
    except OSError as exc:
        return None, Finding(ERROR, f"{what} {path} cannot be read: {exc.strerror}")


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


def pem_findings(config: AgentConfig, host: Host | None = None) -> list[Finding]:
    """Findings about the certificate, key and root CA alone."""
    return list(_pem_files(config, host or Host()))


def _pem_files(config: AgentConfig, host: Host) -> Iterator[Finding]:
    # The standard library's ssl (OpenSSL) reads the files and matches key and certificate in
    # every install; dates and name need cryptography, which only some installs carry.
    cert_ok = key_ok = False
    if _usable(config.cert):
        data, problem = _read(config.cert, "certificate (key cert)")
        if problem:
            yield problem
        elif data is not None:
            cert_ok = _holds_certificates(config.cert)
            if not cert_ok:
                yield Finding(
                    ERROR, f"certificate {config.cert} is not a PEM certificate (key cert)"
                )
            else:
                yield from _certificate_details(data, config, host)
    if _usable(config.key):
        data, problem = _read(config.key, "private key (key key)")
        if problem:
            yield problem
        elif data is not None:
            yield from _key_mode(config.key)
            if b"PRIVATE KEY-----" not in data:
                yield Finding(ERROR, f"private key {config.key} is not a PEM private key")
            elif b"ENCRYPTED" in data:
                yield Finding(
                    ERROR,
                    f"private key {config.key} is encrypted: the agent needs it unencrypted "
                    "(mode 0600 protects it)",
                )
            else:
                key_ok = True
    if cert_ok and key_ok:
        yield from _key_matches(config)
    if _usable(config.ca):
        yield from _root_ca(config.ca, host)


def _holds_certificates(path: Path) -> bool:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
    except (ssl.SSLError, ValueError):
        return False
    return True


def _key_matches(config: AgentConfig) -> Iterator[Finding]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        # an empty password: an encrypted key fails instead of prompting on the terminal
        context.load_cert_chain(str(config.cert), str(config.key), password=lambda: b"")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            yield Finding(
                ERROR,
                f"private key {config.key} does not match certificate {config.cert}: they come "
                "from different bundles or a key was made again after the CSR; install the "
                "certificate issued for this key (or make a new CSR: chantier agent keygen)",
            )
        else:
            yield Finding(
                ERROR,
                f"certificate {config.cert} and private key {config.key} cannot be used "
                f"together ({exc.reason or exc})",
            )


def _certificate_details(data: bytes, config: AgentConfig, host: Host) -> Iterator[Finding]:
    try:
        from cryptography import x509
    except ImportError:
        yield Finding(
            NOTE,
            f"the dates and name of certificate {config.cert} are not checked: this install "
            "lacks the cryptography library (pip install 'chantier-connecte[keygen]')",
        )
        return
    try:
        certificate = x509.load_pem_x509_certificate(data)
    except ValueError:
        return  # OpenSSL read it; what it holds first is not for this check to judge
    yield from _certificate_dates(certificate, config, host)
    yield from _certificate_subject(certificate, config)


def _certificate_dates(certificate: Any, config: AgentConfig, host: Host) -> Iterator[Finding]:
    now = host.now()
    starts, ends = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if now < starts:
        yield Finding(
            ERROR,
            f"certificate {config.cert} is valid only from {starts:%Y-%m-%d %H:%M} UTC and this "
            f"machine's clock says {now:%Y-%m-%d %H:%M} UTC: set or synchronise the clock "
            "(timedatectl), the broker would refuse it too",
        )
    elif now > ends:
        yield Finding(
            ERROR,
            f"certificate {config.cert} expired on {ends:%Y-%m-%d}: ask the fleet admin for a "
            f"new bundle (chantier provision rotate {config.thing})",
        )
    elif ends - now < CERT_RENEW_WARNING:
        yield Finding(
            WARNING,
            f"certificate {config.cert} expires on {ends:%Y-%m-%d} ({(ends - now).days} days): "
            f"ask the fleet admin to rotate it (chantier provision rotate {config.thing})",
        )


def _certificate_subject(certificate: Any, config: AgentConfig) -> Iterator[Finding]:
    from cryptography.x509.oid import NameOID

    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[0].value) if names else None
    if _usable(config.thing) and common_name != config.thing:
        yield Finding(
            WARNING,
            f"certificate {config.cert} is for CN={common_name}, but thing = {config.thing}: "
            "the broker accepts only the thing the certificate was issued for",
        )


def _key_mode(path: Path) -> Iterator[Finding]:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        yield Finding(
            WARNING,
            f"private key {path} is readable by {'others' if mode & 0o007 else 'its group'} "
            f"(mode {mode:04o}): make it the agent user's alone: "
            f"sudo chown chantier:chantier {path} && sudo chmod 600 {path}",
        )


def _root_ca(path: Path, host: Host) -> Iterator[Finding]:
    _, problem = _read(path, "root CA (key ca)")
    if problem:
        yield problem
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=str(path))
    except (ssl.SSLError, ValueError):
        yield Finding(ERROR, f"root CA {path} holds no PEM certificate (key ca)")
        return
    authorities = context.get_ca_certs()
    now = host.now().timestamp()
    if not authorities:
        yield Finding(
            ERROR, f"root CA {path} holds no CA certificate (key ca): expected the bundle's CA"
        )
    elif all(ssl.cert_time_to_seconds(str(ca["notAfter"])) < now for ca in authorities):
        yield Finding(ERROR, f"root CA {path} has expired: install the CA of the bundle")


# -- state folder -----------------------------------------------------------------------------


def _state_dir(config: AgentConfig, host: Host) -> Iterator[Finding]:
    if not _usable(config.state_dir):
        return
    folder = Path(config.state_dir)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    hint = (
        "under systemd only /var/lib/chantier (StateDirectory=) is writable; another folder "
        "needs ReadWritePaths= in a drop-in"
    )
    if existing != folder:
        if not os.access(existing, os.W_OK | os.X_OK):
            yield Finding(
                ERROR,
                f"state_dir {folder} does not exist and user {_user()} cannot create it in "
                f"{existing}: {hint}",
            )
            return
        yield Finding(NOTE, f"state_dir {folder} does not exist yet: the agent will create it")
    elif not folder.is_dir():
        yield Finding(ERROR, f"state_dir {folder} is not a folder")
        return
    else:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            yield Finding(
                ERROR,
                f"state_dir {folder} is not writable by user {_user()} ({exc.strerror}): {hint}",
            )
            return
    free = shutil.disk_usage(existing).free
    if free < LOW_DISK_BYTES:
        yield Finding(
            WARNING,
            f"only {free // (1024 * 1024)} MB free for state_dir {folder}: readings queued "
            "during an outage may not fit; free space on the card",
        )


# -- sensors and rules ------------------------------------------------------------------------


def _sensors_and_rules(config: AgentConfig, host: Host) -> Iterator[Finding]:
    from chantier.alerts.rules import RulesError, load_rules

    if config.rules_file is INVALID:
        return
    try:
        rules = load_rules(config.rules_file)
    except RulesError as exc:
        yield Finding(ERROR, f"rules_file: {exc}")
        return
    names = [s.name for s in config.sensors if _usable(s.name)]
    if not _usable(config.equipment) or not names:
        return
    for rule in rules.unwatched(config.equipment, names):
        yield Finding(
            WARNING,
            f"alert rule {rule.id} of a {config.equipment} watches sensor "
            f"{' or '.join(rule.sensors)}, and no [[sensors]] has that name: it can never fire "
            f"(sensors here: {', '.join(names)}; for a {config.equipment}: "
            f"{', '.join(rules.sensors_for(config.equipment))})",
        )


def _i2c(config: AgentConfig, host: Host) -> Iterator[Finding]:
    on_pi: bool | None = None
    for sensor in config.sensors:
        if sensor.driver != "bme280" or not _usable(sensor.bus, sensor.address, sensor.name):
            continue
        if sensor.bus == "emulated":
            yield Finding(NOTE, f"sensor {sensor.name} is on the emulated bus (bench and tests)")
            continue
        device = host.dev / f"i2c-{sensor.bus}"
        if not device.exists():
            on_pi = host.on_pi() if on_pi is None else on_pi
            if on_pi:
                yield Finding(
                    ERROR,
                    f"sensor {sensor.name}: {device} does not exist: enable I2C "
                    "(sudo raspi-config nonint do_i2c 0) and reboot, or fix bus",
                )
            else:
                yield Finding(
                    NOTE,
                    f"sensor {sensor.name}: {device} does not exist and this is not a Raspberry "
                    "Pi, so the bus and the chip are checked only when this runs on the Pi",
                )
            continue
        if not os.access(device, os.R_OK | os.W_OK):
            yield Finding(
                ERROR,
                f"sensor {sensor.name}: user {_user()} has no access to {device}: add it to "
                "group i2c (sudo usermod -aG i2c chantier)",
            )
            continue
        yield from _chip(sensor.name, int(sensor.bus), sensor.address, device, host)


def _chip(name: str, bus: int, address: int, device: Path, host: Host) -> Iterator[Finding]:
    read = host.read_chip_id or _read_chip_id
    try:
        chip_id = read(bus, address)
    except OSError as exc:
        yield Finding(
            WARNING,
            f"sensor {name}: nothing answers at 0x{address:02x} on {device} ({exc.strerror or exc})"
            f": check wiring, 3.3 V power and the address (i2cdetect -y {bus}); the agent "
            "starts anyway and picks the sensor up when it answers",
        )
        return
    if chip_id == BMP280_CHIP_ID:
        yield Finding(
            WARNING,
            f"sensor {name}: the chip at 0x{address:02x} is a BMP280 (chip id 0x58), not a "
            "BME280: no humidity; replace the breakout",
        )
    elif chip_id != BME280_CHIP_ID:
        yield Finding(
            WARNING,
            f"sensor {name}: the chip at 0x{address:02x} answers chip id 0x{chip_id:02x}, "
            "expected 0x60 (BME280)",
        )


def _read_chip_id(bus: int, address: int) -> int:
    from smbus2 import SMBus

    with SMBus(bus) as smbus:
        return int(smbus.read_byte_data(address, REG_CHIP_ID))


# -- endpoint and clock -----------------------------------------------------------------------


def _endpoint(config: AgentConfig, host: Host) -> Iterator[Finding]:
    if not _usable(config.endpoint, config.port):
        return
    if "xxxx" in config.endpoint:
        yield Finding(
            ERROR,
            f"endpoint {config.endpoint} is the example's placeholder: use the host in the "
            f"bundle's {ENDPOINT_FILE}",
        )
        return
    bundle_file = Path(config.source).parent / ENDPOINT_FILE
    try:
        written = bundle_file.read_text().strip()
    except OSError:
        return
    if written and written != f"{config.endpoint}:{config.port}":
        yield Finding(
            WARNING,
            f"the agent connects to {config.endpoint}:{config.port} but {bundle_file} says "
            f"{written}: check endpoint and port",
        )


def _clock(config: AgentConfig, host: Host) -> Iterator[Finding]:
    if not _usable(config.clock_sync):
        return
    synced = host.clock_synced or _clock_synced
    if not synced(config.clock_sync):
        yield Finding(
            NOTE,
            f"the clock is not synchronised (clock_sync = {config.clock_sync}): the agent will "
            "keep readings on disk and publish them once it is; check timedatectl",
        )


def _clock_synced(mode: str) -> bool:
    from device.clock import probe_for

    return probe_for(mode)()
