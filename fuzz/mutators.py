"""Seeded input generators: every input is a whole capture (pcap bytes), deterministic per seed.

Strategies (``STRATEGIES``, picked by weight):

* ``sample-*``: a real-peer capture from ``samples/`` (or a window of its frames),
  re-fed frame by frame with mutations: PDU / item / PDV / element length fields
  set to hostile values, type and reserved bytes changed, streams cut at a unit
  boundary or inside one, payload bit flips, TCP header fields (sequence and
  acknowledgment numbers, flags, window, data offset) made wild, segments dropped,
  duplicated with other bytes, reordered; frames re-encapsulated in the other link
  types, truncated inside their headers; the pcap file itself damaged.
* ``built``: a hand-built conversation (associations with C-ECHO, C-FIND, C-MOVE,
  C-STORE, C-CANCEL, rejects, aborts) kept as trees of length-prefixed ``Unit`` until
  the end, so mutations hit one precise field: command sets with duplicated, unordered
  and wrong-length elements; identifiers with deep sequence nesting, undefined
  lengths, bad VRs, huge value lengths, thousands of elements, deflate bombs; then
  PDUs and PDVs with hostile lengths, unknown PDU and item types, reserved bits set,
  PDVs shorter than 2 bytes; then TCP segmentation and TCP mutations as above.

Everything random comes from one ``random.Random(seed)``: the same seed gives the
same bytes on every machine (nothing iterates over a set or depends on hashing).
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from dimsesniff.sources import read_frames
from dissectors import dimse
from dissectors.packet import decode_tcp
from tests.conversation import ACK, FIN, PSH, SYN, tcp_frame

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
# The real-peer captures (samples/README.md); fixed so that a seed means the same input.
SAMPLE_NAMES = (
    "dcmtk-echo",
    "dcmtk-find-levels",
    "dcmtk-find-pynetdicom-scp",
    "dcmtk-move",
    "mixed-smallpdu-port",
    "pynetdicom-find-cancel",
    "pynetdicom-move",
)
ETHERNET = 1
MAX_WINDOW_FRAMES = 160  # frames of a long sample kept in one input (time budget)

Frame = tuple[float, bytes]


@dataclass(slots=True)
class FuzzInput:
    """One input: a pcap file, and the ``--port`` values to analyse it with."""

    name: str
    pcap: bytes
    ports: tuple[int, ...] = ()


# ---------------------------------------------------------------------------- pcap


def pcap_bytes(frames: list[Frame], linktype: int = ETHERNET) -> bytes:
    """A little-endian microsecond pcap file holding ``frames``."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)]
    for ts, frame in frames:
        sec = int(ts)
        usec = min(int(round((ts - sec) * 1e6)), 999_999)
        out.append(struct.pack("<IIII", sec & 0xFFFFFFFF, usec, len(frame), len(frame)))
        out.append(frame)
    return b"".join(out)


# ------------------------------------------------------------- interesting values

INTERESTING_8 = (0x00, 0x01, 0x02, 0x03, 0x04, 0x07, 0x08, 0x7F, 0x80, 0xFE, 0xFF)
UNKNOWN_PDU_TYPES = (0x00, 0x08, 0x09, 0x10, 0x41, 0x7F, 0x80, 0xFF)
UNKNOWN_ITEM_TYPES = (0x00, 0x11, 0x22, 0x31, 0x41, 0x4F, 0x5A, 0x5F, 0x99, 0xFF)


def hostile_length(rng: random.Random, true: int, room: int, width: int) -> int:
    """A length field value: 0, 1, odd, true +/- 1, parent's room + 1, all ones, random."""
    top = (1 << (8 * width)) - 1
    choice = rng.randrange(9)
    if choice == 0:
        value = 0
    elif choice == 1:
        value = 1
    elif choice == 2:
        value = rng.randrange(0, max(2 * true, 4)) | 1
    elif choice == 3:
        value = true + 1
    elif choice == 4:
        value = max(true - 1, 0)
    elif choice == 5:
        value = room + 1
    elif choice == 6:
        value = top
    elif choice == 7:
        value = top - rng.randrange(16)
    else:
        value = rng.randrange(top + 1)
    return value & top


def flip_bits(rng: random.Random, data: bytearray, start: int = 0, count: int = 1) -> None:
    if len(data) <= start:
        return
    for _ in range(count):
        i = rng.randrange(start, len(data))
        data[i] ^= 1 << rng.randrange(8)


def mutate_bytes(rng: random.Random, data: bytes, start: int = 0) -> bytes:
    """Generic byte-level mutation of ``data[start:]`` (bit flips, values, cuts, inserts)."""
    buf = bytearray(data)
    if len(buf) <= start:
        return bytes(buf) + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
    op = rng.randrange(8)
    i = rng.randrange(start, len(buf))
    if op == 0:
        flip_bits(rng, buf, start, rng.choice((1, 1, 2, 4, 16)))
    elif op == 1:
        buf[i] = rng.choice(INTERESTING_8)
    elif op == 2 and i + 2 <= len(buf):
        value = rng.choice((0, 1, 0x7FFF, 0x8000, 0xFFFF, rng.randrange(0x10000)))
        buf[i : i + 2] = value.to_bytes(2, rng.choice(("big", "little")))
    elif op == 3 and i + 4 <= len(buf):
        value = rng.choice((0, 1, 3, 0x7FFFFFFF, 0xFFFFFFFF, 0xFFFFFFF0, rng.randrange(1 << 32)))
        buf[i : i + 4] = value.to_bytes(4, rng.choice(("big", "little")))
    elif op == 4:
        del buf[i : i + rng.randrange(1, 64)]
    elif op == 5:
        n = rng.randrange(1, 64)
        buf[i:i] = buf[i : i + n]
    elif op == 6:
        buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 32)))
    else:
        del buf[i:]
    return bytes(buf)


# --------------------------------------------------------------- frame surgery
# Every frame made here or read from samples/ is Ethernet / IPv4 / TCP.


def _ip_tcp_offsets(frame: bytes) -> tuple[int, int, int] | None:
    """(IP start, TCP start, payload start) of an untagged Ethernet/IPv4/TCP frame."""
    if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[14] >> 4 != 4:
        return None
    tcp = 14 + ((frame[14] & 0x0F) << 2)
    if len(frame) < tcp + 20:
        return None
    return 14, tcp, tcp + ((frame[tcp + 12] >> 4) << 2)


def set_payload(frame: bytes, payload: bytes) -> bytes:
    """The same frame carrying ``payload``, its IPv4 total length fixed."""
    offsets = _ip_tcp_offsets(frame)
    if offsets is None:
        return frame
    ip, _tcp, data = offsets
    out = bytearray(frame[:data] + payload)
    struct.pack_into("!H", out, ip + 2, min(len(out) - ip, 0xFFFF))
    return bytes(out)


