"""The CI workflow is valid (GitHub's workflow schema, zizmor offline), deploys with short-lived
credentials, and runs every test file of the repository in one of its component jobs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
BIN = Path(sys.executable).parent
COMPONENT_JOBS = {"lint", "agent", "provisioning", "cloud", "local-stack", "package", "deploy"}


def _tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is not installed: `make install` installs the dev extra"
    return found


def _lint(path: Path) -> list[subprocess.CompletedProcess[str]]:
    schema = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    audit = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return [schema, audit]


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return document


def test_workflow_passes_the_schema_and_zizmor() -> None:
    for result in _lint(WORKFLOW):
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_linters_do_catch_a_broken_workflow(tmp_path: Path) -> None:
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    invalid = folder / "invalid.yml"
    invalid.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    schema, _ = _lint(invalid)
    assert schema.returncode != 0 and "stepz" in schema.stdout + schema.stderr
    unsafe = folder / "unsafe.yml"
    unsafe.write_text(
        "on: push\n"
        "permissions: {}\n"
        "jobs:\n"
        "  y:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"  # template injection
    )
    schema, audit = _lint(unsafe)
    assert schema.returncode == 0, schema.stdout
    assert audit.returncode != 0 and "template-injection" in audit.stdout + audit.stderr


def test_one_job_per_component(workflow: dict[str, Any]) -> None:
    assert set(workflow["jobs"]) == COMPONENT_JOBS
    assert set(workflow["jobs"]["package"]["needs"]) == COMPONENT_JOBS - {"package", "deploy"}
    assert workflow["jobs"]["deploy"]["needs"] == ["package"]


def test_deploy_assumes_a_role_with_oidc_and_stores_no_key(workflow: dict[str, Any]) -> None:
    deploy = workflow["jobs"]["deploy"]
    assert deploy["permissions"]["id-token"] == "write"
    assert workflow["permissions"] == {"contents": "read"}
    credentials = next(
        s for s in deploy["steps"] if "configure-aws-credentials" in s.get("uses", "")
    )
    assert "role-to-assume" in credentials["with"]
    text = WORKFLOW.read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    assert "refs/heads/main" in deploy["if"]


def test_every_test_file_runs_in_some_job(workflow: dict[str, Any]) -> None:
    commands = " ".join(
        str(step.get("run", "")) for job in workflow["jobs"].values() for step in job["steps"]
    )
    # (a job's --ignore only leaves out what another job runs; the check is that each file is
    # named by some job, directly or through its folder)
    paths = [word for word in commands.split() if word.startswith("tests/")]
    missing = []
    for test_file in sorted((ROOT / "tests").glob("*/**/test_*.py")):
        relative = test_file.relative_to(ROOT).as_posix()
        if relative.startswith("tests/benchmarks/"):
            continue
        if not any(relative == p or relative.startswith(p.rstrip("/") + "/") for p in paths):
            missing.append(relative)
    assert missing == [], "add these to a job of .github/workflows/ci.yml"
