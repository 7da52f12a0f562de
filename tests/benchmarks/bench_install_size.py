"""Size of an install by role: the wheel installed into a fresh virtual environment.

Run: .venv/bin/python tests/benchmarks/bench_install_size.py [--extras cloud,local] [--ref REV]

Builds the wheel (of the work tree, or of a git revision with --ref), installs it with pip into
a new venv (no system site-packages) and prints the size of its site-packages, the largest
distributions, and whether the AWS SDK, Powertools and the MQTT client are there. Without
--extras this is the agent install a Pi gets (docs/field-install.md). pip reaches the package
index (or its cache) for the dependencies.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from support.installs import build_wheel  # noqa: E402

WATCHED = ("boto3", "botocore", "aws_lambda_powertools", "pydantic", "moto", "awscrt", "awsiot")
# What a fresh venv holds before anything is installed into it.
TOOLING = {"pip", "setuptools", "wheel"}


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def exported(ref: str | None, work: Path) -> Path | None:
    """The tree of a git revision, or None for the work tree."""
    if ref is None:
        return None
    out = work / "source"
    out.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True, timeout=120
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True, timeout=120)
    return out


def distribution_sizes(site: Path) -> list[tuple[int, str]]:
    """(bytes, name) of every installed distribution, from its RECORD, largest first."""
    sizes = []
    for dist in metadata.distributions(path=[str(site)]):
        total = 0
        for file in dist.files or []:
            located = Path(str(dist.locate_file(file)))
            if located.is_file():
                total += located.stat().st_size
        sizes.append((total, dist.metadata["Name"]))
    return sorted(sizes, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="", help="extras to add, e.g. cloud or local")
    parser.add_argument("--ref", help="measure this git revision instead of the work tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.monotonic()
        wheel = build_wheel(work / "dist", exported(args.ref, work))
        built_s = time.monotonic() - started
        venv = work / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        python = venv / "bin" / "python"
        target = f"{wheel}[{args.extras}]" if args.extras else str(wheel)
        started = time.monotonic()
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", target],
            check=True,
            timeout=900,
        )
        installed_s = time.monotonic() - started
        (site,) = (venv / "lib").glob("python3*/site-packages")
        sizes = distribution_sizes(site)
        tooling = sum(size for size, name in sizes if name.lower() in TOOLING)
        total = tree_bytes(site)
        present = {name: (site / name).is_dir() for name in WATCHED}
        help_run = subprocess.run(
            [str(venv / "bin" / "chantier"), "agent", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )

    role = f"[{args.extras}]" if args.extras else "(agent alone)"
    print(f"install {role} of {args.ref or 'the work tree'}: {wheel.name}")
    print(f"  built in {built_s:.1f} s, installed in {installed_s:.1f} s")
    print(
        f"  site-packages: {total / 1e6:.1f} MB, of which {tooling / 1e6:.1f} MB is the venv's "
        f"own pip/setuptools; {(total - tooling) / 1e6:.1f} MB without them "
        f"({len(sizes)} distributions)"
    )
    print("  largest: " + ", ".join(f"{name} {size / 1e6:.1f} MB" for size, name in sizes[:8]))
    print(
        "  present: "
        + ", ".join(f"{name} {'yes' if here else 'no'}" for name, here in present.items())
    )
    print(f"  `chantier agent --help` exit {help_run.returncode}")
    if help_run.returncode != 0:
        print(help_run.stderr.strip()[-2000:])


if __name__ == "__main__":
    main()
