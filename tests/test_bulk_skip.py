"""Counting C-STORE pixel data in the TCP layer changes no result.

``Options.skip_bulk`` lets a connection tell the TCP layer that the rest of a
PDV of C-STORE data will not be read (``FlowTable.grant_skip``), and
``Pipeline.feed_batch`` then takes those segments (and the bare ACKs answering
them) without copying the frame.  Every row of every table must be what the
plain path gives: frame by frame through ``Pipeline.feed`` with nothing
skipped.  Checked on every sample capture, on fuzzed captures (lost, resent,
reordered and damaged segments), and on hand-made damage inside pixel data.
"""

from __future__ import annotations

import io
import random
from collections import Counter
from pathlib import Path

import pytest

from dimsesniff.analysis import Analysis
from dimsesniff.pipeline import Options, Pipeline
from dimsesniff.redact import Redactor
from dimsesniff.sources import FrameReader
from dissectors.flow_table import FlowTable
from dissectors.packet import ACK, PSH, RST, SYN
from dissectors.stream_events import StreamData, StreamGap, StreamSkipped, TcpFinding
from fuzz import mutators
from tests.conversation import tcp_frame

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CAPTURES = sorted(SAMPLES.glob("*.pcap"))
KEY = "bulk-skip-test"


def rows(
    source: Path | bytes, *, batches: bool, skip: bool, ports: tuple[int, ...] = ()
) -> tuple[dict, Counter]:
    """All rows by table, and how the frames were taken, for one way of feeding."""
    tables: dict[str, list] = {"messages": [], "associations": [], "violations": []}
    analysis = Analysis(lambda table, row: tables[table].append(row), Redactor(key=KEY))
    pipeline = Pipeline(analysis, Options(ports=ports, skip_bulk=skip))
    taken = Counter()
    feed = pipeline.feed

    def counting_feed(ts, linktype, frame):
        taken["copied"] += 1
        return feed(ts, linktype, frame)

    pipeline.feed = counting_feed  # type: ignore[method-assign]
    reader = FrameReader(source if isinstance(source, Path) else io.BytesIO(source))
    if batches:
        for batch in reader.read_batches():
            pipeline.feed_batch(batch)
    else:
        for ts, linktype, frame in reader.read():
            pipeline.feed(ts, linktype, frame)
    pipeline.finish()
    taken["frames"] = pipeline.counters.frames
    return tables, taken


@pytest.mark.parametrize("capture", CAPTURES, ids=[c.stem for c in CAPTURES])
def test_samples_same_rows_with_and_without_skipping(capture: Path) -> None:
    fast, taken = rows(capture, batches=True, skip=True)
    plain, _ = rows(capture, batches=False, skip=False)
    assert fast == plain
    assert taken["frames"] > 0


def test_pixel_data_is_mostly_not_copied() -> None:
    """The C-STORE sample really goes the short way (else the tests above prove nothing)."""
    _tables, taken = rows(SAMPLES / "dcmtk-move.pcap", batches=True, skip=True)
    assert taken["copied"] < taken["frames"] / 2, taken


class _Kind:
    """A stand-in for ``random.Random`` that makes ``relink`` pick one link type."""

    def __init__(self, kind: int) -> None:
        self.kind = kind

    def randrange(self, *_args: int) -> int:
        return self.kind


@pytest.mark.parametrize("kind,linktype", [(0, 113), (1, 276), (2, 101)])
def test_other_link_types_same_rows_as_ethernet(kind: int, linktype: int) -> None:
    """Linux cooked headers (``tcpdump -i any``) are read in place too; raw IP is not."""
    frames = list(mutators.sample_frames("dcmtk-move"))
    relinked, got = mutators.relink(frames, _Kind(kind))  # type: ignore[arg-type]
    assert got == linktype
    ethernet, _ = rows(SAMPLES / "dcmtk-move.pcap", batches=False, skip=False)
    fast, taken = rows(mutators.pcap_bytes(relinked, linktype), batches=True, skip=True)
    assert fast == ethernet
    in_place = linktype in (113, 276)
    assert (taken["copied"] < taken["frames"] / 2) == in_place, taken


@pytest.mark.parametrize("seed", range(40))
def test_fuzzed_captures_same_rows(seed: int) -> None:
    rng = random.Random(seed)
    case = mutators.mutate_sample(rng)
    fast, _ = rows(case.pcap, batches=True, skip=True, ports=case.ports)
    plain, _ = rows(case.pcap, batches=False, skip=False, ports=case.ports)
    assert fast == plain


def _bulk_frames() -> tuple[list[tuple[float, bytes]], list[int]]:
    """dcmtk-move's frames, and the indexes of full-size segments inside C-STORE data."""
    frames = list(mutators.sample_frames("dcmtk-move"))
    middle = [
        i
        for i, (_ts, frame) in enumerate(frames)
        if len(frame) == 14 + 20 + 32 + 1448 or len(frame) == 14 + 20 + 20 + 1448
    ]
    assert len(middle) > 100, "the sample should carry images"
    return frames, middle


def _with(frames: list[tuple[float, bytes]]) -> bytes:
    return mutators.pcap_bytes(frames)


def _payload_offset(frame: bytes) -> int:
    return 14 + 20 + (frame[14 + 20 + 12] >> 4) * 4


