"""The library entry points; the CLI is a thin layer over ``run``.

``analyze(paths)`` is for notebooks: it returns the three tables as pandas
DataFrames with the same columns as the files the CLI writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .analysis import Analysis, RowWriter
from .pipeline import Counters, Options, Pipeline
from .redact import Redactor
from .report.rows import ASSOCIATION_COLUMNS, MESSAGE_COLUMNS, VIOLATION_COLUMNS
from .rules.base import STANDARD
from .sources import FrameReader

TABLE_COLUMNS = {
    "messages": MESSAGE_COLUMNS,
    "associations": ASSOCIATION_COLUMNS,
    "violations": VIOLATION_COLUMNS,
}

Source = str | Path | BinaryIO


@dataclass(slots=True)
class RunResult:
    analysis: Analysis
    counters: Counters
    warnings: list[str] = field(default_factory=list)


def run(
    sources: Sequence[Source],
    write: RowWriter,
    *,
    options: Options | None = None,
    redactor: Redactor | None = None,
    keep_finding: Callable[[str], bool] | None = None,
    profile: str = STANDARD,
) -> RunResult:
    """Analyse ``sources`` in order, as one capture; rows go to ``write`` as they complete.

    Several files are consecutive pieces of one capture (tcpdump ``-C``/``-G``
    rotation): frame numbers continue across them and connections span them.
    Raises ``sources.CaptureError`` for an input that is not a capture.
    """
    analysis = Analysis(write, redactor, keep_finding or (lambda _rule: True), profile)
    pipeline = Pipeline(analysis, options)
    warnings: list[str] = []
    feed = pipeline.feed
    for source in sources:
        reader = FrameReader(source)
        for ts, linktype, frame in reader.read():
            feed(ts, linktype, frame)
        warnings.extend(reader.warnings)
    pipeline.finish()
    return RunResult(analysis, pipeline.counters, warnings)


@dataclass(slots=True)
class Tables:
    """The three tables of an analysis, as pandas DataFrames."""

    messages: object
    associations: object
    violations: object
    counters: Counters
    warnings: list[str]


def analyze(
    paths: Source | Sequence[Source],
    *,
    ports: Sequence[int] = (),
    include_phi: bool = False,
    phi_key: str | None = None,
    profile: str = STANDARD,
) -> Tables:
    """Analyse capture files and return their tables as DataFrames (for notebooks)."""
    import pandas as pd

    if isinstance(paths, (str, Path)) or hasattr(paths, "read"):
        paths = [paths]  # type: ignore[list-item]
    rows: dict[str, list[dict]] = {name: [] for name in TABLE_COLUMNS}
    result = run(
        list(paths),
        lambda table, row: rows[table].append(row),  # type: ignore[arg-type]
        options=Options(ports=tuple(ports)),
        redactor=Redactor(include_phi=include_phi, key=phi_key),
        profile=profile,
    )
    frames = {
        name: pd.DataFrame(rows[name], columns=list(cols)) for name, cols in TABLE_COLUMNS.items()
    }
    return Tables(
        frames["messages"],
        frames["associations"],
        frames["violations"],
        result.counters,
        result.warnings,
    )
