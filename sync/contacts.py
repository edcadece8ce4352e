"""A page's bookkeeping of people: identities gaining or losing evidence, then names and companies."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from models.store import bulk_insert
from models.tables import Contact, Identity, Participant, PersonRecord
from sync.freemail import company_domain
from sync.identity import email_key, is_user_ref, ref_key, split_key
from sync.interactions import OrgView
from sync.resolve import chunks, resolve

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
        self.suspects: set[str] = set()
        self.created: set[int] = set()

    def want(self, keys: Iterable[str]) -> None:
        """These keys are external people of a non-noise activity, or carried by a person record."""
        self.wanted.update(k for k in keys if self._external(k))

    def suspect(self, keys: Iterable[str]) -> None:
        """These keys lost or may have lost evidence or ties (the org's own people are never contacts)."""
        self.suspects.update(k for k in keys if self._external(k))

    def _external(self, key: str) -> bool:
        """Refs and phones are external by construction; addresses unless the org's own."""
        kind, value = split_key(key)
        return kind != "email" or self.org.is_external(value)

    def suspect_sightings(self, sighting_ids: list[int]) -> None:
        """The participants of copies about to be removed are suspects."""
        for batch in chunks(sighting_ids):
            for email, ref in self.session.execute(
                select(Participant.email, Participant.person_ref).where(Participant.sighting_id.in_(batch))
            ):
                key = participant_key(email, ref)
                if key:
                    self.suspect((key,))

    def ensure(self, keys: set[str]) -> dict[str, int]:
        """The identity id of each key, creating a one-identity contact for new ones (settled later)."""
        found = self._identity_ids(sorted(keys))
        missing = sorted(k for k in keys if k not in found)
        if missing:
            created = (
                self.session.execute(
                    bulk_insert(Contact).returning(Contact.id),
                    [{"org_id": self.org_id, "company_domain": _domain_of([k])} for k in missing],
                )
                .scalars()
                .all()
            )
            self.created.update(created)
            rows = [
                {
                    "org_id": self.org_id,
                    "kind": split_key(k)[0],
                    "value": split_key(k)[1],
                    "contact_id": c,
                    "origin_contact_id": c,
                }
                for k, c in zip(missing, sorted(created), strict=True)
            ]
            self.session.execute(bulk_insert(Identity), rows)
            found.update(self._identity_ids(missing))
        return found

    def _identity_ids(self, keys: list[str]) -> dict[str, int]:
        """Existing identities of this org, by key."""
        found: dict[str, int] = {}
        by_kind: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            kind, value = split_key(key)
            by_kind[kind].append(value)
        for kind, values in by_kind.items():
            for batch in chunks(values):
                for value, ident_id in self.session.execute(
                    select(Identity.value, Identity.id).where(
                        Identity.org_id == self.org_id, Identity.kind == kind, Identity.value.in_(batch)
                    )
                ):
                    found[f"{kind}:{value}"] = ident_id
        return found

    def settle(self) -> set[int]:
        """Re-partition around every touched key, then refresh names and companies; return changed contacts."""
        touched = self.wanted | self.suspects
        changed = resolve(self.session, self.org_id, touched, self.created)
        changed |= self.created
        around = self._contacts_of(touched) | changed
        changed |= self._refresh(around)
        return changed

    def _contacts_of(self, keys: set[str]) -> set[int]:
        """The current contacts of these keys."""
        return (
            set(
                self.session.execute(
                    select(Identity.contact_id).where(Identity.id.in_(list(self._identity_ids(sorted(keys)).values())))
                ).scalars()
            )
            if keys
            else set()
        )

    def _refresh(self, contact_ids: set[int]) -> set[int]:
        """Name (records first, then the most frequent mail name; ties: smallest), company domain and name."""
        changed: set[int] = set()
        for batch in chunks(sorted(contact_ids)):
            changed |= self._refresh_batch(batch)
        return changed

    def _refresh_batch(self, contact_ids: list[int]) -> set[int]:
        """One bounded batch of `_refresh`."""
        emails: dict[int, list[str]] = defaultdict(list)
        refs: dict[int, list[str]] = defaultdict(list)
        for contact_id, kind, value in self.session.execute(
            select(Identity.contact_id, Identity.kind, Identity.value).where(Identity.contact_id.in_(contact_ids))
        ):
            (emails if kind == "email" else refs)[contact_id].append(value)
        record_names = self._counted(
            select(PersonRecord.ref, PersonRecord.name, func.count())
            .where(
                PersonRecord.org_id == self.org_id,
                PersonRecord.ref.in_([r for rs in refs.values() for r in rs]),
                PersonRecord.name.is_not(None),
            )
            .group_by(PersonRecord.ref, PersonRecord.name),
            refs,
        )
        companies = self._counted(
            select(PersonRecord.ref, PersonRecord.company, func.count())
            .where(
                PersonRecord.org_id == self.org_id,
                PersonRecord.ref.in_([r for rs in refs.values() for r in rs]),
                PersonRecord.company.is_not(None),
                PersonRecord.source.in_(CRM_SOURCES),
            )
            .group_by(PersonRecord.ref, PersonRecord.company),
            refs,
        )
        mail_names = self._counted(
            select(Participant.email, Participant.name, func.count())
            .where(
                Participant.org_id == self.org_id,
                Participant.email.in_([e for es in emails.values() for e in es]),
                Participant.name.is_not(None),
            )
            .group_by(Participant.email, Participant.name),
            emails,
        )
        changed: set[int] = set()
        rows = []
        for contact in self.session.execute(select(Contact).where(Contact.id.in_(contact_ids))).scalars():
            if contact.status != "active":
                continue
            name, rank = _best(record_names.get(contact.id)), RECORD_NAME_RANK
            if name is None:
                name, rank = _best(mail_names.get(contact.id)), MAIL_NAME_RANK
            domain = _domain_of([email_key(e) for e in emails[contact.id]])
            company = _best(companies.get(contact.id))  # each CRM record counts once per connection holding it
            if (contact.name, contact.company_domain, contact.company) != (name, domain, company):
                rows.append(
                    {
                        "id": contact.id,
                        "name": name,
                        "name_rank": rank if name else 0,
                        "company_domain": domain,
                        "company": company,
                    }
                )
                changed.add(contact.id)
        if rows:
            self.session.execute(update(Contact), rows)  # ORM bulk UPDATE by primary key: one executemany
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


def _domain_of(keys: list[str]) -> str | None:
    """The first non-free-mail domain among the keys' addresses (sorted), if any."""
    emails = sorted(split_key(k)[1] for k in keys if k.startswith("email:"))
    return next((d for d in (company_domain(e) for e in emails) if d), None)
