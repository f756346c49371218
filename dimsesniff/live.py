"""Live capture: frames from network interfaces, as they arrive, into the one pipeline.

Linux only.  Each interface gets its own AF_PACKET socket, opened through
scapy's ``L2ListenSocket``: scapy compiles the BPF filter with libpcap for
that interface's link type, sets promiscuous mode, and puts back the VLAN
tags the kernel moved into ancillary data.  ``any`` means every interface
that is up when the capture starts (interfaces created later are not
followed).  Frames are handed on as raw bytes with the pcap link type of
their interface; nothing is dissected here, the pipeline decodes.

Loopback: a packet socket sees each loopback packet twice, as it leaves and
as it comes back in.  The outgoing copy is dropped, as libpcap does, so the
frame numbers are the ones tcpdump and Wireshark show for the same traffic.

Timestamps are kept to the microsecond, the resolution of the pcapng copy
(``--write-pcap``), so that copy analysed offline gives the same rows.

Kernel drops are the sockets' PACKET_STATISTICS: packets that arrived while
the socket buffer was full.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scapy.arch.linux import L2ListenSocket
from scapy.data import ARPHRD_TO_DLT
from scapy.error import Scapy_Exception

from . import __version__
from .identifiers import (
    EXPLICIT_BIG_ENDIAN,
    IMPLICIT_LITTLE_ENDIAN,
    decode_identifier,
    summarize,
    uid_name,
)
from .pipeline import Pipeline
from .redact import Redactor
from .sources import MAX_CAPLEN, CaptureError

ANY = "any"
DEFAULT_FILTER = "tcp or (vlan and tcp)"
DEFAULT_BUFFER = 32 * 1024 * 1024
SNAPLEN = MAX_CAPLEN
BATCH = 256
"""Frames read from one socket before the others (and the clock) get a turn."""

_SOL_PACKET = 263
_PACKET_STATISTICS = 6
_PACKET_OUTGOING = 4
_SO_RCVBUFFORCE = 33
_ARPHRD_LOOPBACK = 772
_IFF_UP = 0x1
_TPACKET_STATS = struct.Struct("II")  # struct tpacket_stats: packets, drops (reset on read)
_DLT_RAW_ALIASES = (12, 14)  # DLT_RAW on Linux / OpenBSD; the pcap file value is 101
_LINKTYPE_RAW = 101

_PERMISSION_HINT = (
    "capturing needs root or the CAP_NET_RAW capability: run it with sudo, or grant the "
    "capability once with: sudo setcap cap_net_raw,cap_net_admin=eip {python}"
)


class _PacketSocket(L2ListenSocket):
    """scapy's listening socket, also telling the packet type (to drop loopback echoes)."""

    def recv_frame(self) -> tuple[bytes, int, float | None]:
        frame, address, ts = self._recv_raw(self.ins, SNAPLEN)
        return frame, address[2], ts


@dataclass(slots=True, eq=False)
class Interface:
    index: int  # interface id in the pcapng copy
    name: str
    linktype: int  # pcap LINKTYPE_* value
    sock: Any
    loopback: bool
    kernel_drops: int = 0


def _sys_net(name: str, item: str) -> str:
    return Path("/sys/class/net", name, item).read_text().strip()


def up_interfaces() -> list[str]:
    """Names of the interfaces that are up, in kernel index order."""
    names = []
    for _index, name in socket.if_nameindex():
        with contextlib.suppress(OSError, ValueError):
            if int(_sys_net(name, "flags"), 16) & _IFF_UP:
                names.append(name)
    return names


def resolve_interfaces(requested: Iterable[str]) -> list[str]:
    """``-i`` values to interface names (``any`` expanded); unknown names raise ``CaptureError``."""
    known = [name for _index, name in socket.if_nameindex()]
    names: list[str] = []
    for name in requested:
        if name == ANY:
            names.extend(up_interfaces())
        elif name in known:
            names.append(name)
        else:
            raise CaptureError(
                f"no such network interface: {name!r} "
                f"(this host has: {', '.join(known)}; or use -i any)"
            )
    return list(dict.fromkeys(names))


