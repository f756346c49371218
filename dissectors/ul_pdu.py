"""Incremental parser for one direction of a DICOM upper-layer byte stream (PS3.8 §9.3).

Sans-I/O: ``feed()`` takes the bytes TCP delivered (with the frame number and
time they were captured at) and returns the events they complete.  The same
object is driven by capture files, live capture and tests, and yields the
same events whatever the chunking of its input.

Memory is bounded whatever a length field claims:
* P-DATA-TF PDUs are never buffered: their PDVs stream out as ``Pdv`` pieces,
  so a 4 GB length costs nothing until bytes arrive;
* other PDUs are buffered only up to ``max_pdu_buffer`` (an A-ASSOCIATE-RQ is a
  few KiB); a longer one is a finding and is skipped as it streams past.

On bytes that cannot be a PDU the parser emits a ``DecodeFinding`` and scans
for the next plausible PDU header (``RESYNC``).  A TCP gap whose size is known
and falls inside one PDV's data is skipped without losing the parser's place.
"""

from __future__ import annotations

import re
import struct

from .malformed import Malformed
from .ul_events import DecodeFinding, Lost, PDataEnd, PDataTF, Pdv, UlEvent
from .ul_items import decode_associate, decode_fixed

# PS3.8 §9.3.1: | type (1) | reserved (1) | PDU-length (4, big endian) |
PDU_HEADER = struct.Struct(">BxI")
# PS3.8 Table 9-23: | item-length (4) | presentation-context-ID (1) | message control header (1) |
PDV_HEADER = struct.Struct(">IBB")

P_DATA_TF = 0x04
FIXED_LENGTH_PDUS = (0x03, 0x05, 0x06, 0x07)
PDU_NAMES = {
    0x01: "A-ASSOCIATE-RQ",
    0x02: "A-ASSOCIATE-AC",
    0x03: "A-ASSOCIATE-RJ",
    0x04: "P-DATA-TF",
    0x05: "A-RELEASE-RQ",
    0x06: "A-RELEASE-RP",
    0x07: "A-ABORT",
}
DEFAULT_MAX_PDU_BUFFER = 1 << 20
# A P-DATA-TF longer than this is taken for garbage while resynchronising.
PLAUSIBLE_PDATA_LENGTH = 1 << 26

# Candidate PDU headers while resynchronising, found by the regex engine
# (C speed even across megabytes of pixel data); each is then validated.
#   P-DATA-TF: 04 00 len(4) pdv-len(4) odd-ctx-id mch(0..3)
#   A-ASSOCIATE-RQ/AC: 01|02 00 len(4) 00 01 (protocol version 1)
#   RJ, RELEASE-RQ/RP, ABORT: 03|05|06|07 00 00 00 00 04
_ODD_BYTES = b"".join(re.escape(bytes([b])) for b in range(1, 256, 2))
RESYNC_PATTERN = re.compile(
    rb"\x04\x00.{4}.{4}[" + _ODD_BYTES + rb"][\x00-\x03]"
    rb"|[\x01\x02]\x00.{4}\x00\x01"
    rb"|[\x03\x05\x06\x07]\x00\x00\x00\x00\x04",
    re.DOTALL,
)

# Parser states
HEADER, BUFFER_PDU, SKIP_PDU, PDV_HEADER_STATE, PDV_DATA, RESYNC = range(6)


