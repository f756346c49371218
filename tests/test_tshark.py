"""dimsesniff against tshark's own DICOM dissector on the same real captures.

tshark (4.0) is an independent decoder: every message it decodes must be among
dimsesniff's, in the same frames and with the same command, Message ID and
Status.  The known direction is that dimsesniff finds at least as many
(samples/README.md and the shared spec list where tshark loses messages).
"""

from __future__ import annotations

from functools import cache

import pytest

from dimsesniff.api import analyze
from tests.samplecheck import peerlog, rewrite, tshark
from tests.samplecheck.peerlog import SAMPLES

NAMES = peerlog.sample_names()


@pytest.fixture(autouse=True)
def _tshark(require_tool):
    require_tool("tshark")


@cache
def both(name: str) -> tuple[list, list[tuple]]:
    """(tshark's messages, ours) for one sample."""
    pcap = SAMPLES / f"{name}.pcap"
    theirs = tshark.checker().tshark_messages(pcap, tshark.server_ports(pcap))
    return theirs, tshark.ours(analyze(pcap).messages)


def test_checker_parses_pdml_messages():
    """The parsing reused from samples/check_with_tshark.py sees commands, IDs, statuses, frames."""
    theirs, _ours = both("dcmtk-move")
    final = [m for m in theirs if m.command == "C-MOVE-RSP" and m.status == 0xB000]
    assert len(final) == 1
    (m,) = final
    assert m.message_id == 1 and m.src_port == 11112
    assert m.first_frame <= m.frame
    # DCMTK writes the PDU header on its own: some command sets span two TCP segments.
    assert any(t.first_frame < t.frame for t in theirs)


def test_server_ports_found_in_capture():
    assert tshark.server_ports(SAMPLES / "dcmtk-move.pcap") == {11112, 11113, 11114}
    assert tshark.server_ports(SAMPLES / "mixed-smallpdu-port.pcap") == {5678}


@pytest.mark.parametrize("name", NAMES)
def test_tshark_messages_among_ours(name):
    theirs, ours = both(name)
    assert len(theirs) > 0
    assert tshark.unmatched(theirs, ours) == []


@pytest.mark.parametrize("name", NAMES)
def test_tshark_finds_no_more_than_ours(name, tshark_report):
    theirs, ours = both(name)
    tshark_report.append(f"{name}: dimsesniff {len(ours)} messages, tshark {len(theirs)}")
    assert len(ours) >= len(theirs)


def test_unmatched_reports_a_wrong_status():
    """The comparison can fail: a status changed on our side leaves tshark's message unmatched."""
    theirs, ours = both("dcmtk-move")
    target = next(i for i, d in enumerate(ours) if d[6] == 0xB000)
    changed = [*ours[:target], (*ours[target][:6], 0xA702), *ours[target + 1 :]]
    missing = tshark.unmatched(theirs, changed)
    assert [(m.command, m.status) for m in missing] == [("C-MOVE-RSP", 0xB000)]


REWRITTEN = rewrite.SUBSETS


@pytest.mark.parametrize("variant", ["reordered", "overlapping", "7-byte"])
@pytest.mark.parametrize("name", list(REWRITTEN))
def test_tshark_messages_among_ours_after_rewrite(name, variant, tmp_path, tshark_report):
    """On the TCP rewrites of tests/test_samples.py tshark 4.0 loses messages; we do not."""
    segments = rewrite.REWRITES[variant](rewrite.sample(name, REWRITTEN[name]))
    pcap = rewrite.write(tmp_path / f"{variant}.pcap", segments)
    theirs = tshark.checker().tshark_messages(pcap, tshark.server_ports(pcap))
    ours = tshark.ours(analyze(pcap).messages)
    tshark_report.append(f"{name} {variant}: dimsesniff {len(ours)} messages, tshark {len(theirs)}")
    assert tshark.unmatched(theirs, ours, same_start=False) == []
    log = rewrite.peerlog_of(name)
    keep = REWRITTEN[name] or (lambda _a: True)
    kept = {a["index"] for a in log["associations"] if keep(a)}
    assert len(ours) == sum(1 for m in log["messages"] if m["assoc"] in kept)
    assert len(ours) >= len(theirs)
