"""Capture readers: every container variant, streams, and damaged input.

Files are built by hand (``pcap_bytes``/``pcapng_*``) so each header field is
visible in the test, and cross-checked against scapy's and editcap's writers.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dimsesniff.sources import CaptureError, FrameReader, read_frames

FRAMES = [bytes([i]) * (60 + 37 * i) for i in range(6)]
TIMES = [1_700_000_000 + i + (i * 1234) / 1e6 for i in range(6)]

# ---------------------------------------------------------------- builders


def pcap_bytes(
    frames: list[bytes],
    *,
    order: str = "<",
    nano: bool = False,
    linktype: int = 1,
    modified: bool = False,
    times: list[float] | None = None,
) -> bytes:
    """A pcap file: 24-byte file header, then 16-byte record headers (24 if modified)."""
    magic = 0xA1B2CD34 if modified else 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    scale = 10**9 if nano else 10**6
    for i, frame in enumerate(frames):
        ts = (times or TIMES)[i % len(times or TIMES)]
        sec = int(ts)
        frac = round((ts - sec) * scale)
        out.append(struct.pack(order + "IIII", sec, frac, len(frame), len(frame) + 10))
        if modified:
            out.append(struct.pack(order + "IHBx", 3, 0x0800, 0))
        out.append(frame)
    return b"".join(out)


def _block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)


def _option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(order: str = "<") -> bytes:
    return _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(order: str, linktype: int, tsresol: int | None = None, tsoffset: int = 0) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += _option(order, 9, bytes([tsresol]))
    if tsoffset:
        opts += _option(order, 14, struct.pack(order + "q", tsoffset))
    if opts:
        opts += _option(order, 0, b"")
    return _block(order, 1, struct.pack(order + "HHI", linktype, 0, 0) + opts)


def epb(order: str, ifid: int, units: int, frame: bytes) -> bytes:
    head = struct.pack(
        order + "IIIII", ifid, units >> 32, units & 0xFFFFFFFF, len(frame), len(frame)
    )
    return _block(order, 6, head + frame)


def spb(order: str, frame: bytes) -> bytes:
    return _block(order, 3, struct.pack(order + "I", len(frame)) + frame)


def read_all(source, **kwargs) -> tuple[list[tuple[float, int, bytes]], list[str]]:
    reader = FrameReader(source, **kwargs)
    frames = [(ts, lt, bytes(fr)) for ts, lt, fr in reader.read()]
    return frames, reader.warnings


class TrickleStream(io.RawIOBase):
    """A non-seekable stream that hands out at most ``step`` bytes per read."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = min(len(buffer), self._step, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


# -------------------------------------------------------------------- pcap


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, order: str, nano: bool) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap_bytes(FRAMES, order=order, nano=nano, linktype=113))
    frames, warnings = read_all(path)
    assert [f for _, _, f in frames] == FRAMES
    assert {lt for _, lt, _ in frames} == {113}
    assert [ts for ts, _, _ in frames] == pytest.approx(TIMES, abs=1e-6)
    assert warnings == []


def test_pcap_nanosecond_precision_kept(tmp_path: Path) -> None:
    path = tmp_path / "ns.pcap"
    data = bytearray(pcap_bytes([b"a" * 60], nano=True))
    struct.pack_into("<I", data, 24 + 4, 123_456_789)
    path.write_bytes(bytes(data))
    ((ts, _, _),) = read_all(path)[0]
    assert ts == pytest.approx(TIMES[0] // 1 + 0.123456789, abs=1e-7)


def test_modified_pcap_records(tmp_path: Path) -> None:
    path = tmp_path / "m.pcap"
    path.write_bytes(pcap_bytes(FRAMES, modified=True))
    assert [f for _, _, f in read_all(path)[0]] == FRAMES


def test_pcap_linktype_fcs_bits_masked(tmp_path: Path) -> None:
    data = bytearray(pcap_bytes(FRAMES[:1]))
    struct.pack_into("<I", data, 20, 0x10000000 | 1)  # FCS length bits set
    path = tmp_path / "fcs.pcap"
    path.write_bytes(bytes(data))
    assert read_all(path)[0][0][1] == 1


def test_pcap_written_by_scapy(tmp_path: Path) -> None:
    from scapy.all import IP, TCP, Ether, wrpcap

    pkts = [Ether() / IP() / TCP(sport=1000 + i) / (b"z" * i) for i in range(5)]
    for i, p in enumerate(pkts):
        p.time = 1_600_000_000.5 + i
    path = tmp_path / "scapy.pcap"
    wrpcap(str(path), pkts)
    frames, _ = read_all(path)
    assert [f for _, _, f in frames] == [bytes(p) for p in pkts]
    assert frames[2][0] == pytest.approx(1_600_000_002.5)


@pytest.mark.parametrize("chunk_size", [1, 5, 24, 100, 1 << 20])
def test_pcap_any_chunking(tmp_path: Path, chunk_size: int) -> None:
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap_bytes(FRAMES))
    frames, warnings = read_all(path, chunk_size=chunk_size)
    assert [f for _, _, f in frames] == FRAMES
    assert warnings == []


