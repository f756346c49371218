"""dimsesniff on the real captures in samples/ must rebuild exactly what the peers logged sending.

Each ``samples/<name>.pcap`` was captured while DCMTK / pynetdicom peers talked;
``<name>.peerlog.json`` is what those peers logged, message by message (format
in samples/README.md).  No dimsesniff code produced either, so equality here is
evidence that TCP reassembly, the upper layer, DIMSE assembly and the command
set decoder are right on real traffic.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from functools import cache

import pytest
from typer.testing import CliRunner

from dimsesniff.api import Tables, analyze
from dimsesniff.cli import app
from tests.samplecheck import peerlog, rewrite
from tests.samplecheck.peerlog import SAMPLES

NAMES = peerlog.sample_names()


@cache
def log_of(name: str) -> dict:
    return json.loads((SAMPLES / f"{name}.peerlog.json").read_text())


@cache
def tables_of(name: str) -> Tables:
    """The analysis of one sample, patient data included (to compare identifiers)."""
    return analyze(SAMPLES / log_of(name)["pcap"], include_phi=True)


def test_samples_present():
    assert len(NAMES) >= 7
    for name in NAMES:
        assert (SAMPLES / log_of(name)["pcap"]).is_file()


@pytest.mark.parametrize("name", NAMES)
def test_associations_equal_peer_log(name):
    peerlog.check_associations(log_of(name), tables_of(name))


@pytest.mark.parametrize("name", NAMES)
def test_messages_equal_peer_log(name):
    peerlog.check_messages(log_of(name), tables_of(name))


@pytest.mark.parametrize("name", NAMES)
def test_messages_complete_without_decode_findings(name):
    peerlog.check_complete(tables_of(name))


@pytest.mark.parametrize("name", NAMES)
def test_identifiers_equal_peer_log(name):
    """Every identifier decodes, and holds what the peer logged (DCMTK logs some, not all)."""
    log = log_of(name)
    compared = peerlog.check_identifiers(log, tables_of(name))
    assert compared > 0 or not any(m["dataset"] for m in log["messages"])


def test_checks_detect_a_wrong_peer_log():
    """The comparisons can fail: one changed value in the ground truth is caught."""
    tables = tables_of("dcmtk-move")
    log = copy.deepcopy(log_of("dcmtk-move"))
    b000 = next(m for m in log["messages"] if m["status"] == 0xB000)
    b000["failed"] = 1
    with pytest.raises(AssertionError, match="association 4"):
        peerlog.check_messages(log, tables)
    log = copy.deepcopy(log_of("dcmtk-move"))
    log["associations"][5]["max_pdu_acceptor"] = 16382
    with pytest.raises(AssertionError, match="association 5"):
        peerlog.check_associations(log, tables)
    log = copy.deepcopy(log_of("dcmtk-move"))
    b000 = next(m for m in log["messages"] if m["status"] == 0xB000)
    b000["dataset"]["FailedSOPInstanceUIDList"].pop()
    with pytest.raises(AssertionError, match="message 28"):
        peerlog.check_identifiers(log, tables)


def test_c_find_responses_carry_identifiers():
    """The Pending C-FIND responses of dcmtk-find-levels: 21, all decoded (README table)."""
    messages = tables_of("dcmtk-find-levels").messages
    pending = messages[(messages["command"] == "C-FIND-RSP") & (messages["status"] == "0xFF00")]
    assert len(pending) == 21
    assert list(pending["data_set_present"]) == [True] * 21
    assert all("QueryRetrieveLevel=" in (peerlog.cell(s) or "") for s in pending["identifier"])


# -- patient data in what the CLI writes -------------------------------------------------------

runner = CliRunner()
PHI_NAMES = [n for n in NAMES if peerlog.phi_values(log_of(n))]


def run_cli(name: str, out, *extra: str) -> str:
    """``dimsesniff analyze`` on a sample; returns all it wrote: every output file and stdout."""
    pcap = SAMPLES / log_of(name)["pcap"]
    args = ["analyze", str(pcap), "-o", str(out), "--fail-on", "never", "--html",
            "--conformance", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    files = sorted(p for p in out.rglob("*") if p.is_file())
    names = {f.name for f in files}
    assert {"associations.csv", "messages.csv", "violations.csv"} <= names
    return "\n".join([result.output, *(f.read_text(errors="replace") for f in files)])


def test_phi_values_known():
    """The needles are real: DOE^JOHN and his ID are among what dcmtk-find-levels sent."""
    assert {"DOE^JOHN", "DSN001", "SMITH^JANE"} <= peerlog.phi_values(log_of("dcmtk-find-levels"))
    assert len(PHI_NAMES) >= 5


@pytest.mark.parametrize("name", PHI_NAMES)
def test_cli_output_without_phi_by_default(name, tmp_path):
    written = run_cli(name, tmp_path)
    assert "phi:" in written  # patient data was there, and was tokenised
    leaked = sorted(v for v in peerlog.phi_values(log_of(name)) if v in written)
    assert leaked == []


def test_cli_output_with_phi_when_included(tmp_path):
    written = run_cli(
        "dcmtk-find-levels", tmp_path, "--include-phi", "--no-html", "--no-conformance"
    )
    assert "DOE^JOHN" in written
    missing = sorted(v for v in peerlog.phi_values(log_of("dcmtk-find-levels")) if v not in written)
    assert missing == []


# -- the same captures, rewritten at the TCP level ---------------------------------------------
#
# Real traffic, re-cut the ways networks and capture points deliver it: out of
# order, twice, overlapping, in tiny or merged segments, with a hole.  The
# rebuilt messages must not change (or, for the hole, change exactly where the
# bytes are missing).  dcmtk-move is used without its first C-MOVE (two 525 KB
# CT images), to keep this quick.

REWRITTEN = rewrite.SUBSETS
ONE_BYTE = {  # 1-byte segments: one packet per byte, so only a few associations
    "dcmtk-move": lambda a: a["index"] > 1 and a["calling_ae"] == "MOVESCU",
    "mixed-smallpdu-port": lambda a: a["calling_ae"] == "DCMFINDSCU",
}


def source(name: str, one_byte: bool = False) -> list[rewrite.Segment]:
    return rewrite.sample(name, (ONE_BYTE if one_byte else REWRITTEN)[name])


def analyse(segments: list[rewrite.Segment], path) -> Tables:
    return analyze(rewrite.write(path, segments), include_phi=True)


@cache
def baseline(name: str, one_byte: bool, directory) -> Tables:
    return analyse(source(name, one_byte), directory / f"{name}-{one_byte}-baseline.pcap")


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """``original(name, one_byte=False)``: the analysis of the unmodified source packets."""
    directory = tmp_path_factory.mktemp("baseline")
    return lambda name, one_byte=False: baseline(name, one_byte, directory)


def decoded(tables: Tables) -> dict[tuple, list[tuple]]:
    """Per connection and direction, the messages in order: fields, data set size and content."""
    out: dict[tuple, list[tuple]] = {}
    for r in tables.messages.itertuples():
        out.setdefault((r.client, r.server, r.direction), []).append(
            (
                *peerlog.decoded_message(r)[1:],
                peerlog.cell(r.data_set_bytes),
                peerlog.cell(r.identifier),
                bool(r.complete),
                peerlog.cell(r.lost_bytes),
            )
        )
    return out


def associations(tables: Tables) -> dict[tuple, tuple]:
    cols = ("calling_ae", "called_ae", "accepted_contexts", "rejected_contexts", "max_pdu_client")
    cols += ("max_pdu_server", "end_reason", "messages_client", "messages_server")
    return {
        (r.client, r.server): tuple(peerlog.cell(getattr(r, c)) for c in cols)
        for r in tables.associations.itertuples()
    }


def findings(tables: Tables) -> Counter:
    """Findings without their frames (which a rewrite renumbers)."""
    return Counter(
        tuple(
            peerlog.cell(v) for v in (r.rule, r.client, r.server, r.message_id, r.command, r.status)
        )
        for r in tables.violations.itertuples()
    )


def assert_rewrite_happened(variant: str, before: list, after: list) -> None:
    """The rewrite did what its name says (else the identity below would prove nothing)."""
    sizes = [len(s.payload) for s in after if s.payload]
    if variant == "reordered":
        moved = sum(1 for a, b in zip(before, after, strict=True) if a.frame != b.frame)
        assert moved >= 20
    elif variant == "duplicated":
        assert len(after) - len(before) >= 10
        assert len({s.frame for s in after}) == len({s.frame for s in before})
    elif variant == "overlapping":
        assert len(after) - len(before) >= 20
    elif variant == "7-byte":
        assert max(sizes) == 7 and sizes.count(7) > 0.9 * len(sizes)
    elif variant == "random-size":
        assert len(set(sizes)) > 50
    elif variant == "coalesced":
        assert len(sizes) < sum(1 for s in before if s.payload)
        assert rewrite.segments_with_pdus(after) > rewrite.segments_with_pdus(before)


@pytest.mark.parametrize("variant", list(rewrite.REWRITES))
@pytest.mark.parametrize("name", list(REWRITTEN))
def test_rewritten_capture_decodes_identically(name, variant, original, tmp_path):
    before = source(name)
    after = rewrite.REWRITES[variant](before)
    assert_rewrite_happened(variant, before, after)
    tables = analyse(after, tmp_path / f"{variant}.pcap")
    want = original(name)
    assert len(want.messages) >= 27
    assert peerlog.decode_findings(tables.violations) == []
    assert decoded(tables) == decoded(want)
    assert associations(tables) == associations(want)
    assert findings(tables) == findings(want)


@pytest.mark.parametrize("name", list(ONE_BYTE))
def test_one_byte_segments_decode_identically(name, original, tmp_path):
    before = source(name, one_byte=True)
    after = rewrite.restream(before, rewrite.fixed(1))
    assert {len(s.payload) for s in after} == {0, 1}
    tables = analyse(after, tmp_path / "1-byte.pcap")
    want = original(name, one_byte=True)
    assert len(want.messages) >= 8
    assert peerlog.decode_findings(tables.violations) == []
    assert decoded(tables) == decoded(want)
    assert associations(tables) == associations(want)


def gap_frame(before: list[rewrite.Segment], index: int) -> int:
    """The frame where dissectors/tcp_stream.py declares the hole left by dropping ``index``.

    A hole is lost once bytes after it were captured and the other side has
    acknowledged past it, whichever comes last.  ``before[i]`` (i > index) is
    frame i of the capture without ``before[index]``.
    """
    lost = before[index]
    later = range(index + 1, len(before))
    data = next(i for i in later if before[i].lane == lost.lane and before[i].payload)
    ack = next(
        i
        for i in later
        if before[i].conn == lost.conn
        and before[i].outbound != lost.outbound
        and before[i].flags & rewrite.ACK
        and 0 < (before[i].ack - lost.seq) & 0xFFFFFFFF < 1 << 31
    )
    return max(data, ack)


DROPPED = {  # (calling AE, command, which one of them, direction of the dropped segment)
    "dcmtk-move": ("DCMQRSCP", "C-STORE-RQ", 1, True),  # inside the 2nd MR image's data set
    "mixed-smallpdu-port": ("PYSCU1", "C-FIND-RSP", 2, False),  # inside a 5 KB identifier
}


@pytest.mark.parametrize("name", list(DROPPED))
def test_dropped_segment_reports_gap_and_later_messages_decode(name, original, tmp_path):
    calling, command, nth, outbound = DROPPED[name]
    before = source(name)
    want = original(name)
    rows = want.messages[
        (want.messages["calling_ae"] == calling) & (want.messages["command"] == command)
    ]
    victim = rows.iloc[nth]
    # A full data segment strictly inside the victim's frames (frame N is before[N - 1]).
    inside = [
        i
        for i in range(victim.first_frame, victim.last_frame - 1)
        if before[i].outbound == outbound
        and len(before[i].payload) > 1000
        and peerlog.port(victim.client) in rewrite.ports(before[i])
    ]
    assert len(inside) >= 2
    index = inside[len(inside) // 2]
    lost = before[index]
    after = rewrite.drop(before, index)
    tables = analyse(after, tmp_path / "dropped.pcap")

    at = gap_frame(before, index)
    gap = f"{len(lost.payload)} bytes missing from the capture"
    assert peerlog.decode_findings(tables.violations) == [("TCP-GAP", at, gap)]
    (row,) = tables.violations[tables.violations["rule"] == "TCP-GAP"].itertuples()
    assert (row.client, row.server) == (victim.client, victim.server)

    # Only the victim changed: its data set is short by the lost bytes; every message
    # after it, in both directions and on every association, is still there, unchanged.
    expected = decoded(want)
    lane = (victim.client, victim.server, victim.direction)
    position = [
        r.Index for r in want.messages.itertuples() if (r.client, r.server, r.direction) == lane
    ]
    k = position.index(victim.name)
    fields = expected[lane][k]
    expected[lane][k] = (
        *fields[:-4],
        fields[-4] - len(lost.payload),  # data_set_bytes
        None,  # the identifier of a truncated data set is not decoded
        False,
        len(lost.payload),
    )
    assert k < len(expected[lane]) - 1  # there are later messages on the same lane
    assert decoded(tables) == expected


# -- decoder bugs these rewrites found, now fixed ------------------------------------------------


def test_lost_associate_rq_reports_gap(tmp_path):
    before = rewrite.sample("dcmtk-echo")
    index = next(i for i, s in enumerate(before) if s.payload)  # the first A-ASSOCIATE-RQ
    assert before[index].payload[0] == 0x01
    tables = analyse(rewrite.drop(before, index), tmp_path / "no-rq.pcap")
    assert len(tables.messages) == 8  # every message still decodes (true today)
    found = peerlog.decode_findings(tables.violations)
    assert [rule for rule, _frame, _text in found] == ["TCP-GAP"]
    assert index < found[0][1] <= gap_frame(before, index)  # at the ACK past it, or later


def test_lost_associate_ac_reports_only_the_gap(tmp_path):
    before = rewrite.sample("dcmtk-echo")
    index = [i for i, s in enumerate(before) if s.payload][1]  # the first A-ASSOCIATE-AC
    assert before[index].payload[0] == 0x02
    tables = analyse(rewrite.drop(before, index), tmp_path / "no-ac.pcap")
    assert len(tables.messages) == 8  # every message still decodes (true today)
    found = peerlog.decode_findings(tables.violations)
    assert [rule for rule, _frame, _text in found] == ["TCP-GAP"]
    assert index < found[0][1] <= gap_frame(before, index)  # at the ACK past it, or later
