#!/usr/bin/env python3
"""Speed and memory of dimsesniff against tshark and a plain read of the same capture.

    python benchmarks/bench.py                          # benchmarks/work/bench.pcap, best of 3
    python benchmarks/bench.py FILE --repeat 5 --json out.json
    python benchmarks/bench.py --json                   # the JSON on stdout instead of the table

In one run, on one input file (build it with benchmarks/make_capture.py), it measures:

* raw read: the file read sequentially in 1 MiB chunks by Python, and by `cat FILE > /dev/null`
  (after one warm-up read, so these and everything below read from the page cache);
* tshark: `tshark -r FILE -d tcp.port==N,dicom ... -o dicom.tag_tree:TRUE -T fields
  -e frame.number -e dicom.tag.value.16u > /dev/null`, one -d per DICOM server port;
* dimsesniff: `dimsesniff analyze FILE -o TMP -q --fail-on never` (the full analysis, every
  rule on), its modules byte-compiled first as `pip install` leaves them;

each best of --repeat runs (interleaved: read, cat, tshark, dimsesniff, then again), with the
ratios tshark / dimsesniff and dimsesniff / raw read (Python), and the peak RSS of every
tshark and dimsesniff process (wait4 rusage of that child).  Then dimsesniff once on the 2x and
4x captures (<stem>-x2 / -x4 next to FILE, from make_capture.py --double) for the memory check.
It prints the frames, MB (10^6 bytes) and what dimsesniff found (messages by command).

Scaling (skip with --no-workers): `dimsesniff analyze FILE --workers W` for W = 1 (serial),
2 and all (os.cpu_count()), each best of --repeat, with the speed-up over W = 1 and whether
the sharded run found the same.  Each worker reads the whole file, so on a machine with few
cores or a slow disk the speed-up stays small; the local Dask cluster's start-up (a few
seconds) is included.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import pcapfile  # noqa: E402

DEFAULT_FILE = HERE / "work" / "bench.pcap"
CHUNK = 1 << 20


# ------------------------------------------------------------------------------------------------
# running things
# ------------------------------------------------------------------------------------------------
TIME = Path("/usr/bin/time")  # GNU time: peak RSS of exactly the measured process


def run_measured(argv: list[str], stdout=subprocess.DEVNULL) -> dict:
    """Run argv to completion: wall time, CPU time (user+sys) and peak RSS in KiB.

    Through GNU time (-f '%M %U %S') when it is installed: a vfork()ed child of this Python
    process inherits this process's RSS high-water mark at exec, so wait4's ru_maxrss would
    report at least the benchmark's own peak; /usr/bin/time's fork()ed child starts small.
    """
    with tempfile.TemporaryDirectory(prefix="dsn-bench-run-") as tmp:
        timefile = Path(tmp) / "time"
        full = [str(TIME), "-f", "%M %U %S", "-o", str(timefile), *argv] if TIME.exists() else argv
        with open(Path(tmp) / "stderr", "w+b") as err:
            t0 = time.perf_counter()
            p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err)
            _pid, status, ru = os.wait4(p.pid, 0)
            elapsed = time.perf_counter() - t0
            p.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        if p.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} exited with {p.returncode}:\n{stderr[-2000:]}")
        if TIME.exists():
            rss, user, sys_ = timefile.read_text().split()[-3:]
            return {"seconds": elapsed, "cpu_s": float(user) + float(sys_), "max_rss_kib": int(rss)}
    return {
        "seconds": elapsed,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "max_rss_kib": ru.ru_maxrss,
    }


def python_read(path: Path) -> dict:
    buf = bytearray(CHUNK)
    n = 0
    c0 = time.process_time()
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while True:
            got = f.readinto(buf)
            if not got:
                break
            n += got
    return {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "bytes": n}


def tshark_argv(path: Path, ports: list[int]) -> list[str]:
    argv = ["tshark", "-r", str(path)]
    for p in ports:
        argv += ["-d", f"tcp.port=={p},dicom"]
    argv += ["-o", "dicom.tag_tree:TRUE", "-T", "fields"]
    argv += ["-e", "frame.number", "-e", "dicom.tag.value.16u"]
    return argv


def precompile() -> None:
    """Byte-compile dimsesniff as ``pip install`` does, once, before anything is timed.

    With ``PYTHONDONTWRITEBYTECODE`` set (as on some CI and development machines) an
    editable install never keeps its ``.pyc`` files, and every run would spend ~0.2 s
    compiling the package: a cost of the machine, not of the tool.
    """
    import compileall
    import importlib.util

    for name in ("dimsesniff", "dissectors"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            for folder in spec.submodule_search_locations:
                compileall.compile_dir(folder, quiet=1)


def dimsesniff_cmd(given: str | None) -> list[str]:
    if given:
        return shlex.split(given)
    script = Path(sys.executable).parent / "dimsesniff"  # the console script, no pyenv shim
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "dimsesniff"]


def dimsesniff_argv(cmd: list[str], path: Path, out: Path, *extra: str) -> list[str]:
    return [*cmd, "analyze", str(path), "-o", str(out), "-q", "--fail-on", "never", *extra]


def worker_counts() -> list[int]:
    """1 (serial), 2 and every CPU, without repeats."""
    return sorted({1, 2, os.cpu_count() or 1})


def scaling(cmd: list[str], path: Path, repeat: int, found: dict, out: Path, log) -> dict:
    """``--workers W`` for each worker count: best wall time and speed-up over W = 1."""
    res: dict[str, dict] = {}
    for workers in worker_counts():
        rs = []
        for i in range(repeat):
            shutil.rmtree(out / "workers", ignore_errors=True)
            r = run_measured(dimsesniff_argv(cmd, path, out / "workers", "--workers", str(workers)))
            rs.append(r)
            log(f"  run {i + 1}/{repeat}: dimsesniff --workers {workers} {r['seconds']:.1f} s")
        best = min(r["seconds"] for r in rs)
        res[str(workers)] = {
            "best_s": round(best, 3),
            "runs_s": [round(r["seconds"], 3) for r in rs],
            "best_cpu_s": round(min(r["cpu_s"] for r in rs), 3),
            "same_output": read_results(out / "workers") == found,
        }
    serial = res["1"]["best_s"]
    for entry in res.values():
        entry["speedup"] = round(serial / entry["best_s"], 2)
    return res


def read_results(out: Path) -> dict:
    """What dimsesniff found: messages by command, associations, findings."""

    def rows(name: str) -> list[dict]:
        p = out / name
        if not p.exists():
            return []
        with open(p, newline="") as f:
            return list(csv.DictReader(f))

    msgs = rows("messages.csv")
    by_cmd = Counter(r.get("command", "?") for r in msgs)
    findings = rows("violations.csv")
    return {
        "messages": len(msgs),
        "by_command": dict(sorted(by_cmd.items())),
        "associations": len(rows("associations.csv")),
        "findings": len(findings),
        "findings_by_rule": dict(Counter(r.get("rule", "?") for r in findings).most_common()),
    }


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (out.splitlines() or ["unknown"])[0].strip()


def git_revision() -> str | None:
    """HEAD of the checkout, with '+dirty' when the working tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(HERE.parent), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+dirty" if dirty else "")) or None


