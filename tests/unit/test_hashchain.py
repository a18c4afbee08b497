"""The hash chain: canonical form survives storage, and any alteration, removal or reordering is found."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

from domain.case import Case
from domain.hashchain import ChainLink, canonical, verify_chain
from domain.vocabulary import Actor, Stage
from tests.unit.case_builders import walk


def _links(case: Case) -> list[ChainLink]:
    return [
        ChainLink(type(e).__qualname__, e.originator_version, e.timestamp, dict(vars(e)))
        for e in case.collect_events()
    ]


def test_canonical_form_is_the_same_before_storing_and_after_loading() -> None:
    shanghai = timezone(timedelta(hours=8))
    moment = datetime(2025, 9, 26, 15, 0, tzinfo=shanghai)
    case_id = uuid4()
    actor = Actor("p", "张三", "OPERATIONS")

    assert canonical(moment) == canonical(moment.astimezone(UTC))
    assert canonical(case_id) == canonical(str(case_id))
    assert canonical(("a", "b")) == canonical(["a", "b"])
    assert canonical(actor) == canonical(dataclasses.asdict(actor))
    assert canonical(Stage.CONTRACT) == "CONTRACT"


def test_an_intact_chain_verifies() -> None:
    case, _ = walk("HV_DUAL")
    links = _links(case)

    verdict = verify_chain(case.id, links)

    assert verdict.intact
    assert verdict.events_checked == len(links)


def test_an_altered_field_is_found_at_its_event() -> None:
    case, _ = walk("RESIDENTIAL")
    links = _links(case)
    links[4] = dataclasses.replace(links[4], fields={**links[4].fields, "reason": "篡改"})

    verdict = verify_chain(case.id, links)

    assert verdict.first_bad_version == 5
    assert verdict.problem is not None and "recomputed" in verdict.problem


def test_a_removed_middle_event_is_found() -> None:
    case, _ = walk("RESIDENTIAL")
    links = _links(case)
    del links[6]

    assert verify_chain(case.id, links).first_bad_version == 8


def test_swapped_events_are_found() -> None:
    case, _ = walk("RESIDENTIAL")
    links = _links(case)
    links[3], links[4] = links[4], links[3]

    assert verify_chain(case.id, links).first_bad_version == 5


def test_a_rewritten_previous_hash_is_found() -> None:
    case, _ = walk("RESIDENTIAL")
    links = _links(case)
    links[2] = dataclasses.replace(links[2], fields={**links[2].fields, "previous_hash": "f" * 64})

    verdict = verify_chain(case.id, links)

    assert verdict.first_bad_version == 3
    assert verdict.problem is not None and "previous_hash" in verdict.problem


def test_the_same_events_under_another_case_id_do_not_verify() -> None:
    case, _ = walk("RESIDENTIAL")

    assert not verify_chain(uuid4(), _links(case)).intact
