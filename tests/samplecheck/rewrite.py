"""Rewrite real captures at the TCP level: reorder, duplicate, overlap, drop, re-cut, coalesce.

Captures are read with scapy's ``RawPcapReader`` and written with its
``PcapWriter``.  Headers are parsed, and new segments built by patching a copy
of a real segment's headers (sequence number, payload, lengths, checksums), with
``struct``: scapy's packet objects cost about a millisecond each to dissect or
build, too slow for a capture re-cut into 1-byte segments.

Every rewrite keeps what a capture point between real peers could see: a
receiver acknowledges only bytes it got, so a pure ACK may be delayed behind
data but no ACK is ever moved ahead of the bytes it acknowledges (the decoder
rightly reports such a hole as lost), and a segment carrying data is never
moved ahead of data of the other direction it was an answer to.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from tests.samplecheck.peerlog import SAMPLES

SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10
MAX_PAYLOAD = 16384  # largest coalesced segment (frames stay far below pcap snaplen 65535)


@dataclass(slots=True)
class Segment:
    """One captured TCP/IPv4 packet over Ethernet, with what the rewrites need."""

    ts: float
    frame: bytes
    conn: int  # index of the TCP connection (in order of first packet)
    outbound: bool  # sent by the side that opened the connection (the client)
    seq: int
    ack: int
    flags: int
    payload: bytes
    tcp_offset: int = 0  # where the TCP header starts in frame
    header_len: int = 0  # Ethernet + IP + TCP header bytes

    @property
    def lane(self) -> tuple[int, bool]:
        return (self.conn, self.outbound)

    @property
    def pure_ack(self) -> bool:
        return not self.payload and self.flags & (SYN | FIN | RST) == 0

    def with_payload(self, seq: int, payload: bytes, ts: float | None = None) -> Segment:
        """A copy of this segment carrying ``payload`` at ``seq`` (headers and checksums fixed)."""
        frame = rebuild(self.frame[: self.header_len], self.tcp_offset, seq, payload)
        return Segment(
            self.ts if ts is None else ts,
            frame,
            self.conn,
            self.outbound,
            seq & 0xFFFFFFFF,
            self.ack,
            self.flags,
            payload,
            self.tcp_offset,
            self.header_len,
        )

    def at(self, ts: float) -> Segment:
        """The same packet, captured at ``ts``."""
        return Segment(
            ts,
            self.frame,
            self.conn,
            self.outbound,
            self.seq,
            self.ack,
            self.flags,
            self.payload,
            self.tcp_offset,
            self.header_len,
        )


def read(path: Path) -> list[Segment]:
    """The TCP/IPv4 packets of an Ethernet capture, in capture order.

    scapy's raw reader gives the frames; their headers are parsed here with
    ``struct`` (``rdpcap`` dissects every packet into objects: 100 times slower).
    """
    from scapy.utils import RawPcapReader

    conns: dict[frozenset, tuple[int, tuple]] = {}
    out = []
    reader = RawPcapReader(str(path))
    try:
        if reader.linktype != 1:
            raise ValueError(f"{path}: link type {reader.linktype}, not Ethernet")
        scale = 1e9 if getattr(reader, "nano", False) else 1e6
        for frame, meta in reader:
            if frame[12:14] != b"\x08\x00" or frame[23] != 6:
                continue  # not TCP over IPv4
            tcp_offset = 14 + (frame[14] & 0x0F) * 4
            ip_end = 14 + struct.unpack_from("!H", frame, 16)[0]
            sport, dport, seq, ack, off_flags = struct.unpack_from("!HHIIH", frame, tcp_offset)
            header_len = tcp_offset + (off_flags >> 12) * 4
            src, dst = (frame[26:30], sport), (frame[30:34], dport)
            key = frozenset((src, dst))
            if key not in conns:
                # The side that sends the first packet (the SYN in these captures) opened it.
                conns[key] = (len(conns), src)
            conn, client = conns[key]
            out.append(
                Segment(
                    meta.sec + meta.usec / scale,
                    bytes(frame[:ip_end]),
                    conn,
                    src == client,
                    seq,
                    ack,
                    off_flags & 0x1FF,
                    bytes(frame[header_len:ip_end]),
                    tcp_offset,
                    header_len,
                )
            )
    finally:
        reader.close()
    return out


def write(path: Path, segments: list[Segment]) -> Path:
    from scapy.utils import PcapWriter

    writer = PcapWriter(str(path), linktype=1, sync=False)
    try:
        writer.write_header(None)
        for s in segments:
            sec = int(s.ts)
            writer.write_packet(s.frame, sec=sec, usec=int(round((s.ts - sec) * 1e6)))
    finally:
        writer.close()
    return path


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def rebuild(headers: bytes, tcp_offset: int, seq: int, payload: bytes) -> bytes:
    """Ethernet + IPv4 + TCP ``headers`` of a real frame, with a new seq and payload."""
    frame = bytearray(headers + payload)
    ip = 14
    struct.pack_into("!H", frame, ip + 2, len(frame) - ip)  # IPv4 total length
    struct.pack_into("!H", frame, ip + 10, 0)
    struct.pack_into("!H", frame, ip + 10, _checksum(bytes(frame[ip:tcp_offset])))
    struct.pack_into("!I", frame, tcp_offset + 4, seq & 0xFFFFFFFF)
    struct.pack_into("!H", frame, tcp_offset + 16, 0)
    tcp = bytes(frame[tcp_offset:])
    pseudo = bytes(frame[ip + 12 : ip + 20]) + struct.pack("!BBH", 0, 6, len(tcp))
    struct.pack_into("!H", frame, tcp_offset + 16, _checksum(pseudo + tcp))
    return bytes(frame)


def only(segments: list[Segment], keep: Callable[[Segment], bool]) -> list[Segment]:
    """The packets of the connections whose first packet satisfies ``keep``."""
    first: dict[int, Segment] = {}
    for s in segments:
        first.setdefault(s.conn, s)
    chosen = {c for c, s in first.items() if keep(s)}
    return [s for s in segments if s.conn in chosen]


def ports(segment: Segment) -> tuple[int, int]:
    return struct.unpack_from("!HH", segment.frame, segment.tcp_offset)


# -- rewrites that keep the original segments --------------------------------------------------


def reorder(segments: list[Segment], rng: random.Random, window: int = 4) -> list[Segment]:
    """Shuffle the data segments of each direction within windows of ``window`` segments.

    A window is a run of consecutive packets of one connection: data segments of
    one direction, possibly with pure ACKs of the other direction between them;
    those ACKs are emitted after the window's data (a delayed ACK), never before
    the bytes they cover.  A packet of another connection ends the window: a peer
    may be waiting there for these bytes (a Move SCP for a C-STORE-RSP).  Each
    packet keeps the capture time of the slot it lands in.
    """
    placed: list[Segment] = []
    run: list[Segment] = []
    lane: tuple[int, bool] | None = None
    for s in [*segments, None]:
        joins = (
            s is not None
            and lane is not None
            and s.conn == lane[0]
            and (
                (s.payload and s.lane == lane and s.flags & (SYN | FIN | RST) == 0)
                or (s.pure_ack and s.lane != lane)
            )
            and sum(1 for r in run if r.payload) < window
        )
        if joins:
            run.append(s)
            continue
        data = [r for r in run if r.payload]
        rng.shuffle(data)
        placed += data + [r for r in run if not r.payload]
        run, lane = [], None
        if s is not None and s.payload and s.flags & (SYN | FIN | RST) == 0:
            run, lane = [s], s.lane
        elif s is not None:
            placed.append(s)
    return [p.at(slot.ts) for p, slot in zip(placed, segments, strict=True)]


def duplicate(segments: list[Segment], rng: random.Random, share: float = 0.2) -> list[Segment]:
    """Retransmit about ``share`` of the data segments: an exact copy 0-3 packets later."""
    out: list[Segment] = []
    pending: list[tuple[int, Segment]] = []  # (packets still to wait, copy)
    for s in segments:
        out.append(s)
        still = []
        for wait, copy in pending:
            if wait == 0:
                out.append(copy.at(s.ts))
            else:
                still.append((wait - 1, copy))
        pending = still
        if s.payload and rng.random() < share:
            wait = rng.randrange(4)
            if wait == 0:
                out.append(s)
            else:
                pending.append((wait - 1, s))
    out.extend(copy.at(segments[-1].ts) for _wait, copy in pending)
    return out


def overlap(segments: list[Segment], rng: random.Random, share: float = 0.3) -> list[Segment]:
    """Split some data segments in two and send an overlapping copy across the cut.

    A segment ``[0, n)`` becomes ``[0, k)``, ``[k - a, k + b)``, ``[k, n)``: the
    middle copy repeats the tail of the first piece and the head of the last.
    """
    out: list[Segment] = []
    for s in segments:
        n = len(s.payload)
        if n < 8 or s.flags & (SYN | FIN | RST) or rng.random() >= share:
            out.append(s)
            continue
        k = rng.randrange(2, n - 2)
        a, b = rng.randint(1, k), rng.randint(1, n - k)
        p = s.payload
        out.append(s.with_payload(s.seq, p[:k]))
        out.append(s.with_payload(s.seq + k - a, p[k - a : k + b]))
        out.append(s.with_payload(s.seq + k, p[k:]))
    return out


def drop(segments: list[Segment], index: int) -> list[Segment]:
    """The capture without packet ``index`` (0-based)."""
    return segments[:index] + segments[index + 1 :]


# -- rewrites that re-cut the byte streams ---------------------------------------------------


@dataclass(slots=True)
class _Lane:
    isn: int
    data: bytearray = field(default_factory=bytearray)  # bytes seen so far, in order
    sent: int = 0  # bytes emitted so far (stream offset)
    template: Segment | None = None
    sizes: Iterator[int] | None = None
    next_size: int = 0


def restream(
    segments: list[Segment],
    sizes: Callable[[tuple[int, bool]], Iterator[int]],
    *,
    hold: bool = False,
) -> list[Segment]:
    """Re-segment each direction's byte stream into pieces of ``sizes(lane)`` bytes.

    The payload bytes of each direction are taken in order (the originals must be
    in order, without retransmissions) and sent again as new segments with new
    sequence numbers, in the original interleaving.  The size sequence runs on
    across the original segments; by default every byte still goes out in the
    slot of the segment that carried it (a short piece ends each slot).

    With ``hold``, bytes wait until a piece is full instead, so consecutive
    segments (and the PDUs in them) merge, up to ``MAX_PAYLOAD``.  They wait no
    longer than the burst: they go out before the other side sends data (which
    may answer them) or ends, and before any packet of another connection (a
    peer may be waiting for them there, as a Move SCP for a C-STORE-RSP).  Pure
    ACKs of the other side that cover bytes still waiting are delayed after them.
    """
    lanes: dict[tuple[int, bool], _Lane] = {}
    held: dict[tuple[int, bool], list[Segment]] = {}  # ACKs waiting for the other lane
    out: list[Segment] = []
    last_conn: int | None = None

    def emit(lane: _Lane, upto: int, ts: float, force: bool) -> None:
        while lane.sent < upto:
            if lane.next_size <= 0:
                lane.next_size = next(lane.sizes)
            size = min(lane.next_size, MAX_PAYLOAD, upto - lane.sent)
            if size < min(lane.next_size, MAX_PAYLOAD) and not force:
                return
            piece = bytes(lane.data[lane.sent : lane.sent + size])
            out.append(lane.template.with_payload(lane.isn + 1 + lane.sent, piece, ts))
            lane.sent += size
            lane.next_size -= size

    def flush(key: tuple[int, bool], ts: float) -> None:
        """Send everything of lane ``key``, then the other side's ACKs that waited for it."""
        lane = lanes.get(key)
        if lane is not None:
            emit(lane, len(lane.data), ts, force=True)
        out.extend(a.at(ts) for a in held.pop((key[0], not key[1]), []))

    for s in segments:
        key, other = s.lane, (s.conn, not s.outbound)
        if last_conn is not None and last_conn != s.conn:
            flush((last_conn, True), s.ts)
            flush((last_conn, False), s.ts)
        last_conn = s.conn
        if s.flags & SYN:
            lanes[key] = _Lane(isn=s.seq, sizes=sizes(key))
            out.append(s)
            continue
        lane = lanes[key]
        if s.payload:
            offset = (s.seq - lane.isn - 1) & 0xFFFFFFFF
            if offset != len(lane.data):
                raise ValueError(f"segment at offset {offset}, expected {len(lane.data)}")
            if s.flags & (FIN | RST):
                raise ValueError("data with FIN or RST: its flags cannot be copied to pieces")
            flush(other, s.ts)  # it may answer the other side: their bytes go first
            lane.data += s.payload
            lane.template = s
            emit(lane, len(lane.data), s.ts, force=not hold)
            if lane.sent == len(lane.data):  # the other side's ACKs may follow now
                out.extend(a.at(s.ts) for a in held.pop(other, []))
            continue
        if s.pure_ack:
            peer = lanes.get(other)
            if held.get(key) or (peer is not None and peer.sent < len(peer.data)):
                held.setdefault(key, []).append(s)  # acknowledges bytes not sent yet
            else:
                out.append(s)
            continue
        flush(other, s.ts)  # FIN or RST: everything before it goes first
        flush(key, s.ts)
        out.append(s)
    for key in list(lanes):
        flush(key, segments[-1].ts)
    for acks in held.values():
        out.extend(a.at(segments[-1].ts) for a in acks)
    return out


