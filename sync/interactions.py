"""Who interacted with whom through one activity: DESIGN.md's rules as one pure function."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

MAX_PARTICIPANTS = 25
OWNED_KIND = {
    "call": "call",
    "meeting": "meeting",
    "crm_email": "email_out",
    "crm_email_in": "email_in",  # a logged email the owner received
    "email": "email_out",
}


@dataclass(frozen=True)
class OrgView:
    """What the rules need to know of an org: its domains and its members' addresses."""

    domains: frozenset[str]
    members: Mapping[str, int]  # member email -> member id

    def is_external(self, email: str) -> bool:
        """An external person: neither a member nor an address in the org's domains."""
        verdict = self._verdicts.get(email)
        if verdict is None:
            domain = email.rpartition("@")[2]
            verdict = email not in self.members and domain not in self.domains and not domain.endswith(self._suffixes)
            self._verdicts[email] = verdict
        return verdict

    @cached_property
    def _suffixes(self) -> tuple[str, ...]:
        """Subdomains of the org's domains are the org's too."""
        return tuple("." + d for d in self.domains)

    @cached_property
    def _verdicts(self) -> dict[str, bool]:
        """Each address is asked about many times per page (rules, contact book, records)."""
        return {}


@dataclass(frozen=True)
class UnionParticipant:
    """An address on an activity after the union over its copies."""

    role: str
    email: str
    declined: bool = False


@dataclass(frozen=True)
class Outcome:
    """An activity's derived facts: noise flag, external people, and interactions."""

    noise: str | None
    externals: frozenset[str]  # external people it gives evidence of (empty when noise)
    interactions: frozenset[tuple[int, str, str]]  # (member id, external email, kind)


def union(participants: Iterable[UnionParticipant]) -> list[UnionParticipant]:
    """Each (role, address) once; an address declined only if every copy says declined."""
    merged: dict[tuple[str, str], bool] = {}
    for p in participants:
        key = (p.role, p.email)
        merged[key] = merged.get(key, True) and p.declined
    return [UnionParticipant(role, email, declined) for (role, email), declined in sorted(merged.items())]


def derive(
    kind: str,
    participants: list[UnionParticipant],
    org: OrgView,
    *,
    source_noise: str | None,
    malformed_from: bool,
) -> Outcome:
    """Apply the interaction and noise rules to one activity's union of participants."""
    distinct = {p.email for p in participants}
    noise = source_noise or ("too_many" if len(distinct) > MAX_PARTICIPANTS else None)
    if noise is not None:
        return Outcome(noise, frozenset(), frozenset())
    externals = frozenset(e for e in distinct if org.is_external(e))
    # Roles decide, not the kind of whichever copy arrived first: a logged CRM email and the mailbox
    # copy of the same message are one activity whose copies carry different roles.
    found = _email(participants, org, malformed_from) | _meeting(participants, org)
    found |= _owned(participants, org, OWNED_KIND.get(kind, "email_out"))
    return Outcome(None, externals, frozenset(found))


def _email(participants: list[UnionParticipant], org: OrgView, malformed_from: bool) -> set[tuple[int, str, str]]:
    """Sender member → email_out with external recipients; recipient member → email_in with external sender."""
    if malformed_from:
        return set()
    senders = {p.email for p in participants if p.role == "from"}
    recipients = {p.email for p in participants if p.role in ("to", "cc", "bcc")}
    found: set[tuple[int, str, str]] = set()
    for sender in senders:
        if sender in org.members:
            member = org.members[sender]
            found.update((member, r, "email_out") for r in recipients if org.is_external(r))
        elif org.is_external(sender):
            found.update((org.members[r], sender, "email_in") for r in recipients if r in org.members)
    return found


def _meeting(participants: list[UnionParticipant], org: OrgView) -> set[tuple[int, str, str]]:
    """Members who organized or did not decline meet every external attendee who did not decline."""
    present_members = {
        org.members[p.email]
        for p in participants
        if p.email in org.members and (p.role == "organizer" or not p.declined)
    }
    externals = {
        p.email
        for p in participants
        if p.role in ("attendee", "organizer") and not p.declined and org.is_external(p.email)
    }
    return {(m, e, "meeting") for m in present_members for e in externals}


def _owned(participants: list[UnionParticipant], org: OrgView, kind: str) -> set[tuple[int, str, str]]:
    """A CRM call or logged email: its owner with its associated contacts."""
    owners = {org.members[p.email] for p in participants if p.role == "owner" and p.email in org.members}
    associated = {p.email for p in participants if p.role == "associated" and org.is_external(p.email)}
    return {(m, e, kind) for m in owners for e in associated}
