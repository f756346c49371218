"""Sequencing, pairing, cancel and asynchronous-window rules

(rules.md §7), PS3.7 §9.1-9.3, Annex D.3.3.
"""

from __future__ import annotations

from .base import Rule

RULES: tuple[Rule, ...] = ()
