"""The campaign's fault schedule (bench/campaign.py): every kind of fault in any run, the servers once."""

from __future__ import annotations

import random

from bench.campaign import FAULT_KINDS, PROCESS_KINDS, SERVER_KINDS, FaultSchedule, kind_of

PROCESSES = ["api", "intake", "relay", "worker-1", "worker-2", "sla-clock"]


def test_the_first_faults_are_every_kind_once_whatever_the_seed() -> None:
    for seed in range(200):
        schedule = FaultSchedule(random.Random(seed), PROCESSES)  # noqa: S311 -- a seeded schedule, not a secret
        first = [schedule.next() for _ in FAULT_KINDS]

        assert sorted(kind_of(f) for f in first) == sorted(FAULT_KINDS)
        assert schedule.every_kind_done


def test_after_the_first_round_only_processes_are_killed() -> None:
    schedule = FaultSchedule(random.Random(14), PROCESSES)  # noqa: S311 -- same
    for _ in FAULT_KINDS:
        schedule.next()

    later = [schedule.next() for _ in range(500)]

    assert not set(later) & set(SERVER_KINDS)
    assert {kind_of(f) for f in later} == set(PROCESS_KINDS)
