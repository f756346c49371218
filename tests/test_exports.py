"""Exports: one documented schema, three formats with the same rows, reloadable with dtypes.

Run on the real-peer samples (``samples/``) through the command line, and on a
planted capture whose Error Comment is a spreadsheet formula.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import dimsesniff
from dimsesniff import api
from dimsesniff.cli import app
from dimsesniff.report import rows, schema
from dimsesniff.report.csv_writer import neutralize
from dimsesniff.report.parquet_writer import ParquetTable
from tests import outputs
from tests.outputs import PHI_KEY, SAMPLES, SAMPLES_DIR, sample_outputs

runner = CliRunner()
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exports")


def test_schema_is_the_one_place():
    assert rows.MESSAGE_COLUMNS is schema.MESSAGE_COLUMNS
    assert rows.ASSOCIATION_COLUMNS is schema.ASSOCIATION_COLUMNS
    assert rows.VIOLATION_COLUMNS is schema.VIOLATION_COLUMNS
    assert api.TABLE_COLUMNS == schema.TABLE_COLUMNS
    for table, columns in schema.TABLES.items():
        names = [c.name for c in columns]
        assert len(names) == len(set(names)), table
        for column in columns:
            assert column.dtype in schema.DTYPES, column
            assert column.description.strip(), column
    frame_columns = {"first_frame", "last_frame", "start_frame", "end_frame"}
    for table in schema.TABLES:  # every row can be found in Wireshark
        assert frame_columns & set(schema.TABLE_COLUMNS[table]), table


PY_TYPES = {
    schema.INT: (int,),
    schema.FLOAT: (float, int),
    schema.BOOL: (bool,),
    schema.STRING: (str,),
    schema.TIMESTAMP: (str,),
}


def test_rows_match_the_schema_in_names_and_types():
    seen: dict[str, int] = {}

    def check(table: str, row: dict) -> None:
        assert tuple(row) == schema.TABLE_COLUMNS[table]
        for column in schema.TABLES[table]:
            value = row[column.name]
            if value is None or value == "":
                continue
            assert isinstance(value, PY_TYPES[column.dtype]), (table, column.name, value)
            if column.dtype == schema.INT:
                assert not isinstance(value, bool), (table, column.name)
            if column.dtype == schema.TIMESTAMP:
                assert ISO_UTC.match(value), (table, column.name, value)
        seen[table] = seen.get(table, 0) + 1

    for name in ("dcmtk-move", "pynetdicom-move", "pynetdicom-find-cancel"):
        api.run([SAMPLES_DIR / f"{name}.pcap"], check)
    assert seen["messages"] and seen["associations"] and seen["violations"]


@pytest.mark.parametrize("sample", SAMPLES)
def test_exports_reload_with_documented_dtypes(sample, root):
    out = sample_outputs(sample, root)
    for table in schema.TABLES:
        expected = schema.dtypes(table)
        for fmt in schema.FORMATS:
            frame = schema.read_table(out / f"{table}.{fmt}")
            assert list(frame.columns) == list(schema.TABLE_COLUMNS[table])
            assert {c: str(t) for c, t in frame.dtypes.items()} == expected, (table, fmt)
        # Plain pandas, as the schema documents it.
        plain = pd.read_parquet(out / f"{table}.parquet")
        assert {c: str(t) for c, t in plain.dtypes.items()} == expected, table
        csv = pd.read_csv(
            out / f"{table}.csv",
            dtype={c: ("string" if t == schema.TIMESTAMP else t) for c, t in expected.items()},
            keep_default_na=False,
            na_values=[""],
        )
        assert len(csv) == len(plain)
        for column, dtype in expected.items():
            if dtype == schema.TIMESTAMP:
                assert csv[column].dropna().str.match(ISO_UTC.pattern).all(), (table, column)


def _neutralized(frame: pd.DataFrame) -> pd.DataFrame:
    """What the CSV holds for raw values: formulas quoted."""
    out = frame.copy()
    for column in out.columns:
        if str(out[column].dtype) == schema.STRING:
            out[column] = out[column].map(neutralize, na_action="ignore").astype(schema.STRING)
    return out


@pytest.mark.parametrize("sample", SAMPLES)
def test_csv_jsonl_parquet_hold_the_same_rows(sample, root):
    out = sample_outputs(sample, root)
    for table in schema.TABLES:
        csv, jsonl, parquet = (schema.read_table(out / f"{table}.{f}") for f in schema.FORMATS)
        pd.testing.assert_frame_equal(jsonl, parquet)
        pd.testing.assert_frame_equal(csv, _neutralized(jsonl))
        with (out / f"{table}.jsonl").open() as fh:
            for line in fh:
                assert list(json.loads(line)) == list(schema.TABLE_COLUMNS[table])


@pytest.mark.parametrize("sample", ["dcmtk-move", "pynetdicom-find-cancel"])
def test_analyze_api_gives_the_same_frames_as_the_files(sample, root):
    out = sample_outputs(sample, root)
    tables = dimsesniff.analyze(SAMPLES_DIR / f"{sample}.pcap", phi_key=PHI_KEY)
    for table in schema.TABLES:
        frame = getattr(tables, table)
        assert {c: str(t) for c, t in frame.dtypes.items()} == schema.dtypes(table)
        pd.testing.assert_frame_equal(frame, schema.read_table(out / f"{table}.parquet"))
    assert "<h1>DICOM traffic report</h1>" in tables.html()
    assert "Table N.7-5" in tables.conformance_markdown()


def test_frames_and_timestamps_locate_every_row(root):
    out = sample_outputs("dcmtk-move", root)
    messages = schema.read_table(out / "messages.parquet")
    assert messages["first_frame"].notna().all()
    assert (messages["first_frame"] <= messages["last_frame"]).all()
    assert str(messages["timestamp"].dt.tz) == "UTC"
    violations = schema.read_table(out / "violations.parquet")
    assert violations["tshark_filter"].str.contains("frame.number").all()
    associations = schema.read_table(out / "associations.parquet")
    assert (associations["start_frame"] <= associations["end_frame"]).all()
    assert (associations["duration_s"] >= 0).all()


def test_planted_formula_is_neutralised_in_csv_only(tmp_path):
    capture = outputs.write_capture(tmp_path / "planted.pcap")
    out = outputs.analyze_cli(capture, tmp_path / "out")
    csv_text = (out / "messages.csv").read_text()
    assert "'" + outputs.FORMULA.replace('"', '""') in csv_text
    assert not re.search(r'(^|,)"?=HYPERLINK', csv_text, re.M)  # no cell starts with =
    csv = schema.read_table(out / "messages.csv")
    assert csv["error_comment"].dropna().tolist() == ["'" + outputs.FORMULA]
    for fmt in ("jsonl", "parquet"):  # raw values, as documented
        frame = schema.read_table(out / f"messages.{fmt}")
        assert frame["error_comment"].dropna().tolist() == [outputs.FORMULA]
    assert csv["calling_ae"].iloc[0] == outputs.SCRIPT_AE  # not a formula: kept as sent


def test_parquet_is_written_in_row_groups(tmp_path):
    path = tmp_path / "messages.parquet"
    table = ParquetTable(path, "messages", row_group_rows=4)
    collected: list[dict] = []

    def write(name: str, row: dict) -> None:
        if name == "messages":
            table.write(row)
            collected.append(row)

    api.run([SAMPLES_DIR / "dcmtk-move.pcap"], write)
    table.close()
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == len(collected) == 35
    assert meta.num_row_groups == 9  # ceil(35 / 4): never more than 4 rows buffered
    pd.testing.assert_frame_equal(schema.read_table(path), schema.to_frame("messages", collected))


def test_schema_command():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    for table, columns in schema.TABLES.items():
        assert f"## {table}" in result.output
        for column in columns:
            assert f"| {column.name} | {column.dtype} |" in result.output
    result = runner.invoke(app, ["schema", "violations", "--as", "json"])
    assert result.exit_code == 0
    described = json.loads(result.output)
    assert [c["name"] for c in described["violations"]] == list(schema.VIOLATION_COLUMNS)
    result = runner.invoke(app, ["schema", "nosuch"])
    assert result.exit_code == 2 and "no such table" in result.output


def test_format_and_output_switches(tmp_path):
    capture = str(SAMPLES_DIR / "dcmtk-echo.pcap")
    out = tmp_path / "a"
    result = runner.invoke(app, ["analyze", capture, "-o", str(out), "-q", "--format", "xml"])
    assert result.exit_code == 2 and "unknown --format xml" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(
        app, ["analyze", capture, "-o", str(out), "-q", "-f", "jsonl", "--conformance"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "associations.jsonl",
        "conformance.html",
        "conformance.md",
        "messages.jsonl",
        "violations.jsonl",
    ]
    out = tmp_path / "b"
    result = runner.invoke(app, ["analyze", capture, "-o", str(out), "-q", "--html"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "associations.csv",
        "messages.csv",
        "report.html",
        "violations.csv",
    ]


def test_start_up_imports_no_pandas_pyarrow_or_matplotlib():
    code = (
        "import sys, dimsesniff, dimsesniff.cli\n"
        "heavy = {'pandas', 'pyarrow', 'matplotlib'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert callable(dimsesniff.analyze) and callable(dimsesniff.read_table)\n"
        "assert 'pandas' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
