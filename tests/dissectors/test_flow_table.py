"""FlowTable / TcpStream: reassembly, holes, overlaps, connection life cycle."""

from __future__ import annotations

import random

import pytest

from dissectors.flow_table import FLOW_CAP, FlowTable
from dissectors.packet import ACK, FIN, PSH, RST, SYN, Segment
from dissectors.stream_events import (
    StreamData,
    StreamEnd,
    StreamEvent,
    StreamGap,
    StreamOpen,
    TcpFinding,
)
from dissectors.tcp_stream import OUT_OF_WINDOW, OVERLAP_CONFLICT

CLIENT = ("10.0.0.1", 50000)
SERVER = ("10.0.0.2", 104)
M = 0xFFFFFFFF


def c2s(seq: int, data: bytes = b"", flags: int = ACK | PSH, ack: int = 0) -> Segment:
    return Segment(CLIENT[0], SERVER[0], CLIENT[1], SERVER[1], seq & M, ack & M, flags, data)


def s2c(seq: int, data: bytes = b"", flags: int = ACK | PSH, ack: int = 0) -> Segment:
    return Segment(SERVER[0], CLIENT[0], SERVER[1], CLIENT[1], seq & M, ack & M, flags, data)


class Feeder:
    """Feeds segments with increasing frame numbers and collects every event."""

    def __init__(self, table: FlowTable | None = None) -> None:
        self.table = table if table is not None else FlowTable()
        self.events: list[StreamEvent] = []
        self.frame = 0

    def __call__(self, *segments: Segment) -> list[StreamEvent]:
        new: list[StreamEvent] = []
        for seg in segments:
            self.frame += 1
            new += self.table.handle(seg, self.frame, float(self.frame))
        self.events += new
        return new

    def close(self) -> list[StreamEvent]:
        new = self.table.close_all(self.frame + 1, 1e9)
        self.events += new
        return new

    def data(self, from_initiator: bool = True, conn: int | None = None) -> bytes:
        return b"".join(
            e.data
            for e in self.events
            if isinstance(e, StreamData)
            and e.from_initiator == from_initiator
            and (conn is None or e.conn == conn)
        )

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def handshake(feed: Feeder, isn_c: int = 1000, isn_s: int = 5000) -> None:
    feed(
        c2s(isn_c, flags=SYN),
        s2c(isn_s, flags=SYN | ACK, ack=isn_c + 1),
        c2s(isn_c + 1, flags=ACK, ack=isn_s + 1),
    )


# ------------------------------------------------------------ basic order


def test_in_order_with_handshake() -> None:
    feed = Feeder()
    handshake(feed)
    (opened,) = feed.of(StreamOpen)
    assert opened.initiator == CLIENT and opened.responder == SERVER and opened.syn_seen
    assert opened.frame == 1
    events = feed(c2s(1001, b"hello "), c2s(1007, b"world"), s2c(5001, b"ok", ack=1012))
    assert [type(e) for e in events] == [StreamData] * 3
    assert [e.frame for e in events] == [4, 5, 6]
    assert feed.data(True) == b"hello world" and feed.data(False) == b"ok"


def test_reversed_order() -> None:
    feed = Feeder()
    handshake(feed)
    chunks = [bytes([65 + i]) * 10 for i in range(5)]
    segs = [c2s(1001 + 10 * i, chunk) for i, chunk in enumerate(chunks)]
    assert feed(*reversed(segs[1:])) == []  # all waiting behind the hole
    events = feed(segs[0])
    assert [e.data for e in events] == chunks
    # Released data keeps the frame and time of the segment that carried it.
    assert [e.frame for e in events] == [8, 7, 6, 5, 4]
    assert not feed.of(StreamGap)


def test_duplicate_retransmissions_are_dropped() -> None:
    feed = Feeder()
    handshake(feed)
    feed(c2s(1001, b"abcdef"), c2s(1001, b"abcdef"), c2s(1004, b"def"), c2s(1007, b"gh"))
    assert feed.data() == b"abcdefgh"
    assert not feed.of(TcpFinding)


def test_partial_overlap_is_trimmed() -> None:
    feed = Feeder()
    handshake(feed)
    feed(c2s(1001, b"abcdef"), c2s(1004, b"defghij"))
    assert feed.data() == b"abcdefghij"
    # Overlap with buffered data too: keep the uncovered parts only.
    feed(c2s(1016, b"pqr"), c2s(1012, b"lmnopqrstu"), c2s(1011, b"k"))
    assert feed.data() == b"abcdefghijklmnopqrstu"
    assert not feed.of(TcpFinding)


