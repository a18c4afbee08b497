"""The party registry (参建单位名录) and the case's check of the party named on a customer's request."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent

from app.application import CaseApplication
from domain.case import Case
from domain.commands import ReportCompletion, RequestMidInspection, SubmitDesign
from domain.errors import RuleViolationError
from domain.hashchain import canonical
from domain.parties import Party, PartyKind, PartyQualification, check_named_party, voltage_kv
from domain.vocabulary import Actor
from tests.unit.case_builders import CUSTOMER, Clock, before

ADMIN = Actor("adm-1", "名录管理员", "MARKETING")
AT = datetime(2025, 9, 1, 1, 0, tzinfo=UTC)
DESIGNER = PartyQualification(
    "91350782MA2Y000001", "武夷电力设计院", PartyKind.DESIGN_INSTITUTE, "GRADE_B", date(2030, 1, 1), False
)
BUILDER = PartyQualification(
    "91350782MA2Y000002", "闽北电力安装公司", PartyKind.CONTRACTOR, "CLASS_4", date(2030, 1, 1), False
)


def _party(**overrides: object) -> Party:
    values: dict[str, object] = {
        "party_id": "91350782MA2Y000009",
        "kind": "CONTRACTOR",
        "name": "建瓯输变电工程公司",
        "level": "CLASS_3",
        "expires_on": date(2027, 6, 30),
        "actor": ADMIN,
        "occurred_at": AT,
        "recorded_at": AT,
        "command_id": "reg-1",
    }
    values.update(overrides)
    return Party.register(**values)  # type: ignore[arg-type]


def _renew(party: Party, **overrides: object) -> None:
    values: dict[str, object] = {
        "level": "CLASS_2",
        "expires_on": date(2030, 6, 30),
        "actor": ADMIN,
        "occurred_at": AT,
        "recorded_at": AT,
        "command_id": "renew-1",
    }
    values.update(overrides)
    party.renew(**values)  # type: ignore[arg-type]


def _suspend(party: Party, reason: str = "安全事故停工整顿") -> None:
    party.suspend(actor=ADMIN, occurred_at=AT, recorded_at=AT, command_id="susp-1", reason=reason)


def _design_step() -> tuple[Case, Clock]:
    return before(SubmitDesign, "HV_DUAL")


def _completion_step() -> tuple[Case, Clock]:
    return before(ReportCompletion, "HV_SINGLE")


# ---- the registry -----------------------------------------------------------------------------------


def test_a_registered_party_carries_its_kind_level_expiry_and_is_active() -> None:
    party = _party()

    qualification = party.qualification()

    assert qualification.kind is PartyKind.CONTRACTOR
    assert qualification.level == "CLASS_3"
    assert qualification.expires_on == date(2027, 6, 30)
    assert qualification.suspended is False


def test_a_renewal_moves_the_expiry_later_and_may_change_the_level() -> None:
    party = _party()

    _renew(party)

    assert party.qualification().expires_on == date(2030, 6, 30)
    assert party.level == "CLASS_2"
    assert party.version == 2


def test_a_suspended_party_stays_registered_but_is_marked_suspended() -> None:
    party = _party()

    _suspend(party)

    assert party.qualification().suspended is True


# ---- the case checks the named party ----------------------------------------------------------------


def test_a_design_named_by_a_qualified_design_institute_records_the_party() -> None:
    case, clock = _design_step()

    case.submit_design(clock.ctx(CUSTOMER), DESIGNER.party_id, DESIGNER)

    submitted = [e for e in case.pending_events if isinstance(e, Case.DesignSubmitted)]
    assert submitted[-1].party_id == DESIGNER.party_id


def test_a_completion_report_without_a_named_party_is_still_accepted() -> None:
    case, clock = _completion_step()

    case.report_completion(clock.ctx(CUSTOMER))

    reported = [e for e in case.pending_events if isinstance(e, Case.CompletionReported)]
    assert reported[-1].party_id == ""


def test_a_qualification_is_valid_through_its_expiry_day_in_shanghai() -> None:
    case, clock = _completion_step()
    clock.now = datetime(2029, 12, 31, 14, 0, tzinfo=UTC)  # +1 h: 23:00 on 12-31 in Shanghai
    last_day = PartyQualification(
        BUILDER.party_id, BUILDER.name, BUILDER.kind, BUILDER.level, date(2029, 12, 31), False
    )

    case.report_completion(clock.ctx(CUSTOMER), BUILDER.party_id, last_day)

    assert case.open_stages


def test_a_command_without_the_applications_lookup_refuses_a_named_party() -> None:
    case, clock = _design_step()
    command = SubmitDesign(
        command_id="x-1",
        case_number=case.case_number,
        actor=CUSTOMER,
        occurred_at=clock.now + timedelta(hours=1),
        channel="STAFF_CONSOLE",
        party_id=DESIGNER.party_id,
    )

    with pytest.raises(RuleViolationError) as refused:
        command.execute(case, command.context(command.occurred_at))

    assert refused.value.rule == "PARTY_NOT_REGISTERED"


def _expired() -> tuple[Case, Clock]:
    case, clock = _completion_step()
    clock.now = datetime(2030, 1, 1, 16, 30, tzinfo=UTC)  # 2030-01-02 00:30 in Shanghai
    return case, clock


RULES: dict[str, Callable[[], object]] = {
    "PARTY_ID_REQUIRED": lambda: _party(party_id=" "),
    "PARTY_NAME_REQUIRED": lambda: _party(name=""),
    "PARTY_KIND_UNKNOWN": lambda: _party(kind="SUPPLIER"),
    "QUALIFICATION_LEVEL_INVALID": lambda: _party(kind="DESIGN_INSTITUTE", level="CLASS_1"),
    "TIMEZONE_REQUIRED": lambda: _party(occurred_at=datetime(2025, 9, 1, 9, 0)),  # noqa: DTZ001 — the test
    "RENEWAL_NOT_LATER": lambda: _renew(_party(), expires_on=date(2027, 6, 30)),
    "PARTY_ALREADY_SUSPENDED": lambda: [_suspend(p := _party()), _suspend(p)],
    "REASON_REQUIRED": lambda: _suspend(_party(), reason="  "),
    "PARTY_NOT_REGISTERED": lambda: (
        lambda case, clock: case.submit_design(clock.ctx(CUSTOMER), "91350000NOTKNOWN", None)
    )(*_design_step()),
    "PARTY_NOT_QUALIFIED": lambda: (
        lambda case, clock: case.submit_design(clock.ctx(CUSTOMER), BUILDER.party_id, BUILDER)
    )(*_design_step()),
    "PARTY_SUSPENDED": lambda: (
        lambda case, clock: case.report_completion(
            clock.ctx(CUSTOMER),
            BUILDER.party_id,
            PartyQualification(
                BUILDER.party_id, BUILDER.name, BUILDER.kind, BUILDER.level, BUILDER.expires_on, True
            ),
        )
    )(*_completion_step()),
    "PARTY_LEVEL_INSUFFICIENT": lambda: check_named_party(
        BUILDER.party_id,
        dataclasses.replace(BUILDER, level="CLASS_5"),
        PartyKind.CONTRACTOR,
        AT,
        "35kV",
    ),
    "PARTY_QUALIFICATION_EXPIRED": lambda: (
        lambda case, clock: case.report_completion(
            clock.ctx(CUSTOMER),
            BUILDER.party_id,
            PartyQualification(
                BUILDER.party_id, BUILDER.name, BUILDER.kind, BUILDER.level, date(2030, 1, 1), False
            ),
        )
    )(*_expired()),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_a_party_rule_broken_is_refused_with_that_rule_named(rule: str) -> None:
    with pytest.raises(RuleViolationError) as refused:
        RULES[rule]()

    assert refused.value.rule == rule


def test_a_mid_inspection_requested_by_a_design_institute_is_not_qualified() -> None:
    case, clock = before(RequestMidInspection, "HV_DUAL")

    with pytest.raises(RuleViolationError) as refused:
        case.request_mid_inspection(clock.ctx(CUSTOMER), DESIGNER.party_id, DESIGNER)

    assert refused.value.rule == "PARTY_NOT_QUALIFIED"


def test_every_rule_in_the_party_source_is_provoked_by_a_test() -> None:
    source = (Path(__file__).resolve().parents[2] / "domain" / "parties.py").read_text()

    codes = set(re.findall(r'_reject\(\s*"([A-Z_]+)"', source))

    assert codes == set(RULES)


# ---- old histories ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_class", [Case.DesignSubmitted, Case.MidInspectionRequested, Case.CompletionReported]
)
def test_a_version_1_party_step_event_loads_with_no_party_named(event_class: type[Case.Event]) -> None:
    transcoder = JSONTranscoder()
    CaseApplication.register_transcodings(CaseApplication.__new__(CaseApplication), transcoder)
    mapper: Mapper[object] = Mapper(transcoder=transcoder)
    state = {
        "originator_id": "00000000-0000-0000-0000-000000000001",
        "originator_version": 7,
        "timestamp": AT,
        "actor": CUSTOMER,
        "occurred_at": AT,
        "channel": "STAFF_CONSOLE",
        "reason": "",
        "command_id": "old-1",
        "previous_hash": "a" * 64,
        "event_hash": "b" * 64,
    }
    stored = StoredEvent(
        originator_id=state["originator_id"],  # type: ignore[arg-type]
        originator_version=7,
        topic=f"domain.case:{event_class.__qualname__}",
        state=transcoder.encode(state),
    )

    event = mapper.to_domain_event(stored)

    assert isinstance(event, event_class)
    assert event.party_id == ""  # type: ignore[attr-defined]


def test_a_request_naming_no_party_keeps_the_fingerprint_it_had_before_parties_existed() -> None:
    command = ReportCompletion(
        command_id="c-1", case_number="YK-1", actor=CUSTOMER, occurred_at=AT, channel="CONTRACTOR"
    )
    before_parties = {"type": "ReportCompletion", **canonical(
        {k: v for k, v in dataclasses.asdict(command).items() if k != "party_id"}
    )}  # fmt: skip
    encoded = json.dumps(before_parties, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    assert command.fingerprint() == hashlib.sha256(encoded.encode()).hexdigest()
    assert dataclasses.replace(command, party_id="CT-1").fingerprint() != command.fingerprint()


def test_a_fifth_class_contractor_may_build_for_a_10kv_customer_but_not_a_35kv_one() -> None:
    fifth = dataclasses.replace(BUILDER, level="CLASS_5")

    assert check_named_party(BUILDER.party_id, fifth, PartyKind.CONTRACTOR, AT, "10kV") == BUILDER.party_id
    with pytest.raises(RuleViolationError):
        check_named_party(BUILDER.party_id, fifth, PartyKind.CONTRACTOR, AT, "35kV")
    assert check_named_party(BUILDER.party_id, BUILDER, PartyKind.CONTRACTOR, AT, "35kV") == BUILDER.party_id


def test_supply_voltages_are_read_in_kv() -> None:
    assert [voltage_kv(text) for text in ("10kV", "380V", "220 V", "110KV", "高压")] == [
        10.0,
        0.38,
        0.22,
        110.0,
        None,
    ]
