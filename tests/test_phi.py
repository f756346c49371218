"""Patient data: no name, ID, birth date or accession number from the samples in any output.

The samples' patients are fixed (``tests/peers/dataset.py``); their values are
looked for in every file ``dimsesniff analyze`` writes (tables in every
format, report.html, the conformance statement), Parquet read back value by
value since its pages are compressed.  ``--include-phi`` must bring them back
(so the search can find them), and ``--phi-key`` must make tokens stable.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import dimsesniff
from dimsesniff.report import schema
from tests import outputs
from tests.outputs import SAMPLES, SAMPLES_DIR, sample_outputs

pytest.importorskip("pydicom")
from tests.peers.dataset import STUDIES  # noqa: E402  (needs pydicom)

# Values the peers put on the wire: the archive's patients, and the query keys the SCUs sent.
PHI_VALUES = sorted(
    {v for st in STUDIES for v in (st.patient_name, st.patient_id, st.birth_date, st.accession)}
    | {st.patient_name.split("^")[0] for st in STUDIES}  # family names alone
    | {"CANCEL^PATIENT", "NOSUCH999", "SMITH*", "DSN00*", "NOBODY*", outputs.PATIENT_NAME}
)
_PATTERN = re.compile(  # longest first, so that DOE^JOHN is found as itself, not as DOE
    "|".join(rf"(?<![A-Za-z0-9]){re.escape(v)}" for v in sorted(PHI_VALUES, key=len, reverse=True))
)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("phi")


def texts(out: Path) -> dict[str, str]:
    """Every output file as text; Parquet as its values and metadata."""
    found = {}
    for path in sorted(out.iterdir()):
        if path.suffix == ".parquet":
            parquet = pq.read_table(path)
            values = [str(v) for column in parquet.columns for v in column.to_pylist()]
            found[path.name] = "\n".join(values) + str(parquet.schema.metadata)
        else:
            found[path.name] = path.read_text(encoding="utf-8")
    return found


def leaks(out: Path) -> dict[str, list[str]]:
    return {
        name: sorted(set(_PATTERN.findall(text)))
        for name, text in texts(out).items()
        if _PATTERN.search(text)
    }


@pytest.mark.parametrize("sample", SAMPLES)
def test_no_patient_data_in_any_output_by_default(sample, root):
    out = sample_outputs(sample, root)
    names = {p.name for p in out.iterdir()}
    assert {"report.html", "conformance.md", "conformance.html", "messages.parquet"} <= names
    assert leaks(out) == {}


def test_include_phi_writes_the_values(tmp_path):
    """The search above finds patient data when it is there."""
    out = outputs.analyze_cli(SAMPLES_DIR / "dcmtk-find-levels.pcap", tmp_path, "--include-phi")
    found = leaks(out)
    for fmt in schema.FORMATS:
        assert {"DOE^JOHN", "DSN001", "19600101"} <= set(found[f"messages.{fmt}"]), fmt
    assert "report.html" not in found  # the report shows no identifiers at all


def test_planted_patient_name_is_tokenised(tmp_path):
    capture = outputs.write_capture(tmp_path / "planted.pcap")
    out = outputs.analyze_cli(capture, tmp_path / "out")
    assert leaks(out) == {}
    messages = schema.read_table(out / "messages.jsonl")
    assert messages["identifier"].dropna().str.contains(r"PatientName=phi:[0-9a-f]{12}").all()


def identifiers(tables) -> list[str]:
    return tables.messages["identifier"].dropna().tolist()


def test_phi_key_gives_stable_tokens_across_runs():
    capture = SAMPLES_DIR / "dcmtk-find-levels.pcap"
    first = dimsesniff.analyze(capture, phi_key="site-key")
    again = dimsesniff.analyze(capture, phi_key="site-key")
    other = dimsesniff.analyze(capture, phi_key="other-key")
    random = dimsesniff.analyze(capture)
    assert identifiers(first) == identifiers(again)
    assert "phi:" in " ".join(identifiers(first))
    assert identifiers(first) != identifiers(other)
    assert identifiers(first) != identifiers(random)
    for tables in (first, other, random):
        for table in ("messages", "associations", "violations"):
            text = getattr(tables, table).astype(str).to_csv()
            assert not _PATTERN.search(text), table
    # Equal values give equal tokens, so analysts can still join and count.
    patients = first.messages["identifier"].str.extract(r"PatientID=(phi:[0-9a-f]+)")[0]
    assert patients.dropna().nunique() == 5
