"""Command-set encoding and message structure rules (rules.md §6), PS3.7 §6.3.1, §9.3."""

from __future__ import annotations

from .base import Rule

RULES: tuple[Rule, ...] = ()
