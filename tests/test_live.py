"""``dimsesniff live``: capture on the loopback interface while real peers talk.

The capture tests need root (CAP_NET_RAW) and run ``dimsesniff live`` as a
subprocess on ``lo`` with a filter on a free port, so other traffic on the host
does not reach them.  Peers: DCMTK findscu and a pynetdicom SCU against the
deliberately non-conformant SCP of ``tests/peers/badscp.py``, and pynetdicom
SCPs.  The soak test runs only with ``DIMSESNIFF_SOAK=<seconds>``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from dimsesniff import live_cli
from dimsesniff.live import PcapngWriter
from dimsesniff.live_cli import alert_line, printable
from dimsesniff.report.rotating import RotatePolicy, Rotating, parse_rotate
from dimsesniff.sources import FrameReader

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
VERIFICATION = "1.2.840.10008.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
TABLES = ("messages", "associations", "violations")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Live:
    """``dimsesniff live`` as a subprocess; stdout and stderr go to files in ``workdir``."""

    def __init__(self, workdir: Path, *args: str, ready: bool = True) -> None:
        self.workdir = workdir
        self.out = workdir / "live.stdout"
        self.err = workdir / "live.stderr"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dimsesniff", "live", *args],
                cwd=workdir,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        if ready:
            wait_until(
                lambda: "capturing on" in self.stderr() or self.proc.poll() is not None,
                30,
                "the capture to start",
            )
            assert self.proc.poll() is None, self.stderr()

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def live_runs() -> Iterator[list[Live]]:
    """Every ``Live`` started in a test is ended (by its own PID) when the test ends."""
    runs: list[Live] = []
    yield runs
    for run in runs:
        run.kill()


@pytest.fixture
def root(require_tool) -> None:
    require_tool("root")


def start_live(runs: list[Live], workdir: Path, *args: str, **kwargs) -> Live:
    run = Live(workdir, *args, **kwargs)
    runs.append(run)
    return run


def analyze_offline(workdir: Path, captures: list[Path], *extra: str) -> Path:
    out = workdir / "offline"
    argv = [sys.executable, "-m", "dimsesniff", "analyze", *map(str, captures), "-o", str(out)]
    proc = subprocess.run([*argv, "-q", "--fail-on", "never", *extra], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@contextlib.contextmanager
def echo_scp(port: int, status: int = 0x0000) -> Iterator[None]:
    """A pynetdicom Verification SCP answering C-ECHO with ``status``."""
    from pynetdicom import AE, evt

    ae = AE(ae_title="ECHOSCP")
    ae.add_supported_context(VERIFICATION)
    ae.add_supported_context(STUDY_ROOT_FIND)
    server = ae.start_server(
        (HOST, port), block=False, evt_handlers=[(evt.EVT_C_ECHO, lambda _event: status)]
    )
    try:
        yield
    finally:
        server.shutdown()


def echo_once(port: int) -> None:
    assoc = echo_association(port)
    assoc.send_c_echo()
    assoc.release()


def echo_association(port: int, aet: str = "ECHOSCU"):
    from pynetdicom import AE

    ae = AE(ae_title=aet)
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(HOST, port, ae_title="ECHOSCP")
    assert assoc.is_established
    return assoc


class LineWatcher:
    """Notes when each line first appears in a file that another process writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            for line in self.path.read_text(errors="replace").splitlines():
                if " -> " in line:
                    self.seen.setdefault(line, now)
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def line_time(line: str) -> float:
    """The capture time at the start of a finding line (``2026-11-03T12:00:00.123Z``)."""
    return datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()


# -- findings as they happen, from DCMTK and pynetdicom against the non-conformant SCP ----------


