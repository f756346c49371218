"""The sink that turns observations into table rows, counts them, and hands them on.

It decodes Query/Retrieve identifiers (only those: C-STORE data is never
kept) in the transfer syntax of their presentation context, and applies the
patient-data policy before anything is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .associations import Association
from .checks import Checker, EventListener
from .identifiers import IdentifierError, IdentifierTooLarge, decode_identifier, summarize
from .observations import Finding, ObservedMessage
from .redact import Redactor
from .report.rows import association_row, message_row, violation_row
from .rules.base import STANDARD

RowWriter = Callable[[str, dict], None]
"""``write(table, row)`` with table one of ``messages``, ``associations``, ``violations``."""


@dataclass(slots=True)
class Tally:
    """What the terminal summary shows."""

    messages: Counter = field(default_factory=Counter)  # by command name
    statuses: Counter = field(default_factory=Counter)  # (command, status hex)
    findings: Counter = field(default_factory=Counter)  # by rule ID
    severities: Counter = field(default_factory=Counter)
    findings_by_peer: Counter = field(default_factory=Counter)  # (server, called AE)
    associations: int = 0
    mid_capture: int = 0


class Analysis:
    """Implements the pipeline's ``Sink``."""

    def __init__(
        self,
        write: RowWriter,
        redactor: Redactor | None = None,
        keep_finding: Callable[[str], bool] = lambda _rule: True,
        profile: str = STANDARD,
    ) -> None:
        self._write = write
        self.redactor = redactor or Redactor()
        self._keep_finding = keep_finding
        self.tally = Tally()
        self.checker = Checker(self.finding, profile=profile)

    def message(self, observed: ObservedMessage) -> None:
        identifier, error = "", ""
        msg = observed.message
        # Reassembly can complete a message with bytes captured before its first ones
        # (a segment that arrived early): the finding spans both, in order.
        frames = sorted((msg.first_frame, msg.last_frame))
        if msg.data_set is not None:
            ts, _assumed = observed.association.transfer_syntax(msg.context_id)
            try:
                dataset = decode_identifier(msg.data_set, ts)
            except IdentifierError as exc:
                error = str(exc)
                observed.identifier_error = error
                too_large = isinstance(exc, IdentifierTooLarge)  # a resource limit
                self.finding(
                    Finding(
                        "DIMSE-DS-TOO-LONG" if too_large else "DIMSE-DS-DECODE",
                        f"identifier not decoded: {error}"
                        if too_large
                        else f"identifier not decodable in {ts}: {error}",
                        *frames,
                        msg.ts_first,
                        observed.association,
                        observed,
                    )
                )
            else:
                observed.identifier = dataset
                identifier = summarize(dataset, self.redactor)
        if msg.command.problems:
            wrong = msg.command.misencoding
            self.finding(
                Finding(
                    "DIMSE-CMD-IVRLE" if wrong else "DIMSE-CMD-DECODE",
                    f"command set encoded as {wrong}, not Implicit VR Little Endian"
                    if wrong
                    else "; ".join(msg.command.problems),
                    *frames,
                    msg.ts_first,
                    observed.association,
                    observed,
                )
            )
        self.checker.message(observed)
        row = message_row(observed, identifier, error)
        self.tally.messages[row["command"]] += 1
        if row["status"]:
            self.tally.statuses[(row["command"], row["status"])] += 1
        self._write("messages", row)

    def event(
        self,
        association: Association,
        kind: str,
        from_requestor: bool | None,
        frame: int,
        ts: float,
        pdu: object | None = None,
    ) -> None:
        self.checker.association_event(association, kind, from_requestor, frame, ts, pdu)

    def listener(self, kind: str) -> EventListener | None:
        return self.checker.listener(kind)

    def association(self, association: Association) -> None:
        self.checker.association_event(
            association, "end", None, association.end_frame or 0, association.end_ts or 0.0
        )
        self.tally.associations += 1
        self.tally.mid_capture += association.assumed
        self._write("associations", association_row(association))

    def finding(self, finding: Finding) -> None:
        if not self._keep_finding(finding.rule):
            return
        row = violation_row(finding)
        self.tally.findings[finding.rule] += 1
        self.tally.severities[row["severity"]] += 1
        peer = f"{row['server']} {row['called_ae'] or ''}".strip()
        self.tally.findings_by_peer[peer] += 1
        self._write("violations", row)
