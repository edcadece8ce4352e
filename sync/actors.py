"""Dramatiq actors, registered on an explicit broker (never bound at import time)."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import CurrentMessage

from sync.logs import log_context
from sync.pipeline import MAX_ATTEMPTS, run_page
from sync.runtime import Enqueue, get_runtime

SYNC_QUEUE = "sync"


def sync_page(connection_id: int, stream: str, cursor_version: int) -> None:
    """One page job: everything it needs is in the store, the message only names the page."""
    message = CurrentMessage.get_current_message()
    with log_context(job=message.message_id if message is not None else None):
        run_page(get_runtime(), connection_id, stream, cursor_version)


def register_actors(broker: dramatiq.Broker) -> Enqueue:
    """Declare the actors on `broker`; return the function that enqueues a page job."""
    if not any(isinstance(m, CurrentMessage) for m in broker.middleware):
        broker.add_middleware(CurrentMessage())  # the job id in every log line of the job
    actor: dramatiq.Actor[[int, str, int], None] = dramatiq.Actor(
        sync_page,
        broker=broker,
        actor_name="sync_page",
        queue_name=SYNC_QUEUE,
        priority=0,
        options={
            "max_retries": MAX_ATTEMPTS - 1,
            "min_backoff": 1_000,
            "max_backoff": 300_000,
            "time_limit": 15 * 60_000,
        },
    )

    def enqueue(connection_id: int, stream: str, cursor_version: int, delay: float) -> None:
        actor.send_with_options(
            args=(connection_id, stream, cursor_version), delay=int(delay * 1000) if delay > 0 else None
        )

    return enqueue
