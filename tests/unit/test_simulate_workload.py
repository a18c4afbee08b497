"""The simulated intake workload: realistic, in route order per case, and accepted when run in order."""

from __future__ import annotations

from collections import Counter

from app.application import CaseApplication
from app.intake_envelopes import envelope_for
from cli.simulate import SIMULATED_START
from consumers.intake import IntakeProcessor, Received
from demo.workload import workload
from infra.source_systems import load_source_systems

SYSTEMS = load_source_systems()


def test_each_case_keeps_its_route_order_and_every_message_id_is_unique() -> None:
    messages = list(workload("YK-U", SIMULATED_START, SYSTEMS, cases=12, in_flight=5))

    assert len({m.message_id for m in messages}) == len(messages)
    steps: dict[str, list[int]] = {}
    for message in messages:
        steps.setdefault(message.case_number, []).append(message.step)
    assert len(steps) == 12
    assert all(seen == list(range(len(seen))) for seen in steps.values())
    assert sum(m.last for m in messages) == 12
    first_cases = [m.case_number for m in messages[:40]]
    assert len(set(first_cases)) > 1  # cases interleave


def test_every_message_comes_from_a_system_that_may_send_it_and_the_mix_uses_them_all() -> None:
    messages = list(workload("YK-U", SIMULATED_START, SYSTEMS, cases=21))

    for message in messages:
        system = SYSTEMS.get(message.source_system)
        assert system is not None and system.may_send(message.command.command_type), message
    sources = Counter(m.source_system for m in messages)
    assert set(sources) == set(SYSTEMS.systems)
    submits = Counter(m.source_system for m in messages if m.step == 0)
    assert set(submits) == {"ONLINE_HALL", "COUNTER", "CALL_CENTRE_95598"}
    assert {m.command.command_type for m in messages} >= {"FileComplaint", "ResolveComplaint", "Energise"}


def test_the_whole_workload_is_accepted_when_each_case_arrives_in_order() -> None:
    messages = list(workload("YK-U", SIMULATED_START, SYSTEMS, cases=15, seed=7))
    processor = IntakeProcessor(CaseApplication({}), SYSTEMS, max_message_bytes=65536)

    decided = processor.process(
        [
            Received(envelope_for(m.command, m.source_system).to_bytes(), m.case_number.encode(), 0, i)
            for i, m in enumerate(messages)
        ]
    )

    assert Counter(d.result.outcome for d in decided if d.result) == {"ACCEPTED": len(messages)}


def test_an_endless_workload_keeps_starting_cases() -> None:
    stream = workload("YK-U", SIMULATED_START, SYSTEMS, cases=None, in_flight=3)

    numbers = {next(stream).case_number for _ in range(500)}

    assert len(numbers) > 20
