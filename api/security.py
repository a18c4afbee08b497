"""Who is calling (身份与角色): HS256 bearer tokens whose claims give the actor and the role.

The actor of every command is the token's (person id, name, department), never a request field. Roles:
``integrator`` (one source system of ``infra/source_systems.py``: its channel and command types), ``staff``
(one department: its queue, inbox and commands as that department), ``manager`` (all departments: read,
escalate, reassign), ``auditor`` (read everything, change nothing; unmasked reads are logged) and
``customer`` (their own cases, by customer reference). A customer without a token looks a case up by case
number plus the last four digits of the contact phone (``api.customer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt

from domain.vocabulary import Actor, Department

ALGORITHM = "HS256"
MIN_KEY_BYTES = 32
"""HS256 keys shorter than the hash output weaken it (RFC 7518 §3.2)."""


class Role(StrEnum):
    INTEGRATOR = "integrator"
    STAFF = "staff"
    MANAGER = "manager"
    AUDITOR = "auditor"
    CUSTOMER = "customer"


class TokenError(Exception):
    """Raised when a bearer token is missing, malformed, expired, wrongly signed or has bad claims."""


class TokenKeyMissingError(Exception):
    """Raised when the API is asked to start, or a token to be issued, without a signing key."""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: the actor its commands are recorded under, its role and scope."""

    person_id: str
    name: str
    department: str
    role: Role
    source_system: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(self.person_id, self.name, self.department)


def check_key(key: str | None) -> str:
    """The signing key, or ``TokenKeyMissingError`` when none (or a too short one) is configured."""
    if not key:
        raise TokenKeyMissingError(
            "YEKUO_API_TOKEN_KEY is not set: the HTTP API needs a signing key for its bearer tokens "
            "(the local stack and demo generate one into the state directory)"
        )
    if len(key.encode()) < MIN_KEY_BYTES:
        raise TokenKeyMissingError(f"YEKUO_API_TOKEN_KEY must be at least {MIN_KEY_BYTES} bytes long")
    return key


def default_department(role: Role, department: str | None, source_system: str | None) -> str:
    """The department recorded as the actor's: staff name theirs; others act as their role or system."""
    if department:
        return department
    if role is Role.INTEGRATOR and source_system:
        return source_system
    if role is Role.STAFF:
        raise TokenError("a staff token needs a department")
    return role.value.upper()


def issue_token(
    key: str,
    *,
    role: Role,
    person_id: str,
    name: str,
    department: str | None = None,
    source_system: str | None = None,
    hours: float = 8.0,
    now: datetime | None = None,
) -> str:
    """A signed token for one person in one role, valid for ``hours``."""
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": person_id,
        "name": name,
        "department": default_department(role, department, source_system),
        "role": role.value,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(hours=hours)).timestamp()),
    }
    if source_system:
        claims["source_system"] = source_system
    principal_from_claims(claims)  # refuse to issue what would be refused on use
    return jwt.encode(claims, check_key(key), algorithm=ALGORITHM)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """The caller named by verified claims; ``TokenError`` for claims that do not fit the role."""
    try:
        role = Role(str(claims.get("role")))
    except ValueError:
        raise TokenError(f"unknown role {claims.get('role')!r}") from None
    fields = {name: claims.get(claim) for name, claim in (("person_id", "sub"), ("name", "name"))}
    for name, value in fields.items():
        if not isinstance(value, str) or not value.strip():
            raise TokenError(f"token claim {name} is missing")
    department = claims.get("department")
    if not isinstance(department, str) or not department.strip():
        raise TokenError("token claim department is missing")
    if role is Role.STAFF and department not in Department.__members__:
        raise TokenError(f"staff department {department!r} is not one of {', '.join(Department)}")
    source_system = claims.get("source_system")
    if role is Role.INTEGRATOR and not source_system:
        raise TokenError("an integrator token needs a source_system")
    return Principal(
        person_id=str(fields["person_id"]),
        name=str(fields["name"]),
        department=department,
        role=role,
        source_system=source_system if isinstance(source_system, str) else None,
    )


def authenticate(key: str, token: str) -> Principal:
    """The caller of a bearer token; ``TokenError`` when it is not one we signed and still valid."""
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "role"]})
    except jwt.PyJWTError as error:
        raise TokenError(f"invalid token: {error}") from None
    return principal_from_claims(claims)
