"""Domain errors: every rejected command names the rule it breaks."""

from __future__ import annotations


class DomainError(Exception):
    """Raised when the domain refuses something; base of all domain errors."""


class RuleViolationError(DomainError):
    """Raised when a command would break a named business rule; ``rule`` is the rule's code."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.message = message
