"""Bearer tokens of the HTTP API: what is signed is what is read back; anything else is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from api.security import Role, TokenError, TokenKeyMissingError, authenticate, check_key, issue_token

KEY = "unit-test-key-" + "u" * 40


def test_a_staff_token_reads_back_as_its_actor_and_role() -> None:
    token = issue_token(KEY, role=Role.STAFF, person_id="p-1", name="李四", department="OPERATIONS")

    principal = authenticate(KEY, token)

    assert principal.role is Role.STAFF
    assert (principal.actor.person_id, principal.actor.name, principal.actor.department) == (
        "p-1",
        "李四",
        "OPERATIONS",
    )


def test_an_integrator_acts_as_its_source_system_unless_a_department_is_named() -> None:
    plain = authenticate(
        KEY, issue_token(KEY, role=Role.INTEGRATOR, person_id="s", name="柜台", source_system="COUNTER")
    )

    assert plain.department == "COUNTER" and plain.source_system == "COUNTER"


def test_an_expired_token_is_refused() -> None:
    token = issue_token(
        KEY,
        role=Role.AUDITOR,
        person_id="a",
        name="审计",
        hours=1,
        now=datetime.now(UTC) - timedelta(hours=2),
    )

    with pytest.raises(TokenError, match="expired"):
        authenticate(KEY, token)


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = issue_token("other-key-" + "o" * 40, role=Role.MANAGER, person_id="m", name="经理")

    with pytest.raises(TokenError, match="invalid token"):
        authenticate(KEY, token)


def test_an_unsigned_token_is_refused() -> None:
    token = jwt.encode({"sub": "x", "role": "auditor", "exp": 9_999_999_999}, key=None, algorithm="none")

    with pytest.raises(TokenError):
        authenticate(KEY, token)


def test_staff_need_one_of_our_departments_and_integrators_a_source_system() -> None:
    with pytest.raises(TokenError, match="department"):
        issue_token(KEY, role=Role.STAFF, person_id="p", name="n")
    with pytest.raises(TokenError, match="department"):
        issue_token(KEY, role=Role.STAFF, person_id="p", name="n", department="KITCHEN")
    with pytest.raises(TokenError, match="source_system"):
        issue_token(KEY, role=Role.INTEGRATOR, person_id="p", name="n")


def test_no_key_or_a_short_key_is_refused() -> None:
    with pytest.raises(TokenKeyMissingError, match="YEKUO_API_TOKEN_KEY"):
        check_key(None)
    with pytest.raises(TokenKeyMissingError, match="at least"):
        check_key("short")
