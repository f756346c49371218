#!/usr/bin/env python3
"""Build the benchmark capture: real DCMTK peers, C-MOVE of 512x512 images plus C-FIND matches.

    sudo python benchmarks/make_capture.py                   # ~300 MB: benchmarks/work/bench.pcap
    sudo python benchmarks/make_capture.py --size-mb 50 --find-matches 500
    sudo python benchmarks/make_capture.py --double          # also bench-x2.pcap, bench-x4.pcap
    python benchmarks/make_capture.py --replicate-only       # only (re)build the x2/x4 files

Traffic (all of it between unmodified DCMTK 3.6.7 tools, captured by tcpdump):

* dcmqrscp (AE DCMQRSCP, port 11112) holds an archive of studies of 512x512 16-bit CT/MR
  images (~525 KB each; 2 series of 20 images per study at the default size; patients
  BENCH^PATIENTnnn), registered with dcmqridx *before* tcpdump starts.
* While tcpdump runs, two clients work concurrently (so associations interleave):
  - movescu (AE WORKSTATION): one association per study, C-MOVE (Study Root, STUDY level) to
    STORESCP; dcmqrscp opens a sub-association to storescp (port 11113) and sends every image
    as a C-STORE, with a Pending C-MOVE-RSP after each;
  - findscu as viewers VIEWER1..n, one after the other, each browsing the whole archive: one
    association with a STUDY-level query matching every study, then one association per study
    with a SERIES-level query and an IMAGE-level query per series (Study Root).  Every match is
    a Pending C-FIND-RSP with an identifier; n = ceil(--find-matches / images).  dcmqrscp
    leaves out keys its index lacks (ModalitiesInStudy, SeriesDescription, SOPClassUID) yet
    answers FF00, so every match earns a FIND-FF01-SEMANTICS warning: the report path is busy.
* It runs in a private network namespace whose loopback has MTU 1500 and GSO limited to one
  segment, so TCP payloads are at most 1448 bytes as on Ethernet (as tests/peers/runner.py
  does); the capture is checked for that, for dropped packets, for the number of connections
  and that every one of them was closed.

The process handling, tcpdump wrapper, data set builder and DCMTK client wrappers are the ones in
tests/peers/ (imported, not copied).  Names, UIDs and pixel values are fixed, so two runs carry
the same messages; time stamps, TCP ports and the interleaving of associations differ.

--double writes bench-x2.pcap and bench-x4.pcap next to the output: back-to-back copies of the
capture (pcapfile.replicate: copy k shifted in time by k x (duration + 1 s), its IPv4 addresses
moved from 127.0.0.1 to 127.k.0.1 with checksums adjusted), so every copy's connections are
distinct TCP connections and the analysis has 2x / 4x the same work.

Writes <out> and <out stem>.meta.json (plan, expected message counts, capture summary, ports,
runtime).  Needs root, iproute2, tcpdump, DCMTK in /usr/bin, pydicom, numpy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import pcapfile  # noqa: E402

DEFAULT_OUT = HERE / "work" / "bench.pcap"
QR_PORT = 11112
STORE_PORT = 11113
STORE_AET = "STORESCP"
# TCP bytes on the wire per moved 512x512 image (C-STORE + its share of C-MOVE-RSP, ACKs and
# pcap record headers): measured on this set-up, used to turn --size-mb into an image count
WIRE_BYTES_PER_IMAGE = 575_000
SERIES_IMAGES = 20  # images per series (2 series per study) at the default size
MAX_STUDIES = 90  # dcmqrscp.cfg of tests/peers: 100 studies per AE, then it deletes the oldest

# DCMTK at INFO: the TRACE config of tests/peers (every command set dumped) slows the peers down
QUIET_LOG_CONFIG = """\
log4cplus.rootLogger = INFO, console
log4cplus.appender.console = log4cplus::ConsoleAppender
log4cplus.appender.console.layout = log4cplus::PatternLayout
log4cplus.appender.console.layout.ConversionPattern = %D{%H:%M:%S.%Q} %i %p %c: %m%n
"""


# ------------------------------------------------------------------------------------------------
# plan and data
# ------------------------------------------------------------------------------------------------
def build_plan(size_mb: float, find_matches: int) -> dict:
    """Studies in the archive and number of viewers; plain data, the worker gets it as JSON."""
    n_images = max(1, round(size_mb * 1e6 / WIRE_BYTES_PER_IMAGE))
    # 2 series per study, at most MAX_STUDIES studies (dcmqrscp's limit per AE)
    per_series = max(SERIES_IMAGES, math.ceil(n_images / (2 * MAX_STUDIES)))
    studies, left, i = [], n_images, 0
    while left > 0:
        i += 1
        s1 = min(per_series, left)
        s2 = min(per_series, left - s1)
        left -= s1 + s2
        studies.append({"number": 1000 + i, "series": [x for x in (s1, s2) if x]})
    viewers = max(0, math.ceil(find_matches / n_images))
    return {"studies": studies, "images": n_images, "viewers": viewers}


def study_specs(plan: dict) -> list:
    from peers import dataset as data

    out = []
    for idx, s in enumerate(plan["studies"], 1):
        modality = "CT" if idx % 2 else "MR"
        pat = (idx + 1) // 2  # two studies per patient
        out.append(
            data.StudySpec(
                s["number"],
                f"BENCH^PATIENT{pat:03d}",
                f"BEN{pat:04d}",
                f"19{50 + pat % 50:02d}0101",
                "MF"[pat % 2],
                f"2024{1 + idx % 12:02d}{1 + idx % 28:02d}",
                "101500",
                f"{modality} BENCH {idx}",
                f"ACC{s['number']}",
                [
                    data.SeriesSpec(k + 1, modality, f"{modality} SERIES {k + 1}", n, size=512)
                    for k, n in enumerate(s["series"])
                ],
            )
        )
    return out


def _pixels(size: int, seed: int) -> bytes:
    """numpy version of tests/peers/dataset._pixels (same bytes, ~20x faster)."""
    import numpy as np

    y = np.arange(size, dtype=np.int64)[:, None]
    x = np.arange(size, dtype=np.int64)[None, :]
    v = (((y * 7 + seed * 131) & 0x0FFF) + x * 3) & 0x0FFF
    return v.astype("<u2").tobytes()


def write_images(plan: dict, directory: Path) -> list[str]:
    """Write every image of the plan with tests/peers/dataset.make_image; return the paths."""
    from peers import dataset as data

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for st in study_specs(plan):
        for se in st.series:
            for n in range(1, se.images + 1):
                key = (se.size, st.number * 100 + se.number * 10 + n)  # make_image's seed
                data._PIXEL_CACHE[key] = _pixels(*key)  # pre-fill its pixel memo (fast path)
                ds = data.make_image(st, se, n)
                data._PIXEL_CACHE.pop(key, None)
                p = directory / f"{st.number}_{se.number}_{n:03d}.dcm"
                ds.save_as(p, enforce_file_format=True)
                paths.append(str(p))
    return paths


def expected_messages(plan: dict) -> dict[str, int]:
    """DIMSE messages (and associations) in the capture when every operation succeeded."""
    studies = len(plan["studies"])
    series = sum(len(s["series"]) for s in plan["studies"])
    images, viewers = plan["images"], plan["viewers"]
    find_rq = viewers * (1 + studies + series)  # STUDY query; per study SERIES + IMAGE/series
    return {
        "C-FIND-RQ": find_rq,
        "C-FIND-RSP": find_rq + viewers * (studies + series + images),
        "C-MOVE-RQ": studies,
        "C-MOVE-RSP": studies + images,
        "C-STORE-RQ": images,
        "C-STORE-RSP": images,
        "associations": viewers * (1 + studies) + 2 * studies,
    }


# ------------------------------------------------------------------------------------------------
# worker: runs inside the network namespace
# ------------------------------------------------------------------------------------------------
def block_mode_capture(procs, pcap: Path):
    """tests/peers' Capture, with libpcap's block mode instead of --immediate-mode.

    At this volume (100k+ packets a second in bursts, each seen twice on a loopback)
    immediate-mode tcpdump drops packets even with its 64 MiB buffer, because every packet
    wakes it up; in block mode (TPACKET_V3) it keeps up.  Block mode hands over a block when it
    is full or after tcpdump's 1 s timeout, so stop() waits 2 s for the last block before the
    SIGINT (immediate mode exists in tests/peers only to avoid losing that block).
    """
    from peers.proc import Capture, tool_path

    class BlockModeCapture(Capture):
        def start(self) -> None:
            errlog = self.procs.workdir / "tcpdump.log"
            errlog.unlink(missing_ok=True)
            argv = [tool_path("tcpdump"), "-i", "lo", "-n", "-B", "65536", "-U", "-s", "0"]
            argv += ["-Z", "root", "-w", str(self.pcap), "tcp"]
            self.proc = self.procs.start("tcpdump", argv, log=errlog)
            deadline = time.monotonic() + 10
            while "listening on" not in errlog.read_text(errors="replace"):
                if self.proc.popen.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tcpdump failed: {errlog.read_text(errors='replace')}")
                time.sleep(0.05)
            time.sleep(0.3)
            self.started_at = time.time()
            # the peers compete with tcpdump for the cores: let tcpdump win
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, self.proc.pid, -15)

        def stop(self) -> None:
            if self.proc is not None:
                time.sleep(2.0)  # > tcpdump's 1 s block timeout
            super().stop()

    return BlockModeCapture(procs, pcap)


def worker(cfg_path: Path) -> int:
    from peers import dataset as data
    from peers import scenarios as sc

    cfg = json.loads(cfg_path.read_text())
    plan = cfg["plan"]
    studies = study_specs(plan)
    ctx = sc.Ctx("bench", Path(cfg["workdir"]), Path(cfg["stage"]))
    ctx.capture = block_mode_capture(ctx.procs, ctx.capture.pcap)
    (ctx.workdir / "logger.cfg").write_text(QUIET_LOG_CONFIG)
    ctx._images = [Path(p) for p in cfg["images"]]
    errors: list[BaseException] = []
    try:
        # register the images straight into dcmqrscp's index (dcmqridx, no network): loading
        # them with storescu costs ~50 ms per image in dcmqrscp's store path
        db = ctx.workdir / "db" / sc.QR_AET
        db.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        ctx.procs.run(
            "dcmqridx", [sc.dcmtk("dcmqridx"), str(db), *map(str, ctx.images())], timeout=900
        )
        sc.start_dcmqrscp(ctx, QR_PORT, hosts={"store": (STORE_AET, STORE_PORT)}, load=False)
        sc.start_storescp(ctx, STORE_AET, STORE_PORT)
        print(f"archive loaded: {len(ctx.images())} images in {time.monotonic() - t0:.1f} s")

        def browse(viewer: str) -> None:
            """What a viewer does: list the studies, then each study's series and images."""
            q = data.query
            everything = q(
                "STUDY",
                StudyInstanceUID=None,
                StudyDate=None,
                PatientName=None,
                PatientID=None,
                StudyDescription=None,
                AccessionNumber=None,
                ModalitiesInStudy=None,
            )
            sc.findscu(ctx, "S", [everything], QR_PORT, sc.QR_AET, calling=viewer)
            for st in studies:
                queries = [
                    q(
                        "SERIES",
                        StudyInstanceUID=st.uid,
                        SeriesInstanceUID=None,
                        Modality=None,
                        SeriesNumber=None,
                        SeriesDescription=None,
                    )
                ]
                for se in st.series:
                    queries.append(
                        q(
                            "IMAGE",
                            StudyInstanceUID=st.uid,
                            SeriesInstanceUID=data.series_uid(st, se),
                            SOPInstanceUID=None,
                            SOPClassUID=None,
                            InstanceNumber=None,
                        )
                    )
                sc.findscu(ctx, "S", queries, QR_PORT, sc.QR_AET, calling=viewer)

        def finds() -> None:
            for v in range(plan["viewers"]):
                browse(f"VIEWER{v + 1}")

        def moves() -> None:
            for st in studies:
                sc.movescu(
                    ctx,
                    "S",
                    data.query("STUDY", StudyInstanceUID=st.uid),
                    STORE_AET,
                    QR_PORT,
                    calling="WORKSTATION",
                )

        def guarded(fn) -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        ctx.capture.start()
        t0 = time.monotonic()
        threads = [threading.Thread(target=guarded, args=(f,)) for f in (moves, finds)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(f"traffic done in {time.monotonic() - t0:.1f} s")
        ctx.capture.stop()
    finally:
        ctx.cleanup()
    if errors:
        raise errors[0]
    return 0


# ------------------------------------------------------------------------------------------------
# parent: namespace set-up around the worker
# ------------------------------------------------------------------------------------------------
def run_in_namespace(cfg: dict, workdir: Path, timeout: float) -> str:
    from peers.proc import tool_path
    from peers.runner import _ip, _kill_netns_processes, add_loopback_netns

    ns = f"dsn-bench-{os.getpid()}"
    created = False
    try:
        add_loopback_netns(ns)  # as for tests/peers: Ethernet-sized segments
        created = True
        cfg_path = workdir / "worker.json"
        cfg_path.write_text(json.dumps(cfg))
        argv = [
            tool_path("ip"),
            "netns",
            "exec",
            ns,
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            str(cfg_path),
        ]
        worker_proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            out, _ = worker_proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            worker_proc.terminate()  # the worker unwinds through ctx.cleanup()
            try:
                out, _ = worker_proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                worker_proc.kill()
                out, _ = worker_proc.communicate()
            raise RuntimeError(f"capture timed out after {timeout}s:\n{out[-3000:]}") from None
        if worker_proc.returncode != 0:
            raise RuntimeError(
                f"capture failed (exit {worker_proc.returncode}; logs in {workdir}):\n{out[-4000:]}"
            )
        return out
    finally:
        if created:
            _kill_netns_processes(ns)
            _ip("netns", "del", ns, check=False)


def scaled_paths(out: Path) -> dict[int, Path]:
    return {k: out.with_name(f"{out.stem}-x{k}{out.suffix}") for k in (2, 4)}


def make_scaled(out: Path) -> dict[int, pcapfile.PcapInfo]:
    res = {}
    for k, path in scaled_paths(out).items():
        t = time.monotonic()
        res[k] = pcapfile.replicate(out, path, k)
        print(
            f"{path}: {k} copies, {res[k].frames} frames, {res[k].size / 1e6:.1f} MB, "
            f"{res[k].connections} TCP connections ({time.monotonic() - t:.1f} s)"
        )
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Build the benchmark capture with real DCMTK peers (see the module doc)."
    )
    ap.add_argument("--size-mb", type=float, default=300, help="approximate capture size")
    ap.add_argument(
        "--find-matches", type=int, default=3000, help="extra C-FIND matches (64x64 images)"
    )
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--double", action="store_true", help="also write the 2x and 4x captures")
    ap.add_argument(
        "--replicate-only", action="store_true", help="only build the 2x/4x files from --out"
    )
    ap.add_argument(
        "--attempts", type=int, default=3, help="runs of the peers if tcpdump drops packets"
    )
    ap.add_argument("--keep-workdir", action="store_true", help="keep images and peer logs")
    ap.add_argument("--timeout", type=float, default=1200, help="limit for the peer run (s)")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        return worker(args.worker)
    out = args.out.resolve()
    if args.replicate_only:
        if not out.exists():
            ap.error(f"{out} does not exist")
        make_scaled(out)
        return 0

    from peers.proc import PeersUnavailable, check_prerequisites
    from peers.scenarios import SEGMENT_MAX

    try:
        check_prerequisites()
    except PeersUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t_start = time.monotonic()
    plan = build_plan(args.size_mb, args.find_matches)
    workdir = Path(tempfile.mkdtemp(prefix="dsn-bench-"))
    stage: Path | None = None
    ok = False
    try:
        t = time.monotonic()
        images = write_images(plan, workdir / "images")
        t_images = time.monotonic() - t
        print(f"{len(images)} images written in {t_images:.1f} s")
        # tcpdump writes to tmpfs when there is one: no write-back stalls while capturing
        shm = Path("/dev/shm")
        stage_root = shm if shm.is_dir() and os.access(shm, os.W_OK) else workdir
        stage = Path(tempfile.mkdtemp(prefix="dsn-bench-stage-", dir=stage_root))
        cfg = {
            "plan": plan,
            "images": images,
            "workdir": str(workdir / "run"),
            "stage": str(stage),
        }
        t = time.monotonic()
        for attempt in range(1, args.attempts + 1):
            shutil.rmtree(workdir / "run", ignore_errors=True)
            (workdir / "run").mkdir()
            try:
                log = run_in_namespace(cfg, workdir, args.timeout)
                break
            except RuntimeError as exc:
                if "dropped packets" not in str(exc) or attempt == args.attempts:
                    raise
                print(f"attempt {attempt}: tcpdump dropped packets, running the peers again")
        t_peers = time.monotonic() - t
        print(log.rstrip())
        info = pcapfile.scan(stage / "bench.pcap")
        if info.max_tcp_payload > SEGMENT_MAX:
            raise RuntimeError(f"TCP payload of {info.max_tcp_payload} bytes: GSO/MTU not limited")
        expected = expected_messages(plan)
        if (
            info.connections != expected["associations"]
            or info.connections_closed != info.connections
        ):
            raise RuntimeError(
                f"{info.connections} TCP connections ({info.connections_closed} closed), "
                f"expected {expected['associations']}, all closed"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(stage / "bench.pcap"), out)
        info.path = out
        print(
            f"{out}: {info.frames} frames, {info.size / 1e6:.1f} MB, {info.connections} TCP "
            f"connections, max TCP payload {info.max_tcp_payload}, {info.duration:.1f} s of traffic"
        )
        scaled = make_scaled(out) if args.double else {}
        meta = {
            "format": "dimsesniff-bench/1",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "args": {"size_mb": args.size_mb, "find_matches": args.find_matches},
            "plan": plan,
            "expected_messages": expected,
            "dicom_ports": [QR_PORT, STORE_PORT],
            "capture": info.as_dict(),
            "scaled": {f"x{k}": v.as_dict() for k, v in scaled.items()},
            "runtime_s": {
                "images": round(t_images, 1),
                "peers": round(t_peers, 1),
                "total": round(time.monotonic() - t_start, 1),
            },
        }
        meta_path = out.with_suffix(".meta.json")
        meta_path.write_text(json.dumps(meta, indent=1) + "\n")
        print(f"{meta_path} written; total {time.monotonic() - t_start:.1f} s")
        ok = True
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
        if ok and not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            with contextlib.suppress(Exception):
                print(f"work directory kept: {workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
