"""Every read model by name, configured with the SLA's rule set and calendar."""

from __future__ import annotations

import functools
from collections.abc import Callable

from infra.settings import Settings
from infra.sla_config import SlaConfig, following_sla_config, sla_config
from projections.notifications import NotificationsProjection
from projections.party_performance import PartyPerformanceProjection
from projections.progress import ProgressProjection
from projections.quality import QualityProjection
from projections.sla import SlaProjection
from projections.tables import Projection
from projections.workload import WorkloadProjection

NAMES = ("progress", "workload", "notifications", "sla", "party_performance", "quality")


def build(config: SlaConfig, follow: Callable[..., SlaConfig] | None = None) -> dict[str, Projection]:
    """The projections under ``config`` (what-if replays build them under another rule set); with
    ``follow``, the SLA read model counts with holiday notices added while it runs."""
    projections: list[Projection] = [
        ProgressProjection(config),
        WorkloadProjection(),
        NotificationsProjection(config),
        SlaProjection(follow or config),
        PartyPerformanceProjection(),
        QualityProjection(),
    ]
    return {p.name: p for p in projections}


@functools.cache
def _default() -> dict[str, Projection]:
    settings = Settings()
    return build(sla_config(settings), following_sla_config(settings.model_dump_json()))


def select(names: list[str] | None = None) -> list[Projection]:
    """The named projections (all when ``names`` is empty); an unknown name is an error."""
    projections = _default()
    if not names:
        return list(projections.values())
    unknown = sorted(set(names) - set(projections))
    if unknown:
        raise KeyError(f"unknown projection(s) {', '.join(unknown)}; known: {', '.join(projections)}")
    return [projections[name] for name in names]
