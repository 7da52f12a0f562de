"""HTTP API Lambda: the Powertools resolver wired to DynamoDB and S3.

In AWS the module-level `handler` wires itself from the environment on first use; the local
API server calls `build()` with clients pointed at moto instead.
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from cloud.api.app import build_app
from cloud.bootstrap import Boto3Kwargs, CloudParts, Handler, LazyHandler

# Most requests (reads) add no metric; that is expected, not worth a warning per request.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


def refuse_undecodable(event: Any) -> dict[str, Any] | None:
    """A 400 response for a body that is not UTF-8 text (JSON cannot be), else None."""
    if not isinstance(event, dict) or not event.get("body") or not event.get("isBase64Encoded"):
        return None
    try:
        base64.b64decode(str(event["body"])).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return {
            "statusCode": 400,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"message": "body is not UTF-8 text: expected JSON"}),
            "isBase64Encoded": False,
        }
    return None


def json_only(event: Any) -> Any:
    """The API speaks JSON only: read every body as JSON, whatever type the client declared.

    `curl -d` declares form data by default; without this the validation would parse the
    body as a form and report every field missing, which misleads more than it helps.
    """
    if isinstance(event, dict) and event.get("body"):
        headers = {
            k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"
        }
        return {**event, "headers": {**headers, "content-type": "application/json"}}
    return event


def build(
    env: Mapping[str, str],
    boto3_kwargs: Boto3Kwargs | None = None,
    logger: Logger | None = None,
    metrics: Metrics | None = None,
) -> Handler:
    """Wire the API from environment variables; `boto3_kwargs` points clients elsewhere."""
    parts = CloudParts(env, boto3_kwargs, logger, metrics)
    app = build_app(parts.api_services)

    @parts.entry_point
    def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
        refused = refuse_undecodable(event)
        return refused or app.resolve(json_only(event), context)

    return lambda_handler


handler = LazyHandler(build)
