"""Judging a case's stored history against an external witness of its head (见证: last version and hash).

The hash chain proves that each stored event follows from the one before, so an altered, removed or
reordered event breaks it — but removing the *last* events leaves a shorter chain that is still intact.
A witness kept outside the event table (the relay's ``case_heads``: each case's last published version
and hash) catches that: the store must hold at least the witnessed version, and the event stored at that
version must carry the witnessed hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.hashchain import ChainVerdict


class Integrity(StrEnum):
    """What verifying one case found."""

    INTACT = "INTACT"
    """Chain intact and the store holds the witnessed head."""
    UNWITNESSED = "UNWITNESSED"
    """Chain intact; no witness yet (not relayed yet), so a truncated tail cannot be ruled out."""
    BROKEN = "BROKEN"
    """An event was altered, removed from the middle or reordered."""
    TRUNCATED = "TRUNCATED"
    """The store ends before the witnessed version: its last events were removed."""
    DIVERGED = "DIVERGED"
    """The event at the witnessed version has another hash: the history was rewritten."""


@dataclass(frozen=True)
class Head:
    """A case's head: its last version and that event's hash."""

    version: int
    event_hash: str


@dataclass(frozen=True)
class IntegrityVerdict:
    integrity: Integrity
    detail: str

    @property
    def ok(self) -> bool:
        return self.integrity in (Integrity.INTACT, Integrity.UNWITNESSED)


def judge(
    chain: ChainVerdict | None, stored: Head | None, witness: Head | None, hash_at_witness: str | None
) -> IntegrityVerdict:
    """The verdict on one case from its chain, its stored head, the witness, and the stored hash at the
    witnessed version (None when the store has no event there). ``chain`` None: nothing stored."""
    if chain is not None and not chain.intact:
        return IntegrityVerdict(
            Integrity.BROKEN, f"chain broken at version {chain.first_bad_version}: {chain.problem}"
        )
    stored_version = stored.version if stored else 0
    if witness is None:
        return IntegrityVerdict(
            Integrity.UNWITNESSED, f"{stored_version} events verified; no witness of the head yet"
        )
    if stored_version < witness.version:
        return IntegrityVerdict(
            Integrity.TRUNCATED,
            f"store ends at version {stored_version}; the witness saw version {witness.version} "
            f"(hash {witness.event_hash[:12]}…): {witness.version - stored_version} event(s) missing",
        )
    if hash_at_witness != witness.event_hash:
        return IntegrityVerdict(
            Integrity.DIVERGED,
            f"event {witness.version} has hash {(hash_at_witness or '')[:12]}…; the witness saw "
            f"{witness.event_hash[:12]}…",
        )
    return IntegrityVerdict(
        Integrity.INTACT, f"{stored_version} events verified; witnessed head version {witness.version}"
    )
