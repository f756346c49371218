"""Command line: ``dimsesniff analyze``, ``dimsesniff rules`` and ``dimsesniff schema``.

Exit codes, like a linter: 0 nothing at or above ``--fail-on`` was found,
1 something was, 2 usage or input error (one line on stderr, no traceback).
"""

from __future__ import annotations

import os
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer
from rich.console import Console
from rich.markup import escape

from . import __version__
from .api import export
from .cli_options import (
    FailOn,
    IgnoreOption,
    IncludePhiOption,
    PhiKeyOption,
    PortOption,
    Profile,
    ProfileOption,
    SelectOption,
    err,
    fail,
    failed,
    rule_filter,
)
from .dask_runner import check_address, worker_count
from .pipeline import Options
from .redact import Redactor
from .report.safe_text import printable
from .report.schema import FORMATS, TABLES, describe_json, describe_markdown
from .report.summary import print_summary
from .rules import RULES
from .rules.base import BOTH
from .sharding import ShardingError
from .sources import CaptureError, capture_order

if TYPE_CHECKING:
    from rich.progress import Progress

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="DICOM network traffic analyzer: associations, DIMSE messages and Query/Retrieve "
    "response checks from pcap/pcapng captures.",
)


class ProgressReader:
    """Counts bytes read from a capture file; shows a progress bar once reading is slow."""

    def __init__(
        self,
        raw: BinaryIO,
        total: int,
        console: Console,
        *,
        after: float = 2.0,
        enabled: bool = True,
    ) -> None:
        self._raw = raw
        self.name = raw.name
        self._total = total
        self._console = console
        self._start = time.monotonic()
        self._after = after
        self._enabled = enabled
        self._progress: Progress | None = None
        self._task = None
        self._done = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._done += len(data)
        if (
            self._progress is None
            and self._enabled
            and time.monotonic() - self._start > self._after
        ):
            # Imported here: most runs never show the bar, and rich.progress is slow to import.
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

            self._progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=self._console,
                transient=True,
            )
            self._task = self._progress.add_task(Path(self.name).name, total=self._total)
            self._progress.start()
        if self._progress is not None:
            self._progress.update(self._task, completed=self._done)
        return data

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._raw.close()


def split_formats(values: list[str] | None) -> list[str]:
    """``--format csv,parquet`` (or repeated): table formats, in the order given."""
    formats = [v.strip().lower() for item in values or ["csv"] for v in item.split(",")]
    formats = [f for f in formats if f]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise fail(
            f"unknown --format {', '.join(unknown) or '(empty)'} (choose from {', '.join(FORMATS)})"
        )
    return list(dict.fromkeys(formats))


@app.command()
def analyze(
    captures: Annotated[
        list[str],
        typer.Argument(
            help="pcap/pcapng files (optionally gzip-compressed), in capture order; - for stdin."
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Directory for the outputs.", file_okay=False)
    ] = Path("dimsesniff-out"),
    formats: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            "-f",
            help="Table formats, comma-separated: csv, jsonl, parquet (default: csv).",
        ),
    ] = None,
    html: Annotated[
        bool,
        typer.Option(
            "--html/--no-html",
            help="Write report.html (charts, findings); off by default: charts cost seconds.",
        ),
    ] = False,
    conformance: Annotated[
        bool,
        typer.Option(
            "--conformance/--no-conformance",
            help="Write the observed conformance statement (conformance.md, conformance.html).",
        ),
    ] = False,
    port: PortOption = None,
    select: SelectOption = None,
    ignore: IgnoreOption = None,
    profile: ProfileOption = Profile.standard,
    fail_on: Annotated[
        FailOn,
        typer.Option(help="Exit with 1 when a finding of this severity or worse is reported."),
    ] = FailOn.error,
    include_phi: IncludePhiOption = False,
    phi_key: PhiKeyOption = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No summary, no progress.")] = False,
    workers: Annotated[
        str | None,
        typer.Option(
            "--workers",
            "-j",
            help="Split the work by TCP connection over N local Dask worker processes "
            "(all or -1: one per CPU; 0 or 1: no Dask). Same output.",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Run the shards on the Dask cluster of this scheduler (tcp://HOST:8786); "
            "its workers must read the capture files at the same paths.",
        ),
    ] = None,
) -> None:
    """Analyse capture files: write the messages, associations and violations tables,
    and on request report.html and the observed conformance statement.

    Example: dimsesniff analyze samples/dcmtk-move.pcap -o out/ --html --conformance
    """
    table_formats = split_formats(formats)
    keep = rule_filter(select, ignore)
    try:
        worker_total = worker_count(workers)
        if scheduler is not None:
            scheduler = check_address(scheduler)
    except ShardingError as exc:
        raise fail(str(exc)) from None
    distributed = scheduler is not None or worker_total > 1
    if distributed and "-" in captures:
        raise fail("--workers/--scheduler need capture files, not standard input")

    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"cannot create {output}: {exc.strerror}") from None
    console = Console(stderr=False)
    captures, reordered = capture_order(captures)  # type: ignore[assignment]
    sources: list[BinaryIO | str] = []
    for name in captures:
        if name == "-":
            sources.append("-")
            continue
        path = Path(name)
        if scheduler is not None:
            sources.append(name)  # read by the cluster's workers, maybe not from here
            continue
        try:
            raw = path.open("rb")
        except OSError as exc:
            for s in sources:
                if not isinstance(s, str):
                    s.close()
            raise fail(f"{name}: {exc.strerror or exc}") from None
        if distributed:  # each shard's worker opens the file itself
            raw.close()
            sources.append(name)
            continue
        sources.append(
            ProgressReader(
                raw,
                path.stat().st_size,
                err,  # type: ignore[arg-type]
                enabled=not quiet and err.is_terminal,
            )
        )
    started = time.monotonic()
    try:
        exported = export(
            sources,
            output,
            formats=table_formats,
            html=html,
            conformance=conformance,
            options=Options(ports=tuple(port or ())),
            redactor=Redactor(include_phi=include_phi, key=phi_key),
            keep_finding=keep,
            profile=profile.value,
            workers=worker_total,
            scheduler=scheduler,
        )
    except (CaptureError, ShardingError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"{exc.filename or output}: {exc.strerror or exc}") from None
    finally:
        for s in sources:
            if not isinstance(s, str):
                s.close()
    result = exported.run
    if reordered:
        result.warnings.insert(0, reordered)
    if not quiet:
        print_summary(
            console,
            result.counters,
            result.analysis.tally,
            exported.outputs,
            result.warnings,
            time.monotonic() - started,
        )
    if failed((s for s, n in result.analysis.tally.severities.items() if n), fail_on):
        raise typer.Exit(code=1)


