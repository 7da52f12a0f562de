"""The layout shows the architecture: which part may import which, and a core free of adapters.

Every `import` in a part's source, lazy ones inside functions included, is read with `ast`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("chantier", "device", "provisioning", "cloud", "cloud.local", "commands")
# Arrows run one way: commands use everything, the local stack stands on the cloud and on
# provisioning, and every part stands on the contracts.
ALLOWED: dict[str, set[str]] = {
    "chantier": set(),
    "device": {"chantier"},
    "provisioning": {"chantier"},
    "cloud": {"chantier"},
    "cloud.local": {"chantier", "cloud", "provisioning"},
    "commands": {"chantier", "device", "provisioning", "cloud", "cloud.local"},
}
# The core: plain Python, no AWS SDK and no MQTT client (adapters live beside it).
CORE = (
    "chantier",
    "device/agent.py",
    "device/batcher.py",
    "device/planning.py",
    "device/queue.py",
    "device/sampling.py",
    "device/sending.py",
    "device/transport.py",
    "device/urgency.py",
    "device/config.py",
    "cloud/alerts/engine.py",
    "cloud/alerts/lifecycle.py",
    "cloud/alerts/records.py",
    "cloud/alerts/store.py",
    "cloud/ingest/validation.py",
    "cloud/ingest/service.py",
)
ADAPTER_LIBRARIES = {"boto3", "botocore", "awscrt", "awsiot"}


def part_of(module: str) -> str | None:
    """The part a dotted module name belongs to (the most specific one)."""
    for part in sorted(PARTS, key=len, reverse=True):
        if module == part or module.startswith(part + "."):
            return part
    return None


def imported_modules(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            # `from cloud import local` names a part as well
            for alias in node.names:
                yield f"{node.module}.{alias.name}"


def sources(root: Path, relative: str) -> list[Path]:
    target = root / relative
    return [target] if target.is_file() else sorted(target.rglob("*.py"))


def arrows() -> set[tuple[str, str, str]]:
    """(importing part, imported part, file) for every import that crosses parts."""
    found = set()
    for part in ("chantier", "device", "provisioning", "cloud", "commands"):
        for path in sources(ROOT, part):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            source = part_of(module)
            assert source is not None
            for name in imported_modules(path):
                target = part_of(name)
                if target is not None and target != source:
                    found.add((source, target, str(path.relative_to(ROOT))))
    return found


def test_every_arrow_between_parts_points_down() -> None:
    upward = sorted(
        f"{file}: {source} imports {target}"
        for source, target, file in arrows()
        if target not in ALLOWED[source]
    )
    assert upward == []


def test_the_arrows_checked_are_real() -> None:
    # The check above only means something if it sees the imports that are allowed.
    seen = {(source, target) for source, target, _ in arrows()}
    assert {("device", "chantier"), ("cloud.local", "cloud"), ("commands", "device")} <= seen


@pytest.mark.parametrize("relative", CORE)
def test_core_imports_no_aws_sdk_and_no_mqtt_client(relative: str) -> None:
    paths = sources(ROOT, relative)
    assert paths, f"{relative} not found: update CORE"
    for path in paths:
        roots = {name.split(".")[0] for name in imported_modules(path)}
        assert roots.isdisjoint(ADAPTER_LIBRARIES), f"{path.relative_to(ROOT)} imports {roots}"


def test_lambda_entry_points_are_wired_by_the_bootstrap_not_by_each_other() -> None:
    handlers = sources(ROOT, "cloud/handlers")
    assert len(handlers) >= 5
    for path in handlers:
        imported = set(imported_modules(path))
        others = {name for name in imported if name.startswith("cloud.handlers")}
        assert others == set(), f"{path.relative_to(ROOT)} imports {others}"
        if path.name != "__init__.py":
            assert "cloud.bootstrap" in imported, f"{path.relative_to(ROOT)} wires itself"


# The libraries each install provides (pyproject.toml): a part may import only those of the
# install it ships in, so the agent install needs no cloud library and the local stack no
# development tool. Standard library modules are not listed.
AGENT_LIBRARIES = {"awscrt", "awsiot", "smbus2", "adafruit_bme280", "sdnotify", "cryptography"}
CLOUD_LIBRARIES = {"boto3", "botocore", "aws_lambda_powertools", "pydantic"}
INSTALLS = {
    # cryptography only for `chantier agent keygen` (the keygen extra), which says so if absent
    "chantier": AGENT_LIBRARIES,
    "device": AGENT_LIBRARIES,
    "cloud": CLOUD_LIBRARIES,
    "provisioning": {"boto3", "botocore", "cryptography", "certifi"},
    "cloud.local": AGENT_LIBRARIES | CLOUD_LIBRARIES | {"moto", "werkzeug", "yaml", "duckdb"},
    "commands": AGENT_LIBRARIES | CLOUD_LIBRARIES,
}
OURS = {"chantier", "device", "provisioning", "cloud", "commands"}


def third_party(path: Path) -> set[str]:
    import sys

    roots = {name.split(".")[0] for name in imported_modules(path)}
    return roots - OURS - set(sys.stdlib_module_names) - {"__future__"}


def test_each_part_imports_only_the_libraries_of_its_install() -> None:
    extra = []
    for part in ("chantier", "device", "provisioning", "cloud", "commands"):
        for path in sources(ROOT, part):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            owner = part_of(module)
            assert owner is not None
            beyond = third_party(path) - INSTALLS[owner]
            if beyond:
                extra.append(f"{path.relative_to(ROOT)}: {sorted(beyond)}")
    assert extra == []


def test_the_architecture_picture_shows_exactly_the_allowed_arrows() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    picture = text.split("```mermaid", 1)[1].split("```", 1)[0]
    drawn = set()
    for line in picture.splitlines():
        if "-->" in line:
            source, targets = line.split("-->")
            for target in targets.split("&"):
                drawn.add((source.strip().replace("_", "."), target.strip().replace("_", ".")))
    allowed = {(source, target) for source, targets in ALLOWED.items() for target in targets}
    assert drawn == allowed
