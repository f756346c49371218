"""One TCP connection: is it DICOM, and if so, its association and messages.

DICOM is recognised on any port by its content (PS3.8 §9.3.2):
* a connection whose opening was captured is DICOM when the initiator's
  first bytes are an A-ASSOCIATE-RQ header (type 01H, length >= 68);
* a connection caught mid-way is DICOM when the resynchronising parser
  finds PDU headers that line up (two consecutive PDUs, each starting where
  the previous one ended) within ``PROBE_LIMIT`` bytes of either direction;
* ``force`` (the ``--port`` option) skips the guess.
Anything else is handed back to the flow table as not interesting, so
HTTP on 8080 costs one look at its first bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from dissectors.dimse import (
    MESSAGE_ID,
    MESSAGE_ID_BEING_RESPONDED_TO,
    Command,
    is_response,
)
from dissectors.dimse_assembly import DimseAssembler, DimseMessage
from dissectors.stream_events import Endpoint
from dissectors.ul_events import (
    Abort,
    AssociateAC,
    AssociateRJ,
    AssociateRQ,
    DecodeFinding,
    Lost,
    PDataEnd,
    PDataTF,
    Pdv,
    ReleaseRP,
    ReleaseRQ,
    UlEvent,
)
from dissectors.ul_pdu import PduParser

from .associations import Association
from .observations import Finding, ObservedMessage

if TYPE_CHECKING:
    from .checks import EventListener

PROBE_LIMIT = 256 * 1024
MAX_OUTSTANDING = 4096
PENDING_STATUSES = (0xFF00, 0xFF01)


class Sink(Protocol):
    """Where the pipeline's results go (collected lists, CSV writers, live printers)."""

    def message(self, observed: ObservedMessage) -> None: ...
    def association(self, association: Association) -> None: ...
    def finding(self, finding: Finding) -> None: ...
    def event(
        self,
        association: Association,
        kind: str,
        from_requestor: bool | None,
        frame: int,
        ts: float,
    ) -> None: ...
    def listener(self, kind: str) -> EventListener | None:
        """For the per-PDU events (``pdata``, ``pdv``, ``pdata-end``): what to call, if anything."""
        ...


def looks_like_associate_rq(head: bytes) -> bool:
    """A-ASSOCIATE-RQ header: 01H, 00H, length in [68, 1 MiB] (PS3.8 Table 9-11)."""
    if len(head) < 6 or head[0] != 0x01 or head[1] != 0:
        return False
    length = int.from_bytes(head[2:6], "big")
    return 68 <= length <= (1 << 20)


UNDECIDED, DICOM, NOT_DICOM = "undecided", "dicom", "not-dicom"