class LiveCapture:
    """Packet sockets on ``names``, one per interface, for ``LiveSession`` to select on."""

    def __init__(
        self,
        names: Sequence[str],
        bpf: str,
        *,
        promisc: bool = True,
        buffer_bytes: int = DEFAULT_BUFFER,
        skip_unsupported: bool = False,
    ) -> None:
        self.bpf = bpf
        self.interfaces: list[Interface] = []
        self.warnings: list[str] = []
        # scapy logs (to stderr) that it has no dissector for a loopback socket; we do not
        # dissect, so its warnings are noise here.
        logging.getLogger("scapy").setLevel(logging.ERROR)
        try:
            for name in names:
                self._open(name, promisc, buffer_bytes, skip_unsupported)
        except BaseException:
            self.close()
            raise
        if not self.interfaces:
            raise CaptureError("no interface to capture on")
        self._by_fd = {iface.sock.ins.fileno(): iface for iface in self.interfaces}

    def _open(self, name: str, promisc: bool, buffer_bytes: int, skip_unsupported: bool) -> None:
        try:
            sock = _PacketSocket(iface=name, filter=self.bpf, promisc=promisc)
        except PermissionError:
            python = os.path.realpath(sys.executable)
            raise CaptureError(_PERMISSION_HINT.format(python=python)) from None
        except ImportError as exc:  # scapy cannot load libpcap to compile the filter
            raise CaptureError(f"compiling the capture filter needs libpcap: {exc}") from None
        except Scapy_Exception as exc:
            raise CaptureError(f"capture filter {self.bpf!r} on {name}: {exc}") from None
        except OSError as exc:
            raise CaptureError(f"cannot capture on {name}: {exc.strerror or exc}") from None
        hatype = sock.ins.getsockname()[3]
        linktype = ARPHRD_TO_DLT.get(hatype, -1)
        if linktype < 0:
            sock.close()
            message = f"{name}: link type (ARPHRD {hatype}) not supported; not captured"
            if skip_unsupported:
                self.warnings.append(message)
                return
            raise CaptureError(message)
        if linktype in _DLT_RAW_ALIASES:
            linktype = _LINKTYPE_RAW
        try:
            sock.ins.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, buffer_bytes)
        except OSError:  # no CAP_NET_ADMIN: the kernel caps this at net.core.rmem_max
            sock.ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
        sock.ins.setblocking(False)
        self._statistics(sock)  # counters start now, not at socket creation
        self.interfaces.append(
            Interface(len(self.interfaces), name, linktype, sock, hatype == _ARPHRD_LOOPBACK)
        )

    @property
    def fds(self) -> list[int]:
        return list(self._by_fd)

    def interface(self, fd: int) -> Interface:
        return self._by_fd[fd]

    def remove(self, iface: Interface) -> None:
        """Stop capturing on one interface (it went away)."""
        self._by_fd.pop(iface.sock.ins.fileno(), None)
        iface.sock.close()

    @staticmethod
    def _statistics(sock: Any) -> tuple[int, int]:
        """(packets, drops) since the last call: the kernel resets them on reading."""
        raw = sock.ins.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, _TPACKET_STATS.size)
        return _TPACKET_STATS.unpack(raw)

    def update_statistics(self) -> None:
        for iface in self.interfaces:
            if iface.sock.closed:
                continue
            iface.kernel_drops += self._statistics(iface.sock)[1]

    @property
    def kernel_drops(self) -> int:
        return sum(iface.kernel_drops for iface in self.interfaces)

    def describe(self) -> str:
        return ", ".join(f"{i.name} (link type {i.linktype})" for i in self.interfaces)

    def close(self) -> None:
        for iface in self.interfaces:
            with contextlib.suppress(OSError):
                iface.sock.close()


# -- the pcapng copy (--write-pcap) -------------------------------------------------------------
# pcapng, draft-ietf-opsawg-pcapng: blocks are type, total length, body, total length; every
# block and option is padded to 4 bytes.  Written little-endian, timestamps in microseconds
# (the default if_tsresol), one interface description block per captured interface.

_U32 = struct.Struct("<I")
_EPB_HEAD = struct.Struct("<7I")


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) & 3)


