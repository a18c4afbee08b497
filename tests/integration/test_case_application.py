"""The case application on a real PostgreSQL: idempotency, concurrency, upcasting, snapshots, verification."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent

from app.application import CaseApplication, ConcurrentUpdateError
from app.bootstrap import build_case_application
from domain.case import Case
from domain.case_values import ApplicationDetails
from domain.commands import (
    AcceptApplication,
    Command,
    EscalateCase,
    SubmitApplication,
    case_id_for,
)
from domain.hashchain import GENESIS_HASH, event_hash
from domain.vocabulary import Actor
from infra.settings import Settings

CLERK = Actor("cs-001", "林晓", "CUSTOMER_SERVICE")
SUPERVISOR = Actor("mk-009", "周强", "MARKETING")
START = datetime(2025, 9, 26, 15, 0, tzinfo=UTC)
_ids = count()


def _submit(case_number: str, command_id: str | None = None) -> SubmitApplication:
    return SubmitApplication(
        command_id=command_id or f"{case_number}-submit",
        case_number=case_number,
        actor=CLERK,
        occurred_at=START,
        channel="COUNTER",
        application=ApplicationDetails(
            case_number=case_number,
            category="RESIDENTIAL",
            customer_ref="C-100",
            customer_name="王芳",
            contact_phone="13800000000",
            id_number="350782199001011232",
            address="福建省武夷山市崇安街道1号",
            capacity_kva=8.0,
            supply_voltage="220V",
        ),
    )


def _escalate(case_number: str, command_id: str | None = None) -> EscalateCase:
    return EscalateCase(
        command_id=command_id or f"esc-{next(_ids)}",
        case_number=case_number,
        actor=SUPERVISOR,
        occurred_at=START + timedelta(hours=1),
        channel="STAFF_CONSOLE",
        reason="客户催办",
    )


@pytest.fixture
def settings() -> Settings:
    return Settings(snapshot_interval=5, aggregate_cache_size=100)


@pytest.fixture
def app(fresh_database_url: str, settings: Settings) -> Iterator[CaseApplication]:
    application = build_case_application(settings, fresh_database_url)
    yield application
    application.close()


def _reopen(database_url: str, settings: Settings, **kwargs: object) -> CaseApplication:
    return build_case_application(settings, database_url, create_tables=False, **kwargs)  # type: ignore[arg-type]


def _stored_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM cases_events").fetchone()
    assert row is not None
    return int(row[0])


def test_a_repeated_command_returns_the_original_outcome_and_appends_nothing(
    app: CaseApplication, fresh_database_url: str
) -> None:
    first = app.execute(_submit("YK-IDEM-1"))
    stored_before = _stored_count(fresh_database_url)

    again = app.execute(_submit("YK-IDEM-1"))

    assert first.accepted
    assert again.accepted
    assert again.repeated
    assert again.case_version == first.case_version
    assert again.event_types == first.event_types
    assert _stored_count(fresh_database_url) == stored_before


def test_a_repeated_command_is_recognised_after_a_restart(
    app: CaseApplication, fresh_database_url: str, settings: Settings
) -> None:
    app.execute(_submit("YK-IDEM-2"))
    accepted = app.execute(_escalate("YK-IDEM-2", "esc-restart"))
    app.close()
    restarted = _reopen(fresh_database_url, settings)

    again = restarted.execute(_escalate("YK-IDEM-2", "esc-restart"))

    assert again.repeated
    assert again.case_version == accepted.case_version
    assert restarted.get_case("YK-IDEM-2").escalation_level == 1
    restarted.close()


def test_a_rejected_command_is_remembered_with_its_rule(app: CaseApplication) -> None:
    app.execute(_submit("YK-REJ-1"))
    wrong_department = AcceptApplication(
        command_id="accept-by-marketing",
        case_number="YK-REJ-1",
        actor=SUPERVISOR,
        occurred_at=START,
        channel="STAFF_CONSOLE",
    )

    first = app.execute(wrong_department)
    again = app.execute(wrong_department)

    assert not first.accepted
    assert first.rule == "ACTOR_NOT_ACCOUNTABLE"
    assert "CUSTOMER_SERVICE" in first.message
    assert again.repeated
    assert again.rule == first.rule
    assert app.get_case("YK-REJ-1").version == 2


def test_a_command_id_reused_for_a_different_command_is_refused(app: CaseApplication) -> None:
    app.execute(_submit("YK-REUSE-1"))

    reused = app.execute(_escalate("YK-REUSE-1", command_id="YK-REUSE-1-submit"))

    assert not reused.accepted
    assert reused.rule == "COMMAND_ID_REUSED"
    assert app.get_case("YK-REUSE-1").escalation_level == 0


def test_a_taken_case_number_is_rejected(app: CaseApplication) -> None:
    app.execute(_submit("YK-TAKEN-1"))

    second = app.execute(_submit("YK-TAKEN-1", command_id="another-submit"))

    assert not second.accepted
    assert second.rule == "CASE_NUMBER_TAKEN"


def test_a_command_for_an_unknown_case_is_rejected(app: CaseApplication) -> None:
    outcome = app.execute(_escalate("YK-NOWHERE"))

    assert not outcome.accepted
    assert outcome.rule == "CASE_NOT_FOUND"


def test_concurrent_commands_from_two_processes_all_apply_in_order(
    app: CaseApplication, fresh_database_url: str, settings: Settings
) -> None:
    app.execute(_submit("YK-CONC-1"))
    other = _reopen(fresh_database_url, settings)
    per_writer = 15
    outcomes = []
    conflicts_surfaced = []

    def write(application: CaseApplication, prefix: str) -> None:
        for i in range(per_writer):
            while True:  # what a client does with a conflict error: retry the same command
                try:
                    outcomes.append(application.execute(_escalate("YK-CONC-1", f"{prefix}-{i}")))
                    break
                except ConcurrentUpdateError:
                    conflicts_surfaced.append(prefix)

    writers = [
        threading.Thread(target=write, args=(app, "a")),
        threading.Thread(target=write, args=(other, "b")),
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()

    case = other.get_case("YK-CONC-1")
    assert all(outcome.accepted for outcome in outcomes)
    assert case.escalation_level == 2 * per_writer
    assert sorted(o.case_version for o in outcomes) == list(range(3, 3 + 2 * per_writer))
    assert app.verify("YK-CONC-1").intact
    other.close()


class _WriterBetweenReadAndSave(CaseApplication):
    """Lets another application commit to the case after this one loaded it and before it saves."""

    name = "cases"
    interloper: CaseApplication | None = None
    interruptions_left = 1

    def _load(self, case_id, case_number):  # type: ignore[no-untyped-def]
        case = super()._load(case_id, case_number)
        if self.interloper is not None and self.interruptions_left > 0:
            self.interruptions_left -= 1
            self.interloper.execute(_escalate(case_number))
        return case


def _interleaved(database_url: str, settings: Settings, retries: int) -> _WriterBetweenReadAndSave:
    from app.bootstrap import application_env

    application = _WriterBetweenReadAndSave(
        application_env(settings, database_url, create_tables=False), command_retries=retries
    )
    application.interloper = _reopen(database_url, settings)
    return application


def test_a_write_conflict_is_retried_on_the_fresh_state(
    app: CaseApplication, fresh_database_url: str, settings: Settings
) -> None:
    app.execute(_submit("YK-RACE-1"))
    racing = _interleaved(fresh_database_url, settings, retries=1)

    outcome = racing.execute(_escalate("YK-RACE-1", "mine"))

    assert outcome.accepted
    assert outcome.case_version == 4
    assert racing.get_case("YK-RACE-1").escalation_level == 2
    racing.close()


def test_a_case_that_keeps_changing_gives_a_conflict_error_that_a_retry_resolves(
    app: CaseApplication, fresh_database_url: str, settings: Settings
) -> None:
    app.execute(_submit("YK-RACE-2"))
    racing = _interleaved(fresh_database_url, settings, retries=0)

    with pytest.raises(ConcurrentUpdateError, match="retry"):
        racing.execute(_escalate("YK-RACE-2", "mine"))
    retried = racing.execute(_escalate("YK-RACE-2", "mine"))

    assert retried.accepted
    assert not retried.repeated
    assert racing.get_case("YK-RACE-2").escalation_level == 2
    racing.close()


def test_snapshots_restore_the_same_state_as_a_full_replay(
    app: CaseApplication, fresh_database_url: str, settings: Settings
) -> None:
    app.execute(_submit("YK-SNAP-1"))
    for _ in range(12):
        app.execute(_escalate("YK-SNAP-1"))
    assert app.snapshots is not None
    assert list(app.snapshots.get(case_id_for("YK-SNAP-1")))
    fresh = _reopen(fresh_database_url, settings.model_copy(update={"aggregate_cache_size": 0}))

    from_snapshot = fresh.get_case("YK-SNAP-1")
    replayed: Case | None = None
    for event in fresh.history("YK-SNAP-1"):
        replayed = event.mutate(replayed)

    assert from_snapshot == replayed
    assert from_snapshot.category.is_high_voltage is False
    fresh.close()


def _store_version_1_submission(app: CaseApplication, case_number: str) -> None:
    """Write a case's first event exactly as the v1 schema stored it (a ``vip`` flag, no ``special_care``)."""
    case_id = case_id_for(case_number)
    fields = {
        "actor": CLERK,
        "occurred_at": START,
        "channel": "COUNTER",
        "reason": "",
        "command_id": "legacy-1",
        "case_number": case_number,
        "category": "LV_NON_RESIDENTIAL",
        "customer_ref": "C-LEGACY",
        "customer_name": "老客户",
        "contact_phone": "0599-5300000",
        "id_number": "91350782MA0000000C",
        "address": "武夷山市老街2号",
        "capacity_kva": 100.0,
        "supply_voltage": "380V",
        "external_line_works": False,
        "important_customer": False,
        "vip": True,
        "fast_track": False,
        "documents": ["营业执照"],
        "route": [
            "APPLICATION",
            "SITE_SURVEY",
            "SUPPLY_PLAN",
            "COMPLETION_INSPECTION",
            "CONTRACT",
            "CONNECTION",
            "ARCHIVE",
            "FOLLOW_UP",
        ],
        "optional_stages": [],
        "previous_hash": GENESIS_HASH,
    }
    topic_name = "Case.ApplicationSubmitted"
    fields["event_hash"] = event_hash(topic_name, case_id, 1, START, fields)
    state = {
        **fields,
        "timestamp": START,
        "originator_topic": "domain.case:Case",
    }
    app.recorder.insert_events(
        [
            StoredEvent(
                originator_id=case_id,
                originator_version=1,
                topic=f"domain.case:{topic_name}",
                state=app.mapper.transcoder.encode(state),
            )
        ]
    )