def mutate_tcp_header(rng: random.Random, frame: bytes) -> bytes:
    """Wild sequence / acknowledgment numbers, flags, window, data offset or urgent pointer."""
    offsets = _ip_tcp_offsets(frame)
    if offsets is None:
        return mutate_bytes(rng, frame)
    _ip, tcp, _data = offsets
    buf = bytearray(frame)
    seq, ack = struct.unpack_from("!II", buf, tcp + 4)
    op = rng.randrange(7)
    if op == 0:
        delta = rng.choice((1, -1, 1 << 30, -(1 << 30), 1 << 31, (1 << 31) - 1, -100_000))
        seq = rng.randrange(1 << 32) if rng.random() < 0.3 else (seq + delta)
        struct.pack_into("!I", buf, tcp + 4, seq & 0xFFFFFFFF)
    elif op == 1:
        delta = rng.choice((1, -1, 1 << 30, 1 << 31, 1_000_000, -1_000_000))
        ack = rng.randrange(1 << 32) if rng.random() < 0.3 else (ack + delta)
        struct.pack_into("!I", buf, tcp + 8, ack & 0xFFFFFFFF)
    elif op == 2:
        flags = rng.choice((SYN, SYN | ACK, FIN | ACK, 0x04, 0x04 | ACK, 0x1FF, 0, FIN | SYN))
        if rng.random() < 0.3:
            flags = rng.randrange(0x200)
        off_flags = (buf[tcp + 12] << 8 | buf[tcp + 13]) & 0xFE00 | flags
        struct.pack_into("!H", buf, tcp + 12, off_flags)
    elif op == 3:
        struct.pack_into("!H", buf, tcp + 14, rng.choice((0, 1, 0xFFFF, rng.randrange(0x10000))))
    elif op == 4:
        buf[tcp + 12] = (rng.randrange(16) << 4) | (buf[tcp + 12] & 0x0F)
    elif op == 5:
        struct.pack_into("!H", buf, tcp + 18, rng.randrange(0x10000))  # urgent pointer
        buf[tcp + 13] |= 0x20
    else:
        struct.pack_into("!H", buf, 16, rng.choice((0, 1, 20, 40, 0xFFFF, rng.randrange(0x10000))))
    return bytes(buf)


def relink(frames: list[Frame], rng: random.Random) -> tuple[list[Frame], int]:
    """Re-encapsulate Ethernet frames in another link type (with its header)."""
    kind = rng.randrange(6)
    out: list[Frame] = []
    for ts, frame in frames:
        network, etype = frame[14:], frame[12:14]
        if kind == 0:  # Linux cooked v1
            head = struct.pack("!HHH8s", 0, 1, 6, b"\x02" * 8) + etype
            linktype = 113
        elif kind == 1:  # Linux cooked v2
            head = etype + struct.pack("!HIHBB8s", 0, 1, 1, 0, 6, b"\x02" * 8)
            linktype = 276
        elif kind == 2:  # raw IP
            head, linktype = b"", 101
        elif kind == 3:  # BSD loopback, host byte order
            head, linktype = struct.pack("<I", 2), 0
        elif kind == 4:  # OpenBSD loopback, network order
            head, linktype = struct.pack(">I", 2), 108
        else:  # stacked 802.1Q / 802.1ad tags
            tags = b"".join(
                struct.pack("!HH", rng.choice((0x8100, 0x88A8, 0x9100)), rng.randrange(4096))
                for _ in range(rng.randrange(1, 4))
            )
            head, network, linktype = frame[:12] + tags + etype, network, ETHERNET
        out.append((ts, head + network))
    return out, linktype


# ------------------------------------------------------------------- samples


@cache
def sample_frames(name: str) -> tuple[Frame, ...]:
    return tuple((ts, bytes(frame)) for ts, _lt, frame in read_frames(SAMPLES / f"{name}.pcap"))


def available_samples() -> tuple[str, ...]:
    return tuple(n for n in SAMPLE_NAMES if (SAMPLES / f"{n}.pcap").exists())


@dataclass(slots=True)
class Field:
    """A field of the reassembled stream of one direction: where, how wide, what it holds."""

    offset: int
    width: int
    order: str  # ">" or "<"
    value: int
    room: int  # bytes the enclosing unit leaves after this field's header
    kind: str  # pdu-length, item-length, pdv-length, element-length, pdu-type, ...


@dataclass(slots=True)
class Stream:
    """One direction of one connection of a sample: its bytes and where they are in frames."""

    data: bytes
    # (stream offset, frame index, payload offset in frame, length), in stream order
    pieces: list[tuple[int, int, int, int]]
    fields: list[Field] = field(default_factory=list)
    units: list[int] = field(default_factory=list)  # offsets where a unit begins


def _walk_elements(
    data: bytes,
    start: int,
    end: int,
    fields: list[Field],
    units: list[int],
    explicit: bool,
    depth: int = 0,
) -> None:
    """Element length fields of a (command or data) set, descending into sequences."""
    pos = start
    while pos + 8 <= end and depth < 8:
        units.append(pos)
        group, elem = struct.unpack_from("<HH", data, pos)
        vr = data[pos + 4 : pos + 6]
        if group == 0xFFFE:
            length = struct.unpack_from("<I", data, pos + 4)[0]
            fields.append(Field(pos + 4, 4, "<", length, end - pos - 8, "item-length"))
            head = 8
        elif explicit and vr.isalpha() and vr.isupper():
            if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL"):
                if pos + 12 > end:
                    return
                length = struct.unpack_from("<I", data, pos + 8)[0]
                fields.append(Field(pos + 8, 4, "<", length, end - pos - 12, "element-length"))
                head = 12
            else:
                length = struct.unpack_from("<H", data, pos + 6)[0]
                fields.append(Field(pos + 6, 2, "<", length, end - pos - 8, "element-length"))
                head = 8
            fields.append(Field(pos + 4, 2, ">", int.from_bytes(vr, "big"), 0, "vr"))
        else:
            length = struct.unpack_from("<I", data, pos + 4)[0]
            fields.append(Field(pos + 4, 4, "<", length, end - pos - 8, "element-length"))
            head = 8
        if length == 0xFFFFFFFF:
            return  # undefined length: stop here rather than guess the delimiter
        value = pos + head
        if group == 0xFFFE or vr == b"SQ":
            _walk_elements(
                data, value, min(value + length, end), fields, units, explicit, depth + 1
            )
        pos = value + length


def _walk_pdus(data: bytes) -> tuple[list[Field], list[int]]:
    """Fields of every PDU, item, sub-item, PDV and command / data set element of a stream."""
    fields: list[Field] = []
    units: list[int] = []
    pos = 0
    command_open = False
    while pos + 6 <= len(data):
        pdu_type, length = struct.unpack_from(">BxI", data, pos)
        if not 1 <= pdu_type <= 7:
            break
        units.append(pos)
        fields.append(Field(pos, 1, ">", pdu_type, 0, "pdu-type"))
        fields.append(Field(pos + 1, 1, ">", data[pos + 1], 0, "reserved"))
        fields.append(Field(pos + 2, 4, ">", length, len(data) - pos - 6, "pdu-length"))
        body, end = pos + 6, min(pos + 6 + length, len(data))
        if pdu_type in (1, 2):
            _walk_items(data, body + 68, end, fields, units, 0)
        elif pdu_type == 4:
            p = body
            while p + 6 <= end:
                units.append(p)
                item_len, _ctx, mch = struct.unpack_from(">IBB", data, p)
                fields.append(Field(p, 4, ">", item_len, end - p - 4, "pdv-length"))
                fields.append(Field(p + 4, 1, ">", data[p + 4], 0, "pdv-context"))
                fields.append(Field(p + 5, 1, ">", mch, 0, "pdv-control"))
                value, value_end = p + 6, min(p + 4 + item_len, end)
                whole = mch & 0x02 and not command_open
                if mch & 0x01:
                    command_open = not mch & 0x02
                if whole and value_end > value:
                    explicit = not mch & 0x01 and data[value + 4 : value + 6].isalpha()
                    _walk_elements(data, value, value_end, fields, units, bool(explicit))
                p = p + 4 + max(item_len, 2)
        pos = body + length
    return fields, units


