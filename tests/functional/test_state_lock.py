"""One local stack per state folder: a second one, from any command, is refused untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.local.stack import LocalStack
from cloud.local.statelock import StateFolderInUseError

pytestmark = pytest.mark.functional
CHANTIER = Path(sys.executable).with_name("chantier")


def test_a_second_stack_on_a_folder_in_use_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with LocalStack(state) as first:
        assert first.info is not None
        description = first.info.path.read_text()
        with pytest.raises(StateFolderInUseError, match=f"process {os.getpid()}"):
            LocalStack(state).start()
        for command in (["demo", "--duration", "5"], ["stack", "up"]):
            result = subprocess.run(
                [str(CHANTIER), *command, "--state-dir", str(state)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 1, result.stdout + result.stderr
            assert "already runs with state in" in result.stderr
        # the running stack's description is untouched and it still answers
        assert first.info.path.read_text() == description
        assert first.client("s3").list_buckets()["Buckets"]
    assert not (state / "stack.json").exists()
    with LocalStack(state):  # free again once the first stopped
        pass
