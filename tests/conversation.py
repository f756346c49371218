"""Turn a scripted TCP conversation into captured frames, and analyse them.

For edge cases only (hand-made upper-layer bytes); real traffic comes from
``samples/``.  Frames are Ethernet/IPv4/TCP with correct sequence numbers, so
they go through the same link, TCP and reassembly code as a capture file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from dimsesniff.api import TABLE_COLUMNS, run
from dimsesniff.pipeline import Options

ETHERNET = 1
SYN, FIN, ACK, PSH = 0x02, 0x01, 0x10, 0x08


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_frame(
    src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int, payload: bytes = b""
) -> bytes:
    tcp = (
        struct.pack(
            "!HHIIBBHHH",
            src[1],
            dst[1],
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            5 << 4,
            flags,
            65535,
            0,
            0,
        )
        + payload
    )
    total = 20 + len(tcp)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        total,
        0,
        0x4000,
        64,
        6,
        0,
        bytes(map(int, src[0].split("."))),
        bytes(map(int, dst[0].split("."))),
    )
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + tcp


class Conversation:
    """A TCP connection between a client and a server, written segment by segment."""

    def __init__(
        self,
        client: tuple[str, int] = ("10.0.0.1", 40001),
        server: tuple[str, int] = ("10.0.0.2", 104),
        *,
        mss: int = 1448,
        handshake: bool = True,
        isn: tuple[int, int] = (1000, 5000),
    ) -> None:
        self.client, self.server, self.mss = client, server, mss
        self.seq = {True: isn[0], False: isn[1]}
        self.frames: list[tuple[float, int, bytes]] = []
        self.ts = 1_700_000_000.0
        if handshake:
            self._emit(True, SYN, b"", ack=0)
            self.seq[True] += 1
            self._emit(False, SYN | ACK, b"")
            self.seq[False] += 1
            self._emit(True, ACK, b"")

    def _emit(
        self,
        from_client: bool,
        flags: int,
        payload: bytes,
        *,
        seq: int | None = None,
        ack: int | None = None,
    ) -> None:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        self.ts += 0.001
        self.frames.append(
            (
                self.ts,
                ETHERNET,
                tcp_frame(
                    src,
                    dst,
                    self.seq[from_client] if seq is None else seq,
                    self.seq[not from_client] if ack is None else ack,
                    flags,
                    payload,
                ),
            )
        )

    def send(self, from_client: bool, data: bytes, *, sizes: Iterable[int] | None = None) -> None:
        """Send ``data`` cut into MSS-sized segments (or the given sizes)."""
        cuts = list(sizes) if sizes is not None else []
        pos = 0
        while pos < len(data):
            n = cuts.pop(0) if cuts else self.mss
            self._emit(from_client, ACK | PSH, data[pos : pos + n])
            self.seq[from_client] += len(data[pos : pos + n])
            pos += n

    def client_sends(self, data: bytes, **kw) -> None:
        self.send(True, data, **kw)

    def server_sends(self, data: bytes, **kw) -> None:
        self.send(False, data, **kw)

    def close(self) -> None:
        self._emit(True, FIN | ACK, b"")
        self.seq[True] += 1
        self._emit(False, FIN | ACK, b"")
        self.seq[False] += 1
        self._emit(True, ACK, b"")


def analyse(
    frames: Sequence[tuple[float, int, bytes]],
    *,
    ports: Sequence[int] = (),
    profile: str = "standard",
    **kw,
) -> dict[str, list[dict]]:
    """Run the real pipeline over frames; return the rows of every table."""
    import io

    rows: dict[str, list[dict]] = {name: [] for name in TABLE_COLUMNS}
    pcap = io.BytesIO()
    pcap.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, ETHERNET))
    for ts, _linktype, frame in frames:
        sec = int(ts)
        pcap.write(struct.pack("<IIII", sec, int(round((ts - sec) * 1e6)), len(frame), len(frame)))
        pcap.write(frame)
    pcap.seek(0)
    run(
        [pcap],
        lambda table, row: rows[table].append(row),
        options=Options(ports=tuple(ports)),
        profile=profile,
        **kw,
    )
    return rows
