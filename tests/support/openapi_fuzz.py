"""Hypothesis strategies for requests built from an OpenAPI document (paths, queries, bodies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import strategies as st

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**15), 10**15),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]


def operations(doc: dict[str, Any]) -> list[Operation]:
    return [
        Operation(method.upper(), path, spec)
        for path, methods in sorted(doc["paths"].items())
        for method, spec in sorted(methods.items())
    ]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        resolved: Any = doc
        for part in ref[2:].split("/"):  # a JSON pointer into the document
            resolved = resolved[part.replace("~1", "/").replace("~0", "~")]
        return dict(resolved)
    return schema


def _value_for(doc: dict[str, Any], schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values near what the schema allows, plus anything at all."""
    schema = _resolve(doc, schema)
    kinds: set[str] = set()
    for part in [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]:
        kind = _resolve(doc, part).get("type")
        kinds.update(kind if isinstance(kind, list) else [kind] if kind else [])
    near: list[st.SearchStrategy[Any]] = [json_values]
    if "integer" in kinds:
        near.append(st.integers(-5, 2_000_000_000_000_000))
    if "number" in kinds:
        near.append(st.floats(-1e6, 1e6, allow_nan=False))
    if "string" in kinds:
        near.append(st.text(max_size=70))
        near.append(st.sampled_from(["exc-01", "engine", "a" * 32, "0" * 32, "COMPLETED"]))
    if "enum" in schema:
        near.append(st.sampled_from(schema["enum"]))
    return st.one_of(near)


def _object_for(doc: dict[str, Any], schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    schema = _resolve(doc, schema)
    for combined in ("oneOf", "anyOf"):
        if combined in schema:
            return st.one_of([_object_for(doc, s) for s in schema[combined]])
    properties = schema.get("properties")
    if not properties:
        return json_values
    return st.fixed_dictionaries(
        {},
        optional={name: _value_for(doc, prop) for name, prop in properties.items()},
    )


def request_strategy(
    doc: dict[str, Any], operation: Operation, run_ids: list[str]
) -> st.SearchStrategy[tuple[str, bytes | None]]:
    """(path with query, raw body) pairs for one operation."""
    params = operation.spec.get("parameters", [])
    path_values = {
        p["name"]: st.one_of(st.sampled_from(run_ids), st.text(min_size=1, max_size=80))
        for p in params
        if p["in"] == "path"
    }
    query_values = {
        p["name"]: st.one_of(st.none(), _value_for(doc, p.get("schema", {})))
        for p in params
        if p["in"] == "query"
    }
    body_schema = (
        operation.spec.get("requestBody", {})
        .get("content", {})
        .get("application/json", {})
        .get("schema")
    )
    if body_schema is not None:
        import json

        bodies: st.SearchStrategy[bytes | None] = st.one_of(
            _object_for(doc, body_schema).map(lambda v: json.dumps(v).encode()),
            json_values.map(lambda v: json.dumps(v).encode()),
            st.binary(max_size=64),
            st.none(),
        )
    else:
        bodies = st.none()

    @st.composite
    def build(draw: st.DrawFn) -> tuple[str, bytes | None]:
        path = operation.path
        for name, strategy in path_values.items():
            path = path.replace("{" + name + "}", quote(str(draw(strategy)), safe=""))
        query = {}
        for name, strategy in query_values.items():
            value = draw(strategy)
            if value is not None:
                query[name] = value if isinstance(value, str) else str(value)
        if query:
            path += "?" + urlencode(query)
        return path, draw(bodies)

    return build()
