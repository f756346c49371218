"""report.html: one self-contained file that renders in a real headless browser (Chromium),
with no console errors, the same numbers as the CSV files, and wire text that stays text.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from dimsesniff.report import schema
from tests import outputs
from tests.outputs import SAMPLES, sample_outputs

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("html")


def chromium(page: Path, tmp_path: Path, *action: str) -> tuple[str, list[str]]:
    """Open ``page`` in headless Chromium; return its stdout and the console lines it logged."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe is not None
    profile = tmp_path / f"profile-{page.stem}"
    proc = subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *action, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [
        line
        for line in proc.stderr.splitlines()
        if ":CONSOLE" in line or "Uncaught" in line or "Refused to" in line
    ]
    return proc.stdout, console


def dump_dom(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    return chromium(page, tmp_path, "--dump-dom")


class Cells(HTMLParser):
    """Text of elements by id, and the rows of tables by id."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self._open: list[tuple[str, str | None]] = []  # (tag, id) of open id'd elements
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "table" and attrs.get("id"):
            self._table = attrs["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        if attrs.get("id") and tag != "table":
            self._open.append((tag, attrs["id"]))
            self.by_id[attrs["id"]] = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        if self._open and self._open[-1][0] == tag:
            self._open.pop()

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        for _tag, ident in self._open:
            self.by_id[ident] += data


def parse(text: str) -> Cells:
    cells = Cells()
    cells.feed(text)
    return cells


def table_counts(cells: Cells, ident: str, key_cols: int, count_col: int) -> dict:
    rows = cells.tables[ident][1:]  # without the header
    return {tuple(r[:key_cols]): int(r[count_col]) for r in rows}


def check_static(text: str) -> None:
    """One self-contained file: no script, nothing loaded from elsewhere, a strict CSP."""
    assert "<script" not in text.lower()
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    for ref in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', text):
        assert ref.startswith("#") or ref == "conformance.html", ref
    assert "@import" not in text and not re.search(r"url\((?!#)", text)


@pytest.mark.parametrize("sample", SAMPLES)
def test_report_is_self_contained(sample, root):
    text = (sample_outputs(sample, root) / "report.html").read_text()
    check_static(text)
    assert text.count("<svg") >= 2  # real charts, inline
    check_static((sample_outputs(sample, root) / "conformance.html").read_text())


@pytest.mark.parametrize("sample", ["dcmtk-move", "pynetdicom-move", "dcmtk-find-levels"])
def test_report_renders_in_chromium_with_the_csv_numbers(sample, root, tmp_path, require_tool):
    require_tool("chromium")
    out = sample_outputs(sample, root)
    dom, console = dump_dom(out / "report.html", tmp_path)
    assert console == []
    cells = parse(dom)
    assert cells.scripts == 0
    messages = pd.read_csv(out / "messages.csv", dtype=str, keep_default_na=False)
    associations = pd.read_csv(out / "associations.csv", dtype=str, keep_default_na=False)
    violations = pd.read_csv(out / "violations.csv", dtype=str, keep_default_na=False)

    assert int(cells.by_id["n-messages"]) == len(messages)
    assert int(cells.by_id["n-associations"]) == len(associations)
    assert int(cells.by_id["n-violations"]) == len(violations)
    for severity in ("error", "warning", "info"):
        assert int(cells.by_id[f"n-{severity}"]) == (violations["severity"] == severity).sum()
    assert table_counts(cells, "commands", 1, 1) == {
        (k,): v for k, v in messages["command"].value_counts().items()
    }
    if len(violations):
        assert table_counts(cells, "by-rule", 1, 2) == {
            (k,): v for k, v in violations["rule"].value_counts().items()
        }
    responses = messages[messages["status"] != ""]
    assert table_counts(cells, "statuses", 2, 4) == {
        k: v for k, v in responses.groupby(["command", "status"]).size().items()
    }
    assert len(cells.tables["associations"]) - 1 == len(associations)
    if len(violations):
        assert len(cells.tables["findings-table"]) - 1 == len(violations)
        shown = {row[-1] for row in cells.tables["findings-table"][1:]}
        assert shown == set(violations["tshark_filter"])
    # Response times per SCP: the operations counted are the final responses in the CSV.
    for service in ("C-FIND", "C-MOVE"):
        finals = responses[
            (responses["command"] == f"{service}-RSP")
            & (responses["status_class"] != "Pending")
            & (responses["response_time_s"] != "")
        ]
        ident = f"times-{service}"
        if not len(finals):
            assert ident not in cells.tables
            continue
        counted = sum(int(r[2]) for r in cells.tables[ident][1:] if r[1] == "final response")
        assert counted == len(finals)
    assert cells.by_id["span-start"] <= cells.by_id["span-end"]


def test_report_screenshot_renders(root, tmp_path, require_tool):
    require_tool("chromium")
    out = sample_outputs("dcmtk-move", root)
    shot = tmp_path / "report.png"
    _stdout, console = chromium(
        out / "report.html", tmp_path, f"--screenshot={shot}", "--window-size=1280,4000"
    )
    assert console == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000  # a blank page is a few KB; charts and tables are not


def test_console_errors_are_detected(tmp_path, require_tool):
    """The check above can fail: a page with a script error is caught."""
    require_tool("chromium")
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<html><body><script>console.error('x'); nosuchfunction();</script></body></html>"
    )
    _dom, console = dump_dom(bad, tmp_path)
    assert any("Uncaught" in line for line in console)


def test_planted_script_ae_title_and_formula_are_inert(tmp_path, require_tool):
    capture = outputs.write_capture(tmp_path / "planted.pcap")
    out = outputs.analyze_cli(capture, tmp_path / "out")
    for name in ("report.html", "conformance.html"):
        text = (out / name).read_text()
        check_static(text)
        assert html.escape(outputs.SCRIPT_AE) in text, name
    conformance_text = (out / "conformance.html").read_text()
    assert html.escape(outputs.FORMULA) in conformance_text
    markdown = (out / "conformance.md").read_text()
    assert "<script" not in markdown and "&lt;script&gt;" in markdown
    require_tool("chromium")
    for name in ("report.html", "conformance.html"):
        dom, console = dump_dom(out / name, tmp_path)
        assert console == []
        cells = parse(dom)
        assert cells.scripts == 0
        assert outputs.SCRIPT_AE in html.unescape(dom)  # shown as text
    cells = parse(dump_dom(out / "report.html", tmp_path)[0])
    assert cells.by_id["n-messages"] == "4"
    assert [r[1] for r in cells.tables["associations"][1:]] == [outputs.SCRIPT_AE]


def test_html_report_from_the_api_matches_the_file(root):
    """``Tables.html()`` renders the same sections from the same rows (notebook use)."""
    import dimsesniff

    tables = dimsesniff.analyze(outputs.SAMPLES_DIR / "dcmtk-echo.pcap")
    cells = parse(tables.html())
    assert int(cells.by_id["n-messages"]) == len(tables.messages) == 8
    assert int(cells.by_id["n-associations"]) == len(tables.associations) == 2
    assert schema.TABLE_COLUMNS["messages"] == tuple(tables.messages.columns)