def test_conflicting_overlap_with_delivered_data() -> None:
    feed = Feeder()
    handshake(feed)
    feed(c2s(1001, b"abcdef"), c2s(1003, b"XY"))
    (finding,) = feed.of(TcpFinding)
    assert finding.code == OVERLAP_CONFLICT and finding.conn == 0 and finding.frame == 5
    assert "stream offsets 2-3 differ from the copy already delivered" in finding.detail
    assert feed.data() == b"abcdef"  # first copy kept


def test_conflicting_overlap_with_buffered_data() -> None:
    feed = Feeder()
    handshake(feed)
    feed(c2s(1005, b"efgh"), c2s(1001, b"abcdEFgh!"))
    (finding,) = feed.of(TcpFinding)
    assert finding.code == OVERLAP_CONFLICT and "buffered" in finding.detail
    assert feed.data() == b"abcdefgh!"


def test_sequence_wrap_around() -> None:
    feed = Feeder()
    isn = 0xFFFFFFF8
    handshake(feed, isn_c=isn)
    parts = [b"0123", b"4567", b"89ab", b"cdef"]
    seqs = [isn + 1 + 4 * i for i in range(4)]  # crosses 2**32 in the middle
    feed(c2s(seqs[0], parts[0]), c2s(seqs[2], parts[2]), c2s(seqs[3], parts[3]))
    feed(c2s(seqs[1], parts[1]), c2s(seqs[2], parts[2]))  # fill, then a retransmit
    assert feed.data() == b"".join(parts)
    assert not feed.of(StreamGap) and not feed.of(TcpFinding)


def test_mid_stream_without_syn() -> None:
    feed = Feeder()
    feed(s2c(777, flags=ACK, ack=1))  # a pure ACK of an unknown connection: nothing
    assert feed.events == []
    feed(s2c(777, b"server first"), c2s(4242, b"client"), s2c(789, b"!"))
    (opened,) = feed.of(StreamOpen)
    assert opened.initiator == SERVER and not opened.syn_seen
    assert feed.data(True) == b"server first!" and feed.data(False) == b"client"


def test_syn_ack_without_syn_still_finds_initiator() -> None:
    feed = Feeder()
    feed(s2c(5000, flags=SYN | ACK, ack=1001), c2s(1001, b"req"), s2c(5001, b"rsp"))
    (opened,) = feed.of(StreamOpen)
    assert opened.initiator == CLIENT and opened.syn_seen
    assert feed.data(True) == b"req" and feed.data(False) == b"rsp"


def test_syn_payload_counts() -> None:
    feed = Feeder()
    feed(c2s(1000, b"fast-open", flags=SYN), c2s(1010, b"+more"))
    assert feed.data() == b"fast-open+more"


# ------------------------------------------------------------------ holes


def test_lost_segment_acked_by_peer_becomes_a_gap() -> None:
    feed = Feeder()
    handshake(feed)
    feed(c2s(1001, b"aaaa"), c2s(1009, b"cccc"))  # b"bbbb" at 1005 never captured
    assert feed.data() == b"aaaa"
    events = feed(s2c(5001, flags=ACK, ack=1013))  # the server had it all
    assert [type(e) for e in events] == [StreamGap, StreamData]
    assert events[0].missing == 4 and events[0].from_initiator and events[0].frame == 6
    assert events[1].data == b"cccc"
    feed(c2s(1013, b"dddd"))
    assert feed.data() == b"aaaaccccdddd"


def test_ack_seen_before_data_after_the_hole() -> None:
    feed = Feeder()
    handshake(feed)
    feed(c2s(1001, b"aaaa"), s2c(5001, flags=ACK, ack=1009))
    assert not feed.of(StreamGap)  # nothing buffered yet: the data may still come
    events = feed(c2s(1009, b"cccc"))
    assert [type(e) for e in events] == [StreamGap, StreamData]


