"""One runner for every rule case file (sqlfluff-style: cases are data).

Each ``cases/<RULE-ID>.toml`` has ``[[fires]]`` cases, where the rule must
report (at the listed message positions, if ``at`` is given) and
``[[passes]]`` cases, where it must not report at all.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from dimsesniff.rules import RULES
from tests.rules.harness import run_case

CASES = Path(__file__).parent / "cases"


def load_cases():
    for path in sorted(CASES.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        rule = data.get("rule", path.stem)
        for kind in ("fires", "passes"):
            for n, case in enumerate(data.get(kind, []), start=1):
                case.setdefault("profile", data.get("profile", "standard"))
                name = case.get("name", str(n))
                yield pytest.param(rule, kind, case, id=f"{rule}-{kind}-{name}")


@pytest.mark.parametrize(("rule", "kind", "case"), list(load_cases()))
def test_rule_case(rule, kind, case):
    assert rule in RULES, f"case file for unknown rule {rule}"
    findings = [f for f in run_case(case) if f.rule == rule]
    if kind == "passes":
        assert findings == [], [f.message for f in findings]
        return
    assert findings, f"{rule} did not fire"
    if "at" in case:
        assert sorted({f.first_frame for f in findings}) == sorted(case["at"]), [
            (f.first_frame, f.message) for f in findings
        ]
    if "count" in case:
        assert len(findings) == case["count"]
    if "severity" in case:
        assert {f.severity or RULES[rule].severity.value for f in findings} == {case["severity"]}
