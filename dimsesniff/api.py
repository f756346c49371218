"""The library entry points; the CLI is a thin layer over ``run`` and ``export``.

``analyze(paths)`` is for notebooks: it returns the three tables as pandas
DataFrames with the documented dtypes (``report/schema.py``), the same
columns and values as the files the CLI writes.  ``export`` writes those
files (CSV, JSON Lines, Parquet), ``report.html`` and the observed
conformance statement, streaming: memory does not grow with the capture.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .analysis import Analysis, RowWriter
from .pipeline import Counters, Options, Pipeline
from .redact import Redactor
from .report.csv_writer import CsvTable
from .report.html import ReportData, write_report
from .report.jsonl_writer import JsonlTable
from .report.schema import FORMATS, TABLE_COLUMNS, to_frame
from .rules.base import STANDARD
from .sources import capture_order

if TYPE_CHECKING:
    from .conformance import ObservedConformance

__all__ = ["FORMATS", "TABLE_COLUMNS", "analyze", "export", "run"]

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
    warnings = pipeline.feed_captures(sources)
    pipeline.finish()
    return RunResult(analysis, pipeline.counters, warnings)


def sharded(workers: int | str | None, scheduler: str | None) -> bool:
    """Whether ``workers`` / ``scheduler`` ask for a sharded run (0, 1 or None: serial)."""
    from .dask_runner import worker_count

    return scheduler is not None or worker_count(workers) > 1


def run_distributed(
    sources: Sequence[Source],
    write: RowWriter,
    *,
    spool_dir: Path,
    workers: int | str | None = None,
    scheduler: str | None = None,
    options: Options | None = None,
    redactor: Redactor | None = None,
    keep_finding: Callable[[str], bool] | None = None,
    profile: str = STANDARD,
) -> RunResult:
    """``run``, cut into shards by TCP connection and run on Dask; the same rows, in the same
    order (``sharding.py``).

    ``workers`` processes of a local cluster, or the cluster whose scheduler is at
    ``scheduler`` (as many shards as ``workers`` if above 1, else as the cluster has
    threads); ``sources`` must be files that every worker can read.  Shards spool their
    rows to ``spool_dir`` (removed afterwards).  Raises ``sharding.ShardingError``.
    """
    from .dask_runner import cluster_threads, local_runner, remote_runner, worker_count
    from .sharding import ShardingError, run_sharded

    paths = []
    for source in sources:
        if not isinstance(source, (str, Path)) or str(source) == "-":
            raise ShardingError("--workers/--scheduler need capture files, not standard input")
        paths.append(os.path.abspath(source))
    count = worker_count(workers)
    if scheduler is not None:
        runner = remote_runner(scheduler)
        shards = count if count > 1 else cluster_threads(scheduler)
    else:
        runner, shards = local_runner(count), count
    analysis, counters, warnings = run_sharded(
        paths,
        write,
        shards=shards,
        spool_dir=spool_dir,
        runner=runner,
        options=options,
        redactor=redactor,
        keep_finding=keep_finding,
        profile=profile,
    )
    return RunResult(analysis, counters, warnings)


def _source_name(source: Source) -> str:
    if isinstance(source, (str, Path)):
        return "standard input" if str(source) == "-" else Path(source).name
    return Path(getattr(source, "name", "capture")).name


def open_tables(output: Path, formats: Sequence[str]) -> dict[str, list]:
    """A writer per table and format: ``output/messages.csv``, ``output/messages.parquet``, ..."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format {', '.join(unknown)} (choose from {', '.join(FORMATS)})")
    tables: dict[str, list] = {name: [] for name in TABLE_COLUMNS}
    try:
        for fmt in dict.fromkeys(formats):
            for name, columns in TABLE_COLUMNS.items():
                path = output / f"{name}.{fmt}"
                if fmt == "csv":
                    tables[name].append(CsvTable(path, columns))
                elif fmt == "jsonl":
                    tables[name].append(JsonlTable(path, name))
                else:
                    from .report.parquet_writer import ParquetTable

                    tables[name].append(ParquetTable(path, name))
    except BaseException:
        for writers in tables.values():
            for writer in writers:
                writer.close()
        raise
    return tables


@dataclass(slots=True)
class ExportResult:
    run: RunResult
    outputs: list[Path]