def test_findings_from_real_peers_appear_live(tmp_path, root, require_tool, live_runs):
    require_tool("dcmtk")
    from pynetdicom import AE

    from tests.peers import dataset as data
    from tests.peers.badscp import BAD_AET, BAD_SCENARIOS, BadScp, find_query

    port = free_port()
    scenario = BAD_SCENARIOS["bad-find"]
    scp = BadScp(port, scenario.assocs, tmp_path / "badscp.log")
    planted = {
        ae.calling_ae: {r for op in ae.ops for rsp in op.responses for r in rsp.plant}
        for ae in scenario.assocs
    }
    live = start_live(
        live_runs,
        tmp_path,
        *("-i", "lo", "-f", f"tcp port {port}", "-o", "out", "--duration", "120"),
        *("--write-pcap", "live.pcapng", "--phi-key", "k", "--status-every", "1"),
    )
    watcher = LineWatcher(live.out)
    try:
        # DCMTK findscu: one association, two queries (0300, then A801 in a C-FIND).
        queries = [str(data.write_query(tmp_path / f"q{n}.dcm", find_query())) for n in (1, 2)]
        subprocess.run(
            ["/usr/bin/findscu", "-S", "-aet", "FINDSCU", "-aec", BAD_AET, HOST, str(port)]
            + queries,
            capture_output=True,
            timeout=60,
            check=False,
        )
        # pynetdicom: three operations, each with a planted response.
        ae = AE(ae_title="PYFINDSCU")
        ae.add_requested_context(STUDY_ROOT_FIND)
        assoc = ae.associate(HOST, port, ae_title=BAD_AET)
        assert assoc.is_established
        for n in range(3):
            list(assoc.send_c_find(find_query(), STUDY_ROOT_FIND, msg_id=n + 1))
        assoc.release()
        scp.wait_idle()
        wait_until(lambda: len(watcher.seen) >= 5, 5, "five finding lines")
    finally:
        watcher.stop()
        scp.shutdown()
    assert not scp.errors
    # Each line appears well within a second of the message that caused it (its timestamp).
    latencies = {
        line.split("  ", 1)[1].split()[1]: round(seen - line_time(line), 3)
        for line, seen in watcher.seen.items()
    }
    print(f"\nseconds from message to its finding line: {latencies}")
    assert max(latencies.values()) < 1.0, latencies

    lines = [line for line in live.stdout().splitlines() if " -> " in line]
    for calling_ae, rules in planted.items():
        for rule in rules:
            assert any(f" {calling_ae} -> " in ln and f" {rule} " in ln for ln in lines), rule
    # The status line counts what happened.
    wait_until(lambda: re.search(r"packets [1-9]\d* .*kernel drops 0", live.stderr()), 5, "status")

    assert live.stop(signal.SIGINT) == 0
    out = tmp_path / "out"
    violations = pd.read_csv(out / "violations.csv")
    assert sorted(violations["rule"]) == sorted(ln.split("  ", 1)[1].split()[1] for ln in lines)
    messages = pd.read_csv(out / "messages.csv")
    assert set(messages["status"].dropna()) >= {"0x0300", "0xA801", "0xA700", "0xFF00"}
    associations = pd.read_csv(out / "associations.csv")
    assert list(associations["calling_ae"]) == ["FINDSCU", "PYFINDSCU"]
    assert set(associations["end_reason"]) == {"released"}
    assert "capture ended (stopped by SIGINT)" in live.stdout() and "findings:" in live.stdout()

    # The pcapng copy, analysed offline, gives the same tables.
    offline = analyze_offline(tmp_path, [tmp_path / "live.pcapng"], "--phi-key", "k")
    for table in TABLES:
        assert (out / f"{table}.csv").read_bytes() == (offline / f"{table}.csv").read_bytes()


# -- stopping --------------------------------------------------------------------------------


def test_sigint_mid_association_leaves_complete_files(tmp_path, root, live_runs):
    port = free_port()
    with echo_scp(port, status=0x0300):
        live = start_live(
            live_runs,
            tmp_path,
            *("-i", "lo", "-f", f"tcp port {port}", "-o", "out", "--format", "csv,jsonl"),
            *("--alerts-file", "alerts.jsonl"),
            *("--write-pcap", "live.pcapng", "--phi-key", "k"),
        )
        assoc = echo_association(port)
        busy = threading.Event()

        def echo_loop() -> None:
            while busy.is_set():
                assoc.send_c_echo()

        echoes = threading.Thread(target=echo_loop)
        try:
            assoc.send_c_echo()
            out = tmp_path / "out"
            # Rows are on disk while the capture runs.
            wait_until(lambda: (out / "messages.csv").read_text().count("C-ECHO") == 2, 5, "rows")
            assert " ST-CLASS-INVALID C-ECHO-RSP 0x0300" in live.stdout()
            # Stop while messages are flowing on the association.
            busy.set()
            echoes.start()
            time.sleep(0.5)
            assert live.stop(signal.SIGINT) == 0
        finally:
            busy.clear()
            if echoes.is_alive():
                echoes.join(10)
            assoc.release()

    for table in TABLES:
        pd.read_csv(out / f"{table}.csv")
        assert (out / f"{table}.csv").read_text().endswith("\n")
        read_jsonl(out / f"{table}.jsonl")
    associations = pd.read_csv(out / "associations.csv")
    assert list(associations["end_reason"]) == ["capture ended"]
    assert read_jsonl(out / "associations.jsonl")[0]["end_reason"] == "capture ended"
    commands = list(pd.read_csv(out / "messages.csv")["command"])
    assert len(commands) > 10 and set(commands) == {"C-ECHO-RQ", "C-ECHO-RSP"}
    alerts = read_jsonl(tmp_path / "alerts.jsonl")
    assert {a["rule"] for a in alerts} == {"ST-CLASS-INVALID"}
    assert len(alerts) == commands.count("C-ECHO-RSP")
    assert "capture ended (stopped by SIGINT)" in live.stdout()

    offline = analyze_offline(tmp_path, [tmp_path / "live.pcapng"], "--phi-key", "k")
    for table in TABLES:
        assert (out / f"{table}.csv").read_bytes() == (offline / f"{table}.csv").read_bytes()


