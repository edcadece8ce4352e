"""The curated bad-input corpus (issue 7, B1): every payload maps without an exception or a hang, every
record that yields nothing says why, mapping twice gives the same result, and what a case expects is what
it gets.

Layout: tests/corpus/<source>/*.json hold cases ({"about", "context", "cases": [{"id", "about", "record" or
"records", "context", "expect"}]}); tests/corpus/gmail/*.eml are raw messages, described in
tests/corpus/gmail/eml.json, read as Gmail's format=metadata answer would show them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ActivityObservation, Deletion, Observation, PersonObservation
from connectors.gmail_mapping import map_message
from tests.corpus.checks import check_outcome, map_bounded, map_page
from tests.corpus.sources import MAPPERS, Outcome, gmail_metadata

HERE = Path(__file__).parent
MIN_CASES = 300
ACTIVITY_FIELDS = {
    "participants",
    "names",
    "declined",
    "dedupe_key",
    "subject",
    "noise",
    "malformed_from",
    "occurred_at",
}
PERSON_FIELDS = {"name", "company", "emails", "merged_from", "phones"}


@dataclass(frozen=True)
class Case:
    """One curated payload (a record, or a page of records) of one source, and what it must produce."""

    source: str
    id: str
    about: str
    records: list[Any]
    page: bool
    context: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, Any] = field(default_factory=dict)


def _json_cases(path: Path) -> list[Case]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    source = path.parent.name
    cases = []
    for raw in doc["cases"]:
        page = "records" in raw
        cases.append(
            Case(
                source,
                f"{source}/{path.stem}/{raw['id']}",
                raw["about"],
                raw["records"] if page else [raw["record"]],
                page,
                {**doc.get("context", {}), **raw.get("context", {})},
                raw.get("expect", {}),
            )
        )
    return cases


def _eml_cases(manifest: Path) -> list[Case]:
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    cases = []
    for raw in doc["cases"]:
        message = gmail_metadata(
            (manifest.parent / raw["file"]).read_bytes(),
            raw.get("gmail_id", Path(raw["file"]).stem),
            raw.get("internalDate", "1767225600000"),
            raw.get("labelIds", ["INBOX"]),
        )
        cases.append(Case("gmail", f"gmail/{raw['file']}", raw["about"], [message], False, {}, raw.get("expect", {})))
    return cases


def load_cases() -> list[Case]:
    cases: list[Case] = []
    for source in sorted(MAPPERS):
        for path in sorted((HERE / source).glob("*.json")):
            cases += _eml_cases(path) if path.name == "eml.json" else _json_cases(path)
    return cases


CASES = load_cases()


def _main(outcome: Outcome) -> Observation | None:
    """The record's own observation (not the Deletions of records merged into it)."""
    return outcome.observations[0] if outcome.observations else None


def _result(observation: Observation | None) -> str:
    if isinstance(observation, ActivityObservation):
        return "activity"
    if isinstance(observation, PersonObservation):
        return "person"
    if isinstance(observation, Deletion):
        return "deletion"
    return "nothing"


def check_expectations(case: Case, outcome: Outcome) -> None:
    """Compare the outcome with the case's stated expectations, field by field."""
    expect = case.expect
    if "reasons" in expect:
        assert sorted(r.reason for r in outcome.rejections) == sorted(expect["reasons"])
    if "rejections" in expect:
        assert len(outcome.rejections) == expect["rejections"]
    if case.page:
        activities = [o for o in outcome.observations if isinstance(o, ActivityObservation)]
        if "count" in expect:
            assert len(outcome.observations) == expect["count"]
        if "distinct_keys" in expect:
            assert len({o.dedupe_key for o in activities}) == expect["distinct_keys"]
        if "deletions" in expect:
            assert [o.external_id for o in outcome.observations if isinstance(o, Deletion)] == expect["deletions"]
        return
    main = _main(outcome)
    if "result" in expect:
        assert _result(main) == expect["result"]
    if "deletions" in expect:
        assert [o.external_id for o in outcome.observations if isinstance(o, Deletion)] == expect["deletions"]
    if set(expect) & ACTIVITY_FIELDS:
        assert isinstance(main, ActivityObservation), f"expected an activity, got {main!r}"
        _check_activity(main, expect)
    if set(expect) & PERSON_FIELDS:
        assert isinstance(main, PersonObservation), f"expected a person, got {main!r}"
        _check_person(main, outcome, expect)