# ------------------------------------------------------------------ pcapng


def test_pcapng_interfaces_resolutions_and_block_types() -> None:
    o = "<"
    data = b"".join(
        [
            shb(o),
            idb(o, 1),  # default microseconds
            idb(o, 101, tsresol=9),  # nanoseconds, raw IP
            idb(o, 113, tsresol=0x80 | 10, tsoffset=100),  # 2**-10 s, offset 100 s
            _block(o, 0x0BAD, b"unknown block body"),
            epb(o, 0, 1_700_000_000_250_000, FRAMES[0]),
            epb(o, 1, 1_700_000_001_000_000_500, FRAMES[1]),
            _block(o, 5, b"\0" * 16),  # interface statistics: skipped
            epb(o, 2, 3 * 1024 + 512, FRAMES[2]),
            spb(o, FRAMES[3]),
        ]
    )
    frames, warnings = read_all(io.BytesIO(data))
    assert [f for _, _, f in frames] == FRAMES[:4]
    assert [lt for _, lt, _ in frames] == [1, 101, 113, 1]
    assert frames[0][0] == pytest.approx(1_700_000_000.25)
    assert frames[1][0] == pytest.approx(1_700_000_001.0000005, abs=1e-7)
    assert frames[2][0] == pytest.approx(103.5)
    assert frames[3][0] == frames[2][0]  # SPB: no timestamp of its own
    assert warnings == []


def test_pcapng_sections_with_both_byte_orders() -> None:
    data = b"".join(
        [
            shb("<"),
            idb("<", 1),
            epb("<", 0, 5_000_000, FRAMES[0]),
            shb(">"),  # new section: interfaces start again, big-endian
            idb(">", 228, tsresol=3),
            epb(">", 0, 7_000, FRAMES[1]),
            shb("<"),
            idb("<", 276),
            epb("<", 0, 9_000_000, FRAMES[2]),
        ]
    )
    frames, warnings = read_all(TrickleStream(data, step=3))
    assert [(ts, lt, f) for ts, lt, f in frames] == [
        (5.0, 1, FRAMES[0]),
        (7.0, 228, FRAMES[1]),
        (9.0, 276, FRAMES[2]),
    ]
    assert warnings == []


def test_pcapng_written_by_scapy(tmp_path: Path) -> None:
    from scapy.all import IP, TCP, Ether
    from scapy.utils import PcapNgWriter

    pkts = [Ether() / IP() / TCP(sport=2000 + i) for i in range(4)]
    for i, p in enumerate(pkts):
        p.time = 1_650_000_000 + i / 4
    path = tmp_path / "scapy.pcapng"
    writer = PcapNgWriter(str(path))
    for p in pkts:
        writer.write(p)
    writer.close()
    frames, _ = read_all(path)
    assert [f for _, _, f in frames] == [bytes(p) for p in pkts]
    assert [ts for ts, _, _ in frames] == pytest.approx([float(p.time) for p in pkts])


@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap not installed")
def test_pcapng_from_editcap_matches_pcap(tmp_path: Path) -> None:
    src = tmp_path / "in.pcap"
    src.write_bytes(pcap_bytes(FRAMES))
    dst = tmp_path / "out.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(src), str(dst)], check=True)
    assert read_all(dst)[0] == read_all(src)[0]


# -------------------------------------------------------------------- gzip


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_gzip_files(tmp_path: Path, kind: str) -> None:
    raw = pcap_bytes(FRAMES) if kind == "pcap" else shb() + idb("<", 1) + epb("<", 0, 1, FRAMES[0])
    path = tmp_path / "capture.bin"  # the name says nothing: content decides
    path.write_bytes(gzip.compress(raw))
    assert read_all(path)[0] == read_all(io.BytesIO(raw))[0]


def test_gzip_on_a_trickling_stream_and_several_members() -> None:
    raw = pcap_bytes(FRAMES)
    data = gzip.compress(raw[:100]) + gzip.compress(raw[100:])
    frames, warnings = read_all(TrickleStream(data, step=5), chunk_size=64)
    assert [f for _, _, f in frames] == FRAMES
    assert warnings == []


def test_gzip_truncated_keeps_frames(tmp_path: Path) -> None:
    data = gzip.compress(pcap_bytes(FRAMES))
    path = tmp_path / "t.pcap.gz"
    path.write_bytes(data[: len(data) - 30])
    frames, warnings = read_all(path)
    assert [f for _, _, f in frames] == FRAMES[: len(frames)]
    assert warnings


def test_corrupt_gzip_is_a_capture_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 40)
    with pytest.raises(CaptureError, match="bad.gz: corrupt gzip data"):
        list(read_frames(path))


# ----------------------------------------------------------------- streams


def test_stdin_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    data = gzip.compress(pcap_bytes(FRAMES))

    class FakeStdin:
        buffer = io.BufferedReader(TrickleStream(data, step=11))

    monkeypatch.setattr(sys, "stdin", FakeStdin)
    assert [bytes(f) for _, _, f in read_frames("-")] == FRAMES