def test_second_signal_exits_at_once(tmp_path, root, live_runs):
    port = free_port()
    live = start_live(live_runs, tmp_path, "-i", "lo", "-f", f"tcp port {port}", "-o", "out")
    # Two signals while stopped, so both are pending together (two SIGINTs would merge into
    # one): the first asks for a clean stop, the second ends the process there and then.
    live.proc.send_signal(signal.SIGSTOP)
    live.proc.send_signal(signal.SIGINT)
    live.proc.send_signal(signal.SIGTERM)
    live.proc.send_signal(signal.SIGCONT)
    assert live.proc.wait(5) == 128 + signal.SIGTERM
    assert "exiting now" in live.stderr() and "DICOM associations" not in live.stdout()
    pd.read_csv(tmp_path / "out" / "messages.csv")  # the header, complete


def test_second_ctrl_c_exits_with_130(monkeypatch):
    exits = []
    monkeypatch.setattr(live_cli.os, "_exit", exits.append)
    monkeypatch.setattr(live_cli.os, "write", lambda _fd, _data: None)
    stop = live_cli.StopRequest()
    assert not stop()
    stop.handle(signal.SIGINT, None)
    assert stop() and exits == []
    stop.handle(signal.SIGINT, None)
    assert exits == [130]


def test_idle_association_expires_without_traffic_and_sigterm_stops(tmp_path, root, live_runs):
    port = free_port()
    with echo_scp(port):
        live = start_live(
            live_runs,
            tmp_path,
            *("-i", "lo", "-f", f"tcp port {port}", "-o", "out", "--idle-timeout", "1"),
        )
        assoc = echo_association(port)
        try:
            assoc.send_c_echo()
            # No packet flows now: the one-second timer alone closes the association.
            associations = tmp_path / "out" / "associations.csv"
            wait_until(lambda: "idle timeout" in associations.read_text(), 5, "idle expiry")
            assert live.stop(signal.SIGTERM) == 0
        finally:
            assoc.release()
    assert "capture ended (stopped by SIGTERM)" in live.stdout()
    assert list(pd.read_csv(associations)["end_reason"]) == ["idle timeout"]


def test_duration_and_count_end_the_capture(tmp_path, root, live_runs):
    port = free_port()
    with echo_scp(port):
        run = start_live(
            live_runs, tmp_path, "-i", "lo", "-f", f"tcp port {port}", "-o", "o1", "--count", "3"
        )
        echo_once(port)
        assert run.proc.wait(10) == 0
        assert "capture ended (--count reached) after" in run.stdout()
        assert "3 frames" in run.stdout()
        run = start_live(
            live_runs, tmp_path, "-i", "lo", "-f", f"tcp port {port}", "-o", "o2", "--duration", "1"
        )
        # It stops by itself (no signal is sent); how fast depends on the machine's load,
        # so the bound is only there to turn a hang into a failure.
        assert run.proc.wait(60) == 0
        assert "capture ended (--duration reached) after" in run.stdout()


# -- interfaces --------------------------------------------------------------------------------


def test_any_interface_sees_loopback_once(tmp_path, root, live_runs):
    port = free_port()
    with echo_scp(port, status=0x0300):
        live = start_live(
            live_runs,
            tmp_path,
            *("-i", "any", "-f", f"tcp port {port}", "-o", "out", "--alerts", "jsonl"),
        )
        assert "capturing on lo" in live.stderr()
        echo_once(port)
        wait_until(live.stdout, 5, "a JSON alert")
        assert live.stop() == 0
    messages = pd.read_csv(tmp_path / "out" / "messages.csv")
    assert list(messages["command"]) == ["C-ECHO-RQ", "C-ECHO-RSP"]
    # Loopback frames once each: no duplicate-segment findings, only the planted one.
    violations = pd.read_csv(tmp_path / "out" / "violations.csv")
    assert list(violations["rule"]) == ["ST-CLASS-INVALID"]
    # stdout holds JSON objects only; the summary went to stderr.
    alerts = [json.loads(line) for line in live.stdout().splitlines()]
    assert [(a["rule"], a["status"], a["calling_ae"]) for a in alerts] == [
        ("ST-CLASS-INVALID", "0x0300", "ECHOSCU")
    ]
    assert "DICOM associations" in live.stderr()


