"""PduParser: PDUs, PDV streaming, chunking invariance, resynchronisation, bounded memory."""

from __future__ import annotations

import random

import pytest

from dissectors.ul_events import (
    Abort,
    AssociateAC,
    AssociateRQ,
    DecodeFinding,
    Lost,
    PDataEnd,
    PDataTF,
    Pdv,
    ReleaseRP,
    ReleaseRQ,
)
from dissectors.ul_pdu import PLAUSIBLE_PDATA_LENGTH, PduParser
from tests import build


def feed_chunks(data: bytes, sizes) -> list:
    parser = PduParser()
    events = []
    pos, frame = 0, 0
    while pos < len(data):
        n = next(sizes)
        frame += 1
        events += parser.feed(data[pos : pos + n], frame, float(frame))
        pos += n
    events += parser.eof(frame + 1, 0.0)
    return events


def normalise(events: list) -> list:
    """Chunking-independent view: PDUs by type and fields, PDV data merged per PDV."""
    out = []
    data = b""
    for ev in events:
        if isinstance(ev, Pdv):
            data += ev.data
            if ev.end:
                out.append(("pdv", ev.context_id, ev.control, data))
                data = b""
        elif isinstance(ev, PDataTF):
            out.append(("pdata", ev.length))
        elif isinstance(ev, PDataEnd):
            out.append(("pdata-end", ev.length))
        elif isinstance(ev, DecodeFinding):
            out.append(("finding", ev.code))
        elif isinstance(ev, (AssociateRQ, AssociateAC)):
            out.append(
                (
                    type(ev).__name__,
                    ev.called_ae_title,
                    ev.calling_ae_title,
                    ev.contexts,
                    ev.user_info,
                )
            )
        else:
            out.append((type(ev).__name__,))
    return out


CONVERSATION = (
    build.associate_rq()
    + build.find_rq(7, build.command_set({0x0008_0052: "STUDY"}, group_length=False))
    + build.p_data(build.pdv(1, 0x00, b"ab"), build.pdv(1, 0x02, b"cdef"))
    + build.release_rq()
    + build.abort(2, 6)
)


def test_every_pdu_type_decodes():
    data = (
        build.associate_rq()
        + build.associate_ac()
        + build.release_rq()
        + build.release_rp()
        + build.abort(2, 1)
    )
    events = PduParser().feed(data, 1, 1.0)
    kinds = [type(e) for e in events]
    assert kinds == [AssociateRQ, AssociateAC, ReleaseRQ, ReleaseRP, Abort]
    rq = events[0]
    assert rq.called_ae_title == "SCP" and rq.calling_ae_title == "SCU"
    assert rq.contexts[0].abstract_syntax == "1.2.840.10008.5.1.4.1.2.2.1"
    assert rq.user_info.max_pdu_length == 16384
    assert events[1].contexts[0].result == 0
    assert (events[4].source, events[4].reason) == (2, 1)


@pytest.mark.parametrize("size", [1, 2, 5, 7, 13, 1448])
def test_chunking_gives_identical_events(size):
    whole = normalise(feed_chunks(CONVERSATION, iter(lambda: len(CONVERSATION), None)))
    assert normalise(feed_chunks(CONVERSATION, iter(lambda: size, None))) == whole
    assert ("pdv", 1, 0x02, b"cdef") in whole


@pytest.mark.parametrize("seed", range(5))
def test_random_chunking_gives_identical_events(seed):
    rng = random.Random(seed)
    whole = normalise(feed_chunks(CONVERSATION, iter(lambda: len(CONVERSATION), None)))
    assert normalise(feed_chunks(CONVERSATION, iter(lambda: rng.randint(1, 40), None))) == whole


def test_frames_of_a_pdu_split_across_segments():
    rq = build.associate_rq()
    parser = PduParser()
    assert parser.feed(rq[:3], 10, 1.0) == []
    assert parser.feed(rq[3:50], 11, 2.0) == []
    (event,) = parser.feed(rq[50:] + build.release_rq(), 12, 3.0)[:1]
    assert (event.first_frame, event.last_frame, event.ts) == (10, 12, 1.0)


def test_pdv_header_frame_is_first_frame_of_piece():
    data = build.p_data(build.pdv(1, 0x02, b"x" * 100))
    parser = PduParser()
    first = parser.feed(data[:12], 5, 1.0)  # DCMTK writes the 12 header bytes on their own
    rest = parser.feed(data[12:], 6, 2.0)
    assert isinstance(first[0], PDataTF) and first[0].frame == 5
    pdv, end = rest
    assert (pdv.first_frame, pdv.frame, pdv.end) == (5, 6, True)
    assert (end.length, end.first_frame, end.frame) == (len(data) - 6, 5, 6)