def test_buffer_cap_forces_a_gap() -> None:
    feed = Feeder(FlowTable(max_buffered_per_direction=1000))
    handshake(feed)
    feed(c2s(1001, b"a" * 10))
    events = feed(*(c2s(1111 + 300 * i, bytes([66 + i]) * 300) for i in range(4)))
    gaps = [e for e in events if isinstance(e, StreamGap)]
    assert len(gaps) == 1 and gaps[0].missing == 100
    assert feed.data() == b"a" * 10 + b"".join(bytes([66 + i]) * 300 for i in range(4))
    feed(c2s(1011, b"late" * 25))  # the hole's bytes arrive too late: dropped
    assert feed.data().endswith(b"E" * 300)


def test_close_all_flushes_buffered_data_after_gaps() -> None:
    feed = Feeder()
    handshake(feed)
    feed(c2s(1001, b"aa"), c2s(1005, b"cc"), c2s(1010, b"e"))
    events = feed.close()
    assert [type(e) for e in events] == [StreamGap, StreamData, StreamGap, StreamData, StreamEnd]
    assert [e.missing for e in events if isinstance(e, StreamGap)] == [2, 3]
    assert events[-1].reason == "capture-end"
    assert feed.data() == b"aacce"
    assert feed.table.open_connections == 0


# -------------------------------------------------------------- life cycle


def test_fin_both_ways_ends_once() -> None:
    feed = Feeder()
    handshake(feed)
    feed(c2s(1001, b"bye", flags=FIN | ACK | PSH, ack=5001))
    assert not feed.of(StreamEnd)
    feed(s2c(5001, b"ok", flags=FIN | ACK, ack=1005))
    (end,) = feed.of(StreamEnd)
    assert end.reason == "fin" and end.frame == 5
    assert feed(c2s(1005, flags=ACK, ack=5004)) == []  # last ACK: no ghost connection
    assert feed.close() == []
    assert feed.data() == b"bye" and feed.data(False) == b"ok"


def test_fin_before_missing_data_waits_then_gap_on_ack() -> None:
    feed = Feeder()
    handshake(feed)
    feed(c2s(1001, b"aa"), c2s(1005, b"cc", flags=FIN | ACK))  # 1003-1004 missing
    feed(s2c(5001, flags=FIN | ACK, ack=1001))
    assert not feed.of(StreamEnd)  # client side still has a hole before its FIN
    events = feed(s2c(5002, flags=ACK, ack=1008))  # server got everything and the FIN
    assert [type(e) for e in events] == [StreamGap, StreamData, StreamEnd]
    assert events[-1].reason == "fin"


def test_lost_segment_just_before_fin() -> None:
    feed = Feeder()
    handshake(feed)
    feed(c2s(1001, b"aa"), c2s(1005, flags=FIN | ACK))  # 1003-1004 lost, nothing buffered
    feed(s2c(5001, flags=FIN | ACK, ack=1003))
    assert not feed.of(StreamEnd)
    events = feed(s2c(5002, flags=ACK, ack=1006))
    assert [type(e) for e in events] == [StreamGap, StreamEnd]
    assert events[0].missing == 2 and events[1].reason == "fin"


def test_rst_ends_and_flushes() -> None:
    feed = Feeder()
    handshake(feed)
    feed(c2s(1001, b"aa"), c2s(1010, b"zz"))
    events = feed(s2c(5001, flags=RST | ACK))
    assert [type(e) for e in events] == [StreamGap, StreamData, StreamEnd]
    assert events[-1].reason == "rst"
    assert feed(c2s(1012, flags=ACK)) == []


def test_data_after_close_starts_a_mid_stream_connection() -> None:
    feed = Feeder()
    handshake(feed)
    feed(s2c(5001, flags=RST))
    feed(c2s(1001, b"late data"))
    opens = feed.of(StreamOpen)
    assert [o.conn for o in opens] == [0, 1] and not opens[1].syn_seen


def test_port_reuse_new_syn_is_a_new_connection() -> None:
    feed = Feeder()
    handshake(feed)
    feed(c2s(1001, b"first"))
    feed(c2s(1000, flags=SYN))  # retransmitted SYN, same ISN: same connection
    assert len(feed.of(StreamOpen)) == 1
    handshake(feed, isn_c=90000, isn_s=70000)
    feed(c2s(90001, b"second"))
    opens = feed.of(StreamOpen)
    ends = feed.of(StreamEnd)
    assert [o.conn for o in opens] == [0, 1]
    assert [(e.conn, e.reason) for e in ends] == [(0, "reused")]
    assert feed.data(conn=0) == b"first" and feed.data(conn=1) == b"second"


