"""Which partitions of a batch faust dropped in a rebalance are sought back (consumers/faust_transport.py)."""

from __future__ import annotations

from consumers.faust_transport import records_to_read_again

NOTHING_COMMITTED: dict[str, int | None] = {}


def test_a_batch_that_came_back_while_the_flow_was_stopped_is_read_again_from_its_first_record() -> None:
    # the intake's hang: the rejoin's first fetch of the new log came back between faust's seek and its
    # resuming the flow, and faust dropped it whole
    fetched = {"p3": (0, 150), "p5": (0, 62)}
    assert records_to_read_again(fetched, {}, True, NOTHING_COMMITTED, set()) == {"p3": 0, "p5": 0}


def test_a_batch_handed_on_in_full_while_the_flow_ran_is_left_alone() -> None:
    assert records_to_read_again({"p1": (40, 10)}, {"p1": 10}, False, NOTHING_COMMITTED, set()) == {}


def test_a_batch_cut_short_is_read_again_even_while_the_flow_runs() -> None:
    # faust stops handing on a batch when the generation changes
    assert records_to_read_again({"p1": (40, 10)}, {"p1": 4}, False, NOTHING_COMMITTED, set()) == {"p1": 40}


def test_a_stopped_flow_may_have_cancelled_the_last_record_so_a_full_batch_is_read_again_too() -> None:
    assert records_to_read_again({"p1": (40, 10)}, {"p1": 10}, True, NOTHING_COMMITTED, set()) == {"p1": 40}


def test_partitions_with_a_committed_offset_are_left_to_faust_and_a_newer_seek_wins() -> None:
    fetched = {"committed": (40, 10), "sought": (30, 5), "neither": (7, 3)}
    again = records_to_read_again(fetched, {}, True, {"committed": 35, "sought": None}, {"sought"})
    assert again == {"neither": 7}