def _check_activity(obs: ActivityObservation, expect: dict[str, Any]) -> None:
    if "participants" in expect:
        assert [[p.role, p.email or p.person_ref] for p in obs.participants] == expect["participants"]
    for address, name in expect.get("names", {}).items():
        assert [p.name for p in obs.participants if p.email == address][:1] == [name], address
    if "declined" in expect:
        assert sorted(p.email or str(p.person_ref) for p in obs.participants if p.declined) == expect["declined"]
    for key in ("dedupe_key", "subject", "noise", "malformed_from", "kind", "external_id"):
        if key in expect:
            assert getattr(obs, key) == expect[key], key
    if "occurred_at" in expect:
        assert obs.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ") == expect["occurred_at"]


def _check_person(obs: PersonObservation, outcome: Outcome, expect: dict[str, Any]) -> None:
    for key in ("name", "company", "kind", "external_id"):
        if key in expect:
            assert getattr(obs, key) == expect[key], key
    if "emails" in expect:
        assert list(obs.emails) == expect["emails"]
    if "merged_from" in expect:
        assert list(obs.merged_from) == expect["merged_from"]
    if "phones" in expect:
        assert [list(p) for i, p in outcome.phones if i == obs.external_id] == [expect["phones"]]


def _map(case: Case) -> Outcome:
    if case.page:
        return map_page(case.source, case.records, case.context, case.id)
    return map_bounded(case.source, case.records[0], case.context, case.id)


def test_the_corpus_holds_enough_curated_payloads_for_every_source() -> None:
    records = sum(len(c.records) for c in CASES)
    assert len(CASES) >= MIN_CASES, f"{len(CASES)} cases"
    assert records >= MIN_CASES
    assert {c.source for c in CASES} == set(MAPPERS)
    assert len({c.id for c in CASES}) == len(CASES), "case ids repeat"
    with_values = [c for c in CASES if set(c.expect) - {"result", "reasons"}]
    assert len(with_values) * 2 >= len(CASES), "at least half the cases state concrete expected values"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_payload_maps_within_bounds_with_reasons_and_expected_values(case: Case) -> None:
    outcome = _map(case)
    check_outcome(case.source, outcome, case.id, skipped=case.expect.get("result") == "nothing")
    if case.expect.get("result") == "nothing":
        assert not outcome.observations
    check_expectations(case, outcome)


def test_mapping_the_whole_corpus_twice_gives_identical_results() -> None:
    first = [_map(c) for c in CASES]
    second = [_map(c) for c in reversed(CASES)][::-1]  # another order: no state carried between records
    mismatched = [c.id for c, a, b in zip(CASES, first, second, strict=True) if a != b]
    assert mismatched == []


def test_gmail_participants_written_back_as_headers_parse_to_the_same_participants() -> None:
    """Normalizing twice is a fixed point: render each message's participants as headers, map them again."""
    checked = 0
    for case in (c for c in CASES if c.source == "gmail" and not c.page):
        first = map_message(case.records[0]).observation
        if not isinstance(first, ActivityObservation):
            continue
        headers = [{"name": "Date", "value": "Thu, 1 Jan 2026 00:00:00 +0000"}]
        for role in ("from", "to", "cc", "bcc"):
            entries = [_render(p.name, p.email) for p in first.participants if p.role == role]
            if entries:
                headers.append({"name": role.title(), "value": ", ".join(entries)})
        again = map_message({"id": "again", "payload": {"headers": headers}})
        assert isinstance(again.observation, ActivityObservation)
        assert again.observation.participants == first.participants, case.id
        assert again.rejections == [], case.id
        checked += 1
    assert checked >= 50


def _render(name: str | None, email: str) -> str:
    """A mailbox as a sender would write it: the name as a quoted string (quotes and backslashes escaped)."""
    if name is None:
        return email
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{email}>'
