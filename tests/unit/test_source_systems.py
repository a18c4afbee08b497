from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.source_systems import SourceSystemConfigError, load_source_systems


def test_the_shipped_table_loads_and_keeps_metering_away_from_plan_reviews() -> None:
    table = load_source_systems()

    metering = table.get("METERING_SYSTEM")
    assert metering is not None
    assert metering.may_send("InstallMeter")
    assert not metering.may_send("ApprovePlanReview")
    assert table.get("NO_SUCH_SYSTEM") is None


def test_a_table_naming_an_unknown_command_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "systems.json"
    path.write_text(
        json.dumps(
            {
                "version": "x",
                "source_systems": {"S": {"label": "s", "channel": "COUNTER", "command_types": ["Nope"]}},
            }
        )
    )

    with pytest.raises(SourceSystemConfigError, match="Nope"):
        load_source_systems(path)
