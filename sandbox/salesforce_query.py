"""Running a parsed SOQL plan over the emulated records and rendering rows as the REST API does."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sandbox.salesforce_schema import PARENTS
from sandbox.salesforce_soql import Comparison, Expr, FieldPath, OrderKey, Plan, SubQuery

Record = dict[str, Any]
Lookup = Callable[[str], Record | None]  # id -> live record (any object), or None
Children = Callable[[str, str, str], list[Record]]  # (child object, lookup field, parent id) -> live rows


def format_value(value: Any) -> Any:
    """JSON form of a field value: dateTime as 2026-01-02T03:04:05.000+0000, date as 2026-01-02."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"
    if isinstance(value, date):
        return value.isoformat()
    return value


def _value(sobject: str, record: Record, path: FieldPath, lookup: Lookup) -> Any:
    if path.relation is None:
        return record.get(path.name)
    field_name, _ = PARENTS[(sobject, path.relation)]
    parent_id = record.get(field_name)
    parent = lookup(parent_id) if parent_id else None
    return None if parent is None else parent.get(path.name)


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _compare(left: Any, op: str, right: Any) -> bool:
    if op in ("in", "not in"):
        hit = _fold(left) in {_fold(v) for v in right} if left is not None else None in right
        return hit if op == "in" else not hit
    if right is None:
        return (left is None) == (op == "=") if op in ("=", "!=") else False
    if left is None:
        return op == "!="
    if op == "=":
        return bool(_fold(left) == _fold(right))
    if op == "!=":
        return bool(_fold(left) != _fold(right))
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def matches(sobject: str, record: Record, expr: Expr | None, lookup: Lookup) -> bool:
    """Whether a record satisfies a WHERE expression (None: every record)."""
    if expr is None:
        return True
    if isinstance(expr, Comparison):
        return _compare(_value(sobject, record, expr.path, lookup), expr.op, expr.value)
    if expr.op == "and":
        return all(matches(sobject, record, a, lookup) for a in expr.args)
    if expr.op == "or":
        return any(matches(sobject, record, a, lookup) for a in expr.args)
    return not matches(sobject, record, expr.args[0], lookup)


def _sort(sobject: str, rows: list[Record], order: Sequence[OrderKey], lookup: Lookup) -> list[Record]:
    def cmp(a: Record, b: Record) -> int:
        for key in order:
            va, vb = _fold(_value(sobject, a, key.path, lookup)), _fold(_value(sobject, b, key.path, lookup))
            if va == vb:
                continue
            if va is None or vb is None:
                first = va is None
                return (-1 if first else 1) if key.nulls_first else (1 if first else -1)
            result = -1 if va < vb else 1
            return -result if key.descending else result
        return 0

    return sorted(rows, key=functools.cmp_to_key(cmp))


def select(plan: Plan, rows: Sequence[Record], lookup: Lookup) -> list[Record]:
    """The records of a plan, filtered, ordered and limited (unrendered)."""
    found = [r for r in rows if matches(plan.sobject, r, plan.where, lookup)]
    if plan.order:
        found = _sort(plan.sobject, found, plan.order, lookup)
    return found[: plan.limit] if plan.limit is not None else found


def _attributes(sobject: str, record_id: Any, base: str) -> dict[str, Any]:
    return {"type": sobject, "url": f"{base}/sobjects/{sobject}/{record_id}"}


def render(plan: Plan, record: Record, lookup: Lookup, children: Children, base: str) -> Record:
    """One row as the REST API returns it: attributes, then the selected fields in order."""
    out: Record = {"attributes": _attributes(plan.sobject, record.get("Id"), base)}
    for item in plan.fields:
        if isinstance(item, SubQuery):
            out[item.relation] = _render_children(item, record, children, base)
        elif item.relation is None:
            out[item.name] = format_value(record.get(item.name))
        else:
            out[item.relation] = _render_parent(plan.sobject, record, item, out.get(item.relation), lookup, base)
    return out


def _render_parent(
    sobject: str, record: Record, item: FieldPath, current: Any, lookup: Lookup, base: str
) -> Record | None:
    field_name, parent_object = PARENTS[(sobject, item.relation or "")]
    parent_id = record.get(field_name)
    parent = lookup(parent_id) if parent_id else None
    if parent is None:
        return None
    node: Record = current if isinstance(current, dict) else {"attributes": _attributes(parent_object, parent_id, base)}
    node[item.name] = format_value(parent.get(item.name))
    return node


def _render_children(item: SubQuery, record: Record, children: Children, base: str) -> Mapping[str, Any] | None:
    rows = children(item.child, item.lookup, str(record.get("Id")))
    if not rows:
        return None
    rendered = [
        {"attributes": _attributes(item.child, r.get("Id"), base), **{f: format_value(r.get(f)) for f in item.fields}}
        for r in rows
    ]
    return {"totalSize": len(rendered), "done": True, "records": rendered}