def _walk_items(
    data: bytes, start: int, end: int, fields: list[Field], units: list[int], depth: int
) -> None:
    pos = start
    while pos + 4 <= end and depth < 3:
        units.append(pos)
        item_type, length = struct.unpack_from(">BxH", data, pos)
        fields.append(Field(pos, 1, ">", item_type, 0, "item-type"))
        fields.append(Field(pos + 1, 1, ">", data[pos + 1], 0, "reserved"))
        fields.append(Field(pos + 2, 2, ">", length, end - pos - 4, "item-length"))
        value = pos + 4
        if item_type in (0x20, 0x21):
            _walk_items(data, value + 4, min(value + length, end), fields, units, depth + 1)
        elif item_type == 0x50:
            _walk_items(data, value, min(value + length, end), fields, units, depth + 1)
        elif item_type in (0x54, 0x56, 0x57) and value + 2 <= end:
            sub = struct.unpack_from(">H", data, value)[0]
            fields.append(Field(value, 2, ">", sub, length - 2, "uid-length"))
        pos = value + length


@cache
def sample_streams(name: str) -> tuple[Stream, ...]:
    """Every direction of every connection of a sample, with its fields indexed."""
    frames = sample_frames(name)
    streams: dict[tuple, tuple[int | None, bytearray, list]] = {}
    order: list[tuple] = []
    for index, (_ts, frame) in enumerate(frames):
        seg = decode_tcp(ETHERNET, frame)
        offsets = _ip_tcp_offsets(frame)
        if seg is None or offsets is None:
            continue
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        if key not in streams:
            streams[key] = (None, bytearray(), [])
            order.append(key)
        next_seq, data, pieces = streams[key]
        if seg.flags & SYN:
            streams[key] = ((seg.seq + 1) & 0xFFFFFFFF, data, pieces)
            continue
        if not seg.payload:
            continue
        if next_seq is None:
            next_seq = seg.seq
        if seg.seq != next_seq:
            continue  # a retransmission or reordering: not indexed
        pieces.append((len(data), index, offsets[2], len(seg.payload)))
        data += seg.payload
        streams[key] = ((seg.seq + len(seg.payload)) & 0xFFFFFFFF, data, pieces)
    out = []
    for key in order:
        _next, data, pieces = streams[key]
        if data:
            fields, units = _walk_pdus(bytes(data))
            out.append(Stream(bytes(data), pieces, fields, units))
    return tuple(out)


def _patch(frames: list[bytearray], stream: Stream, offset: int, new: bytes) -> None:
    """Write ``new`` at stream ``offset`` into the frames that carry those bytes."""
    end = offset + len(new)
    for start, index, payload_at, length in stream.pieces:
        if start >= end or start + length <= offset:
            continue
        a, b = max(start, offset), min(start + length, end)
        frame = frames[index]
        if frame is None or payload_at + b - start > len(frame):
            continue  # already cut
        frame[payload_at + a - start : payload_at + b - start] = new[a - offset : b - offset]


def _cut(frames: list[bytearray | None], stream: Stream, offset: int) -> None:
    """End the stream at ``offset``: later frames of it vanish, the one across it is cut."""
    for start, index, payload_at, length in stream.pieces:
        frame = frames[index]
        if frame is None or start + length <= offset:
            continue
        if start >= offset:
            frames[index] = None
        else:
            frames[index] = bytearray(
                set_payload(bytes(frame), bytes(frame[payload_at : payload_at + offset - start]))
            )


def mutate_sample(rng: random.Random) -> FuzzInput:
    names = available_samples()
    name = rng.choice(names)
    base = sample_frames(name)
    streams = sample_streams(name)
    frames: list[bytearray | None] = [bytearray(f) for _ts, f in base]
    stamps = [ts for ts, _f in base]
    ops = rng.choices(
        ("length", "type", "cut", "payload", "tcp", "segments", "snap"),
        weights=(30, 10, 8, 12, 12, 12, 4),
        k=rng.choice((1, 1, 1, 2, 3, 5)),
    )
    # Stream-indexed edits first: frame-level ones move frames around.
    ops.sort(key=lambda op: op not in ("length", "type", "cut"))
    for op in ops:
        stream = rng.choice(streams) if streams else None
        if op in ("length", "type") and stream is not None and stream.fields:
            wanted = ("pdu-type", "item-type", "reserved", "pdv-context", "pdv-control", "vr")
            if op == "length":
                candidates = [f for f in stream.fields if f.kind not in wanted]
            else:
                candidates = [f for f in stream.fields if f.kind in wanted]
            if not candidates:
                continue
            fld = rng.choice(candidates)
            if op == "length":
                value = hostile_length(rng, fld.value, fld.room, fld.width)
            elif fld.kind == "pdu-type":
                value = rng.choice(UNKNOWN_PDU_TYPES + (1, 2, 3, 4, 5, 6, 7))
            elif fld.kind == "item-type":
                value = rng.choice(UNKNOWN_ITEM_TYPES + (0x10, 0x20, 0x21, 0x50, 0x51))
            elif fld.kind == "pdv-control":
                value = (
                    fld.value | rng.choice((0x04, 0x08, 0x80, 0xFC))
                    if rng.random() < 0.6
                    else rng.randrange(256)
                )
            elif fld.kind == "vr":
                value = int.from_bytes(
                    rng.choice((b"ZZ", b"\0\0", b"sq", b"SQ", b"UN", b"OB", b"  ", b"US", b"UL")),
                    "big",
                )
            else:
                value = rng.choice((1, 2, 0x80, 0xFF, rng.randrange(256)))
            _patch(
                frames,
                stream,
                fld.offset,
                value.to_bytes(
                    fld.width,  # type: ignore[arg-type]
                    "big" if fld.order == ">" else "little",
                ),
            )
        elif op == "cut" and stream is not None and stream.units:
            at = rng.choice(stream.units) + rng.choice((0, 0, 1, 2, 4, 5, 6, rng.randrange(64)))
            _cut(frames, stream, at)
        elif op == "payload":
            live = [i for i, f in enumerate(frames) if f is not None and len(f) > 66]
            if live:
                i = rng.choice(live)
                frame = bytes(frames[i])  # type: ignore[arg-type]
                offsets = _ip_tcp_offsets(frame)
                if offsets is not None:
                    payload = mutate_bytes(rng, frame[offsets[2] :])
                    frames[i] = bytearray(set_payload(frame, payload))
        elif op == "tcp":
            live = [i for i, f in enumerate(frames) if f is not None]
            for i in rng.sample(live, min(len(live), rng.choice((1, 1, 2, 8)))):
                frames[i] = bytearray(mutate_tcp_header(rng, bytes(frames[i])))  # type: ignore
        elif op == "segments":
            _reshuffle(rng, frames, stamps)
        elif op == "snap":
            live = [i for i, f in enumerate(frames) if f is not None]
            i = rng.choice(live)
            frame = frames[i]
            assert frame is not None
            del frame[rng.randrange(min(len(frame), 80)) :]
    kept = [(ts, bytes(f)) for ts, f in zip(stamps, frames, strict=True) if f is not None]
    kept = _window(rng, kept)
    linktype = ETHERNET
    if rng.random() < 0.1:
        kept, linktype = relink(kept, rng)
        if rng.random() < 0.5 and kept:
            i = rng.randrange(len(kept))
            kept[i] = (kept[i][0], mutate_bytes(rng, kept[i][1]))
    pcap = pcap_bytes(kept, linktype)
    if rng.random() < 0.05:
        pcap = mutate_bytes(rng, pcap, rng.choice((0, 24, 24, 40)))
    return FuzzInput(f"sample:{name}:{'+'.join(ops)}", pcap)


def _window(rng: random.Random, frames: list[Frame]) -> list[Frame]:
    """A long capture is cut to a window of frames (starting mid-association if it falls so)."""
    if len(frames) <= MAX_WINDOW_FRAMES:
        return frames
    start = rng.randrange(len(frames) - MAX_WINDOW_FRAMES) if rng.random() < 0.7 else 0
    return frames[start : start + MAX_WINDOW_FRAMES]


