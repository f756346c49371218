"""The one loop: frames -> TCP streams -> DICOM connections -> messages, findings, associations.

File input, live capture and tests all drive this same object frame by
frame (``feed``) and end it with ``finish``; results go to a ``Sink`` as
soon as they are complete, so nothing accumulates here but open state.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dissectors.flow_table import FlowTable
from dissectors.packet import ACK, IPV4_TCP_IN_PLACE, PSH, Segment, decode_tcp
from dissectors.stream_events import (
    StreamData,
    StreamEnd,
    StreamGap,
    StreamOpen,
    StreamSkipped,
    TcpFinding,
)

from .connection import DICOM, NOT_DICOM, DicomConnection, Sink
from .observations import Finding
from .sources import FrameReader, FrameSpan


@dataclass(slots=True)
class Options:
    """What the user can tune; defaults suit both files and live capture."""

    ports: tuple[int, ...] = ()  # --port: always decode these ports as DICOM
    idle_timeout: float | None = None
    max_flows: int = 100_000
    skip_bulk: bool = True
    """Let the TCP layer count C-STORE pixel data instead of delivering it (see
    ``FlowTable.grant_skip``); False only to prove, in tests, that it changes nothing."""
    shard: tuple[int, int] | None = None
    """(index, count): follow only the TCP connections of shard ``index`` of ``count``.

    A connection's shard is ``shard_of`` its 4-tuple, the same whichever way a
    segment goes, so an association is never split; frames of other shards are
    still counted (frame numbers stay those of the whole capture).
    """


@dataclass(slots=True)
class Counters:
    frames: int = 0
    tcp_segments: int = 0
    bytes: int = 0
    connections: int = 0
    dicom_connections: int = 0
    first_ts: float | None = None
    last_ts: float | None = None


_SHARD_CACHE_MAX = 1 << 16
_SHORT_MAX = 1 << 14
_PLAIN_FLAGS = (ACK, ACK | PSH)  # what FlowTable.take is for (with ECN bits: the long way)
_IPV4_MF_OR_OFFSET = 0x3FFF


def shard_of(src: str, sport: int, dst: str, dport: int, count: int) -> int:
    """Stable shard number of a TCP connection: CRC-32 of its sorted endpoints, mod ``count``.

    CRC-32 rather than ``hash()``: the same on every process and machine of a
    cluster (``hash`` of a str is salted per process).
    """
    a, b = sorted(((src, sport), (dst, dport)))
    return zlib.crc32(f"{a[0]}|{a[1]}|{b[0]}|{b[1]}".encode()) % count


class Pipeline:
    def __init__(self, sink: Sink, options: Options | None = None) -> None:
        self.options = options or Options()
        self.sink = sink
        self.flows = FlowTable(
            max_flows=self.options.max_flows, idle_timeout=self.options.idle_timeout
        )
        self.connections: dict[int, DicomConnection] = {}
        self.counters = Counters()
        self._association_ids = 0
        self._ports = frozenset(self.options.ports)
        self._last_expiry = 0.0
        self._shard_keep: dict[tuple, bool] = {}
        # By raw IPv4 4-tuple, both directions (feed_batch): connections in bulk
        # transfer (their flow-table entry), and other shards' connections (None).
        self._short: dict[tuple[int, int, int, int], tuple | None] = {}
        self._rejected = False  # the frame ``feed`` just took belongs to another shard

    def _next_association_id(self) -> int:
        self._association_ids += 1
        return self._association_ids

    def feed_captures(self, sources: Iterable[str | Path | BinaryIO]) -> list[str]:
        """Feed every frame of ``sources``, read in order as one capture; the readers' warnings.

        Several files are consecutive pieces of one capture (tcpdump ``-C``/``-G``
        rotation): frame numbers continue across them and connections span them.
        Raises ``sources.CaptureError`` for an input that is not a capture.
        """
        warnings: list[str] = []
        feed_batch = self.feed_batch
        for source in sources:
            reader = FrameReader(source)
            for batch in reader.read_batches():
                feed_batch(batch)
            warnings.extend(reader.warnings)
        return warnings

    def feed_batch(self, batch: list[FrameSpan]) -> None:
        """``feed`` for frames still in their read buffer (``FrameReader.read_batches``).

        Once a connection has been seen, its plain data and ACK segments (no
        SYN, FIN or RST) need no ``Segment``: an untagged IPv4/TCP header behind
        Ethernet or a Linux cooked header (``IPV4_TCP_IN_PLACE``) is read in
        place and the segment goes straight to ``FlowTable.take``, the common
        case of ``handle``.  Most frames of a capture carrying images are
        segments in the middle of C-STORE pixel data, which nobody reads (the
        connection granted the TCP layer a skip budget), and the ACKs answering
        them: they cost one unpack and one call, and give no event.  In a shard,
        the other shards' connections are only counted.  Everything else takes
        ``feed``.
        """
        short = self._short
        counters = self.counters
        flows = self.flows
        taking = flows.taking
        expiring = self.options.idle_timeout is not None
        link, layout = -1, None
        for ts, linktype, buf, start, end in batch:
            if linktype != link:  # constant in a pcap file; pcapng may mix interfaces
                link = linktype
                layout = IPV4_TCP_IN_PLACE.get(linktype)
                if layout is not None:
                    unpack, ip_at = layout[0].unpack_from, layout[1]
            if short and layout is not None and end - start >= ip_at + 40:
                (etype, vihl, total, frag, proto, src, dst, sport, dport, seq, ack, off_flags) = (
                    unpack(buf, start)
                )
                key = (src, dst, sport, dport)
                entry = short.get(key, False)
                if entry is not False and etype == 0x0800 and vihl == 0x45 and proto == 6:
                    if entry is None:  # another shard's connection: counted, as by ``feed``
                        counters.frames += 1
                        counters.bytes += end - start
                        counters.last_ts = ts
                        continue
                    if (
                        not frag & _IPV4_MF_OR_OFFSET
                        and off_flags & 0x1FF in _PLAIN_FLAGS
                        and off_flags >> 12 >= 5
                        and taking(entry)
                    ):
                        lo = start + ip_at + 20 + (off_flags >> 12) * 4
                        hi = start + ip_at + total
                        if lo <= hi <= end:  # else cut by the snap length, or nonsense
                            counters.frames += 1
                            counters.bytes += end - start
                            counters.last_ts = ts
                            counters.tcp_segments += 1
                            events = flows.take(
                                entry, seq, ack, off_flags & 0x1FF, buf[lo:hi], counters.frames, ts
                            )
                            if events:
                                self._dispatch(events)
                            if expiring and ts - self._last_expiry > 1.0:
                                self.expire(ts)
                            continue
                    elif not taking(entry):
                        del short[key]
            self._feed_copy(ts, linktype, buf, start, end)

    def _feed_copy(self, ts: float, linktype: int, buf: bytes, start: int, end: int) -> None:
        """``feed`` a frame the short way did not take; remember its connection if it can."""
        self._rejected = False
        segment = self.feed(ts, linktype, buf[start:end])
        layout = IPV4_TCP_IN_PLACE.get(linktype)
        if layout is None:
            return
        if segment is None:
            if not self._rejected:
                return
            entry = None  # another shard's: all its frames can go the short way
        else:
            entry = self.flows.entry(*segment[:4])
            if entry is None or not self.flows.taking(entry):
                return
        fields = layout[0].unpack_from(buf, start)
        if fields[0] == 0x0800 and fields[1] == 0x45:
            short = self._short
            if len(short) >= _SHORT_MAX:
                short.clear()  # entries of ended connections, at worst: they come back
            src, dst, sport, dport = fields[5:9]
            if (src, sport) == (dst, dport):
                return  # a connection to itself: one key for both directions
            short[(src, dst, sport, dport)] = entry
            if entry is not None:
                entry = (entry[0], entry[2], entry[1])  # the other direction's view
            short[(dst, src, dport, sport)] = entry

    def feed(self, ts: float, linktype: int, frame: bytes) -> Segment | None:
        """One captured frame (numbered from 1 in order of arrival); its TCP segment, if any."""
        counters = self.counters
        counters.frames += 1
        counters.bytes += len(frame)
        if counters.first_ts is None:
            counters.first_ts = ts
        counters.last_ts = ts
        segment = decode_tcp(linktype, frame)
        if segment is None:
            return None
        if self.options.shard is not None and not self._in_shard(segment):
            self._rejected = True
            return None
        counters.tcp_segments += 1
        events = self.flows.handle(segment, counters.frames, ts)
        if events:
            self._dispatch(events)
        if self.options.idle_timeout is not None and ts - self._last_expiry > 1.0:
            self.expire(ts)
        return segment

    def _in_shard(self, segment) -> bool:
        key = segment[:4]
        keep = self._shard_keep.get(key)
        if keep is None:
            if len(self._shard_keep) >= _SHARD_CACHE_MAX:
                self._shard_keep.clear()  # a flood of 4-tuples cannot grow it without bound
            index, count = self.options.shard  # type: ignore[misc]
            src, dst, sport, dport = key
            keep = self._shard_keep[key] = shard_of(src, sport, dst, dport, count) == index
        return keep

    def expire(self, now: float) -> None:
        """Close connections idle for longer than ``Options.idle_timeout`` at time ``now``.

        Called from ``feed`` as capture time advances, and by live capture from a
        timer, so that a silent network still sees its idle associations closed.
        """
        self._last_expiry = now
        self._dispatch(self.flows.expire(now))

    def feed_all(self, frames: Iterable[tuple[float, int, bytes]]) -> None:
        for ts, linktype, frame in frames:
            self.feed(ts, linktype, frame)

    def finish(self) -> None:
        """End of input: close every open connection as ``capture-end``."""
        ts = self.counters.last_ts or 0.0
        self._dispatch(self.flows.close_all(self.counters.frames, ts))
        for conn in list(self.connections.values()):
            conn.end("capture-end", self.counters.frames, ts)
        self.connections.clear()

    def _dispatch(self, events: list) -> None:
        connections = self.connections
        fed = None  # the last direction given data, and its connection
        for ev in events:
            kind = type(ev)
            if kind is StreamData:
                conn = connections.get(ev.conn)
                if conn is not None:
                    if conn.data(ev.from_initiator, ev.data, ev.frame, ev.ts) == NOT_DICOM:
                        del connections[ev.conn]
                        self.flows.ignore(ev.conn)
                    else:
                        fed = (conn, ev)
            elif kind is StreamSkipped:
                conn = connections.get(ev.conn)
                if conn is not None:
                    conn.skipped(ev.from_initiator, ev.length, ev.frame, ev.ts)
            elif kind is StreamOpen:
                self.counters.connections += 1
                force = ev.initiator[1] in self._ports or ev.responder[1] in self._ports
                connections[ev.conn] = DicomConnection(
                    ev.conn,
                    ev.initiator,
                    ev.responder,
                    ev.syn_seen,
                    ev.frame,
                    ev.ts,
                    next_association_id=self._next_association_id,
                    sink=self.sink,
                    force=force,
                )
            elif kind is StreamGap:
                conn = connections.get(ev.conn)
                if conn is not None:
                    conn.gap(ev.from_initiator, ev.missing, ev.frame, ev.ts)
            elif kind is StreamEnd:
                conn = connections.pop(ev.conn, None)
                if conn is not None:
                    if conn.state == DICOM:
                        self.counters.dicom_connections += 1
                    conn.end(ev.reason, ev.frame, ev.ts)
            elif kind is TcpFinding:
                conn = connections.get(ev.conn)
                if conn is not None and conn.state == DICOM:
                    self.sink.finding(
                        Finding(ev.code, ev.detail, ev.frame, ev.frame, ev.ts, conn.association)
                    )
        if fed is not None and self.options.skip_bulk:
            # Granted after every event was handled, from the parser's final state: the
            # TCP layer took back any earlier budget when it delivered these events.
            conn, ev = fed
            if ev.conn in connections and (budget := conn.skippable(ev.from_initiator)):
                self.flows.grant_skip(ev.conn, ev.from_initiator, budget)
