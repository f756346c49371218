"""Golden files: the findings expected on each sample capture (Zeek-style baselines).

Regenerate after a deliberate change with ``python -m tests.golden`` and review
the diff: every changed line is a behaviour change someone must explain.
"""

from __future__ import annotations

import csv
from pathlib import Path

from dimsesniff.api import analyze
from dimsesniff.rules.base import PROFILES

ROOT = Path(__file__).parent
SAMPLES = ROOT.parent.parent / "samples"
COLUMNS = ("rule", "severity", "first_frame", "last_frame", "association_id", "command",
           "status", "message")


def samples() -> list[Path]:
    return sorted(SAMPLES.glob("*.pcap"))


def golden_path(sample: Path, profile: str) -> Path:
    return ROOT / f"{sample.stem}.{profile}.violations.csv"


def findings(sample: Path, profile: str) -> list[dict[str, str]]:
    """The violations of one sample as strings, in a stable order."""
    table = analyze(sample, profile=profile, phi_key="golden").violations
    import pandas as pd

    rows = [{c: "" if pd.isna(value) else str(value)
             for c, value in zip(COLUMNS, row, strict=True)}
            for row in table[list(COLUMNS)].itertuples(index=False)]
    return sorted(rows, key=lambda r: (int(r["first_frame"]), r["rule"], r["message"]))


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def update() -> None:
    for sample in samples():
        for profile in PROFILES:
            write(golden_path(sample, profile), findings(sample, profile))