class PduParser:
    """Turns one direction's bytes into upper-layer events.

    ``locked`` is False until the stream has shown a valid PDU at a position
    the parser could trust (start of stream, or a header the resync scan
    confirmed); before that, in ``RESYNC``, nothing is emitted but findings.
    """

    def __init__(
        self, *, max_pdu_buffer: int = DEFAULT_MAX_PDU_BUFFER, start_in_resync: bool = False
    ) -> None:
        self._buf = bytearray()
        self._state = RESYNC if start_in_resync else HEADER
        self._max_pdu_buffer = max_pdu_buffer
        self._pdu_type = 0
        self._remaining = 0  # bytes left in the current PDU (or in the skipped PDU)
        self._pdv_left = 0  # bytes left in the current PDV's data
        self._pdv_ctx = 0
        self._pdv_mch = 0
        self._start_frame = 0
        self._start_ts = 0.0
        self._pdu_first_frame = 0
        self._pdu_first_ts = 0.0
        self._pdv_first_frame = 0
        self._pdv_first = False
        self._pdv_length = 0
        self._skipped_data = 0  # bytes absorbed by skip_count() since the last Pdv piece
        self._pdu_length = 0
        self._skipped = 0
        self._frame = 0
        self._ts = 0.0
        self.pdus = 0
        self.bytes_in = 0
        self.resync_skipped = 0

    # -- public API -------------------------------------------------------------------

    @property
    def resyncing(self) -> bool:
        """True while looking for a PDU header after garbage or a gap."""
        return self._state == RESYNC

    def feed(self, data: bytes, frame: int, ts: float) -> list[UlEvent]:
        """Add in-order stream bytes; return the events they complete."""
        self._frame, self._ts = frame, ts
        self.bytes_in += len(data)
        events: list[UlEvent] = []
        if not self._buf:
            self._start_frame, self._start_ts = frame, ts
            if self._state == PDV_DATA:
                # Fast path for bulk data (C-STORE pixel data): no copy into the buffer.
                take = min(len(data), self._pdv_left)
                end = self._piece(events, bytes(data if take == len(data) else data[:take]))
                if not end:
                    return events
                self._after_pdv(events)
                data = data[take:]
                if not data:
                    return events
        self._buf += data
        self._run(events)
        return events

    @property
    def skippable(self) -> int:
        """How many of the next bytes ``skip_count`` takes: the rest of the current PDV's data."""
        if self._state != PDV_DATA or self._buf:
            return 0
        return self._pdv_left

    def skip_count(self, n: int, frame: int, ts: float) -> list[UlEvent] | None:
        """Count ``n`` bytes of PDV data the caller did not keep (``StreamSkipped``).

        None (nothing done) if they would go beyond the current PDV's data.
        Bytes that end it give the events ``feed`` would give there: the PDV's
        last piece (empty, the skipped bytes counted in ``skipped``) and, if
        the P-DATA-TF ends too, its end.
        """
        if self._state != PDV_DATA or self._buf or n > self._pdv_left:
            return None
        self._pdv_left -= n
        self._remaining -= n
        self._skipped_data += n
        self._frame, self._ts = frame, ts
        self.bytes_in += n
        events: list[UlEvent] = []
        if not self._pdv_left:
            self._piece(events, b"")
            self._after_pdv(events)
        return events

    def gap(self, missing: int, frame: int, ts: float) -> list[UlEvent]:
        """``missing`` bytes were never captured; keep our place if the hole is inside a PDV."""
        self._frame, self._ts = frame, ts
        if self._state == PDV_DATA and not self._buf and 0 < missing <= self._pdv_left:
            self._pdv_left -= missing
            self._remaining -= missing
            events: list[UlEvent] = [Lost(missing, True, frame, ts)]
            if self._pdv_left == 0:
                self._piece(events, b"")
                self._after_pdv(events)
            return events
        if self._state == SKIP_PDU and not self._buf and 0 < missing <= self._remaining:
            self._remaining -= missing
            if self._remaining == 0:
                self._state = HEADER
            return [Lost(missing, True, frame, ts)]
        self._buf.clear()
        self._state = RESYNC
        return [Lost(missing, False, frame, ts)]

    def eof(self, frame: int, ts: float) -> list[UlEvent]:
        """End of stream: report a PDU cut short."""
        events: list[UlEvent] = []
        if self._state in (BUFFER_PDU, SKIP_PDU, PDV_HEADER_STATE, PDV_DATA) or (
            self._state == HEADER and self._buf
        ):
            events.append(
                DecodeFinding(
                    "UL-PDU-TRUNCATED",
                    f"stream ended inside a {PDU_NAMES.get(self._pdu_type, 'PDU')}",
                    frame,
                    ts,
                )
            )
        self._buf.clear()
        self._state = HEADER
        return events

    # -- state machine ----------------------------------------------------------------

    def _finding(self, events: list[UlEvent], exc: Malformed) -> None:
        events.append(DecodeFinding(exc.code, exc.detail, self._frame, self._ts))
        self._state = RESYNC

    def _consumed(self) -> None:
        """Bytes were consumed: whatever is left arrived in the current feed.

        Units are consumed as soon as they are complete, so bytes still
        buffered after a unit completed all came with the current frame.
        """
        self._start_frame, self._start_ts = self._frame, self._ts

    def _piece(self, events: list[UlEvent], data: bytes) -> bool:
        """Emit the next piece of the current PDV; True when it completes the PDV.

        The first piece's ``first_frame`` is where the PDV header began; later
        pieces begin in the frame that brought them.
        """
        self._pdv_left -= len(data)
        self._remaining -= len(data)
        end = self._pdv_left == 0
        events.append(
            Pdv(
                self._pdv_ctx,
                self._pdv_mch,
                data,
                end,
                self._pdv_first_frame,
                self._frame,
                self._ts,
                self._pdv_first,
                self._pdv_length,
                self._skipped_data,
            )
        )
        self._pdv_first_frame = self._frame
        self._pdv_first = False
        self._skipped_data = 0
        return end

    def _run(self, events: list[UlEvent]) -> None:
        buf = self._buf
        while True:
            state = self._state
            if state == PDV_DATA:
                if not buf:
                    return
                take = min(len(buf), self._pdv_left)
                chunk = bytes(buf) if take == len(buf) else bytes(buf[:take])
                del buf[:take]
                self._consumed()
                end = self._piece(events, chunk)
                if not end:
                    return
                self._after_pdv(events)
            elif state == HEADER:
                if len(buf) < 6:
                    return
                self._pdu_first_frame, self._pdu_first_ts = self._start_frame, self._start_ts
                pdu_type, length = PDU_HEADER.unpack_from(buf, 0)
                try:
                    self._begin_pdu(pdu_type, length, events)
                except Malformed as exc:
                    self._finding(events, exc)
                    continue
                del buf[:6]
                self._consumed()
            elif state == PDV_HEADER_STATE:
                if self._remaining == 0:
                    self._state = HEADER
                    continue
                if len(buf) < 6:
                    return
                item_len, ctx, mch = PDV_HEADER.unpack_from(buf, 0)
                if item_len < 2 or item_len + 4 > self._remaining:
                    self._finding(
                        events,
                        Malformed(
                            "UL-PDV-FRAMING",
                            f"PDV item-length {item_len}, {self._remaining} bytes left in the PDU",
                        ),
                    )
                    continue
                self._pdv_first_frame = self._start_frame
                del buf[:6]
                self._consumed()
                self._remaining -= 6
                self._pdv_ctx, self._pdv_mch, self._pdv_left = ctx, mch, item_len - 2
                self._pdv_length, self._pdv_first = item_len - 2, True
                if self._pdv_left == 0:
                    self._piece(events, b"")
                    self._after_pdv(events)
                else:
                    self._state = PDV_DATA
            elif state == BUFFER_PDU:
                if len(buf) < self._remaining:
                    return
                body = bytes(buf[: self._remaining])
                del buf[: self._remaining]
                self._consumed()
                self._state = HEADER
                self.pdus += 1
                try:
                    if self._pdu_type in (0x01, 0x02):
                        events.append(
                            decode_associate(
                                self._pdu_type,
                                body,
                                self._pdu_first_frame,
                                self._frame,
                                self._pdu_first_ts,
                            )
                        )
                    else:
                        events.append(
                            decode_fixed(
                                self._pdu_type,
                                body,
                                self._pdu_first_frame,
                                self._frame,
                                self._pdu_first_ts,
                            )
                        )
                except Malformed as exc:
                    events.append(DecodeFinding(exc.code, exc.detail, self._frame, self._ts))
            elif state == SKIP_PDU:
                take = min(len(buf), self._remaining)
                del buf[:take]
                self._consumed()
                self._remaining -= take
                if self._remaining:
                    return
                self._state = HEADER
            else:  # RESYNC
                if not self._resync(events):
                    return

    def _begin_pdu(self, pdu_type: int, length: int, events: list[UlEvent]) -> None:
        if pdu_type == P_DATA_TF and length > PLAUSIBLE_PDATA_LENGTH:
            # Streamed, it would swallow every later PDU as PDV data: taken for garbage.
            raise Malformed(
                "UL-PDU-TOO-LONG",
                f"P-DATA-TF claims {length} bytes (more than {PLAUSIBLE_PDATA_LENGTH}, "
                "which no peer sends); resynchronising",
            )
        if pdu_type == P_DATA_TF:
            self._pdu_type = pdu_type
            self._remaining = length
            self._state = PDV_HEADER_STATE
            self.pdus += 1
            self._pdu_length = length
            events.append(PDataTF(length, self._pdu_first_frame, self._pdu_first_ts))
            if length == 0:
                events.append(
                    DecodeFinding("UL-PDV-FRAMING", "P-DATA-TF with no PDV", self._frame, self._ts)
                )
            return
        if pdu_type not in PDU_NAMES or self._buf[1] != 0:
            raise Malformed(
                "UL-PDU-TYPE", f"bytes {bytes(self._buf[:6]).hex()} are not a PDU header"
            )
        self._pdu_type = pdu_type
        self._remaining = length
        if pdu_type in FIXED_LENGTH_PDUS and length != 4:
            events.append(
                DecodeFinding(
                    "UL-PDU-LEN-FIXED",
                    f"{PDU_NAMES[pdu_type]} with PDU-length {length}, 4 expected",
                    self._frame,
                    self._ts,
                )
            )
        if length > self._max_pdu_buffer:
            events.append(
                DecodeFinding(
                    "UL-PDU-TOO-LONG",
                    f"{PDU_NAMES[pdu_type]} claims {length} bytes "
                    f"(cap {self._max_pdu_buffer}); skipped",
                    self._frame,
                    self._ts,
                )
            )
            self._state = SKIP_PDU
        else:
            self._state = BUFFER_PDU

    def _after_pdv(self, events: list[UlEvent]) -> None:
        if self._remaining > 0:
            self._state = PDV_HEADER_STATE
            return
        self._state = HEADER
        events.append(PDataEnd(self._pdu_length, self._pdu_first_frame, self._frame, self._ts))

    def _resync(self, events: list[UlEvent]) -> bool:
        """Drop bytes up to the next plausible PDU header; False = need more bytes."""
        buf = self._buf
        pos = 0
        while True:
            match = RESYNC_PATTERN.search(buf, pos)
            if match is None:
                # Keep a tail that could be the start of a header split across feeds.
                drop = max(0, len(buf) - 11)
                self._skipped += drop
                del buf[:drop]
                return False
            start = match.start()
            if self._plausible(buf, start):
                self._skipped += start
                del buf[:start]
                self._consumed()
                self._state = HEADER
                if self._skipped:
                    events.append(
                        DecodeFinding(
                            "UL-RESYNC",
                            f"skipped {self._skipped} bytes to the next PDU header",
                            self._frame,
                            self._ts,
                            {"skipped": self._skipped},
                        )
                    )
                    self.resync_skipped += self._skipped
                    self._skipped = 0
                return True
            pos = start + 1

    @staticmethod
    def _plausible(buf: bytearray, start: int) -> bool:
        pdu_type, length = PDU_HEADER.unpack_from(buf, start)
        if pdu_type == P_DATA_TF:
            (item_len,) = struct.unpack_from(">I", buf, start + 6)
            return item_len >= 2 and item_len + 4 <= length <= PLAUSIBLE_PDATA_LENGTH
        if pdu_type in (0x01, 0x02):
            return 68 <= length <= DEFAULT_MAX_PDU_BUFFER
        return True