def export(
    sources: Sequence[Source],
    output: Path,
    *,
    formats: Sequence[str] = ("csv",),
    html: bool = True,
    conformance: bool = True,
    options: Options | None = None,
    redactor: Redactor | None = None,
    keep_finding: Callable[[str], bool] | None = None,
    profile: str = STANDARD,
    workers: int | str | None = None,
    scheduler: str | None = None,
) -> ExportResult:
    """Analyse ``sources`` and write the tables in ``formats``, ``report.html`` and the
    observed conformance statement (``conformance.md``, ``conformance.html``) into ``output``.

    Rows are written as they are produced.  Raises ``sources.CaptureError`` for an input
    that is not a capture (the files written so far are closed).  With ``workers`` > 1 or
    a ``scheduler`` the run is sharded on Dask (``run_distributed``), with the same output.
    """
    sources, reordered = capture_order(sources)
    tables = open_tables(output, formats)
    report = ReportData() if html else None
    statement = None
    if conformance:
        # Imported when asked for: its tables take longer to import than most captures.
        from .conformance import ObservedConformance

        statement = ObservedConformance()
    writers = [w for ws in tables.values() for w in ws]

    def write(table: str, row: dict) -> None:
        for writer in tables[table]:
            writer.write(row)
        if report is not None:
            report.write(table, row)
        if statement is not None:
            statement.write(table, row)

    try:
        if sharded(workers, scheduler):
            result = run_distributed(
                sources,
                write,
                spool_dir=output,
                workers=workers,
                scheduler=scheduler,
                options=options,
                redactor=redactor,
                keep_finding=keep_finding,
                profile=profile,
            )
        else:
            result = run(
                sources,
                write,
                options=options,
                redactor=redactor,
                keep_finding=keep_finding,
                profile=profile,
            )
    finally:
        for writer in writers:
            writer.close()
    if reordered:
        result.warnings.insert(0, reordered)
    outputs = [w.path for w in writers]
    inputs = [_source_name(s) for s in sources]
    if statement is not None:
        from .conformance import write_statement

        outputs += write_statement(statement, output, inputs)
    if report is not None:
        outputs.append(
            write_report(
                report,
                output / "report.html",
                inputs=inputs,
                counters=result.counters,
                conformance_file="conformance.html" if statement is not None else None,
            )
        )
    return ExportResult(result, outputs)


@dataclass(slots=True)
class Tables:
    """The three tables of an analysis, as pandas DataFrames with the documented dtypes.

    ``report`` and ``conformance`` hold what ``report.html`` and the observed
    conformance statement show; ``html()`` and ``conformance_markdown()`` render them.
    """

    messages: object
    associations: object
    violations: object
    counters: Counters
    warnings: list[str]
    report: ReportData | None = None
    conformance: ObservedConformance | None = None
    inputs: list[str] = field(default_factory=list)

    def html(self) -> str:
        """``report.html`` as a string (e.g. for ``IPython.display.HTML``)."""
        assert self.report is not None
        return self.report.render(inputs=self.inputs, counters=self.counters)

    def conformance_markdown(self) -> str:
        assert self.conformance is not None
        return self.conformance.markdown(self.inputs)


def analyze(
    paths: Source | Sequence[Source],
    *,
    ports: Sequence[int] = (),
    include_phi: bool = False,
    phi_key: str | None = None,
    profile: str = STANDARD,
    workers: int | str | None = None,
    scheduler: str | None = None,
) -> Tables:
    """Analyse capture files and return their tables as DataFrames (for notebooks).

    ``tables = dimsesniff.analyze("capture.pcap")``; ``tables.messages``,
    ``tables.associations`` and ``tables.violations`` have the columns and
    dtypes that ``dimsesniff schema`` documents.  Patient data is tokenised
    unless ``include_phi``; ``phi_key`` makes the tokens stable across runs.
    ``workers=N`` (or ``"all"``) or ``scheduler="tcp://HOST:8786"`` shard the run on
    Dask (the same tables); the rows are still collected here, in memory.
    """
    if isinstance(paths, (str, Path)) or hasattr(paths, "read"):
        paths = [paths]  # type: ignore[list-item]
    sources, reordered = capture_order(list(paths))  # type: ignore[arg-type]
    from .conformance import ObservedConformance

    rows: dict[str, list[dict]] = {name: [] for name in TABLE_COLUMNS}
    report = ReportData()
    statement = ObservedConformance()

    def write(table: str, row: dict) -> None:
        rows[table].append(row)
        report.write(table, row)
        statement.write(table, row)

    options = Options(ports=tuple(ports))
    redactor = Redactor(include_phi=include_phi, key=phi_key)
    if sharded(workers, scheduler):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="dimsesniff-") as spool_dir:
            result = run_distributed(
                sources,
                write,
                spool_dir=Path(spool_dir),
                workers=workers,
                scheduler=scheduler,
                options=options,
                redactor=redactor,
                profile=profile,
            )
    else:
        result = run(sources, write, options=options, redactor=redactor, profile=profile)
    if reordered:
        result.warnings.insert(0, reordered)
    frames = {name: to_frame(name, rows[name]) for name in TABLE_COLUMNS}
    return Tables(
        frames["messages"],
        frames["associations"],
        frames["violations"],
        result.counters,
        result.warnings,
        report,
        statement,
        [_source_name(s) for s in sources],
    )
