"""Generated payloads (hypothesis, strategies.py) through every mapper: the B1 criteria on records nobody wrote.

CI runs a few dozen examples per source (the whole tests/corpus stays within its budget); set
SXSYNC_FAULTS_LONG=1 for the long mode.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.gcal_mapping import NOT_MEETINGS
from tests.corpus import strategies
from tests.corpus.checks import check_outcome, map_bounded
from tests.corpus.sources import graph_item

LONG = os.environ.get("SXSYNC_FAULTS_LONG", "") not in ("", "0")
EXAMPLES = 1000 if LONG else 60
BOUNDED = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _skipped(source: str, record: dict[str, Any], context: dict[str, Any]) -> bool:
    """The skips the connectors document: not a meeting, not an interaction, not an item of the delta page."""
    if source == "google_calendar":
        return str(record.get("eventType")) in NOT_MEETINGS
    if source.startswith("outlook"):
        return graph_item(record) == (False, None)
    if source == "salesforce" and context["stream"] == "tasks":
        subtype, call_type = record.get("TaskSubtype"), record.get("CallType")
        return not (
            subtype in ("Call", "Email") or (subtype in (None, "Task") and isinstance(call_type, str) and call_type)
        )
    return False


def _check(source: str, record: dict[str, Any], context: dict[str, Any]) -> None:
    first = map_bounded(source, record, context, source)
    assert map_bounded(source, record, context, source) == first  # mapping twice: the same result
    check_outcome(source, first, source, skipped=_skipped(source, record, context))


SOURCES: list[tuple[str, st.SearchStrategy[dict[str, Any]], dict[str, Any]]] = [
    ("gmail", strategies.gmail_messages(), {}),
    ("google_calendar", strategies.gcal_events(), {"calendar": "alice@acme.test"}),
    ("google_contacts", strategies.people(), {}),
    ("outlook_mail", strategies.graph_messages(), {}),
    ("outlook_calendar", strategies.graph_events(), {"masters": {"master1": "MASTERUID"}}),
    ("outlook_contacts", strategies.graph_contacts(), {}),
    *[("salesforce", strategies.salesforce_rows(), {"stream": s}) for s in ("contacts", "users", "tasks", "events")],
    *[("hubspot", strategies.hubspot_records(), {"stream": s}) for s in ("contacts", "owners", "calls", "meetings")],
]


@pytest.mark.parametrize(
    ("source", "records", "context"), SOURCES, ids=[f"{s}-{c.get('stream', '')}" for s, _, c in SOURCES]
)
def test_generated_records_map_within_bounds_with_reasons_idempotently(
    source: str, records: st.SearchStrategy[dict[str, Any]], context: dict[str, Any]
) -> None:
    @BOUNDED
    @given(records)
    def run(record: dict[str, Any]) -> None:
        _check(source, record, context)

    run()