def test_huge_claimed_length_allocates_nothing():
    parser = PduParser()
    length = PLAUSIBLE_PDATA_LENGTH  # the longest P-DATA-TF streamed; beyond, it is garbage
    header = bytes([0x04, 0]) + length.to_bytes(4, "big") + (length - 4).to_bytes(4, "big")
    events = parser.feed(header + bytes([1, 0]) + b"abcd", 1, 0.0)
    assert isinstance(events[0], PDataTF)
    assert events[1].data == b"abcd" and not events[1].end
    assert len(parser._buf) == 0
    bogus = bytes([0x04, 0]) + (0xFFFFFFFF).to_bytes(4, "big") + (0xFFFFFFF0).to_bytes(4, "big")
    events = PduParser().feed(bogus + bytes([1, 0]) + b"abcd" + build.release_rq(), 1, 0.0)
    codes = [e.code for e in events if isinstance(e, DecodeFinding)]
    assert codes == ["UL-PDU-TOO-LONG", "UL-RESYNC"] and isinstance(events[-1], ReleaseRQ)
    big_assoc = bytes([0x01, 0]) + (0xFFFFFFF0).to_bytes(4, "big") + b"\x00\x01" + b"z" * 100
    parser = PduParser()
    events = parser.feed(big_assoc, 1, 0.0)
    assert [e.code for e in events if isinstance(e, DecodeFinding)] == ["UL-PDU-TOO-LONG"]
    assert len(parser._buf) < 64


def test_garbage_then_resync_on_next_pdu():
    parser = PduParser()
    events = parser.feed(b"GET / HTTP/1.1\r\n\r\n" + build.release_rq(), 1, 0.0)
    codes = [e.code for e in events if isinstance(e, DecodeFinding)]
    assert codes == ["UL-PDU-TYPE", "UL-RESYNC"]
    assert isinstance(events[-1], ReleaseRQ)


def test_bad_pdv_framing_is_a_finding_and_later_pdus_decode():
    bad = build.pdu(0x04, (100).to_bytes(4, "big") + bytes([1, 3]) + b"xx")
    events = PduParser().feed(bad + build.release_rp(), 1, 0.0)
    assert "UL-PDV-FRAMING" in [e.code for e in events if isinstance(e, DecodeFinding)]
    assert isinstance(events[-1], ReleaseRP)


def test_gap_inside_pdv_keeps_place():
    data = build.p_data(build.pdv(1, 0x02, b"x" * 1000)) + build.release_rq()
    parser = PduParser()
    events = parser.feed(data[:100], 1, 0.0)
    events += parser.gap(500, 2, 0.0)
    events += parser.feed(data[600:], 3, 0.0)
    lost = [e for e in events if isinstance(e, Lost)]
    assert lost[0].inside_pdv and lost[0].missing == 500
    assert isinstance(events[-1], ReleaseRQ)
    assert not [e for e in events if isinstance(e, DecodeFinding)]


def test_gap_across_headers_resyncs():
    data = build.p_data(build.pdv(1, 0x02, b"x" * 50)) + build.release_rq()
    parser = PduParser()
    events = parser.feed(data[:20], 1, 0.0)
    events += parser.gap(10_000, 2, 0.0)  # more than the PDU holds: place lost
    events += parser.feed(b"\x99" * 30 + build.release_rq(), 3, 0.0)
    assert [e for e in events if isinstance(e, Lost)][0].inside_pdv is False
    assert isinstance(events[-1], ReleaseRQ)


def test_eof_inside_pdu_is_reported():
    events = PduParser().feed(build.associate_rq()[:40], 1, 0.0)
    assert events == []
    parser = PduParser()
    parser.feed(build.associate_rq()[:40], 1, 0.0)
    assert [e.code for e in parser.eof(2, 0.0)] == ["UL-PDU-TRUNCATED"]


def test_item_length_past_parent_is_malformed_not_crash():
    rq = bytearray(build.associate_rq())
    rq[6 + 68 + 2 : 6 + 68 + 4] = (0xFFFF).to_bytes(2, "big")  # application context item length
    events = PduParser().feed(bytes(rq) + build.release_rq(), 1, 0.0)
    assert [e.code for e in events if isinstance(e, DecodeFinding)] == ["UL-ITEM-LENGTH"]
    assert isinstance(events[-1], ReleaseRQ)


def test_mid_stream_start_locks_on_pdata():
    tail = b"\x12\x34" * 300  # the end of some PDV whose start the capture missed
    data = tail + build.p_data(build.pdv(3, 0x03, b"cmd!")) + build.release_rq()
    parser = PduParser(start_in_resync=True)
    events = parser.feed(data, 1, 0.0)
    assert ("pdv", 3, 3, b"cmd!") in normalise(events)
    assert isinstance(events[-1], ReleaseRQ)
