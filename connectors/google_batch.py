"""Many GETs as Google batches of up to 100 parts, retrying only the parts Google throttled.

Parts still throttled after the in-place rounds are not an error: the chunk's answers are kept, no
further chunk is sent, and the ids not fetched come back (`BatchResult.pending`) with the wait, for the
caller to fetch on a later page.
"""

from __future__ import annotations

import copy
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from googleapiclient.errors import HttpError

from connectors.base import JSON, RateLimited
from connectors.batch_body import QuickBatch
from connectors.google_http import GoogleApi, GoogleError, read_error

MAX_PARTS = 100
PLACEHOLDER = "sxsyncTemplateId0"  # unreserved characters only: the URI template leaves it as it is
MAX_ROUNDS = 3  # the first try and two retries of throttled parts
SLEEP_BUDGET_SECONDS = 10.0  # waiting longer belongs to the sync layer's scheduler, not a worker thread


@dataclass(frozen=True)
class BatchResult:
    """One chunk's answers: resources by id (request order), and ids that failed for good with why.

    Ids answered 404 (gone meanwhile) are in neither: the history will report their deletion.
    `throttled` are this chunk's ids still throttled after the in-place rounds, `unsent` the ids of the
    chunks not sent because of them (always empty when `throttled` is), `retry_after` the wait before
    asking again.
    """

    found: dict[str, JSON]
    failed: dict[str, str]
    throttled: tuple[str, ...] = ()
    unsent: tuple[str, ...] = ()
    retry_after: float = 0.0

    @property
    def pending(self) -> tuple[str, ...]:
        """Every id not fetched: the throttled ones, then the unsent ones (request order)."""
        return self.throttled + self.unsent


def by_template(make_request: Callable[[str], Any]) -> Callable[[str], Any]:
    """`make_request` for many ids at the cost of one: the library's request is built once, each id's is a copy.

    googleapiclient validates and URL-encodes every parameter of every call anew (~40 µs for a Gmail
    messages.get with its ten metadataHeaders: a third of a page's client CPU); only the id differs from one
    part to the next, and only in the path. The id goes where the template's placeholder is, encoded as the
    URI template's simple expansion does (every byte but the unreserved ones percent-encoded).
    """
    template = make_request(PLACEHOLDER)
    head, found, tail = template.uri.partition(PLACEHOLDER)
    if not found or PLACEHOLDER in tail or template.body is not None:
        return make_request  # not a body-less request with the id once in its URI: the library's way

    def request_for(item_id: str) -> Any:
        request = copy.copy(template)
        request.uri = head + urllib.parse.quote(item_id, safe="") + tail
        request.headers = dict(template.headers)
        request.response_callbacks = []
        return request

    return request_for


def _run_batch(
    api: GoogleApi, requests: dict[str, Any], batch_path: str, what: str, attempt: int
) -> tuple[dict[str, JSON], dict[str, GoogleError], dict[str, str]]:
    """One batch HTTP call: (answers, retryable part errors, final part errors)."""
    answers: dict[str, JSON] = {}
    retryable: dict[str, GoogleError] = {}
    failed: dict[str, str] = {}

    def collect(request_id: str, response: JSON, exception: HttpError | None) -> None:
        if exception is None:
            answers[request_id] = response
            return
        error = read_error(exception, attempt)
        api.heard(error)
        if error.retryable:
            retryable[request_id] = error
        elif error.status != 404:
            failed[request_id] = f"HTTP {error.status}: {error.message}"

    batch = QuickBatch(callback=collect, batch_uri=api.api_url + batch_path)
    for request_id, request in requests.items():
        batch.add(request, request_id=request_id)
    api.spend_batch(requests.values())
    with api.errors(f"{what} (batch)"):
        batch.execute()
    return answers, retryable, failed


def _fetch_chunk(
    api: GoogleApi, ids: Sequence[str], make_request: Callable[[str], Any], batch_path: str, what: str
) -> BatchResult:
    """One batch; throttled parts alone go again after their Retry-After, while the wait stays short."""
    answers: dict[str, JSON] = {}
    failed: dict[str, str] = {}
    pending = list(ids)
    slept = 0.0
    rounds = 0
    while True:
        try:
            found, retryable, lost = _run_batch(api, {i: make_request(i) for i in pending}, batch_path, what, rounds)
        except RateLimited as exc:  # the whole batch call was throttled: what is still needed waits too
            unanswered = tuple(i for i in ids if i not in answers and i not in failed)
            return BatchResult(
                {i: answers[i] for i in ids if i in answers}, failed, unanswered, retry_after=exc.retry_after
            )
        answers.update(found)
        failed.update(lost)
        if not retryable:
            return BatchResult({i: answers[i] for i in ids if i in answers}, failed)
        rounds += 1
        wait = max(error.retry_after for error in retryable.values())
        if rounds == MAX_ROUNDS or slept + wait > SLEEP_BUDGET_SECONDS:
            # keep what was answered; the rest waits for a later page (no livelock on a partial storm)
            throttled = tuple(i for i in ids if i in retryable)
            return BatchResult({i: answers[i] for i in ids if i in answers}, failed, throttled, retry_after=wait)
        time.sleep(wait)
        slept += wait
        pending = list(retryable)


def fetch_in_batches(
    api: GoogleApi, ids: Sequence[str], make_request: Callable[[str], Any], batch_path: str, what: str
) -> Iterator[BatchResult]:
    """Lazily, one batch (plus any part retries) per chunk of up to 100 distinct ids.

    A chunk left with throttled parts is the last one sent: its result lists the later ids as `unsent`.
    """
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), MAX_PARTS):
        end = start + MAX_PARTS
        result = _fetch_chunk(api, unique[start:end], make_request, batch_path, what)
        if result.throttled:
            yield BatchResult(result.found, result.failed, result.throttled, tuple(unique[end:]), result.retry_after)
            return
        yield result