def test_a_history_stored_with_version_1_events_loads_upcast_and_verifies(app: CaseApplication) -> None:
    _store_version_1_submission(app, "YK-V1-1")

    case = app.get_case("YK-V1-1")

    assert case.priority_tier == 1
    assert case.special_care is False
    assert case.customer_name == "老客户"
    assert app.verify("YK-V1-1").intact


def test_verify_finds_an_event_altered_directly_in_the_database(
    app: CaseApplication, fresh_database_url: str
) -> None:
    app.execute(_submit("YK-TAMPER-1"))
    app.execute(_escalate("YK-TAMPER-1"))
    app.execute(_escalate("YK-TAMPER-1"))
    assert app.verify("YK-TAMPER-1").intact
    case_id = case_id_for("YK-TAMPER-1")

    with psycopg.connect(fresh_database_url) as conn:
        row = conn.execute(
            "SELECT state FROM cases_events WHERE originator_id = %s AND originator_version = 3", (case_id,)
        ).fetchone()
        assert row is not None
        state = json.loads(bytes(row[0]))
        state["reason"] = "无正当理由"
        conn.execute(
            "UPDATE cases_events SET state = %s WHERE originator_id = %s AND originator_version = 3",
            (json.dumps(state, ensure_ascii=False).encode(), case_id),
        )

    verdict = app.verify("YK-TAMPER-1")

    assert not verdict.intact
    assert verdict.first_bad_version == 3
    assert verdict.problem is not None
    assert "recomputed" in verdict.problem


