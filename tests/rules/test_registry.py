"""Every rule is self-describing and tested: ID format, message, citation, cases both ways."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from dimsesniff.rules import RULES, get
from tests.rules.test_upper_layer import CASES as CONVERSATION_CASES

CASES = Path(__file__).parent / "cases"
CHECKED = sorted(r.id for r in RULES.values() if r.check is not None)


def test_ids_and_metadata():
    for rule in RULES.values():
        assert re.fullmatch(r"[A-Z][A-Z0-9]*(-[A-Z0-9]+)+", rule.id), rule.id
        assert rule.summary and not rule.summary.endswith("."), rule.id
        assert re.search(r"PS3\.\d|RFC|dimsesniff", rule.cite), (rule.id, rule.cite)


def test_get_unknown_rule_raises():
    with pytest.raises(ValueError, match="no such rule"):
        get("NOPE-NOPE")


@pytest.mark.parametrize("rule_id", CHECKED)
def test_every_checked_rule_has_cases_both_ways(rule_id):
    assert RULES[rule_id].doc, f"{rule_id}: docstring has no body explaining why"
    if rule_id in CONVERSATION_CASES:  # upper-layer rules: (fires, passes) conversations
        fires, passes = CONVERSATION_CASES[rule_id]
        assert fires and passes
        return
    path = CASES / f"{rule_id}.toml"
    assert path.exists(), f"missing {path.name}"
    data = tomllib.loads(path.read_text())
    assert data.get("fires"), f"{rule_id}: no case where it fires"
    assert data.get("passes"), f"{rule_id}: no case where it must not fire"
    assert RULES[rule_id].doc, f"{rule_id}: docstring has no body explaining why"


def test_every_finding_code_the_decoders_emit_is_a_rule():
    """A finding whose ID is not registered would reach the reports without severity or citation."""
    import re

    root = Path(__file__).parent.parent.parent
    sources = [*root.glob("dissectors/*.py"), *root.glob("dimsesniff/*.py")]
    emitted = {code for path in sources
               for code in re.findall(r'"((?:TCP|UL|DIMSE)-[A-Z0-9-]+)"', path.read_text())}
    assert emitted, "no finding codes found: the pattern is stale"
    assert sorted(emitted - RULES.keys()) == []
