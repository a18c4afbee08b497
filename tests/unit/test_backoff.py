"""Backoff delays, one log line per outage, and dead letters cut to what a produce request holds."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from structlog.testing import capture_logs

from consumers.backoff import Outage, next_delay
from consumers.projection_worker import fit_dead_letter
from infra.messages import DeadLetter


def test_delays_grow_exponentially_with_jitter_and_stay_under_the_cap() -> None:
    firsts = [next_delay(1) for _ in range(200)]
    assert all(0.15 <= d <= 0.25 for d in firsts)
    assert len(set(firsts)) > 1, "jitter spreads retries"
    assert all(next_delay(n) <= 12.5 for n in range(1, 40))
    assert min(next_delay(30) for _ in range(50)) >= 7.5


def test_an_outage_logs_once_when_it_starts_and_once_when_it_ends() -> None:
    outage = Outage("relay", "postgres")
    with capture_logs() as logs:
        for _ in range(20):
            outage.failed(psycopg.OperationalError("connection refused"))
        outage.recovered()
        outage.recovered()
    noisy = [entry for entry in logs if entry["log_level"] != "debug"]
    assert [entry["event"] for entry in noisy] == [
        "postgres unavailable; relay waits and retries",
        "postgres available again; relay resumed",
    ]
    assert noisy[1]["attempts"] == 20
    assert not outage.active


def _letter(original: bytes) -> DeadLetter:
    return DeadLetter(
        consumer="g",
        reason="undecodable case event: Invalid JSON",
        topic="t",
        partition=0,
        offset=1,
        key=None,
        original_base64=DeadLetter.encode_original(original),
        failed_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def test_a_dead_letter_too_large_for_one_request_is_cut_with_a_note() -> None:
    original = b"\xff" * 1_000_000
    fitted = fit_dead_letter(_letter(original), original, 999_000)
    assert len(fitted.to_bytes()) <= 999_000
    assert "truncated" in fitted.reason and f"of {len(original)} bytes" in fitted.reason


def test_a_dead_letter_that_fits_is_sent_whole() -> None:
    letter = _letter(b"{not json")
    assert fit_dead_letter(letter, b"{not json", 999_000) == letter
