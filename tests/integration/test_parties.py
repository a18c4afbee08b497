"""The party registry on a real PostgreSQL: receipts, idempotency, and cases naming registered parties."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from app.application import CaseApplication
from app.bootstrap import build_case_application
from app.event_log import CaseEventLog
from app.parties import PartyRegistry, RegisterParty, RenewQualification, SuspendParty
from demo.samples import sample_walk
from domain.case import Case
from domain.commands import Command, ReportCompletion, SubmitApplication, SubmitDesign
from domain.hashchain import GENESIS_HASH, event_hash
from domain.vocabulary import Actor
from infra.settings import Settings

ADMIN = Actor("adm-1", "名录管理员", "MARKETING")
AT = datetime(2025, 8, 1, 1, 0, tzinfo=UTC)
START = datetime(2025, 9, 1, 1, 0, tzinfo=UTC)
DESIGN_INSTITUTE = "91350782MA2YDI0001"
CONTRACTOR = "91350782MA2YCT0001"
PARTY_STEP_EVENTS = ("DesignSubmitted", "MidInspectionRequested", "CompletionReported")


@pytest.fixture
def app(fresh_database_url: str) -> Iterator[CaseApplication]:
    application = build_case_application(Settings(aggregate_cache_size=100), fresh_database_url)
    yield application
    application.close()


def _register(party_id: str, kind: str, level: str, expires_on: date, command_id: str) -> RegisterParty:
    return RegisterParty(
        command_id=command_id,
        party_id=party_id,
        actor=ADMIN,
        occurred_at=AT,
        kind=kind,
        name=f"{kind} {party_id[-4:]}",
        level=level,
        expires_on=expires_on,
    )


def _registered(app: CaseApplication) -> PartyRegistry:
    registry = PartyRegistry(app)
    assert registry.execute(
        _register(DESIGN_INSTITUTE, "DESIGN_INSTITUTE", "GRADE_A", date(2030, 1, 1), "r1")
    ).accepted
    assert registry.execute(_register(CONTRACTOR, "CONTRACTOR", "CLASS_3", date(2030, 1, 1), "r2")).accepted
    return registry


def _walk_until(app: CaseApplication, case_number: str, stop: type[Command]) -> list[Command]:
    """Execute a sample HV case up to ``stop``; return the remaining commands (``stop`` first)."""
    commands = sample_walk("HV_DUAL", case_number, START)
    index = next(i for i, command in enumerate(commands) if isinstance(command, stop))
    for command in commands[:index]:
        assert app.execute(command).accepted, command
    return commands[index:]


def test_registering_renewing_and_suspending_a_party_each_record_a_receipt(app: CaseApplication) -> None:
    registry = _registered(app)

    renewed = registry.execute(
        RenewQualification(
            command_id="n1",
            party_id=CONTRACTOR,
            actor=ADMIN,
            occurred_at=AT + timedelta(days=1),
            level="CLASS_2",
            expires_on=date(2032, 1, 1),
        )
    )
    suspended = registry.execute(
        SuspendParty(
            command_id="s1",
            party_id=CONTRACTOR,
            actor=ADMIN,
            occurred_at=AT + timedelta(days=2),
            reason="安全事故",
        )
    )

    assert renewed.accepted and renewed.case_version == 2
    assert suspended.accepted and suspended.event_types == ("Suspended",)
    assert app.receipt("s1") is not None
    standing = registry.qualification(CONTRACTOR)
    assert standing is not None
    assert (standing.level, standing.expires_on, standing.suspended) == ("CLASS_2", date(2032, 1, 1), True)
    assert [p.party_id for p in registry.all()] == sorted([DESIGN_INSTITUTE, CONTRACTOR])


def test_a_repeated_registry_command_returns_its_outcome_and_a_second_registration_is_refused(
    app: CaseApplication,
) -> None:
    registry = _registered(app)

    again = registry.execute(_register(CONTRACTOR, "CONTRACTOR", "CLASS_3", date(2030, 1, 1), "r2"))
    twice = registry.execute(_register(CONTRACTOR, "CONTRACTOR", "CLASS_3", date(2030, 1, 1), "r3"))
    reused = registry.execute(_register(CONTRACTOR, "CONTRACTOR", "CLASS_1", date(2030, 1, 1), "r2"))

    assert again.accepted and again.repeated
    assert (twice.accepted, twice.rule) == (False, "PARTY_ALREADY_REGISTERED")
    assert reused.rule == "COMMAND_ID_REUSED"
    assert registry.get(CONTRACTOR) is not None and registry.get(CONTRACTOR).version == 1  # type: ignore[union-attr]


def test_a_case_names_a_registered_party_and_refuses_unknown_wrong_and_suspended_ones(
    app: CaseApplication,
) -> None:
    registry = _registered(app)
    design, *rest = _walk_until(app, "YK-PARTY-1", SubmitDesign)

    unknown = app.execute(dataclasses.replace(design, command_id="d-unknown", party_id="9135NOBODY"))
    wrong = app.execute(dataclasses.replace(design, command_id="d-wrong", party_id=CONTRACTOR))
    named = app.execute(dataclasses.replace(design, party_id=DESIGN_INSTITUTE))

    assert (unknown.accepted, unknown.rule) == (False, "PARTY_NOT_REGISTERED")
    assert (wrong.accepted, wrong.rule) == (False, "PARTY_NOT_QUALIFIED")
    assert named.accepted
    submitted = [e for e in app.history("YK-PARTY-1") if type(e).__name__ == "DesignSubmitted"]
    assert submitted[-1].party_id == DESIGN_INSTITUTE  # type: ignore[attr-defined]
    published = [message for batch, _ in CaseEventLog(app).read_all() for message in batch]
    assert {m.case_number for m in published} == {"YK-PARTY-1"}  # party events are not case events
    assert registry.execute(
        SuspendParty(command_id="s9", party_id=CONTRACTOR, actor=ADMIN, occurred_at=AT, reason="停业整顿")
    ).accepted
    report = next(c for c in rest if isinstance(c, ReportCompletion))
    for command in rest[: rest.index(report)]:
        assert app.execute(command).accepted, command
    refused = app.execute(dataclasses.replace(report, party_id=CONTRACTOR))
    assert (refused.accepted, refused.rule) == (False, "PARTY_SUSPENDED")


def _store_history_from_before_parties(app: CaseApplication, case_number: str) -> None:
    """A whole HV case as a version before the registry stored it: its design, mid-inspection and
    completion events at class version 1 (no ``party_id``), with the hash chain they had then."""
    case: Case | None = None
    for command in sample_walk("HV_DUAL", case_number, START):
        ctx = command.context(command.occurred_at)
        if isinstance(command, SubmitApplication):
            case = command.create(ctx)
        else:
            assert case is not None
            command.execute(case, ctx)
    assert case is not None
    transcoder = app.mapper.transcoder
    previous = GENESIS_HASH
    stored = []
    for event in case.collect_events():
        record = app.mapper.to_stored_event(event)
        state = transcoder.decode(record.state)
        if type(event).__name__ in PARTY_STEP_EVENTS:
            state.pop("party_id")
            state.pop("class_version")
        state["previous_hash"] = previous
        state["event_hash"] = previous = event_hash(
            type(event).__qualname__, case.id, record.originator_version, state["timestamp"], state
        )
        stored.append(dataclasses.replace(record, state=transcoder.encode(state)))
    app.recorder.insert_events(stored)


def test_a_history_stored_before_parties_were_named_loads_upcast_and_verifies(app: CaseApplication) -> None:
    _store_history_from_before_parties(app, "YK-PARTY-V1")

    case = app.get_case("YK-PARTY-V1")
    steps = [e for e in app.history("YK-PARTY-V1") if type(e).__name__ in PARTY_STEP_EVENTS]

    assert case.status_code == "COMPLETED"
    assert [type(e).__name__ for e in steps] == list(PARTY_STEP_EVENTS)
    assert all(e.party_id == "" for e in steps)  # type: ignore[attr-defined]
    assert app.verify("YK-PARTY-V1").intact