def test_syn_after_fin_is_a_new_connection() -> None:
    feed = Feeder()
    handshake(feed)
    feed(c2s(1001, flags=FIN | ACK), s2c(5001, flags=FIN | ACK, ack=1002))
    handshake(feed, isn_c=1000, isn_s=5000)  # even the same ISN: the old one ended
    assert [o.conn for o in feed.of(StreamOpen)] == [0, 1]
    assert [e.reason for e in feed.of(StreamEnd)] == ["fin"]


def test_ignore_drops_data_but_reports_the_end() -> None:
    feed = Feeder()
    handshake(feed)
    feed(c2s(1001, b"a"), c2s(1010, b"buffered"))
    feed.table.ignore(0)
    assert feed(c2s(1002, b"b" * 8), s2c(5001, b"x", ack=1018)) == []
    feed(c2s(1018, flags=FIN | ACK))
    events = feed(s2c(5002, flags=FIN | ACK))
    assert [type(e) for e in events] == [StreamEnd]
    assert feed.data() == b"a"


def test_ignore_then_rst_and_unknown_ids() -> None:
    feed = Feeder()
    handshake(feed)
    feed.table.ignore(0)
    feed.table.ignore(12345)  # unknown: harmless
    assert [e.reason for e in feed(c2s(1001, flags=RST))] == ["rst"]


def test_expire_idle_connections() -> None:
    table = FlowTable(idle_timeout=10.0)
    a = table.handle(c2s(1, b"a"), 1, 100.0)
    table.handle(s2c(1, b"b"), 2, 100.0)
    table.handle(Segment("10.9.9.9", SERVER[0], 1, 104, 1, 0, ACK, b"c"), 3, 105.0)
    assert isinstance(a[0], StreamOpen)
    assert table.expire(109.0) == []
    events = table.expire(112.0)
    assert [(type(e), e.conn) for e in events] == [(StreamEnd, 0)]
    assert events[0].reason == "idle" and events[0].frame == 3 and events[0].ts == 112.0
    assert [e.conn for e in table.expire(200.0, frame=9)] == [1]
    assert FlowTable().expire(1e12) == []  # no timeout: never


def test_flow_cap_evicts_least_recently_used() -> None:
    table = FlowTable(max_flows=2)
    for port in (1, 2):
        table.handle(Segment("10.0.0.1", "10.0.0.2", port, 104, 1, 0, ACK, b"x"), port, 0.0)
    table.handle(Segment("10.0.0.1", "10.0.0.2", 1, 104, 2, 0, ACK, b"y"), 3, 0.0)  # touch 1
    events = table.handle(Segment("10.0.0.1", "10.0.0.2", 3, 104, 1, 0, ACK, b"z"), 4, 0.0)
    assert [type(e) for e in events] == [TcpFinding, StreamEnd, StreamOpen, StreamData]
    assert events[0].code == FLOW_CAP and events[0].conn == 1
    assert events[1].reason == "evicted" and events[1].conn == 1
    assert table.open_connections == 2


def test_far_out_of_window_segment_is_ignored_with_one_finding() -> None:
    feed = Feeder()
    handshake(feed)
    feed(c2s(1001 + (1 << 31) - 5, b"junk"), c2s(1001 + (1 << 30) + 9, b"junk"))
    feed(c2s(1001, b"real"))
    (finding,) = feed.of(TcpFinding)
    assert finding.code == OUT_OF_WINDOW
    assert feed.data() == b"real" and not feed.of(StreamGap)


def test_max_flows_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FlowTable(max_flows=0)


# ---------------------------------------------------------------- property