def _reshuffle(rng: random.Random, frames: list, stamps: list[float]) -> None:
    """Drop, duplicate (with other bytes), swap or reorder captured segments."""
    live = [i for i, f in enumerate(frames) if f is not None]
    if len(live) < 2:
        return
    op = rng.randrange(4)
    if op == 0:
        for i in rng.sample(live, min(len(live) - 1, rng.choice((1, 1, 3)))):
            frames[i] = None
    elif op == 1:
        i = rng.choice(live)
        copy = bytes(frames[i])
        if rng.random() < 0.5:
            offsets = _ip_tcp_offsets(copy)
            if offsets is not None:
                copy = set_payload(copy, mutate_bytes(rng, copy[offsets[2] :]))
        j = rng.randrange(len(frames) + 1)
        frames.insert(j, bytearray(copy))
        stamps.insert(j, stamps[min(j, len(stamps) - 1)])
    elif op == 2:
        i = rng.randrange(len(live) - 1)
        a, b = live[i], live[i + 1]
        frames[a], frames[b] = frames[b], frames[a]
    else:
        i = rng.randrange(len(live))
        span = live[i : i + rng.randrange(2, 12)]
        chunk = [frames[k] for k in span]
        rng.shuffle(chunk)
        for k, f in zip(span, chunk, strict=True):
            frames[k] = f


# --------------------------------------------------------------- built units


class Unit:
    """A length-prefixed unit: ``head``, a length field, ``counted`` bytes, ``parts``, ``tail``.

    ``fmt`` is the struct format of the length field; empty for raw bytes (no field).

    ``length`` None writes the true length (of ``counted`` and ``parts``); a mutation
    sets it to anything.  ``tail`` follows the counted body (a delimiter after an
    undefined length).
    """

    __slots__ = ("kind", "head", "fmt", "counted", "parts", "length", "tail")

    def __init__(
        self,
        kind: str,
        head: bytes,
        fmt: str,
        parts: list | None = None,
        counted: bytes = b"",
        tail: bytes = b"",
    ) -> None:
        self.kind = kind
        self.head = head
        self.fmt = fmt
        self.counted = counted
        self.parts: list[Unit | bytes] = parts if parts is not None else []
        self.length: int | None = None
        self.tail = tail

    @property
    def width(self) -> int:
        return struct.calcsize(self.fmt)

    def body(self) -> bytes:
        return self.counted + b"".join(p.encode() if isinstance(p, Unit) else p for p in self.parts)

    def encode(self) -> bytes:
        body = self.body()
        if not self.fmt:  # raw bytes, no length field
            return self.head + body + self.tail
        n = len(body) if self.length is None else self.length
        return (
            self.head + struct.pack(self.fmt, n & ((1 << (8 * self.width)) - 1)) + body + self.tail
        )

    def walk(self, parent: Unit | None = None) -> Iterator[tuple[Unit, Unit | None]]:
        yield self, parent
        for p in self.parts:
            if isinstance(p, Unit):
                yield from p.walk(self)


def pdu_unit(pdu_type: int, parts: list) -> Unit:
    return Unit("pdu", bytes([pdu_type, 0]), ">I", parts)


def item_unit(item_type: int, parts: list, counted: bytes = b"") -> Unit:
    return Unit("item", bytes([item_type, 0]), ">H", parts, counted)


def pdv_unit(ctx: int, control: int, data: bytes) -> Unit:
    return Unit("pdv", b"", ">I", [data], bytes([ctx, control]))


def _tag(tag: int, order: str) -> bytes:
    return struct.pack(order + "HH", tag >> 16, tag & 0xFFFF)


LONG_VRS = (
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
)


@dataclass(slots=True)
class Syntax:
    """How a data set is encoded: Implicit / Explicit VR, byte order, deflated."""

    uid: str
    explicit: bool
    order: str  # "<" or ">"
    deflated: bool = False


SYNTAXES = (
    Syntax("1.2.840.10008.1.2", False, "<"),
    Syntax("1.2.840.10008.1.2.1", True, "<"),
    Syntax("1.2.840.10008.1.2.2", True, ">"),
    Syntax("1.2.840.10008.1.2.1.99", True, "<", True),
)


def element_unit(tag: int, vr: bytes, value: bytes | list, syntax: Syntax) -> Unit:
    """One data element; ``value`` is bytes, or a list of item units for a sequence."""
    parts = value if isinstance(value, list) else [value]
    order = syntax.order
    if not syntax.explicit:
        return Unit("element", _tag(tag, order), order + "I", parts)
    if vr in LONG_VRS:
        return Unit("element", _tag(tag, order) + vr + b"\0\0", order + "I", parts)
    return Unit("element", _tag(tag, order) + vr, order + "H", parts)


def seq_item_unit(elements: list, syntax: Syntax) -> Unit:
    return Unit("seq-item", _tag(0xFFFE_E000, syntax.order), syntax.order + "I", elements)


ITEM_DELIM = 0xFFFE_E00D
SEQ_DELIM = 0xFFFE_E0DD


def make_undefined(unit: Unit, syntax_order: str, delimiter: bool = True) -> None:
    """Give a sequence / item (or anything) an undefined length, with its delimiter."""
    unit.length = 0xFFFFFFFF
    if delimiter:
        tag = ITEM_DELIM if unit.kind == "seq-item" else SEQ_DELIM
        unit.tail = _tag(tag, syntax_order) + b"\0\0\0\0"


def _text(value: str, pad: bytes = b" ") -> bytes:
    raw = value.encode("latin-1", "replace")
    return raw + pad if len(raw) % 2 else raw


HOSTILE_TEXT = (
    "SCU",
    "\x1b[2J\x1b[31mRED",
    "\x1b]0;pwned\x07",
    '=HYPERLINK("x")',
    "+1+1",
    "-2",
    "@SUM(A1)",
    "[/]",
    "[bold]x",
    'a\r\nb,"c"',
    "\u202eevil",
    "\x00\x01\x7f\x9b",
    "<script>alert(1)</script>",
    "\tTAB",
)


def ae_title(rng: random.Random, default: str) -> bytes:
    if rng.random() < 0.3:
        raw = rng.choice(HOSTILE_TEXT).encode("utf-8")[:16]
    elif rng.random() < 0.05:
        raw = bytes(rng.randrange(256) for _ in range(16))
    else:
        raw = default.encode()
    return raw.ljust(16)


def identifier_elements(rng: random.Random, syntax: Syntax, kind: str) -> list[Unit]:
    """A plausible Query/Retrieve identifier (then maybe made hostile by ``mutate_dataset``)."""
    e = []
    if rng.random() < 0.3:
        charset = rng.choice(
            ("ISO_IR 100", "ISO_IR 192", "ISO 2022 IR 87", "ISO_IR 999", "\\\\", "GB18030")
        )
        e.append(element_unit(0x0008_0005, b"CS", _text(charset), syntax))
    if kind == "move-rsp":
        uids = "\\".join(f"1.2.3.{rng.randrange(1000)}" for _ in range(rng.randrange(1, 4)))
        e.append(element_unit(0x0008_0058, b"UI", _text(uids, b"\0"), syntax))
        return e
    e.append(element_unit(0x0008_0020, b"DA", _text("20240101"), syntax))
    e.append(
        element_unit(
            0x0008_0052,
            b"CS",
            _text(rng.choice(("STUDY", "PATIENT", "SERIES", "IMAGE", "BOGUS", ""))),
            syntax,
        )
    )
    name = rng.choice(HOSTILE_TEXT) if rng.random() < 0.3 else "DOE^JOHN"
    e.append(element_unit(0x0010_0010, b"PN", _text(name), syntax))
    e.append(element_unit(0x0010_0020, b"LO", _text("ID123"), syntax))
    e.append(element_unit(0x0020_000D, b"UI", _text("1.2.840.1234.5", b"\0"), syntax))
    if rng.random() < 0.5:
        items = [
            seq_item_unit(
                [
                    element_unit(0x0008_1150, b"UI", _text("1.2.3", b"\0"), syntax),
                    element_unit(0x0008_1155, b"UI", _text("1.2.3.4", b"\0"), syntax),
                ],
                syntax,
            )
            for _ in range(rng.randrange(0, 3))
        ]
        e.append(element_unit(0x0008_1115, b"SQ", items, syntax))
    return e


