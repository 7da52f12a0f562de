"""Reads cloud/template.yaml for the local stack: buckets, tables, topic rules and functions.

Intrinsic functions are resolved the way the local stack names things: a resource's physical
name is ``<stack>-<logical id in lower case>``, parameters take their defaults, ARNs use the
local region and account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cloud.local.cfn_yaml import load_template
from cloud.local.stackinfo import ACCOUNT_ID, REGION

TEMPLATE_PATH = Path(str(resources.files("cloud").joinpath("template.yaml")))
STACK_NAME = "chantier-local"
_SUB_RE = re.compile(r"\$\{([^}]*)\}")
# Types whose !Ref is an ARN rather than a name in CloudFormation.
_REF_IS_ARN = {"AWS::SNS::Topic"}
# What Lambda does for an asynchronous invocation without an EventInvokeConfig.
DEFAULT_ASYNC_RETRIES = 2
DEFAULT_ASYNC_EVENT_AGE_S = 6 * 3600
DEFAULT_TIMEOUT_S = 3.0  # a function's Timeout when neither it nor Globals set one, as in SAM
_NO_VALUE = object()  # !Ref AWS::NoValue: the property is left out


class TemplateError(ValueError):
    """The template uses something the local stack cannot resolve."""


@dataclass(frozen=True)
class TopicRuleSpec:
    logical_id: str
    name: str
    sql: str
    actions: list[dict[str, Any]]
    error_action: dict[str, Any] | None


@dataclass(frozen=True)
class ScheduleSpec:
    """A function invoked on a schedule: a SAM `Schedule` event or an AWS::Events::Rule."""

    logical_id: str
    function_arn: str
    expression: str


@dataclass(frozen=True)
class AsyncInvokeSpec:
    """How Lambda treats a function's asynchronous invocations (AWS::Lambda::EventInvokeConfig)."""

    max_retries: int = DEFAULT_ASYNC_RETRIES
    max_event_age_s: int = DEFAULT_ASYNC_EVENT_AGE_S
    on_failure: str | None = None  # destination ARN for events that failed every attempt


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    handler: str
    environment: dict[str, str] = field(default_factory=dict)
    asynchronous: AsyncInvokeSpec = field(default_factory=AsyncInvokeSpec)
    timeout_s: float = DEFAULT_TIMEOUT_S


