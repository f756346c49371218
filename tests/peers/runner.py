"""Regenerate a sample capture with live peers: the API for tests and samples/make_samples.py.

    from tests.peers import generate        # (or `from peers import ...` with tests/ on sys.path)
    pcap, peerlog = generate("dcmtk-move", tmp_path)

generate() needs root, iproute2, tcpdump and DCMTK (Debian package paths in /usr/bin); it raises
PeersUnavailable with a readable reason otherwise.  Each call creates a private network namespace
(loopback only, MTU 1500 and GSO limited so TCP segments carry at most 1448 bytes), runs the
scenario in a worker process inside it, and always removes the namespace and every process in
it afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .proc import PeersUnavailable, check_prerequisites, tool_path
from .scenarios import SCENARIOS

PEERS_PARENT = Path(__file__).resolve().parent.parent  # the directory holding the package

__all__ = ["generate", "scenario_names", "load_peerlog", "PeersUnavailable", "check_prerequisites"]


def scenario_names() -> list[str]:
    return list(SCENARIOS)


def load_peerlog(path: Path) -> dict:
    """Read a `<name>.peerlog.json` (format described in samples/README.md)."""
    return json.loads(Path(path).read_text())


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool_path("ip"), *args], capture_output=True, text=True, check=check, timeout=30
    )


def add_loopback_netns(ns: str) -> None:
    """Create network namespace ``ns``, its loopback up with Ethernet-sized segments.

    MTU 1500, and GSO limited to one 1500-byte segment: without that limit the
    kernel hands tcpdump 64 KiB super-segments even at MTU 1500.  Raises
    ``PeersUnavailable`` (with the namespace removed again) when it cannot.
    """
    r = _ip("netns", "add", ns, check=False)
    if r.returncode != 0:
        raise PeersUnavailable(f"cannot create network namespace: {r.stderr.strip()}")
    try:
        _ip("netns", "exec", ns, "ip", "link", "set", "lo", "mtu", "1500", "up")
        r = _ip(
            "netns", "exec", ns, "ip", "link", "set", "lo",
            "gso_max_size", "1500", "gso_max_segs", "1",
            check=False,
        )  # fmt: skip
        if r.returncode != 0:
            raise PeersUnavailable(f"cannot limit GSO on the namespace loopback: {r.stderr}")
    except BaseException:
        _ip("netns", "del", ns, check=False)
        raise


def _netns_pids(ns: str) -> list[int]:
    r = _ip("netns", "pids", ns, check=False)
    return [int(x) for x in r.stdout.split() if x.strip().isdigit()]


def _kill_netns_processes(ns: str) -> None:
    """Every process in our private namespace is one we started: end them by pid."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _netns_pids(ns)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and _netns_pids(ns):
            time.sleep(0.05)


def generate(
    name: str, out_dir: Path, *, keep_workdir: bool = False, timeout: float = 180.0
) -> tuple[Path, Path]:
    """Run scenario `name`; write `<name>.pcap` and `<name>.peerlog.json` into out_dir.

    Returns (pcap_path, peerlog_path).  Raises PeersUnavailable if the environment cannot run
    live peers, KeyError for an unknown scenario, RuntimeError if the scenario fails.
    """
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    check_prerequisites()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    ns = f"dsn-{os.getpid()}-{int(time.time() * 1000) % 100000}"
    workdir = Path(tempfile.mkdtemp(prefix=f"dsn-{name}-"))
    created = False
    try:
        add_loopback_netns(ns)
        created = True
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "from peers.scenarios import worker_main; "
            "sys.exit(worker_main(sys.argv[2:]))"
        )
        stage = workdir / "out"  # results move to out_dir only when the scenario succeeded
        argv = [
            tool_path("ip"),
            "netns",
            "exec",
            ns,
            sys.executable,
            "-c",
            code,
            str(PEERS_PARENT),
            name,
            str(stage),
            str(workdir / "run"),
        ]
        worker = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            _out, err = worker.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            keep_workdir = True
            worker.terminate()  # the worker stops its peers and tcpdump on SIGTERM
            try:
                worker.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.communicate()
            raise RuntimeError(
                f"scenario {name} timed out after {timeout}s (logs kept in {workdir})"
            ) from exc
        except BaseException:
            worker.kill()
            worker.communicate()
            raise
        if worker.returncode != 0:
            keep_workdir = True
            raise RuntimeError(
                f"scenario {name} failed (exit {worker.returncode}); logs kept "
                f"in {workdir}\n{err[-4000:]}"
            )
        results = []
        for src in (stage / f"{name}.pcap", stage / f"{name}.peerlog.json"):
            dst = out_dir / src.name
            shutil.copyfile(src, dst)
            results.append(dst)
        return results[0], results[1]
    finally:
        if created:
            _kill_netns_processes(ns)
            _ip("netns", "del", ns, check=False)
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
