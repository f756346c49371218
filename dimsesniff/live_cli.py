"""``dimsesniff live``: audit network interfaces as traffic flows.

A shell around ``live.LiveSession`` and the same pipeline and analysis as
``analyze``: it sends rows to (rotating) files and findings to the terminal,
shows a status line, and turns SIGINT/SIGTERM into a clean stop.

Streams: findings go to stdout (readable lines, or JSON objects with
``--alerts jsonl``); notices and the status line go to stderr; the final
summary goes to stdout, or to stderr when stdout carries JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .analysis import Analysis
from .cli_options import (
    FailOn,
    IgnoreOption,
    IncludePhiOption,
    PhiKeyOption,
    PortOption,
    Profile,
    ProfileOption,
    SelectOption,
    fail,
    failed,
    rule_filter,
)
from .pipeline import Options, Pipeline
from .redact import Redactor
from .report.csv_writer import CsvTable
from .report.jsonl_writer import JsonlTable
from .report.rotating import Piece, RotatePolicy, Rotating, parse_rotate
from .report.safe_text import printable
from .report.schema import TABLE_COLUMNS, normalize
from .report.summary import print_summary


class AlertFormat(StrEnum):
    text = "text"
    jsonl = "jsonl"


_TABLE_WRITERS = {"csv": CsvTable, "jsonl": JsonlTable}
"""The formats that can grow row by row (Parquet is written once, by analyze)."""
_SEVERITY_COLOURS = {"error": "\x1b[31m", "warning": "\x1b[33m", "info": "\x1b[36m"}


def alert_line(row: dict, *, colour: bool = False) -> str:
    """One finding as one line: time, peers (address and AE title), severity, rule, status."""
    stamp = row["timestamp"][:23] + "Z" if row["timestamp"] else "-"
    peers = printable(
        f"{row['client'] or '?'} {row['calling_ae'] or '?'} -> "
        f"{row['server'] or '?'} {row['called_ae'] or '?'}"
    )
    severity = row["severity"]
    label = f"{severity:<7}"
    if colour and severity in _SEVERITY_COLOURS:
        label = f"{_SEVERITY_COLOURS[severity]}{label}\x1b[0m"
    what = " ".join(str(v) for v in (row["rule"], row["command"], row["status"]) if v)
    return f"{stamp} {peers}  {label} {what}: {printable(str(row['message']))}"


class StopRequest:
    """A clean stop was asked for: by SIGINT/SIGTERM (``signal``) or otherwise (``reason``).

    A second signal ends the process there and then.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self.reason = ""

    def __call__(self) -> bool:
        return self.signal is not None or bool(self.reason)

    def handle(self, signum: int, _frame: object) -> None:
        if self.signal is not None:
            os.write(2, b"\ninterrupted again: exiting now, without the final summary\n")
            os._exit(128 + signum)
        self.signal = signum

    def describe(self, ended: str) -> str:
        if self.signal is not None:
            return f"stopped by {signal.Signals(self.signal).name}"
        if self.reason:
            return self.reason
        return f"--{ended} reached" if ended in ("count", "duration") else ended


class Terminal:
    """Findings on stdout; notices and the status line on stderr.

    On a terminal the status line is redrawn in place (and moved out of the way
    of finding lines); otherwise it is printed every ``status_every`` seconds.
    """

    def __init__(self, alerts: AlertFormat, status_every: float | None, stop: StopRequest):
        self.out, self.err = sys.stdout, sys.stderr
        self.json = alerts is AlertFormat.jsonl
        self._stop = stop
        self._in_place = self.err.isatty()
        self._status_every = (
            status_every if status_every is not None else (1.0 if self._in_place else 60.0)
        )
        self._share_screen = self._in_place and not self.json and self.out.isatty()
        self._colour = self._share_screen and "NO_COLOR" not in os.environ
        self._status = ""
        self._status_at = time.monotonic()

    def finding(self, row: dict) -> None:
        if self.json:
            text = json.dumps(normalize("violations", row), ensure_ascii=True)
        else:
            text = alert_line(row, colour=self._colour)
        if self._share_screen and self._status:
            self.err.write("\r\x1b[K")  # the line goes where the status line was
            self.err.flush()
            self._write_out(text + "\n")
            self.err.write(self._status)
            self.err.flush()
        else:
            self._write_out(text + "\n")

    def notice(self, text: str) -> None:
        self._clear_status()
        self.err.write(text + "\n")
        self.err.flush()

    def status(self, text: str) -> None:
        if self._status_every <= 0:
            return
        if self._in_place:
            width = shutil.get_terminal_size().columns - 1
            self._status = text[:width]
            self.err.write("\r\x1b[K" + self._status)
        elif time.monotonic() - self._status_at >= self._status_every:
            self._status_at = time.monotonic()
            self.err.write(text + "\n")
        self.err.flush()

    def _clear_status(self) -> None:
        if self._in_place and self._status:
            self.err.write("\r\x1b[K")
            self.err.flush()
            self._status = ""

    def _write_out(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except BrokenPipeError:  # `... | head`: the reader is gone, and with it the point
            self._stop.reason = "stdout closed"
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.out.fileno())
            os.close(devnull)

    def summary_console(self) -> Console:
        self._clear_status()
        return Console(file=self.err if self.json else self.out, soft_wrap=True)


