"""Builds the Lambda package, build/lambda.zip, from the cloud install only.

Run: python scripts/package_lambda.py [--out build/lambda.zip]  (what `make package` does)

The zip holds `chantier/` and `cloud/` without the local stack (`cloud/local/`) and without the
`chantier` command (`chantier/cli.py`): no CLI, simulator, provisioning or agent code. Of the
cloud extra's dependencies (pyproject.toml) it adds those AWS does not already provide, as
wheels for the functions' platform (arm64, Python 3.12). The runtime provides boto3; the
template's Powertools layer is `aws-lambda-powertools[all]`, pydantic included (the layer's
build installs every extra and removes only boto3 and what the runtime already has). Entries
carry a fixed date, so the same code gives the same zip and `sam deploy` uploads nothing new.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ("chantier", "cloud")
LEFT_OUT = ("cloud/local", "chantier/cli.py")
# Distributions AWS provides: the python3.12 runtime's SDK, and the Powertools layer.
PROVIDED = {"boto3", "botocore", "aws-lambda-powertools", "pydantic", "pydantic-core"}
PLATFORM = ("--platform", "manylinux2014_aarch64", "--python-version", "3.12")
FIXED_DATE = (2020, 1, 1, 0, 0, 0)


def distribution_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    if match is None:
        raise ValueError(f"pyproject.toml: cannot read a distribution name in {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def shipped_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The cloud extra's requirements that AWS does not provide."""
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    return [r for r in extras["cloud"] if distribution_name(r) not in PROVIDED]


def copy_code(into: Path) -> None:
    for part in CODE:
        shutil.copytree(
            ROOT / part, into / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    for relative in LEFT_OUT:
        target = into / relative
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()


def install_dependencies(requirements: list[str], into: Path) -> None:
    if not requirements:
        return
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(into),
            *PLATFORM,
            "--only-binary=:all:",
            "--implementation",
            "cp",
            *requirements,
        ],
        check=True,
        timeout=600,
    )


def write_zip(tree: Path, out: Path) -> list[str]:
    """Zip `tree` with sorted entries and a fixed date; returns the entry names."""
    names = []
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(p for p in tree.rglob("*") if p.is_file()):
            name = path.relative_to(tree).as_posix()
            entry = zipfile.ZipInfo(name, FIXED_DATE)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, path.read_bytes())
            names.append(name)
    partial.replace(out)
    return names


def build(out: Path) -> list[str]:
    """Build the package at `out`; returns its entry names."""
    requirements = shipped_requirements()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        copy_code(tree)
        install_dependencies(requirements, tree)
        return write_zip(tree, out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "lambda.zip")
    args = parser.parse_args()
    names = build(args.out)
    requirements = shipped_requirements()
    tops = sorted({name.split("/")[0] for name in names})
    print(
        f"{args.out}: {args.out.stat().st_size / 1000:.0f} KB, {len(names)} files "
        f"({', '.join(tops)}); dependencies in the zip: {', '.join(requirements) or 'none'} "
        "(boto3 from the runtime, Powertools and pydantic from the layer)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
