"""DESIGN.md's interaction and noise rules, on the pure function that applies them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sync.interactions import OrgView, UnionParticipant, derive, union

ORG = OrgView(domains=frozenset({"acme.test"}), members={"alice@acme.test": 1, "bob@acme.test": 2})


def p(role: str, email: str, declined: bool = False) -> UnionParticipant:
    return UnionParticipant(role, email, declined)


def test_member_sender_gets_email_out_with_every_external_recipient_including_bcc() -> None:
    out = derive(
        "email",
        [
            p("from", "alice@acme.test"),
            p("to", "dana@globex.test"),
            p("cc", "bob@acme.test"),
            p("bcc", "eve@initech.test"),
            p("to", "pat@acme.test"),
        ],
        ORG,
        source_noise=None,
        malformed_from=False,
    )
    assert out.interactions == {(1, "dana@globex.test", "email_out"), (1, "eve@initech.test", "email_out")}
    assert out.externals == {"dana@globex.test", "eve@initech.test"}


def test_member_recipients_get_email_in_with_external_sender() -> None:
    out = derive(
        "email",
        [
            p("from", "dana@globex.test"),
            p("to", "alice@acme.test"),
            p("cc", "bob@acme.test"),
            p("cc", "eve@initech.test"),
        ],
        ORG,
        source_noise=None,
        malformed_from=False,
    )
    assert out.interactions == {(1, "dana@globex.test", "email_in"), (2, "dana@globex.test", "email_in")}


def test_malformed_from_means_no_interactions_but_people_stay_evidenced() -> None:
    out = derive(
        "email", [p("to", "alice@acme.test"), p("cc", "eve@initech.test")], ORG, source_noise=None, malformed_from=True
    )
    assert out.interactions == frozenset()
    assert out.externals == {"eve@initech.test"}


def test_more_than_25_participants_is_noise() -> None:
    people = [p("from", "alice@acme.test")] + [p("to", f"x{i}@globex.test") for i in range(25)]
    out = derive("email", people, ORG, source_noise=None, malformed_from=False)
    assert out.noise == "too_many" and not out.interactions and not out.externals


def test_source_noise_flag_suppresses_interactions() -> None:
    out = derive(
        "email",
        [p("from", "noreply@globex.test"), p("to", "alice@acme.test")],
        ORG,
        source_noise="automated",
        malformed_from=False,
    )
    assert out.noise == "automated" and not out.interactions


def test_meeting_counts_organizer_and_accepting_members_with_non_declining_externals() -> None:
    out = derive(
        "meeting",
        [
            p("organizer", "alice@acme.test"),
            p("attendee", "alice@acme.test"),
            p("attendee", "bob@acme.test", declined=True),
            p("attendee", "dana@globex.test"),
            p("attendee", "eve@initech.test", declined=True),
        ],
        ORG,
        source_noise=None,
        malformed_from=False,
    )
    assert out.interactions == {(1, "dana@globex.test", "meeting")}


def test_internal_non_member_is_neither_contact_nor_interaction() -> None:
    out = derive(
        "email",
        [p("from", "alice@acme.test"), p("to", "pat@sales.acme.test")],
        ORG,
        source_noise=None,
        malformed_from=False,
    )
    assert out.interactions == frozenset() and out.externals == frozenset()


emails = st.sampled_from(
    ["alice@acme.test", "bob@acme.test", "dana@globex.test", "eve@initech.test", "pat@acme.test", "kim@gmail.com"]
)
roles = st.sampled_from(["from", "to", "cc", "bcc"])
participants = st.lists(st.builds(UnionParticipant, roles, emails, st.booleans()), max_size=12)


@given(participants, st.randoms())
def test_derivation_does_not_depend_on_copy_order_or_duplicates(people: list[UnionParticipant], rnd: object) -> None:
    shuffled = list(people) * 2
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a = derive("email", union(people), ORG, source_noise=None, malformed_from=False)
    b = derive("email", union(shuffled), ORG, source_noise=None, malformed_from=False)
    assert a == b


@given(participants)
def test_every_interaction_pairs_a_member_with_an_external(people: list[UnionParticipant]) -> None:
    out = derive("email", union(people), ORG, source_noise=None, malformed_from=False)
    for member, external, kind in out.interactions:
        assert member in ORG.members.values()
        assert ORG.is_external(external)
        assert kind in ("email_out", "email_in")