def _block(btype: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + _U32.pack(length)


class PcapngWriter:
    """A pcapng file holding every captured frame, readable while it is written."""

    def __init__(self, path: Path, interfaces: Sequence[tuple[str, int]]) -> None:
        self.path = path
        self._file = path.open("wb")
        shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
        shb += _option(4, f"dimsesniff {__version__}".encode()) + _option(0, b"")
        self._file.write(_block(0x0A0D0D0A, shb))
        for name, linktype in interfaces:
            idb = struct.pack("<HHI", linktype, 0, SNAPLEN)
            idb += _option(2, name.encode()) + _option(0, b"")
            self._file.write(_block(0x00000001, idb))

    def write(self, interface: int, ts_us: int, frame: bytes) -> None:
        size = len(frame)
        pad = -size & 3
        length = 32 + size + pad
        self._file.write(
            _EPB_HEAD.pack(6, length, interface, ts_us >> 32, ts_us & 0xFFFFFFFF, size, size)
            + frame
            + b"\0" * pad
            + _U32.pack(length)
        )

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


# -- the loop -----------------------------------------------------------------------------------

FrameCopy = Callable[[int, int, bytes], None]
"""``copy(interface index, timestamp in µs, frame)``, e.g. a ``PcapngWriter.write``."""


def expire_idle(pipeline: Pipeline, now: float) -> None:
    """End connections idle for longer than the pipeline's idle timeout, even with no traffic.

    ``Pipeline.feed`` only expires when a packet arrives; a quiet network needs the clock.
    """
    if pipeline.options.idle_timeout is not None:
        pipeline.expire(now)


def warm_up(redactor: Redactor) -> None:
    """Load now what the first identifier would load lazily (pydicom, the UID names).

    That costs about a second, which would otherwise hold up the first findings.
    """
    # (0008,0052) Query/Retrieve Level "STUDY", Implicit VR Little Endian (the flat reader)
    dataset = decode_identifier(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ", IMPLICIT_LITTLE_ENDIAN)
    summarize(dataset, redactor)
    # ... and Explicit VR Big Endian, which only pydicom reads.
    dataset = decode_identifier(b"\x00\x08\x00\x52CS\x00\x06STUDY ", EXPLICIT_BIG_ENDIAN)
    summarize(dataset, redactor)
    uid_name(IMPLICIT_LITTLE_ENDIAN)


class LiveSession:
    """Feed frames from a ``LiveCapture`` to a ``Pipeline`` until told to stop."""

    def __init__(
        self, capture: LiveCapture, pipeline: Pipeline, copy: FrameCopy | None = None
    ) -> None:
        self.capture = capture
        self.pipeline = pipeline
        self.copy = copy
        self.frames = 0
        self.warnings: list[str] = []

    def run(
        self,
        *,
        stopped: Callable[[], bool],
        after_batch: Callable[[], None],
        every_second: Callable[[float], None],
        wake_fd: int | None = None,
        duration: float | None = None,
        count: int | None = None,
    ) -> str:
        """Capture until ``stopped()``, ``duration`` seconds or ``count`` frames; say which.

        ``after_batch`` runs after every read (flush outputs there); ``every_second``
        gets the wall-clock time about once a second, with or without traffic.
        ``wake_fd`` (e.g. the signal wake-up pipe) is read and discarded.
        """
        capture = self.capture
        start = time.monotonic()
        deadline = start + duration if duration is not None else None
        next_tick = start + 1.0
        while True:
            if stopped():
                self.drain(time.monotonic() + 1.0)
                return "stopped"
            if count is not None and self.frames >= count:
                return "count"
            if not capture.fds:
                return "no interface left"
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self.drain(now + 1.0)
                return "duration"
            wait = next_tick - now if deadline is None else min(next_tick, deadline) - now
            watched = capture.fds if wake_fd is None else [*capture.fds, wake_fd]
            ready, _, _ = select.select(watched, [], [], max(wait, 0.0))
            for fd in ready:
                if fd == wake_fd:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_fd, 512)
                    continue
                limit = BATCH if count is None else min(BATCH, count - self.frames)
                self._read(capture.interface(fd), limit)
            after_batch()
            if time.monotonic() >= next_tick:
                wall = time.time()
                expire_idle(self.pipeline, wall)
                capture.update_statistics()
                every_second(wall)
                after_batch()
                next_tick = max(next_tick + 1.0, time.monotonic())

    def drain(self, until: float) -> None:
        """Read what the sockets already hold (a stop keeps what arrived before it)."""
        for iface in list(self.capture.interfaces):
            while not iface.sock.closed and time.monotonic() < until:
                if self._read(iface, BATCH) < BATCH:
                    break

    def _read(self, iface: Interface, limit: int) -> int:
        recv = iface.sock.recv_frame
        feed = self.pipeline.feed
        copy = self.copy
        index, linktype, loopback = iface.index, iface.linktype, iface.loopback
        n = 0
        while n < limit:
            try:
                frame, pkttype, ts = recv()
            except BlockingIOError:
                break
            except OSError as exc:  # the interface went down or away
                self.warnings.append(f"{iface.name}: {exc.strerror or exc}; capture on it ended")
                self.capture.remove(iface)
                break
            if loopback and pkttype == _PACKET_OUTGOING:
                continue
            us = round((ts or time.time()) * 1e6)
            if copy is not None:
                copy(index, us, frame)
            feed(us / 1e6, linktype, frame)
            n += 1
        self.frames += n
        return n
