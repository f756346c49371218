"""Parse what a DCMTK tool logged sending and receiving.

The tools are run with `-lc` and LOG_CONFIG below: dcmnet at TRACE makes DCMTK dump every DIMSE
command set it sends ("DIMSE Command to send:") or receives ("DIMSE Command Received:") element
by element, and the apps at DEBUG dump the negotiated association ("BEGIN A-ASSOCIATE-AC") and the
query/response identifiers.  Each line carries a microsecond time stamp and the process id.

Only the command-set dumps are used for the message fields, so the parse does not depend on
DCMTK's human-readable summaries.  Identifiers are attached where the tool dumps them (findscu's
and movescu's "Request Identifiers:" / "Response Identifiers:").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .model import COMMAND_ELEMENTS, dcmtk_uid, finish_message, new_message

LOG_CONFIG = """\
log4cplus.rootLogger = INFO, console
log4cplus.logger.dcmtk.dcmnet = TRACE
log4cplus.logger.dcmtk.dcmdata = INFO
log4cplus.logger.dcmtk.apps = DEBUG
log4cplus.logger.dcmtk.dcmqrdb = DEBUG
log4cplus.appender.console = log4cplus::ConsoleAppender
log4cplus.appender.console.ImmediateFlush = true
log4cplus.appender.console.layout = log4cplus::PatternLayout
log4cplus.appender.console.layout.ConversionPattern = %D{%H:%M:%S.%Q} %i %p %c: %m%n
"""

_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3})\.(\d{3}) (\d+) ([A-Z]+) (\S+?): ?(.*)$")
# "(0000,0100) US 32800        #   2, 1 CommandField"
_ELEM = re.compile(
    r"^\s*\(([0-9a-fA-F]{4}),([0-9a-fA-F]{4})\) (\w\w) (.*?)\s*#\s*(\d+),\s*(\d+)"
    r"\s+(\S+)\s*$"
)


@dataclass
class Line:
    t: float  # seconds since midnight
    pid: int
    level: str
    logger: str
    text: str


@dataclass
class DcmtkAssociation:
    pid: int
    role: str  # "requestor" | "acceptor"
    tool: str
    time: float
    calling_ae: str = ""
    called_ae: str = ""
    our_max_pdu: int | None = None
    their_max_pdu: int | None = None
    their_impl_uid: str = ""
    their_impl_version: str = ""
    accepted_contexts: list[dict[str, Any]] = field(default_factory=list)
    rejected_contexts: list[dict[str, Any]] = field(default_factory=list)
    end: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)


def _parse_lines(path: Path) -> list[Line]:
    out = []
    for raw in path.read_text(errors="replace").splitlines():
        m = _LINE.match(raw)
        if not m:
            continue
        h, mi, s, ms, us = (int(x) for x in m.groups()[:5])
        out.append(
            Line(
                h * 3600 + mi * 60 + s + ms / 1e3 + us / 1e6,
                int(m.group(6)),
                m.group(7),
                m.group(8),
                m.group(9),
            )
        )
    return out


def _value(vr: str, text: str) -> Any:
    text = text.strip()
    if text.startswith("(no value available)"):
        return ""
    if text.startswith("="):
        return dcmtk_uid(text)
    if text.startswith("[") and "]" in text:
        inner = text[1 : text.rindex("]")]
        parts = [p.rstrip(" \x00") for p in inner.split("\\")]
        if vr == "UI":
            parts = [dcmtk_uid(p) for p in parts]
        return parts[0] if len(parts) == 1 else parts
    if vr in ("US", "UL", "SS", "SL"):
        nums = [int(x) for x in text.split("\\")]
        return nums[0] if len(nums) == 1 else nums
    return text


def parse_dump(lines: list[str]) -> list[tuple[int, int, str, Any, str]]:
    """(group, element, VR, value, keyword) for each element line of a DCMTK dump."""
    out = []
    for text in lines:
        m = _ELEM.match(text)
        if m:
            g, e, vr, val, _vl, _vm, kw = m.groups()
            out.append((int(g, 16), int(e, 16), vr, _value(vr, val), kw))
    return out


def _block(lines: list[Line], i: int) -> tuple[list[str], int]:
    """The lines of the one log call starting at i (same pid and time stamp)."""
    first = lines[i]
    texts = [first.text]
    j = i + 1
    while (
        j < len(lines)
        and lines[j].pid == first.pid
        and lines[j].t == first.t
        and lines[j].logger == first.logger
    ):
        texts.append(lines[j].text)
        j += 1
    return texts, j


def _ae_block(assoc: DcmtkAssociation, texts: list[str]) -> None:
    ctx: dict[str, Any] | None = None
    for t in texts:
        s = t.strip()
        key, _, val = s.partition(":")
        val = val.strip()
        if key == "Calling Application Name":
            assoc.calling_ae = val
        elif key == "Called Application Name":
            assoc.called_ae = val
        elif key == "Our Max PDU Receive Size":
            assoc.our_max_pdu = int(val or 0)
        elif key == "Their Max PDU Receive Size":
            assoc.their_max_pdu = int(val or 0)
        elif key == "Their Implementation Class UID":
            assoc.their_impl_uid = val
        elif key == "Their Implementation Version Name":
            assoc.their_impl_version = val
        elif key == "Context ID":
            m = re.match(r"(\d+) \((.*)\)", val)
            if m:
                ctx = {"id": int(m.group(1)), "result": m.group(2)}
                if m.group(2) == "Accepted":
                    assoc.accepted_contexts.append(ctx)
                else:
                    assoc.rejected_contexts.append(ctx)
        elif key == "Abstract Syntax" and ctx is not None:
            ctx["abstract_syntax"] = dcmtk_uid(val)
        elif key == "Accepted Transfer Syntax" and ctx is not None:
            ctx["transfer_syntax"] = dcmtk_uid(val)
    for c in assoc.accepted_contexts:
        c.pop("result", None)


def _dataset_dict(elems: list[tuple[int, int, str, Any, str]]) -> dict[str, Any]:
    return {kw: val for (_g, _e, _vr, val, kw) in elems}


def parse_log(path: Path, tool: str, day0: float) -> list[DcmtkAssociation]:
    """Associations (in start order) with their DIMSE messages from one DCMTK tool's log.

    `day0` is the epoch time of the local midnight before the run (DCMTK prints time of day).
    """
    lines = _parse_lines(path)
    assocs: list[DcmtkAssociation] = []
    current: dict[int, DcmtkAssociation] = {}
    role: dict[int, str] = {}
    pending_ctx: dict[int, int] = {}
    pending_request_ds: dict[int, dict[str, Any]] = {}
    last_recv: dict[int, dict[str, Any]] = {}
    first_t = lines[0].t if lines else 0.0

    def epoch(t: float) -> float:
        if t < first_t - 12 * 3600:  # ran across midnight
            t += 86400
        return round(day0 + t, 6)

    i = 0
    while i < len(lines):
        ln = lines[i]
        text = ln.text
        if "Requesting Association" in text or "Requesting Sub-Association" in text:
            role[ln.pid] = "requestor"
        elif text.startswith("Association Received"):
            role[ln.pid] = "acceptor"
        if "BEGIN A-ASSOCIATE-AC" in text:
            texts, j = _block(lines, i)
            if len(texts) == 1:  # the block was logged line by line: read to its END marker
                j = i + 1
                while j < len(lines) and "END A-ASSOCIATE-AC" not in lines[j].text:
                    if lines[j].pid == ln.pid:
                        texts.append(lines[j].text)
                    j += 1
            a = DcmtkAssociation(
                pid=ln.pid, role=role.get(ln.pid, "unknown"), tool=tool, time=epoch(ln.t)
            )
            _ae_block(a, texts)
            assocs.append(a)
            current[ln.pid] = a
            i = j
            continue
        m = re.match(r"DIMSE Command to be sent on Presentation Context ID: (\d+)", text)
        if m:
            pending_ctx[ln.pid] = int(m.group(1))
        m = re.match(r"DIMSE receiveCommand: .*PresID=(\d+)", text)
        if m:
            pending_ctx[ln.pid] = int(m.group(1))
        if text.startswith("DIMSE Command to send:") or text.startswith("DIMSE Command Received:"):
            texts, j = _block(lines, i)
            sent = text.startswith("DIMSE Command to send:")
            msg = new_message(
                source=f"dcmtk-log:{tool}",
                time=epoch(ln.t),
                context_id=pending_ctx.pop(ln.pid, None),
            )
            for g, e, _vr, val, _kw in parse_dump(texts[1:]):
                if g == 0 and e in COMMAND_ELEMENTS:
                    msg[COMMAND_ELEMENTS[e]] = val
            finish_message(msg)
            msg["_sent"] = sent
            a = current.get(ln.pid)
            if a is None:
                raise ValueError(f"{path}: DIMSE command outside an association (pid {ln.pid})")
            if sent and msg["has_dataset"] and ln.pid in pending_request_ds:
                msg["dataset"] = pending_request_ds.pop(ln.pid)
            a.messages.append(msg)
            if not sent:
                last_recv[ln.pid] = msg
            i = j
            continue
        if text.startswith("Request Identifiers:") or text.startswith("Response Identifiers:"):
            texts, j = _block(lines, i)
            ds = _dataset_dict(parse_dump(texts[1:]))
            if text.startswith("Request"):
                pending_request_ds[ln.pid] = ds
            elif ln.pid in last_recv and last_recv[ln.pid]["has_dataset"]:
                last_recv[ln.pid]["dataset"] = ds
            i = j
            continue
        a = current.get(ln.pid)
        if a is not None and a.end is None:
            if (
                "DUL  Action: AR 1 Send Release RQ" in text
                or "DUL  Action: AR 2 Indicate Release" in text
            ):
                a.end = "released"
            elif "DUL  Action: AA" in text:
                a.end = "aborted"
        i += 1

    for a in assocs:
        for msg in a.messages:
            ds = msg.get("dataset")
            if isinstance(ds, dict) and "FailedSOPInstanceUIDList" in ds:
                v = ds["FailedSOPInstanceUIDList"]
                msg["failed_sop_instance_uids"] = (
                    [v] if isinstance(v, str) and v else (v if isinstance(v, list) else [])
                )
    return assocs


def local_midnight(epoch: float) -> float:
    d = datetime.fromtimestamp(epoch)
    return datetime(d.year, d.month, d.day).timestamp()