def test_verify_finds_a_middle_event_removed_from_the_database(
    app: CaseApplication, fresh_database_url: str
) -> None:
    app.execute(_submit("YK-TAMPER-2"))
    for _ in range(3):
        app.execute(_escalate("YK-TAMPER-2"))

    with psycopg.connect(fresh_database_url) as conn:
        conn.execute(
            "DELETE FROM cases_events WHERE originator_id = %s AND originator_version = 3",
            (case_id_for("YK-TAMPER-2"),),
        )

    verdict = app.verify("YK-TAMPER-2")

    assert verdict.first_bad_version == 4


def test_a_batch_saves_commands_on_several_cases_in_one_go_and_reports_each_outcome(
    app: CaseApplication,
) -> None:
    app.execute(_submit("YK-BATCH-1"))
    batch: list[Command] = [
        _submit("YK-BATCH-2"),
        _escalate("YK-BATCH-1"),
        _escalate("YK-BATCH-2"),
        _escalate("YK-BATCH-1"),
    ]

    outcomes = app.execute_batch(batch)

    assert all(isinstance(o, type(outcomes[0])) and o.accepted for o in outcomes)  # type: ignore[union-attr]
    assert app.get_case("YK-BATCH-1").escalation_level == 2
    assert app.get_case("YK-BATCH-2").escalation_level == 1
    assert [o.event_types for o in outcomes][1] == ("CaseEscalated",)  # type: ignore[union-attr]
    assert app.verify("YK-BATCH-1").intact
    assert app.verify("YK-BATCH-2").intact