def test_unknown_interface_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dimsesniff", "live", "-i", "nosuch0", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no such network interface" in proc.stderr
    assert proc.stdout == ""


def test_without_cap_net_raw_is_one_line_and_exit_2(tmp_path, root, require_tool):
    require_tool("setpriv")
    python = os.path.realpath(sys.executable)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python]
    probe = subprocess.run([*as_nobody, "-c", "import dimsesniff.cli"], cwd=REPO, env=env)
    # Where nobody cannot run this Python, stay root but without the capability.
    prefix = as_nobody if probe.returncode == 0 else ["setpriv", "--bounding-set=-net_raw", python]
    proc = subprocess.run(
        [*prefix, "-m", "dimsesniff", "live", "-i", "lo", "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "CAP_NET_RAW" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


# -- rotation -----------------------------------------------------------------------------------


def test_outputs_rotate_by_time_and_pieces_add_up(tmp_path, root, live_runs):
    port = free_port()
    out = tmp_path / "out"
    out.mkdir()
    (out / "messages.csv").write_text("from an earlier run\n")
    with echo_scp(port):
        live = start_live(
            live_runs,
            tmp_path,
            *("-i", "lo", "-f", f"tcp port {port}", "-o", "out", "--rotate", "1s"),
            *("--write-pcap", "live.pcapng", "--phi-key", "k"),
        )
        for _ in range(4):
            echo_once(port)
            time.sleep(0.7)
        assert live.stop() == 0
    pieces = sorted(out.glob("messages-*.csv"))
    earlier = [p for p in pieces if p.read_text() == "from an earlier run\n"]
    assert len(earlier) == 1  # moved aside, not overwritten
    rotated = [p for p in pieces if p not in earlier] + [out / "messages.csv"]
    assert len(rotated) >= 3
    rows = pd.concat([pd.read_csv(p) for p in rotated])
    assert len(rows) == 8 and list(rows["command"]).count("C-ECHO-RSP") == 4
    pcaps = sorted(tmp_path.glob("live-*.pcapng")) + [tmp_path / "live.pcapng"]
    assert len(pcaps) >= 3
    offline = analyze_offline(tmp_path, pcaps, "--phi-key", "k")
    assert len(pd.read_csv(offline / "messages.csv")) == 8


# -- pieces without capture -----------------------------------------------------------------


def test_parse_rotate():
    assert parse_rotate(["100MB"]) == RotatePolicy(max_bytes=100_000_000)
    assert parse_rotate(["1h", "2MiB"]) == RotatePolicy(2 * 1024 * 1024, 3600.0)
    assert parse_rotate(["30m"]).max_seconds == 1800
    for bad in ("5", "10 parsecs", "0s", "12B"):
        with pytest.raises(ValueError, match="--rotate"):
            parse_rotate([bad])


class _Lines:
    def __init__(self, path: Path) -> None:
        self._file = path.open("w")
        self._file.write("header\n")

    def write(self, text: str) -> None:
        self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def test_rotating_by_size_never_overwrites(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("old\n")
    os.utime(path, (1200, 1200))
    rot = Rotating(path, _Lines, RotatePolicy(max_bytes=1024), now=1000.0)
    assert [p.read_text() for p in tmp_path.glob("t-*.csv")] == ["old\n"]
    rot.current.write("x" * 2000 + "\n")
    assert rot.rotate_if_due(2000.0) and not rot.rotate_if_due(2001.0)
    rot.current.write("y\n")
    assert rot.rotate_if_due(2000.0) is False
    rot.close()
    assert path.read_text() == "header\ny\n"
    assert rot.rotations == 1 and rot.moved_aside.name == "t-19700101T002000Z.csv"
    assert (tmp_path / "t-19700101T003320Z.csv").read_text().startswith("header\nxxx")


def test_rotating_by_time_keeps_to_its_schedule(tmp_path):
    rot = Rotating(tmp_path / "t.csv", _Lines, RotatePolicy(max_seconds=10), now=1000.0)
    assert not rot.rotate_if_due(1009.9)
    assert rot.rotate_if_due(1010.4)  # checked a bit late: the next piece still ends at 1020
    assert not rot.rotate_if_due(1019.9) and rot.rotate_if_due(1020.0)
    assert rot.rotate_if_due(1055.0) and not rot.rotate_if_due(1059.0)  # no burst after a gap
    rot.close()
    assert rot.rotations == 3 and len(list(tmp_path.glob("t-*.csv"))) == 3


def test_pcapng_copy_reads_back(tmp_path):
    frames = [(1_700_000_000_123_456, b"\x00" * 14 + b"abc"), (1_700_000_001_000_001, b"z" * 60)]
    writer = PcapngWriter(tmp_path / "c.pcapng", [("lo", 1), ("tun0", 101)])
    for n, (us, frame) in enumerate(frames):
        writer.write(n, us, frame)
    writer.close()
    got = list(FrameReader(tmp_path / "c.pcapng").read())
    assert got == [(us / 1e6, lt, f) for (us, f), lt in zip(frames, (1, 101), strict=True)]


def test_terminal_line_is_safe():
    assert printable("AE\x1b[2J\u202eX\n") == "AE\\x1b[2J\\u202eX\\n"
    row = {
        "timestamp": "2026-11-03T12:00:00.123456+00:00",
        "client": "127.0.0.1:5000",
        "server": "127.0.0.1:104",
        "calling_ae": "EVIL\x1b]0;pwned\x07",
        "called_ae": "PACS",
        "severity": "error",
        "rule": "FIND-STATUS-MOVEONLY",
        "command": "C-FIND-RSP",
        "status": "0xA801",
        "message": "bad",
    }
    line = alert_line(row)
    assert line == (
        "2026-11-03T12:00:00.123Z 127.0.0.1:5000 EVIL\\x1b]0;pwned\\x07 -> 127.0.0.1:104 PACS  "
        "error   FIND-STATUS-MOVEONLY C-FIND-RSP 0xA801: bad"
    )
    assert "\x1b[31m" in alert_line(row, colour=True)


# -- soak: only with DIMSESNIFF_SOAK=<seconds> ----------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not os.environ.get("DIMSESNIFF_SOAK"), reason="set DIMSESNIFF_SOAK=<seconds>")
def test_soak_memory_stays_flat(tmp_path, root, live_runs):
    """Continuous associations (echo with an invalid status, C-FIND) for a few minutes."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE, evt

    seconds = float(os.environ["DIMSESNIFF_SOAK"])
    port = free_port()

    def on_find(_event):
        for n in range(3):
            ds = Dataset()
            ds.QueryRetrieveLevel = "STUDY"
            ds.PatientName = f"SOAK^{n}"
            yield 0xFF00, ds
        yield 0x0000, None

    scp_ae = AE(ae_title="ECHOSCP")
    scp_ae.add_supported_context(VERIFICATION)
    scp_ae.add_supported_context(STUDY_ROOT_FIND)
    server = scp_ae.start_server(
        (HOST, port),
        block=False,
        evt_handlers=[(evt.EVT_C_ECHO, lambda _e: 0x0300), (evt.EVT_C_FIND, on_find)],
    )
    live = start_live(
        live_runs,
        tmp_path,
        *("-i", "lo", "-f", f"tcp port {port}", "-o", "out", "--rotate", "5MB"),
        *("--idle-timeout", "30", "--status-every", "10"),
    )
    stop = threading.Event()
    associations = [0]

    def client() -> None:
        ae = AE(ae_title="SOAKSCU")
        ae.add_requested_context(VERIFICATION)
        ae.add_requested_context(STUDY_ROOT_FIND)
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.PatientName = "*"
        while not stop.is_set():
            assoc = ae.associate(HOST, port, ae_title="ECHOSCP")
            if assoc.is_established:
                assoc.send_c_echo()
                list(assoc.send_c_find(query, STUDY_ROOT_FIND))
                assoc.release()
                associations[0] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    samples: list[tuple[float, int]] = []
    clock_ticks = os.sysconf("SC_CLK_TCK")
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            samples.append((time.monotonic() - started, rss_kib(live.proc.pid)))
            time.sleep(5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        server.shutdown()
    stat = Path(f"/proc/{live.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / clock_ticks  # utime + stime
    assert live.stop() == 0
    report = "\n".join(f"{t:6.0f} s  {kib / 1024:7.1f} MiB" for t, kib in samples)
    report += f"\nCPU time of the capture process: {cpu:.1f} s"
    status = [ln for ln in live.stderr().splitlines() if "packets" in ln]
    (tmp_path / "soak.txt").write_text(report)
    print(f"\nsoak: {associations[0]} associations in {seconds:.0f} s\n{report}\n{status[-1]}")
    settled = [kib for t, kib in samples if t >= seconds / 4]
    assert max(settled) - min(settled) < 8 * 1024, report  # flat after warm-up
