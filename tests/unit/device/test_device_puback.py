"""What a PUBACK means for a batch: only a delivery is a delivery."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace

from device.mqtt import outcome_of
from device.transport import ACKED, FAILED, REFUSED


def _answered(code: int) -> Future[object]:
    future: Future[object] = Future()
    future.set_result(SimpleNamespace(puback=SimpleNamespace(reason_code=code)))
    return future


def test_success_is_acked() -> None:
    assert outcome_of(_answered(0x00)).status == ACKED


def test_no_matching_subscribers_keeps_the_batch() -> None:
    outcome = outcome_of(_answered(0x10))
    assert (outcome.status, outcome.code) == (REFUSED, 0x10)
    assert "nobody received" in outcome.reason


def test_refusals_and_failures_keep_the_batch() -> None:
    assert outcome_of(_answered(0x87)).status == REFUSED
    failed: Future[object] = Future()
    failed.set_exception(TimeoutError("no answer"))
    assert outcome_of(failed).status == FAILED