def mutate_dataset(rng: random.Random, elements: list[Unit], syntax: Syntax) -> str:
    """Make an identifier hostile; returns what was done."""
    op = rng.choices(
        (
            "deep",
            "undefined",
            "bad-vr",
            "length",
            "wide",
            "items",
            "dup",
            "shuffle",
            "odd-value",
            "garbage",
        ),
        weights=(10, 12, 10, 20, 3, 3, 8, 8, 8, 5),
    )[0]
    units = [u for top in elements for u, _p in top.walk() if u.fmt]
    if op == "deep":
        depth = rng.choice((8, 40, 200, 1000, 3000))
        undefined = rng.random() < 0.5
        elements.append(Unit("raw", b"", "", [deep_sequence(depth, syntax, undefined)]))
        return f"deep-{depth}{'-undef' if undefined else ''}"
    if op == "undefined" and units:
        u = rng.choice(units)
        make_undefined(u, syntax.order, delimiter=rng.random() < 0.7)
        return f"undefined-{u.kind}"
    if op == "bad-vr" and syntax.explicit and units:
        u = rng.choice([u for u in units if u.kind == "element"] or units)
        vr = rng.choice((b"ZZ", b"\0\0", b"sq", b"SQ", b"UN", b"OB", b"  ", b"US", b"AT", b"xx"))
        u.head = u.head[:4] + vr + u.head[6:]
        return "bad-vr"
    if op == "length" and units:
        u = rng.choice(units)
        true = len(u.body())
        u.length = hostile_length(rng, true, true + 64, u.width)
        return f"length-{u.kind}"
    if op == "wide":
        n = rng.choice((2000, 12000, 50000))
        for i in range(n):
            tag = 0x0011_0000 + (i // 0xFF00) * 0x20000 + (i % 0xFF00) + 0x100
            elements.append(element_unit(tag, b"UN", b"", syntax))
        return f"wide-{n}"
    if op == "items":
        n = rng.choice((1000, 10000, 50000))
        elements.append(
            element_unit(0x0008_1115, b"SQ", [seq_item_unit([], syntax) for _ in range(n)], syntax)
        )
        return f"items-{n}"
    if op == "dup" and elements:
        i = rng.randrange(len(elements))
        elements.insert(rng.randrange(len(elements) + 1), elements[i])
        return "dup"
    if op == "shuffle":
        rng.shuffle(elements)
        return "shuffle"
    if op == "odd-value" and units:
        u = rng.choice(units)
        u.parts.append(bytes([rng.randrange(256)]))
        return "odd-value"
    elements.insert(
        rng.randrange(len(elements) + 1),
        Unit("garbage", b"", "", [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))]),
    )
    return "garbage"


def deep_sequence(depth: int, syntax: Syntax, undefined: bool) -> bytes:
    """A sequence nested ``depth`` deep, built bottom-up without recursion."""
    order = syntax.order
    inner = element_unit(0x0010_0020, b"LO", _text("X"), syntax).encode()
    item_tag, seq_tag = _tag(0xFFFE_E000, order), _tag(0x0008_1115, order)
    sq_head = seq_tag + (b"SQ\0\0" if syntax.explicit else b"")
    ulong = struct.Struct(order + "I")
    for _ in range(depth):
        if undefined:
            item = item_tag + ulong.pack(0xFFFFFFFF) + inner + _tag(ITEM_DELIM, order) + bytes(4)
            inner = sq_head + ulong.pack(0xFFFFFFFF) + item + _tag(SEQ_DELIM, order) + bytes(4)
        else:
            item = item_tag + ulong.pack(len(inner)) + inner
            inner = sq_head + ulong.pack(len(item)) + item
    return inner


def encode_dataset(elements: list[Unit], syntax: Syntax, rng: random.Random) -> bytes:
    data = b"".join(u.encode() for u in elements)
    if syntax.deflated:
        data = deflate_bomb() if rng.random() < 0.1 else _deflate(data)
        if rng.random() < 0.1:
            data = mutate_bytes(rng, data)
    return data


def _deflate(data: bytes) -> bytes:
    comp = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return comp.compress(data) + comp.flush()


@cache
def deflate_bomb() -> bytes:
    """32 MiB of zeros, raw-deflated to about 32 KiB."""
    return _deflate(bytes(32 << 20))


# ------------------------------------------------------------ command sets

US_TAGS = frozenset(tag for tag, (vr, _name) in dimse.COMMAND_DICTIONARY.items() if vr == "US")
SYNTAX_IMPLICIT = SYNTAXES[0]


def command_elements(fields: list[tuple[int, int | str | bytes]]) -> list[Unit]:
    """Implicit VR Little Endian command elements, group length first (PS3.7 §6.3.1)."""
    out = []
    for tag, value in sorted(fields, key=lambda kv: kv[0]):
        if isinstance(value, int):
            raw = struct.pack("<H", value & 0xFFFF) if tag in US_TAGS else struct.pack("<I", value)
        elif isinstance(value, str):
            raw = _text(value, b"\0" if tag in (2, 3, 0x1000, 0x1001) else b" ")
        else:
            raw = value
        out.append(element_unit(tag, b"", raw, SYNTAX_IMPLICIT))
    return out


def with_group_length(elements: list[Unit]) -> list[Unit]:
    total = sum(len(u.encode()) for u in elements)
    return [
        element_unit(dimse.GROUP_LENGTH, b"", struct.pack("<I", total), SYNTAX_IMPLICIT),
        *elements,
    ]


def mutate_command(rng: random.Random, elements: list[Unit]) -> str:
    """Duplicated, unordered, wrong-length, missing elements; hostile values."""
    op = rng.choices(
        (
            "dup",
            "shuffle",
            "value-length",
            "length",
            "drop",
            "field",
            "status",
            "text",
            "group-length",
            "trailing",
        ),
        weights=(10, 8, 12, 15, 8, 8, 8, 8, 5, 4),
    )[0]
    if not elements:
        return "empty"
    i = rng.randrange(len(elements))
    u = elements[i]
    if op == "dup":
        copy = Unit(u.kind, u.head, u.fmt, list(u.parts))
        if rng.random() < 0.5:
            copy.parts = [bytes(rng.randrange(256) for _ in range(len(u.body())))]
        elements.insert(rng.randrange(len(elements) + 1), copy)
    elif op == "shuffle":
        rng.shuffle(elements)
    elif op == "value-length":
        u.parts = [
            rng.choice(
                (b"", b"\x01", b"\x01\x02\x03", b"\x01\x00\x00\x00\x00", bytes(rng.randrange(64)))
            )
        ]
    elif op == "length":
        true = len(u.body())
        u.length = hostile_length(rng, true, true + 32, 4)
    elif op == "drop":
        del elements[i]
    elif op == "field":
        tag = dimse.COMMAND_FIELD
        value = rng.choice(
            (
                0,
                0xFFFF,
                0x8000,
                0x0FFF,
                0x8FFF,
                rng.randrange(0x10000),
                *[int(c) for c in dimse.Command],
            )
        )
        _set(elements, tag, struct.pack("<H", value))
    elif op == "status":
        value = rng.choice(
            (
                0xFF00,
                0xFF01,
                0xFE00,
                0xA700,
                0xA801,
                0xB000,
                0xC000,
                0xCFFF,
                0x0001,
                0x0107,
                0x0122,
                0xFFFF,
                rng.randrange(0x10000),
            )
        )
        _set(elements, dimse.STATUS, struct.pack("<H", value))
    elif op == "text":
        tag = rng.choice(
            (
                dimse.ERROR_COMMENT,
                dimse.MOVE_DESTINATION,
                dimse.AFFECTED_SOP_CLASS_UID,
                dimse.MOVE_ORIGINATOR_AE_TITLE,
                dimse.OFFENDING_ELEMENT,
            )
        )
        raw = rng.choice(HOSTILE_TEXT).encode("utf-8")
        if rng.random() < 0.2:
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 70)))
        _set(elements, tag, raw)
    elif op == "group-length":
        _set(
            elements,
            dimse.GROUP_LENGTH,
            rng.choice((b"", b"\0\0\0\0", b"\xff\xff\xff\xff", b"\x01\x02")),
        )
    else:
        elements.append(Unit("garbage", b"", "", [bytes(rng.randrange(1, 8))]))
    return op


