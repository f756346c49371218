"""C-FIND response rules (rules.md §3): identifier presence and related fields per status."""

from __future__ import annotations

from .base import Rule

RULES: tuple[Rule, ...] = ()