@pytest.mark.parametrize("seed", range(12))
def test_shuffled_duplicated_segments_rebuild_the_stream(seed: int) -> None:
    rnd = random.Random(seed)
    stream = rnd.randbytes(rnd.randrange(20_000, 60_000))
    isn = rnd.choice([rnd.getrandbits(32), 0xFFFFFFFF - rnd.randrange(30_000)])
    # Cut at random points; resend some ranges with different boundaries.
    cuts = sorted(rnd.sample(range(1, len(stream)), rnd.randrange(5, 80)))
    bounds = list(zip([0, *cuts], [*cuts, len(stream)], strict=True))
    for _ in range(rnd.randrange(0, 15)):
        a = rnd.randrange(len(stream))
        bounds.append((a, min(len(stream), a + rnd.randrange(1, 3000))))
    # Local reordering, as a capture near either end shows it.
    rnd.shuffle(bounds)
    bounds.sort(key=lambda ab: ab[0] + rnd.randrange(0, 8000))
    table = FlowTable()
    events: list[StreamEvent] = []
    frame = 0

    def feed(seg: Segment) -> None:
        nonlocal frame
        frame += 1
        events.extend(table.handle(seg, frame, float(frame)))

    feed(c2s(isn, flags=SYN))
    feed(s2c(99, flags=SYN | ACK, ack=isn + 1))
    received = bytearray(len(stream))
    have = [False] * len(stream)
    contiguous = 0
    for a, b in bounds:
        feed(c2s(isn + 1 + a, stream[a:b]))
        received[a:b] = stream[a:b]
        for i in range(a, b):
            have[i] = True
        while contiguous < len(stream) and have[contiguous]:
            contiguous += 1
        if rnd.random() < 0.3:  # the receiver's cumulative ACK
            feed(s2c(100, flags=ACK, ack=isn + 1 + contiguous))
    feed(c2s(isn + 1 + len(stream), flags=FIN | ACK))
    feed(s2c(100, flags=FIN | ACK, ack=isn + 2 + len(stream)))
    data = b"".join(e.data for e in events if isinstance(e, StreamData))
    assert data == stream
    assert not [e for e in events if isinstance(e, StreamGap | TcpFinding)]
    assert [e.reason for e in events if isinstance(e, StreamEnd)] == ["fin"]


@pytest.mark.parametrize("seed", range(6))
def test_random_loss_delivers_everything_captured(seed: int) -> None:
    """Lost segments become gaps whose sizes add up; no captured byte is lost."""
    rnd = random.Random(1000 + seed)
    stream = rnd.randbytes(30_000)
    isn = rnd.getrandbits(32)
    cuts = sorted(rnd.sample(range(1, len(stream)), 40))
    bounds = list(zip([0, *cuts], [*cuts, len(stream)], strict=True))
    kept = [ab for ab in bounds if rnd.random() > 0.15]
    rnd.shuffle(kept)
    feed = Feeder()
    feed(c2s(isn, flags=SYN))
    for a, b in kept:
        feed(c2s(isn + 1 + a, stream[a:b]))
    feed.close()
    got = feed.data()
    assert got == b"".join(stream[a:b] for a, b in sorted(kept))
    expected_missing = len(stream) - sum(b - a for a, b in kept)
    # The tail after the last captured segment is unknown without an ACK.
    last_end = max(b for _, b in kept)
    missing = sum(e.missing for e in feed.of(StreamGap))
    assert missing == expected_missing - (len(stream) - last_end)


# --------------------------------------------------------- hostile shapes


def test_segment_spanning_many_buffered_pieces() -> None:
    feed = Feeder()
    handshake(feed)
    stream = bytes(range(256)) * 4
    feed(*(c2s(1001 + i, stream[i : i + 1]) for i in range(1, len(stream), 2)))
    feed(c2s(1001, stream))
    assert feed.data() == stream
    assert not feed.of(StreamGap) and not feed.of(TcpFinding)


def test_retransmission_spanning_delivered_segments_is_compared() -> None:
    feed = Feeder()
    handshake(feed)
    feed(*(c2s(1001 + 10 * i, bytes([97 + i]) * 10) for i in range(5)))
    feed(c2s(1006, b"a" * 5 + b"b" * 10 + b"c" * 10))  # identical: silent
    assert not feed.of(TcpFinding)
    feed(c2s(1006, b"a" * 5 + b"b" * 9 + b"?" + b"c" * 10))
    (finding,) = feed.of(TcpFinding)
    assert "stream offsets 10-19 differ" in finding.detail


def test_tiny_out_of_order_pieces_stay_bounded() -> None:
    table = FlowTable(max_buffered_per_direction=1 << 20)
    feed = Feeder(table)
    handshake(feed)
    stream_seg = table._flows[(CLIENT[0], SERVER[0], CLIENT[1], SERVER[1])][1]
    for i in range(40_000):
        feed(c2s(1003 + 2 * i, b"x"))  # a hole before every byte
        assert len(stream_seg._starts) <= stream_seg.max_pieces
    gaps = feed.of(StreamGap)
    assert gaps and all(g.missing in (1, 2) for g in gaps)
    feed.close()
    assert feed.data() == b"x" * 40_000
