"""Masking of personal data (phone, ID number, name) for read models, published events and logs."""

from __future__ import annotations

from typing import Any


def mask_phone(phone: str) -> str:
    """138****5678: the first three and last four digits stay, so a customer recognises the number."""
    digits = phone.strip()
    if len(digits) < 8:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


def mask_id_number(id_number: str) -> str:
    """3507**********0026: region prefix and last four kept."""
    text = id_number.strip()
    if len(text) < 9:
        return "*" * len(text)
    return f"{text[:4]}{'*' * (len(text) - 8)}{text[-4:]}"


def mask_name(name: str) -> str:
    """王*英 / 王*: the family name and, for longer names, the last character stay."""
    text = name.strip()
    if len(text) <= 1:
        return text
    if len(text) == 2:
        return f"{text[0]}*"
    return f"{text[0]}{'*' * (len(text) - 2)}{text[-1]}"


def mask_personal_data(fields: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``fields`` with phone numbers and ID numbers masked."""
    masked = dict(fields)
    if isinstance(masked.get("contact_phone"), str):
        masked["contact_phone"] = mask_phone(masked["contact_phone"])
    if isinstance(masked.get("id_number"), str):
        masked["id_number"] = mask_id_number(masked["id_number"])
    return masked
