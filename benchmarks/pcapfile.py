"""Minimal classic-pcap helpers for the benchmark: scan a capture and replicate it N times.

Only what the benchmark needs: classic pcap (either byte order, µs or ns time stamps) with
Ethernet (linktype 1) or raw IPv4 (101, 228) frames, as tcpdump writes them on a loopback.
No pcapng, no dissection beyond IPv4/TCP headers.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\x3c\x4d": (">", True),
}
LINK_ETHERNET = 1
LINK_RAW = (101, 228)


@dataclass
class PcapInfo:
    path: Path
    size: int
    frames: int = 0
    tcp_payload_bytes: int = 0
    max_tcp_payload: int = 0
    first_ts: float = 0.0
    last_ts: float = 0.0
    connections: int = 0  # SYNs without ACK
    connections_closed: int = 0  # of those, with a FIN seen in both directions
    server_ports: dict[int, int] = field(default_factory=dict)  # port -> connections to it

    @property
    def duration(self) -> float:
        return self.last_ts - self.first_ts

    def as_dict(self) -> dict:
        return {
            "file": str(self.path),
            "bytes": self.size,
            "frames": self.frames,
            "tcp_payload_bytes": self.tcp_payload_bytes,
            "max_tcp_payload": self.max_tcp_payload,
            "duration_s": round(self.duration, 3),
            "tcp_connections": self.connections,
            "tcp_connections_closed": self.connections_closed,
            "server_ports": {str(k): v for k, v in sorted(self.server_ports.items())},
        }


def _header(raw: bytes | memoryview, path: Path) -> tuple[str, bool, int]:
    if len(raw) < 24 or bytes(raw[:4]) not in PCAP_MAGICS:
        raise ValueError(f"{path}: not a classic pcap file")
    endian, nano = PCAP_MAGICS[bytes(raw[:4])]
    linktype = struct.unpack_from(endian + "I", raw, 20)[0] & 0x0FFFFFFF
    if linktype != LINK_ETHERNET and linktype not in LINK_RAW:
        raise ValueError(f"{path}: linktype {linktype} not supported (Ethernet or raw IPv4 only)")
    return endian, nano, linktype


def _ip_offset(frame_start: int, raw: bytes | memoryview, linktype: int) -> int | None:
    """Offset of the IPv4 header in `raw`, or None if the frame is not IPv4."""
    if linktype == LINK_ETHERNET:
        if raw[frame_start + 12] != 0x08 or raw[frame_start + 13] != 0x00:
            return None
        ip = frame_start + 14
    else:
        ip = frame_start
    if raw[ip] >> 4 != 4:
        return None
    return ip


def scan(path: Path) -> PcapInfo:
    """Frames, TCP payload bytes, connections and their server ports (one pass, in memory)."""
    path = Path(path)
    raw = path.read_bytes()
    endian, nano, linktype = _header(raw, path)
    info = PcapInfo(path, len(raw))
    rec = struct.Struct(endian + "IIII")
    div = 1e9 if nano else 1e6
    off, end = 24, len(raw)
    first = None
    t = 0.0
    syns: list[tuple[bytes, bytes]] = []  # (client end, server end) as ip+port bytes
    fins: set[tuple[bytes, bytes]] = set()  # (sender end, receiver end)
    while off + 16 <= end:
        sec, frac, incl, _orig = rec.unpack_from(raw, off)
        start = off + 16
        off = start + incl
        info.frames += 1
        t = sec + frac / div
        if first is None:
            first = t
        if incl < 40:
            continue
        ip = _ip_offset(start, raw, linktype)
        if ip is None or raw[ip + 9] != 6:
            continue
        ihl = (raw[ip] & 0x0F) * 4
        tcp = ip + ihl
        total = (raw[ip + 2] << 8) | raw[ip + 3]
        doff = (raw[tcp + 12] >> 4) * 4
        plen = total - ihl - doff
        if plen > 0:
            info.tcp_payload_bytes += plen
            if plen > info.max_tcp_payload:
                info.max_tcp_payload = plen
        flags = raw[tcp + 13]
        if flags & 0x03:
            src = raw[ip + 12 : ip + 16] + raw[tcp : tcp + 2]
            dst = raw[ip + 16 : ip + 20] + raw[tcp + 2 : tcp + 4]
            if flags & 0x01:
                fins.add((src, dst))
            elif not flags & 0x10:
                syns.append((src, dst))
                dport = (raw[tcp + 2] << 8) | raw[tcp + 3]
                info.server_ports[dport] = info.server_ports.get(dport, 0) + 1
    info.connections = len(syns)
    info.connections_closed = sum(1 for c, s in syns if (c, s) in fins and (s, c) in fins)
    info.first_ts = first or 0.0
    info.last_ts = t
    return info


def _csum_adjust(csum, old, new):
    """RFC 1624 incremental update of 16-bit one's-complement checksums: ~(~HC + ~m + m').

    Works element-wise on numpy int64 arrays (and on ints)."""
    x = (~csum & 0xFFFF) + (~old & 0xFFFF) + new
    x = (x & 0xFFFF) + (x >> 16)
    x = (x & 0xFFFF) + (x >> 16)
    return ~x & 0xFFFF


def replicate(src: Path, dst: Path, copies: int, gap_s: float = 1.0) -> PcapInfo:
    """Write `copies` back-to-back copies of the capture `src` into `dst`.

    Copy k (k = 0 .. copies-1) is shifted in time by k * (duration + gap_s), rounded up to whole
    seconds, so time stamps keep increasing; and every IPv4 address a.b.c.d in it becomes
    a.(b+k mod 256).c.d (127.0.0.1 -> 127.k.0.1), with the IPv4 header checksum and the TCP/UDP
    checksum adjusted incrementally (RFC 1624), so each copy's TCP connections are new,
    distinct 4-tuples and nothing else changes (TCP sequence numbers, payload, frame sizes).
    Copy 0 is the original, byte for byte.  Non-IPv4 frames are copied unchanged.  (Checksums
    that were wrong stay wrong: tcpdump on a loopback records partial TCP checksums anyway.)
    """
    import numpy as np

    src, dst = Path(src), Path(dst)
    raw = src.read_bytes()
    endian, _nano, linktype = _header(raw, src)
    info = scan(src)
    shift = math.ceil(info.duration + gap_s)
    rec = struct.Struct(endian + "IIII")
    be16 = struct.Struct("!H")
    # frame layout, once: record offsets; IPv4 header offsets; TCP/UDP checksum offsets
    recs: list[int] = []
    ips: list[int] = []
    l4s: list[int] = []  # per entry of ips: checksum offset, or -1 (none, or UDP without one)
    off, end = 24, len(raw)
    while off + 16 <= end:
        _sec, _frac, incl, _orig = rec.unpack_from(raw, off)
        start = off + 16
        recs.append(off)
        if incl >= 34:
            o = _ip_offset(start, raw, linktype)
            if o is not None:
                proto = raw[o + 9]
                l4start = o + (raw[o] & 0x0F) * 4
                frag = be16.unpack_from(raw, o + 6)[0] & 0x1FFF
                l4 = -1
                if proto == 6 and frag == 0 and l4start + 18 <= start + incl:
                    l4 = l4start + 16
                elif proto == 17 and frag == 0 and l4start + 8 <= start + incl:
                    l4 = l4start + 6
                    if be16.unpack_from(raw, l4)[0] == 0:  # UDP checksum 0: "none", stays 0
                        l4 = -1
                ips.append(o)
                l4s.append(l4)
        off = start + incl
    orig = np.frombuffer(raw, dtype=np.uint8, count=off)
    rec_a = np.array(recs, dtype=np.int64)
    ip_a = np.array(ips, dtype=np.int64)
    l4_a = np.array(l4s, dtype=np.int64)
    has_l4 = l4_a >= 0
    l4_a = l4_a[has_l4]
    ts_bytes = (0, 1, 2, 3) if endian == "<" else (3, 2, 1, 0)  # least significant first

    def get16(a: np.ndarray, at: np.ndarray) -> np.ndarray:
        return (a[at].astype(np.int64) << 8) | a[at + 1]

    def put16(a: np.ndarray, at: np.ndarray, v: np.ndarray) -> None:
        a[at] = (v >> 8) & 0xFF
        a[at + 1] = v & 0xFF

    ts0 = sum(orig[rec_a + b].astype(np.int64) << (8 * i) for i, b in enumerate(ts_bytes))
    tmp = dst.with_name(dst.name + ".part")
    with open(tmp, "wb") as f:
        f.write(raw[:off])
        for k in range(1, copies):
            buf = orig.copy()
            ts = (ts0 + k * shift) & 0xFFFFFFFF
            for i, b in enumerate(ts_bytes):
                buf[rec_a + b] = (ts >> (8 * i)) & 0xFF
            ip_csum = get16(buf, ip_a + 10)
            l4_csum = get16(buf, l4_a)
            for field_off in (12, 16):  # first 16-bit word of the source / destination address
                old = get16(buf, ip_a + field_off)
                new = (old & 0xFF00) | (((old & 0xFF) + k) & 0xFF)
                put16(buf, ip_a + field_off, new)
                ip_csum = _csum_adjust(ip_csum, old, new)
                l4_csum = _csum_adjust(l4_csum, old[has_l4], new[has_l4])
            put16(buf, ip_a + 10, ip_csum)
            put16(buf, l4_a, l4_csum)
            f.write(memoryview(buf)[24:])
            del buf
    tmp.replace(dst)
    out = PcapInfo(dst, 24 + copies * (off - 24), frames=copies * info.frames)
    out.tcp_payload_bytes = copies * info.tcp_payload_bytes
    out.max_tcp_payload = info.max_tcp_payload
    out.first_ts, out.last_ts = info.first_ts, info.last_ts + (copies - 1) * shift
    out.connections = copies * info.connections
    out.connections_closed = copies * info.connections_closed
    out.server_ports = {p: copies * n for p, n in info.server_ports.items()}
    return out
