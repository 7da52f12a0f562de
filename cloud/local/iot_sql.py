"""The subset of AWS IoT SQL (version 2016-03-23) that our topic rules use, evaluated locally.

Supported: ``SELECT * | expr [AS name], ... FROM 'filter' [WHERE condition]``; expressions are
field paths (``a.b``), string and number literals, comparisons (= <> != < <= > >=), AND, OR,
NOT, and the functions topic([n]), clientid(), timestamp(), newuuid(), parse_time(fmt, ms[, tz])
and encode(*, 'base64'). The same expressions serve the ``${...}`` substitution templates of
rule actions. A reference to a field the message does not have is an error here, where AWS
would substitute nothing; failing loudly sends the message to the error action instead of
writing it under a malformed key.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo


class IotSqlError(ValueError):
    """A rule's SQL or substitution template is outside the supported subset."""


class EvaluationError(ValueError):
    """An expression could not be evaluated against a message."""


@dataclass(frozen=True)
class MessageContext:
    """What an expression can see: the payload and the message's metadata."""

    topic: str
    payload: bytes
    client_id: str = ""
    timestamp_ms: int = 0
    _json: Any = field(default=None, compare=False)
    _json_error: str | None = field(default=None, compare=False)

    @classmethod
    def create(
        cls, topic: str, payload: bytes, client_id: str, timestamp_ms: int
    ) -> MessageContext:
        import json

        try:
            # IoT Core's JSON has no NaN or Infinity: such a payload is not JSON to a rule.
            document, error = json.loads(payload, parse_constant=_no_constant), None
        except (ValueError, UnicodeDecodeError) as exc:
            document, error = None, f"payload is not JSON: {exc}"
        except RecursionError:
            # IoT Core refuses JSON nested this deep as well; the bytes go to the error action.
            document, error = None, "payload is not JSON a rule can read: nested too deeply"
        return cls(topic, payload, client_id, timestamp_ms, document, error)

    def document(self) -> Any:
        if self._json_error is not None:
            raise EvaluationError(self._json_error)
        return self._json


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'(?:[^']|'')*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<op><>|!=|<=|>=|=|<|>|\(|\)|,|\*)|(?P<name>[A-Za-z_][A-Za-z0-9_.]*))"
)

