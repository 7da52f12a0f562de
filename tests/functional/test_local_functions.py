"""The local stand-in for Lambda: handlers built from the template, eagerly when warmed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cloud.local.functions import LocalFunctions
from cloud.local.template import LocalTemplate

pytestmark = pytest.mark.functional


def nowhere(service: str, table: str = "") -> dict[str, str]:
    """Building a handler creates clients but sends nothing; this endpoint is never contacted."""
    return {
        "endpoint_url": "http://127.0.0.1:9",
        "region_name": "eu-west-3",
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local",
    }


def test_warm_builds_every_function_of_the_template(tmp_path: Path) -> None:
    specs = LocalTemplate().functions()
    assert len(specs) >= 4
    functions = LocalFunctions(specs, nowhere, tmp_path / "functions.log")
    functions.warm()
    assert functions.built() == sorted(spec.name for spec in specs.values())


def test_a_function_that_cannot_be_built_fails_when_warmed_not_at_its_first_event(
    tmp_path: Path,
) -> None:
    specs = LocalTemplate().functions()
    arn, spec = next(iter(specs.items()))
    broken = {arn: replace(spec, handler="cloud.handlers.no_such_module.handler")}
    functions = LocalFunctions(broken, nowhere, tmp_path / "functions.log")
    assert functions.built() == []
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        functions.warm()