def test_a_batch_with_a_rejection_and_a_repeat_gives_the_same_outcomes_as_one_by_one(
    app: CaseApplication,
) -> None:
    app.execute(_submit("YK-BATCH-3"))
    app.execute(_escalate("YK-BATCH-3", "esc-done"))
    accept_by_marketing = AcceptApplication(
        command_id="acc-wrong",
        case_number="YK-BATCH-3",
        actor=SUPERVISOR,
        occurred_at=START + timedelta(hours=2),
        channel="COUNTER",
    )

    outcomes = app.execute_batch(
        [_escalate("YK-BATCH-3"), accept_by_marketing, _escalate("YK-BATCH-3", "esc-done")]
    )

    first, rejected, repeated = outcomes
    assert first.accepted  # type: ignore[union-attr]
    assert rejected.rule == "ACTOR_NOT_ACCOUNTABLE"  # type: ignore[union-attr]
    assert repeated.repeated
    assert repeated.case_version == 3
    assert app.get_case("YK-BATCH-3").escalation_level == 2


def test_group_commit_from_many_threads_equals_running_the_commands_in_sequence(
    app: CaseApplication,
) -> None:
    from app.group_commit import GroupCommitter

    committer = GroupCommitter(app, max_batch=8)
    numbers = [f"YK-GC-{i}" for i in range(6)]
    for number in numbers:
        app.execute(_submit(number))

    def client(number: str) -> None:
        for _ in range(10):
            assert committer.execute(_escalate(number)).accepted

    threads = [threading.Thread(target=client, args=(number,)) for number in numbers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for number in numbers:
        case = app.get_case(number)
        assert case.escalation_level == 10
        assert case.version == 12
        assert app.verify(number).intact
