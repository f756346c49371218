"""All TCP connections of a capture: segments in, per-connection stream events out.

``FlowTable`` finds the connection a segment belongs to, decides when
connections begin and end, and lets one ``TcpStream`` per direction rebuild
the bytes.  It is sans-I/O: time is the capture timestamp handed in with
each segment, and expiry happens only when the caller asks (``expire``).

Connection identity.  A connection is the 4-tuple *and* its SYN: a new SYN
on a 4-tuple whose connection has ended, or carrying a different initial
sequence number, starts a new connection (port reuse), as Wireshark's
``tcp.stream`` does.  Without a SYN, a connection starts at its first segment
that carries payload, so stray ACKs after a close do not create ghosts.

Who initiated: the sender of the SYN; if only the SYN-ACK was captured, its
receiver (the handshake still says who asked, and both streams still start
at their first byte, so ``syn_seen`` is True); otherwise the sender of the
first segment seen (``syn_seen`` False: the streams may start mid-way).

Memory is bounded on hostile or huge captures: at most ``max_flows``
connections (the least recently used one is evicted, with a
``TCP-FLOW-CAP`` finding), at most ``max_buffered_per_direction`` bytes
waiting behind a hole, and a connection the upper layer ``ignore()``s costs
a dict entry and nothing per byte.

``StreamEnd.reason`` is one of ``fin`` (both sides closed), ``rst``,
``idle``, ``capture-end``, ``evicted`` (flow cap) or ``reused`` (a new SYN
replaced a connection that had not closed).
"""

from __future__ import annotations

from collections import OrderedDict

from dissectors.packet import ACK, FIN, RST, SYN, Segment
from dissectors.stream_events import Endpoint, StreamEnd, StreamEvent, StreamOpen, TcpFinding
from dissectors.tcp_stream import DEFAULT_HISTORY, SEQ_MASK, TcpStream

FLOW_CAP = "TCP-FLOW-CAP"

_SPECIAL = SYN | FIN | RST


class _Conn:
    """One connection: its two directions and what identifies it."""

    __slots__ = (
        "id",
        "initiator",
        "responder",
        "fwd",
        "rev",
        "isn",
        "ignored",
        "closing",
        "ended",
        "last_ts",
    )

    def __init__(
        self, cid: int, initiator: Endpoint, responder: Endpoint, fwd: TcpStream, rev: TcpStream
    ) -> None:
        self.id = cid
        self.initiator = initiator
        self.responder = responder
        self.fwd = fwd  # initiator -> responder
        self.rev = rev  # responder -> initiator
        self.isn: int | None = None  # initiator's SYN sequence number, when seen
        self.ignored = False
        self.closing = False  # a FIN was seen in either direction
        self.ended = False  # reported ended and forgotten (a caller may still hold it)
        self.last_ts = 0.0

    def lookup_keys(self) -> tuple[tuple[str, str, int, int], tuple[str, str, int, int]]:
        """Lookup keys in ``Segment`` field order (src, dst, sport, dport), both directions."""
        (ia, ip), (ra, rp) = self.initiator, self.responder
        return (ia, ra, ip, rp), (ra, ia, rp, ip)


_Entry = tuple[_Conn, TcpStream, TcpStream]
"""What a 4-tuple maps to: the connection, the stream of that direction, the other one."""


