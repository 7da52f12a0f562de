"""The device bundle: certificate, key, root CA, endpoint, agent.toml, manifest and archive."""

from __future__ import annotations

import io
import json
import secrets
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chantier.alerts.rules import load_rules
from chantier.files import make_private_dir, write_private, write_public
from chantier.names import is_name
from provisioning.errors import InvalidDeviceError

MANIFEST = "bundle.json"
ROOT_CA = "root-ca.pem"
ENDPOINT = "endpoint.txt"
AGENT_TOML = "agent.toml"
# SDO to ground, SDO to 3.3 V: the two BME280s one I2C bus can hold.
BME280_ADDRESSES = (0x76, 0x77)


class BundleExistsError(FileExistsError):
    """A bundle for this thing is already there and --force was not given."""


@dataclass(frozen=True)
class AgentSettings:
    """The parts of agent.toml that depend on where the agent will run."""

    driver: str = "bme280"  # "simulated" for machines of the local stack
    # Empty: the sensors the equipment's alert rules watch (engine for an excavator...).
    sensors: Sequence[str] = ()
    state_dir: str = "/var/lib/chantier"
    topic_prefix: str = ""
    key_path: str | None = None  # where the key is on the device when it made its own CSR

    def __post_init__(self) -> None:
        for name in self.sensors:
            if not is_name(name):
                raise InvalidDeviceError(
                    f"sensor name {name!r} is not valid: expected lowercase letters, digits and "
                    "dashes, such as engine or cabin"
                )
        if len(set(self.sensors)) != len(self.sensors):
            raise InvalidDeviceError(f"sensor names repeat: {', '.join(self.sensors)}")
        self._check_count(tuple(self.sensors))

    def _check_count(self, names: tuple[str, ...]) -> None:
        if self.driver == "bme280" and len(names) > len(BME280_ADDRESSES):
            raise InvalidDeviceError(
                f"{len(names)} sensors ({', '.join(names)}) but one I2C bus holds at most two "
                "BME280s (addresses 0x76 and 0x77): name two sensors with --sensor"
            )

    def sensor_names(self, equipment: str) -> tuple[str, ...]:
        """The sensors agent.toml will list for a machine of this equipment."""
        names = tuple(self.sensors) or load_rules().sensors_for(equipment)
        self._check_count(names)
        return names


def unwatched_rule_warnings(equipment: str, sensors: Sequence[str]) -> list[str]:
    """One line per alert rule of the equipment that no listed sensor lets fire."""
    rules = load_rules()
    return [
        f"alert rule {rule.id} watches sensor {' or '.join(rule.sensors)} but the bundle "
        f"has {', '.join(sensors)}: it cannot fire (default sensors for a {equipment}: "
        f"{', '.join(rules.sensors_for(equipment))})"
        for rule in rules.unwatched(equipment, sensors)
    ]


@dataclass(frozen=True)
class BundleInfo:
    thing: str
    site: str
    equipment: str
    hourly_cost: str | None
    mode: str
    certificate_id: str
    certificate_arn: str
    serial: int
    not_after: datetime
    endpoint: str
    port: int
    key_on_device: bool
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        return {
            "thing": self.thing,
            "site": self.site,
            "equipment": self.equipment,
            "hourlyCost": self.hourly_cost,
            "mode": self.mode,
            "certificateId": self.certificate_id,
            "certificateArn": self.certificate_arn,
            "serial": str(self.serial),
            "notAfter": self.not_after.isoformat(),
            "endpoint": self.endpoint,
            "port": self.port,
            "keyOnDevice": self.key_on_device,
            "createdAt": self.created_at.isoformat(),
        }


def _toml_string(value: str) -> str:
    # JSON string escapes are a subset of TOML basic-string escapes.
    return json.dumps(value, ensure_ascii=False)


