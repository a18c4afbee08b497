"""Which received records a projection worker applies, by the positions stored with its read models.

The case that once stalled a worker for good: after the broker lost its data, the relay's batch in
flight at the restart landed in the new log under the old incarnation, before the relay noticed and
republished everything under a new one. The new incarnation's records then start after that prefix, not
at offset 0, and every record of it used to rewind the partition to 0 again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from consumers.projection_worker import Position, admitted
from projections.store import Rejected

TOPIC = "yekuo.case-events.v1"
KEY = (TOPIC, 5)


def records(incarnation: str, offsets: range) -> list[Rejected]:
    """Stand-ins for received records: ``admitted`` reads only where a record is and who published it."""
    at = datetime(2026, 12, 5, tzinfo=UTC)
    return [Rejected(TOPIC, 5, offset, None, b"", "", incarnation, at) for offset in offsets]


def kept_offsets(
    current: set[str], stored: dict[tuple[str, int], Position], batch: list[Rejected]
) -> tuple[list[int], dict[tuple[str, int], int]]:
    admission = admitted(current, stored, [], batch)
    stored.update(admission.passed)  # what the worker commits with the batch
    if admission.rejected:
        last = admission.rejected[-1]
        stored[KEY] = (last.offset + 1, last.incarnation)
    return [r.offset for r in admission.rejected], admission.rewind


def test_a_republished_log_starting_at_offset_0_is_applied_from_there() -> None:
    stored = {KEY: (22, "old")}
    assert kept_offsets({"new"}, stored, records("new", range(0, 3))) == ([0, 1, 2], {})


def test_records_of_lost_incarnations_at_the_start_of_the_new_log_are_stepped_over() -> None:
    stored = {KEY: (22, "old")}
    batch = records("old", range(0, 3)) + records("lost-too", range(3, 4)) + records("new", range(4, 7))
    assert kept_offsets({"new"}, stored, batch) == ([4, 5, 6], {})


def test_the_step_over_holds_across_batches() -> None:
    stored = {KEY: (22, "old")}
    assert kept_offsets({"new"}, stored, records("old", range(0, 4))) == ([], {})
    assert stored[KEY] == (4, "")
    assert kept_offsets({"new"}, stored, records("new", range(4, 6))) == ([4, 5], {})
    assert stored[KEY] == (6, "new")


def test_a_consumer_past_the_start_is_rewound_to_0_and_then_steps_over_the_prefix() -> None:
    stored = {KEY: (22, "old")}
    assert kept_offsets({"new"}, stored, records("new", range(10, 12))) == ([], {KEY: 0})
    after_rewind = records("old", range(0, 10)) + records("new", range(10, 12))
    assert kept_offsets({"new"}, stored, after_rewind) == ([10, 11], {})


def test_a_prefix_read_from_its_middle_moves_nothing_and_the_partition_is_rewound() -> None:
    stored = {KEY: (22, "old")}
    batch = records("old", range(2, 4)) + records("new", range(4, 5))
    assert kept_offsets({"new"}, stored, batch) == ([], {KEY: 0})
    assert stored[KEY] == (22, "old")


def test_a_lost_record_inside_the_current_log_is_stepped_over_too() -> None:
    stored = {KEY: (5, "new")}
    batch = records("new", range(5, 7)) + records("old", range(7, 8)) + records("new", range(8, 9))
    assert kept_offsets({"new"}, stored, batch) == ([5, 6, 8], {})
    assert stored[KEY] == (9, "new")
