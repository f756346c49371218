"""Values from the wire cannot break the outputs: CSV, JSONL, HTML and the terminal.

A peer chooses its AE titles, Error Comments, Move Destinations and identifier
values.  Spreadsheet formulas must arrive as text, quotes and line breaks must
not split a CSV record or a JSON line, markup must not become HTML, and escape
sequences, bidirectional overrides or rich markup must not reach the terminal.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from dimsesniff.analysis import Tally
from dimsesniff.api import TABLE_COLUMNS, export
from dimsesniff.cli import app
from dimsesniff.pipeline import Counters
from dimsesniff.redact import Redactor
from dimsesniff.report.csv_writer import FORMULA_PREFIXES, CsvTable, neutralize
from dimsesniff.report.safe_text import printable
from dimsesniff.report.summary import print_summary
from dissectors import dimse
from tests import build
from tests.conversation import Conversation
from tests.test_cli import write_pcap

# What a hostile peer puts in text fields (all ASCII / Latin-1: what the wire can carry).
ESCAPES = "\x1b[2J\x1b]0;owned\x07\x9b31m"  # clear screen, set title, 8-bit CSI
FORMULA = '=HYPERLINK("http://x/","y")'
MARKUP = "[/][bold]x"
BREAKER = 'a"b,c\r\nd\x00e'
SCRIPT = '"><script>alert(1)</script>'

runner = CliRunner()


def _associate_rq(called: bytes, calling: bytes) -> bytes:
    rq = bytearray(build.associate_rq(contexts=build.ECHO_CONTEXT + ((3, FIND, (IVRLE,)),)))
    rq[10:26], rq[26:42] = called.ljust(16)[:16], calling.ljust(16)[:16]
    return bytes(rq)


FIND = "1.2.840.10008.5.1.4.1.2.2.1"
IVRLE = "1.2.840.10008.1.2"


def hostile_capture(tmp_path):
    """An association whose every text field the peers choose is hostile."""
    conv = Conversation()
    conv.client_sends(_associate_rq(b"\x1b[2J" + MARKUP.encode(), b"=cmd|' /C calc'!A0"))
    conv.server_sends(build.associate_ac(results=((1, 0, IVRLE), (3, 0, IVRLE))))
    name = (SCRIPT + ESCAPES).encode("latin-1")
    identifier = build.command_set(
        {0x0008_0052: "STUDY", 0x0010_0010: name + b" " * (len(name) % 2), 0x0010_0020: FORMULA},
        group_length=False,
    )
    conv.client_sends(build.find_rq(1, identifier, ctx=3))
    rsp = build.command_set(
        {
            dimse.AFFECTED_SOP_CLASS_UID: FIND,
            dimse.COMMAND_FIELD: dimse.Command.C_FIND_RSP,
            dimse.MESSAGE_ID_BEING_RESPONDED_TO: 1,
            dimse.COMMAND_DATA_SET_TYPE: 0x0101,
            dimse.STATUS: 0xC000,
            dimse.ERROR_COMMENT: (FORMULA + BREAKER + ESCAPES).encode("latin-1"),
            dimse.OFFENDING_ELEMENT: b"\x10\x00\x10\x00",
        }
    )
    conv.server_sends(build.p_data(build.pdv(3, 0x03, rsp)))
    conv.client_sends(build.echo_rq(2, ctx=7))  # a finding: context 7 was never accepted
    conv.client_sends(build.release_rq())
    conv.server_sends(build.release_rp())
    conv.close()
    return write_pcap(tmp_path / "hostile.pcap", conv.frames)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    out = tmp / "out"
    out.mkdir()
    result = export(
        [hostile_capture(tmp)],
        out,
        formats=("csv", "jsonl"),
        html=True,
        conformance=True,
        redactor=Redactor(include_phi=True),  # patient values as they are: the worst case
    )
    return out, result


# ------------------------------------------------------------------ CSV


@pytest.mark.parametrize(
    "value", [FORMULA, "+1+1", "-2", "@SUM(A1)", "\tx", "\rx", MARKUP, BREAKER, ESCAPES]
)
def test_csv_cell_reads_back_as_one_neutral_cell(tmp_path, value):
    table = CsvTable(tmp_path / "t.csv", ("a", "b", "c"))
    table.write({"a": value, "b": 1, "c": None})
    table.close()
    with (tmp_path / "t.csv").open(newline="", encoding="utf-8") as fh:
        header, row = list(csv.reader(fh))
    assert header == ["a", "b", "c"]
    assert row == [str(neutralize(value)), "1", ""]
    assert not row[0].startswith(FORMULA_PREFIXES)


def test_csv_tables_of_a_hostile_capture(exported):
    out, result = exported
    counts = result.run.analysis.tally
    for name, columns in TABLE_COLUMNS.items():
        with (out / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == list(columns)
        assert all(len(r) == len(columns) for r in rows[1:])
        for r in rows[1:]:
            for cell in r:
                assert not cell.startswith(FORMULA_PREFIXES), (name, cell)
    with (out / "messages.csv").open(newline="", encoding="utf-8") as fh:
        messages = list(csv.DictReader(fh))
    assert len(messages) == sum(counts.messages.values()) == 3
    comment = next(m["error_comment"] for m in messages if m["error_comment"])
    assert comment.startswith("'=HYPERLINK") and "\r\n" in comment  # one cell, kept whole


def test_jsonl_lines_are_one_object_each(exported):
    out, _result = exported
    for name in TABLE_COLUMNS:
        lines = (out / f"{name}.jsonl").read_text(encoding="utf-8").split("\n")
        assert lines[-1] == ""
        rows = [json.loads(line) for line in lines[:-1]]
        with (out / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
            assert len(rows) == len(list(csv.reader(fh))) - 1
    first = json.loads((out / "messages.jsonl").read_text(encoding="utf-8").split("\n")[1])
    assert first["error_comment"].startswith("=HYPERLINK")  # JSON keeps the value as sent


def test_html_escapes_wire_text(exported):
    out, _result = exported
    for page in ("report.html", "conformance.html"):
        text = (out / page).read_text(encoding="utf-8")
        assert "<script" not in text.lower(), page
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "=HYPERLINK(&quot;http://x/&quot;" in report  # the Error Comment, as text


# ------------------------------------------------------------ terminal


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("SCP", "SCP"),
        ("\x1b[2J", "\\x1b[2J"),
        ("a\r\nb\tc", "a\\r\\nb\\tc"),
        ("\x9b31m", "\\x9b31m"),
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),
        ("\x00\x7f", "\\x00\\x7f"),
        ("Müller ✓", "Müller ✓"),
    ],
)
def test_printable(raw, shown):
    assert printable(raw) == shown
    assert printable(shown) == shown


def test_summary_shows_hostile_peers_as_text():
    tally = Tally()
    tally.findings["UL-PDV-CTX-NOT-ACCEPTED"] = 1
    tally.severities["error"] = 1
    tally.findings_by_peer[f"10.0.0.2:104 {ESCAPES}{MARKUP}"] = 1
    tally.messages["C-ECHO-RQ"] = 1
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    print_summary(console, Counters(), tally, [], [f"{MARKUP} file {ESCAPES}"], 0.1)
    text = out.getvalue()
    assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text
    assert "\\x1b[2J" in text and "[/][bold]x" in text


def test_cli_summary_of_a_hostile_capture(tmp_path):
    capture = hostile_capture(tmp_path)
    result = runner.invoke(app, ["analyze", str(capture), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output  # findings of severity error, no crash
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for bad in ("\x1b", "\x9b", "\x07", "\r"):
        assert bad not in result.output, repr(bad)
    assert "[/][bold]x" in result.output  # the called AE title, as text


def test_cli_error_line_with_hostile_file_name(tmp_path):
    name = tmp_path / "[bold]x\x1b[2J.pcap"  # no "/": a file name cannot hold "[/]"
    name.write_bytes(b"not a capture at all")
    result = runner.invoke(app, ["analyze", str(name), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "\x1b" not in result.output and "[bold]x\\x1b[2J.pcap" in result.output


def test_findings_carry_their_frame(exported):
    """Every finding names frames of the capture, so it can be found in Wireshark."""
    out, result = exported
    with (out / "violations.csv").open(newline="", encoding="utf-8") as fh:
        findings = list(csv.DictReader(fh))
    assert findings
    frames = result.run.counters.frames
    for f in findings:
        assert 1 <= int(f["first_frame"]) <= int(f["last_frame"]) <= frames, f
        assert f["message"]
