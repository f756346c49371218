"""Status-related fields encoding rules

(rules.md §5): Error Comment, Offending Element, Error ID.
"""

from __future__ import annotations

from .base import Rule

RULES: tuple[Rule, ...] = ()
