"""Capture file readers: pcap, pcapng and gzip-compressed either, from a path or a stream.

This is the only module that opens capture files.  It turns one into a
sequence of ``(timestamp, linktype, frame)`` tuples and knows nothing about
what the frames contain.

Why not scapy or dpkt: both build an object per packet, which costs more than
the whole rest of the pipeline for a 300 MB capture.  Here the input is read
in large chunks and record headers are decoded with precompiled ``struct``
formats straight from the chunk, so per packet there is one unpack and one
slice.  Reading is strictly sequential, so a pipe (``-`` for standard input,
e.g. ``tcpdump -w - | dimsesniff analyze -``) works as well as a file.

Hostile or damaged files: nothing here allocates what a length field claims.
A record larger than ``max_caplen`` or a block length that cannot be right
ends the read with a warning (or raises ``CaptureError`` when the file header
itself is wrong, i.e. the input is not a capture at all); a truncated last
record ends the read cleanly with a warning.  Frames already read are kept.

References: https://www.tcpdump.org/manpages/pcap-savefile.5.html (pcap),
https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html (pcapng).
"""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple, NoReturn

Frame = tuple[float, int, bytes]
"""(timestamp in seconds since the epoch, pcap link type, captured bytes)."""
FrameSpan = tuple[float, int, bytes, int, int]
"""(timestamp, linktype, buffer, start, end): a frame not yet copied out of its read buffer."""

CHUNK_SIZE = 1 << 20
_PCAPNG_BATCH = 512
"""pcapng frames handed over per list by ``read_batches`` (each is already its own bytes)."""
MAX_CAPLEN = 256 * 1024
"""Largest captured frame accepted; above it the file is treated as corrupt.

Real frames, even GRO/TSO super-frames on a loopback, stay below 64 KiB plus
headers; 256 KiB is also the snap length tcpdump and dumpcap use by default.
"""
MAX_OTHER_BLOCK = 16 * 1024 * 1024
"""Largest pcapng block that is not a packet (name resolution, decryption secrets)."""
MAX_TIMESTAMP = 32_503_680_000.0
"""Year 3000.  A pcapng timestamp (64 bits, any resolution, any offset) outside
[1970, 3000) is damage; the previous packet's time is used instead, with a warning."""

_GZIP_MAGIC = b"\x1f\x8b"