def scaled_files(path: Path) -> dict[str, Path]:
    return {f"x{k}": path.with_name(f"{path.stem}-x{k}{path.suffix}") for k in (2, 4)}


# ------------------------------------------------------------------------------------------------
# the benchmark
# ------------------------------------------------------------------------------------------------
def bench(args: argparse.Namespace, log) -> dict:
    path = args.file.resolve()
    info = pcapfile.scan(path)
    meta_path = path.with_suffix(".meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if args.port:
        ports = sorted(set(args.port))
    elif meta.get("dicom_ports"):
        ports = sorted(meta["dicom_ports"])
    else:  # every port a connection was opened to
        ports = sorted(info.server_ports)
    cmd = dimsesniff_cmd(args.dimsesniff)
    have_tshark = not args.no_tshark and shutil.which("tshark") is not None
    have_cat = shutil.which("cat") is not None
    result: dict = {
        "format": "dimsesniff-bench/1",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "tshark": tool_version(["tshark", "--version"]) if have_tshark else None,
            "dimsesniff": tool_version([*cmd, "version"]),
            "git": git_revision(),
            "loadavg_before": os.getloadavg()[0],
        },
        "file": {
            "path": str(path),
            "bytes": info.size,
            "mb": round(info.size / 1e6, 1),
            "frames": info.frames,
            "tcp_connections": info.connections,
            "tcp_payload_bytes": info.tcp_payload_bytes,
            "dicom_ports": ports,
        },
        "repeat": args.repeat,
        "commands": {
            "tshark": shlex.join(tshark_argv(path, ports)) + " > /dev/null",
            "dimsesniff": shlex.join(dimsesniff_argv(cmd, path, Path("TMP"))),
            "cat": f"cat {shlex.quote(str(path))} > /dev/null",
        },
    }
    runs: dict[str, list[dict]] = {
        "read_python": [],
        "read_cat": [],
        "tshark": [],
        "dimsesniff": [],
    }
    log(f"{path}: {info.size / 1e6:.1f} MB, {info.frames} frames; DICOM ports {ports}")
    python_read(path)  # warm the page cache: every measurement reads from memory
    precompile()
    with tempfile.TemporaryDirectory(prefix="dsn-bench-out-") as tmp:
        out = Path(tmp)
        for i in range(args.repeat):
            runs["read_python"].append(python_read(path))
            if have_cat:
                with open(os.devnull, "wb") as null:
                    runs["read_cat"].append(run_measured(["cat", str(path)], stdout=null))
            if have_tshark:
                r = run_measured(tshark_argv(path, ports))
                runs["tshark"].append(r)
                log(f"  run {i + 1}/{args.repeat}: tshark {r['seconds']:.1f} s")
            shutil.rmtree(out / "x1", ignore_errors=True)
            r = run_measured(dimsesniff_argv(cmd, path, out / "x1"))
            runs["dimsesniff"].append(r)
            log(f"  run {i + 1}/{args.repeat}: dimsesniff {r['seconds']:.1f} s")
        found = read_results(out / "x1")
        scale: dict[str, dict] = {
            "x1": {
                "mb": round(info.size / 1e6, 1),
                "seconds": min(r["seconds"] for r in runs["dimsesniff"]),
                "cpu_s": min(r["cpu_s"] for r in runs["dimsesniff"]),
                "max_rss_kib": max(r["max_rss_kib"] for r in runs["dimsesniff"]),
                "messages": found["messages"],
            }
        }
        scaled = None
        if not args.no_workers:
            scaled = scaling(cmd, path, args.repeat, found, out, log)
        if not args.no_scale:
            for name, p in scaled_files(path).items():
                if not p.exists():
                    log(f"  {p} missing (make_capture.py --double): no {name} memory check")
                    continue
                r = run_measured(dimsesniff_argv(cmd, p, out / name))
                got = read_results(out / name)
                scale[name] = {
                    "mb": round(p.stat().st_size / 1e6, 1),
                    "seconds": r["seconds"],
                    "cpu_s": r["cpu_s"],
                    "max_rss_kib": r["max_rss_kib"],
                    "messages": got["messages"],
                }
                log(f"  {name}: dimsesniff {r['seconds']:.1f} s, {r['max_rss_kib'] / 1024:.0f} MiB")

    def summary(rs: list[dict]) -> dict | None:
        if not rs:
            return None
        best = min(r["seconds"] for r in rs)
        s = {
            "best_s": round(best, 3),
            "runs_s": [round(r["seconds"], 3) for r in rs],
            "mb_per_s": round(info.size / 1e6 / best, 1),
        }
        if "cpu_s" in rs[0]:
            s["cpu_s"] = [round(r["cpu_s"], 3) for r in rs]
            s["best_cpu_s"] = round(min(r["cpu_s"] for r in rs), 3)
        if "max_rss_kib" in rs[0]:
            s["max_rss_mib"] = round(max(r["max_rss_kib"] for r in rs) / 1024, 1)
        return s

    result["times"] = {k: summary(v) for k, v in runs.items()}
    t = result["times"]
    ratios = {}
    if t["tshark"]:
        ratios["tshark_over_dimsesniff"] = round(
            t["tshark"]["best_s"] / t["dimsesniff"]["best_s"], 2
        )
        ratios["tshark_over_dimsesniff_cpu"] = round(
            t["tshark"]["best_cpu_s"] / t["dimsesniff"]["best_cpu_s"], 2
        )
    ratios["dimsesniff_over_read_python"] = round(
        t["dimsesniff"]["best_s"] / t["read_python"]["best_s"], 1
    )
    if t["read_cat"]:
        ratios["dimsesniff_over_read_cat"] = round(
            t["dimsesniff"]["best_s"] / t["read_cat"]["best_s"], 1
        )
    result["ratios"] = ratios
    result["memory"] = {
        k: {
            "file_mb": v["mb"],
            "max_rss_mib": round(v["max_rss_kib"] / 1024, 1),
            "seconds": round(v["seconds"], 2),
            "cpu_s": round(v["cpu_s"], 2),
            "messages": v["messages"],
        }
        for k, v in scale.items()
    }
    if t["tshark"]:
        result["memory"]["tshark_x1"] = {
            "file_mb": round(info.size / 1e6, 1),
            "max_rss_mib": t["tshark"]["max_rss_mib"],
        }
    result["found"] = found
    if scaled is not None:
        result["scaling"] = scaled
    if meta.get("expected_messages"):
        exp = dict(meta["expected_messages"])
        exp_assocs = exp.pop("associations", None)
        result["expected"] = {
            "by_command": exp,
            "associations": exp_assocs,
            "match": exp == found["by_command"] and exp_assocs == found["associations"],
        }
    return result


