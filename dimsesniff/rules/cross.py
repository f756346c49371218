"""Cross-association rules tying a C-MOVE to its C-STORE sub-operations

(rules.md §10), PS3.4 §C.4.2.
"""

from __future__ import annotations

from .base import Rule

RULES: tuple[Rule, ...] = ()