class LocalTemplate:
    """The template with every intrinsic resolved for the local stack."""

    def __init__(self, path: Path = TEMPLATE_PATH, stack_name: str = STACK_NAME) -> None:
        self.path = path
        self.stack_name = stack_name
        self.document: dict[str, Any] = load_template(path)
        self.resources: dict[str, dict[str, Any]] = self.document.get("Resources", {})
        self.parameters = {
            name: str(spec.get("Default", ""))
            for name, spec in self.document.get("Parameters", {}).items()
        }

    def physical_name(self, logical_id: str) -> str:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"{self.path}: no resource {logical_id!r}")
        props = resource.get("Properties", {})
        for key in (
            "RuleName",
            "PolicyName",
            "TableName",
            "BucketName",
            "FunctionName",
            "TopicName",
            "QueueName",
        ):
            if key in props:
                return str(self.resolve(props[key]))
        return f"{self.stack_name}-{logical_id.lower()}"

    def arn(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        service = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}",
            "AWS::IoT::TopicRule": f"arn:aws:iot:{REGION}:{ACCOUNT_ID}:rule/{name}",
            "AWS::Serverless::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT_ID}:role/{name}",
            "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}",
        }
        if kind not in service:
            raise TemplateError(f"{self.path}: no local ARN for {logical_id} of type {kind}")
        return service[kind]

    def _pseudo(self, name: str) -> str:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if "." in name:
            logical_id, attribute = name.split(".", 1)
            return self.get_att(logical_id, attribute)
        if self.resources.get(name, {}).get("Type") in _REF_IS_ARN:
            return self.arn(name)
        return self.physical_name(name)

    def condition(self, name: str) -> bool:
        """Evaluate a named entry of `Conditions` with the parameter defaults."""
        conditions = self.document.get("Conditions", {})
        if name not in conditions:
            raise TemplateError(f"{self.path}: no condition {name!r} under Conditions")
        return self._truth(conditions[name])

    def _truth(self, expression: Any) -> bool:
        if not isinstance(expression, dict) or len(expression) != 1:
            raise TemplateError(f"{self.path}: condition {expression!r} is not resolved locally")
        ((key, arg),) = expression.items()
        if key == "Condition":
            return self.condition(str(arg))
        if key == "Fn::Equals":
            left, right = (str(self.resolve(item)) for item in arg)
            return left == right
        if key == "Fn::Not":
            return not self._truth(arg[0])
        if key == "Fn::And":
            return all(self._truth(item) for item in arg)
        if key == "Fn::Or":
            return any(self._truth(item) for item in arg)
        raise TemplateError(f"{self.path}: {key} in a condition is not resolved locally")

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute in ("Name", "TableName", "QueueName"):
            return self.physical_name(logical_id)
        raise TemplateError(
            f"{self.path}: !GetAtt {logical_id}.{attribute} is not resolved locally"
        )

    def resolve(self, value: Any) -> Any:
        """Resolve intrinsic functions inside a property value."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return _NO_VALUE if arg == "AWS::NoValue" else self._pseudo(str(arg))
            if key == "Fn::If":
                name, if_true, if_false = arg
                return self.resolve(if_true if self.condition(str(name)) else if_false)
            if key == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.get_att(str(parts[0]), str(parts[1]))
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                separator, items = arg
                return str(separator).join(str(self.resolve(item)) for item in items)
            if key.startswith("Fn::"):
                raise TemplateError(f"{self.path}: {key} is not resolved by the local stack")
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!x} is a literal ${x}
            if name in variables:
                return str(self.resolve(variables[name]))
            return self._pseudo(name)

        return _SUB_RE.sub(replace, str(text))

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        """Resources of a type, leaving out those whose Condition is false with the defaults."""
        return {
            lid: res
            for lid, res in self.resources.items()
            if res.get("Type") == kind
            and ("Condition" not in res or self.condition(str(res["Condition"])))
        }

    def properties(self, logical_id: str) -> dict[str, Any]:
        resolved: dict[str, Any] = self.resolve(self.resources[logical_id].get("Properties", {}))
        return resolved

    def topic_rules(self) -> list[TopicRuleSpec]:
        rules = []
        for logical_id in self.of_type("AWS::IoT::TopicRule"):
            props = self.properties(logical_id)
            payload = props["TopicRulePayload"]
            if payload.get("RuleDisabled"):
                continue
            if payload.get("AwsIotSqlVersion") != "2016-03-23":
                raise TemplateError(f"{self.path}: rule {logical_id} must use SQL 2016-03-23")
            rules.append(
                TopicRuleSpec(
                    logical_id=logical_id,
                    name=self.physical_name(logical_id),
                    sql=payload["Sql"],
                    actions=payload.get("Actions", []),
                    error_action=payload.get("ErrorAction"),
                )
            )
        return rules

    def functions(self) -> dict[str, FunctionSpec]:
        """Functions by local ARN, with their environment merged from Globals."""
        globals_ = self.document.get("Globals", {}).get("Function", {})
        global_env = self.resolve(globals_.get("Environment", {})).get("Variables", {})
        invoke_configs = self._async_invoke_specs()
        out: dict[str, FunctionSpec] = {}
        for logical_id in self.of_type("AWS::Serverless::Function"):
            props = self.properties(logical_id)
            env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
            name = self.physical_name(logical_id)
            out[self.arn(logical_id)] = FunctionSpec(
                logical_id=logical_id,
                name=name,
                handler=props["Handler"],
                environment={key: str(value) for key, value in env.items()},
                asynchronous=invoke_configs.get(name, AsyncInvokeSpec()),
                timeout_s=float(props.get("Timeout", globals_.get("Timeout", DEFAULT_TIMEOUT_S))),
            )
        return out

    def _async_invoke_specs(self) -> dict[str, AsyncInvokeSpec]:
        """EventInvokeConfig of the functions that have one, by function name."""
        out: dict[str, AsyncInvokeSpec] = {}
        for logical_id in self.of_type("AWS::Lambda::EventInvokeConfig"):
            props = self.properties(logical_id)
            if props.get("Qualifier", "$LATEST") != "$LATEST":
                raise TemplateError(
                    f"{self.path}: {logical_id} configures {props['Qualifier']}; the local stack "
                    "runs $LATEST only"
                )
            failure = props.get("DestinationConfig", {}).get("OnFailure", {})
            out[str(props["FunctionName"])] = AsyncInvokeSpec(
                max_retries=int(props.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES)),
                max_event_age_s=int(
                    props.get("MaximumEventAgeInSeconds", DEFAULT_ASYNC_EVENT_AGE_S)
                ),
                on_failure=failure.get("Destination"),
            )
        return out

    def schedules(self) -> list[ScheduleSpec]:
        """Scheduled invocations: SAM `Schedule` events and enabled AWS::Events::Rule targets."""
        out = []
        for logical_id in self.of_type("AWS::Serverless::Function"):
            events = self.properties(logical_id).get("Events", {})
            for event_id, event in events.items():
                props = event.get("Properties", {})
                if event.get("Type") != "Schedule" or props.get("Enabled") is False:
                    continue
                out.append(
                    ScheduleSpec(
                        f"{logical_id}.{event_id}", self.arn(logical_id), props["Schedule"]
                    )
                )
        for logical_id in self.of_type("AWS::Events::Rule"):
            props = self.properties(logical_id)
            if "ScheduleExpression" not in props or props.get("State") == "DISABLED":
                continue
            for target in props.get("Targets", []):
                out.append(
                    ScheduleSpec(logical_id, str(target["Arn"]), props["ScheduleExpression"])
                )
        return out

    def iot_policy_document(self, policy_name: str) -> dict[str, Any]:
        for logical_id in self.of_type("AWS::IoT::Policy"):
            props = self.properties(logical_id)
            if props.get("PolicyName") == policy_name:
                document: dict[str, Any] = props["PolicyDocument"]
                return document
        raise TemplateError(f"{self.path}: no AWS::IoT::Policy named {policy_name!r}")
