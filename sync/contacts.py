"""A page's bookkeeping of people: identities gaining or losing evidence, then names and companies."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.store import among, bulk_update, core, insert_with_ids
from models.tables import Contact, Identity, Participant, PersonRecord
from sync.identity import email_key, is_user_ref, ref_key, split_key
from sync.interactions import OrgView
from sync.resolve import Known, Prior, among_batches, domain_of, identity_rows, resolve

CONTACTS = core(Contact)
IDENTITIES = core(Identity)
PARTICIPANTS = core(Participant)
PERSON_RECORDS = core(PersonRecord)

RECORD_NAME_RANK = 2  # address-book and CRM names win over mail headers
MAIL_NAME_RANK = 1
CRM_SOURCES = ("salesforce", "hubspot")  # company names come from CRM accounts; address books hold free text


def participant_key(email: str, person_ref: str | None) -> str | None:
    """The identity key a participant row stands for (None for an empty one, or a CRM user: the org's own)."""
    if email:
        return email_key(email)
    return ref_key(person_ref) if person_ref and not is_user_ref(person_ref) else None


class ContactBook:
    """Which identity keys a page made people of, or may have unmade; settled once per transaction."""

    def __init__(self, session: Session, org: OrgView, org_id: int) -> None:
        self.session = session
        self.org = org
        self.org_id = org_id
        self.wanted: set[str] = set()
        self.vouched: set[str] = set()  # wanted keys whose evidence the settle itself just derived
        self.suspects: set[str] = set()
        self.created: set[int] = set()
        self.identities: dict[str, Known] = {}  # identity rows `ensure` read or wrote

    def want(self, keys: Iterable[str], *, vouched: bool = False) -> None:
        """These keys are external people of a non-noise activity, or carried by a person record.

        `vouched`: the activities they come from are re-derived and kept by this very settle, so the
        re-partition need not query their evidence (a record may still be deleted later in its page).
        """
        external = {k for k in keys if self._external(k)}
        self.wanted |= external
        if vouched:
            self.vouched |= external

    def suspect(self, keys: Iterable[str]) -> None:
        """These keys lost or may have lost evidence or ties (the org's own people are never contacts)."""
        self.suspects.update(k for k in keys if self._external(k))

    def _external(self, key: str) -> bool:
        """Refs and phones are external by construction; addresses unless the org's own."""
        kind, value = split_key(key)
        return kind != "email" or self.org.is_external(value)

    def suspect_sightings(self, sighting_ids: list[int]) -> None:
        """The participants of copies about to be removed are suspects."""
        for batch in among_batches(self.session, sighting_ids):
            for email, ref in self.session.execute(
                select(PARTICIPANTS.c.email, PARTICIPANTS.c.person_ref).where(
                    among(self.session, PARTICIPANTS.c.sighting_id, batch)
                )
            ):
                key = participant_key(email, ref)
                if key:
                    self.suspect((key,))

    def ensure(self, keys: set[str]) -> dict[str, int]:
        """The identity id of each key, creating a one-identity contact for new ones (settled later)."""
        self.identities.update(identity_rows(self.session, self.org_id, keys))
        found = {key: self.identities[key].id for key in keys if key in self.identities}
        missing = sorted(k for k in keys if k not in found)
        if missing:
            created = insert_with_ids(
                self.session, Contact, [{"org_id": self.org_id, "company_domain": domain_of([k])} for k in missing]
            )
            self.created.update(created)
            rows = [
                {"org_id": self.org_id, "kind": kind, "value": value, "contact_id": c, "origin_contact_id": c}
                for (kind, value), c in zip(map(split_key, missing), created, strict=True)
            ]
            ids = insert_with_ids(self.session, Identity, rows)
            self.identities.update((k, Known(i, c, c)) for k, i, c in zip(missing, ids, created, strict=True))
            found.update(zip(missing, ids, strict=True))
        return found

    def settle(self) -> tuple[set[int], set[int]]:
        """Re-partition around every touched key, then refresh names and companies.

        Returns (moved, changed): the contacts whose identities moved (merge, split, retirement: their
        ties are rebuilt) and every contact that changed (to publish), new or renamed ones included.
        """
        prior = Prior(self.vouched, self.identities, frozenset(self.created))
        resolved = resolve(self.session, self.org_id, self.wanted | self.suspects, self.created, prior)
        changed = resolved.changed | self.created
        around = set(resolved.contact_of.values()) | changed
        changed |= self._refresh(around)
        return resolved.changed, changed

    def _refresh(self, contact_ids: set[int]) -> set[int]:
        """Name (records first, then the most frequent mail name; ties: smallest), company domain and name."""
        changed: set[int] = set()
        for batch in among_batches(self.session, sorted(contact_ids)):
            changed |= self._refresh_batch(batch)
        return changed

    def _refresh_batch(self, contact_ids: list[int]) -> set[int]:
        """One bounded batch of `_refresh`."""
        emails: dict[int, list[str]] = defaultdict(list)
        refs: dict[int, list[str]] = defaultdict(list)
        for contact_id, kind, value in self.session.execute(
            select(IDENTITIES.c.contact_id, IDENTITIES.c.kind, IDENTITIES.c.value).where(
                among(self.session, IDENTITIES.c.contact_id, contact_ids)
            )
        ):
            (emails if kind == "email" else refs)[contact_id].append(value)
        record_names = self._counted(
            select(PERSON_RECORDS.c.ref, PERSON_RECORDS.c.name, func.count())
            .where(
                PERSON_RECORDS.c.org_id == self.org_id,
                among(self.session, PERSON_RECORDS.c.ref, [r for rs in refs.values() for r in rs]),
                PERSON_RECORDS.c.name.is_not(None),
            )
            .group_by(PERSON_RECORDS.c.ref, PERSON_RECORDS.c.name),
            refs,
        )
        companies = self._counted(
            select(PERSON_RECORDS.c.ref, PERSON_RECORDS.c.company, func.count())
            .where(
                PERSON_RECORDS.c.org_id == self.org_id,
                among(self.session, PERSON_RECORDS.c.ref, [r for rs in refs.values() for r in rs]),
                PERSON_RECORDS.c.company.is_not(None),
                PERSON_RECORDS.c.source.in_(CRM_SOURCES),
            )
            .group_by(PERSON_RECORDS.c.ref, PERSON_RECORDS.c.company),
            refs,
        )
        mail_names = self._counted(
            select(PARTICIPANTS.c.email, PARTICIPANTS.c.name, func.count())
            .where(
                PARTICIPANTS.c.org_id == self.org_id,
                among(self.session, PARTICIPANTS.c.email, [e for es in emails.values() for e in es]),
                PARTICIPANTS.c.name.is_not(None),
            )
            .group_by(PARTICIPANTS.c.email, PARTICIPANTS.c.name),
            emails,
        )
        changed: set[int] = set()
        rows = []
        stored = select(CONTACTS.c.id, CONTACTS.c.name, CONTACTS.c.company_domain, CONTACTS.c.company).where(
            among(self.session, CONTACTS.c.id, contact_ids), CONTACTS.c.status == "active"
        )
        for contact_id, *before in self.session.execute(stored):
            name, rank = _best(record_names.get(contact_id)), RECORD_NAME_RANK
            if name is None:
                name, rank = _best(mail_names.get(contact_id)), MAIL_NAME_RANK
            domain = domain_of([email_key(e) for e in emails[contact_id]])
            company = _best(companies.get(contact_id))  # each CRM record counts once per connection holding it
            if before != [name, domain, company]:
                rows.append(
                    {
                        "id": contact_id,
                        "name": name,
                        "name_rank": rank if name else 0,
                        "company_domain": domain,
                        "company": company,
                    }
                )
                changed.add(contact_id)
        bulk_update(self.session, Contact, rows)
        return changed

    def _counted(self, query: object, owners: dict[int, list[str]]) -> dict[int, Counter[str]]:
        """Name counts per contact from a (value, name, count) query over its identities' values."""
        owner_of = {value: contact for contact, values in owners.items() for value in values}
        counts: dict[int, Counter[str]] = defaultdict(Counter)
        if not owner_of:
            return counts
        for value, name, count in self.session.execute(query):  # type: ignore[call-overload]
            if name:
                counts[owner_of[value]][name] += int(count)
        return counts


def _best(names: Counter[str] | None) -> str | None:
    """The most frequent name; ties go to the smallest, so the choice never depends on arrival order."""
    if not names:
        return None
    return min(names.items(), key=lambda kv: (-kv[1], kv[0]))[0]
