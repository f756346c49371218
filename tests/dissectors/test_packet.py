"""decode_tcp: every link type, tags, IP variants, and its never-raise contract."""

from __future__ import annotations

import random
import struct

import pytest
from scapy.all import (
    ARP,
    ICMP,
    IP,
    TCP,
    UDP,
    CookedLinux,
    CookedLinuxV2,
    Dot1AD,
    Dot1Q,
    Ether,
    IPOption_NOP,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Padding,
    raw,
)

from dissectors.packet import ACK, FIN, PSH, RST, SYN, Segment, decode_tcp

PAYLOAD = b"DICOM-bytes\x00\x01"
TCP4 = IP(src="192.0.2.1", dst="198.51.100.7") / TCP(
    sport=40001, dport=104, seq=1000, ack=2000, flags="PA"
)
TCP6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(
    sport=40001, dport=11112, seq=0xFFFFFFF0, ack=7, flags="A"
)


def eth(**fields) -> Ether:
    """Ethernet header with fixed addresses (scapy would otherwise try ARP lookups)."""
    return Ether(dst="00:00:5e:00:53:01", src="00:00:5e:00:53:02", **fields)


EXPECTED4 = Segment("192.0.2.1", "198.51.100.7", 40001, 104, 1000, 2000, PSH | ACK, PAYLOAD)
EXPECTED6 = Segment("2001:db8::1", "2001:db8::2", 40001, 11112, 0xFFFFFFF0, 7, ACK, PAYLOAD)


def test_flag_values() -> None:
    assert (FIN, SYN, RST, PSH, ACK) == (1, 2, 4, 8, 16)


def test_ethernet_ipv4() -> None:
    assert decode_tcp(1, raw(eth() / TCP4 / PAYLOAD)) == EXPECTED4


def test_memoryview_input_gives_bytes_payload() -> None:
    seg = decode_tcp(1, memoryview(raw(eth() / TCP4 / PAYLOAD)))
    assert seg == EXPECTED4
    assert type(seg.payload) is bytes


@pytest.mark.parametrize(
    "tags",
    [
        [Dot1Q(vlan=5)],
        [Dot1AD(vlan=100), Dot1Q(vlan=5)],  # QinQ 0x88a8
        [Dot1Q(vlan=1), Dot1Q(vlan=2), Dot1Q(vlan=3)],
    ],
)
def test_vlan_tags(tags: list) -> None:
    pkt = eth()
    for tag in tags:
        pkt = pkt / tag
    assert decode_tcp(1, raw(pkt / TCP4 / PAYLOAD)) == EXPECTED4


def test_old_qinq_ethertype_9100() -> None:
    frame = raw(eth(type=0x9100) / Dot1Q(vlan=7) / TCP4 / PAYLOAD)
    assert decode_tcp(1, frame) == EXPECTED4


def test_ethernet_padding_is_trimmed() -> None:
    frame = raw(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="A") / Padding(b"\0" * 6))
    seg = decode_tcp(1, frame)
    assert seg is not None and seg.payload == b""
    frame = raw(eth() / TCP4 / b"ab" / Padding(b"\xee" * 4))
    assert decode_tcp(1, frame).payload == b"ab"


def test_ipv4_options_honour_ihl() -> None:
    pkt = IP(src="192.0.2.1", dst="198.51.100.7", options=[IPOption_NOP()] * 4) / TCP4[TCP]
    assert decode_tcp(1, raw(eth() / pkt / PAYLOAD)) == EXPECTED4


def test_tcp_options_honour_data_offset() -> None:
    tcp = TCP(sport=40001, dport=104, seq=1000, ack=2000, flags="PA", options=[("MSS", 1460)])
    frame = raw(eth() / IP(src="192.0.2.1", dst="198.51.100.7") / tcp / PAYLOAD)
    assert decode_tcp(1, frame) == EXPECTED4


def test_tso_zero_total_length_uses_frame() -> None:
    frame = bytearray(raw(eth() / TCP4 / PAYLOAD))
    frame[16:18] = b"\0\0"
    assert decode_tcp(1, bytes(frame)) == EXPECTED4


def test_snaplen_cut_payload_is_kept_partially() -> None:
    frame = raw(eth() / TCP4 / PAYLOAD)
    assert decode_tcp(1, frame[:-3]).payload == PAYLOAD[:-3]


@pytest.mark.parametrize(
    ("linktype", "frame", "expected"),
    [
        (113, raw(CookedLinux(proto=0x0800) / TCP4 / PAYLOAD), EXPECTED4),
        (113, raw(CookedLinux(proto=0x86DD) / TCP6 / PAYLOAD), EXPECTED6),
        (276, raw(CookedLinuxV2(proto=0x0800) / TCP4 / PAYLOAD), EXPECTED4),
        (276, raw(CookedLinuxV2(proto=0x86DD) / TCP6 / PAYLOAD), EXPECTED6),
        (101, raw(TCP4 / PAYLOAD), EXPECTED4),
        (101, raw(TCP6 / PAYLOAD), EXPECTED6),
        (12, raw(TCP4 / PAYLOAD), EXPECTED4),
        (14, raw(TCP6 / PAYLOAD), EXPECTED6),
        (228, raw(TCP4 / PAYLOAD), EXPECTED4),
        (229, raw(TCP6 / PAYLOAD), EXPECTED6),
        (0, struct.pack("<I", 2) + raw(TCP4 / PAYLOAD), EXPECTED4),
        (0, struct.pack(">I", 2) + raw(TCP4 / PAYLOAD), EXPECTED4),
        (0, struct.pack("<I", 30) + raw(TCP6 / PAYLOAD), EXPECTED6),
        (0, struct.pack(">I", 24) + raw(TCP6 / PAYLOAD), EXPECTED6),
        (0, struct.pack("<I", 28) + raw(TCP6 / PAYLOAD), EXPECTED6),
        (108, struct.pack(">I", 2) + raw(TCP4 / PAYLOAD), EXPECTED4),
        (108, struct.pack(">I", 30) + raw(TCP6 / PAYLOAD), EXPECTED6),
        (1, raw(eth() / TCP6 / PAYLOAD), EXPECTED6),
    ],
)
def test_link_types(linktype: int, frame: bytes, expected: Segment) -> None:
    assert decode_tcp(linktype, frame) == expected


