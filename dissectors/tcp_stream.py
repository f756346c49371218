"""One direction of a TCP connection: numbered segments in, an in-order byte stream out.

The capture is not the receiver: it sees segments late, twice, in the wrong
order, or never.  This class rebuilds what the receiving application read,
and says so explicitly when it cannot:

* in-order data is delivered at once, one ``StreamData`` per segment, unless
  the layer above set a ``skip_budget``: bytes it promised not to read (the
  middle of a PDV of C-STORE pixel data) are only counted, and reported as
  one ``StreamSkipped`` before the direction's next event;
* early data waits in a bounded buffer until the hole before it is filled;
* a hole is declared lost (``StreamGap``, never zero-filled) when the peer
  acknowledges past it (the receiver got bytes the capture missed), when the
  buffer limit is reached, or when the connection ends;
* resent bytes are dropped, but compared first with the copy already
  delivered or buffered: different bytes for the same sequence numbers
  (``TCP-OVERLAP-CONFLICT``) mean either a broken stack or an attempt to
  show the analyzer other bytes than the receiver kept.  The first copy wins.

Positions are kept as *stream offsets* (unbounded ints counting sequence
space from the first byte) so that only the conversion of a 32-bit sequence
number needs modular arithmetic; everything after it is plain comparisons.

References: RFC 9293 section 3.4 (sequence numbers), RFC 7323 section 2.2
(largest window, 2**30, used here to tell "far ahead" from "garbage").
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from dissectors.stream_events import (
    StreamData,
    StreamEvent,
    StreamGap,
    StreamSkipped,
    TcpFinding,
)

SEQ_MASK = 0xFFFFFFFF
_SEQ_MOD = 1 << 32
_SEQ_HALF = 1 << 31
MAX_WINDOW = 1 << 30
"""Largest distance from the expected sequence number that can be real (RFC 7323 2.2)."""

OVERLAP_CONFLICT = "TCP-OVERLAP-CONFLICT"
OUT_OF_WINDOW = "TCP-OUT-OF-WINDOW"

DEFAULT_MAX_BUFFERED = 8 * 1024 * 1024
DEFAULT_MAX_PIECES = 16384
"""Most out-of-order pieces held; bounds list work when a peer sends tiny segments."""
DEFAULT_HISTORY = 64 * 1024
"""Delivered bytes remembered to compare retransmissions against."""


class TcpStream:
    """Reassembly state of one direction; events are appended to the caller's list.

    The caller (``FlowTable``) hands in segments of this direction and the
    acknowledgment numbers the other side sends (``acked``), and tells it when
    a FIN was seen.  Events carry ``conn``/``from_initiator`` so they can go
    straight to the layer above.
    """

    __slots__ = (
        "conn",
        "from_initiator",
        "max_buffered",
        "max_pieces",
        "history_bytes",
        "started",
        "next_seq",
        "pos",
        "buffered",
        "acked",
        "fin_seen",
        "fin_off",
        "_starts",
        "_pieces",
        "_hist_starts",
        "_hist_data",
        "_history_size",
        "_warned_window",
        "skip_budget",
        "_skipped",
        "_skip_frame",
        "_skip_ts",
    )

    def __init__(
        self,
        conn: int,
        from_initiator: bool,
        *,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        max_pieces: int = DEFAULT_MAX_PIECES,
        history_bytes: int = DEFAULT_HISTORY,
    ) -> None:
        self.conn = conn
        self.from_initiator = from_initiator
        self.max_buffered = max_buffered
        self.max_pieces = max_pieces
        self.history_bytes = history_bytes
        self.started = False
        self.next_seq = -1
        """Sequence number of the next byte to deliver; -1 (matches no segment) until started."""
        self.pos = 0
        """Stream offset of that byte."""
        self.buffered = 0
        """Bytes waiting behind a hole."""
        self.acked: int | None = None
        """Latest acknowledgment number the other side sent for this direction."""
        self.fin_seen = False
        self.fin_off: int | None = None
        """Stream offset of the FIN, once seen: nothing is delivered beyond it."""
        # Out-of-order pieces, sorted, never overlapping, all starting after pos:
        # _starts[i] is the offset of _pieces[i] = (data, frame, ts).
        self._starts: list[int] = []
        self._pieces: list[tuple[bytes, int, float]] = []
        # Recently delivered segments, oldest first: offsets (for bisect) and bytes.
        self._hist_starts: list[int] = []
        self._hist_data: list[bytes] = []
        self._history_size = 0
        self._warned_window = False
        self.skip_budget = 0
        """In-order bytes the layer above will not read; set after each delivery, reset by one."""
        self._skipped = 0
        self._skip_frame = 0
        self._skip_ts = 0.0

    # ---------------------------------------------------------------- input

    def start(self, seq: int) -> None:
        """Set the sequence number of the first byte (ISN + 1, or the first data seen)."""
        self.started = True
        self.next_seq = seq & SEQ_MASK

    def receive(self, seq: int, data: bytes, frame: int, ts: float, out: list[StreamEvent]) -> None:
        """Take the payload of one segment whose first byte has sequence number ``seq``."""
        if self.skip_budget and self.skip(seq, data, frame, ts):
            if not self.skip_budget:  # spent: the layer above hears of it at this segment
                self.settle(out)
            return
        if seq == self.next_seq and not self._starts and self.fin_off is None:
            # The common case, kept short: exactly the next bytes, nothing waiting.
            pos = self.pos
            n = len(data)
            self.pos = pos + n
            self.next_seq = (seq + n) & SEQ_MASK
            if self._skipped:
                self.settle(out)
            self.skip_budget = 0
            out.append(StreamData(self.conn, self.from_initiator, data, frame, ts))
            if self.history_bytes:
                self._remember(pos, data)
            return
        if not self.started:
            self.start(seq)
            self.receive(seq, data, frame, ts, out)
            return
        self._receive_slow(seq, data, frame, ts, out)

    def skip(self, seq: int, data: bytes, frame: int, ts: float) -> bool:
        """Take a segment within ``skip_budget`` without an event; False (nothing done) if not.

        Only exactly the next bytes with nothing buffered qualify: they are
        counted, and remembered for retransmission checks as delivered bytes are.
        When this spends the budget, call ``settle`` now.
        """
        n = len(data)
        if n > self.skip_budget or seq != self.next_seq or self._starts or self.fin_off is not None:
            return False
        pos = self.pos
        self.pos = pos + n
        self.next_seq = (seq + n) & SEQ_MASK
        self.skip_budget -= n
        self._skipped += n
        self._skip_frame, self._skip_ts = frame, ts
        if self.history_bytes:
            self._remember(pos, data)
        return True

    def settle(self, out: list[StreamEvent]) -> None:
        """Report the bytes skipped so far: before any other event of this direction, and
        as soon as the budget is spent (the skipped bytes end what the layer above skips)."""
        out.append(
            StreamSkipped(
                self.conn, self.from_initiator, self._skipped, self._skip_frame, self._skip_ts
            )
        )
        self._skipped = 0

    def on_ack(
        self, frame: int, ts: float, out: list[StreamEvent], *, acted_on: bool = False
    ) -> None:
        """The other side acknowledged ``acked``: holes below it were lost by the capture.

        A hole is declared when something follows it (buffered data or the
        FIN), or when the acknowledging segment carries data of its own
        (``acted_on``): the peer has read the missing bytes and answered them,
        so waiting longer only misattributes what comes next (a P-DATA-TF
        after an A-ASSOCIATE-AC the capture lost is not a protocol error).
        A bare ACK alone is not enough: the acknowledged bytes may simply
        not have reached the capture yet.
        """
        if (
            self._starts
            or (self.fin_off is not None and self.pos < self.fin_off)
            or (
                acted_on
                and self.started
                and 0 < ((self.acked - self.next_seq) & SEQ_MASK) < MAX_WINDOW
            )
        ):
            upto = self._acked_offset()
            if upto is not None:
                self._flush_to(upto, frame, ts, out)

    def fin(self, seq: int) -> None:
        """A FIN with sequence number ``seq`` (after the segment's payload) was seen."""
        self.fin_seen = True
        if not self.started or self.fin_off is not None:
            return
        d = self._distance(seq)
        if d >= MAX_WINDOW:
            return  # not a believable FIN for this stream
        self.fin_off = fin_off = self.pos + max(d, 0)
        # Nothing beyond a FIN is part of the stream.
        starts, pieces = self._starts, self._pieces
        i = bisect_left(starts, fin_off)
        for data, _frame, _ts in pieces[i:]:
            self.buffered -= len(data)
        del starts[i:], pieces[i:]
        if starts:
            last = starts[-1]
            data, pframe, pts = pieces[-1]
            if last + len(data) > fin_off:
                pieces[-1] = (data[: fin_off - last], pframe, pts)
                self.buffered -= last + len(data) - fin_off

    @property
    def finished(self) -> bool:
        """A FIN was seen and every byte before it was delivered or declared lost."""
        return self.fin_seen and (self.fin_off is None or self.pos >= self.fin_off)

    def flush(self, frame: int, ts: float, out: list[StreamEvent]) -> None:
        """The connection is over: deliver everything buffered, declaring every hole lost.

        A final gap is also reported when the FIN or the other side's last
        acknowledgment shows that bytes after the last captured ones existed.
        """
        if self._skipped:
            self.settle(out)
        while self._starts:
            self._gap(self._starts[0] - self.pos, frame, ts, out)
            self._release(out)
        end = self.fin_off if self.fin_off is not None else self._acked_offset()
        if end is not None and end > self.pos:
            self._gap(end - self.pos, frame, ts, out)

    def drop_buffers(self) -> None:
        """Forget buffered and remembered bytes (the layer above lost interest)."""
        self._starts.clear()
        self._pieces.clear()
        self.buffered = 0
        self.skip_budget = self._skipped = 0
        self._hist_starts.clear()
        self._hist_data.clear()
        self._history_size = 0

    # ------------------------------------------------------------- internals

    def _distance(self, seq: int) -> int:
        """Signed distance from the next expected sequence number, modulo 2**32."""
        d = (seq - self.next_seq) & SEQ_MASK
        return d - _SEQ_MOD if d >= _SEQ_HALF else d

    def _acked_offset(self) -> int | None:
        if self.acked is None or not self.started:
            return None
        d = self._distance(self.acked)
        if not 0 < d <= MAX_WINDOW:
            return None
        # The FIN takes a sequence number but is not a byte of the stream.
        return self.pos + d if self.fin_off is None else min(self.pos + d, self.fin_off)

    def _receive_slow(
        self, seq: int, data: bytes, frame: int, ts: float, out: list[StreamEvent]
    ) -> None:
        d = self._distance(seq)
        if d >= MAX_WINDOW:
            if not self._warned_window:
                self._warned_window = True
                out.append(
                    TcpFinding(
                        self.conn,
                        OUT_OF_WINDOW,
                        f"{self._direction()}: segment {d} bytes beyond the expected "
                        "sequence number ignored (further ones silently)",
                        frame,
                        ts,
                    )
                )
            return
        if d <= -MAX_WINDOW:
            return  # ancient or bogus; nothing to compare it with
        pos = self.pos
        start = pos + d
        end = start + len(data)
        if start < pos:
            # Resent bytes: compare what overlaps the delivered stream, keep the rest.
            self._compare_history(start, data[: min(end, pos) - start], frame, ts, out)
            if end <= pos:
                return
            data = data[pos - start :]
            start = pos
        fin_off = self.fin_off
        if fin_off is not None:
            if start >= fin_off:
                return
            if end > fin_off:
                data = data[: fin_off - start]
        self._insert(start, data, frame, ts, out)
        self._release(out)
        if self._starts:
            if self.buffered > self.max_buffered or len(self._starts) > self.max_pieces:
                self._force_gaps(frame, ts, out)
            self.on_ack(frame, ts, out)

    def _deliver(
        self, pos: int, data: bytes, frame: int, ts: float, out: list[StreamEvent]
    ) -> None:
        """Deliver ``data`` at ``pos`` (== self.pos): the slow-path twin of the fast path."""
        n = len(data)
        if self._skipped:
            self.settle(out)
        self.skip_budget = 0
        self.pos = pos + n
        self.next_seq = (self.next_seq + n) & SEQ_MASK
        out.append(StreamData(self.conn, self.from_initiator, data, frame, ts))
        if self.history_bytes:
            self._remember(pos, data)

    def _remember(self, pos: int, data: bytes) -> None:
        """Keep delivered (or skipped) bytes at offset ``pos`` to compare retransmissions with."""
        self._hist_starts.append(pos)
        self._hist_data.append(data)
        self._history_size += len(data)
        if self._history_size > 2 * self.history_bytes:
            self._trim_history()

    def _trim_history(self) -> None:
        # Trimmed in batches (down to about history_bytes once it reaches twice
        # that) so the per-segment cost is two appends and one comparison; the
        # cut point is found by bisecting the offsets, not by walking segments.
        hist_starts = self._hist_starts
        k = bisect_right(hist_starts, self.pos - self.history_bytes)
        del hist_starts[:k], self._hist_data[:k]
        self._history_size = self.pos - hist_starts[0] if hist_starts else 0

    def _gap(self, missing: int, frame: int, ts: float, out: list[StreamEvent]) -> None:
        if self._skipped:
            self.settle(out)
        self.skip_budget = 0
        out.append(StreamGap(self.conn, self.from_initiator, missing, frame, ts))
        self.pos += missing
        self.next_seq = (self.next_seq + missing) & SEQ_MASK

    def _release(self, out: list[StreamEvent]) -> None:
        """Deliver the buffered pieces that now continue the stream."""
        starts, pieces = self._starts, self._pieces
        count = len(starts)
        k = 0
        while k < count and starts[k] == self.pos:
            data, frame, ts = pieces[k]
            self.buffered -= len(data)
            self._deliver(self.pos, data, frame, ts, out)
            k += 1
        if k:
            del starts[:k], pieces[:k]

    def _flush_to(self, upto: int, frame: int, ts: float, out: list[StreamEvent]) -> None:
        """Declare lost every hole before offset ``upto``, delivering the pieces between."""
        starts = self._starts
        while self.pos < upto:
            hole_end = starts[0] if starts and starts[0] < upto else upto
            self._gap(hole_end - self.pos, frame, ts, out)
            self._release(out)

    def _force_gaps(self, frame: int, ts: float, out: list[StreamEvent]) -> None:
        """Buffer limit reached: give up on the oldest holes until back under it."""
        starts = self._starts
        while starts and (self.buffered > self.max_buffered or len(starts) > self.max_pieces):
            self._gap(starts[0] - self.pos, frame, ts, out)
            self._release(out)

    def _insert(
        self, start: int, data: bytes, frame: int, ts: float, out: list[StreamEvent]
    ) -> None:
        """Buffer ``data`` at ``start`` (>= pos), keeping already buffered bytes on overlap."""
        starts, pieces = self._starts, self._pieces
        end = start + len(data)
        i = bisect_right(starts, start)
        prev_end = starts[i - 1] + len(pieces[i - 1][0]) if i else -1
        if prev_end <= start and (i == len(starts) or end <= starts[i]):
            starts.insert(i, start)
            pieces.insert(i, (data, frame, ts))
            self.buffered += len(data)
            return
        # Overlaps buffered pieces: keep only the uncovered parts of the new
        # data, rebuilding the affected run of pieces in one splice so a
        # segment spanning many small pieces costs one pass, not one insert each.
        first = i - 1 if prev_end > start else i
        run_starts: list[int] = []
        run_pieces: list[tuple[bytes, int, float]] = []
        conflict_lo = end
        conflict_hi = 0
        cur = start
        j = first
        while j < len(starts) and starts[j] < end:
            p_start = starts[j]
            p_data = pieces[j][0]
            p_end = p_start + len(p_data)
            if p_start > cur:
                run_starts.append(cur)
                run_pieces.append((data[cur - start : p_start - start], frame, ts))
                self.buffered += p_start - cur
            a = max(p_start, cur)
            b = min(p_end, end)
            if data[a - start : b - start] != p_data[a - p_start : b - p_start]:
                conflict_lo = min(conflict_lo, a)
                conflict_hi = b
            run_starts.append(p_start)
            run_pieces.append(pieces[j])
            cur = max(cur, p_end)
            j += 1
        if cur < end:
            run_starts.append(cur)
            run_pieces.append((data[cur - start :], frame, ts))
            self.buffered += end - cur
        starts[first:j] = run_starts
        pieces[first:j] = run_pieces
        if conflict_hi:
            self._conflict(conflict_lo, conflict_hi, "buffered", frame, ts, out)

    def _compare_history(
        self, start: int, data: bytes, frame: int, ts: float, out: list[StreamEvent]
    ) -> None:
        """Compare resent bytes with the delivered copy still remembered."""
        end = start + len(data)
        hist_starts, hist_data = self._hist_starts, self._hist_data
        # Found by bisection: a peer resending old ranges costs nothing per remembered segment.
        k = max(bisect_right(hist_starts, start) - 1, 0)
        conflict_lo = end
        conflict_hi = 0
        while k < len(hist_starts) and hist_starts[k] < end:
            h_start = hist_starts[k]
            h_data = hist_data[k]
            k += 1
            h_end = h_start + len(h_data)
            if h_end <= start:
                continue
            a = max(h_start, start)
            b = min(h_end, end)
            if data[a - start : b - start] != h_data[a - h_start : b - h_start]:
                conflict_lo = min(conflict_lo, a)
                conflict_hi = b
        if conflict_hi:
            self._conflict(conflict_lo, conflict_hi, "delivered", frame, ts, out)

    def _conflict(
        self, lo: int, hi: int, where: str, frame: int, ts: float, out: list[StreamEvent]
    ) -> None:
        out.append(
            TcpFinding(
                self.conn,
                OVERLAP_CONFLICT,
                f"{self._direction()}: resent bytes within stream offsets {lo}-{hi - 1} differ "
                f"from the copy already {where}; the first copy is kept",
                frame,
                ts,
            )
        )

    def _direction(self) -> str:
        return "initiator to responder" if self.from_initiator else "responder to initiator"