def table(res: dict) -> str:
    f, t, h = res["file"], res["times"], res["host"]
    lines = [
        f"dimsesniff benchmark, {res['date']}, {h['nproc']} cores, Python {h['python']}",
        f"  dimsesniff {h['dimsesniff']} (git {h['git']}); {h['tshark'] or 'tshark not run'}",
        f"  load average before: {h['loadavg_before']:.2f}",
        f"capture: {f['path']}",
        f"  {f['mb']} MB, {f['frames']} frames, {f['tcp_connections']} TCP connections, "
        f"DICOM ports {', '.join(map(str, f['dicom_ports']))}",
    ]
    found = res["found"]
    lines.append(
        f"dimsesniff found: {found['associations']} associations, {found['messages']} messages, "
        f"{found['findings']} findings"
    )
    lines.append("  " + ", ".join(f"{k} {v}" for k, v in found["by_command"].items()))
    if "expected" in res:
        lines.append(
            "  expected from make_capture: "
            + ("all match" if res["expected"]["match"] else f"MISMATCH {res['expected']}")
        )
    lines.append("")
    head = f"best of {res['repeat']}"
    lines.append(
        f"{head:28s} {'best s':>8s} {'CPU s':>8s} {'MB/s':>8s} {'peak RSS':>10s}  wall s, each run"
    )
    names = {
        "read_python": "raw read (Python, 1 MiB)",
        "read_cat": "raw read (cat > /dev/null)",
        "tshark": "tshark -T fields",
        "dimsesniff": "dimsesniff analyze",
    }
    for key, label in names.items():
        s = t.get(key)
        if not s:
            continue
        rss = f"{s['max_rss_mib']:.0f} MiB" if "max_rss_mib" in s else "-"
        cpu = f"{s['best_cpu_s']:8.2f}" if "best_cpu_s" in s else f"{'-':>8s}"
        runs = " ".join(f"{x:.2f}" for x in s["runs_s"])
        lines.append(
            f"{label:28s} {s['best_s']:8.2f} {cpu} {s['mb_per_s']:8.1f} {rss:>10s}  {runs}"
        )
    lines.append("")
    r = res["ratios"]
    parts = []
    if "tshark_over_dimsesniff" in r:
        parts.append(
            f"tshark / dimsesniff = {r['tshark_over_dimsesniff']:.2f} "
            f"(CPU time: {r['tshark_over_dimsesniff_cpu']:.2f})"
        )
    parts.append(f"dimsesniff / raw read (Python) = {r['dimsesniff_over_read_python']:.0f}")
    if "dimsesniff_over_read_cat" in r:
        parts.append(f"dimsesniff / cat = {r['dimsesniff_over_read_cat']:.0f}")
    lines.append("ratios: " + "; ".join(parts))
    lines.append("")
    lines.append(
        f"{'peak RSS':28s} {'file MB':>8s} {'RSS MiB':>8s} {'wall s':>8s} {'CPU s':>8s} "
        f"{'messages':>9s}"
    )
    for k, v in res["memory"].items():
        label = "tshark x1" if k == "tshark_x1" else f"dimsesniff {k}"
        secs = f"{v['seconds']:8.1f}" if "seconds" in v else f"{'-':>8s}"
        cpu = f"{v['cpu_s']:8.1f}" if "cpu_s" in v else f"{'-':>8s}"
        msgs = f"{v['messages']:9d}" if "messages" in v else f"{'-':>9s}"
        lines.append(f"{label:28s} {v['file_mb']:8.1f} {v['max_rss_mib']:8.0f} {secs} {cpu} {msgs}")
    if res.get("scaling"):
        lines.append("")
        lines.append(f"{'dimsesniff --workers':28s} {'best s':>8s} {'speed-up':>9s}  same output")
        for workers, v in res["scaling"].items():
            label = f"  {workers}" + (" (serial)" if workers == "1" else "")
            lines.append(
                f"{label:28s} {v['best_s']:8.2f} {v['speedup']:8.2f}x  "
                f"{'yes' if v['same_output'] else 'NO'}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="dimsesniff vs tshark vs a raw read (module doc).")
    ap.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    ap.add_argument("-n", "--repeat", type=int, default=3, help="runs per tool; best is kept")
    ap.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="write the results as JSON to PATH (no PATH or '-': to stdout, instead of the table)",
    )
    ap.add_argument("--port", type=int, action="append", help="DICOM port for tshark -d")
    ap.add_argument("--no-tshark", action="store_true", help="skip tshark")
    ap.add_argument("--no-scale", action="store_true", help="skip the 2x/4x memory check")
    ap.add_argument(
        "--no-workers", action="store_true", help="skip the --workers 1/2/all scaling runs"
    )
    ap.add_argument("--dimsesniff", help="command to run dimsesniff (default: console script)")
    args = ap.parse_args(argv)
    if not args.file.exists():
        ap.error(f"{args.file} not found: build it with benchmarks/make_capture.py")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    to_stdout = args.json == "-"

    def log(msg: str) -> None:
        print(msg, file=sys.stderr if to_stdout else sys.stdout, flush=True)

    res = bench(args, log)
    if to_stdout:
        print(json.dumps(res, indent=1))
    else:
        print()
        print(table(res))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
            print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
