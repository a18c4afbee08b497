"""The managers' dashboard (管理驾驶舱): the HTML, JavaScript and CSS served by the API under ``/dashboard``.

No Python logic lives here: ``api/dashboard.py`` serves these files and the JSON they poll. Apache ECharts
comes from npm (``package.json`` at the repository root, installed by ``./dev.sh`` into ``node_modules/``)
and is served by the API from there, never fetched from the internet.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
"""``page.html`` (the shell of every page), ``dashboard.js`` and ``dashboard.css``."""

ECHARTS = Path(__file__).resolve().parents[1] / "node_modules" / "echarts" / "dist" / "echarts.min.js"
"""Where ``npm install`` puts the ECharts build the pages load."""

PAGES: dict[str, str] = {
    "overview": "总览 Overview",
    "department": "部门 Department",
    "sla": "时限 SLA",
    "case": "工单 Case",
    "parties": "参建单位 Parties",
}
"""Page name (``/dashboard/<name>``) → its title, Chinese first."""