@app.command()
def rules(
    rule_id: Annotated[str | None, typer.Argument(help="A rule ID to explain.")] = None,
) -> None:
    """List every rule (ID, severity, what it finds), or explain one.

    Example: dimsesniff rules UL-PDV-FRAMING
    """
    console = Console(soft_wrap=True)
    if rule_id is None:
        for rule in sorted(RULES.values(), key=lambda r: r.id):
            only = "" if rule.profiles == BOTH else f" [{', '.join(sorted(rule.profiles))} only]"
            console.print(
                f"{rule.id:30} {rule.severity.value:8} {rule.summary}{only}", highlight=False
            )
        return
    rule = RULES.get(rule_id.upper())
    if rule is None:
        raise fail(f"no such rule: {rule_id} (see: dimsesniff rules)")
    kind = "decode" if rule.check is None else ("message" if rule.applies_to else "association")
    console.print(
        f"[bold]{rule.id}[/] ({rule.severity.value}, {kind} rule)\n{rule.summary}\n"
        f"Citation: {rule.cite}\nProfiles: {', '.join(sorted(rule.profiles))}"
        + (f"\nOrigin: {rule.origin}" if rule.origin else ""),
        highlight=False,
    )
    if rule.doc:
        console.print(f"\n{rule.doc}", highlight=False)


class SchemaFormat(StrEnum):
    markdown = "markdown"
    json = "json"


@app.command()
def schema(
    table: Annotated[
        str | None,
        typer.Argument(help="messages, associations or violations (default: all three)."),
    ] = None,
    as_format: Annotated[
        SchemaFormat, typer.Option("--as", help="markdown (default) or json.")
    ] = SchemaFormat.markdown,
) -> None:
    """Print the documented schema of the tables: each column's name, dtype, unit and meaning.

    The same columns and dtypes hold for CSV, JSON Lines, Parquet and the DataFrames of
    dimsesniff.analyze(); reload a file with dimsesniff.report.schema.read_table(path).

    Example: dimsesniff schema messages
    """
    if table is not None and table not in TABLES:
        raise fail(f"no such table: {table} (messages, associations, violations)")
    if as_format is SchemaFormat.json:
        print(describe_json(table))
        return
    print(describe_markdown(table), end="")


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


from .live_cli import live  # noqa: E402  (live_cli imports back from here)

app.command(name="live")(live)


def main() -> None:
    """Entry point: no traceback reaches the user unless DIMSESNIFF_DEBUG is set."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: say so in one line, keep the traceback for debugging
        if os.environ.get("DIMSESNIFF_DEBUG"):
            raise
        err.print(
            f"[red]internal error:[/] {type(exc).__name__}: {escape(printable(str(exc)))} "
            "(set DIMSESNIFF_DEBUG=1 for the traceback, and please report it)",
            highlight=False,
        )
        sys.exit(2)
