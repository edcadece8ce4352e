"""Email identities of external people: create them on evidence, name them, retire them without it."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from models.tables import Activity, Contact, Identity, Participant, Relationship
from sync.freemail import company_domain

MAIL_NAME_RANK = 1  # address-book and CRM names rank higher and are never overwritten by headers


class ContactBook:
    """Per-page bookkeeping of which external addresses gained or may have lost evidence."""

    def __init__(self, session: Session, org_id: int) -> None:
        self.session = session
        self.org_id = org_id
        self.wanted: set[str] = set()
        self.suspects: set[str] = set()
        self.changed: set[int] = set()

    def want(self, emails: Iterable[str]) -> None:
        """These addresses are external people of a non-noise activity: they need a contact."""
        self.wanted.update(emails)

    def suspect(self, emails: Iterable[str]) -> None:
        """These addresses lost or may have lost evidence (a copy changed, went away or became noise)."""
        self.suspects.update(emails)

    def suspect_sightings(self, sighting_ids: list[int]) -> None:
        """The participants of copies about to be removed are suspects."""
        for start in range(0, len(sighting_ids), 500):
            self.suspect(
                self.session.execute(
                    select(Participant.email).where(Participant.sighting_id.in_(sighting_ids[start : start + 500]))
                ).scalars()
            )

    def ensure(self) -> dict[str, int]:
        """The identity id of every wanted address, creating contacts for new ones."""
        emails = sorted(self.wanted)
        found = self._identity_ids(emails)
        missing = [e for e in emails if e not in found]
        if missing:
            created = (
                self.session.execute(
                    insert(Contact).returning(Contact.id),
                    [{"org_id": self.org_id, "company_domain": company_domain(e)} for e in missing],
                )
                .scalars()
                .all()
            )
            self.changed.update(created)
            rows = [
                {"org_id": self.org_id, "kind": "email", "value": e, "contact_id": c}
                for e, c in zip(missing, sorted(created), strict=True)
            ]
            self.session.execute(insert(Identity), rows)
            found.update(self._identity_ids(missing))
        return found

    def _identity_ids(self, emails: list[str]) -> dict[str, int]:
        """Existing email identities of this org."""
        found: dict[str, int] = {}
        for start in range(0, len(emails), 500):
            found.update(
                self.session.execute(
                    select(Identity.value, Identity.id).where(
                        Identity.org_id == self.org_id,
                        Identity.kind == "email",
                        Identity.value.in_(emails[start : start + 500]),
                    )
                ).all()
            )
        return found

    def refresh_names(self, session: Session) -> None:
        """A contact's mail name: the display name seen most often for its addresses (ties: smallest)."""
        emails = sorted(self.wanted | self.suspects)
        for start in range(0, len(emails), 500):
            self._refresh_chunk(session, emails[start : start + 500])

    def _refresh_chunk(self, session: Session, emails: list[str]) -> None:
        """One bounded batch of `refresh_names`."""
        owners = session.execute(
            select(Identity.value, Contact.id, Contact.name, Contact.name_rank)
            .join(Contact, Contact.id == Identity.contact_id)
            .where(Identity.org_id == self.org_id, Identity.kind == "email", Identity.value.in_(emails))
        ).all()
        eligible = {value: (cid, name) for value, cid, name, rank in owners if rank <= MAIL_NAME_RANK}
        if not eligible:
            return
        seen: dict[int, Counter[str]] = defaultdict(Counter)
        for email, name, count in session.execute(
            select(Participant.email, Participant.name, func.count())
            .where(
                Participant.org_id == self.org_id, Participant.email.in_(list(eligible)), Participant.name.is_not(None)
            )
            .group_by(Participant.email, Participant.name)
        ):
            if name:
                seen[eligible[email][0]][name] += count
        current = {cid: name for cid, name in eligible.values()}
        for cid, old in current.items():
            names = seen.get(cid)
            best = min(names.items(), key=lambda kv: (-kv[1], kv[0]))[0] if names else None
            if best != old:
                session.execute(
                    update(Contact).where(Contact.id == cid).values(name=best, name_rank=MAIL_NAME_RANK if best else 0)
                )
                self.changed.add(cid)

    def retire_unevidenced(self, session: Session) -> set[int]:
        """Contacts none of whose addresses appear in a non-noise activity any more are deleted."""
        candidates = sorted(self.suspects - self.wanted)
        retired: set[int] = set()
        for start in range(0, len(candidates), 500):
            chunk = candidates[start : start + 500]
            identities = dict(
                session.execute(
                    select(Identity.value, Identity.contact_id).where(
                        Identity.org_id == self.org_id, Identity.kind == "email", Identity.value.in_(chunk)
                    )
                ).all()
            )
            if not identities:
                continue
            evidenced = set(
                session.execute(
                    select(Participant.email)
                    .join(Activity, Activity.id == Participant.activity_id)
                    .where(
                        Participant.org_id == self.org_id,
                        Participant.email.in_(list(identities)),
                        Activity.noise.is_(None),
                    )
                    .distinct()
                ).scalars()
            )
            for email, contact_id in identities.items():
                if email not in evidenced:
                    retired |= self._retire_identity(session, email, contact_id)
        self.changed |= retired
        return retired

    def _retire_identity(self, session: Session, email: str, contact_id: int) -> set[int]:
        """Drop one unevidenced email identity; a contact left with no identity becomes a tombstone."""
        session.execute(
            delete(Identity).where(Identity.org_id == self.org_id, Identity.kind == "email", Identity.value == email)
        )
        left = session.execute(select(Identity.id).where(Identity.contact_id == contact_id).limit(1)).first()
        if left is None:
            session.execute(delete(Relationship).where(Relationship.contact_id == contact_id))
            session.execute(
                update(Contact).where(Contact.id == contact_id).values(status="deleted", name=None, company_domain=None)
            )
        return {contact_id}
