"""How often the SLA engine agrees with an independent reference of BRIEF §2.4's counting rule.

Not a test (the property tests in ``tests/unit/test_sla_clock_laws.py`` assert the same laws on fewer
histories). Builds ``--histories`` random legal case histories with the real aggregate (every category,
all three rule sets, pauses, returns, parallel reviews, supplements, objections, failed inspections, step
lengths with sub-second parts and exact midnights; see ``tests/sla_reference.py``), reads every clock with
the engine and with the reference, and prints one JSON document: clocks compared, the share that agree on
deadline, elapsed time, level crossings and verdict, and the disagreements by field, rule set and clock kind.

    python bench/sla_agreement.py [--histories 2000] [--seed 17]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.sla_reference import (
    DEPARTMENTS,
    GAPS,
    RANDOM_ACTIONS,
    RULE_SETS,
    STARTS,
    Plan,
    agreement,
    build,
    disagreements,
)
from tests.unit.case_builders import ROUTE_KINDS


def random_plan(rng: random.Random) -> Plan:
    return [
        (
            rng.randrange(100),
            rng.randrange(len(RANDOM_ACTIONS)),
            rng.choice(DEPARTMENTS),
            rng.randrange(len(GAPS)),
        )
        for _ in range(rng.randrange(46))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--histories", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    clocks = agreeing = 0
    fields: Counter[str] = Counter()
    by_rule_set: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    paused = crossed = 0
    for number in range(args.histories):
        category, fast_track = rng.choice(ROUTE_KINDS)
        history = build(category, fast_track, rng.choice(STARTS), random_plan(rng))
        rule_set = RULE_SETS[number % len(RULE_SETS)]
        for clock, reading, expected in agreement(history, rule_set):
            clocks += 1
            kinds[clock["kind"]] += 1
            paused += bool(clock["excluded"])
            crossed += any(c.at is not None for c in reading.crossings)
            wrong = disagreements(reading, expected)
            if not wrong:
                agreeing += 1
                continue
            fields.update(wrong)
            by_rule_set[rule_set] += 1
            by_kind[clock["kind"]] += 1
        if (number + 1) % 200 == 0:
            print(f"{number + 1}/{args.histories} histories, {clocks} clocks", file=sys.stderr)
    print(
        json.dumps(
            {
                "histories": args.histories,
                "seed": args.seed,
                "clocks": clocks,
                "clocks_by_kind": dict(kinds),
                "clocks_with_customer_time": paused,
                "clocks_with_a_crossing": crossed,
                "agreeing": agreeing,
                "agreement": round(agreeing / clocks, 6) if clocks else None,
                "disagreements_by_field": dict(fields),
                "disagreements_by_rule_set": dict(by_rule_set),
                "disagreements_by_clock_kind": dict(by_kind),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