def render_agent_toml(info: BundleInfo, settings: AgentSettings) -> str:
    """agent.toml with paths relative to its own folder, as device/config.py resolves them."""
    key = settings.key_path or f"{info.thing}.key"
    lines = [
        f"# Written by `chantier provision device` for {info.thing}. Copy this folder to the",
        "# device (e.g. /etc/chantier/); relative paths are read from this file's folder.",
        f"thing = {_toml_string(info.thing)}",
        f"site = {_toml_string(info.site)}",
        f"equipment = {_toml_string(info.equipment)}",
        f"endpoint = {_toml_string(info.endpoint)}",
        f"port = {info.port}",
        f"cert = {_toml_string(info.thing + '.pem')}",
        f"key = {_toml_string(key)}",
        f"ca = {_toml_string(ROOT_CA)}",
        f"topic_prefix = {_toml_string(settings.topic_prefix)}",
        f"state_dir = {_toml_string(settings.state_dir)}",
    ]
    for index, sensor in enumerate(settings.sensor_names(info.equipment)):
        lines += ["", "[[sensors]]", f"name = {_toml_string(sensor)}"]
        lines.append(f"driver = {_toml_string(settings.driver)}")
        if settings.driver == "bme280":
            lines += ["bus = 1", f"address = 0x{BME280_ADDRESSES[index]:02x}"]
    return "\n".join(lines) + "\n"


def new_staging_dir(out_root: Path, thing: str) -> Path:
    """A private folder next to the final bundle, so publishing it is one rename."""
    make_private_dir(out_root)
    staging = out_root / f".staging-{thing}-{secrets.token_hex(4)}"
    staging.mkdir(mode=0o700)
    return staging


def fill_bundle(staging: Path, info: BundleInfo, root_ca: bytes, settings: AgentSettings) -> None:
    """Everything but the certificate and key, which the issuer already wrote there."""
    write_public(staging / ROOT_CA, root_ca)
    write_public(staging / ENDPOINT, f"{info.endpoint}:{info.port}\n".encode())
    write_public(staging / AGENT_TOML, render_agent_toml(info, settings).encode())
    manifest = json.dumps(info.to_json(), indent=2) + "\n"
    write_public(staging / MANIFEST, manifest.encode())


def check_bundle_free(out_root: Path, thing: str, force: bool) -> None:
    final = out_root / thing
    if final.exists() and not force:
        raise BundleExistsError(
            f"{final} already exists: pass --force to replace it, or `rotate {thing}` to "
            "renew its certificate"
        )


def publish(staging: Path, final: Path) -> Path | None:
    """Move the staged bundle into place; the previous bundle, if any, is kept aside."""
    backup = None
    if final.exists():
        backup = final.with_name(f".previous-{final.name}-{secrets.token_hex(4)}")
        final.rename(backup)
    staging.rename(final)
    return backup


def unpublish(final: Path, backup: Path | None) -> None:
    """Undo publish(): remove the new bundle and restore the previous one."""
    shutil.rmtree(final, ignore_errors=True)
    if backup is not None and backup.exists():
        backup.rename(final)


def read_manifest(bundle_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((bundle_dir / MANIFEST).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_archive(bundle_dir: Path, archive: Path) -> Path:
    """tar.gz of the bundle (0600: it may hold the private key), members under <thing>/."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(bundle_dir, arcname=bundle_dir.name, filter=_normalise_owner)
    return write_private(archive, buffer.getvalue())


def _normalise_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # The admin's user and group mean nothing on the Pi.
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def repoint_bundle(bundle_dir: Path, host: str, port: int) -> bool:
    """Point a bundle at another broker address (a restarted local stack); True if it moved.

    Only the `endpoint` and `port` lines of agent.toml change, so what an admin edited there
    (sensors, state folder) stays as it is.
    """
    manifest = read_manifest(bundle_dir)
    if manifest is None or (manifest.get("endpoint"), manifest.get("port")) == (host, port):
        return False
    toml_path = bundle_dir / AGENT_TOML
    lines = toml_path.read_text().splitlines()
    for index, line in enumerate(lines):
        if line.startswith("["):
            break  # only the top-level keys; tables below may have their own
        if line.startswith("endpoint ="):
            lines[index] = f"endpoint = {_toml_string(host)}"
        elif line.startswith("port ="):
            lines[index] = f"port = {port}"
    write_public(toml_path, ("\n".join(lines) + "\n").encode())
    write_public(bundle_dir / ENDPOINT, f"{host}:{port}\n".encode())
    manifest.update(endpoint=host, port=port)
    write_public(bundle_dir / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return True
