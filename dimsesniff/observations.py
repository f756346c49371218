"""What the pipeline hands to checks and reports: observed messages and findings.

A ``DimseMessage`` (from ``dissectors``) only knows its bytes; an
``ObservedMessage`` adds where it was seen: its association, its direction
and, for a response, the request it answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dissectors.dimse import is_response
from dissectors.dimse_assembly import DimseMessage

from .associations import Association


@dataclass(slots=True, eq=False)
class ObservedMessage:
    association: Association
    message: DimseMessage
    from_requestor: bool
    index: int  # position in the association, 0-based
    request: ObservedMessage | None = None  # for a response: the request it answers
    response_time: float | None = None  # seconds from the request's last byte
    identifier: object | None = None  # decoded identifier (identifiers.Identifier), if any
    identifier_error: str | None = None

    @property
    def is_response(self) -> bool:
        return is_response(self.message.command_field)

    @property
    def sender(self) -> tuple[str, int]:
        a = self.association
        return a.requestor if self.from_requestor else a.acceptor


@dataclass(slots=True, eq=False)
class Finding:
    """One finding of one rule, with the evidence needed to find it in Wireshark."""

    rule: str
    message: str
    first_frame: int
    last_frame: int
    ts: float
    association: Association | None = None
    observed: ObservedMessage | None = None
    endpoints: tuple[tuple[str, int], tuple[str, int]] | None = None  # when no association
    observed_value: str = ""
    expected: str = ""
    profile: str = ""
    severity: str = ""  # set when the rule grades its findings; else the rule's severity
    frames: tuple[int, ...] = field(default_factory=tuple)  # all frames involved, if more
