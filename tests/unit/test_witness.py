"""Judging a stored history against the witness of its head: truncation, rewriting, breaks."""

from __future__ import annotations

from domain.hashchain import ChainVerdict
from domain.witness import Head, Integrity, judge

INTACT = ChainVerdict(5, None, None)


def test_a_store_holding_the_witnessed_head_is_intact() -> None:
    verdict = judge(INTACT, Head(5, "h5"), Head(5, "h5"), "h5")

    assert verdict.integrity is Integrity.INTACT and verdict.ok


def test_a_store_ahead_of_the_witness_is_intact_because_the_relay_lags() -> None:
    assert judge(INTACT, Head(7, "h7"), Head(5, "h5"), "h5").integrity is Integrity.INTACT


def test_a_store_ending_before_the_witnessed_version_is_truncated() -> None:
    verdict = judge(ChainVerdict(4, None, None), Head(4, "h4"), Head(5, "h5"), None)

    assert verdict.integrity is Integrity.TRUNCATED and not verdict.ok
    assert "1 event(s) missing" in verdict.detail


def test_a_case_with_nothing_left_in_the_store_is_truncated() -> None:
    assert judge(None, None, Head(3, "h3"), None).integrity is Integrity.TRUNCATED


def test_another_hash_at_the_witnessed_version_means_a_rewritten_history() -> None:
    assert judge(INTACT, Head(5, "x5"), Head(5, "h5"), "x5").integrity is Integrity.DIVERGED


def test_a_broken_chain_is_reported_before_the_head_is_compared() -> None:
    broken = ChainVerdict(2, 3, "stored event_hash does not match its recomputed content")

    assert judge(broken, Head(5, "h5"), Head(5, "h5"), "h5").integrity is Integrity.BROKEN


def test_a_case_not_yet_witnessed_passes_but_says_so() -> None:
    verdict = judge(INTACT, Head(5, "h5"), None, None)

    assert verdict.integrity is Integrity.UNWITNESSED and verdict.ok
