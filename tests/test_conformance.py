"""The observed conformance statement: PS3.2 Tables N.7-48..N.7-51 filled from the wire.

Checked against what the peers themselves logged (``samples/*.peerlog.json``)
and against the peer behaviour described in ``samples/README.md``.
"""

from __future__ import annotations

import json
import re
import struct
from collections import Counter
from pathlib import Path

import pytest

from dimsesniff.api import run
from dimsesniff.conformance import (
    FIND_SCP,
    FIND_SCU,
    MOVE_SCP,
    MOVE_SCU,
    FilledRow,
    ObservedConformance,
    md_escape,
)
from tests import build, outputs
from tests.conversation import Conversation
from tests.outputs import SAMPLES_DIR

PEER_SAMPLES = sorted(
    p.name.removesuffix(".peerlog.json") for p in SAMPLES_DIR.glob("*.peerlog.json")
)


def observe(*captures: Path) -> ObservedConformance:
    conf = ObservedConformance()
    run(list(captures), conf.write)
    return conf


def filled(conf: ObservedConformance, role: str, ae: str, number: str) -> dict[str, FilledRow]:
    """Rows of one device's table by Status Code label."""
    for section in conf.statement():
        device = section.device
        if device.role == role and device.ae == ae:
            for table in section.tables:
                if table.table.number == number:
                    return {row.label: row for row in table.rows}
    raise AssertionError(f"no table {number} for {role} {ae}")


def joined(lines: list[str]) -> str:
    return " | ".join(lines)


def test_tables_follow_the_seed():
    assert [r.label for r in FIND_SCU.rows] == [
        "0000", "A700", "A900", "C000-CFFF", "0122", "FE00", "FF00", "FF01"
    ]  # fmt: skip
    assert [r.label for r in FIND_SCP.rows][3] == "C000"  # N.7-50 lists C000 alone
    assert [r.label for r in MOVE_SCU.rows] == [
        "0000", "B000", "A701", "A702", "A801", "A900", "Cxxx", "FE00", "FF00"
    ]  # fmt: skip
    related = {r.label: r.related for r in MOVE_SCP.rows}
    assert related["B000"] == ("(0000,1020)", "(0000,1022)", "(0000,1023)")
    assert related["A801"] == ("(0000,0902)",)
    assert MOVE_SCP.number == "N.7-51" and FIND_SCP.number == "N.7-50"


@pytest.mark.parametrize("sample", PEER_SAMPLES)
def test_scp_final_statuses_match_the_peer_logs(sample):
    """Every final C-FIND/C-MOVE status the peers logged is counted once, at its SCP."""
    truth = json.loads((SAMPLES_DIR / f"{sample}.peerlog.json").read_text())
    expected = Counter(
        (r["command"].removesuffix("-RSP"), r["status_hex"].upper())
        for r in truth["summary"]["final_responses"]
        if r["command"] in ("C-FIND-RSP", "C-MOVE-RSP")
    )
    conf = observe(SAMPLES_DIR / f"{sample}.pcap")
    seen: Counter = Counter()
    for device in conf.scps.values():
        for service, codes in device.codes.items():
            for code, stat in codes.items():
                if code not in (0xFF00, 0xFF01):
                    seen[(service, f"{code:04X}")] += stat.count
    assert seen == expected


def test_dcmtk_move_scp_table():
    conf = observe(SAMPLES_DIR / "dcmtk-move.pcap")
    rows = filled(conf, "SCP", "DCMQRSCP", "N.7-51")
    assert rows["A801"].count == 1
    assert "Move Destination was NOWHERE" in joined(rows["A801"].conditions)
    # dcmqrscp's A801 carries counts and no Error Comment (samples/README.md).
    assert "without (0000,0902)" in joined(rows["A801"].observed_related)
    assert "plus (0000,1021) (0000,1022) (0000,1023)" in joined(rows["A801"].observed_related)
    b000 = joined(rows["B000"].actions)
    assert "completed 2, failed 2, warning 0" in b000
    assert "2 C-STORE-RQ sent to MRONLY" in b000 and "Failed SOP Instance UID List sent" in b000
    assert "association to MRONLY opened, no C-STORE sent" in joined(rows["A702"].actions)
    assert rows["0000"].count == 2 and rows["FF00"].count == 11
    assert rows["A701"].seen == "not seen" and rows["A701"].count == 0
    assert rows["A801"].frames == [1464]
    scu = filled(conf, "SCU", "MOVESCU", "N.7-49")
    assert "released the association ×1" in joined(scu["A801"].conditions)
    assert "waited for the next response ×11" in joined(scu["FF00"].conditions)
    assert scu["anything else"].seen == "not seen"


def test_pynetdicom_move_has_no_counts_in_a801_and_failed_stores():
    conf = observe(SAMPLES_DIR / "pynetdicom-move.pcap")
    rows = filled(conf, "SCP", "PYQRSCP", "N.7-51")
    assert joined(rows["A801"].observed_related).startswith("none (without (0000,0902))")
    assert "Move Destination was UNKNOWNAE" in joined(rows["A801"].conditions)
    assert "4 C-STORE-RQ sent to PYPARTIAL (Failure 2, Success 2)" in joined(rows["B000"].actions)
    scu = filled(conf, "SCU", "PYMOVESCU", "N.7-49")
    assert "sent the next request (C-MOVE-RQ)" in joined(scu["A801"].conditions)