class Outputs:
    """Every file of a live run, each rotating: the tables in each format, the alerts file and
    the pcapng copy.  Rows are flushed after every read from the network."""

    def __init__(
        self,
        directory: Path,
        formats: list[str],
        policy: RotatePolicy,
        now: float,
        alerts_file: Path | None = None,
        pcap: tuple[Path, Callable[[Path], Piece]] | None = None,
    ) -> None:
        self.files: list[Rotating] = []
        self._policy, self._now = policy, now
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.tables = {
                name: [
                    self._open(
                        directory / f"{name}.{fmt}",
                        lambda p, w=_TABLE_WRITERS[fmt], c=columns: w(p, c),
                    )
                    for fmt in formats
                ]
                for name, columns in TABLE_COLUMNS.items()
            }
            self.alerts = (
                self._open(alerts_file, lambda p: JsonlTable(p, "violations"))
                if alerts_file
                else None
            )
            self.pcap = self._open(*pcap) if pcap else None
        except BaseException:
            self.close()
            raise

    def _open(self, path: Path, open_piece: Callable[[Path], Piece]) -> Rotating:
        rotating = Rotating(path, open_piece, self._policy, self._now)
        self.files.append(rotating)
        return rotating

    def write(self, table: str, row: dict) -> None:
        for rotating in self.tables[table]:
            rotating.current.write(row)
        if table == "violations" and self.alerts is not None:
            self.alerts.current.write(row)

    def copy_frame(self, interface: int, ts_us: int, frame: bytes) -> None:
        self.pcap.current.write(interface, ts_us, frame)  # current: rotation replaces it

    def flush(self) -> None:
        for rotating in self.files:
            rotating.flush()

    def rotate_if_due(self, now: float) -> None:
        for rotating in self.files:
            rotating.rotate_if_due(now)

    def close(self) -> None:
        for rotating in self.files:
            with contextlib.suppress(OSError):
                rotating.close()


