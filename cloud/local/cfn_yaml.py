"""Reads a CloudFormation template written in YAML, short-form intrinsics included.

`!Ref X` becomes ``{"Ref": "X"}``, `!GetAtt A.B` becomes ``{"Fn::GetAtt": ["A", "B"]}`` and
every other `!Name` becomes ``{"Fn::Name": ...}``, the long forms CloudFormation documents. The
local stack only reads the template, so a YAML parser with these tags is all it needs at run
time (cfn-lint, which also reads them, is a linter and stays a development tool).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# Every short form CloudFormation and the SAM transform accept in YAML.
_FUNCTIONS = (
    "And",
    "Base64",
    "Cidr",
    "Equals",
    "FindInMap",
    "GetAtt",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
)

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _TemplateLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """A safe loader that also knows the intrinsic functions' tags."""


def _value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]


def _long_form(key: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value = _value(loader, node)
        if key == "Fn::GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {key: value}

    return construct


_TemplateLoader.add_constructor("!Ref", _long_form("Ref"))
_TemplateLoader.add_constructor("!Condition", _long_form("Condition"))
for _name in _FUNCTIONS:
    _TemplateLoader.add_constructor(f"!{_name}", _long_form(f"Fn::{_name}"))


class TemplateSyntaxError(ValueError):
    """The template file is not YAML, or not a mapping at its top."""


def parse_template(text: str, source: str = "<template>") -> dict[str, Any]:
    """The template as plain dictionaries and lists, intrinsics in their long form."""
    try:
        document = yaml.load(text, Loader=_TemplateLoader)
    except yaml.YAMLError as exc:
        raise TemplateSyntaxError(f"{source}: not a YAML template: {exc}") from None
    if not isinstance(document, dict):
        raise TemplateSyntaxError(f"{source}: expected a mapping of template sections at the top")
    return document


def load_template(path: Path) -> dict[str, Any]:
    """The template file at `path`, parsed as `parse_template` does."""
    return parse_template(path.read_text(encoding="utf-8"), str(path))