def fixed(size: int) -> Callable[[tuple[int, bool]], Iterator[int]]:
    def sizes(_lane):
        while True:
            yield size

    return sizes


def random_sizes(seed: int, low: int = 1, high: int = 3000) -> Callable:
    def sizes(lane):
        rng = random.Random(f"{seed}-{lane}")
        while True:
            yield rng.randint(low, high)

    return sizes


def coalesce() -> Callable:
    """Pieces as large as allowed: with ``restream(hold=True)``, consecutive segments merge."""
    return fixed(MAX_PAYLOAD)


def pdu_starts(segments: list[Segment]) -> dict[tuple[int, bool], list[int]]:
    """Stream offsets where each direction's upper-layer PDUs begin (PS3.8 §9.3.1 header)."""
    streams: dict[tuple[int, bool], bytearray] = {}
    for s in segments:
        if s.payload:
            streams.setdefault(s.lane, bytearray()).extend(s.payload)
    out = {}
    for key, data in streams.items():
        starts, pos = [], 0
        while pos + 6 <= len(data):
            starts.append(pos)
            pos += 6 + struct.unpack_from("!I", data, pos + 2)[0]
        out[key] = starts
    return out


def segments_with_pdus(segments: list[Segment], at_least: int = 2) -> int:
    """How many data segments hold the starts of ``at_least`` PDUs or more.

    Only valid for in-order segments without retransmissions (as ``restream`` makes).
    """
    starts = pdu_starts(segments)
    offsets: dict[tuple[int, bool], int] = {}
    count = 0
    for s in segments:
        if not s.payload:
            continue
        begin = offsets.get(s.lane, 0)
        end = begin + len(s.payload)
        offsets[s.lane] = end
        if sum(1 for p in starts[s.lane] if begin <= p < end) >= at_least:
            count += 1
    return count