class DicomConnection:
    """Drives two ``PduParser`` and two ``DimseAssembler`` (one per direction)."""

    def __init__(
        self,
        conn: int,
        initiator: Endpoint,
        responder: Endpoint,
        syn_seen: bool,
        frame: int,
        ts: float,
        *,
        next_association_id: Callable[[], int],
        sink: Sink,
        force: bool = False,
    ) -> None:
        self.conn = conn
        self.initiator = initiator
        self.responder = responder
        self.syn_seen = syn_seen
        self.first_frame = frame
        self.first_ts = ts
        self._next_association_id = next_association_id
        self._sink = sink
        self.force = force
        self.state = UNDECIDED
        self.association: Association | None = None
        mid_stream = not syn_seen
        self._parsers = (
            PduParser(start_in_resync=mid_stream),
            PduParser(start_in_resync=mid_stream),
        )
        self._assemblers = (DimseAssembler(), DimseAssembler())
        # While undecided: the raw bytes of a captured opening, or the held events of a
        # mid-stream guess, per direction (index 0 = from initiator).
        self._held_bytes: list[list[tuple[bytes, int, float]]] = [[], []]
        self._held_events: list[list[UlEvent]] = [[], []]
        self._probed = [0, 0]
        self._lined = [0, 0]  # PDUs back to back in the held events (see _lined_up)
        self._outstanding: dict[tuple[bool, int], ObservedMessage] = {}
        self._on_pdata = sink.listener("pdata")
        self._on_pdata_end = sink.listener("pdata-end")
        self._on_pdv = sink.listener("pdv")
        self._message_index = 0
        if force and syn_seen is False:
            self._decide_dicom(frame, ts)

    # -- stream events ---------------------------------------------------------------

    def data(self, from_initiator: bool, data: bytes, frame: int, ts: float) -> str:
        """Feed in-order bytes; returns the detection state afterwards."""
        side = 0 if from_initiator else 1
        if self.state == DICOM:
            parser = self._parsers[side]
            # Bulk data nobody reads (C-STORE pixel data) is counted, not parsed.
            if self._assemblers[side].counting_only:
                events = parser.skip_count(len(data), frame, ts)
                if events is not None:
                    if events:
                        self._handle(side, events)
                    return DICOM
            self._handle(side, parser.feed(data, frame, ts))
        elif self.state == UNDECIDED:
            self._probe(side, data, frame, ts)
        return self.state

    def skippable(self, from_initiator: bool) -> int:
        """In-order bytes of one direction this connection will not read next (see ``skipped``).

        Inside the data of a PDV whose message is only counted (C-STORE pixel
        data), the rest of that data: the TCP layer may count those bytes
        instead of delivering them segment by segment.
        """
        side = 0 if from_initiator else 1
        if self.state != DICOM or not self._assemblers[side].counting_only:
            return 0
        return self._parsers[side].skippable

    def skipped(self, from_initiator: bool, length: int, frame: int, ts: float) -> None:
        """``length`` bytes promised by ``skippable`` went by uncopied."""
        side = 0 if from_initiator else 1
        if self.state != DICOM:
            return
        events = self._parsers[side].skip_count(length, frame, ts)
        if events is None:
            # Cannot happen when the budget came from ``skippable``; if it did, the
            # bytes are gone, so the parser hears of them as a hole, not silently.
            self.gap(from_initiator, length, frame, ts)
        elif events:  # they ended the PDV
            self._handle(side, events)

    def gap(self, from_initiator: bool, missing: int, frame: int, ts: float) -> None:
        side = 0 if from_initiator else 1
        if self.state == DICOM:
            self._handle(side, self._parsers[side].gap(missing, frame, ts))
        elif self.state == UNDECIDED and self.syn_seen:
            # The opening is damaged; guess from what follows, as for a mid-stream capture.
            self.syn_seen = False
            self._parsers = (PduParser(start_in_resync=True), PduParser(start_in_resync=True))
            held, self._held_bytes = self._held_bytes, [[], []]
            # The hole itself is reported if the connection turns out to be DICOM.
            self._held_events[side].append(Lost(missing, False, frame, ts))
            for s, chunks in enumerate(held):
                for chunk, f, t in chunks:
                    self._probe(s, chunk, f, t)

    def end(self, reason: str, frame: int, ts: float) -> None:
        """The TCP connection is over: flush everything, close the association."""
        if self.state != DICOM:
            return
        for side in (0, 1):
            self._handle(side, self._parsers[side].eof(frame, ts))
            for item in self._assemblers[side].close(frame, ts):
                self._assembled(side, item)
        assoc = self.association
        if assoc is None:
            return
        if assoc.end_frame is None:
            assoc.end_frame, assoc.end_ts = frame, ts
        if assoc.state not in ("released", "aborted", "rejected"):
            assoc.end_reason = {
                "fin": "connection closed without A-RELEASE",
                "rst": "connection reset",
                "capture-end": "capture ended",
                "idle": "idle timeout",
            }.get(reason, reason)
        self._sink.association(assoc)

    # -- detection -----------------------------------------------------------------------

    def _probe(self, side: int, data: bytes, frame: int, ts: float) -> None:
        self._probed[side] += len(data)
        if self.syn_seen:
            self._held_bytes[side].append((data, frame, ts))
            head = b"".join(chunk for chunk, _, _ in self._held_bytes[0])
            if len(head) >= 6:
                # With --port, the stream's real start is decoded whatever it holds.
                if looks_like_associate_rq(head) or self.force:
                    self._decide_dicom(frame, ts)
                else:
                    self.state = NOT_DICOM
            elif self._probed[1] > PROBE_LIMIT:
                self.state = NOT_DICOM
            return
        events = self._parsers[side].feed(data, frame, ts)
        self._held_events[side].extend(events)
        # Counted as events arrive: rescanning every held event per segment was
        # quadratic (a megabyte of one-byte segments took hours).
        self._lined[side] = self._lined_up(events, self._lined[side])
        if self._parsers[side].pdus >= 2 and self._lined[side] >= 2:
            self._decide_dicom(frame, ts)
        elif self._probed[side] > 4 * PROBE_LIMIT or min(self._probed) > PROBE_LIMIT:
            self.state = NOT_DICOM

    @staticmethod
    def _lined_up(events: list[UlEvent], pdus: int = 0) -> int:
        """PDUs decoded back to back (no framing error since, a resync is not one).

        ``pdus`` is the count before ``events``; two or more means DICOM.
        """
        for ev in events:
            if isinstance(ev, DecodeFinding):
                if ev.code != "UL-RESYNC":
                    pdus = 0
            elif not isinstance(ev, (Pdv, Lost)):
                pdus += 1
        return pdus

    def _decide_dicom(self, frame: int, ts: float) -> None:
        self.state = DICOM
        mid_stream = not self.syn_seen or self.association is None and self.force
        self.association = Association(
            id=self._next_association_id(),
            conn=self.conn,
            requestor=self.initiator,
            acceptor=self.responder,
            start_frame=self.first_frame,
            start_ts=self.first_ts,
        )
        if not self.syn_seen:
            self.association.assumed = mid_stream
            self.association.state = "established"
            self._guess_roles()
        held_bytes, self._held_bytes = self._held_bytes, [[], []]
        held_events, self._held_events = self._held_events, [[], []]
        for side in (0, 1):
            self._handle(side, held_events[side])
            for chunk, f, t in held_bytes[side]:
                self._handle(side, self._parsers[side].feed(chunk, f, t))

    def _guess_roles(self) -> None:
        """Without the A-ASSOCIATE-RQ, the acceptor is the side on the lower port."""
        assoc = self.association
        assert assoc is not None
        if self.initiator[1] < self.responder[1]:
            assoc.requestor, assoc.acceptor = self.responder, self.initiator
            assoc.requestor_is_initiator = False

    # -- upper-layer events ----------------------------------------------------------------

    def _handle(self, side: int, events: list[UlEvent]) -> None:
        assoc = self.association
        assert assoc is not None
        assembler = self._assemblers[side]
        on_pdv, on_pdata, on_pdata_end = self._on_pdv, self._on_pdata, self._on_pdata_end
        from_requestor = self._from_requestor(side)  # until an A-ASSOCIATE-RQ says otherwise
        for ev in events:
            if isinstance(ev, Pdv):
                if ev.first and on_pdv is not None:
                    on_pdv(assoc, from_requestor, ev.first_frame, ev.ts, ev)
                for item in assembler.pdv(ev):
                    self._assembled(side, item)
            elif isinstance(ev, PDataTF):
                if on_pdata is not None:
                    on_pdata(assoc, from_requestor, ev.frame, ev.ts, ev)
            elif isinstance(ev, PDataEnd):
                if on_pdata_end is not None:
                    on_pdata_end(assoc, from_requestor, ev.frame, ev.ts, ev)
            elif isinstance(ev, Lost):
                self._finding(
                    DecodeFinding(
                        "TCP-GAP",
                        f"{ev.missing} bytes missing from the capture"
                        + ("" if ev.inside_pdv else "; resynchronising"),
                        ev.frame,
                        ev.ts,
                    ),
                    side,
                )
                for item in assembler.lost(ev):
                    self._assembled(side, item)
                if assoc.state == "requested" and not self._from_requestor(side):
                    # The acceptor's answer to the A-ASSOCIATE-RQ was lost with these bytes.
                    # The requestor went on (that is what revealed the hole), so it was an
                    # A-ASSOCIATE-AC whose contexts are unknown: decode on assumptions.
                    assoc.state = "established"
                    assoc.assumed = True
            elif isinstance(ev, DecodeFinding):
                self._finding(ev, side)
            else:
                self._pdu(side, ev)
                from_requestor = self._from_requestor(side)

    def _pdu(self, side: int, ev: UlEvent) -> None:
        assoc = self.association
        assert assoc is not None
        from_initiator = side == 0
        from_requestor = from_initiator == assoc.requestor_is_initiator
        if isinstance(ev, AssociateRQ):
            if not from_initiator:
                assoc.requestor, assoc.acceptor = self.responder, self.initiator
                assoc.requestor_is_initiator = False
            assoc.start_frame, assoc.start_ts = ev.first_frame, ev.ts
            assoc.on_rq(ev)
            self._sink.event(assoc, "associate-rq", True, ev.last_frame, ev.ts, ev)
        elif isinstance(ev, AssociateAC):
            state = assoc.state
            assoc.on_ac(ev)
            self._sink.event(
                assoc, "associate-ac", from_requestor, ev.last_frame, ev.ts, (state, ev)
            )
        elif isinstance(ev, AssociateRJ):
            assoc.on_rj(ev)
            self._sink.event(assoc, "associate-rj", from_requestor, ev.last_frame, ev.ts, ev)
            assoc.end_reason = (
                f"rejected (result {ev.result}, source {ev.source}, reason {ev.reason})"
            )
            assoc.end_frame, assoc.end_ts = ev.last_frame, ev.ts
        elif isinstance(ev, ReleaseRQ):
            if assoc.state != "releasing":
                assoc.state = "releasing"
                assoc.release_requested_by = "requestor" if from_requestor else "acceptor"
            self._sink.event(assoc, "release-rq", from_requestor, ev.last_frame, ev.ts, ev)
        elif isinstance(ev, ReleaseRP):
            assoc.state = "released"
            assoc.end_reason = "released"
            assoc.end_frame, assoc.end_ts = ev.last_frame, ev.ts
            self._sink.event(assoc, "release-rp", from_requestor, ev.last_frame, ev.ts, ev)
        elif isinstance(ev, Abort):
            assoc.state = "aborted"
            who = "requestor" if from_requestor else "acceptor"
            assoc.end_reason = f"aborted by {who} (source {ev.source}, reason {ev.reason})"
            assoc.end_frame, assoc.end_ts = ev.last_frame, ev.ts
            self._sink.event(assoc, "abort", from_requestor, ev.last_frame, ev.ts, ev)

    def _from_requestor(self, side: int) -> bool:
        assoc = self.association
        return (side == 0) == (assoc is None or assoc.requestor_is_initiator)

    def _finding(self, ev: DecodeFinding, side: int) -> None:
        assoc = self.association
        if assoc is not None:
            assoc.findings += 1
        self._sink.finding(
            Finding(
                ev.code,
                ev.detail,
                ev.frame,
                ev.frame,
                ev.ts,
                assoc,
                observed_value=str(ev.extra) if ev.extra else "",
            )
        )

    # -- DIMSE messages ------------------------------------------------------------------

    def _assembled(self, side: int, item: DimseMessage | DecodeFinding) -> None:
        if isinstance(item, DecodeFinding):
            self._finding(item, side)
            return
        assoc = self.association
        assert assoc is not None
        from_requestor = (side == 0) == assoc.requestor_is_initiator
        if from_requestor:
            assoc.messages_from_requestor += 1
        else:
            assoc.messages_from_acceptor += 1
        observed = ObservedMessage(assoc, item, from_requestor, self._message_index)
        self._message_index += 1
        self._pair(observed)
        self._sink.message(observed)

    def _pair(self, observed: ObservedMessage) -> None:
        """Pair responses (and C-CANCEL-RQ) with their request (PS3.7 §9.3)."""
        command = observed.message.command
        field = command.command_field
        if is_response(field) or field == Command.C_CANCEL_RQ:
            responded_to = command.us(MESSAGE_ID_BEING_RESPONDED_TO)
            if responded_to is None:
                return
            key = (not observed.from_requestor, responded_to)
            if field == Command.C_CANCEL_RQ:
                key = (observed.from_requestor, responded_to)
            request = self._outstanding.get(key)
            if request is None:
                return
            observed.request = request
            observed.response_time = observed.message.ts_first - request.message.ts
            if field != Command.C_CANCEL_RQ and command.status not in PENDING_STATUSES:
                del self._outstanding[key]
            return
        message_id = command.us(MESSAGE_ID)
        if message_id is None:
            return
        if len(self._outstanding) >= MAX_OUTSTANDING:
            self._outstanding.pop(next(iter(self._outstanding)))
        self._outstanding[(observed.from_requestor, message_id)] = observed
