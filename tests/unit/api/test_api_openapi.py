"""The OpenAPI document in docs/ is the one the resolver produces."""

from __future__ import annotations

import json

from cloud.api.app import static_document
from cloud.api.openapi import DEFAULT_PATH


def test_docs_openapi_is_up_to_date() -> None:
    saved = json.loads(DEFAULT_PATH.read_text())
    assert saved == static_document(), "regenerate with: python -m cloud.api.openapi"


def test_every_operation_documents_errors_and_security() -> None:
    doc = static_document()
    assert doc["security"] == [{"bearer": []}]
    for operations in doc["paths"].values():
        for operation in operations.values():
            assert {"400", "401", "404", "422"} <= set(operation["responses"])


def test_docs_openapi_is_a_valid_openapi_document() -> None:
    from openapi_spec_validator import validate

    validate(json.loads(DEFAULT_PATH.read_text()))  # raises on a dangling $ref, among others
