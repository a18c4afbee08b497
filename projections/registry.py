"""Every read model by name."""

from __future__ import annotations

from projections.model import Projection
from projections.notifications import NotificationsProjection
from projections.progress import ProgressProjection
from projections.workload import WorkloadProjection

PROJECTIONS: dict[str, Projection] = {
    p.name: p for p in (ProgressProjection(), WorkloadProjection(), NotificationsProjection())
}


def select(names: list[str] | None = None) -> list[Projection]:
    """The named projections (all when ``names`` is empty); an unknown name is an error."""
    if not names:
        return list(PROJECTIONS.values())
    unknown = sorted(set(names) - set(PROJECTIONS))
    if unknown:
        raise KeyError(f"unknown projection(s) {', '.join(unknown)}; known: {', '.join(PROJECTIONS)}")
    return [PROJECTIONS[name] for name in names]
