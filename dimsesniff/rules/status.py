"""Status-code rules

(rules.md §2): legality of a Status per service, per PS3.7 Annex C and PS3.4 Annex C.
"""

from __future__ import annotations

from .base import Rule

RULES: tuple[Rule, ...] = ()
