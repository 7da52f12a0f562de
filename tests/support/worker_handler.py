"""A function for the worker-process tests: each event names what the handler does."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

PREPARED: list[str] = []  # filled by `prepare` in the worker, before the handler is built


def prepare() -> None:
    """A worker's setup step: visible to the handler only if it ran first, in that process."""
    PREPARED.append(f"prepared in {os.getpid()}")


class TwoArgumentError(Exception):
    """Pickles, but cannot be rebuilt from its args, like many exception classes."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what} ({code})")


def build(env: Mapping[str, str], boto3_kwargs: Any, **_: Any) -> Any:
    """The handler; `env` is the function's environment from its spec."""
    built_in = os.getpid()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        time.sleep(event.get("sleep_s", 0.0))
        if "exit" in event:
            os._exit(event["exit"])
        if event.get("raise") == "modeled":
            # What botocore raises: a ClientError subclass it names after the error code.
            modeled = type("ResourceNotFoundException", (ClientError,), {})
            raise modeled(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "no table"}}, "Query"
            )
        if event.get("raise") == "unrebuildable":
            raise TwoArgumentError("disk full", 28)
        return {
            "pid": os.getpid(),
            "built_in": built_in,
            "request_id": context.aws_request_id,
            "variable": os.environ.get(event.get("variable", ""), ""),
            "function_env": env.get("GREETING", ""),
            "prepared": list(PREPARED),
        }

    return handler
