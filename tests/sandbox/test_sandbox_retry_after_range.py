"""Injected throttling with a Retry-After drawn from a range (issue 7, R8: 429s asking for 1-30 s)."""

from __future__ import annotations

from sandbox.faults import FaultInjector


def test_a_rule_with_a_retry_after_range_draws_each_wait_from_it() -> None:
    faults = FaultInjector(seed=3)
    faults.fail_randomly(1.0, "429", retry_after=1, retry_after_max=30)
    waits = [fault.retry_after for fault in (faults.draw("request", "list") for _ in range(200)) if fault]
    assert len(waits) == 200 and all(w is not None and 1 <= w <= 30 for w in waits)
    assert len(set(waits)) > 20  # spread over the range, not one value


def test_the_json_plan_takes_the_range_and_reports_it() -> None:
    faults = FaultInjector(seed=3)
    faults.configure({"rules": [{"kind": "503", "probability": 1.0, "retry_after": 2, "retry_after_max": 4}]})
    fault = faults.draw("request", "batch")
    assert fault is not None and fault.retry_after in (2, 3, 4)
    assert faults.snapshot()["rules"][0]["retry_after_max"] == 4
