"""Run the pipeline on mutated inputs and check the hostile-input contract on each.

The contract, per input (a whole capture):

* no exception escapes ``dimsesniff.api.run`` (``CaptureError``, the documented
  "this is not a capture" answer, is the only one allowed);
* it finishes within ``base + per_byte * size`` seconds (no hang, nothing worse
  than linear), and a hard timer stops it well after that;
* memory stays bounded: with ``--tracemalloc``, the peak of Python allocations
  during the run stays under ``mem_base + mem_per_byte * size``;
* every row serialises: to CSV exactly as ``CsvTable`` writes it (formula prefixes
  neutralised, strict UTF-8) and back to the same number of cells, and to one line
  of strict JSON; every finding names a registered rule, has a message and frame
  numbers within the capture.

Long runs (saving each new failure as a regression case)::

    python -m fuzz.run --seconds 600 --seed 1 --save-dir tests/fuzz_cases/

Replay saved inputs, or measure the peak RSS of one in a fresh process::

    python -m fuzz.run --replay tests/fuzz_cases/*.pcap
    python -m fuzz.run --rss tests/fuzz_cases/some-case.pcap
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import tracemalloc
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dimsesniff.api import TABLE_COLUMNS, run
from dimsesniff.pipeline import Options
from dimsesniff.report.csv_writer import FORMULA_PREFIXES, neutralize
from dimsesniff.rules import RULES
from dimsesniff.sources import CaptureError
from fuzz.mutators import FuzzInput, generate

BASE_SECONDS = 3.0
# 30 s per MB.  Real captures run at 10 MB/s and more; the worst hostile inputs found
# are finding floods (one finding per 5 bytes: thousands of empty PDVs, each breaking
# three rules) at about 20 s per MB.  Anything worse than linear blows through this.
PER_BYTE_SECONDS = 30e-6
TRACED_SLOWDOWN = 3.0  # tracemalloc makes every allocation slower
HARD_TIMEOUT = 120.0
MEM_BASE = 48 << 20
MEM_PER_BYTE = 8
PORT_SUFFIX = re.compile(r"\.port(\d+)$")


class Hang(BaseException):
    """Raised by the hard timer; a BaseException so no ``except Exception`` swallows it."""


@dataclass(slots=True)
class Failure:
    kind: str  # exception, timeout, slow, memory, output
    detail: str
    signature: str


@dataclass(slots=True)
class Outcome:
    seconds: float
    peak: int | None  # tracemalloc peak (bytes) during the run, if traced
    rows: Counter = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)


class CheckingWriter:
    """A row writer that serialises every row to CSV and JSON and checks what it got."""

    def __init__(self) -> None:
        self.rows: Counter = Counter()
        self.problems: list[str] = []
        self.last_frame = 0  # the highest frame number a finding named
        self.seconds = 0.0  # spent here, not in the pipeline

    def __call__(self, table: str, row: dict) -> None:
        started = time.perf_counter()
        try:
            self._check(table, row)
        finally:
            self.seconds += time.perf_counter() - started

    def _check(self, table: str, row: dict) -> None:
        self.rows[table] += 1
        columns = TABLE_COLUMNS[table]
        if tuple(row) != tuple(columns):
            self._problem(f"{table} row keys {list(row)} are not the schema")
            return
        cells = [neutralize(row[c]) for c in columns]
        for c, cell in zip(columns, cells, strict=True):
            if isinstance(cell, str) and cell.startswith(FORMULA_PREFIXES):
                self._problem(f"{table}.{c} not neutralised: {cell[:40]!r}")
        out = io.StringIO()
        csv.writer(out).writerow(cells)
        text = out.getvalue()
        try:
            text.encode("utf-8")  # CsvTable writes strict UTF-8
        except UnicodeEncodeError as exc:
            self._problem(f"{table} row is not UTF-8 encodable: {exc}")
        back = list(csv.reader(io.StringIO(text, newline="")))
        if len(back) != 1 or len(back[0]) != len(columns):
            self._problem(f"{table} row does not read back as one CSV record: {text[:80]!r}")
        try:
            line = json.dumps(row, ensure_ascii=False, allow_nan=False)
            line.encode("utf-8")
            if "\n" in line or json.loads(line) is None:
                self._problem(f"{table} row is not one JSON line")
        except (TypeError, ValueError) as exc:
            self._problem(f"{table} row is not JSON: {exc}")
        if table == "violations":
            self._finding(row)

    def _finding(self, row: dict) -> None:
        rule = row["rule"]
        if rule not in RULES:
            self._problem(f"finding of unregistered rule {rule!r}")
        if not row["message"]:
            self._problem(f"finding {rule} without a message")
        first, last = row["first_frame"], row["last_frame"]
        if not (isinstance(first, int) and isinstance(last, int)):
            self._problem(f"finding {rule} without frame numbers")
        elif not 0 <= first <= last:
            self._problem(f"finding {rule} frames {first}..{last}")
        else:
            self.last_frame = max(self.last_frame, last)

    def finish(self, frames: int) -> None:
        """After the run: no finding may name a frame the capture does not have."""
        if self.last_frame > frames:
            self._problem(f"finding names frame {self.last_frame} of {frames}")

    def _problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)


def budget(size: int, *, traced: bool = False) -> float:
    """Seconds an input of ``size`` bytes may take."""
    seconds = BASE_SECONDS + PER_BYTE_SECONDS * size
    return seconds * TRACED_SLOWDOWN if traced else seconds


def memory_budget(size: int) -> int:
    return MEM_BASE + MEM_PER_BYTE * size


def _signature(exc: BaseException) -> str:
    """Exception type and the innermost frame of project code: one per distinct bug."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if "/dimsesniff/" in f.filename or "/dissectors/" in f.filename
    ]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__}@{where}"


