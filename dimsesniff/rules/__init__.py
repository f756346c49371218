"""The rule registry: every check dimsesniff makes, by stable ID."""

from __future__ import annotations

from .base import Rule, Severity
from .decode import DECODE_RULES


def _registry(*groups: tuple[Rule, ...]) -> dict[str, Rule]:
    registry: dict[str, Rule] = {}
    for group in groups:
        for rule in group:
            if rule.id in registry:
                raise ValueError(f"duplicate rule ID {rule.id}")
            registry[rule.id] = rule
    return registry


RULES: dict[str, Rule] = _registry(DECODE_RULES)


def get(rule_id: str) -> Rule:
    try:
        return RULES[rule_id]
    except KeyError:
        raise ValueError(f"no such rule: {rule_id}") from None


__all__ = ["RULES", "Rule", "Severity", "get"]
