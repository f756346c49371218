"""The rule registry: every check dimsesniff makes, by stable ID.

Rule modules are imported explicitly (no discovery magic); each exports a
``RULES`` tuple.  A duplicated ID fails at import time.
"""

from __future__ import annotations

from . import command, cross, fields, qr_find, qr_move, sequence, status, upper_layer
from .base import PROFILES, Rule, Severity
from .decode import DECODE_RULES


def _registry(*groups: tuple[Rule, ...]) -> dict[str, Rule]:
    registry: dict[str, Rule] = {}
    for group in groups:
        for rule in group:
            if rule.id in registry:
                raise ValueError(f"duplicate rule ID {rule.id}")
            registry[rule.id] = rule
    return registry


RULES: dict[str, Rule] = _registry(
    DECODE_RULES,
    status.RULES,
    qr_find.RULES,
    qr_move.RULES,
    fields.RULES,
    command.RULES,
    sequence.RULES,
    upper_layer.RULES,
    cross.RULES,
)


def get(rule_id: str) -> Rule:
    try:
        return RULES[rule_id]
    except KeyError:
        raise ValueError(f"no such rule: {rule_id}") from None


__all__ = ["PROFILES", "RULES", "Rule", "Severity", "get"]