def _set(elements: list[Unit], tag: int, raw: bytes) -> None:
    head = _tag(tag, "<")
    for u in elements:
        if u.head == head:
            u.parts = [raw]
            return
    elements.append(element_unit(tag, b"", raw, SYNTAX_IMPLICIT))


# ------------------------------------------------------------ conversations

FIND_MODEL = "1.2.840.10008.5.1.4.1.2.2.1"
MOVE_MODEL = "1.2.840.10008.5.1.4.1.2.2.2"
ECHO = "1.2.840.10008.1.1"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@dataclass(slots=True)
class Message:
    """A DIMSE message before framing: command elements, data set elements, context."""

    ctx: int
    command: list[Unit]
    data: list[Unit] | None = None
    raw_data: bytes | None = None  # data set bytes not worth a tree (C-STORE pixel data)


@dataclass(slots=True)
class Step:
    from_client: bool
    pdus: list[Unit | bytes] = field(default_factory=list)
    message: Message | None = None


@dataclass(slots=True)
class Script:
    steps: list[Step]
    syntax: Syntax
    notes: list[str]


def _cmd(fields: dict[int, int | str | bytes]) -> list[Unit]:
    return with_group_length(command_elements(list(fields.items())))


def _associate(
    rng: random.Random, contexts: list[tuple[int, str]], syntax: Syntax, rq: bool
) -> Unit:
    items: list[Unit | bytes] = [item_unit(0x10, [b"1.2.840.10008.3.1.1.1"])]
    for ctx_id, abstract in contexts:
        if rq:
            subs = [item_unit(0x30, [abstract.encode()]), item_unit(0x40, [syntax.uid.encode()])]
            if rng.random() < 0.3:
                subs.append(item_unit(0x40, [b"1.2.840.10008.1.2"]))
            items.append(item_unit(0x20, subs, bytes([ctx_id, 0, 0, 0])))
        else:
            result = 0 if rng.random() < 0.9 else rng.randrange(1, 6)
            items.append(
                item_unit(
                    0x21, [item_unit(0x40, [syntax.uid.encode()])], bytes([ctx_id, 0, result, 0])
                )
            )
    user: list[Unit | bytes] = [
        item_unit(0x51, [struct.pack(">I", rng.choice((0, 16384, 4)))]),
        item_unit(0x52, [b"1.2.3.4"]),
        item_unit(0x55, [ae_title(rng, "FUZZ_1").rstrip()]),
    ]
    if rng.random() < 0.3:
        user.append(item_unit(0x53, [struct.pack(">HH", rng.randrange(4), rng.randrange(4))]))
    if rng.random() < 0.3:
        uid = MOVE_MODEL.encode()
        user.append(item_unit(0x54, [Unit("uid", b"", ">H", [uid]), bytes([1, 1])]))
    if rng.random() < 0.2:
        user.append(item_unit(0x58 if rq else 0x59, [b"\x01\x01\x00\x04user\x00\x00"]))
    items.append(item_unit(0x50, user))
    fixed = struct.pack(">HH", 1, 0) + ae_title(rng, "SCP") + ae_title(rng, "SCU") + bytes(32)
    return pdu_unit(0x01 if rq else 0x02, [fixed, *items])


def _rq(
    ctx: int,
    field: int,
    sop: str | None,
    message_id: int,
    data: list[Unit] | None = None,
    **extra: int | str,
) -> Step:
    """A request from the client (with ``data`` as its identifier, if any)."""
    fields: dict[int, int | str | bytes] = {
        dimse.COMMAND_FIELD: field,
        dimse.MESSAGE_ID: message_id,
        dimse.COMMAND_DATA_SET_TYPE: 0x0101 if data is None else 0,
    }
    if sop is not None:
        fields[dimse.AFFECTED_SOP_CLASS_UID] = sop
    fields.update({getattr(dimse, k.upper()): v for k, v in extra.items()})
    return Step(True, message=Message(ctx, _cmd(fields), data))


def _rsp(
    ctx: int,
    field: int,
    sop: str,
    to: int,
    status: int,
    data: list[Unit] | None = None,
    **extra: int | str,
) -> Step:
    """A response from the server."""
    fields: dict[int, int | str | bytes] = {
        dimse.AFFECTED_SOP_CLASS_UID: sop,
        dimse.COMMAND_FIELD: field,
        dimse.MESSAGE_ID_BEING_RESPONDED_TO: to,
        dimse.COMMAND_DATA_SET_TYPE: 0x0101 if data is None else 0,
        dimse.STATUS: status,
    }
    fields.update({getattr(dimse, k.upper()): v for k, v in extra.items()})
    return Step(False, message=Message(ctx, _cmd(fields), data))


