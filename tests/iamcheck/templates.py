"""The synthesized templates of one environment, resolved as CloudFormation would deploy them into
a fixed fake account: intrinsics (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::ImportValue, Fn::Select,
Fn::Split, Fn::If) become strings, each role's attached policies are gathered across stacks, and
each Lambda function is known by its handler module."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

ACCOUNT = "111122223333"
PARTITION = "aws"
STACK_UUID = "00000000-0000-4000-8000-000000000000"

# Ref of these types returns the resource's name property (or a generated name); Arn formats.
_NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::KinesisFirehose::DeliveryStream": "DeliveryStreamName",
    "AWS::SageMaker::Endpoint": "EndpointName",
    "AWS::SageMaker::EndpointConfig": "EndpointConfigName",
    "AWS::SageMaker::Model": "ModelName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Events::Rule": "Name",
}
_ARN = {
    "AWS::S3::Bucket": "arn:{p}:s3:::{name}",
    "AWS::DynamoDB::Table": "arn:{p}:dynamodb:{r}:{a}:table/{name}",
    "AWS::IAM::Role": "arn:{p}:iam::{a}:role/{name}",
    "AWS::Lambda::Function": "arn:{p}:lambda:{r}:{a}:function:{name}",
    "AWS::Logs::LogGroup": "arn:{p}:logs:{r}:{a}:log-group:{name}:*",
    "AWS::KinesisFirehose::DeliveryStream": "arn:{p}:firehose:{r}:{a}:deliverystream/{name}",
    "AWS::SageMaker::Endpoint": "arn:{p}:sagemaker:{r}:{a}:endpoint/{lname}",
    "AWS::CloudWatch::Alarm": "arn:{p}:cloudwatch:{r}:{a}:alarm:{name}",
    "AWS::SNS::Topic": "arn:{p}:sns:{r}:{a}:{name}",
    "AWS::StepFunctions::StateMachine": "arn:{p}:states:{r}:{a}:stateMachine:{name}",
    "AWS::KMS::Key": "arn:{p}:kms:{r}:{a}:key/{name}",
    "AWS::Events::Rule": "arn:{p}:events:{r}:{a}:rule/{name}",
}
# Ref of these types returns the ARN.
_REF_IS_ARN = {"AWS::SNS::Topic", "AWS::StepFunctions::StateMachine", "AWS::IAM::ManagedPolicy"}


class Unresolvable(ValueError):
    """An intrinsic the resolver does not know (the message names it)."""


@dataclasses.dataclass
class Function:
    """A Lambda function of the environment."""

    stack: str
    logical_id: str
    handler_module: str  # e.g. recsys_lambdas.pipeline.gate
    arn: str
    role: Role
    environment: Dict[str, str]


@dataclasses.dataclass
class Role:
    """An IAM role with every policy attached to it, resolved."""

    stack: str
    logical_id: str
    name: str
    arn: str
    trust: Dict[str, Any]
    policies: List[Dict[str, Any]]  # policy documents
    managed_policy_arns: List[str]


class Environment:
    """One deployment environment (the stacks sharing a config prefix), resolved.

    Args:
        templates: Stack name -> template, for this environment's stacks only.
        region: The stacks' region.
        parameters: Stack name -> parameter overrides (otherwise each parameter's Default).
    """

    def __init__(self, name: str, templates: Mapping[str, Dict[str, Any]], region: str,
                 parameters: Optional[Mapping[str, Mapping[str, str]]] = None) -> None:
        self.name = name
        self.templates = dict(templates)
        self.region = region
        self.account = ACCOUNT
        self.parameters = {k: dict(v) for k, v in (parameters or {}).items()}
        self._exports = self._collect_exports()
        self.roles = self._collect_roles()
        self.functions = self._collect_functions()

    # --- intrinsics ---------------------------------------------------------------------

    def resources(self, type_: Optional[str] = None) -> Iterator[Tuple[str, str, Dict[str, Any]]]:
        """``(stack, logical id, resource)`` of every resource (of ``type_``)."""
        for stack, template in self.templates.items():
            for logical_id, resource in template.get("Resources", {}).items():
                if type_ is None or resource.get("Type") == type_:
                    yield stack, logical_id, resource

    def resource(self, stack: str, logical_id: str) -> Dict[str, Any]:
        """A resource of a stack's template, unresolved."""
        return self.templates[stack]["Resources"][logical_id]

    def _pseudo(self, stack: str, name: str) -> str:
        return {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack,
            "AWS::StackId": f"arn:{PARTITION}:cloudformation:{self.region}:{self.account}:stack/{stack}/{STACK_UUID}",
            "AWS::NoValue": "",
        }[name]

    def physical_name(self, stack: str, logical_id: str) -> str:
        """What ``Ref`` returns for names: the name property, else a CloudFormation-style name."""
        resource = self.resource(stack, logical_id)
        prop = _NAME_PROPERTY.get(resource["Type"])
        value = resource.get("Properties", {}).get(prop) if prop else None
        if value is not None:
            return str(self.resolve(value, stack))
        if resource["Type"] == "AWS::KMS::Key":
            return f"key-{logical_id.lower()}"
        if resource["Type"] == "AWS::S3::Bucket":
            return f"{stack}-{logical_id}".lower()
        return f"{stack}-{logical_id}"

    def arn_of(self, stack: str, logical_id: str) -> str:
        """What ``Fn::GetAtt <resource>.Arn`` returns."""
        resource = self.resource(stack, logical_id)
        fmt = _ARN.get(resource["Type"])
        if fmt is None:
            service = resource["Type"].split("::")[1].lower()
            fmt = "arn:{p}:" + service + ":{r}:{a}:{name}"
        name = self.physical_name(stack, logical_id)
        return fmt.format(p=PARTITION, r=self.region, a=self.account, name=name,
                          lname=name.lower())

    def _ref(self, stack: str, name: str) -> str:
        if name.startswith("AWS::"):
            return self._pseudo(stack, name)
        template = self.templates[stack]
        if name in template.get("Parameters", {}):
            override = self.parameters.get(stack, {}).get(name)
            if override is not None:
                return override
            return str(template["Parameters"][name].get("Default", ""))
        if name not in template.get("Resources", {}):
            raise Unresolvable(f"{stack}: Ref {name} names no parameter or resource")
        if template["Resources"][name]["Type"] in _REF_IS_ARN:
            return self.arn_of(stack, name)
        return self.physical_name(stack, name)

    def _get_att(self, stack: str, logical_id: str, attribute: str) -> str:
        if attribute == "Arn":
            return self.arn_of(stack, logical_id)
        if attribute in ("Name", "ModelName", "EndpointConfigName", "EndpointName", "TopicName"):
            return self.physical_name(stack, logical_id)
        raise Unresolvable(f"{stack}: Fn::GetAtt {logical_id}.{attribute}")

    def _sub(self, stack: str, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name], stack))
            if "." in name and not name.startswith("AWS::"):
                logical_id, _, attribute = name.partition(".")
                return self._get_att(stack, logical_id, attribute)
            return self._ref(stack, name)

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def condition(self, stack: str, name: str) -> bool:
        """The value of a template condition."""
        return bool(self._condition_value(stack, self.templates[stack]["Conditions"][name]))

    def _condition_value(self, stack: str, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            (key, arg), = value.items()
            if key == "Fn::Equals":
                a, b = (self.resolve(v, stack) for v in arg)
                return a == b
            if key == "Fn::Not":
                return not self._condition_value(stack, arg[0])
            if key == "Fn::And":
                return all(self._condition_value(stack, v) for v in arg)
            if key == "Fn::Or":
                return any(self._condition_value(stack, v) for v in arg)
            if key == "Condition":
                return self.condition(stack, arg)
        return self.resolve(value, stack)

    def resolve(self, value: Any, stack: str) -> Any:
        """``value`` with every intrinsic function replaced by its deployed value."""
        if isinstance(value, list):
            return [self.resolve(v, stack) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self._ref(stack, arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._get_att(stack, logical_id, attribute)
            if key == "Fn::Join":
                sep, parts = arg
                return str(sep).join(str(self.resolve(p, stack)) for p in self.resolve(parts, stack))
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                return self._sub(stack, text, variables)
            if key == "Fn::ImportValue":
                export = self.resolve(arg, stack)
                if export not in self._exports:
                    raise Unresolvable(f"{stack}: Fn::ImportValue {export!r} is exported by no stack")
                return self._exports[export]
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items, stack)[int(self.resolve(index, stack))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text, stack)).split(sep)
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(stack, name) else no, stack)
            if key.startswith("Fn::"):
                raise Unresolvable(f"{stack}: {key} is not supported by tests/iamcheck")
        return {k: self.resolve(v, stack) for k, v in value.items()}

    def _collect_exports(self) -> Dict[str, str]:
        exports: Dict[str, str] = {}
        for stack, template in self.templates.items():
            for output in template.get("Outputs", {}).values():
                if "Export" in output:
                    name = self.resolve(output["Export"]["Name"], stack)
                    # resolved lazily: an output may itself import nothing
                    exports[name] = self.resolve(output["Value"], stack)
        return exports

    # --- roles and functions --------------------------------------------------------------

    def _collect_roles(self) -> Dict[str, Role]:
        roles: Dict[str, Role] = {}
        for stack, logical_id, resource in self.resources("AWS::IAM::Role"):
            props = self.resolve(resource.get("Properties", {}), stack)
            name = self.physical_name(stack, logical_id)
            roles[name] = Role(
                stack, logical_id, name, self.arn_of(stack, logical_id),
                trust=props.get("AssumeRolePolicyDocument", {}),
                policies=[p["PolicyDocument"] for p in props.get("Policies", [])],
                managed_policy_arns=list(props.get("ManagedPolicyArns", [])),
            )
        for type_ in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for stack, _, resource in self.resources(type_):
                props = self.resolve(resource.get("Properties", {}), stack)
                for role_name in props.get("Roles", []):
                    if role_name in roles:
                        roles[role_name].policies.append(props["PolicyDocument"])
        return roles

    def role_by_arn(self, arn: str) -> Role:
        """The role of the environment with this ARN (KeyError if none)."""
        for role in self.roles.values():
            if role.arn == arn:
                return role
        raise KeyError(f"{self.name}: no role {arn}")

    def _collect_functions(self) -> Dict[str, Function]:
        functions: Dict[str, Function] = {}
        for stack, logical_id, resource in self.resources("AWS::Lambda::Function"):
            props = resource.get("Properties", {})
            handler = props.get("Handler", "")
            module = handler.rpartition(".")[0]
            env = self.resolve(props.get("Environment", {}).get("Variables", {}), stack)
            role = self.role_by_arn(self.resolve(props["Role"], stack))
            functions[module] = Function(stack, logical_id, module, self.arn_of(stack, logical_id),
                                         role, {k: str(v) for k, v in env.items()})
        return functions

    def state_machines(self) -> Iterator[Tuple[str, str, Dict[str, Any], Role]]:
        """``(stack, logical id, definition, role)`` of each state machine."""
        for stack, logical_id, resource in self.resources("AWS::StepFunctions::StateMachine"):
            props = resource["Properties"]
            definition = self.resolve(props["DefinitionString"], stack)
            role = self.role_by_arn(self.resolve(props["RoleArn"], stack))
            yield stack, logical_id, json.loads(definition), role


def environments(templates: Mapping[str, Dict[str, Any]], prefixes: Mapping[str, str],
                 region: str) -> Dict[str, Environment]:
    """Group ``templates`` (stack name -> template) by config prefix (``recsys-dev``...)."""
    out = {}
    for name, prefix in prefixes.items():
        mine = {s: t for s, t in templates.items() if s.startswith(prefix + "-")}
        out[name] = Environment(name, mine, region)
    return out