class FlowTable:
    """Reassemble every TCP connection of a capture into ordered stream events.

    Feed every decoded segment to ``handle`` in capture order; call
    ``expire`` from time to time on long captures if an idle timeout is set,
    and ``close_all`` at the end.
    """

    def __init__(
        self,
        *,
        max_flows: int = 100_000,
        max_buffered_per_direction: int = 8 * 1024 * 1024,
        idle_timeout: float | None = None,
        overlap_history: int = DEFAULT_HISTORY,
    ) -> None:
        if max_flows < 1:
            raise ValueError("max_flows must be at least 1")
        self.max_flows = max_flows
        self.max_buffered = max_buffered_per_direction
        self.idle_timeout = idle_timeout
        self.overlap_history = overlap_history
        self._flows: dict[tuple[str, str, int, int], _Entry] = {}
        # Open connections by id, least recently used first (for eviction and expiry).
        self._conns: OrderedDict[int, _Conn] = OrderedDict()
        self._next_id = 0
        self._last_frame = 0

    @property
    def open_connections(self) -> int:
        """Number of connections currently followed."""
        return len(self._conns)

    # ---------------------------------------------------------------- public

    def handle(self, seg: Segment, frame: int, ts: float) -> list[StreamEvent]:
        """Account for one captured segment; return the events it causes, in order."""
        src, dst, sport, dport, seq, ack, flags, payload = seg
        self._last_frame = frame
        entry = self._flows.get((src, dst, sport, dport))
        if entry is None or flags & _SPECIAL or entry[0].ignored:
            return self._handle_special(seg, entry, frame, ts)
        return self.take(entry, seq, ack, flags, payload, frame, ts)

    def take(
        self, entry: _Entry, seq: int, ack: int, flags: int, payload: bytes, frame: int, ts: float
    ) -> list[StreamEvent]:
        """The common case of ``handle``: a data or ACK segment of a followed connection.

        No SYN, FIN or RST in ``flags``, and ``entry`` current (``taking``).
        ``Pipeline.feed_batch`` calls it with an ``entry`` it found itself, by
        the raw header fields of a frame it did not copy.
        """
        conn, own, peer = entry
        self._last_frame = frame
        conn.last_ts = ts
        self._conns.move_to_end(conn.id)
        out: list[StreamEvent] = []
        # The ACK first: a hole it reveals in the other direction precedes this data.
        if flags & ACK:
            peer.acked = ack
            if peer.buffered or conn.closing or payload:
                peer.on_ack(frame, ts, out, acted_on=bool(payload))
        if payload:
            own.receive(seq, payload, frame, ts, out)
        if conn.closing and own.finished and peer.finished:
            self._end(conn, "fin", frame, ts, out)
        return out

    @staticmethod
    def taking(entry: _Entry) -> bool:
        """Whether ``take`` may be given ``entry``: its connection is followed, not ended."""
        conn = entry[0]
        return not (conn.ended or conn.ignored)

    def entry(self, src: str, dst: str, sport: int, dport: int) -> _Entry | None:
        """(connection, this direction's stream, the other one) for a segment's 4-tuple."""
        return self._flows.get((src, dst, sport, dport))

    def grant_skip(self, conn: int, from_initiator: bool, budget: int) -> None:
        """The layer above will not read the next ``budget`` in-order bytes of one direction.

        They are then counted instead of delivered, and reported as one
        ``StreamSkipped`` before that direction's next event.  The budget
        ends with the next event delivered in that direction.
        """
        c = self._conns.get(conn)
        if c is not None and not c.ignored:
            (c.fwd if from_initiator else c.rev).skip_budget = budget

    def ignore(self, conn: int) -> None:
        """Stop reassembling ``conn``: its data is dropped from now on, its end still reported."""
        c = self._conns.get(conn)
        if c is not None:
            c.ignored = True
            c.fwd.drop_buffers()
            c.rev.drop_buffers()

    def expire(self, now: float, *, frame: int | None = None) -> list[StreamEvent]:
        """End connections silent for longer than ``idle_timeout`` (reason ``idle``).

        ``now`` is a capture timestamp; ``frame`` (default: the last frame
        handled) is the frame number given to the events.
        """
        out: list[StreamEvent] = []
        if self.idle_timeout is None:
            return out
        limit = now - self.idle_timeout
        idle = []
        # Least recently used first: stop at the first connection still active.
        for conn in self._conns.values():
            if conn.last_ts >= limit:
                break
            idle.append(conn)
        at = self._last_frame if frame is None else frame
        for conn in idle:
            self._end(conn, "idle", at, now, out)
        return out

    def close_all(self, frame: int, ts: float) -> list[StreamEvent]:
        """End of capture: flush every open connection (reason ``capture-end``), by id."""
        out: list[StreamEvent] = []
        for cid in sorted(self._conns):
            self._end(self._conns[cid], "capture-end", frame, ts, out)
        return out

    # ------------------------------------------------------------- internals

    def _handle_special(
        self, seg: Segment, entry: _Entry | None, frame: int, ts: float
    ) -> list[StreamEvent]:
        """Everything but the common case: new connections, SYN, FIN, RST, ignored ones."""
        src, dst, sport, dport, seq, ack, flags, payload = seg
        out: list[StreamEvent] = []
        if flags & RST:
            # Any RST ends the connection; its payload, if any, is not stream data.
            if entry is not None:
                self._end(entry[0], "rst", frame, ts, out)
            return out
        data_seq = seq
        if flags & SYN:
            data_seq = (seq + 1) & SEQ_MASK  # the SYN itself takes one sequence number
            if not flags & ACK:
                if entry is not None:
                    conn, own, _peer = entry
                    if not (own is conn.fwd and conn.isn == seq):
                        # Not a retransmitted SYN: the 4-tuple is being reused.
                        reason = "fin" if conn.fwd.fin_seen and conn.rev.fin_seen else "reused"
                        self._end(conn, reason, frame, ts, out)
                        entry = None
                if entry is None:
                    entry = self._open((src, sport), (dst, dport), True, frame, ts, out)
                    conn = entry[0]
                    conn.isn = seq
                    conn.fwd.start(data_seq)
            else:
                # SYN-ACK.  Without the SYN, the handshake still tells who
                # initiated and where both streams begin.
                if entry is None:
                    self._open((dst, dport), (src, sport), True, frame, ts, out)
                    entry = self._flows[(src, dst, sport, dport)]
                    entry[0].fwd.start(ack)
                if not entry[1].started:
                    entry[1].start(data_seq)
        elif entry is None:
            if not payload:
                return out  # a stray ACK or FIN: no connection to talk about
            entry = self._open((src, sport), (dst, dport), False, frame, ts, out)

        conn, own, peer = entry
        conn.last_ts = ts
        self._conns.move_to_end(conn.id)
        if conn.ignored:
            if flags & FIN:
                own.fin_seen = conn.closing = True
            if own.fin_seen and peer.fin_seen:
                self._end(conn, "fin", frame, ts, out)
            return out
        if flags & ACK:
            peer.acked = ack
            if peer.buffered or conn.closing or payload:
                peer.on_ack(frame, ts, out, acted_on=bool(payload))
        if payload:
            own.receive(data_seq, payload, frame, ts, out)
        if flags & FIN:
            conn.closing = True
            own.fin((data_seq + len(payload)) & SEQ_MASK)
        if conn.closing and own.finished and peer.finished:
            self._end(conn, "fin", frame, ts, out)
        return out

    def _open(
        self,
        initiator: Endpoint,
        responder: Endpoint,
        syn_seen: bool,
        frame: int,
        ts: float,
        out: list[StreamEvent],
    ) -> _Entry:
        """Create a connection (evicting the least recently used one at the cap)."""
        if len(self._conns) >= self.max_flows:
            oldest = next(iter(self._conns.values()))
            out.append(
                TcpFinding(
                    oldest.id,
                    FLOW_CAP,
                    f"more than {self.max_flows} open connections: the least recently "
                    "used one is no longer followed",
                    frame,
                    ts,
                )
            )
            self._end(oldest, "evicted", frame, ts, out)
        cid = self._next_id
        self._next_id += 1
        fwd = TcpStream(
            cid, True, max_buffered=self.max_buffered, history_bytes=self.overlap_history
        )
        rev = TcpStream(
            cid, False, max_buffered=self.max_buffered, history_bytes=self.overlap_history
        )
        conn = _Conn(cid, initiator, responder, fwd, rev)
        fwd_key, rev_key = conn.lookup_keys()
        # Reverse key first: for a connection to itself both keys are equal,
        # and its segments then belong to the initiator's direction.
        self._flows[rev_key] = (conn, rev, fwd)
        self._flows[fwd_key] = entry = (conn, fwd, rev)
        self._conns[cid] = conn
        out.append(StreamOpen(cid, initiator, responder, syn_seen, frame, ts))
        return entry

    def _end(self, conn: _Conn, reason: str, frame: int, ts: float, out: list[StreamEvent]) -> None:
        """Flush both directions (declaring holes lost), report the end, forget the connection."""
        if not conn.ignored:
            conn.fwd.flush(frame, ts, out)
            conn.rev.flush(frame, ts, out)
        out.append(StreamEnd(conn.id, reason, frame, ts))
        conn.ended = True
        for key in conn.lookup_keys():
            if (entry := self._flows.get(key)) is not None and entry[0] is conn:
                del self._flows[key]
        del self._conns[conn.id]
