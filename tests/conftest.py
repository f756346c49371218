"""Shared test set-up: the ``peers`` marker and ``require_tool``.

A test that needs an outside tool (tshark, tcpdump, DCMTK) or root asks for it
with the ``require_tool`` fixture.  On a developer machine without the tool the
test is skipped; with ``CI=true`` it fails instead, because CI must never pass
by silently skipping what it was set up to run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

DCMTK_BIN = Path("/usr/bin")
"""Where the Debian DCMTK tools live; pyenv shims put pynetdicom's apps of the same names first."""
DCMTK_TOOLS = ("dcmqrscp", "storescp", "storescu", "findscu", "movescu", "echoscu")
SYSTEM_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "peers: runs real DICOM peers (DCMTK, pynetdicom) and tcpdump; needs root "
        "(runs by default)",
    )


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def missing_tool(name: str) -> str | None:
    """Why ``name`` cannot be used here, or None when it can.

    ``name`` is an executable on PATH (``tshark``, ``tcpdump``, ``ip``...), ``root``,
    ``dcmtk`` (the Debian DCMTK tools in /usr/bin) or ``peers`` (everything
    ``tests.peers.generate`` needs).
    """
    if name == "root":
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            return "needs root"
        return None
    if name == "dcmtk":
        absent = [t for t in DCMTK_TOOLS if not (DCMTK_BIN / t).exists()]
        if absent:
            return f"DCMTK not installed ({', '.join(absent)} not in {DCMTK_BIN})"
        return None
    if name == "peers":
        from tests.peers import PeersUnavailable, check_prerequisites

        try:
            check_prerequisites()
        except PeersUnavailable as exc:
            return str(exc)
        return None
    if shutil.which(name) or any(Path(d, name).exists() for d in SYSTEM_DIRS):
        return None
    return f"'{name}' not found"


def require(name: str) -> None:
    """Skip the running test when ``name`` is unavailable; fail it when CI=true."""
    problem = missing_tool(name)
    if problem is None:
        return
    if in_ci():
        pytest.fail(
            f"{name}: {problem} (CI=true: a missing tool fails, never skips)", pytrace=False
        )
    pytest.skip(f"{name}: {problem}")


@pytest.fixture(scope="session")
def require_tool() -> Callable[[str], None]:
    """``require_tool("tshark")``: skip here without tshark, fail under CI=true."""
    return require


# -- a short comparison report at the end of the run ------------------------------------------

_TSHARK_REPORT: list[str] = []


@pytest.fixture(scope="session")
def tshark_report() -> list[str]:
    """Lines appended here are printed after the test summary (message counts vs tshark)."""
    return _TSHARK_REPORT


def pytest_terminal_summary(terminalreporter) -> None:
    if _TSHARK_REPORT:
        terminalreporter.section("dimsesniff vs tshark")
        for line in _TSHARK_REPORT:
            terminalreporter.write_line(line)