def test_find_cancel_behaviour():
    conf = observe(SAMPLES_DIR / "pynetdicom-find-cancel.pcap")
    scu = filled(conf, "SCU", "PYFINDSCU", "N.7-48")
    assert "sent C-CANCEL-RQ ×2" in joined(scu["FF00"].conditions)
    assert scu["FE00"].count == 2
    scp = filled(conf, "SCP", "PYQRSCP", "N.7-50")
    assert joined(scp["FE00"].conditions).count("after a C-CANCEL-RQ") == 2
    assert "Identifier" in joined(scp["FF00"].observed_related)
    conf = observe(SAMPLES_DIR / "dcmtk-find-pynetdicom-scp.pcap")
    scu = filled(conf, "SCU", "FINDSCU", "N.7-48")
    assert "sent C-CANCEL-RQ ×1" in joined(scu["FF00"].conditions)
    scp = filled(conf, "SCP", "PYQRSLOW", "N.7-50")
    assert "after a C-CANCEL-RQ ×1" in joined(scp["FE00"].conditions)


def test_planted_retry_other_code_and_error_comment():
    conf = ObservedConformance()
    run([outputs.conversation_pcap()], conf.write)
    scp = filled(conf, "SCP", "QRSCP", "N.7-50")
    assert scp["C001"].meaning == "Other Status Codes" and scp["C001"].count == 1
    assert f'Error Comment "{outputs.FORMULA}"' in joined(scp["C001"].conditions)
    assert "no match" in joined(scp["0000"].conditions)
    scu = filled(conf, "SCU", outputs.SCRIPT_AE, "N.7-48")
    assert scu["C000-CFFF"].seen == "C001 ×1"
    assert "same query retried on the same association ×1" in joined(scu["C000-CFFF"].conditions)
    assert "released the association ×1" in joined(scu["0000"].conditions)


def _pcap(*conversations: Conversation) -> bytes:
    frames = sorted(f for conv in conversations for f in conv.frames)
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    for ts, _lt, frame in frames:
        sec = int(ts)
        out += struct.pack("<IIII", sec, round((ts - sec) * 1e6), len(frame), len(frame)) + frame
    return out


def test_abort_retry_on_new_association_and_cancel_without_request(tmp_path):
    first = Conversation(client=("10.0.0.5", 40001), server=("10.0.0.9", 104))
    first.client_sends(build.associate_rq(called="ARCHIVE", calling="RETRYSCU"))
    first.server_sends(build.associate_ac(called="ARCHIVE", calling="RETRYSCU"))
    first.client_sends(build.find_rq(1, outputs.identifier()))
    first.server_sends(outputs.find_rsp(1, 0xA700))
    first.client_sends(build.abort())
    first.close()
    second = Conversation(client=("10.0.0.5", 40002), server=("10.0.0.9", 104))
    second.client_sends(build.associate_rq(called="ARCHIVE", calling="RETRYSCU"))
    second.server_sends(build.associate_ac(called="ARCHIVE", calling="RETRYSCU"))
    second.client_sends(build.find_rq(1, outputs.identifier()))
    second.server_sends(outputs.find_rsp(1, 0xFE00))  # Cancel without a C-CANCEL-RQ
    second.client_sends(build.release_rq())
    second.server_sends(build.release_rp())
    second.close()
    later = first.ts + 5.0 - second.frames[0][0]
    second.frames = [(ts + later, lt, frame) for ts, lt, frame in second.frames]
    capture = tmp_path / "retry.pcap"
    capture.write_bytes(_pcap(first, second))
    conf = observe(capture)
    scu = filled(conf, "SCU", "RETRYSCU", "N.7-48")
    behaviour = joined(scu["A700"].conditions)
    assert "aborted the association (A-ABORT) ×1" in behaviour
    assert re.search(r"same query retried on a new association ×1 \(after 5\.\d+ s\)", behaviour)
    scp = filled(conf, "SCP", "ARCHIVE", "N.7-50")
    assert "without a C-CANCEL-RQ seen" in joined(scp["FE00"].conditions)
    assert conf.scps[("ARCHIVE", "10.0.0.9:104")].associations == {1, 2}
    assert list(conf.scus) == [("RETRYSCU", "10.0.0.5")]  # one SCU, whatever its ports


def test_markdown_is_escaped_and_well_formed(tmp_path):
    assert md_escape("a|b<c>*d_[e]`") == r"a\|b&lt;c&gt;\*d\_\[e\]\`"
    conf = ObservedConformance()
    run([outputs.conversation_pcap()], conf.write)
    markdown = conf.markdown(["planted.pcap"])
    assert "<script" not in markdown
    assert "## SCU &lt;script&gt;alert(1) at 10.0.0.1" in markdown
    assert "### Table N.7-50." in markdown and "### Table N.7-48." in markdown
    header_cells = None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            header_cells = None
            continue
        cells = len(re.split(r"(?<!\\)\|", line)) - 2
        if header_cells is None:
            header_cells = cells
        assert cells == header_cells, line
    page = conf.html(["planted.pcap"])
    assert "<script" not in page and "&lt;script&gt;alert(1)" in page


def test_no_query_retrieve_traffic():
    conf = observe(SAMPLES_DIR / "dcmtk-echo.pcap")
    assert conf.statement() == []
    assert "No Query/Retrieve FIND or MOVE traffic was seen." in conf.markdown()
