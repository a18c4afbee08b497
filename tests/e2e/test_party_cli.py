"""``yekuo party …`` as an operator uses it: register, renew, suspend, list, and grades."""

from __future__ import annotations

from tests.e2e.test_cli import yekuo


def test_an_operator_registers_renews_suspends_lists_and_grades_parties(fresh_database_url: str) -> None:
    env = {"DATABASE_URL": fresh_database_url}

    registered = yekuo(
        "party", "register", "91350782MA2YCT0001", "--kind", "CONTRACTOR", "--name", "闽北电力安装公司",
        "--level", "CLASS_4", "--expires", "2027-06-30", env=env,
    )  # fmt: skip
    wrong_level = yekuo(
        "party", "register", "91350782MA2YDI0001", "--kind", "DESIGN_INSTITUTE", "--name", "武夷设计院",
        "--level", "CLASS_1", "--expires", "2027-06-30", env=env,
    )  # fmt: skip
    renewed = yekuo(
        "party", "renew", "91350782MA2YCT0001", "--level", "CLASS_3", "--expires", "2030-06-30", env=env
    )
    suspended = yekuo("party", "suspend", "91350782MA2YCT0001", "--reason", "安全事故停工整顿", env=env)
    listed = yekuo("party", "list", env=env)
    rebuilt = yekuo("projections", "rebuild", "party_performance", env=env)
    graded = yekuo("party", "grades", env=env)

    assert registered.returncode == 0 and "accepted" in registered.stdout, registered.stderr
    assert wrong_level.returncode == 1 and "QUALIFICATION_LEVEL_INVALID" in wrong_level.stdout
    assert renewed.returncode == 0 and suspended.returncode == 0
    assert (
        "闽北电力安装公司" in listed.stdout and "2030-06-30" in listed.stdout and "suspended" in listed.stdout
    )
    assert "武夷设计院" not in listed.stdout
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert graded.returncode == 0 and "PARTY_GRADING_2025" in graded.stdout
