"""Where the running local stack can be reached, shared through a file in the state folder."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_STATE_DIR = Path("state")
REGION = "eu-west-3"
ACCOUNT_ID = "123456789012"


class StackNotRunningError(RuntimeError):
    """No local stack description was found in the state folder."""


def state_dir() -> Path:
    """State folder of the local stack: $CHANTIER_STATE_DIR, else ./state."""
    return Path(os.environ.get("CHANTIER_STATE_DIR", str(DEFAULT_STATE_DIR))).resolve()


@dataclass(frozen=True)
class StackInfo:
    state_dir: str
    aws_endpoint: str  # moto server, e.g. http://127.0.0.1:5123
    broker_host: str
    broker_port: int
    ca_file: str
    raw_bucket: str
    alerts_table: str
    readings_table: str
    runs_table: str
    rule_name: str
    api_url: str = ""
    api_token: str = ""
    broker_pid: int = 0

    @property
    def path(self) -> Path:
        return Path(self.state_dir) / "stack.json"

    def save(self) -> Path:
        target = self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.chmod(tmp, 0o600)  # holds the API token
        tmp.replace(target)
        return target

    @classmethod
    def load(cls, directory: Path | None = None) -> StackInfo:
        target = (directory or state_dir()) / "stack.json"
        try:
            data = json.loads(target.read_text())
        except FileNotFoundError:
            raise StackNotRunningError(
                f"no local stack found ({target} is missing): start one with `chantier stack up`"
            ) from None
        return cls(**data)

    def boto3_kwargs(self) -> dict[str, str]:
        """Keyword arguments that point a boto3 client at the local AWS APIs."""
        return {
            "endpoint_url": self.aws_endpoint,
            "region_name": REGION,
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }
