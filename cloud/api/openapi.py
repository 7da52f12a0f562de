"""Completes the resolver's OpenAPI document and writes it to docs/openapi.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from chantier.telemetry import schema_text

ERROR_STATUSES = {
    "400": "malformed request, bad cursor, or 5 runs already running",
    "401": "no token, or a token that is not accepted",
    "403": "the identity may not do this (owner or admins group required)",
    "404": "no such run or route",
    "409": "the run is not RUNNING",
    "422": "the body or a parameter was refused by validation",
}
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def _telemetry_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_text())
    # Keep the contract's content but drop keywords that belong to a standalone schema file.
    for key in ("$schema", "$id"):
        schema.pop(key, None)
    # Inside the API document its definitions live under the component, not at the root.
    text = json.dumps(schema).replace('"#/$defs/', '"#/components/schemas/TelemetryBatch/$defs/')
    return dict(json.loads(text))


def finish_document(doc: dict[str, Any]) -> dict[str, Any]:
    """Add security, the sensor-data body, error responses, and the run object's schema."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = {
        "type": "object",
        "required": ["message"],
        "properties": {"message": {"type": "string"}},
    }
    schemas["TelemetryBatch"] = _telemetry_schema()
    # Powertools' own validation shapes: our handlers answer every error with Error instead.
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(unused, None)
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT (Cognito) in AWS, the stack's token locally",
        }
    }
    doc["security"] = [{"bearer": []}]
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            ok = "201" if path.endswith(("/start", "/sensors/data")) and method == "post" else "200"
            if ok == "201":
                responses.pop("200", None)
                responses["201"] = {"description": "created"}
            for status, text in ERROR_STATUSES.items():
                responses[status] = {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            if path == "/api/sensors/data" and method == "post":
                operation["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/SimpleReading"},
                                    {"$ref": "#/components/schemas/TelemetryBatch"},
                                ]
                            }
                        }
                    },
                }
    from cloud.api.models import SimpleReading

    schemas["SimpleReading"] = SimpleReading.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    return doc


def write(path: Path = DEFAULT_PATH) -> Path:
    from cloud.api.app import static_document

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(static_document(), indent=2, ensure_ascii=False) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="write the API's OpenAPI document")
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH)
    print(write(parser.parse_args().out))


if __name__ == "__main__":
    main()