@pytest.mark.parametrize("damage", ["resent-different", "lost", "swapped", "resent-same"])
def test_damage_inside_pixel_data(damage: str) -> None:
    frames, middle = _bulk_frames()
    i = middle[len(middle) // 2]
    ts, frame = frames[i]
    if damage == "resent-different":
        off = _payload_offset(frame)
        changed = frame[:off] + bytes(b ^ 0xFF for b in frame[off : off + 8]) + frame[off + 8 :]
        frames.insert(i + 3, (frames[i + 2][0], changed))
    elif damage == "resent-same":
        frames.insert(i + 3, (frames[i + 2][0], frame))
    elif damage == "lost":
        del frames[i]
    else:  # two back-to-back data segments of one direction arrive the other way round
        members = set(middle)
        j = next(k for k in middle[len(middle) // 2 :] if k + 1 in members)
        frames[j], frames[j + 1] = frames[j + 1], frames[j]
    data = _with(frames)
    fast, _ = rows(data, batches=True, skip=True)
    plain, _ = rows(data, batches=False, skip=False)
    assert fast == plain
    found = Counter(r["rule"] for r in fast["violations"])
    if damage == "resent-different":
        assert found["TCP-OVERLAP-CONFLICT"] == 1, found
    elif damage == "lost":
        assert found["TCP-GAP"] >= 1, found
    else:
        assert not found["TCP-OVERLAP-CONFLICT"] and not found["TCP-GAP"], found


# -- the TCP layer on its own ---------------------------------------------------------------

A, B = ("10.0.0.1", 40000), ("10.0.0.2", 104)


def _segment(seq: int, payload: bytes, src=A, dst=B, ack: int = 1, flags: int = ACK):
    from dissectors.packet import decode_tcp

    seg = decode_tcp(1, tcp_frame(src, dst, seq, ack, flags, payload))
    assert seg is not None
    return seg


def _open(table: FlowTable) -> None:
    table.handle(_segment(99, b"", flags=SYN), 1, 0.0)
    table.handle(_segment(0, b"", src=B, dst=A, ack=100, flags=SYN | ACK), 2, 0.0)


def test_skipped_bytes_are_reported_once_before_the_next_event() -> None:
    table = FlowTable()
    _open(table)
    table.grant_skip(0, True, 25)
    events = []
    for k, seq in enumerate(range(100, 130, 10)):
        events += table.handle(_segment(seq, bytes(10)), 3 + k, float(k))
    # 10 + 10 fit the budget of 25; the third segment does not: one report, then the data.
    assert [type(e) for e in events] == [StreamSkipped, StreamData]
    assert (events[0].length, events[0].frame) == (20, 4)
    assert events[1].data == bytes(10) and events[1].frame == 5
    # The budget ended with that delivery.
    assert [type(e) for e in table.handle(_segment(130, b"x"), 6, 3.0)] == [StreamData]


def test_a_hole_while_skipping_comes_after_the_skipped_bytes() -> None:
    table = FlowTable()
    _open(table)
    table.grant_skip(0, True, 1000)
    assert table.handle(_segment(100, bytes(10)), 3, 0.0) == []
    events = table.handle(_segment(120, bytes(10)), 4, 0.0)  # 10 bytes never captured
    events += table.handle(_segment(1, b"reply", src=B, dst=A, ack=130, flags=ACK | PSH), 5, 0.0)
    kinds = [type(e) for e in events if not isinstance(e, StreamData) or e.from_initiator]
    assert kinds[:3] == [StreamSkipped, StreamGap, StreamData], events
    assert not [e for e in events if isinstance(e, TcpFinding)]


def test_take_with_a_found_entry_is_handle() -> None:
    """``Pipeline.feed_batch`` finds entries by raw header fields and calls ``take``: the
    events must be those of ``handle``, holes and acknowledgments included."""
    script = [
        (_segment(100, bytes(10)), None),
        (_segment(120, b"early"), None),  # 10 bytes missing before it
        (_segment(1, b"reply", src=B, dst=A, ack=110), None),
        (_segment(6, b"", src=B, dst=A, ack=125, flags=ACK), None),  # acks past the hole
        (_segment(125, bytes(7), ack=6), None),
    ]
    by_handle, by_take = FlowTable(), FlowTable()
    for table in (by_handle, by_take):
        _open(table)
        table.grant_skip(0, True, 12)
    got_handle, got_take = [], []
    for k, (seg, _) in enumerate(script):
        got_handle += by_handle.handle(seg, 3 + k, float(k))
        entry = by_take.entry(*seg[:4])
        assert entry is not None and by_take.taking(entry)
        got_take += by_take.take(entry, seg.seq, seg.ack, seg.flags, seg.payload, 3 + k, float(k))
    assert got_take == got_handle
    assert [type(e) for e in got_take if not isinstance(e, StreamData)] == [
        StreamSkipped,
        StreamGap,
    ]


def test_an_ended_connection_is_not_taken() -> None:
    table = FlowTable()
    _open(table)
    entry = table.entry(A[0], B[0], A[1], B[1])
    assert entry is not None and table.taking(entry)
    table.handle(_segment(100, b"", flags=RST), 3, 0.0)
    assert not table.taking(entry)


def test_a_spent_budget_is_reported_at_once() -> None:
    """The skipped bytes end a PDV: the layer above must hear of it at that segment."""
    table = FlowTable()
    _open(table)
    table.grant_skip(0, True, 20)
    entry = table.entry(A[0], B[0], A[1], B[1])
    assert entry is not None
    assert table.take(entry, 100, 1, ACK, bytes(10), 3, 0.0) == []
    (settled,) = table.take(entry, 110, 1, ACK, bytes(10), 4, 0.5)
    assert isinstance(settled, StreamSkipped)
    assert (settled.length, settled.frame, settled.ts) == (20, 4, 0.5)
    # The same through handle, in the slow path.
    table.grant_skip(0, True, 5)
    events = table.handle(_segment(120, bytes(5)), 5, 1.0)
    assert [(type(e), e.length) for e in events] == [(StreamSkipped, 5)]