def test_real_pipe() -> None:
    data = pcap_bytes(FRAMES * 50)
    rfd, wfd = os.pipe()

    def writer() -> None:
        with os.fdopen(wfd, "wb") as w:
            for i in range(0, len(data), 999):
                w.write(data[i : i + 999])

    thread = threading.Thread(target=writer)
    thread.start()
    with os.fdopen(rfd, "rb") as r:
        frames = [bytes(f) for _, _, f in read_frames(r)]
    thread.join()
    assert frames == FRAMES * 50


# ----------------------------------------------------------- damaged input


def test_text_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("<html>not a capture</html>")
    with pytest.raises(CaptureError) as info:
        list(read_frames(path))
    assert str(info.value) == f"{path}: not a pcap or pcapng file (starts with 3c68746d)"


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(CaptureError, match="empty"):
        list(read_frames(empty))
    with pytest.raises(CaptureError, match="nope.pcap"):
        list(read_frames(tmp_path / "nope.pcap"))


def test_truncated_pcap_file_header(tmp_path: Path) -> None:
    path = tmp_path / "h.pcap"
    path.write_bytes(pcap_bytes([])[:10])
    with pytest.raises(CaptureError, match="truncated pcap file header"):
        list(read_frames(path))


@pytest.mark.parametrize("cut", [1, 8, 16, 17, 40])
def test_truncated_last_record(tmp_path: Path, cut: int) -> None:
    data = pcap_bytes(FRAMES)
    path = tmp_path / "t.pcap"
    path.write_bytes(data[: len(data) - len(FRAMES[-1]) - 16 + cut])
    frames, warnings = read_all(path)
    assert [f for _, _, f in frames] == FRAMES[:-1]
    assert len(warnings) == 1 and "truncated last" in warnings[0]


def test_truncated_pcapng_block() -> None:
    data = shb() + idb("<", 1) + epb("<", 0, 1, FRAMES[0]) + epb("<", 0, 2, FRAMES[1])
    frames, warnings = read_all(io.BytesIO(data[:-9]))
    assert [f for _, _, f in frames] == [FRAMES[0]]
    assert "truncated last block" in warnings[0]


def test_huge_caplen_stops_with_warning(tmp_path: Path) -> None:
    data = pcap_bytes(FRAMES[:2]) + struct.pack("<IIII", 1, 0, 0x7FFFFFFF, 0x7FFFFFFF) + b"x" * 50
    frames, warnings = read_all(io.BytesIO(data))
    assert [f for _, _, f in frames] == FRAMES[:2]
    assert "claims 2147483647" in warnings[0]


def test_pcapng_nonsense_block_length_mid_file() -> None:
    bad = struct.pack("<II", 6, 13) + b"\0" * 20
    data = shb() + idb("<", 1) + epb("<", 0, 1, FRAMES[0]) + bad
    frames, warnings = read_all(io.BytesIO(data))
    assert len(frames) == 1
    assert "impossible length 13" in warnings[0]


def test_pcapng_huge_block_length_does_not_allocate() -> None:
    bad = struct.pack("<II", 6, 0xFFFFFFF0)
    frames, warnings = read_all(io.BytesIO(shb() + idb("<", 1) + bad))
    assert frames == []
    assert "claims" in warnings[0]


def test_pcapng_undefined_interface() -> None:
    data = shb() + idb("<", 1) + epb("<", 0, 1, FRAMES[0]) + epb("<", 4, 1, FRAMES[1])
    frames, warnings = read_all(io.BytesIO(data))
    assert len(frames) == 1 and "inconsistent" in warnings[0]


def test_pcapng_garbage_section_header_is_capture_error() -> None:
    data = b"\x0a\x0d\x0d\x0a" + b"\x1c\x00\x00\x00" + b"nope" + b"\0" * 16
    with pytest.raises(CaptureError, match="byte-order magic"):
        list(read_frames(io.BytesIO(data)))


def test_damaged_files_never_raise_anything_but_capture_error() -> None:
    import random

    rnd = random.Random(7)
    originals = [
        pcap_bytes(FRAMES),
        pcap_bytes(FRAMES, order=">", nano=True),
        shb() + idb("<", 1, tsresol=9) + epb("<", 0, 1, FRAMES[0]) + spb("<", FRAMES[1]),
        shb(">") + idb(">", 113) + _block(">", 0x99, b"opaque") + epb(">", 0, 2, FRAMES[2]),
    ]
    originals.append(gzip.compress(originals[2]))
    for i in range(3000):
        data = bytearray(originals[i % len(originals)])
        for _ in range(rnd.randrange(1, 4)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        if rnd.random() < 0.3:
            del data[rnd.randrange(len(data)) :]
        reader = FrameReader(io.BytesIO(bytes(data)), chunk_size=rnd.choice([3, 64, 4096]))
        try:
            for _ts, _lt, frame in reader.read():
                assert len(frame) <= reader.max_caplen
        except CaptureError:
            pass
