"""The fault and load campaign (``bench/campaign.py``, issue 14), short: its own entry point, its own verdicts.

The campaign starts its own PostgreSQL and Tansu in the test's directory (it kills them) and every process
as the real ``yekuo`` command; the session's servers are never touched. A short run kills every kind of
process, PostgreSQL and the broker under load, then checks what the clients were told against the system.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.campaign import FAULT_KINDS, CampaignConfig, run_campaign

SHORT = {
    "seconds": 6.0,
    "rate": 8.0,
    "kill_every": 1.0,
    "workers": 1,
    "outage_seconds": 1.0,
    "hostile_every": 3.0,
}
"""6 s of load, stretched until each kind of fault happened once (about 15 s); about 45 s in all."""


def test_a_short_campaign_loses_nothing_through_every_kind_of_kill(tmp_path: Path) -> None:
    report: dict[str, Any] = run_campaign(CampaignConfig(**SHORT, workdir=tmp_path / "campaign"))
    checks = report["checks"]
    shown = json.dumps(report, ensure_ascii=False, default=str)[:4000]

    assert set(FAULT_KINDS) == {"api", "intake", "relay", "worker", "sla-clock", "postgres", "kafka"}
    assert all(checks["processes"]["kills_by_kind"][kind] >= 1 for kind in FAULT_KINDS), shown
    assert checks["processes"]["unexpected_exits"] == 0, shown
    assert sum(checks["acknowledged"]["by_door"].values()) > 0, shown
    assert checks["acknowledged"]["missing_from_store"] == 0, shown
    assert checks["case_events_topic"]["missing"] == 0, shown
    assert checks["case_events_topic"]["not_in_store"] == 0, shown
    assert checks["read_models"]["tables"] > 0 and checks["read_models"]["differing"] == {}, shown
    assert checks["intake"]["message_ids_sent"] > 0, shown
    assert checks["intake"]["without_result"] == 0, shown
    assert checks["intake"]["with_disagreeing_results"] == 0, shown
    assert checks["intake"]["hostile_without_outcome"] == 0, shown
    notifications = checks["notifications"]
    assert notifications["seen_but_not_in_read_model"] == 0, shown
    assert notifications["delivered_after_broker_restart_not_seen"] == 0, shown
    assert notifications["repeats_on_topic"] <= notifications["repeat_bound"], shown
    assert checks["hash_chains"]["exit_code"] == 0, shown
    assert report["broken"] == [], shown
