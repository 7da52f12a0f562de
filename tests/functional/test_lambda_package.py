"""`make package`: the Lambda zip holds the cloud code only, and every handler of the template
imports and wires itself from it with nothing but the runtime's boto3 and the Powertools layer.

The layer is `aws-lambda-powertools[all]` without boto3 and its dependencies (which the
runtime has); here both are linked from this environment into an `/opt/python` stand-in, and
the handlers run in an interpreter that sees only the standard library, the unpacked zip and
that folder, in Lambda's order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support.installs import ROOT, closure, link_distributions

from cloud.local.template import LocalTemplate

pytestmark = [pytest.mark.functional, pytest.mark.timeout(120)]

NOWHERE = {
    "endpoint_url": "http://127.0.0.1:9",
    "region_name": "eu-west-3",
    "aws_access_key_id": "local",
    "aws_secret_access_key": "local",
}
# Imports every handler, builds it (clients are created, no request is sent), and reports
# every module loaded from outside the standard library, the zip and the layer.
PROBE = """
import importlib, json, sys, sysconfig
task, layer = sys.argv[1], sys.argv[2]
specs, kwargs = json.loads(sys.argv[3]), json.loads(sys.argv[4])
sys.path[:0] = [task, layer]
built = []
for handler, env in specs:
    module = importlib.import_module(handler.rpartition(".")[0])
    assert callable(getattr(module, handler.rpartition(".")[2])), handler
    module.build(env, lambda service, table="": kwargs)
    built.append(handler)
allowed = (task, layer, sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
outside = sorted(
    name for name, m in list(sys.modules.items())
    if getattr(m, "__file__", None) and not m.__file__.startswith(allowed)
)
print(json.dumps({"built": built, "outside": outside}))
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package") / "lambda.zip"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "package_lambda.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


def test_the_zip_holds_the_cloud_code_and_nothing_else(package: Path) -> None:
    names = zipfile.ZipFile(package).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"chantier", "cloud"}
    assert "cloud/handlers/ingest.py" in names and "chantier/alerts/rules/alert-rules.json" in names
    assert not [n for n in names if n.startswith("cloud/local/") or n == "chantier/cli.py"]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_every_template_handler_imports_and_wires_with_only_the_runtime_and_the_layer(
    package: Path, tmp_path: Path
) -> None:
    task = tmp_path / "task"
    zipfile.ZipFile(package).extractall(task)
    layer = tmp_path / "opt" / "python"
    provided = closure(["boto3", "aws-lambda-powertools[all]"])
    assert {"boto3", "botocore", "aws-lambda-powertools", "pydantic"} <= provided
    link_distributions(provided, layer)
    specs = [(s.handler, s.environment) for s in LocalTemplate().functions().values()]
    assert len(specs) >= 5
    probe = subprocess.run(
        # -I: no user site, no PYTHON* variables; -S: not even this environment's site-packages
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            PROBE,
            str(task),
            str(layer),
            json.dumps(specs),
            json.dumps(NOWHERE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    result = json.loads(probe.stdout.splitlines()[-1])
    assert result["built"] == [handler for handler, _ in specs]
    assert result["outside"] == []