def test_unknown_link_type_and_family() -> None:
    assert decode_tcp(147, raw(TCP4 / PAYLOAD)) is None
    assert decode_tcp(0, struct.pack("<I", 7) + raw(TCP4 / PAYLOAD)) is None
    assert decode_tcp(108, struct.pack("<I", 2) + raw(TCP4 / PAYLOAD)) is None  # LOOP is BE


@pytest.mark.parametrize(
    "ext",
    [
        IPv6ExtHdrHopByHop(),
        IPv6ExtHdrRouting(),
        IPv6ExtHdrDestOpt(),
        IPv6ExtHdrFragment(offset=0, m=0),  # atomic fragment: complete
        IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(),
    ],
)
def test_ipv6_extension_headers(ext) -> None:
    pkt = IPv6(src="2001:db8::1", dst="2001:db8::2") / ext / TCP6[TCP] / PAYLOAD
    assert decode_tcp(229, raw(pkt)) == EXPECTED6


@pytest.mark.parametrize("frag", [IPv6ExtHdrFragment(offset=0, m=1), IPv6ExtHdrFragment(offset=8)])
def test_ipv6_fragments_are_not_decoded(frag) -> None:
    pkt = IPv6(src="2001:db8::1", dst="2001:db8::2") / frag / TCP6[TCP] / PAYLOAD
    assert decode_tcp(229, raw(pkt)) is None


@pytest.mark.parametrize(
    "ip", [IP(flags="MF"), IP(frag=10), IP(flags="MF", frag=3)], ids=["first", "middle", "both"]
)
def test_ipv4_fragments_are_not_decoded(ip) -> None:
    assert decode_tcp(1, raw(eth() / ip / TCP() / PAYLOAD)) is None


def test_ipv4_dont_fragment_is_fine() -> None:
    assert decode_tcp(1, raw(eth() / IP(flags="DF") / TCP() / PAYLOAD)) is not None


@pytest.mark.parametrize(
    "frame",
    [
        raw(eth() / IP() / UDP() / b"x"),
        raw(eth() / IP() / ICMP()),
        raw(eth() / ARP()),
        raw(eth() / IPv6() / UDP()),
        raw(eth(type=0x0060) / (b"\0" * 50)),  # 802.3 length field
        raw(eth() / Dot1Q() / ARP()),
    ],
)
def test_non_tcp_is_none(frame: bytes) -> None:
    assert decode_tcp(1, frame) is None


def test_bad_header_fields_are_none() -> None:
    good = bytearray(raw(eth() / TCP4 / PAYLOAD))
    for offset, value in [(14, 0x44), (14, 0x65), (14, 0x4F), (46, 0x20), (46, 0xF0)]:
        frame = bytearray(good)
        frame[offset] = value  # IP version/IHL, TCP data offset (too small / too big)
        assert decode_tcp(1, bytes(frame)) is None, (offset, value)
    frame = bytearray(good)
    frame[16:18] = struct.pack("!H", 10)  # total length below the header length
    assert decode_tcp(1, bytes(frame)) is None


def _valid_frames() -> list[tuple[int, bytes]]:
    return [
        (1, raw(eth() / TCP4 / PAYLOAD)),
        (1, raw(eth() / Dot1AD() / Dot1Q() / TCP6 / PAYLOAD)),
        (1, raw(eth() / IP(options=[IPOption_NOP()] * 8) / TCP() / PAYLOAD)),
        (113, raw(CookedLinux(proto=0x86DD) / IPv6() / IPv6ExtHdrHopByHop() / TCP())),
        (276, raw(CookedLinuxV2(proto=0x0800) / TCP4)),
        (0, struct.pack("<I", 30) + raw(TCP6)),
        (108, struct.pack(">I", 2) + raw(TCP4)),
        (101, raw(IPv6() / IPv6ExtHdrRouting() / IPv6ExtHdrFragment() / TCP())),
    ]


def test_truncations_never_raise() -> None:
    for linktype, frame in _valid_frames():
        full = decode_tcp(linktype, frame)
        assert full is not None
        for cut in range(len(frame)):
            seg = decode_tcp(linktype, frame[:cut])
            # Either rejected, or the same header with a shorter payload.
            assert seg is None or (seg[:7] == full[:7] and full.payload.startswith(seg.payload))


def test_random_garbage_never_raises() -> None:
    rnd = random.Random(20261125)
    linktypes = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 999]
    valid = _valid_frames()
    for i in range(6000):
        if i % 2:
            data = rnd.randbytes(rnd.randrange(0, 120))
        else:
            # Valid frames with random bytes flipped: reaches deeper code.
            lt, frame = valid[i % len(valid)]
            data = bytearray(frame)
            for _ in range(rnd.randrange(1, 6)):
                data[rnd.randrange(len(data))] = rnd.randrange(256)
            data = bytes(data)
        for lt in linktypes:
            seg = decode_tcp(lt, data)
            assert seg is None or isinstance(seg, Segment)
