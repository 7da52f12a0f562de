"""The local stack reads the template's short-form intrinsics the way cfn-lint does."""

from __future__ import annotations

import pytest
from cfnlint.decode import cfn_yaml

from cloud.local.cfn_yaml import TemplateSyntaxError, parse_template
from cloud.local.template import TEMPLATE_PATH


def test_every_short_form_becomes_its_long_form() -> None:
    document = parse_template(
        """
Conditions:
  HasTopic: !Not [!Equals [!Ref TopicArn, ""]]
  Both: !And [!Condition HasTopic, !Or [!Condition HasTopic, !Condition HasTopic]]
Resources:
  Fn:
    Properties:
      Role: !GetAtt FnRole.Arn
      Other: !GetAtt [FnRole, Arn]
      Name: !Sub "${AWS::StackName}-fn"
      Pair: !Sub ["${X}", {X: !Ref Y}]
      Topic: !If [HasTopic, !Ref TopicArn, !Ref AWS::NoValue]
      Joined: !Join [",", [a, b]]
"""
    )
    props = document["Resources"]["Fn"]["Properties"]
    assert document["Conditions"]["HasTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "TopicArn"}, ""]}]
    }
    assert document["Conditions"]["Both"]["Fn::And"][0] == {"Condition": "HasTopic"}
    assert props["Role"] == {"Fn::GetAtt": ["FnRole", "Arn"]}
    assert props["Other"] == {"Fn::GetAtt": ["FnRole", "Arn"]}
    assert props["Name"] == {"Fn::Sub": "${AWS::StackName}-fn"}
    assert props["Pair"] == {"Fn::Sub": ["${X}", {"X": {"Ref": "Y"}}]}
    assert props["Topic"] == {"Fn::If": ["HasTopic", {"Ref": "TopicArn"}, {"Ref": "AWS::NoValue"}]}
    assert props["Joined"] == {"Fn::Join": [",", ["a", "b"]]}


def test_the_template_reads_as_cfn_lint_reads_it() -> None:
    ours = parse_template(TEMPLATE_PATH.read_text(encoding="utf-8"))
    assert ours == cfn_yaml.load(str(TEMPLATE_PATH))
    assert len(ours["Resources"]) > 20


@pytest.mark.parametrize("text", ["just text", "a: [unclosed", "- a list"])
def test_what_is_not_a_template_is_refused_with_its_source(text: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=r"template\.yaml"):
        parse_template(text, "template.yaml")


def test_unknown_tags_are_refused() -> None:
    with pytest.raises(TemplateSyntaxError, match="NotAFunction"):
        parse_template("a: !NotAFunction x")