# -- the rewrites the tests run, on the real captures -------------------------------------------

REWRITES: dict[str, Callable[[list[Segment]], list[Segment]]] = {
    "reordered": lambda segs: reorder(segs, random.Random(11)),
    "duplicated": lambda segs: duplicate(segs, random.Random(12)),
    "overlapping": lambda segs: overlap(segs, random.Random(13)),
    "7-byte": lambda segs: restream(segs, fixed(7)),
    "random-size": lambda segs: restream(segs, random_sizes(14, 1, 1500)),
    "coalesced": lambda segs: restream(segs, coalesce(), hold=True),
}
"""Rewrites after which the decoded messages must be exactly those of the original."""

SUBSETS: dict[str, Callable[[dict], bool] | None] = {
    "dcmtk-move": lambda a: a["index"] > 1,  # without the C-MOVE of two 525 KB CT images
    "mixed-smallpdu-port": None,  # all of it
}
"""The samples the rewrites run on, and which of their associations (peer log) are kept."""


@cache
def _sample(name: str) -> tuple[tuple[Segment, ...], dict]:
    log = json.loads((SAMPLES / f"{name}.peerlog.json").read_text())
    return tuple(read(SAMPLES / log["pcap"])), log


def peerlog_of(name: str) -> dict:
    return _sample(name)[1]


def client_ports(log: dict, keep: Callable[[dict], bool]) -> set[int]:
    return {a["client_port"] for a in log["associations"] if keep(a)}


def sample(name: str, keep: Callable[[dict], bool] | None = None) -> list[Segment]:
    """The packets of a sample capture, only of the associations ``keep`` selects (peer log)."""
    segments, log = _sample(name)
    if keep is None:
        return list(segments)
    wanted = client_ports(log, keep)
    return only(list(segments), lambda s: bool(wanted & set(ports(s))))