Expr = Callable[[MessageContext], Any]


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            raise IotSqlError(f"unsupported IoT SQL near {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


def _unquote(literal: str) -> str:
    if literal[0] == "'":
        return literal[1:-1].replace("''", "'")
    return literal[1:-1].encode().decode("unicode_escape")


def _java_to_strftime(pattern: str) -> str:
    out = pattern
    for java, py in (
        ("yyyy", "%Y"),
        ("MM", "%m"),
        ("dd", "%d"),
        ("HH", "%H"),
        ("mm", "%M"),
        ("ss", "%S"),
    ):
        out = out.replace(java, py)
    return out


def _topic_level(ctx: MessageContext, args: list[Any]) -> str:
    if not args:
        return ctx.topic
    levels = ctx.topic.split("/")
    index = int(args[0])
    if not 1 <= index <= len(levels):
        raise EvaluationError(f"topic({index}) is out of range for topic {ctx.topic!r}")
    return levels[index - 1]


def _parse_time(_: MessageContext, args: list[Any]) -> str:
    if len(args) not in (2, 3):
        raise EvaluationError("parse_time expects (format, epoch ms[, time zone])")
    fmt, millis = args[0], args[1]
    if isinstance(millis, bool) or not isinstance(millis, int | float):
        raise EvaluationError(f"parse_time expects epoch milliseconds, got {millis!r}")
    zone = ZoneInfo(args[2]) if len(args) == 3 else UTC
    try:
        moment = datetime.fromtimestamp(millis / 1000, tz=zone)
    except (OverflowError, OSError, ValueError) as exc:
        raise EvaluationError(f"parse_time cannot read {millis!r}: {exc}") from None
    return moment.strftime(_java_to_strftime(str(fmt)))


def _encode(ctx: MessageContext, args: list[Any]) -> str:
    if len(args) != 2 or args[1] != "base64":
        raise EvaluationError("encode expects (*, 'base64')")
    data = ctx.payload if args[0] is _STAR else str(args[0]).encode()
    return base64.b64encode(data).decode()


_STAR = object()
FUNCTIONS: dict[str, Callable[[MessageContext, list[Any]], Any]] = {
    "topic": _topic_level,
    "clientid": lambda ctx, _: ctx.client_id,
    "timestamp": lambda ctx, _: ctx.timestamp_ms,
    "newuuid": lambda _ctx, _args: str(uuid.uuid4()),
    "parse_time": _parse_time,
    "encode": _encode,
}


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise IotSqlError("IoT SQL ends too early")
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token[0] == "name" and token[1].upper() == word:
            self.pos += 1
            return True
        return False

    def expect(self, value: str) -> None:
        _, text = self.take()
        if text.upper() != value:
            raise IotSqlError(f"expected {value!r} in IoT SQL, found {text!r}")

    def condition(self) -> Expr:
        left = self.conjunction()
        while self.keyword("OR"):
            right = self.conjunction()
            left = (lambda a, b: lambda ctx: bool(a(ctx)) or bool(b(ctx)))(left, right)
        return left

    def conjunction(self) -> Expr:
        left = self.negation()
        while self.keyword("AND"):
            right = self.negation()
            left = (lambda a, b: lambda ctx: bool(a(ctx)) and bool(b(ctx)))(left, right)
        return left

    def negation(self) -> Expr:
        if self.keyword("NOT"):
            inner = self.negation()
            return lambda ctx: not inner(ctx)
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.operand()
        token = self.peek()
        if token and token[0] == "op" and token[1] in ("=", "<>", "!=", "<", "<=", ">", ">="):
            self.pos += 1
            right = self.operand()
            return _comparison(token[1], left, right)
        return left

    def operand(self) -> Expr:
        kind, text = self.take()
        if kind == "num":
            number: Any = float(text) if "." in text else int(text)
            return lambda _ctx: number
        if kind == "str":
            value = _unquote(text)
            return lambda _ctx: value
        if kind == "op" and text == "(":
            inner = self.condition()
            self.expect(")")
            return inner
        if kind == "op" and text == "*":
            return lambda _ctx: _STAR
        if kind == "name":
            nxt = self.peek()
            if nxt == ("op", "("):
                return self.call(text)
            return _field_path(text)
        raise IotSqlError(f"unexpected {text!r} in IoT SQL")

    def call(self, name: str) -> Expr:
        func = FUNCTIONS.get(name.lower())
        if func is None:
            raise IotSqlError(f"function {name}() is not in the supported IoT SQL subset")
        self.expect("(")
        args: list[Expr] = []
        if self.peek() != ("op", ")"):
            args.append(self.condition())
            while self.peek() == ("op", ","):
                self.pos += 1
                args.append(self.condition())
        self.expect(")")
        return lambda ctx: func(ctx, [arg(ctx) for arg in args])


def _comparison(op: str, left: Expr, right: Expr) -> Expr:
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b,
        "<>": lambda a, b: a != b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    test = compare[op]

    def evaluate(ctx: MessageContext) -> bool:
        try:
            return test(left(ctx), right(ctx))
        except (EvaluationError, TypeError):
            # IoT SQL yields Undefined here, and Undefined in WHERE is false.
            return False

    return evaluate


def _field_path(path: str) -> Expr:
    parts = path.split(".")

    def evaluate(ctx: MessageContext) -> Any:
        value = ctx.document()
        for part in parts:
            if not isinstance(value, dict) or part not in value:
                raise EvaluationError(f"message has no field {path!r}")
            value = value[part]
        return value

    return evaluate


def compile_expression(text: str) -> Expr:
    """Compile one IoT SQL expression (as used inside ``${...}``)."""
    parser = _Parser(_tokenize(text))
    expr = parser.condition()
    if parser.peek() is not None:
        raise IotSqlError(f"unexpected {parser.peek()[1]!r} after expression {text!r}")  # type: ignore[index]
    return expr


@dataclass(frozen=True)
class SelectItem:
    alias: str | None
    expr: Expr | None  # None means `*`


@dataclass(frozen=True)
class Statement:
    """A compiled rule statement."""

    sql: str
    items: tuple[SelectItem, ...]
    topic_filter: str
    where: Expr | None

    def matches(self, topic: str) -> bool:
        return topic_matches(self.topic_filter, topic)

    def selects_raw(self) -> bool:
        return len(self.items) == 1 and self.items[0].expr is None

    def select(self, ctx: MessageContext) -> bytes | dict[str, Any]:
        """Outgoing payload: the raw bytes for a bare `SELECT *`, else a JSON object."""
        if self.selects_raw():
            return ctx.payload
        out: dict[str, Any] = {}
        for item in self.items:
            if item.expr is None:
                document = ctx.document()
                if not isinstance(document, dict):
                    raise EvaluationError("SELECT * with other fields needs a JSON object")
                out.update(document)
                continue
            try:
                out[item.alias or "_"] = item.expr(ctx)
            except EvaluationError:
                continue  # an Undefined value leaves the field out, as in AWS
        return out

    def accepts(self, ctx: MessageContext) -> bool:
        if self.where is None:
            return True
        try:
            return bool(self.where(ctx))
        except EvaluationError:
            return False


def compile_statement(sql: str) -> Statement:
    """Compile a rule's SQL statement, refusing what the local engine cannot run faithfully."""
    parser = _Parser(_tokenize(sql))
    if not parser.keyword("SELECT"):
        raise IotSqlError(f"rule SQL must start with SELECT: {sql!r}")
    items: list[SelectItem] = []
    while True:
        if parser.peek() == ("op", "*"):
            parser.pos += 1
            items.append(SelectItem(None, None))
        else:
            expr = parser.condition()
            alias = None
            if parser.keyword("AS"):
                alias = parser.take()[1]
            items.append(SelectItem(alias, expr))
        if parser.peek() == ("op", ","):
            parser.pos += 1
            continue
        break
    if not parser.keyword("FROM"):
        raise IotSqlError(f"rule SQL needs FROM 'topic filter': {sql!r}")
    kind, text = parser.take()
    if kind != "str":
        raise IotSqlError(f"FROM expects a quoted topic filter, found {text!r}")
    where = parser.condition() if parser.keyword("WHERE") else None
    if parser.peek() is not None:
        raise IotSqlError(f"unsupported IoT SQL after {text!r}: {sql!r}")
    return Statement(sql=sql, items=tuple(items), topic_filter=_unquote(text), where=where)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching with + and #."""
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def render_template(template: str, ctx: MessageContext) -> str:
    """Fill a substitution template such as an S3 key; an undefined reference raises."""
    out: list[str] = []
    for literal, expression in _template_parts(template):
        out.append(literal)
        if expression is None:
            continue
        value = compile_expression(expression)(ctx)
        if value is _STAR or isinstance(value, dict | list) or value is None:
            raise EvaluationError(f"substitution ${{{expression}}} is not a scalar value")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        out.append(str(value))
    return "".join(out)


def _template_parts(template: str) -> list[tuple[str, str | None]]:
    """Split a template into (literal text, expression or None) pairs."""
    # Quoted arguments may hold braces, so each ${...} is found by scanning, not by a regex.
    parts: list[tuple[str, str | None]] = []
    pos = 0
    while True:
        start = template.find("${", pos)
        if start < 0:
            parts.append((template[pos:], None))
            return parts
        index, quote = start + 2, ""
        while index < len(template):
            char = template[index]
            if quote:
                quote = "" if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == "}":
                break
            index += 1
        else:
            raise IotSqlError(f"unclosed substitution in template {template!r}")
        parts.append((template[pos:start], template[start + 2 : index]))
        pos = index + 1