def check(
    inp: FuzzInput,
    *,
    trace_memory: bool = False,
    hard_timeout: float = HARD_TIMEOUT,
    exports: bool = False,
) -> Outcome:
    """Run the whole pipeline on one input; every broken promise is a ``Failure``.

    ``exports`` also writes every output file (CSV, JSONL, report.html, the
    conformance statement) with ``api.export`` and reads them back (slow: charts).
    """
    size = len(inp.pcap)
    writer = CheckingWriter()
    failures: list[Failure] = []
    if exports:
        failures += _check_exports(inp, hard_timeout)

    def on_alarm(_signum, _frame):
        raise Hang

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, hard_timeout)
    if trace_memory:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    try:
        result = run([io.BytesIO(inp.pcap)], writer, options=Options(ports=inp.ports))
        writer.finish(result.counters.frames)
    except CaptureError:
        pass
    except Hang:
        failures.append(Failure("timeout", f"still running after {hard_timeout:.0f} s", "timeout"))
    except Exception as exc:  # the contract: this is a bug
        failures.append(Failure("exception", traceback.format_exc(), _signature(exc)))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.perf_counter() - started - writer.seconds
    peak = None
    if trace_memory:
        peak = tracemalloc.get_traced_memory()[1] - before
        if peak > memory_budget(size):
            failures.append(
                Failure("memory", f"peak {peak / 2**20:.1f} MiB for {size} bytes", "memory")
            )
    allowed = budget(size, traced=trace_memory)
    if not failures and seconds > allowed:
        failures.append(
            Failure("slow", f"{seconds:.2f} s for {size} bytes (budget {allowed:.2f} s)", "slow")
        )
    for problem in writer.problems:
        failures.append(Failure("output", problem, "output:" + problem.split(" ", 2)[1]))
    return Outcome(seconds, peak, writer.rows, failures)


