"""Rebuild DIMSE messages from PDV fragments, one direction at a time (PS3.8 Annex E, PS3.7 §6.3).

A message is a command set (PDVs with Message Control Header bit 0 = 1)
followed by an optional data set (bit 0 = 0); bit 1 marks the last fragment
of each.  The command set is decoded as soon as it is complete, which tells
whether the data set is worth keeping: Query/Retrieve identifiers are kept
(bounded by ``max_data_set``), everything else (C-STORE pixel data) is only
counted, never copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .dimse import Command, CommandSet, decode_command_set
from .ul_events import DecodeFinding, Lost, Pdv

COMMAND_BIT = 0x01
LAST_BIT = 0x02

# Data sets worth keeping: the Query/Retrieve identifiers (PS3.4 Annex C).
KEEP_DATA_SET = frozenset(
    {
        Command.C_FIND_RQ,
        Command.C_FIND_RSP,
        Command.C_MOVE_RQ,
        Command.C_MOVE_RSP,
        Command.C_GET_RQ,
        Command.C_GET_RSP,
    }
)
DEFAULT_MAX_DATA_SET = 4 << 20
DEFAULT_MAX_COMMAND = 64 << 10


@dataclass(slots=True)
class DimseMessage:
    """One DIMSE message as seen on the wire.

    ``data_set`` holds the data set bytes only for identifiers (see
    ``KEEP_DATA_SET``); ``data_set_length`` always counts them.  ``complete``
    is False when the message was cut short (a gap, an abort, the end of the
    capture, or the next message starting early); ``lost_bytes`` counts
    bytes of it the capture never saw.
    """

    context_id: int
    command: CommandSet
    first_frame: int
    last_frame: int
    ts_first: float
    ts: float
    data_set: bytes | None = None
    data_set_length: int = 0
    data_pdvs: int = 0
    command_pdvs: int = 0
    complete: bool = True
    lost_bytes: int = 0
    data_set_truncated: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def command_field(self) -> int | None:
        return self.command.command_field

    @property
    def has_data_set(self) -> bool:
        return self.data_pdvs > 0


class _Building:
    """A message whose last fragment has not arrived yet."""

    __slots__ = (
        "ctx",
        "command_parts",
        "command_length",
        "command_pdvs",
        "message",
        "keep",
        "data_parts",
        "first_frame",
        "ts_first",
        "lost",
    )

    def __init__(self, ctx: int, first_frame: int, ts: float) -> None:
        self.ctx = ctx
        self.command_parts: list[bytes] = []
        self.command_length = 0
        self.command_pdvs = 0
        self.message: DimseMessage | None = None  # set once the command set is complete
        self.keep = False
        self.data_parts: list[bytes] = []
        self.first_frame = first_frame
        self.ts_first = ts
        self.lost = 0


class DimseAssembler:
    """Feed ``Pdv`` and ``Lost`` events of one direction; get ``DimseMessage`` objects back."""

    def __init__(
        self, *, max_data_set: int = DEFAULT_MAX_DATA_SET, max_command: int = DEFAULT_MAX_COMMAND
    ) -> None:
        self._cur: _Building | None = None
        self._max_data_set = max_data_set
        self._max_command = max_command
        self.messages = 0
        # Inside a data set whose command set was not seen: reported once, not per piece.
        self._orphan = False

    @property
    def in_progress(self) -> bool:
        return self._cur is not None

    @property
    def counting_only(self) -> bool:
        """In a data set that is counted, not kept: its bytes may be skipped unseen."""
        cur = self._cur
        return cur is not None and cur.message is not None and not cur.keep

    def pdv(self, ev: Pdv) -> list[DimseMessage | DecodeFinding]:
        """One PDV piece; returns the messages (and findings) it completes."""
        out: list[DimseMessage | DecodeFinding] = []
        cur = self._cur
        if ev.control & COMMAND_BIT:
            self._orphan = False
            if cur is not None and cur.message is not None:
                out.append(
                    DecodeFinding(
                        "UL-MCH-ORDER",
                        "a new command set began before the last data fragment",
                        ev.first_frame,
                        ev.ts,
                    )
                )
                out.append(self._finish(cur, ev.first_frame, ev.ts, complete=False))
                cur = None
            if cur is None:
                cur = self._cur = _Building(ev.context_id, ev.first_frame, ev.ts)
            elif ev.context_id != cur.ctx:
                out.append(
                    DecodeFinding(
                        "UL-PDV-CTX-SWITCH",
                        f"command fragment on context {ev.context_id}, message began on {cur.ctx}",
                        ev.first_frame,
                        ev.ts,
                    )
                )
            if cur.command_length + len(ev.data) <= self._max_command:
                cur.command_parts.append(ev.data)
                cur.command_length += len(ev.data)
            elif not cur.lost:
                cur.lost = -1
                out.append(
                    DecodeFinding(
                        "DIMSE-CMD-TOO-LONG",
                        f"command set longer than {self._max_command} bytes",
                        ev.frame,
                        ev.ts,
                    )
                )
            if ev.end:
                cur.command_pdvs += 1
            if ev.end and ev.control & LAST_BIT:
                message = self._command_complete(cur, ev)
                if message.command.has_data_set is not True:
                    out.append(self._finish(cur, ev.frame, ev.ts, complete=cur.lost == 0))
            return out
        # A data set fragment.
        if cur is None or cur.message is None:
            if cur is not None or not self._orphan:
                out.append(
                    DecodeFinding(
                        "UL-MCH-ORDER" if cur is not None else "DIMSE-DATA-WITHOUT-COMMAND",
                        "data set fragment with no complete command set before it (capture "
                        "started mid-message, or a Command Data Set Type of 0101H was wrong)",
                        ev.first_frame,
                        ev.ts,
                    )
                )
            # Its other pieces and fragments are the same problem (one per TCP segment of
            # a C-STORE's pixel data otherwise), until its last fragment ends.
            self._orphan = not (ev.end and ev.control & LAST_BIT)
            if cur is not None:
                self._cur = None
            return out
        message = cur.message
        if ev.context_id != cur.ctx:
            out.append(
                DecodeFinding(
                    "UL-PDV-CTX-SWITCH",
                    f"data fragment on context {ev.context_id}, message began on {cur.ctx}",
                    ev.first_frame,
                    ev.ts,
                )
            )
        message.data_set_length += len(ev.data) + ev.skipped
        if ev.end:
            message.data_pdvs += 1
        if cur.keep:
            if message.data_set_length <= self._max_data_set:
                cur.data_parts.append(ev.data)
            else:
                cur.keep = False
                cur.data_parts.clear()
                message.data_set_truncated = True
                out.append(
                    DecodeFinding(
                        "DIMSE-DS-TOO-LONG",
                        f"identifier longer than {self._max_data_set} bytes; not decoded",
                        ev.frame,
                        ev.ts,
                    )
                )
        if ev.end and ev.control & LAST_BIT:
            out.append(self._finish(cur, ev.frame, ev.ts, complete=cur.lost == 0))
        return out

    def lost(self, ev: Lost) -> list[DimseMessage | DecodeFinding]:
        """Bytes the capture missed: the message in progress is incomplete."""
        if not ev.inside_pdv:
            self._orphan = False  # the parser lost its place: what follows is news
        cur = self._cur
        if cur is None:
            return []
        if ev.inside_pdv:
            cur.lost += ev.missing
            if cur.keep:
                cur.keep = False
                cur.data_parts.clear()
            return []
        cur.lost += ev.missing
        return [self._finish(cur, ev.frame, ev.ts, complete=False)]

    def close(self, frame: int, ts: float) -> list[DimseMessage | DecodeFinding]:
        """End of stream (release, abort, capture end): flush a message cut short."""
        cur = self._cur
        if cur is None:
            return []
        return [self._finish(cur, frame, ts, complete=False)]

    # ----------------------------------------------------------------------------

    def _command_complete(self, cur: _Building, ev: Pdv) -> DimseMessage:
        command = decode_command_set(b"".join(cur.command_parts))
        cur.command_parts = []
        message = DimseMessage(
            cur.ctx,
            command,
            cur.first_frame,
            ev.frame,
            cur.ts_first,
            ev.ts,
            command_pdvs=cur.command_pdvs,
        )
        cur.message = message
        cur.keep = command.command_field in KEEP_DATA_SET
        return message

    def _finish(self, cur: _Building, frame: int, ts: float, *, complete: bool) -> DimseMessage:
        self._cur = None
        self.messages += 1
        message = cur.message
        if message is None:  # cut short inside the command set
            command = decode_command_set(b"".join(cur.command_parts))
            message = DimseMessage(cur.ctx, command, cur.first_frame, frame, cur.ts_first, ts)
            message.notes.append("command set incomplete")
        message.last_frame = frame
        message.ts = ts
        message.complete = complete
        message.lost_bytes = max(cur.lost, 0)
        if cur.keep and cur.data_parts and complete:
            message.data_set = b"".join(cur.data_parts)
        return message
