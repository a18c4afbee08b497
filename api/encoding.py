"""Typed faces of FastAPI's ``jsonable_encoder`` (typed ``Any``): what a route returns is JSON-ready."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from fastapi.encoders import jsonable_encoder


def json_object(value: Any, custom_encoder: dict[Any, Callable[[Any], Any]] | None = None) -> dict[str, Any]:
    """``value`` (a mapping, dataclass or model) as a JSON-ready object."""
    return cast("dict[str, Any]", jsonable_encoder(value, custom_encoder=custom_encoder))


def json_rows(value: Any) -> list[dict[str, Any]]:
    """``value`` (a sequence of mappings, dataclasses or models) as a JSON-ready list of objects."""
    return cast("list[dict[str, Any]]", jsonable_encoder(value))
