"""The dispatch file (per-department auto-assignment) is checked on load; the least-loaded handler rule."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from consumers.auto_assign import command_id_for, least_loaded
from domain.vocabulary import Actor
from infra.dispatch_config import DispatchConfigError, load_dispatch_config


def _write(tmp_path: Path, departments: object) -> Path:
    path = tmp_path / "dispatch.json"
    path.write_text(json.dumps({"version": "t", "departments": departments}, ensure_ascii=False))
    return path


def test_the_shipped_dispatch_file_loads_and_switches_departments_one_by_one() -> None:
    config = load_dispatch_config()

    assert [d.department.value for d in config.auto_assigned()] == ["OPERATIONS"]
    assert not config.departments["MARKETING"].auto_assign
    assert all(h.department == "OPERATIONS" for h in config.departments["OPERATIONS"].handlers)


@pytest.mark.parametrize(
    ("departments", "complaint"),
    [
        (
            {"SALES": {"auto_assign": True, "handlers": [{"person_id": "s-1", "name": "甲"}]}},
            "not a department",
        ),
        ({"OPERATIONS": {"auto_assign": True, "handlers": []}}, "no handler"),
        ({"OPERATIONS": {"auto_assign": "yes", "handlers": []}}, "true or false"),
        (
            {
                "OPERATIONS": {
                    "auto_assign": True,
                    "handlers": [{"person_id": "op-1", "name": "甲"}, {"person_id": "op-1", "name": "乙"}],
                }
            },
            "listed twice",
        ),
        ({"OPERATIONS": {"auto_assign": True, "handlers": [{"person_id": " ", "name": "甲"}]}}, "blank"),
        ({"OPERATIONS": {"handlers": []}}, "KeyError"),
    ],
)
def test_a_bad_dispatch_file_is_refused_with_the_reason(
    tmp_path: Path, departments: object, complaint: str
) -> None:
    with pytest.raises(DispatchConfigError, match=complaint):
        load_dispatch_config(_write(tmp_path, departments))


def test_an_unreadable_dispatch_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "dispatch.json"
    path.write_text("{not json")

    with pytest.raises(DispatchConfigError, match=r"dispatch\.json"):
        load_dispatch_config(path)


def test_the_handler_with_the_least_open_work_is_chosen_and_ties_go_by_name() -> None:
    a, b, c = (Actor(p, n, "OPERATIONS") for p, n in (("op-a", "陈一"), ("op-b", "陈二"), ("op-c", "陈三")))

    assert least_loaded((a, b, c), Counter({"op-a": 2, "op-b": 1, "op-c": 1})) == c  # 三 4E09 < 二 4E8C
    assert least_loaded((a, b, c), Counter({"op-b": 1, "op-c": 1})) == a
    assert least_loaded((b, c), Counter({"op-c": 3})) == b


def test_an_auto_assignment_command_id_names_case_stage_and_work_item() -> None:
    assert command_id_for("YK-1", "SITE_SURVEY", 2) == "auto-assign:YK-1:SITE_SURVEY:2"
