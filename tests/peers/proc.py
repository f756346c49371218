"""Process helpers used inside the scenario network namespace.

Every process is started in its own session (so it and its forked children, e.g. dcmqrscp's
per-association children, form one process group) and is ended by that group id only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

DCMTK_BIN = Path("/usr/bin")  # the pyenv shims shadow findscu/storescu/... with pynetdicom's apps


class PeersUnavailable(RuntimeError):
    """Raised when the tools needed to run live peers (root, ip, tcpdump, DCMTK) are missing."""


def dcmtk(tool: str) -> str:
    """Absolute path of a DCMTK binary (never the pynetdicom app of the same name)."""
    p = DCMTK_BIN / tool
    if not p.exists():
        raise PeersUnavailable(f"DCMTK tool {p} not found (install the Debian 'dcmtk' package)")
    return str(p)


def dcmtk_version() -> str:
    try:
        out = subprocess.run(
            [dcmtk("echoscu"), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except Exception:  # noqa: BLE001
        return "unknown"
    for line in out.splitlines():
        if "$dcmtk:" in line:
            # "$dcmtk: echoscu v3.6.7 2022-04-22 $"
            parts = line.split()
            for p in parts:
                if p.startswith("v") and p[1:2].isdigit():
                    return p[1:]
    return "unknown"


def check_prerequisites() -> None:
    """Raise PeersUnavailable with a clear message if live peers cannot be run here."""
    problems = []
    if os.name != "posix" or not hasattr(os, "geteuid"):
        problems.append("needs Linux")
    elif os.geteuid() != 0:
        problems.append("needs root (creates a network namespace and runs tcpdump)")
    for tool in ("ip", "tcpdump"):
        if (
            shutil.which(tool) is None
            and not Path("/usr/sbin", tool).exists()
            and not Path("/usr/bin", tool).exists()
        ):
            problems.append(f"'{tool}' not found")
    for tool in ("dcmqrscp", "storescp", "storescu", "findscu", "movescu", "echoscu"):
        if not (DCMTK_BIN / tool).exists():
            problems.append(f"DCMTK '{tool}' not found in {DCMTK_BIN}")
    try:
        import pydicom  # noqa: F401
        import pynetdicom  # noqa: F401
    except ImportError as exc:
        problems.append(f"python package missing: {exc.name}")
    if problems:
        raise PeersUnavailable("cannot run live DICOM peers: " + "; ".join(problems))


def tool_path(name: str) -> str:
    p = shutil.which(name)
    if p:
        return p
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if Path(d, name).exists():
            return str(Path(d, name))
    raise PeersUnavailable(f"'{name}' not found")


def port_listening(port: int) -> bool:
    """True if something listens on TCP `port` in the current network namespace."""
    want = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 3 and f[1].endswith(want) and f[3] == "0A":
                return True
    return False


def wait_listening(port: int, timeout: float = 10.0, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_listening(port):
            return
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode} before listening "
                f"on port {port}; see {proc.log}"
            )
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


class Proc:
    def __init__(self, name: str, popen: subprocess.Popen, log: Path, forks: bool = False):
        self.name = name
        self.popen = popen
        self.log = log
        self.forks = forks  # leaves forked children in its process group (dcmqrscp)

    @property
    def pid(self) -> int:
        return self.popen.pid


class ProcSet:
    """Starts processes (each in its own session) and ends exactly those, by process group id."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs: list[Proc] = []

    def start(
        self,
        name: str,
        argv: list[str],
        log: Path | None = None,
        cwd: Path | None = None,
        forks: bool = False,
    ) -> Proc:
        log = log or self.workdir / f"{name}.log"
        fh = open(log, "ab")  # noqa: SIM115
        try:
            popen = subprocess.Popen(
                argv,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd or self.workdir,
                start_new_session=True,
            )
        finally:
            fh.close()
        p = Proc(name, popen, log, forks)
        self.procs.append(p)
        return p

    def run(
        self,
        name: str,
        argv: list[str],
        log: Path | None = None,
        timeout: float = 60.0,
        ok_codes: tuple[int, ...] | None = (0,),
    ) -> int:
        """Run a client to completion; return its exit code."""
        p = self.start(name, argv, log)
        try:
            rc = p.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(p)
            raise RuntimeError(f"{name} timed out after {timeout}s; see {p.log}") from None
        if ok_codes is not None and rc not in ok_codes:
            raise RuntimeError(f"{name} exited with {rc}; see {p.log}")
        return rc

    @staticmethod
    def stop(p: Proc, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
        if p.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)
            try:
                p.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.popen.wait(timeout=timeout)
        if p.forks:
            # forked children of a server (dcmqrscp) may outlive the group leader
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            with contextlib.suppress(Exception):
                self.stop(p)


class Capture:
    """tcpdump on the namespace loopback, started/stopped around the interesting traffic."""

    def __init__(self, procs: ProcSet, pcap: Path):
        self.procs = procs
        self.pcap = pcap
        self.proc: Proc | None = None
        self.started_at: float | None = None
        self.stats: str = ""

    def start(self) -> None:
        errlog = self.procs.workdir / "tcpdump.log"
        errlog.unlink(missing_ok=True)
        # -U: packet-buffered output; -s 0: full packets; -n: no name lookups;
        # --immediate-mode: without it libpcap holds packets in a ring block for up to 1 s and
        # tcpdump discards that block when it gets SIGINT, truncating the capture;
        # -B 65536: a 64 MiB kernel buffer, so loopback bursts are not dropped;
        # -Z root: keep the file owned by root instead of the 'tcpdump' user
        argv = [
            tool_path("tcpdump"),
            "-i",
            "lo",
            "-n",
            "--immediate-mode",
            "-B",
            "65536",
            "-U",
            "-s",
            "0",
            "-Z",
            "root",
            "-w",
            str(self.pcap),
            "tcp",
        ]
        self.proc = self.procs.start("tcpdump", argv, log=errlog)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "listening on" in errlog.read_text(errors="replace"):
                break
            if self.proc.popen.poll() is not None:
                raise RuntimeError(f"tcpdump failed: {errlog.read_text(errors='replace')}")
            time.sleep(0.05)
        else:
            raise RuntimeError("tcpdump did not start listening within 10 s")
        time.sleep(0.3)
        self.started_at = time.time()

    def stop(self) -> None:
        if self.proc is None:
            return
        time.sleep(0.5)  # let the last FIN/ACKs through
        ProcSet.stop(self.proc, signal.SIGINT)
        self.stats = (self.procs.workdir / "tcpdump.log").read_text(errors="replace")
        self.proc = None
        if "0 packets dropped by kernel" not in self.stats:
            raise RuntimeError(f"tcpdump dropped packets:\n{self.stats}")
