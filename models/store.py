"""Small store primitives shared by writers: the org lock, insert-or-ignore, feed publishing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Insert, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.tables import Base, Contact, Org


def lock_org(session: Session, org_id: int) -> int:
    """Serialize an org's network writes (row lock; SQLite's write lock does it already).

    The feed's sequence numbers are assigned under this lock, so they follow commit order.
    """
    seq = session.execute(select(Org.feed_seq).where(Org.id == org_id).with_for_update()).scalar_one()
    return int(seq)


def bulk_insert(table: type[Base]) -> Insert:
    """An ORM bulk INSERT that sends every row's None as NULL, so all rows share one multi-row statement.

    The ORM drops None-valued keys by default; rows whose None columns differ (noise, names, refs) then
    split into a statement per run of alike rows: 500 rows cost ~100 statements instead of one.
    """
    return insert(table).execution_options(render_nulls=True)


def insert_ignore(session: Session, table: type[Base], rows: Sequence[dict[str, Any]], keys: list[str]) -> None:
    """Bulk insert, skipping rows whose unique key already exists."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(table).on_conflict_do_nothing(index_elements=keys)
    session.execute(stmt, list(rows))


def publish_contacts(session: Session, org_id: int, contact_ids: Iterable[int]) -> int:
    """Give changed contacts the next feed sequence numbers (call with the org locked)."""
    ids = sorted(set(contact_ids))
    if not ids:
        return 0
    seq = lock_org(session, org_id)
    session.execute(update(Contact), [{"id": cid, "feed_seq": seq + n} for n, cid in enumerate(ids, start=1)])
    session.execute(update(Org).where(Org.id == org_id).values(feed_seq=seq + len(ids)))
    return len(ids)