def _check_exports(inp: FuzzInput, hard_timeout: float) -> list[Failure]:
    """Write every output format for ``inp``; check that each file reads back whole."""
    from dimsesniff.api import export

    def on_alarm(_signum, _frame):
        raise Hang

    failures: list[Failure] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, hard_timeout)
        try:
            export(
                [io.BytesIO(inp.pcap)],
                out,
                formats=("csv", "jsonl"),
                html=True,
                conformance=True,
                options=Options(ports=inp.ports),
            )
        except CaptureError:
            return failures
        except Hang:
            return [Failure("timeout", f"export still running after {hard_timeout:.0f} s", "x")]
        except Exception as exc:
            return [Failure("exception", traceback.format_exc(), "export:" + _signature(exc))]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        for table, columns in TABLE_COLUMNS.items():
            with (out / f"{table}.csv").open(newline="", encoding="utf-8") as fh:
                records = list(csv.reader(fh))
            lines = (out / f"{table}.jsonl").read_text(encoding="utf-8").splitlines()
            if records[0] != list(columns) or any(len(r) != len(columns) for r in records):
                failures.append(Failure("output", f"{table}.csv is ragged", "export:csv"))
            if any(c.startswith(FORMULA_PREFIXES) for r in records[1:] for c in r):
                failures.append(Failure("output", f"{table}.csv has a formula", "export:csv"))
            if len(lines) != len(records) - 1 or not all(
                isinstance(json.loads(line), dict) for line in lines
            ):
                failures.append(Failure("output", f"{table}.jsonl differs", "export:jsonl"))
        for page in ("report.html", "conformance.html"):
            if "<script" in (out / page).read_text(encoding="utf-8").lower():
                failures.append(Failure("output", f"{page} holds a script", "export:html"))
    return failures


def warm_up() -> None:
    """Import and initialise lazily loaded parts (pydicom) outside any measurement."""
    from dimsesniff.identifiers import decode_identifier

    decode_identifier(b"\x10\x00\x10\x00\x04\x00\x00\x00DOE^", "1.2.840.10008.1.2")


def case_path(save_dir: Path, inp: FuzzInput, failure: Failure) -> Path:
    digest = hashlib.sha1(inp.pcap).hexdigest()[:12]
    ports = "".join(f".port{p}" for p in inp.ports[:1])
    return save_dir / f"{failure.kind}-{digest}{ports}.pcap"


def load_case(path: Path) -> FuzzInput:
    """A saved case: the pcap, with ``--port`` taken from a ``.portN`` suffix of its stem."""
    match = PORT_SUFFIX.search(path.stem)
    ports = (int(match.group(1)),) if match else ()
    return FuzzInput(path.name, path.read_bytes(), ports)


def save(save_dir: Path, inp: FuzzInput, failure: Failure) -> Path:
    save_dir.mkdir(parents=True, exist_ok=True)
    path = case_path(save_dir, inp, failure)
    path.write_bytes(inp.pcap)
    path.with_suffix(".txt").write_text(
        f"input: {inp.name}\nports: {list(inp.ports)}\nfailure: {failure.kind} "
        f"{failure.signature}\n\n{failure.detail}\n",
        encoding="utf-8",
        errors="backslashreplace",
    )
    return path


def endless(seed: int) -> Iterator[tuple[int, FuzzInput | None]]:
    """Input k of ``seed`` for k = 0, 1, ...; None (and a message) if a mutator failed."""
    k = 0
    while True:
        try:
            inp = generate(random.Random(f"{seed}:{k}"))
        except Exception:  # a bug of the fuzzer, not of the pipeline: say so, go on
            print(f"[{seed}:{k}] mutator error:\n{traceback.format_exc()}", flush=True)
            inp = None
        yield k, inp
        k += 1


def fuzz(
    seconds: float,
    seed: int,
    save_dir: Path | None,
    *,
    trace_memory: bool,
    max_inputs: int | None = None,
    verbose: bool = False,
    exports: bool = False,
) -> int:
    warm_up()
    if trace_memory:
        tracemalloc.start()
    deadline = time.monotonic() + seconds
    stats = Counter()
    seen: dict[str, int] = {}
    worst_time = (0.0, "")
    worst_peak = (0, "")
    total_bytes = 0
    for k, inp in endless(seed):
        if time.monotonic() > deadline or (max_inputs is not None and k >= max_inputs):
            break
        if inp is None:
            stats["mutator-error"] += 1
            continue
        outcome = check(inp, trace_memory=trace_memory, exports=exports)
        stats["inputs"] += 1
        total_bytes += len(inp.pcap)
        ratio = outcome.seconds / budget(len(inp.pcap), traced=trace_memory)
        if ratio > worst_time[0]:
            worst_time = (ratio, f"{inp.name} ({len(inp.pcap)} B, {outcome.seconds:.2f} s)")
        if outcome.peak is not None and outcome.peak > worst_peak[0]:
            worst_peak = (outcome.peak, f"{inp.name} ({len(inp.pcap)} B), key {seed}:{k}")
        for failure in outcome.failures:
            stats[failure.kind] += 1
            seen[failure.signature] = seen.get(failure.signature, 0) + 1
            if seen[failure.signature] == 1:
                where = save(save_dir, inp, failure) if save_dir is not None else None
                print(
                    f"[{seed}:{k}] {failure.kind} {failure.signature} in {inp.name}"
                    + (f" -> {where}" if where else ""),
                    flush=True,
                )
                if verbose:
                    print(failure.detail, flush=True)
    print(f"inputs run: {stats['inputs']} ({total_bytes / 1e6:.1f} MB), seed {seed}")
    print(
        f"failures: {sum(v for k, v in stats.items() if k != 'inputs')} "
        f"({len(seen)} distinct): {dict(seen)}"
    )
    print(f"slowest relative to budget: {worst_time[0]:.2f} x budget: {worst_time[1]}")
    if trace_memory:
        print(f"largest traced peak: {worst_peak[0] / 2**20:.1f} MiB: {worst_peak[1]}")
    return 1 if seen else 0


def replay(paths: list[Path], *, trace_memory: bool, exports: bool = False) -> int:
    warm_up()
    if trace_memory:
        tracemalloc.start()
    bad = 0
    for path in paths:
        outcome = check(load_case(path), trace_memory=trace_memory, exports=exports)
        peak = f", peak {outcome.peak / 2**20:.1f} MiB" if outcome.peak is not None else ""
        state = "ok" if not outcome.failures else "FAIL"
        print(f"{state} {path.name}: {outcome.seconds:.2f} s{peak}, rows {dict(outcome.rows)}")
        for failure in outcome.failures:
            bad += 1
            print(f"  {failure.kind} {failure.signature}\n{failure.detail}")
    return 1 if bad else 0


def rss(path: Path) -> int:
    """Peak RSS of a fresh interpreter replaying one input, and of one doing nothing."""
    code = (
        "import resource, sys; from fuzz.run import warm_up, check, load_case; "
        "from pathlib import Path; warm_up(); base = resource.getrusage("
        "resource.RUSAGE_SELF).ru_maxrss; inp = load_case(Path(sys.argv[1])); "
        "o = check(inp); peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
        "print(base, peak, len(inp.pcap), round(o.seconds, 2), len(o.failures))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    base, peak, size, seconds, failures = out
    print(
        f"{path.name}: {int(size)} bytes, {seconds} s, peak RSS {int(peak) / 1024:.1f} MiB "
        f"(after imports {int(base) / 1024:.1f} MiB, growth "
        f"{(int(peak) - int(base)) / 1024:.1f} MiB), failures {failures}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run")
    parser.add_argument("--seed", type=int, default=1, help="input k is made from SEED:k")
    parser.add_argument("--max-inputs", type=int, default=None, help="stop after this many")
    parser.add_argument(
        "--save-dir",
        type=Path,
        default=None,
        help="write each new failing input here (pcap + .txt)",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="measure the allocation peak of every input (slower)",
    )
    parser.add_argument(
        "--exports",
        action="store_true",
        help="also write and read back every output file (CSV, JSONL, HTML; slow)",
    )
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--replay", type=Path, nargs="+", help="check these saved inputs")
    parser.add_argument("--rss", type=Path, nargs="+", help="peak RSS of these inputs")
    parser.add_argument(
        "--dump",
        nargs=2,
        metavar=("SEED:K", "FILE"),
        help="write input K of SEED (as the run numbers them) to FILE",
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="Glyph .* missing")  # charts of hostile text
    if args.dump:
        key, target = args.dump
        Path(target).write_bytes(generate(random.Random(key)).pcap)
        return 0
    if args.rss:
        for path in args.rss:
            rss(path)
        return 0
    if args.replay:
        return replay(args.replay, trace_memory=args.tracemalloc, exports=args.exports)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return fuzz(
        args.seconds,
        args.seed,
        args.save_dir,
        trace_memory=args.tracemalloc,
        max_inputs=args.max_inputs,
        verbose=args.verbose,
        exports=args.exports,
    )


if __name__ == "__main__":
    sys.exit(main())
