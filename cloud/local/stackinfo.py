"""Where the running local stack can be reached, shared through a file in the state folder."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

DEFAULT_STATE_DIR = Path("state")
REGION = "eu-west-3"
ACCOUNT_ID = "123456789012"
# Served by a process of their own (dynalite, else moto): the alert path's calls then never
# wait behind a fleet's S3 puts under one interpreter lock (docs/architecture.md).
DYNAMODB_SERVICES = frozenset({"dynamodb", "dynamodbstreams"})


class StackNotRunningError(RuntimeError):
    """No local stack description was found in the state folder."""


class StaleStackError(StackNotRunningError):
    """The state folder describes a stack whose process is gone (killed, or the machine
    restarted): the file can be replaced by a new `chantier stack up`."""

    def __init__(self, message: str, info: StackInfo) -> None:
        super().__init__(message)
        self.info = info


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists (ours or another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def state_dir() -> Path:
    """State folder of the local stack: $CHANTIER_STATE_DIR, else ./state."""
    return Path(os.environ.get("CHANTIER_STATE_DIR", str(DEFAULT_STATE_DIR))).resolve()


@dataclass(frozen=True)
class StackInfo:
    state_dir: str
    aws_endpoint: str  # moto server of every service but DynamoDB, e.g. http://127.0.0.1:5123
    broker_host: str
    broker_port: int
    ca_file: str
    raw_bucket: str
    alerts_table: str
    readings_table: str
    runs_table: str
    rule_name: str
    failures_queue: str = ""  # SQS queue keeping ingestion events that failed every attempt
    api_url: str = ""
    api_token: str = ""
    broker_pid: int = 0
    moto_pid: int = 0
    # DynamoDB's own server; "" in files written before it had one (then aws_endpoint).
    dynamodb_endpoint: str = ""
    dynamodb_pid: int = 0
    # Tables served elsewhere than dynamodb_endpoint, by name: those whose code needs
    # transactions, which dynalite does not have, live on the moto server at aws_endpoint.
    table_endpoints: dict[str, str] = field(default_factory=dict)
    pid: int = 0  # the process running the stack; 0 in files written before it was recorded

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
        """The running stack's description; StaleStackError when its process is gone."""
        info = cls.read(directory)
        if info.pid and not pid_alive(info.pid):
            raise StaleStackError(
                f"the local stack described in {info.path} is not running (process {info.pid} "
                "is gone): start one with `chantier stack up`, which replaces the file",
                info,
            )
        return info

    @classmethod
    def read(cls, directory: Path | None = None) -> StackInfo:
        """The description in the state folder, whether its stack still runs or not."""
        target = (directory or state_dir()) / "stack.json"
        try:
            data = json.loads(target.read_text())
        except FileNotFoundError:
            raise StackNotRunningError(
                f"no local stack found ({target} is missing): start one with `chantier stack up`"
            ) from None
        except ValueError:
            raise StackNotRunningError(
                f"{target} is not a stack description (not JSON): delete it and start a stack "
                "with `chantier stack up`"
            ) from None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def endpoint(self, service: str) -> str:
        """URL of the moto server that serves `service` (a boto3 service name)."""
        if service in DYNAMODB_SERVICES and self.dynamodb_endpoint:
            return self.dynamodb_endpoint
        return self.aws_endpoint

    def boto3_kwargs(self, service: str, table: str = "") -> dict[str, str]:
        """Keyword arguments that point a boto3 client or resource of `service` at the local
        AWS API serving it; for DynamoDB, at the one serving `table` when it is given."""
        return {
            "endpoint_url": self.table_endpoints.get(table) or self.endpoint(service),
            "region_name": REGION,
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }
