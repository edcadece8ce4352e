"""Many GETs as Google batches of up to 100 parts, retrying only the parts Google throttled."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from connectors.base import JSON, RateLimited
from connectors.google_http import GoogleApi, GoogleError, read_error

MAX_PARTS = 100
MAX_ROUNDS = 3  # the first try and two retries of throttled parts
SLEEP_BUDGET_SECONDS = 10.0  # waiting longer belongs to the sync layer's scheduler, not a worker thread


@dataclass(frozen=True)
class BatchResult:
    """One chunk's answers: resources by id (request order), and ids that failed for good with why.

    Ids answered 404 (gone meanwhile) are in neither: the history will report their deletion.
    """

    found: dict[str, JSON]
    failed: dict[str, str]


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
        if error.retryable:
            retryable[request_id] = error
        elif error.status != 404:
            failed[request_id] = f"HTTP {error.status}: {error.message}"

    batch = BatchHttpRequest(callback=collect, batch_uri=api.api_url + batch_path)
    for request_id, request in requests.items():
        batch.add(request, request_id=request_id)
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
        found, retryable, lost = _run_batch(api, {i: make_request(i) for i in pending}, batch_path, what, rounds)
        answers.update(found)
        failed.update(lost)
        if not retryable:
            return BatchResult({i: answers[i] for i in ids if i in answers}, failed)
        rounds += 1
        wait = max(error.retry_after for error in retryable.values())
        if rounds == MAX_ROUNDS or slept + wait > SLEEP_BUDGET_SECONDS:
            sample = next(iter(retryable.values()))
            raise RateLimited(
                f"{what} (batch): {len(retryable)} parts still throttled, e.g. HTTP {sample.status}: {sample.message}",
                wait,
            )
        time.sleep(wait)
        slept += wait
        pending = list(retryable)


def fetch_in_batches(
    api: GoogleApi, ids: Sequence[str], make_request: Callable[[str], Any], batch_path: str, what: str
) -> Iterator[BatchResult]:
    """Lazily, one batch (plus any part retries) per chunk of up to 100 distinct ids."""
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), MAX_PARTS):
        yield _fetch_chunk(api, unique[start : start + MAX_PARTS], make_request, batch_path, what)
