"""The live CRM of the emulated portal: reads in HubSpot's v3/v4 JSON shapes, and the mutations tests drive.

Callers hold the state's lock. Reads never change anything; every mutation stamps the record's
last-modified time from `now_ms`, so incremental searches see it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sandbox.hubspot_data import (
    ENGAGEMENT_TYPES,
    OBJECT_TYPES,
    CrmRecord,
    Owner,
    PortalData,
    created_property,
    iso,
    modified_property,
)
from sandbox.hubspot_search import SearchError, parse_request, run_search

LIST_MAX = 100
BATCH_READ_MAX = 100
OWNERS_MAX = 500
ASSOCIATION_INPUTS_MAX = 1000
ASSOCIATION_PAGE = 500
DEFAULT_PROPERTIES = {
    "contacts": ("firstname", "lastname", "email"),
    "companies": ("name", "domain"),
}
# v3 inline association type names and v4 HUBSPOT_DEFINED type ids, by (from, to)
ASSOCIATION_TYPES: dict[tuple[str, str], tuple[str, int]] = {
    ("calls", "contacts"): ("call_to_contact", 194),
    ("meetings", "contacts"): ("meeting_event_to_contact", 200),
    ("emails", "contacts"): ("email_to_contact", 198),
    ("contacts", "companies"): ("contact_to_company", 279),
    ("companies", "contacts"): ("company_to_contact", 280),
}


class HubspotStore:
    """Queries and mutations over one portal's records."""

    def __init__(self, data: PortalData, now_ms: Callable[[], int]) -> None:
        self.data = data
        self.now_ms = now_ms
        # records served by the read endpoints (get, list, search, batch read), by (object type, id):
        # counters for tests and benchmarks, cleared with the stats
        self.served: Counter[tuple[str, int]] = Counter()

    # -- rendering ------------------------------------------------------------------------------
    def render(
        self, record: CrmRecord, properties: Iterable[str] | None, redact: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """A SimplePublicObject: requested properties (null when unset) plus the always-returned ones."""
        self.served[(record.type, record.id)] += 1
        wanted = list(properties) if properties is not None else list(DEFAULT_PROPERTIES.get(record.type, ()))
        wanted += ["hs_object_id", created_property(record.type), modified_property(record.type)]
        props = {name: record.properties.get(name) for name in dict.fromkeys(wanted) if name not in redact}
        props["hs_object_id"] = str(record.id)
        body: dict[str, Any] = {
            "id": str(record.id),
            "properties": props,
            "createdAt": iso(record.created_ms),
            "updatedAt": iso(record.updated_ms),
            "archived": record.archived,
        }
        if record.archived_ms is not None:
            body["archivedAt"] = iso(record.archived_ms)
        return body

    def _inline_associations(self, record: CrmRecord, to_types: Iterable[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for to_type in to_types:
            ids = sorted(record.associations.get(to_type, ()))
            name = ASSOCIATION_TYPES.get((record.type, to_type), (f"{record.type}_to_{to_type}", 0))[0]
            if ids:
                out[to_type] = {"results": [{"id": str(i), "type": name} for i in ids]}
        return out

    # -- reads ------------------------------------------------------------------------------------
    def table(self, object_type: str) -> dict[int, CrmRecord]:
        if object_type not in OBJECT_TYPES:
            raise KeyError(object_type)
        return self.data.records[object_type]

    def list_page(
        self,
        object_type: str,
        *,
        limit: int,
        after: str | None,
        properties: list[str] | None,
        associations: list[str],
        archived: bool,
        redact: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """GET /crm/v3/objects/{type}: by id, `after` being the last id served."""
        if not 1 <= limit <= LIST_MAX:
            raise SearchError(f"limit must be between 1 and {LIST_MAX}")
        floor = int(after) if after and after.isdigit() else 0
        rows = sorted(
            (r for r in self.table(object_type).values() if r.archived == archived and r.id > floor),
            key=lambda r: r.id,
        )
        page = rows[:limit]
        results = []
        for record in page:
            body = self.render(record, properties, redact)
            inline = self._inline_associations(record, associations)
            if inline:
                body["associations"] = inline
            results.append(body)
        out: dict[str, Any] = {"results": results}
        if len(rows) > limit:
            out["paging"] = {"next": {"after": str(page[-1].id), "link": None}}
        return out

    def get(self, object_type: str, record_id: int) -> CrmRecord | None:
        """A record by id; a merged-away contact id answers with the record it was merged into."""
        table = self.table(object_type)
        if object_type == "contacts":
            seen = set()
            while record_id in self.data.merged_into and record_id not in seen:
                seen.add(record_id)
                record_id = self.data.merged_into[record_id]
        return table.get(record_id)

    def search(self, object_type: str, body: Any, redact: frozenset[str] = frozenset()) -> dict[str, Any]:
        request = parse_request(body)
        total, page, after = run_search(self.table(object_type).values(), request)
        out: dict[str, Any] = {"total": total, "results": [self.render(r, request.properties, redact) for r in page]}
        if after is not None:
            out["paging"] = {"next": {"after": after}}
        return out

    def batch_read(
        self, object_type: str, body: Any, redact: frozenset[str] = frozenset()
    ) -> tuple[int, dict[str, Any]]:
        """POST /crm/v3/objects/{type}/batch/read: 200, or 207 naming the ids it could not find."""
        inputs = body.get("inputs") if isinstance(body, Mapping) else None
        if not isinstance(inputs, list) or len(inputs) > BATCH_READ_MAX:
            raise SearchError(f"inputs must be a list of at most {BATCH_READ_MAX} ids")
        props = body.get("properties")
        properties = [str(p) for p in props] if isinstance(props, list) else None
        archived = bool(body.get("archived", False))
        found, missing = [], []
        for item in inputs:
            raw = str(item.get("id", "")) if isinstance(item, Mapping) else ""
            record = self.get(object_type, int(raw)) if raw.isdigit() else None
            if record is None or record.archived != archived:
                missing.append(raw)
            else:
                found.append(self.render(record, properties, redact))
        now = iso(self.now_ms())
        out: dict[str, Any] = {"status": "COMPLETE", "results": found, "startedAt": now, "completedAt": now}
        if not missing:
            return 200, out
        out["numErrors"] = 1
        out["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some records.",
                "context": {"ids": missing},
            }
        ]
        return 207, out

    def owners_page(self, *, limit: int, after: str | None, archived: bool, email: str | None) -> dict[str, Any]:
        if not 1 <= limit <= OWNERS_MAX:
            raise SearchError(f"limit must be between 1 and {OWNERS_MAX}")
        floor = int(after) if after and after.isdigit() else 0
        rows = sorted(
            (
                o
                for o in self.data.owners.values()
                if o.archived == archived and o.id > floor and (email is None or o.email == email.lower())
            ),
            key=lambda o: o.id,
        )
        page = rows[:limit]
        out: dict[str, Any] = {"results": [_owner(o) for o in page]}
        if len(rows) > limit:
            out["paging"] = {"next": {"after": str(page[-1].id), "link": None}}
        return out

    def reverse_links(self, from_type: str, to_type: str) -> dict[int, set[int]]:
        """Links kept on the other side (a contact keeps its company): HubSpot associations read both ways."""
        found: dict[int, set[int]] = defaultdict(set)
        for record in self.table(to_type).values():
            for other in record.associations.get(from_type, ()):
                found[other].add(record.id)
        return found

    def associations(self, from_type: str, to_type: str, body: Any) -> tuple[int, dict[str, Any]]:
        """POST /crm/v4/associations/{from}/{to}/batch/read, each object's list paged by 500."""
        inputs = body.get("inputs") if isinstance(body, Mapping) else None
        if not isinstance(inputs, list) or len(inputs) > ASSOCIATION_INPUTS_MAX:
            raise SearchError(f"inputs must be a list of at most {ASSOCIATION_INPUTS_MAX} ids")
        table = self.table(from_type)
        reverse = self.reverse_links(from_type, to_type)
        type_id = ASSOCIATION_TYPES.get((from_type, to_type), ("", 0))[1]
        results, missing = [], []
        for item in inputs:
            raw = str(item.get("id", "")) if isinstance(item, Mapping) else ""
            record = table.get(int(raw)) if raw.isdigit() else None
            ids = (
                sorted(record.associations.get(to_type, set()) | reverse.get(record.id, set()))
                if record is not None and not record.archived
                else []
            )
            if not ids:
                missing.append(raw)
                continue
            offset = int(item.get("after") or 0) if str(item.get("after") or "0").isdigit() else 0
            chunk = ids[offset : offset + ASSOCIATION_PAGE]
            result: dict[str, Any] = {
                "from": {"id": raw},
                "to": [
                    {
                        "toObjectId": i,
                        "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}],
                    }
                    for i in chunk
                ],
            }
            if offset + ASSOCIATION_PAGE < len(ids):
                result["paging"] = {"next": {"after": str(offset + ASSOCIATION_PAGE), "link": None}}
            results.append(result)
        now = iso(self.now_ms())
        out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if not missing:
            return 200, out
        out["numErrors"] = len(missing)
        out["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": f"No {to_type} is associated with {from_type} {raw}.",
                "context": {"fromObjectId": [raw]},
            }
            for raw in missing
        ]
        return 207, out

    # -- mutations ----------------------------------------------------------------------------------
    def _stamp(self, record: CrmRecord, at_ms: int | None) -> None:
        record.stamp(at_ms if at_ms is not None else self.now_ms())

    def create(
        self,
        object_type: str,
        properties: Mapping[str, str | None],
        associations: Mapping[str, Iterable[int]] | None = None,
        at_ms: int | None = None,
    ) -> CrmRecord:
        now = at_ms if at_ms is not None else self.now_ms()
        record_id = self.data.new_id(object_type)
        props: dict[str, str | None] = {k: (None if v is None else str(v)) for k, v in properties.items()}
        props["hs_object_id"] = str(record_id)
        props[created_property(object_type)] = iso(now)
        record = CrmRecord(record_id, object_type, props, now, now)
        for to_type, ids in (associations or {}).items():
            record.associations[to_type] = {int(i) for i in ids}
        self._stamp(record, now)
        return self.data.add(record)

    def update(
        self, object_type: str, record_id: int, properties: Mapping[str, str | None], at_ms: int | None = None
    ) -> CrmRecord:
        record = self.table(object_type)[record_id]
        if record.archived:
            raise KeyError(record_id)
        record.properties.update({k: (None if v is None else str(v)) for k, v in properties.items()})
        self._stamp(record, at_ms)
        return record

    def archive(self, object_type: str, record_id: int, at_ms: int | None = None) -> CrmRecord:
        record = self.table(object_type)[record_id]
        now = at_ms if at_ms is not None else self.now_ms()
        record.archived_ms = now
        record.stamp(now)
        return record

    def restore(self, object_type: str, record_id: int, at_ms: int | None = None) -> CrmRecord:
        record = self.table(object_type)[record_id]
        record.archived_ms = None
        self._stamp(record, at_ms)
        return record

    def merge(self, object_type: str, primary_id: int, merged_id: int, at_ms: int | None = None) -> CrmRecord:
        """Merge `merged_id` into `primary_id` (which keeps its id); the loser's links move over."""
        table = self.table(object_type)
        winner, loser = table[primary_id], table[merged_id]
        if winner.archived or loser.archived or primary_id == merged_id:
            raise ValueError("only two distinct live records can be merged")
        for name, value in loser.properties.items():
            if winner.properties.get(name) in (None, "") and value not in (None, ""):
                winner.properties[name] = value
        if object_type == "contacts" and loser.properties.get("email"):
            extra = [e for e in (winner.properties.get("hs_additional_emails") or "").split(";") if e]
            winner.properties["hs_additional_emails"] = ";".join([*extra, str(loser.properties["email"])])
        merged = [i for i in (winner.properties.get("hs_merged_object_ids") or "").split(";") if i]
        merged += [i for i in (loser.properties.get("hs_merged_object_ids") or "").split(";") if i]
        winner.properties["hs_merged_object_ids"] = ";".join([*merged, str(merged_id)])
        for to_type, ids in loser.associations.items():
            winner.associations.setdefault(to_type, set()).update(ids)
        for engagement_type in ENGAGEMENT_TYPES:
            for record in self.data.records[engagement_type].values():
                linked = record.associations.get(object_type)
                if linked and merged_id in linked:
                    linked.discard(merged_id)
                    linked.add(primary_id)
        del table[merged_id]
        self.data.merged_into[merged_id] = primary_id
        self._stamp(winner, at_ms)
        return winner

    def set_modified(self, object_type: str, record_ids: Iterable[int], at_ms: int) -> int:
        """Give records one modification time (ties on purpose); returns how many."""
        table = self.table(object_type)
        count = 0
        for record_id in record_ids:
            table[record_id].stamp(at_ms)
            count += 1
        return count


def _owner(owner: Owner) -> dict[str, Any]:
    return {
        "id": str(owner.id),
        "email": owner.email,
        "firstName": owner.first_name,
        "lastName": owner.last_name,
        "userId": owner.user_id,
        "createdAt": iso(owner.created_ms),
        "updatedAt": iso(owner.updated_ms),
        "archived": owner.archived,
        "teams": [],
    }
