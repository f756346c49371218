"""One captured frame to one TCP segment: link layer, IPv4/IPv6, TCP header.

This is the per-packet hot path (every frame of a 300 MB capture goes through
it), so it is written as flat code over the frame buffer: offsets and
``struct.unpack_from``, no object per layer, and a single unpack for the
common untagged Ethernet/IPv4/TCP frame.  It is also the first code to
touch hostile bytes, so it has one contract: it returns a ``Segment`` or
``None`` and never raises, whatever the frame holds.

What is deliberately *not* decoded (``None``):

* anything that is not TCP (ARP, UDP, ICMP, 802.3/LLC, unknown link types);
* IP fragments, the first one included: a fragmented TCP segment is rare
  enough on DICOM links that reassembling IP is not worth the memory risk,
  and half a segment would corrupt the byte stream above;
* frames whose headers are cut short by the capture's snap length.

A segment whose *payload* is cut short is still returned with the bytes that
were captured; the TCP layer sees the missing tail as a lost segment.

References: RFC 791 (IPv4), RFC 8200 (IPv6 and its extension headers),
RFC 9293 (TCP), https://www.tcpdump.org/linktypes.html (link types).
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

# TCP flags, RFC 9293 section 3.1 (ECE/CWR: RFC 3168; AE: RFC 9768).
FIN = 0x001
SYN = 0x002
RST = 0x004
PSH = 0x008
ACK = 0x010
URG = 0x020
ECE = 0x040
CWR = 0x080
AE = 0x100

# Link-layer header types (pcap LINKTYPE_* values).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# DLT_RAW is 12 on most BSDs and 14 on OpenBSD; old captures carry those values.
_RAW_LINKTYPES = frozenset({LINKTYPE_RAW, 12, 14, LINKTYPE_IPV4, LINKTYPE_IPV6})

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
# 802.1Q, 802.1ad (QinQ) and the pre-standard QinQ value; tags may be stacked.
_VLAN_ETHERTYPES = frozenset({0x8100, 0x88A8, 0x9100})

# BSD loopback "address family" values meaning IPv6 differ per OS
# (24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS); 2 is IPv4 everywhere.
_AF_INET = 2
_AF_INET6 = frozenset({24, 28, 30})

_IP_PROTO_TCP = 6
# IPv6 extension headers that may sit between the fixed header and TCP.
_IPV6_HOP_BY_HOP = 0
_IPV6_ROUTING = 43
_IPV6_FRAGMENT = 44
_IPV6_AUTH = 51
_IPV6_DEST_OPTS = 60

# IPv4, from the total-length field:
#  2..3 total length | 4..5 id (skipped) | 6..7 flags+fragment offset |
#  8 TTL (skipped) | 9 protocol | 10..11 checksum (skipped) | 12..15 src | 16..19 dst
_IPV4 = struct.Struct("!2xH2xHxB2xII")
# TCP: ports, sequence, acknowledgment, data offset + flags.
_TCP = struct.Struct("!HHIIH")
# Ethernet + option-less IPv4 + TCP up to the flags: the fast path, 54 bytes
# (also read in place by ``Pipeline.feed_span``).
ETH_IPV4_TCP = struct.Struct("!12xHBxH2xHxB2xIIHHIIH")
# The same fields (ethertype first) behind the other common link headers:
# Linux cooked capture v1 (protocol at 14, IP at 16) and v2 (protocol at 0, IP at 20).
_SLL_IPV4_TCP = struct.Struct("!14xHBxH2xHxB2xIIHHIIH")
_SLL2_IPV4_TCP = struct.Struct("!H18xBxH2xHxB2xIIHHIIH")
IPV4_TCP_IN_PLACE: dict[int, tuple[struct.Struct, int]] = {
    LINKTYPE_ETHERNET: (ETH_IPV4_TCP, 14),
    LINKTYPE_LINUX_SLL: (_SLL_IPV4_TCP, 16),
    LINKTYPE_LINUX_SLL2: (_SLL2_IPV4_TCP, 20),
}
"""Link types whose IPv4/TCP headers ``Pipeline.feed_batch`` reads in place: (layout, link
header length).  Each layout yields ``ETH_IPV4_TCP``'s fields: ethertype, version/IHL,
total length, flags/fragment offset, protocol, addresses, ports, sequence, acknowledgment,
data offset/flags (``tcpdump -i any`` writes the Linux cooked headers)."""
_U16 = struct.Struct("!H")
_U32_BE = struct.Struct(">I")
_U32_LE = struct.Struct("<I")

_IPV4_MF_OR_OFFSET = 0x3FFF  # "more fragments" bit and the 13-bit offset

# Text forms of addresses, cached: a capture has few distinct hosts and
# inet_ntop is the most expensive step per packet.  Cleared when large so a
# flood of spoofed addresses cannot grow it without bound.
_ADDR_CACHE_MAX = 65536
_v4_text: dict[int, str] = {}
_v6_text: dict[bytes, str] = {}


class Segment(NamedTuple):
    """One TCP segment as the reassembly layer needs it.

    ``payload`` is always a ``bytes`` copy, never a view into the frame
    buffer: the reassembly layer may keep it while waiting for a lost segment,
    and a view would pin the whole read chunk it came from.
    """

    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes


def decode_tcp(linktype: int, frame: bytes | memoryview) -> Segment | None:
    """Decode ``frame`` (captured with link type ``linktype``) to a TCP segment.

    Returns None for anything that is not a complete, unfragmented TCP header
    over IPv4 or IPv6.  Never raises: truncated or garbage frames give None.
    """
    if type(frame) is not bytes:
        frame = bytes(frame)  # one copy, so every slice below is an independent bytes
    try:
        if linktype == LINKTYPE_ETHERNET:
            # Fast path for the overwhelmingly common frame: untagged Ethernet,
            # IPv4 without options, TCP; every field in one unpack.
            fields = ETH_IPV4_TCP.unpack_from(frame)
            if fields[0] == ETHERTYPE_IPV4 and fields[1] == 0x45:
                (
                    _etype,
                    _vihl,
                    total,
                    frag,
                    proto,
                    src_n,
                    dst_n,
                    sport,
                    dport,
                    seq,
                    ack,
                    off_flags,
                ) = fields
                if proto != _IP_PROTO_TCP or frag & _IPV4_MF_OR_OFFSET:
                    return None
                size = len(frame)
                end = 14 + total
                if end > size or total == 0:
                    end = size  # cut by the snap length, or TSO (see _decode)
                data = 34 + ((off_flags >> 12) << 2)
                if data < 54 or data > end:
                    return None
                src = _v4_text.get(src_n) or _cache_v4(src_n)
                dst = _v4_text.get(dst_n) or _cache_v4(dst_n)
                return _new_segment(
                    Segment, (src, dst, sport, dport, seq, ack, off_flags & 0x1FF, frame[data:end])
                )
        return _decode(linktype, frame)
    except (IndexError, struct.error, ValueError):
        # A header field pointed past the end of the captured bytes.
        return None


def _decode(linktype: int, frame: bytes) -> Segment | None:
    """Every other frame shape: tags, other link types, IP options, IPv6."""
    # --- link layer: find the network-layer protocol and where it starts ---
    if linktype == LINKTYPE_ETHERNET:
        etype = (frame[12] << 8) | frame[13]
        off = 14
    elif linktype == LINKTYPE_LINUX_SLL:
        etype = (frame[14] << 8) | frame[15]
        off = 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        etype = (frame[0] << 8) | frame[1]
        off = 20
    elif linktype in _RAW_LINKTYPES:
        version = frame[0] >> 4
        etype = ETHERTYPE_IPV4 if version == 4 else ETHERTYPE_IPV6 if version == 6 else 0
        off = 0
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        # NULL stores the family in the capturing host's byte order, LOOP in
        # network order; NULL is tried both ways since the host is unknown.
        family = _U32_BE.unpack_from(frame, 0)[0]
        if linktype == LINKTYPE_NULL and family > 0xFFFF:
            family = _U32_LE.unpack_from(frame, 0)[0]
        if family == _AF_INET:
            etype = ETHERTYPE_IPV4
        elif family in _AF_INET6:
            etype = ETHERTYPE_IPV6
        else:
            return None
        off = 4
    else:
        return None
    while etype in _VLAN_ETHERTYPES:
        etype = (frame[off + 2] << 8) | frame[off + 3]
        off += 4

    # --- network layer: addresses, protocol, where TCP starts and ends ---
    size = len(frame)
    if etype == ETHERTYPE_IPV4:
        vihl = frame[off]
        ihl = (vihl & 0x0F) << 2
        if vihl >> 4 != 4 or ihl < 20:
            return None
        total, frag, proto, src_n, dst_n = _IPV4.unpack_from(frame, off)
        if proto != _IP_PROTO_TCP or frag & _IPV4_MF_OR_OFFSET:
            return None
        # Trim Ethernet padding; a zero total length is what TSO offload shows
        # on the sending host, where the frame itself is the only length.
        end = size if total == 0 else min(off + total, size)
        if total and total < ihl:
            return None
        tcp = off + ihl
        src = _v4_text.get(src_n) or _cache_v4(src_n)
        dst = _v4_text.get(dst_n) or _cache_v4(dst_n)
    elif etype == ETHERTYPE_IPV6:
        if frame[off] >> 4 != 6 or size < off + 40:
            return None
        plen = _U16.unpack_from(frame, off + 4)[0]
        nxt = frame[off + 6]
        # Zero payload length: a jumbogram or TSO; use what was captured.
        end = size if plen == 0 else min(off + 40 + plen, size)
        src = _v6(frame[off + 8 : off + 24])
        dst = _v6(frame[off + 24 : off + 40])
        tcp = off + 40
        while nxt != _IP_PROTO_TCP:
            if nxt in (_IPV6_HOP_BY_HOP, _IPV6_ROUTING, _IPV6_DEST_OPTS):
                step = (frame[tcp + 1] + 1) << 3
            elif nxt == _IPV6_FRAGMENT:
                # Only an atomic fragment (offset 0, no more fragments) is whole.
                if _U16.unpack_from(frame, tcp + 2)[0] & 0xFFF9:
                    return None
                step = 8
            elif nxt == _IPV6_AUTH:
                step = (frame[tcp + 1] + 2) << 2
            else:
                return None
            nxt = frame[tcp]
            tcp += step
    else:
        return None

    # --- TCP ---
    sport, dport, seq, ack, off_flags = _TCP.unpack_from(frame, tcp)
    data = tcp + ((off_flags >> 12) << 2)
    if data < tcp + 20 or data > end:
        return None
    return _new_segment(
        Segment, (src, dst, sport, dport, seq, ack, off_flags & 0x1FF, frame[data:end])
    )


# NamedTuple's generated __new__ is a Python-level call; building the tuple
# directly halves the cost of making a Segment on the hot path.
_new_segment = tuple.__new__


def _cache_v4(addr: int) -> str:
    if len(_v4_text) >= _ADDR_CACHE_MAX:
        _v4_text.clear()
    text = _v4_text[addr] = socket.inet_ntop(socket.AF_INET, addr.to_bytes(4, "big"))
    return text


def _v6(raw: bytes) -> str:
    text = _v6_text.get(raw)
    if text is None:
        if len(_v6_text) >= _ADDR_CACHE_MAX:
            _v6_text.clear()
        text = _v6_text[raw] = socket.inet_ntop(socket.AF_INET6, raw)
    return text
