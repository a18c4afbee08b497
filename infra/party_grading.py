"""Loads the party grading thresholds (``infra/data/party_grading.json``) into ``domain.party_grading``."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from domain.party_grading import GradeBand, GradingRules

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "party_grading.json"


class GradingDataError(ValueError):
    """Raised when the grading data file is malformed (missing keys, bands out of order)."""


def grading_rules(path: Path = DEFAULT_PATH) -> GradingRules:
    """The grading rules in ``path``; bands must run from the best grade to the worst."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        bands = tuple(GradeBand(**band) for band in raw["bands"])
        rules = GradingRules(
            version=str(raw["version"]),
            step_limit_days={str(k): float(v) for k, v in raw["step_limit_days"].items()},
            rework_limit_days=float(raw["rework_limit_days"]),
            bands=bands,
            min_steps=int(raw["min_steps"]),
        )
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise GradingDataError(f"{path}: {error}") from None
    for better, worse in itertools.pairwise(bands):
        if (
            better.min_on_time_rate < worse.min_on_time_rate
            or better.min_first_pass_rate < worse.min_first_pass_rate
        ):
            raise GradingDataError(f"{path}: band {better.grade} must be at least as strict as {worse.grade}")
    return rules