def build_script(rng: random.Random) -> Script:
    """A conversation of one association, made of a few random exchanges."""
    syntax = rng.choice(SYNTAXES)
    contexts = [(1, ECHO), (3, FIND_MODEL), (5, MOVE_MODEL), (7, CT_STORAGE)]
    steps = [Step(True, [_associate(rng, contexts, syntax, True)])]
    notes: list[str] = [syntax.uid]
    if rng.random() < 0.05:
        steps.append(Step(False, [pdu_unit(0x03, [bytes([0, 1, 1, rng.randrange(8)])])]))
        return Script(steps, syntax, notes + ["rejected"])
    steps.append(Step(False, [_associate(rng, contexts, syntax, False)]))
    for n in range(rng.randrange(1, 4)):
        kind = rng.choice(("echo", "find", "find", "move", "move", "store", "cancel"))
        notes.append(kind)
        mid = n + 2
        if kind == "echo":
            steps += [_rq(1, 0x0030, ECHO, mid), _rsp(1, 0x8030, ECHO, mid, 0)]
        elif kind in ("find", "cancel"):
            steps.append(
                _rq(
                    3, 0x0020, FIND_MODEL, mid, identifier_elements(rng, syntax, "find"), priority=0
                )
            )
            for i in range(rng.randrange(0, 4)):
                if kind == "cancel" and i == 1:
                    cancel = {
                        dimse.COMMAND_FIELD: 0x0FFF,
                        dimse.MESSAGE_ID_BEING_RESPONDED_TO: mid,
                        dimse.COMMAND_DATA_SET_TYPE: 0x0101,
                    }
                    steps.append(Step(True, message=Message(3, _cmd(cancel))))
                steps.append(
                    _rsp(
                        3, 0x8020, FIND_MODEL, mid, 0xFF00, identifier_elements(rng, syntax, "find")
                    )
                )
            steps.append(_rsp(3, 0x8020, FIND_MODEL, mid, 0xFE00 if kind == "cancel" else 0))
        elif kind == "move":
            steps.append(
                _rq(
                    5,
                    0x0021,
                    MOVE_MODEL,
                    mid,
                    identifier_elements(rng, syntax, "find"),
                    priority=0,
                    move_destination="DEST",
                )
            )
            total = rng.randrange(0, 5)
            for done in range(total):
                steps.append(
                    _rsp(
                        5,
                        0x8021,
                        MOVE_MODEL,
                        mid,
                        0xFF00,
                        remaining=total - done,
                        completed=done,
                        failed=0,
                        warning=0,
                    )
                )
            failed = rng.random() < 0.5
            failures = identifier_elements(rng, syntax, "move-rsp") if failed else None
            steps.append(
                _rsp(
                    5,
                    0x8021,
                    MOVE_MODEL,
                    mid,
                    0xB000 if failed else 0,
                    failures,
                    remaining=0,
                    completed=total,
                    failed=int(failed),
                    warning=0,
                    error_comment="partial",
                )
            )
        else:  # a C-STORE sub-operation: its data set is counted, never kept
            data = bytes([rng.randrange(256)]) * rng.choice((10, 3000, 40000))
            store = _rq(
                7,
                0x0001,
                CT_STORAGE,
                mid,
                [],
                priority=0,
                affected_sop_instance_uid="1.2.3.4.5",
                move_originator_ae_title="SCU",
                move_originator_message_id=2,
            )
            assert store.message is not None
            store.message.data, store.message.raw_data = None, data
            steps += [
                store,
                _rsp(7, 0x8001, CT_STORAGE, mid, 0, affected_sop_instance_uid="1.2.3.4.5"),
            ]
    ending = rng.random()
    if ending < 0.7:
        steps.append(Step(True, [pdu_unit(0x05, [bytes(4)])]))
        steps.append(Step(False, [pdu_unit(0x06, [bytes(4)])]))
    elif ending < 0.85:
        steps.append(Step(rng.random() < 0.5, [pdu_unit(0x07, [bytes([0, 0, 2, 1])])]))
    return Script(steps, syntax, notes)


