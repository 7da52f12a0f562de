"""Installs by role, made fast and offline for tests and benchmarks.

The wheel is built from a copy of the sources (nothing written into the work tree) without
build isolation, so nothing is downloaded. A role's dependencies are taken from this
environment's installed distributions: the closure of what the wheel (or a layer) declares,
linked into a folder that a fresh interpreter sees instead of this environment's site-packages.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def build_wheel(out: Path, source: Path | None = None) -> Path:
    """The project's wheel, built in `out` from `source` (an exported tree), by default from a
    copy of the work tree's tracked files: setuptools writes build/ and egg-info beside them."""
    if source is None:
        source = out / "source"
        tracked = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout.decode()
        for name in filter(None, tracked.split("\0")):
            if (ROOT / name).is_file():
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, source / name)
    offline = ["--no-deps", "--no-build-isolation", "--quiet", "--disable-pip-version-check"]
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), *offline, "--wheel-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if built.returncode != 0:
        raise RuntimeError(f"building the wheel failed: {built.stderr[-2000:]}")
    (wheel,) = out.glob("chantier_connecte-*.whl")
    return wheel


def wheel_requirements(wheel: Path) -> list[str]:
    """The Requires-Dist lines of a wheel's metadata."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(name).decode())
    return message.get_all("Requires-Dist") or []


def closure(requirements: Iterable[str], extras: Iterable[str] = ()) -> set[str]:
    """Installed distributions needed by `requirements`, transitively; `extras` are those chosen
    where the requirements come from (their markers name them: `extra == "cloud"`).

    A requirement not installed here is left out: the set is then smaller than a real install,
    which can only make a test that runs on it stricter.
    """
    wanted = [(Requirement(r), frozenset(extras)) for r in requirements]
    found: set[str] = set()
    while wanted:
        requirement, chosen = wanted.pop()
        environments = [{"extra": e} for e in chosen] or [{"extra": ""}]
        if requirement.marker and not any(requirement.marker.evaluate(e) for e in environments):
            continue
        name = canonicalize_name(requirement.name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in found:
            continue
        found.add(key)
        wanted.extend((Requirement(r), frozenset(requirement.extras)) for r in dist.requires or [])
    return {key.split("[")[0] for key in found}


def link_distributions(names: Iterable[str], into: Path) -> None:
    """Make `into` a folder where the named installed distributions can be imported from."""
    into.mkdir(parents=True, exist_ok=True)
    for name in names:
        dist = metadata.distribution(name)
        for file in dist.files or []:
            top = file.parts[0]
            if top in ("..", "__pycache__") or top.endswith(".pth"):
                continue  # scripts, and this environment's own start-up hooks
            link = into / top
            if not link.exists():
                link.symlink_to(Path(str(dist.locate_file(top))))


def venv_with_wheel(root: Path, wheel: Path, dependencies: Path) -> Path:
    """A fresh venv (no system site-packages) with the wheel installed and `dependencies`
    on its path; returns the venv's bin folder."""
    venv = root / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "role-dependencies.pth").write_text(f"{dependencies}\n")
    return venv / "bin"