def live(
    interface: Annotated[
        list[str],
        typer.Option(
            "-i",
            "--interface",
            help="Interface to capture on (repeatable); 'any' for every interface that is up.",
        ),
    ],
    bpf: Annotated[
        str | None,
        typer.Option("-f", "--filter", help="BPF capture filter (default: TCP only)."),
    ] = None,
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Directory for the tables; files already there are renamed aside, "
            "never overwritten.",
            file_okay=False,
        ),
    ] = Path("dimsesniff-out"),
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds.", min=0)
    ] = None,
    count: Annotated[int | None, typer.Option(help="Stop after this many frames.", min=1)] = None,
    write_pcap: Annotated[
        Path | None,
        typer.Option(help="Also write every captured frame to this pcapng file.", dir_okay=False),
    ] = None,
    rotate: Annotated[
        list[str] | None,
        typer.Option(
            help="Start new output files at this size (100MB) or age (1h); the finished "
            "ones are renamed with their end time. Repeatable."
        ),
    ] = None,
    formats: Annotated[
        list[str] | None,
        typer.Option("--format", help="Table formats, comma-separated: csv, jsonl (default: csv)."),
    ] = None,
    alerts: Annotated[
        AlertFormat,
        typer.Option(help="How findings are printed on stdout: readable lines or JSON objects."),
    ] = AlertFormat.text,
    alerts_file: Annotated[
        Path | None,
        typer.Option(help="Also append each finding to this file as one JSON object per line."),
    ] = None,
    idle_timeout: Annotated[
        float,
        typer.Option(
            help="Close a connection (and its association) after this many silent seconds.",
            min=1,
        ),
    ] = 300.0,
    port: PortOption = None,
    select: SelectOption = None,
    ignore: IgnoreOption = None,
    profile: ProfileOption = Profile.standard,
    fail_on: Annotated[
        FailOn,
        typer.Option(help="Exit with 1 when a finding of this severity or worse was reported."),
    ] = FailOn.never,
    include_phi: IncludePhiOption = False,
    phi_key: PhiKeyOption = None,
    promisc: Annotated[
        bool,
        typer.Option(help="Put named interfaces in promiscuous mode (span ports need it)."),
    ] = True,
    buffer_size: Annotated[
        int, typer.Option(help="Kernel capture buffer per interface, in MiB.", min=1)
    ] = 32,
    status_every: Annotated[
        float | None,
        typer.Option(
            help="Seconds between status lines on stderr (default: live on a terminal, "
            "every 60 s otherwise; 0: none)."
        ),
    ] = None,
) -> None:
    """Capture on network interfaces and report findings as they happen, until Ctrl-C.

    Writes the same tables as analyze (flushed row by row), prints each finding as one line,
    and on Ctrl-C or SIGTERM closes open associations as "capture ended" and prints a summary.
    Needs root or CAP_NET_RAW.

    Example: dimsesniff live -i eth0 -f "tcp port 104" -o audit/ --rotate 1h
    """
    if sys.platform != "linux":
        raise fail("live capture works on Linux only: capture with tcpdump, then analyze")
    from . import live as capture_lib  # scapy loads only for this command

    table_formats = split_formats(formats)
    if "parquet" in table_formats:
        raise fail(
            "--format parquet is written whole, not row by row: analyze the --write-pcap file"
        )
    keep = rule_filter(select, ignore)
    try:
        policy = parse_rotate(rotate or [])
    except ValueError as exc:
        raise fail(str(exc)) from None

    try:
        capture = capture_lib.LiveCapture(
            capture_lib.resolve_interfaces(interface),
            bpf or capture_lib.DEFAULT_FILTER,
            promisc=promisc and capture_lib.ANY not in interface,
            buffer_bytes=buffer_size * 1024 * 1024,
            skip_unsupported=capture_lib.ANY in interface,
        )
    except capture_lib.CaptureError as exc:
        raise fail(str(exc)) from None
    started = time.time()
    links = [(i.name, i.linktype) for i in capture.interfaces]
    try:
        outputs = Outputs(
            output,
            table_formats,
            policy,
            started,
            alerts_file,
            (write_pcap, lambda p: capture_lib.PcapngWriter(p, links)) if write_pcap else None,
        )
    except OSError as exc:
        capture.close()
        raise fail(f"{exc.filename or output}: {exc.strerror or exc}") from None

    stop = StopRequest()
    terminal = Terminal(alerts, status_every, stop)

    def write(table: str, row: dict) -> None:
        outputs.write(table, row)
        if table == "violations":
            terminal.finding(row)

    redactor = Redactor(include_phi=include_phi, key=phi_key)
    capture_lib.warm_up(redactor)
    analysis = Analysis(write, redactor, keep, profile.value)
    pipeline = Pipeline(analysis, Options(ports=tuple(port or ()), idle_timeout=idle_timeout))
    session = capture_lib.LiveSession(
        capture, pipeline, outputs.copy_frame if outputs.pcap is not None else None
    )

    def every_second(now: float) -> None:
        outputs.rotate_if_due(now)
        tally = analysis.tally
        open_assocs = sum(1 for c in pipeline.connections.values() if c.association is not None)
        terminal.status(
            f"{time.strftime('%H:%M:%SZ', time.gmtime(now))} packets {session.frames}  "
            f"associations {tally.associations + open_assocs} ({open_assocs} open)  "
            f"messages {sum(tally.messages.values())}  findings {sum(tally.findings.values())}  "
            f"kernel drops {capture.kernel_drops}"
        )

    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    previous = {sig: signal.signal(sig, stop.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    try:
        outputs.flush()  # the headers: every file is well-formed from the start
        for rotating in outputs.files:
            if rotating.moved_aside is not None:
                terminal.notice(f"{rotating.path} existed: renamed to {rotating.moved_aside.name}")
        for warning in capture.warnings:
            terminal.notice(f"warning: {warning}")
        terminal.notice(
            f"capturing on {capture.describe()}, filter {capture.bpf!r}; writing to {output}/; "
            "Ctrl-C to stop"
        )
        try:
            ended = session.run(
                stopped=stop,
                after_batch=outputs.flush,
                every_second=every_second,
                wake_fd=wake_r,
                duration=duration,
                count=count,
            )
            capture.update_statistics()
        finally:
            capture.close()
            try:
                pipeline.finish()  # open associations end as "capture ended"
                outputs.flush()
            finally:
                outputs.close()
        # Until the summary is out, a second Ctrl-C still exits at once.
        console = terminal.summary_console()
        rotations = sum(r.rotations for r in outputs.files)
        with contextlib.suppress(BrokenPipeError):
            console.print(
                f"capture ended ({stop.describe(ended)}) after {time.time() - started:.1f} s; "
                f"{capture.kernel_drops} packets dropped by the kernel"
                + (f"; {rotations} rotated pieces beside the files below" if rotations else ""),
                highlight=False,
            )
            print_summary(
                console,
                pipeline.counters,
                analysis.tally,
                [r.path for r in outputs.files],
                capture.warnings + session.warnings,
                time.time() - started,
            )
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(wake_r)
        os.close(wake_w)
    if failed((s for s, n in analysis.tally.severities.items() if n), fail_on):
        raise typer.Exit(code=1)


# cli.py imports this module at its end to register the command; split_formats is imported
# back from it here, after ``live`` is defined, which works whichever module comes first.
from .cli import split_formats  # noqa: E402