def frame_message(rng: random.Random, msg: Message, syntax: Syntax) -> list[Unit]:
    """P-DATA-TF PDUs carrying one message, fragmented at random sizes."""
    command = b"".join(u.encode() for u in msg.command)
    if msg.data is not None:
        data: bytes | None = encode_dataset(msg.data, syntax, rng)
    else:
        data = msg.raw_data
    pdvs: list[Unit] = []
    for control, payload in ((0x01, command), (0x00, data)):
        if payload is None:
            continue
        size = rng.choice((len(payload) or 1, len(payload) or 1, 16384, rng.randrange(1, 64)))
        size = max(size, len(payload) // 2000)  # at most 2,000 PDVs a message (time budget)
        chunks = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
        for k, chunk in enumerate(chunks):
            last = 0x02 if k == len(chunks) - 1 else 0
            pdvs.append(pdv_unit(msg.ctx, control | last, chunk))
    pdus: list[Unit] = []
    per = rng.choice((1, 1, 2, 8))
    for i in range(0, len(pdvs), per):
        pdus.append(pdu_unit(0x04, list(pdvs[i : i + per])))
    return pdus


def mutate_pdus(rng: random.Random, steps: list[Step]) -> str:
    """PDU / item / PDV level: lengths, types, reserved bits, drops, duplicates, garbage."""
    all_pdus = [(s, i) for s in steps for i, p in enumerate(s.pdus) if isinstance(p, Unit)]
    if not all_pdus:
        return "none"
    step, index = rng.choice(all_pdus)
    pdu = step.pdus[index]
    assert isinstance(pdu, Unit)
    op = rng.choices(
        (
            "length",
            "pdu-type",
            "item-type",
            "reserved",
            "pdv-short",
            "control",
            "context",
            "drop",
            "dup",
            "garbage",
            "truncate",
        ),
        weights=(30, 6, 8, 6, 6, 8, 4, 4, 4, 5, 6),
    )[0]
    units = [(u, p) for u, p in pdu.walk() if u.fmt]
    if op == "length":
        unit, parent = rng.choice(units)
        true = len(unit.body())
        room = len(parent.body()) if parent is not None else true + 16
        unit.length = hostile_length(rng, true, room, unit.width)
        return f"length-{unit.kind}"
    if op == "pdu-type":
        pdu.head = bytes([rng.choice(UNKNOWN_PDU_TYPES)]) + pdu.head[1:]
    elif op == "item-type":
        items = [u for u, _p in units if u.kind == "item"]
        if items:
            u = rng.choice(items)
            u.head = bytes([rng.choice(UNKNOWN_ITEM_TYPES)]) + u.head[1:]
    elif op == "reserved":
        u = rng.choice([u for u, _p in units if u.kind in ("pdu", "item")])
        u.head = u.head[:1] + bytes([rng.choice((1, 0x80, 0xFF))])
    elif op in ("pdv-short", "control", "context"):
        pdvs = [u for u, _p in units if u.kind == "pdv"]
        if pdvs:
            u = rng.choice(pdvs)
            if op == "pdv-short":
                u.length = rng.choice((0, 1))
            elif op == "control":
                u.counted = u.counted[:1] + bytes(
                    [
                        u.counted[1] | rng.choice((0x04, 0x80, 0xFC))
                        if rng.random() < 0.6
                        else rng.randrange(256)
                    ]
                )
            else:
                u.counted = bytes([rng.choice((0, 2, 255, 9))]) + u.counted[1:]
    elif op == "drop":
        del step.pdus[index]
    elif op == "dup":
        step.pdus.insert(index, pdu)
    elif op == "garbage":
        step.pdus.insert(index, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
    else:
        raw = pdu.encode()
        step.pdus[index] = raw[: rng.randrange(len(raw))]
    return op


def build_conversation(rng: random.Random) -> FuzzInput:
    script = build_script(rng)
    syntax = script.syntax
    notes = list(script.notes)
    messages = [s.message for s in script.steps if s.message is not None]
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        target = rng.random()
        with_data = [m for m in messages if m.data is not None]
        if target < 0.4 and with_data:
            m = rng.choice(with_data)
            assert m.data is not None
            notes.append("ds:" + mutate_dataset(rng, m.data, syntax))
        elif messages:
            notes.append("cmd:" + mutate_command(rng, rng.choice(messages).command))
    for step in script.steps:
        if step.message is not None:
            step.pdus = list(frame_message(rng, step.message, syntax))
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        notes.append("pdu:" + mutate_pdus(rng, script.steps))
    pcap, ports, tcp_notes = _capture(rng, script.steps)
    return FuzzInput("built:" + "+".join(notes + tcp_notes), pcap, ports)


def _capture(rng: random.Random, steps: list[Step]) -> tuple[bytes, tuple[int, ...], list[str]]:
    """Segment the conversation into TCP frames (maybe mid-stream, maybe forced port)."""
    port = rng.choice((104, 11112, 4242))
    client, server = ("10.0.0.1", rng.randrange(1024, 65535)), ("10.0.0.2", port)
    handshake = rng.random() < 0.85
    isn = [rng.randrange(1 << 32), rng.randrange(1 << 32)]
    seq = {True: isn[0], False: isn[1]}
    frames: list[Frame] = []
    ts = 1_700_000_000.0

    def emit(from_client: bool, flags: int, payload: bytes = b"") -> None:
        nonlocal ts
        ts += rng.choice((0.0001, 0.001, 0.5))
        src, dst = (client, server) if from_client else (server, client)
        frames.append(
            (ts, tcp_frame(src, dst, seq[from_client], seq[not from_client], flags, payload))
        )
        seq[from_client] = (
            seq[from_client] + len(payload) + (1 if flags & (SYN | FIN) else 0)
        ) & 0xFFFFFFFF

    if handshake:
        emit(True, SYN)
        emit(False, SYN | ACK)
        emit(True, ACK)
    mss = rng.choice((1448, 1448, 16000, 536, 100, 7, 1))
    skip = 0 if handshake else rng.randrange(3)
    for step in steps[skip:]:
        data = b"".join(p.encode() if isinstance(p, Unit) else p for p in step.pdus)
        pos = 0
        while pos < len(data):
            # Tiny segments only for the first few thousand frames (time budget).
            size = mss if len(frames) < 1500 else 1448
            emit(step.from_client, ACK | PSH, data[pos : pos + size])
            pos += size
    if rng.random() < 0.8:
        emit(True, FIN | ACK)
        emit(False, FIN | ACK)
        emit(True, ACK)
    mutable = [bytearray(f) for _t, f in frames]
    stamps = [t for t, _f in frames]
    notes = [] if handshake else ["mid-stream"]
    for _ in range(rng.choice((0, 0, 0, 1, 2)) if mutable else 0):
        live = [i for i, f in enumerate(mutable) if f is not None]
        if rng.random() < 0.5 and live:
            i = rng.choice(live)
            mutable[i] = bytearray(mutate_tcp_header(rng, bytes(mutable[i])))
            notes.append("tcp")
        else:
            _reshuffle(rng, mutable, stamps)  # type: ignore[arg-type]
            notes.append("segments")
    kept = [(t, bytes(f)) for t, f in zip(stamps, mutable, strict=True) if f is not None]
    ports = (port,) if rng.random() < 0.2 else ()
    return pcap_bytes(kept), ports, notes


# ------------------------------------------------------------- capture files

PCAP_MAGICS = (  # (magic as written little-endian-first, byte order, divisor, extra header bytes)
    (0xA1B2C3D4, "<", 1e6, 0),
    (0xA1B2C3D4, ">", 1e6, 0),
    (0xA1B23C4D, "<", 1e9, 0),
    (0xA1B23C4D, ">", 1e9, 0),
    (0xA1B2CD34, "<", 1e6, 8),
    (0xA1B2CD34, ">", 1e6, 8),
)


def pcap_variant(rng: random.Random, frames: list[Frame], linktype: int) -> bytes:
    """pcap in either byte order, micro- or nanosecond, or the modified (Kuznetzov) format."""
    magic, order, divisor, extra = rng.choice(PCAP_MAGICS)
    snaplen = rng.choice((262144, 65535, 96, 0))
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for ts, frame in frames:
        sec = int(ts)
        frac = min(int(round((ts - sec) * divisor)), int(divisor) - 1)
        out.append(struct.pack(order + "IIII", sec & 0xFFFFFFFF, frac, len(frame), len(frame)))
        out.append(bytes(extra) + frame)
    return b"".join(out)


def pcapng_variant(rng: random.Random, frames: list[Frame], linktype: int) -> bytes:
    """pcapng with hostile options: timestamp resolution and offset, odd blocks, sections."""
    order = rng.choice("<>")

    def block(btype: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        n = 12 + len(body)
        return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)

    def section() -> bytes:
        return block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))

    resolution = rng.choice((None, None, 6, 9, 0, 0x80 | 20, 127, 0x80 | 127, 3))
    offset = rng.choice((None, None, 0, -(10**12), 2**62, rng.randrange(-(2**40), 2**40)))
    options = b""
    if resolution is not None:
        options += struct.pack(order + "HHB3x", 9, 1, resolution)
    if offset is not None:
        options += struct.pack(order + "HHq", 14, 8, offset)
    if rng.random() < 0.2:
        options += struct.pack(order + "HH", rng.randrange(2, 20), rng.choice((4, 300, 0xFFFF)))
    options += struct.pack(order + "HH", 0, 0)
    idb = block(1, struct.pack(order + "HHI", linktype, 0, rng.choice((0, 65535, 64))) + options)
    if resolution is None:
        units = 10**6
    else:
        units = 2 ** (resolution & 0x7F) if resolution & 0x80 else 10**resolution
    out = [section(), idb]
    for ts, frame in frames:
        kind = rng.choices(("epb", "spb", "opb", "junk", "section"), weights=(90, 3, 3, 3, 1))[0]
        stamp = int(ts * units) & 0xFFFF_FFFF_FFFF_FFFF
        hi, lo = stamp >> 32, stamp & 0xFFFFFFFF
        ifid = 0 if rng.random() < 0.98 else rng.randrange(1, 4)
        if kind == "spb":
            out.append(block(3, struct.pack(order + "I", len(frame)) + frame))
        elif kind == "opb":
            head = struct.pack(order + "HHIIII", ifid, 0, hi, lo, len(frame), len(frame))
            out.append(block(2, head + frame))
        else:
            if kind == "junk":
                out.append(block(rng.choice((4, 5, 0x0BAD, 0x80000001)), bytes(rng.randrange(40))))
            elif kind == "section":
                out.append(section())
                out.append(idb)
            head = struct.pack(order + "IIIII", ifid, hi, lo, len(frame), len(frame))
            out.append(block(6, head + frame))
    return b"".join(out)


def mutate_file(rng: random.Random) -> FuzzInput:
    """A sample's frames in another file format (pcap variants, pcapng, gzip), then damaged."""
    name = rng.choice(available_samples())
    frames = list(sample_frames(name))
    start = rng.randrange(max(1, len(frames) - 60))
    frames = frames[start : start + 60]
    linktype = ETHERNET
    if rng.random() < 0.3:
        frames, linktype = relink(frames, rng)
    fmt = rng.choice(("pcap", "pcapng", "pcapng"))
    data = (
        pcap_variant(rng, frames, linktype)
        if fmt == "pcap"
        else pcapng_variant(rng, frames, linktype)
    )
    notes = [fmt]
    if rng.random() < 0.6:
        for _ in range(rng.choice((1, 1, 2, 4))):
            data = mutate_bytes(rng, data)
        notes.append("damaged")
    if rng.random() < 0.2:
        packed = zlib.compressobj(6, zlib.DEFLATED, 31)
        data = packed.compress(data) + packed.flush()
        if rng.random() < 0.3:
            data = rng.choice((data + data, data + b"trailing", data[: len(data) // 2]))
        notes.append("gzip")
    return FuzzInput(f"file:{name}:{'+'.join(notes)}", data)


# ----------------------------------------------------------------- strategies

STRATEGIES: dict[str, tuple[int, Callable[[random.Random], FuzzInput]]] = {
    "sample": (40, mutate_sample),
    "built": (50, build_conversation),
    "file": (10, mutate_file),
}


def generate(rng: random.Random, strategy: str | None = None) -> FuzzInput:
    """One input from the strategy given (or one picked by weight)."""
    if strategy is None:
        names = list(STRATEGIES)
        strategy = rng.choices(names, weights=[STRATEGIES[n][0] for n in names])[0]
    return STRATEGIES[strategy][1](rng)


def inputs(seed: int, count: int, strategy: str | None = None) -> Iterator[FuzzInput]:
    """``count`` inputs from ``seed``; input k depends only on (seed, k)."""
    for k in range(count):
        yield generate(random.Random(f"{seed}:{k}"), strategy)
