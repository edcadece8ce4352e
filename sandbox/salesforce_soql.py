"""A small, honest SOQL subset: parse a query into a plan, or fail the way Salesforce fails.

Supported: SELECT of fields, one-level parent fields (Account.Name) and child subqueries
((SELECT RelationId FROM EventRelations)); FROM one object; WHERE with =, !=, <>, <, <=, >, >=, IN,
NOT IN, AND, OR, NOT and parentheses over string, number, boolean, null, date and dateTime literals;
ORDER BY with ASC/DESC and NULLS FIRST/LAST; LIMIT. Anything else is MALFORMED_QUERY, an unknown
object INVALID_TYPE and an unknown field INVALID_FIELD, each a 400 like the real API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sandbox.salesforce_schema import CHILDREN, OBJECTS, PARENTS, canonical_field, canonical_object

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
    |(?P<date>\d{4}-\d{2}-\d{2})
    |(?P<number>-?\d+(?:\.\d+)?)
    |(?P<string>'(?:[^'\\]|\\.)*')
    |(?P<op>!=|<>|<=|>=|=|<|>)
    |(?P<punct>[(),])
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = frozenset(
    {"select", "from", "where", "and", "or", "not", "in", "order", "by", "asc", "desc", "nulls", "first", "last",
     "limit", "null", "true", "false"}
)  # fmt: skip
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}


class SoqlError(Exception):
    """A query Salesforce would refuse: `code` is its errorCode (MALFORMED_QUERY, INVALID_FIELD, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class FieldPath:
    """A selected or compared field: on the object itself, or one hop up a parent relationship."""

    name: str  # canonical field name (on the parent object when `relation` is set)
    relation: str | None = None  # canonical relationship name, e.g. "Account"

    @property
    def label(self) -> str:
        return f"{self.relation}.{self.name}" if self.relation else self.name


@dataclass(frozen=True)
class SubQuery:
    """A child relationship subquery in the SELECT list."""

    relation: str
    child: str
    lookup: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Comparison:
    path: FieldPath
    op: str  # =, !=, <, <=, >, >=, in, not in
    value: Any  # a literal, or a tuple of literals for IN


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or, not
    args: tuple[Expr, ...]


Expr = Comparison | BoolOp


@dataclass(frozen=True)
class OrderKey:
    path: FieldPath
    descending: bool
    nulls_first: bool


@dataclass
class Plan:
    """A parsed query, ready to run against records."""

    sobject: str
    fields: list[FieldPath | SubQuery] = field(default_factory=list)
    where: Expr | None = None
    order: list[OrderKey] = field(default_factory=list)
    limit: int | None = None


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text[pos : pos + 20].strip()}'")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent over the token list."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def keyword(self, *words: str) -> bool:
        """Consume the keyword sequence if it comes next."""
        for k, word in enumerate(words):
            tok = self.peek(k)
            if tok is None or tok[0] != "name" or tok[1].lower() != word:
                return False
        self.i += len(words)
        return True

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            found = self.peek()
            raise SoqlError("MALFORMED_QUERY", f"expecting '{word.upper()}', found '{found[1] if found else 'EOF'}'")

    def punct(self, char: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == "punct" and tok[1] == char:
            self.i += 1
            return True
        return False

    def expect_punct(self, char: str) -> None:
        if not self.punct(char):
            found = self.peek()
            raise SoqlError("MALFORMED_QUERY", f"expecting '{char}', found '{found[1] if found else 'EOF'}'")

    def name(self) -> str:
        tok = self.peek()
        if tok is None or tok[0] != "name" or tok[1].lower() in _KEYWORDS:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{tok[1] if tok else 'EOF'}'")
        self.i += 1
        return tok[1]

    # -- grammar ----------------------------------------------------------------------------------
    def query(self) -> Plan:
        self.expect_keyword("select")
        raw_fields: list[str | tuple[str, list[str]]] = []
        while True:
            if self.punct("("):
                raw_fields.append(self.subquery())
            else:
                raw_fields.append(self.name())
            if not self.punct(","):
                break
        self.expect_keyword("from")
        raw_object = self.name()
        sobject = canonical_object(raw_object)
        if sobject is None:
            raise SoqlError("INVALID_TYPE", f"sObject type '{raw_object}' is not supported.")
        plan = Plan(sobject)
        plan.fields = [self.resolve_select(sobject, f) for f in raw_fields]
        if self.keyword("where"):
            plan.where = self.disjunction(sobject)
        if self.keyword("order", "by"):
            plan.order = self.order(sobject)
        if self.keyword("limit"):
            tok = self.peek()
            if tok is None or tok[0] != "number" or not tok[1].isdigit():
                raise SoqlError("MALFORMED_QUERY", "LIMIT takes a non-negative integer")
            self.i += 1
            plan.limit = int(tok[1])
        if self.peek() is not None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{self.tokens[self.i][1]}'")
        return plan

    def subquery(self) -> tuple[str, list[str]]:
        self.expect_keyword("select")
        names = [self.name()]
        while self.punct(","):
            names.append(self.name())
        self.expect_keyword("from")
        relation = self.name()
        self.expect_punct(")")
        return relation, names

    def resolve_select(self, sobject: str, raw: str | tuple[str, list[str]]) -> FieldPath | SubQuery:
        if isinstance(raw, tuple):
            relation, names = raw
            found = next(
                ((r, c) for (o, r), c in CHILDREN.items() if o == sobject and r.lower() == relation.lower()), None
            )
            if found is None:
                raise SoqlError(
                    "INVALID_TYPE", f"Didn't understand relationship '{relation}' in FROM part of query call."
                )
            name, (child, lookup) = found
            return SubQuery(name, child, lookup, tuple(_field(child, n).name for n in names))
        return resolve_path(sobject, raw)

    def disjunction(self, sobject: str) -> Expr:
        args = [self.conjunction(sobject)]
        while self.keyword("or"):
            args.append(self.conjunction(sobject))
        return args[0] if len(args) == 1 else BoolOp("or", tuple(args))

    def conjunction(self, sobject: str) -> Expr:
        args = [self.negation(sobject)]
        while self.keyword("and"):
            args.append(self.negation(sobject))
        return args[0] if len(args) == 1 else BoolOp("and", tuple(args))

    def negation(self, sobject: str) -> Expr:
        if self.keyword("not"):
            return BoolOp("not", (self.negation(sobject),))
        if self.punct("("):
            inner = self.disjunction(sobject)
            self.expect_punct(")")
            return inner
        return self.comparison(sobject)

    def comparison(self, sobject: str) -> Comparison:
        path = resolve_path(sobject, self.name())
        kind = field_type(sobject, path)
        if self.keyword("not", "in"):
            return Comparison(path, "not in", self.literal_list(kind, path))
        if self.keyword("in"):
            return Comparison(path, "in", self.literal_list(kind, path))
        tok = self.peek()
        if tok is None or tok[0] != "op":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{tok[1] if tok else 'EOF'}'")
        self.i += 1
        op = "!=" if tok[1] == "<>" else tok[1]
        return Comparison(path, op, self.literal(kind, path))

    def literal_list(self, kind: str, path: FieldPath) -> tuple[Any, ...]:
        self.expect_punct("(")
        values = [self.literal(kind, path)]
        while self.punct(","):
            values.append(self.literal(kind, path))
        self.expect_punct(")")
        return tuple(values)

    def literal(self, kind: str, path: FieldPath) -> Any:
        try:
            return self._literal(kind, path)
        except ValueError:  # 2026-13-45 and the like: shaped like a date, not one
            raise SoqlError("MALFORMED_QUERY", f"invalid literal for field '{path.label}'") from None

    def _literal(self, kind: str, path: FieldPath) -> Any:
        tok = self.peek()
        if tok is None:
            raise SoqlError("MALFORMED_QUERY", "unexpected end of query")
        self.i += 1
        tkind, text = tok
        if tkind == "name" and text.lower() == "null":
            return None
        mismatch = SoqlError(
            "INVALID_FIELD", f"value of filter criterion for field '{path.label}' must be of type {kind}"
        )
        if kind in ("id", "string"):
            if tkind != "string":
                raise mismatch
            return _unquote(text)
        if kind == "boolean":
            if tkind != "name" or text.lower() not in ("true", "false"):
                raise mismatch
            return text.lower() == "true"
        if kind == "int":
            if tkind != "number":
                raise mismatch
            return float(text) if "." in text else int(text)
        if kind == "datetime":
            if tkind != "datetime":
                raise mismatch
            return parse_datetime(text)
        if tkind != "date":
            raise mismatch
        return date.fromisoformat(text)

    def order(self, sobject: str) -> list[OrderKey]:
        keys: list[OrderKey] = []
        while True:
            path = resolve_path(sobject, self.name())
            descending = self.keyword("desc")
            if not descending:
                self.keyword("asc")
            nulls_first = not descending
            if self.keyword("nulls", "first"):
                nulls_first = True
            elif self.keyword("nulls", "last"):
                nulls_first = False
            keys.append(OrderKey(path, descending, nulls_first))
            if not self.punct(","):
                return keys


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _field(sobject: str, name: str) -> FieldPath:
    canonical = canonical_field(sobject, name)
    if canonical is None:
        raise SoqlError(
            "INVALID_FIELD",
            f"No such column '{name}' on entity '{sobject}'. If you are attempting to use a custom field, be sure "
            "to append the '__c' after the custom field name.",
        )
    return FieldPath(canonical)


def resolve_path(sobject: str, raw: str) -> FieldPath:
    """`Name` or `Account.Name` on `sobject`, in canonical case; INVALID_FIELD when unknown."""
    parts = raw.split(".")
    if len(parts) == 1:
        return _field(sobject, raw)
    if len(parts) > 2:
        raise SoqlError("MALFORMED_QUERY", f"relationship paths deeper than one level are not supported: {raw}")
    found = next(((r, p) for (o, r), p in PARENTS.items() if o == sobject and r.lower() == parts[0].lower()), None)
    if found is None:
        raise SoqlError(
            "INVALID_FIELD", f"Didn't understand relationship '{parts[0]}' in field path. Check the spelling."
        )
    relation, (_, parent) = found
    return FieldPath(_field(parent, parts[1]).name, relation)


def field_type(sobject: str, path: FieldPath) -> str:
    """The type of the field a path names."""
    if path.relation is None:
        return OBJECTS[sobject][path.name]
    _, parent = PARENTS[(sobject, path.relation)]
    return OBJECTS[parent][path.name]


def parse_datetime(text: str) -> datetime:
    """A SOQL/REST dateTime ("...Z", "+00:00" or "+0000", optional milliseconds) as an aware datetime."""
    value = text.strip().replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", value):
        value = value[:-2] + ":" + value[-2:]
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse(text: str) -> Plan:
    """The plan of one SOQL statement, or SoqlError."""
    if not text or not text.strip():
        raise SoqlError("MALFORMED_QUERY", "empty query")
    return _Parser(text).query()