# pcap magic numbers as they appear in the first four bytes of the file:
# (byte order, timestamp fraction divisor, extra bytes per record header).
# a1b2cd34 is the "modified" (Kuznetzov) format, whose record header has
# 8 more bytes (interface index, protocol, packet type).
_PCAP_MAGICS: dict[bytes, tuple[str, float, int]] = {
    b"\xa1\xb2\xc3\xd4": (">", 1e6, 0),
    b"\xd4\xc3\xb2\xa1": ("<", 1e6, 0),
    b"\xa1\xb2\x3c\x4d": (">", 1e9, 0),
    b"\x4d\x3c\xb2\xa1": ("<", 1e9, 0),
    b"\xa1\xb2\xcd\x34": (">", 1e6, 8),
    b"\x34\xcd\xb2\xa1": ("<", 1e6, 8),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_PCAPNG_BOM = {b"\x1a\x2b\x3c\x4d": ">", b"\x4d\x3c\x2b\x1a": "<"}

# pcapng block types.
_SHB = 0x0A0D0D0A
_IDB = 0x00000001
_OPB = 0x00000002  # obsolete packet block (pcapng 0.x), still written by old tools
_SPB = 0x00000003
_EPB = 0x00000006

# IDB options that change how timestamps are read.
_OPT_END = 0
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14


class CaptureError(Exception):
    """The input cannot be read as a capture; the message is one line for the user."""


class _Interface(NamedTuple):
    """What a packet block needs from its interface description block."""

    linktype: int
    snaplen: int
    # Timestamp units per second, an int so that int / int rounds once,
    # correctly, to the nearest float.
    divisor: int
    offset: int  # if_tsoffset, seconds to add


class _Stop(Exception):
    """The rest of the input is unusable; the reason is already in ``warnings``."""


class FrameReader:
    """Read every frame of one capture; problems that end the read early go to ``warnings``.

    ``warnings`` is filled while ``read()`` runs (typically "truncated last
    record"), so look at it after the iteration ends.  A ``CaptureError`` is
    raised instead when the input is not a readable capture at all.
    """

    def __init__(
        self,
        source: str | Path | BinaryIO,
        *,
        chunk_size: int = CHUNK_SIZE,
        max_caplen: int = MAX_CAPLEN,
    ) -> None:
        self.source = source
        self.chunk_size = chunk_size
        self.max_caplen = max_caplen
        self.warnings: list[str] = []
        self.frames = 0
        if isinstance(source, Path) or (isinstance(source, str) and source != "-"):
            self.name = str(source)
        elif source == "-":
            self.name = "<stdin>"
        else:
            self.name = str(getattr(source, "name", "<stream>"))
        self._chunks: Iterator[bytes] = iter(())
        self._buf = b""
        self._pos = 0
        # Once the file header is understood, damage is reported as a warning
        # and the frames read so far are kept; before that it is a CaptureError.
        self._recognised = False
        self._bad_time = False

    # ----------------------------------------------------------------- public

    def read(self) -> Iterator[Frame]:
        """Yield ``(timestamp, linktype, frame)`` for every packet, in file order."""
        for batch in self.read_batches():
            for ts, linktype, buf, start, end in batch:
                yield ts, linktype, buf[start:end]

    def read_spans(self) -> Iterator[FrameSpan]:
        """Yield ``(timestamp, linktype, buffer, start, end)``; the frame is ``buffer[start:end]``.

        Built on ``read_batches``, one frame at a time.
        """
        for batch in self.read_batches():
            yield from batch

    def read_batches(self) -> Iterator[list[FrameSpan]]:
        """Yield the frames as lists of ``(timestamp, linktype, buffer, start, end)``, in order.

        The frame is ``buffer[start:end]``, not yet copied out of the read
        buffer: a consumer that can decide from a few header bytes that it does
        not need a frame (``Pipeline.feed_batch``) never makes the copy.  One
        list per read buffer (about ``chunk_size`` bytes), so a 300 MB capture
        costs a few hundred steps of this generator, not one per packet.
        """
        stream, owned = self._open()
        try:
            self._chunks = self._raw_chunks(stream)
            head = self._peek(4)
            if head[:2] == _GZIP_MAGIC:
                self._chunks = self._gunzip(self._chunks, self._take_buffered())
                head = self._peek(4)
            if not head:
                raise CaptureError(f"{self.name}: empty file, not a capture")
            try:
                if head in _PCAP_MAGICS:
                    yield from self._read_pcap(head)
                elif head == _PCAPNG_SHB:
                    batch: list[FrameSpan] = []
                    try:
                        for ts, linktype, frame in self._read_pcapng():
                            batch.append((ts, linktype, frame, 0, len(frame)))
                            if len(batch) >= _PCAPNG_BATCH:
                                yield batch
                                batch = []
                    finally:
                        # Also when damage stops the reading: the frames before it count.
                        if batch:
                            yield batch
                else:
                    raise CaptureError(
                        f"{self.name}: not a pcap or pcapng file (starts with {head.hex()})"
                    )
            except _Stop:
                return
        finally:
            if owned:
                stream.close()

    # ------------------------------------------------------------- input side

    def _open(self) -> tuple[BinaryIO, bool]:
        if self.source == "-":
            return sys.stdin.buffer, False
        if isinstance(self.source, str | Path):
            try:
                return open(self.source, "rb"), True  # noqa: SIM115 - closed in read()
            except OSError as exc:
                raise CaptureError(f"{self.name}: {exc.strerror or exc}") from None
        return self.source, False

    def _raw_chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        # read1() returns what a pipe has now instead of blocking for a full
        # chunk, so frames from a live `tcpdump -w -` flow without delay.
        read = getattr(stream, "read1", None) or stream.read
        size = self.chunk_size
        while True:
            try:
                chunk = read(size)
            except OSError as exc:
                self._fail(f"read error: {exc.strerror or exc}")
            if not chunk:
                return
            yield bytes(chunk)

    def _gunzip(self, chunks: Iterator[bytes], first: bytes) -> Iterator[bytes]:
        """Decompress a gzip stream, including several concatenated members."""
        pending = first
        decomp = zlib.decompressobj(wbits=31)
        limit = self.chunk_size
        while True:
            if not pending:
                pending = next(chunks, b"")
                if not pending:
                    if not decomp.eof:
                        self.warnings.append(f"{self.name}: compressed data ends early")
                    return
            try:
                out = decomp.decompress(pending, limit)
            except zlib.error as exc:
                self._fail(f"corrupt gzip data ({exc})")
            pending = decomp.unconsumed_tail
            if out:
                yield out
            if decomp.eof:
                rest = decomp.unused_data + pending
                while len(rest) < len(_GZIP_MAGIC):
                    more = next(chunks, b"")
                    if not more:
                        break
                    rest += more
                if not rest.startswith(_GZIP_MAGIC):
                    if rest.strip(b"\0"):
                        self.warnings.append(f"{self.name}: ignored data after the gzip stream")
                    return
                decomp = zlib.decompressobj(wbits=31)
                pending = rest

    def _fail(self, message: str) -> NoReturn:
        """Stop reading: raise for a file not yet recognised, else warn and end."""
        if not self._recognised:
            raise CaptureError(f"{self.name}: {message}")
        self.warnings.append(f"{self.name}: {message}; stopped after {self.frames} frames")
        raise _Stop

    def _peek(self, n: int) -> bytes:
        """Up to ``n`` bytes at the read position, without consuming them."""
        if len(self._buf) - self._pos < n:
            self._fill(n)
        return self._buf[self._pos : self._pos + n]

    def _take_buffered(self) -> bytes:
        data = self._buf[self._pos :]
        self._buf = b""
        self._pos = 0
        return data

    def _fill(self, n: int) -> bool:
        """Make ``n`` bytes available at ``_pos``; False at end of input."""
        parts = [self._buf[self._pos :]]
        have = len(parts[0])
        for chunk in self._chunks:
            parts.append(chunk)
            have += len(chunk)
            if have >= n:
                break
        self._buf = b"".join(parts)
        self._pos = 0
        return have >= n

    def _skip(self, n: int) -> bool:
        """Discard ``n`` bytes without holding them in memory; False at end of input."""
        avail = len(self._buf) - self._pos
        if n <= avail:
            self._pos += n
            return True
        n -= avail
        self._buf = b""
        self._pos = 0
        for chunk in self._chunks:
            if n < len(chunk):
                self._buf = chunk
                self._pos = n
                return True
            n -= len(chunk)
        return n == 0

    # ------------------------------------------------------------------- pcap

    def _read_pcap(self, magic: bytes) -> Iterator[list[FrameSpan]]:
        order, divisor, extra = _PCAP_MAGICS[magic]
        if not self._fill(24):
            raise CaptureError(f"{self.name}: truncated pcap file header")
        _vmaj, _vmin, _zone, _sigfigs, _snaplen, network = struct.unpack_from(
            order + "HHiIII", self._buf, self._pos + 4
        )
        # The upper bits of the link-type field carry FCS information.
        linktype = network & 0xFFFF
        self._pos += 24
        self._recognised = True
        unpack = struct.Struct(order + "IIII").unpack_from
        hdr = 16 + extra
        cap_max = self.max_caplen
        buf = self._buf
        pos = self._pos
        size = len(buf)
        count = 0
        batch: list[FrameSpan] = []
        append = batch.append
        try:
            while True:
                if size - pos < hdr:
                    if batch:  # handed over before the buffer they point into is replaced
                        yield batch
                        batch = []
                        append = batch.append
                    self._buf, self._pos = buf, pos
                    if not self._fill(hdr):
                        if len(self._buf) - self._pos:
                            self._truncated(count, "record header")
                        return
                    buf, pos, size = self._buf, self._pos, len(self._buf)
                sec, frac, caplen, _origlen = unpack(buf, pos)
                if caplen > cap_max:
                    if batch:
                        yield batch
                        batch = []
                    self._buf, self._pos, self.frames = buf, pos, count
                    self._fail(f"record {count + 1} claims {caplen} captured bytes (corrupt file)")
                end = pos + hdr + caplen
                if end > size:
                    if batch:
                        yield batch
                        batch = []
                        append = batch.append
                    self._buf, self._pos = buf, pos
                    if not self._fill(hdr + caplen):
                        self._truncated(count, "record")
                        return
                    buf, pos, size = self._buf, self._pos, len(self._buf)
                    end = pos + hdr + caplen
                count += 1
                append((sec + frac / divisor, linktype, buf, pos + hdr, end))
                pos = end
        finally:
            self._buf, self._pos = buf, pos
            self.frames = count

    def _bad_ts(self, previous: float, packet: int) -> float:
        """A packet time no clock could show: keep the previous one (and say so once)."""
        if not self._bad_time:
            self._bad_time = True
            self.warnings.append(
                f"{self.name}: packet {packet} (and maybe later ones) has a timestamp "
                "outside 1970-3000; the previous packet's time is used"
            )
        return previous

    def _truncated(self, count: int, what: str) -> None:
        self.frames = count
        self.warnings.append(f"{self.name}: truncated last {what} ignored after {count} frames")

    # ----------------------------------------------------------------- pcapng

    def _read_pcapng(self) -> Iterator[Frame]:
        order = self._read_section_header(first=True)
        interfaces: list[_Interface] = []
        max_packet_block = 32 + self.max_caplen + 65536  # header, data, options
        head_unpack = struct.Struct(order + "II").unpack_from
        epb_unpack = struct.Struct(order + "7I").unpack_from
        count = 0
        last_ts = 0.0
        buf, pos = self._buf, self._pos
        size = len(buf)
        try:
            while True:
                if size - pos < 8:
                    self._buf, self._pos = buf, pos
                    if not self._fill(8):
                        if len(self._buf) - self._pos:
                            self._truncated(count, "block header")
                        return
                    buf, pos, size = self._buf, self._pos, len(self._buf)
                if size - pos >= 28:
                    # Fast path: a whole, plausible enhanced packet block in the
                    # buffer, its header and fixed fields read in one unpack.
                    btype, blen, ifid, ts_hi, ts_lo, caplen, _olen = epb_unpack(buf, pos)
                    if (
                        btype == _EPB
                        and caplen <= blen - 32
                        and pos + blen <= size
                        and blen <= max_packet_block
                        and ifid < len(interfaces)
                        and not blen & 3
                    ):
                        linktype, _snaplen, divisor, offset = interfaces[ifid]
                        ts = ((ts_hi << 32) | ts_lo) / divisor + offset
                        if not 0.0 <= ts < MAX_TIMESTAMP:
                            ts = self._bad_ts(last_ts, count + 1)
                        last_ts = ts
                        count += 1
                        yield last_ts, linktype, buf[pos + 28 : pos + 28 + caplen]
                        pos += blen
                        continue
                    # Anything else: the general path below, which says what is wrong.
                btype, blen = head_unpack(buf, pos)
                if btype == _SHB:
                    # A new section, maybe in the other byte order: its length
                    # can only be read once its byte-order magic is known.
                    self._buf, self._pos, self.frames = buf, pos, count
                    order = self._read_section_header(first=False)
                    head_unpack = struct.Struct(order + "II").unpack_from
                    epb_unpack = struct.Struct(order + "7I").unpack_from
                    interfaces = []
                    buf, pos, size = self._buf, self._pos, len(self._buf)
                    continue
                if blen < 12 or blen % 4:
                    self._buf, self._pos, self.frames = buf, pos, count
                    self._fail(f"block {btype:#x} has impossible length {blen} (corrupt file)")
                is_packet = btype in (_EPB, _SPB, _OPB)
                if blen > (max_packet_block if is_packet else MAX_OTHER_BLOCK):
                    self._buf, self._pos, self.frames = buf, pos, count
                    self._fail(f"block {btype:#x} claims {blen} bytes (corrupt file)")
                if not is_packet and btype != _IDB:
                    # Statistics, name resolution, secrets, custom blocks: not needed.
                    self._buf, self._pos, self.frames = buf, pos, count
                    if not self._skip(blen):
                        self._truncated(count, "block")
                        return
                    buf, pos, size = self._buf, self._pos, len(self._buf)
                    continue
                if size - pos < blen:
                    self._buf, self._pos = buf, pos
                    if not self._fill(blen):
                        self._truncated(count, "block")
                        return
                    buf, pos, size = self._buf, self._pos, len(self._buf)
                body_len = blen - 12
                if btype == _EPB and body_len >= 20:
                    _, _, ifid, ts_hi, ts_lo, caplen, _olen = epb_unpack(buf, pos)
                    data = pos + 28
                elif btype == _SPB and body_len >= 4:
                    # No interface id (always the first) and no timestamp: the
                    # last one seen is reused so time never jumps back to 1970.
                    ifid = 0
                    caplen = min(struct.unpack_from(order + "I", buf, pos + 8)[0], body_len - 4)
                    if interfaces and interfaces[0].snaplen:
                        caplen = min(caplen, interfaces[0].snaplen)
                    ts_hi = -1
                    data = pos + 12
                elif btype == _OPB and body_len >= 20:
                    ifid, _drops, ts_hi, ts_lo, caplen, _olen = struct.unpack_from(
                        order + "HHIIII", buf, pos + 8
                    )
                    data = pos + 28
                elif btype == _IDB:
                    self._buf, self._pos, self.frames = buf, pos, count
                    interfaces.append(self._parse_idb(order, buf, pos + 8, body_len))
                    pos += blen
                    continue
                else:
                    pos += blen
                    continue
                if ifid >= len(interfaces) or data + caplen > pos + blen - 4:
                    self._buf, self._pos, self.frames = buf, pos, count
                    self._fail(f"packet block {count + 1} is inconsistent (corrupt file)")
                iface = interfaces[ifid]
                if ts_hi >= 0:
                    ts = ((ts_hi << 32) | ts_lo) / iface.divisor + iface.offset
                    if not 0.0 <= ts < MAX_TIMESTAMP:
                        ts = self._bad_ts(last_ts, count + 1)
                    last_ts = ts
                count += 1
                yield last_ts, iface.linktype, buf[data : data + caplen]
                pos += blen
        finally:
            self._buf, self._pos = buf, pos
            self.frames = count

    def _read_section_header(self, *, first: bool) -> str:
        """Consume a section header block; return its byte order ('<' or '>')."""
        if not self._fill(12):
            if first:
                raise CaptureError(f"{self.name}: truncated pcapng section header")
            self._truncated(self.frames, "section header")
            raise _Stop
        order = _PCAPNG_BOM.get(self._buf[self._pos + 8 : self._pos + 12])
        if order is None:
            if first:
                raise CaptureError(f"{self.name}: pcapng section header has no byte-order magic")
            self._fail("pcapng section header has no byte-order magic")
        blen = struct.unpack_from(order + "I", self._buf, self._pos + 4)[0]
        if blen < 28 or blen % 4 or blen > MAX_OTHER_BLOCK:
            if first:
                raise CaptureError(f"{self.name}: pcapng section header has length {blen}")
            self._fail(f"pcapng section header has impossible length {blen}")
        self._recognised = True
        if not self._skip(blen):
            self._truncated(self.frames, "section header")
            raise _Stop
        return order

    def _parse_idb(self, order: str, buf: bytes, body: int, body_len: int) -> _Interface:
        if body_len < 8:
            self._fail("interface description block too short (corrupt file)")
        linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", buf, body)
        divisor = 1_000_000
        offset = 0
        opt = body + 8
        end = body + body_len
        unpack_opt = struct.Struct(order + "HH").unpack_from
        while opt + 4 <= end:
            code, olen = unpack_opt(buf, opt)
            if code == _OPT_END:
                break
            value = opt + 4
            if value + olen > end:
                break
            if code == _OPT_IF_TSRESOL and olen >= 1:
                # High bit clear: resolution is 10**-n seconds; set: 2**-n.
                res = buf[value]
                divisor = 2 ** (res & 0x7F) if res & 0x80 else 10**res
            elif code == _OPT_IF_TSOFFSET and olen >= 8:
                offset = struct.unpack_from(order + "q", buf, value)[0]
            opt = value + ((olen + 3) & ~3)
        return _Interface(linktype, snaplen, divisor, offset)


def first_packet_time(path: str | Path) -> float | None:
    """Timestamp of the first packet of a capture file; None if it has none or is unreadable."""
    reader = FrameReader(path)
    try:
        for batch in reader.read_batches():
            if batch:
                return batch[0][0]
    except (CaptureError, OSError):
        return None
    return None


def capture_order(
    sources: Sequence[str | Path | BinaryIO],
) -> tuple[list[str | Path | BinaryIO], str | None]:
    """Pieces of one rotated capture in the order they were written, and a note if moved.

    ``tcpdump -C`` names its pieces ``f``, ``f1``, ... ``f10``, which a shell glob
    lists as ``f f1 f10 f2``: taken in that order, frame numbers would jump
    back in time and every association spanning two pieces would break.  The
    pieces are put in the order of their first packets (a stable sort, so
    equal times keep the given order).  Standard input, file objects and
    files without a readable first packet leave the order as given.
    """
    given = list(sources)
    if len(given) < 2 or not all(isinstance(s, (str, Path)) and str(s) != "-" for s in given):
        return given, None
    times = [first_packet_time(s) for s in given]  # type: ignore[arg-type]
    if any(t is None for t in times):
        return given, None
    order = sorted(range(len(given)), key=lambda i: times[i])  # type: ignore[arg-type,return-value]
    if order == list(range(len(given))):
        return given, None
    ordered = [given[i] for i in order]
    names = ", ".join(Path(str(s)).name for s in ordered)
    return ordered, f"capture files taken in the order of their first packets: {names}"


def read_frames(source: str | Path | BinaryIO) -> Iterator[Frame]:
    """Yield ``(timestamp, linktype, frame)`` for every packet of a capture.

    ``source`` is a path, ``"-"`` for standard input, or a binary stream (which
    need not be seekable).  pcap, pcapng and gzip-compressed files of either
    are recognised by their first bytes, whatever the file name.  Raises
    ``CaptureError`` when the input is not a capture; a damaged or truncated
    tail just ends the iteration (use ``FrameReader`` to see why).
    """
    return FrameReader(source).read()
