"""Sharded runs (``--workers``, ``--scheduler``) give exactly the serial run's output.

Shards run in this process (``sharding.run_in_process``) for speed, except
two tests that go through a real Dask ``LocalCluster``: ``--workers 2`` and
``--scheduler`` with its address.  Rows are compared in order, which is
stronger than "identical after sorting": the merge reproduces the serial order.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dimsesniff import dask_runner
from dimsesniff.api import analyze, run
from dimsesniff.cli import app
from dimsesniff.pipeline import Options, shard_of
from dimsesniff.redact import Redactor
from dimsesniff.rules.base import PROFILES, STANDARD
from dimsesniff.sharding import CROSS_RULE_IDS, run_sharded
from tests.outputs import analyze_cli

SAMPLES = Path(__file__).parent.parent / "samples"
ALL_SAMPLES = sorted(SAMPLES.glob("*.pcap"))
KEY = "sharded-test"
runner = CliRunner()


def serial(sources, profile: str = STANDARD):
    rows: list[tuple[str, dict]] = []
    result = run(
        sources,
        lambda table, row: rows.append((table, dict(row))),
        redactor=Redactor(key=KEY),
        profile=profile,
    )
    return rows, result.counters, result.analysis.tally


def sharded(sources, shards: int, tmp_path: Path, profile: str = STANDARD):
    rows: list[tuple[str, dict]] = []
    analysis, counters, _warnings = run_sharded(
        sources,
        lambda table, row: rows.append((table, dict(row))),
        shards=shards,
        spool_dir=tmp_path,
        redactor=Redactor(key=KEY),
        options=Options(),
        profile=profile,
    )
    assert not list(tmp_path.glob(".dimsesniff-shard-*")), "spools left behind"
    return rows, counters, analysis.tally


def assert_same(expected, got) -> None:
    rows, counters, tally = expected
    got_rows, got_counters, got_tally = got
    assert [t for t, _ in got_rows] == [t for t, _ in rows]
    for (table, want), (_, have) in zip(rows, got_rows, strict=True):
        assert have == want, table
    assert got_counters == counters
    assert got_tally == tally


@pytest.mark.parametrize("shards", [2, 3])
@pytest.mark.parametrize("sample", ALL_SAMPLES, ids=lambda p: p.stem)
def test_shards_give_the_serial_tables(sample, shards, tmp_path):
    expected = serial([sample])
    assert expected[0], "sample gave no rows"
    assert_same(expected, sharded([sample], shards, tmp_path))


# -- cross-association rules -----------------------------------------------------------------

US = struct.Struct("<H")


def element(tag: int, value: int) -> bytes:
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, 2) + US.pack(value)


def with_cross_findings(tmp_path: Path) -> Path:
    """samples/dcmtk-move.pcap with C-STORE-RQ priority HIGH (its C-MOVE asked MEDIUM) and
    every C-MOVE-RSP Completed count raised by 5: XA-PRIORITY and XA-COUNTS fire, and both
    need the C-MOVE association and its C-STORE association together.

    Values are patched in place (same lengths), so TCP stays consistent.
    """
    data = bytearray((SAMPLES / "dcmtk-move.pcap").read_bytes())
    store_rq = element(0x0000_0100, 0x0001)
    pos = data.find(store_rq)
    while pos >= 0:
        priority_at = pos + 20  # Command Field, Message ID, then Priority (0000,0700)
        assert bytes(data[priority_at : priority_at + 8]) == element(0x0000_0700, 0)[:8]
        data[priority_at + 8 : priority_at + 10] = US.pack(1)
        pos = data.find(store_rq, pos + 1)
    completed = element(0x0000_1021, 0)[:8]
    pos = data.find(completed)
    while pos >= 0:
        value = US.unpack_from(data, pos + 8)[0]
        data[pos + 8 : pos + 10] = US.pack(value + 5)
        pos = data.find(completed, pos + 1)
    path = tmp_path / "move-cross.pcap"
    path.write_bytes(bytes(data))
    return path


def endpoints(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host.strip("[]"), int(port)


def shard_of_association(row: dict, count: int) -> int:
    (a, ap), (b, bp) = endpoints(row["client"]), endpoints(row["server"])
    return shard_of(a, ap, b, bp, count)


@pytest.mark.parametrize("profile", PROFILES)
def test_cross_association_findings_survive_sharding(profile, tmp_path):
    capture = with_cross_findings(tmp_path)
    expected = serial([capture], profile)
    rows = expected[0]
    cross = [r for t, r in rows if t == "violations" and r["rule"] in CROSS_RULE_IDS]
    assert {r["rule"] for r in cross} >= {"XA-PRIORITY", "XA-COUNTS"}, cross
    associations = {r["association_id"]: r for t, r in rows if t == "associations"}
    moves = {r["association_id"] for r in cross if r["rule"] == "XA-COUNTS"}
    stores = {r["association_id"] for r in cross if r["rule"] == "XA-PRIORITY"}
    split = 0
    for shards in (2, 3, 4):
        assert_same(expected, sharded([capture], shards, tmp_path, profile))
        split += any(
            shard_of_association(associations[m], shards)
            != shard_of_association(associations[s], shards)
            for m in moves
            for s in stores
        )
    # Otherwise this test could pass with cross rules run inside each shard.
    assert split, "no shard count put a C-MOVE and its C-STORE association apart"


# -- rotated files ---------------------------------------------------------------------------


def split_pcap(path: Path, at_frame: int, out: Path) -> list[Path]:
    """Cut a classic pcap into two files, frames 1..at_frame-1 and at_frame.. (like tcpdump -C)."""
    data = path.read_bytes()
    header, pos, frame = data[:24], 24, 1
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    cut = None
    while pos < len(data):
        if frame == at_frame:
            cut = pos
        (length,) = struct.unpack_from(endian + "I", data, pos + 8)
        pos += 16 + length
        frame += 1
    assert cut is not None
    first, second = out / "piece0.pcap", out / "piece1.pcap"
    first.write_bytes(data[:cut])
    second.write_bytes(header + data[cut:])
    return [first, second]


@pytest.mark.parametrize("shards", [2, 3])
def test_rotated_pieces_are_one_capture(shards, tmp_path):
    whole = with_cross_findings(tmp_path)
    expected = serial([whole])
    starts = [r["start_frame"] for t, r in expected[0] if t == "associations"]
    ends = [r["end_frame"] for t, r in expected[0] if t == "associations"]
    at = 700  # inside the first C-STORE association (a C-STORE-RQ data set spans the cut)
    assert any(s < at <= e for s, e in zip(starts, ends, strict=True))
    pieces = split_pcap(whole, at, tmp_path)
    assert_same(expected, serial(pieces))
    assert_same(expected, sharded(pieces, shards, tmp_path))


# -- through Dask ----------------------------------------------------------------------------


def files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_cli_workers_2_on_a_local_dask_cluster(tmp_path):
    capture = with_cross_findings(tmp_path)
    plain = analyze_cli(capture, tmp_path / "serial")
    dask = analyze_cli(capture, tmp_path / "dask", "--workers", "2")
    assert files(dask) == files(plain)
    assert b"XA-COUNTS" in files(plain)["violations.csv"]


def test_cli_scheduler_address(tmp_path):
    import distributed
    capture = SAMPLES / "pynetdicom-move.pcap"
    plain = analyze_cli(capture, tmp_path / "serial")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        remote = analyze_cli(capture, tmp_path / "remote", "--scheduler", cluster.scheduler_address)
        assert files(remote) == files(plain)
        tables = analyze(capture, phi_key=KEY, scheduler=cluster.scheduler_address)
        missing = runner.invoke(
            app,
            ["analyze", str(tmp_path / "nowhere.pcap"), "-o", str(tmp_path / "x"), "-q"]
            + ["--scheduler", cluster.scheduler_address],
        )
    assert missing.exit_code == 2
    assert "nowhere.pcap" in missing.output and "Dask worker" in missing.output
    assert "Traceback" not in missing.output
    expected = analyze(capture, phi_key=KEY)
    for name in ("messages", "associations", "violations"):
        pd.testing.assert_frame_equal(getattr(tables, name), getattr(expected, name))
    assert tables.counters == expected.counters


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--workers", "two"], "--workers two"),
        (["--workers", "-5"], "--workers -5"),
        (["--scheduler", "localhost"], "tcp://HOST:8786"),
        (["--scheduler", "tcp://127.0.0.1:1"], "cannot reach the Dask scheduler"),
    ],
)
def test_cli_errors_are_one_line(args, says, tmp_path, monkeypatch):
    monkeypatch.setattr(dask_runner, "CONNECT_TIMEOUT", "1s")
    result = runner.invoke(
        app, ["analyze", str(SAMPLES / "dcmtk-echo.pcap"), "-o", str(tmp_path), "-q", *args]
    )
    assert result.exit_code == 2
    assert says in result.output
    assert "Traceback" not in result.output


def test_standard_input_cannot_be_sharded(tmp_path):
    result = runner.invoke(app, ["analyze", "-", "-o", str(tmp_path), "--workers", "2"])
    assert result.exit_code == 2
    assert "standard input" in result.output


def test_cli_start_up_does_not_import_dask():
    code = (
        "import sys, dimsesniff, dimsesniff.cli\n"
        "heavy = {'dask', 'distributed'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
