"""What a rule is: a stable ID, a one-line message, a severity, a citation, and its doc.

Decode rules (TCP, upper layer, DIMSE encoding) are raised by the dissectors
and only described here; message rules also carry a ``check`` function.
IDs are stable forever; a retired ID is never reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: Severity
    summary: str  # one line: what is wrong
    cite: str  # standard part + section/table
    doc: str = ""  # why it matters; seed/standard disagreements

    @property
    def family(self) -> str:
        return self.id.split("-", 1)[0]
