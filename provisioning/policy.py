"""The device IoT policy: its name, a local equivalent of the template's, and wildcard checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Must equal PolicyName of the AWS::IoT::Policy in cloud/template.yaml.
DEVICE_POLICY_NAME = "chantier-device"
THING_TYPE_NAME = "chantier-machine"
THING_ATTRIBUTES = ("site", "equipment", "hourlyCost")

THING_VAR = "${iot:Connection.Thing.ThingName}"
SITE_VAR = "${iot:Connection.Thing.Attributes[site]}"


def device_policy_document(
    region: str, account_id: str, rule_names: Sequence[str] = ()
) -> dict[str, Any]:
    """Connect as its own thing name; publish only under its own site and thing name.

    Basic Ingest topics are allowed for the given rules, or for any rule when none is given.
    """
    arn = f"arn:aws:iot:{region}:{account_id}"
    own = f"dt/chantier/{SITE_VAR}/{THING_VAR}/*"
    ingest = [f"{arn}:topic/$aws/rules/{rule}/{own}" for rule in rule_names or ("*",)]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ConnectAsItself",
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": f"{arn}:client/{THING_VAR}",
                "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
            },
            {
                "Sid": "PublishOnlyAsItselfOnItsSite",
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": [f"{arn}:topic/{own}", *ingest],
            },
        ],
    }


@dataclass(frozen=True)
class WildcardGrant:
    """A policy statement that allows publish or connect on a wildcard resource."""

    action: str
    resource: str


# Wildcards are fine after the thing name (its own kinds) or in a Basic Ingest rule name;
# anywhere else they let one device act as, or publish for, another.
_SAFE_SUFFIXES = (f"/{THING_VAR}/*", f"/{THING_VAR}")


def wildcard_grants(document: Mapping[str, Any]) -> list[WildcardGrant]:
    """Allow statements whose publish/connect resources reach beyond the device's own names."""
    grants: list[WildcardGrant] = []
    for statement in _as_list(document.get("Statement")):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        actions = [str(a) for a in _as_list(statement.get("Action"))]
        for action in actions:
            if action not in ("iot:Publish", "iot:Connect", "iot:*", "*"):
                continue
            for resource in (str(r) for r in _as_list(statement.get("Resource"))):
                if _is_wildcard(resource):
                    grants.append(WildcardGrant(action, resource))
    return grants


def _is_wildcard(resource: str) -> bool:
    if resource == "*":
        return True
    _, _, name = resource.partition(":topic/")
    if not name:
        _, _, name = resource.partition(":client/")
    if not name:
        return "*" in resource
    if name.startswith("$aws/rules/"):
        # The rule-name level may be a wildcard; what follows it must still be the device's own.
        name = name.split("/", 3)[3] if name.count("/") >= 3 else name
    if "*" not in name and "+" not in name and "#" not in name:
        return False
    head = name
    for suffix in _SAFE_SUFFIXES:
        if name.endswith(suffix):
            head = name[: -len(suffix)]
            break
    else:
        return True
    return "*" in head or "+" in head or "#" in head


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
