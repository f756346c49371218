"""Upper-layer rules (rules.md §8), PS3.8 §9.3 and Annexes D, E."""

from __future__ import annotations

from .base import Rule

RULES: tuple[Rule, ...] = ()
