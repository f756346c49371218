"""A deliberately NON-CONFORMANT Query/Retrieve SCP, and the "bad-*" capture scenarios that use it.

    sudo python -m tests.peers.badscp                       # all five, into samples/
    sudo python -m tests.peers.badscp --only bad-move       # one or more by name
    python -m tests.peers.badscp --expected-only            # only rewrite bad-*.expected.json
    python -m tests.peers.badscp --list

The SCP is a plain TCP server that speaks the upper layer itself (hand-built A-ASSOCIATE-AC,
P-DATA-TF, A-RELEASE-RP; PS3.8 §9.3) and answers each C-FIND-RQ / C-MOVE-RQ with a scripted list
of responses whose command sets (PS3.7 §6.3.1, Implicit VR Little Endian) are encoded here, so any
Status, count, Error Comment, Message ID or PDU length can be put on the wire.  It shares no code
with dimsesniff.  The SCU side is a real peer: DCMTK findscu/movescu or a pynetdicom SCU, run by
the helpers of scenarios.py inside the private network namespace of runner.py (1500-byte loopback
MTU, tcpdump), exactly like the sample captures.

Each scripted response may carry ``plant``: the rule IDs it is meant to trigger.  After a run,
expected_findings() locates every planted response in the capture **with tshark** (PDML; never
with dimsesniff) and writes ``<name>.expected.json``: a list of
``{"rule", "first_frame", "last_frame", ...}`` plus the content that identifies the message
(association, position among the SCP's messages, command, Message ID Being Responded To, status).

Scenarios are registered in scenarios.SCENARIOS (scenarios.py imports this module at its end), so
``generate("bad-find", tmp)`` works like any other scenario.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from . import dataset as data
from .proc import dcmtk, tool_path, wait_listening
from .scenarios import HOST, SCENARIOS, Ctx, DcmtkLog, Scenario, scu_assoc

BAD_AET = "BADSCP"
BAD_IMPL_UID = data.UID_ROOT + ".0.66"
BAD_IMPL_VERSION = "DSN_BADSCP_1"
BAD_MAX_PDU = 16384
SAMPLES = Path(__file__).resolve().parents[2] / "samples"

TS_IMPLICIT = "1.2.840.10008.1.2"
TS_EXPLICIT = "1.2.840.10008.1.2.1"
APP_CONTEXT = "1.2.840.10008.3.1.1.1"
SUPPORTED = {
    data.VERIFICATION,
    data.PATIENT_ROOT_FIND,
    data.STUDY_ROOT_FIND,
    data.PATIENT_ROOT_MOVE,
    data.STUDY_ROOT_MOVE,
}

C_FIND_RQ, C_FIND_RSP = 0x0020, 0x8020
C_MOVE_RQ, C_MOVE_RSP = 0x0021, 0x8021
C_ECHO_RQ, C_ECHO_RSP = 0x0030, 0x8030
C_CANCEL_RQ = 0x0FFF
NO_DATA_SET = 0x0101
COMMAND_NAMES = {
    C_FIND_RQ: "C-FIND-RQ",
    C_FIND_RSP: "C-FIND-RSP",
    C_MOVE_RQ: "C-MOVE-RQ",
    C_MOVE_RSP: "C-MOVE-RSP",
    C_ECHO_RQ: "C-ECHO-RQ",
    C_ECHO_RSP: "C-ECHO-RSP",
    C_CANCEL_RQ: "C-CANCEL-RQ",
    0x0001: "C-STORE-RQ",
    0x8001: "C-STORE-RSP",
}
US_ELEMENTS = {0x0100, 0x0110, 0x0120, 0x0700, 0x0800, 0x0900, 0x1020, 0x1021, 0x1022, 0x1023}


# ------------------------------------------------------------------------------------------------
# Wire encoding (PS3.8 §9.3, PS3.7 §6.3.1), written out here so the SCP owes nothing to dimsesniff
# ------------------------------------------------------------------------------------------------
def pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BxI", pdu_type, len(body)) + body


def item(item_type: int, value: bytes) -> bytes:
    return struct.pack(">BxH", item_type, len(value)) + value


def pdv(context_id: int, control: int, fragment: bytes) -> bytes:
    return struct.pack(">IBB", len(fragment) + 2, context_id, control) + fragment


def _uid(text: str) -> bytes:
    raw = text.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def element(tag: int, value: bytes) -> bytes:
    """Implicit VR Little Endian element of group 0000 (tag given as its element number)."""
    return struct.pack("<HHI", 0x0000, tag, len(value)) + value


def command_set(fields: dict[int, int | str | bytes | tuple[int, ...]]) -> bytes:
    """Group 0000 elements in ascending order, preceded by (0000,0000) Command Group Length."""
    body = b""
    for tag, value in sorted(fields.items()):
        if isinstance(value, bytes):
            raw = value + (b" " if len(value) % 2 else b"")
        elif isinstance(value, tuple):  # AT, VM 1-n
            raw = b"".join(struct.pack("<HH", t >> 16, t & 0xFFFF) for t in value)
        elif isinstance(value, int):
            raw = struct.pack("<H" if tag in US_ELEMENTS else "<I", value)
        else:
            raw = _uid(value)
        body += element(tag, raw)
    return element(0x0000, struct.pack("<I", len(body))) + body


def parse_command_set(raw: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    off = 0
    while off + 8 <= len(raw):
        _group, elem, length = struct.unpack_from("<HHI", raw, off)
        out[elem] = raw[off + 8 : off + 8 + length]
        off += 8 + length
    return out


def _us(fields: dict[int, bytes], tag: int) -> int | None:
    v = fields.get(tag)
    return struct.unpack("<H", v[:2])[0] if v is not None and len(v) >= 2 else None


def encode_dataset(ds: Any, implicit: bool) -> bytes:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = implicit
    write_dataset(fp, ds)
    return fp.getvalue()


def decode_dataset(raw: bytes, implicit: bool) -> Any:
    from pydicom.filereader import read_dataset

    return read_dataset(BytesIO(raw), implicit, True)


# ------------------------------------------------------------------------------------------------
# The script: what the SCP answers, and which rule each planted response should trigger
# ------------------------------------------------------------------------------------------------
MATCH = "match"  # Rsp.identifier: a match built from the request identifier


@dataclass(frozen=True)
class Rsp:
    """One response the SCP sends.  Defaults give a conformant command set for the request."""

    status: int
    command: int | None = None  # default: the RSP of the request (8020 / 8021)
    responded_to: int | None = None  # Message ID Being Responded To; default: the request's
    counts: tuple[int | None, int | None, int | None, int | None] | None = None  # R, C, F, W
    identifier: Any = None  # None (no data set), MATCH, or a dict keyword -> value
    match_no: int = 1  # which canned match MATCH yields
    error_comment: bytes | None = None
    offending: tuple[int, ...] | None = None
    pdu_length: int | None = None  # pad PatientComments so the one P-DATA-TF has this length
    split: str = ""  # "header": 12-byte PDU+PDV header in its own segment (as DCMTK does);
    #                  "pdus": command and data set in two P-DATA-TF, sent 30 ms apart
    gap: float = 0.02  # seconds to wait after the previous response of the operation
    plant: tuple[str, ...] = ()  # rule IDs this response is meant to trigger
    why: str = ""  # one line for the expected file


@dataclass(frozen=True)
class Op:
    """The SCP's answer to one request, and the request the SCU sends for it."""

    responses: tuple[Rsp, ...]
    query: Any = None  # the request identifier (pydicom Dataset); default per scenario
    model: str = data.STUDY_ROOT_FIND  # for pynetdicom SCUs: the SOP class of the request


@dataclass(frozen=True)
class AssocPlan:
    client: str  # "findscu", "movescu" or "pynetdicom"
    calling_ae: str  # the SCP finds the plan by the SCU's AE title
    ops: tuple[Op, ...]
    model: str = "S"  # DCMTK: -S (Study Root) / -P (Patient Root)
    contexts: tuple[str, ...] = (data.STUDY_ROOT_FIND,)  # pynetdicom: requested contexts
    max_pdu: int = 16384  # the SCU's Maximum Length (pynetdicom: announced; DCMTK: --max-pdu)
    expect_abort: bool = False  # the SCU aborts (it rejects one of the responses)


@dataclass(frozen=True)
class BadScenario:
    name: str
    description: str
    port: int
    assocs: tuple[AssocPlan, ...]


def find_query(**extra: Any) -> Any:
    return data.query(
        "STUDY",
        PatientName="*",
        PatientID=None,
        StudyInstanceUID=None,
        StudyDate=None,
        **extra,
    )


def move_query(n: int) -> Any:
    return data.query("STUDY", StudyInstanceUID=f"{data.UID_ROOT}.66.{n}")


def failed_uids(n: int) -> list[str]:
    return [f"{data.UID_ROOT}.66.1.1.{i}" for i in range(1, n + 1)]


def _canned(n: int) -> dict[str, str]:
    return {
        "PatientName": ["DOE^JOHN", "SMITH^JANE", "ROSSI^MARIO"][(n - 1) % 3],
        "PatientID": f"DSN00{n}",
        "StudyInstanceUID": f"{data.UID_ROOT}.66.{n}",
        "StudyDate": f"202403{10 + n:02d}",
        "StudyDescription": f"PLANTED STUDY {n}",
    }


FF00, FF01, FE00, SUCCESS, B000 = 0xFF00, 0xFF01, 0xFE00, 0x0000, 0xB000
LONG_COMMENT = b"Unable to process: the matching engine rejected key (0010,0010) X"  # 65 chars
LATIN1_COMMENT = "Zieladresse \u00abNOWHERE\u00bb unbekannt".encode("latin-1")
EDGE_COMMENT = b"Unable to process: the matching engine rejected key (0010,0010)."  # 64 chars
assert len(LONG_COMMENT) == 65 and len(EDGE_COMMENT) == 64

BAD_SCENARIOS: dict[str, BadScenario] = {
    s.name: s
    for s in [
        BadScenario(
            "bad-find",
            "non-conformant C-FIND SCP: unknown status 0300, A801 in a C-FIND, Pending without "
            "identifier, Success with identifier, Refused with identifier (findscu, pynetdicom)",
            11112,
            (
                AssocPlan(
                    "findscu",
                    "FINDSCU",
                    (
                        Op(
                            (
                                Rsp(
                                    0x0300,
                                    plant=("ST-CLASS-INVALID",),
                                    why="status 0300 is in no PS3.7 Annex C class",
                                ),
                            ),
                        ),
                        Op(
                            (
                                Rsp(FF00, identifier=MATCH),
                                Rsp(
                                    0xA801,
                                    plant=("FIND-STATUS-MOVEONLY",),
                                    why="A801 (Move Destination unknown) exists only for C-MOVE",
                                ),
                            ),
                        ),
                    ),
                ),
                AssocPlan(
                    "pynetdicom",
                    "PYFINDSCU",
                    (
                        Op(
                            (
                                Rsp(
                                    FF00,
                                    plant=("FIND-PENDING-ID-REQUIRED",),
                                    why="Pending C-FIND response without identifier (0101)",
                                ),
                                Rsp(FF00, identifier=MATCH),
                                Rsp(SUCCESS),
                            ),
                        ),
                        Op(
                            (
                                Rsp(FF00, identifier=MATCH),
                                Rsp(
                                    SUCCESS,
                                    identifier=MATCH,
                                    match_no=2,
                                    split="pdus",
                                    plant=("FIND-SUCCESS-NO-ID",),
                                    why="Success C-FIND response with a data set",
                                ),
                            ),
                        ),
                        Op(
                            (
                                Rsp(
                                    0xA700,
                                    identifier=MATCH,
                                    plant=("FIND-FINAL-ID-FORBIDDEN",),
                                    why="Refused (A700) C-FIND response with an identifier",
                                ),
                            ),
                        ),
                    ),
                ),
            ),
        ),
        BadScenario(
            "bad-move",
            "non-conformant C-MOVE SCP: Pending without F/W, Remaining in finals, Success with "
            "failures, B000 with F=W=0, counts going backwards, total changing, B000 with "
            "failures but no Failed SOP Instance UID List (movescu); FF01 (pynetdicom SCU, as "
            "movescu takes FF01 for a final status)",
            11112,
            (
                AssocPlan(
                    "movescu",
                    "MOVESCU",
                    (
                        Op(
                            (
                                Rsp(
                                    FF00,
                                    counts=(2, 0, None, None),
                                    plant=("MOVE-PENDING-COUNTS",),
                                    why="Pending C-MOVE response without Failed and Warning",
                                ),
                                Rsp(SUCCESS, counts=(None, 2, 0, 0)),
                            ),
                            move_query(2),
                        ),
                        Op(
                            (
                                Rsp(
                                    SUCCESS,
                                    counts=(2, 2, 0, 0),
                                    plant=("MOVE-REMAINING-IN-FINAL",),
                                    why="Success with Number of Remaining = 2",
                                ),
                            ),
                            move_query(3),
                        ),
                        Op(
                            (
                                Rsp(FF00, counts=(1, 1, 0, 0)),
                                Rsp(
                                    B000,
                                    counts=(0, 1, 1, 0),
                                    identifier={"FailedSOPInstanceUIDList": failed_uids(1)},
                                    plant=("MOVE-REMAINING-IN-FINAL",),
                                    why="B000 with Number of Remaining = 0 (as pynetdicom 3.0.4 "
                                    "sends; graded warning)",
                                ),
                            ),
                            move_query(4),
                        ),
                        Op(
                            (
                                Rsp(
                                    SUCCESS,
                                    counts=(None, 1, 1, 0),
                                    plant=("MOVE-SUCCESS-CLEAN",),
                                    why="Success although Failed = 1",
                                ),
                            ),
                            move_query(5),
                        ),
                        Op(
                            (
                                Rsp(
                                    B000,
                                    counts=(None, 2, 0, 0),
                                    plant=("MOVE-B000-NEEDS-FW",),
                                    why="B000 with Failed = Warning = 0",
                                ),
                            ),
                            move_query(6),
                        ),
                        Op(
                            (
                                Rsp(FF00, counts=(1, 2, 0, 0)),
                                Rsp(
                                    FF00,
                                    counts=(2, 1, 0, 0),
                                    split="header",
                                    plant=("MOVE-COUNTS-MONOTONIC",),
                                    why="Completed 2 -> 1 and Remaining 1 -> 2 (total stays 3)",
                                ),
                                Rsp(SUCCESS, counts=(None, 3, 0, 0)),
                            ),
                            move_query(7),
                        ),
                        Op(
                            (
                                Rsp(FF00, counts=(2, 0, 0, 0)),
                                Rsp(
                                    FF00,
                                    counts=(2, 1, 0, 0),
                                    plant=("MOVE-TOTAL-CONSTANT",),
                                    why="R+C+F+W 2 -> 3 between Pendings (counts still rise)",
                                ),
                                Rsp(SUCCESS, counts=(None, 2, 0, 0)),
                            ),
                            move_query(8),
                        ),
                        Op(
                            (
                                Rsp(FF00, counts=(2, 0, 0, 0)),
                                Rsp(
                                    B000,
                                    counts=(None, 1, 1, 0),
                                    plant=("MOVE-FAILLIST-REQUIRED",),
                                    why="B000 with Failed = 1 and no data set",
                                ),
                            ),
                            move_query(9),
                        ),
                    ),
                ),
                AssocPlan(
                    "pynetdicom",
                    "PYMOVESCU",
                    (
                        Op(
                            (
                                Rsp(
                                    FF01,
                                    counts=(1, 1, 0, 0),
                                    plant=("MOVE-STATUS-FF01",),
                                    why="FF01 is a C-FIND Pending code, not a C-MOVE one",
                                ),
                                Rsp(SUCCESS, counts=(None, 2, 0, 0)),
                            ),
                            move_query(1),
                            data.STUDY_ROOT_MOVE,
                        ),
                    ),
                    contexts=(data.STUDY_ROOT_MOVE,),
                ),
            ),
        ),
        BadScenario(
            "bad-sequence",
            "SCP breaking DIMSE sequencing (port 4242): FE00 without C-CANCEL, response to an "
            "unknown Message ID, a second final response, C-MOVE-RSP answering a C-FIND-RQ",
            4242,
            (
                AssocPlan(
                    "pynetdicom",
                    "PYSEQSCU",
                    (
                        Op(
                            (
                                Rsp(FF00, identifier=MATCH),
                                Rsp(
                                    FE00,
                                    plant=("SEQ-FE00-NO-CANCEL",),
                                    why="Cancel status although the SCU sent no C-CANCEL-RQ",
                                ),
                            ),
                        ),
                        Op(
                            (
                                Rsp(
                                    FF00,
                                    identifier=MATCH,
                                    responded_to=99,
                                    plant=("SEQ-MSGID-UNMATCHED",),
                                    why="Pending for Message ID 99, never requested",
                                ),
                                Rsp(FF00, identifier=MATCH, match_no=2),
                                Rsp(SUCCESS),
                            ),
                        ),
                        Op(
                            (
                                Rsp(FF00, identifier=MATCH),
                                Rsp(SUCCESS),
                                Rsp(
                                    SUCCESS,
                                    gap=0.0,  # before the SCU, done, sends A-RELEASE-RQ
                                    plant=("SEQ-RSP-AFTER-FINAL",),
                                    why="a second Success for an operation already completed",
                                ),
                            ),
                        ),
                    ),
                ),
                AssocPlan(
                    "pynetdicom",
                    "PYSEQSCU2",
                    (
                        Op(
                            (
                                Rsp(
                                    SUCCESS,
                                    command=C_MOVE_RSP,
                                    counts=(None, 0, 0, 0),
                                    plant=("SEQ-CMD-MISMATCH",),
                                    why="C-MOVE-RSP answering a C-FIND-RQ (pynetdicom aborts)",
                                ),
                            ),
                        ),
                    ),
                    contexts=(data.STUDY_ROOT_FIND, data.STUDY_ROOT_MOVE),
                    expect_abort=True,
                ),
            ),
        ),
        BadScenario(
            "bad-fields",
            "Error Comments on port 104: 65 characters, a backslash, Latin-1 bytes; and a "
            "64-character one that is fine (findscu, movescu)",
            104,
            (
                AssocPlan(
                    "findscu",
                    "FINDSCU",
                    (
                        Op(
                            (
                                Rsp(
                                    0xC001,
                                    error_comment=LONG_COMMENT,
                                    offending=(0x00100010,),
                                    plant=("RF-ERRCOMMENT-LEN",),
                                    why="Error Comment of 65 characters (LO allows 64)",
                                ),
                            ),
                        ),
                        Op(
                            (
                                Rsp(FF00, identifier=MATCH),
                                Rsp(
                                    0xC002,
                                    error_comment=b"Cannot match a multi-valued key A\\B",
                                    plant=("RF-ERRCOMMENT-CHARS",),
                                    why="Error Comment with a backslash (5CH)",
                                ),
                            ),
                        ),
                        Op((Rsp(0xC003, error_comment=EDGE_COMMENT),)),
                    ),
                ),
                AssocPlan(
                    "movescu",
                    "MOVESCU",
                    (
                        Op(
                            (
                                Rsp(
                                    0xA801,
                                    error_comment=LATIN1_COMMENT,
                                    plant=("RF-ERRCOMMENT-CHARS",),
                                    why="Error Comment with Latin-1 bytes AB/BB (> 7EH)",
                                ),
                            ),
                            move_query(1),
                        ),
                    ),
                ),
            ),
        ),
        BadScenario(
            "bad-pdu",
            "P-DATA-TF longer than the SCU's Maximum Length (4096): exactly 4096 (fine), "
            "4102 (max+6) and 6000 bytes (pynetdicom SCU)",
            11112,
            (
                AssocPlan(
                    "pynetdicom",
                    "PYPDUSCU",
                    (
                        Op(
                            (
                                Rsp(FF00, identifier=MATCH, pdu_length=4096),
                                Rsp(
                                    FF00,
                                    identifier=MATCH,
                                    match_no=2,
                                    pdu_length=4102,
                                    plant=("UL-PDV-MAXLEN",),
                                    why="P-DATA-TF PDU-length 4102 > 4096 (max+6, rules.md D14)",
                                ),
                                Rsp(
                                    FF00,
                                    identifier=MATCH,
                                    match_no=3,
                                    pdu_length=6000,
                                    plant=("UL-PDV-MAXLEN",),
                                    why="P-DATA-TF PDU-length 6000 > 4096",
                                ),
                                Rsp(SUCCESS),
                            ),
                            find_query(PatientComments=None),
                        ),
                    ),
                    max_pdu=4096,
                ),
            ),
        ),
    ]
}


# ------------------------------------------------------------------------------------------------
# The SCP
# ------------------------------------------------------------------------------------------------
def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def read_pdu(sock: socket.socket) -> tuple[int, bytes]:
    head = _recv_exact(sock, 6)
    pdu_type, length = struct.unpack(">BxI", head)
    return pdu_type, _recv_exact(sock, length)


@dataclass
class AssocRq:
    called: bytes
    calling: bytes
    contexts: list[tuple[int, str, list[str]]]  # id, abstract syntax, transfer syntaxes
    max_pdu: int = 0


def parse_associate_rq(body: bytes) -> AssocRq:
    rq = AssocRq(body[4:20], body[20:36], [])
    off = 68
    while off + 4 <= len(body):
        itype, ilen = struct.unpack_from(">BxH", body, off)
        value = body[off + 4 : off + 4 + ilen]
        off += 4 + ilen
        if itype == 0x20:
            ctx_id, sub, abstract, syntaxes = value[0], 4, "", []
            while sub + 4 <= len(value):
                stype, slen = struct.unpack_from(">BxH", value, sub)
                text = value[sub + 4 : sub + 4 + slen].rstrip(b"\x00 ").decode("ascii")
                if stype == 0x30:
                    abstract = text
                elif stype == 0x40:
                    syntaxes.append(text)
                sub += 4 + slen
            rq.contexts.append((ctx_id, abstract, syntaxes))
        elif itype == 0x50:
            sub = 0
            while sub + 4 <= len(value):
                stype, slen = struct.unpack_from(">BxH", value, sub)
                if stype == 0x51 and slen == 4:
                    rq.max_pdu = struct.unpack_from(">I", value, sub + 4)[0]
                sub += 4 + slen
    return rq


def build_associate_ac(rq: AssocRq) -> tuple[bytes, dict[int, tuple[str, str]]]:
    """A conformant AC: every proposed context answered, Explicit VR LE preferred."""
    accepted: dict[int, tuple[str, str]] = {}
    items = item(0x10, APP_CONTEXT.encode())
    for ctx_id, abstract, syntaxes in rq.contexts:
        ts = next((t for t in (TS_EXPLICIT, TS_IMPLICIT) if t in syntaxes), None)
        if abstract not in SUPPORTED:
            result, ts = 3, syntaxes[0] if syntaxes else TS_IMPLICIT
        elif ts is None:
            result, ts = 4, syntaxes[0] if syntaxes else TS_IMPLICIT
        else:
            result = 0
            accepted[ctx_id] = (abstract, ts)
        items += item(0x21, bytes([ctx_id, 0, result, 0]) + item(0x40, ts.encode()))
    user = (
        item(0x51, struct.pack(">I", BAD_MAX_PDU))
        + item(0x52, BAD_IMPL_UID.encode())
        + item(0x55, BAD_IMPL_VERSION.encode())
    )
    items += item(0x50, user)
    body = struct.pack(">HH", 1, 0) + rq.called + rq.calling + bytes(32) + items
    return pdu(0x02, body), accepted


@dataclass
class Incoming:
    context_id: int
    command: bytes = b""
    data: bytes = b""
    command_done: bool = False
    done: bool = False


class BadScp:
    """The misbehaving SCP: one thread per association, answers from the scripted plans."""

    def __init__(self, port: int, plans: Iterable[AssocPlan], log: Path):
        self.port = port
        self.plans = {p.calling_ae: list(p.ops) for p in plans}
        self.log_path = log
        self.errors: list[str] = []
        self.sent: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, port))
        self._sock.listen(8)
        self._stop = False
        self._accept = threading.Thread(target=self._accept_loop, name="badscp", daemon=True)
        self._accept.start()

    def log(self, text: str) -> None:
        with self._lock, open(self.log_path, "a") as fh:
            fh.write(f"{time.time():.6f} {text}\n")

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                conn, _addr = self._sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve_safe, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def wait_idle(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))

    def shutdown(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self._sock.close()
        self.wait_idle(5.0)

    def _serve_safe(self, conn: socket.socket) -> None:
        try:
            self._serve(conn)
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"{type(exc).__name__}: {exc}")
            self.log(f"ERROR {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pdu_type, body = read_pdu(conn)
        if pdu_type != 0x01:
            raise RuntimeError(f"first PDU is type {pdu_type:#x}, not A-ASSOCIATE-RQ")
        rq = parse_associate_rq(body)
        calling = rq.calling.decode("ascii", "replace").strip()
        if calling not in self.plans:
            conn.sendall(pdu(0x03, bytes([0, 1, 1, 3])))  # rejected-permanent, calling AE
            raise RuntimeError(f"no plan for calling AE {calling!r}")
        ops = self.plans[calling]
        ac, accepted = build_associate_ac(rq)
        conn.sendall(ac)
        self.log(f"{calling}: associated, contexts {accepted}, SCU max PDU {rq.max_pdu}")
        pending: Incoming | None = None
        while True:
            try:
                pdu_type, body = read_pdu(conn)
            except EOFError:
                self.log(f"{calling}: connection closed by the SCU")
                return
            if pdu_type == 0x05:  # A-RELEASE-RQ
                conn.sendall(pdu(0x06, bytes(4)))
                self.log(f"{calling}: released")
                self._drain(conn)
                return
            if pdu_type == 0x07:
                self.log(f"{calling}: A-ABORT received")
                return
            if pdu_type != 0x04:
                raise RuntimeError(f"unexpected PDU type {pdu_type:#x}")
            off = 0
            while off + 6 <= len(body):
                length, ctx_id, mch = struct.unpack_from(">IBB", body, off)
                frag = body[off + 6 : off + 4 + length]
                off += 4 + length
                if pending is None or pending.done:
                    pending = Incoming(ctx_id)
                if mch & 0x01:
                    pending.command += frag
                    if mch & 0x02:
                        pending.command_done = True
                        fields = parse_command_set(pending.command)
                        if _us(fields, 0x0800) == NO_DATA_SET:
                            pending.done = True
                else:
                    pending.data += frag
                    if mch & 0x02:
                        pending.done = True
                if pending.done:
                    self._handle(conn, calling, ops, pending, accepted)

    @staticmethod
    def _drain(conn: socket.socket) -> None:
        """After A-RELEASE-RP the requestor closes the connection; wait for it (PS3.8 §7.2)."""
        conn.settimeout(5.0)
        with contextlib.suppress(OSError, EOFError):
            while conn.recv(4096):
                pass

    def _handle(
        self,
        conn: socket.socket,
        calling: str,
        ops: list[Op],
        msg: Incoming,
        accepted: dict[int, tuple[str, str]],
    ) -> None:
        fields = parse_command_set(msg.command)
        cf = _us(fields, 0x0100)
        msg_id = _us(fields, 0x0110)
        sop_class = fields.get(0x0002, b"").rstrip(b"\x00 ").decode("ascii", "replace")
        self.log(f"{calling}: received {COMMAND_NAMES.get(cf, cf)} id {msg_id}")
        abstract, ts = accepted.get(msg.context_id, ("", TS_IMPLICIT))
        implicit = ts == TS_IMPLICIT
        if cf == C_CANCEL_RQ:
            return  # nothing planned uses C-CANCEL; the script goes on regardless
        if cf == C_ECHO_RQ:
            cmd = command_set(
                {
                    0x0002: sop_class,
                    0x0100: C_ECHO_RSP,
                    0x0120: msg_id,
                    0x0800: NO_DATA_SET,
                    0x0900: 0,
                }
            )
            conn.sendall(pdu(0x04, pdv(msg.context_id, 0x03, cmd)))
            return
        if cf not in (C_FIND_RQ, C_MOVE_RQ):
            raise RuntimeError(f"{calling}: unexpected {COMMAND_NAMES.get(cf, cf)}")
        if not ops:
            raise RuntimeError(f"{calling}: more requests than planned operations")
        op = ops.pop(0)
        request = decode_dataset(msg.data, implicit) if msg.data else None
        for i, rsp in enumerate(op.responses):
            if i:
                time.sleep(rsp.gap)
            wire = self._encode(rsp, cf, msg_id, sop_class, msg.context_id, implicit, request)
            self._send(conn, rsp, wire)
            with self._lock:
                self.sent.append(
                    {
                        "calling_ae": calling,
                        "command": COMMAND_NAMES[rsp.command or cf | 0x8000],
                        "responded_to": msg_id if rsp.responded_to is None else rsp.responded_to,
                        "status": f"0x{rsp.status:04X}",
                        "plant": list(rsp.plant),
                    }
                )
            self.log(
                f"{calling}: sent {COMMAND_NAMES[rsp.command or cf | 0x8000]} "
                f"status {rsp.status:04X} ({len(b''.join(wire))} bytes) plant {rsp.plant}"
            )

    @staticmethod
    def _send(conn: socket.socket, rsp: Rsp, wire: list[bytes]) -> None:
        if rsp.split == "header":
            raw = b"".join(wire)
            conn.sendall(raw[:12])
            time.sleep(0.03)
            conn.sendall(raw[12:])
        elif rsp.split == "pdus":
            for i, part in enumerate(wire):
                if i:
                    time.sleep(0.03)
                conn.sendall(part)
        else:
            conn.sendall(b"".join(wire))

    @staticmethod
    def _encode(
        rsp: Rsp,
        request_cf: int,
        msg_id: int | None,
        sop_class: str,
        ctx_id: int,
        implicit: bool,
        request: Any,
    ) -> list[bytes]:
        """The P-DATA-TF PDU(s) of one response: one PDU, or two for split == "pdus"."""
        ident = None
        if rsp.identifier is MATCH:
            ident = request.copy() if request is not None else data.query("STUDY")
            for kw, value in _canned(rsp.match_no).items():
                if kw in ident:
                    setattr(ident, kw, value)
            ident.RetrieveAETitle = BAD_AET
        elif isinstance(rsp.identifier, dict):
            from pydicom.dataset import Dataset

            ident = Dataset()
            for kw, value in rsp.identifier.items():
                setattr(ident, kw, value)
        fields: dict[int, Any] = {
            0x0002: sop_class,
            0x0100: rsp.command or (request_cf | 0x8000),
            0x0120: rsp.responded_to if rsp.responded_to is not None else msg_id,
            0x0800: NO_DATA_SET if ident is None else 0x0000,
            0x0900: rsp.status,
        }
        if rsp.offending is not None:
            fields[0x0901] = rsp.offending
        if rsp.error_comment is not None:
            fields[0x0902] = rsp.error_comment
        for tag, value in zip((0x1020, 0x1021, 0x1022, 0x1023), rsp.counts or (), strict=False):
            if value is not None:
                fields[tag] = value
        cmd = pdv(ctx_id, 0x03, command_set(fields))
        if ident is None:
            return [pdu(0x04, cmd)]
        if rsp.pdu_length is not None:
            ident.PatientComments = ""
            base = len(cmd) + 6 + len(encode_dataset(ident, implicit))
            pad = rsp.pdu_length - base
            if pad < 0 or pad % 2:
                raise ValueError(f"cannot pad the PDU to {rsp.pdu_length} bytes (base {base})")
            ident.PatientComments = "P" * pad
        ds = pdv(ctx_id, 0x02, encode_dataset(ident, implicit))
        if rsp.pdu_length is not None and len(cmd) + len(ds) != rsp.pdu_length:
            raise ValueError(f"PDU of {len(cmd) + len(ds)} bytes, wanted {rsp.pdu_length}")
        if rsp.split == "pdus":
            return [pdu(0x04, cmd), pdu(0x04, ds)]
        return [pdu(0x04, cmd + ds)]


# ------------------------------------------------------------------------------------------------
# Running a scenario (inside the namespace; called by scenarios.run_scenario through SCENARIOS)
# ------------------------------------------------------------------------------------------------
def _dcmtk_client(ctx: Ctx, sc: BadScenario, plan: AssocPlan) -> None:
    files = []
    for n, op in enumerate(plan.ops, start=1):
        q = op.query if op.query is not None else find_query()
        files.append(str(data.write_query(ctx.workdir / f"{plan.calling_ae}-{n:02d}.dcm", q)))
    tool = plan.client
    log = ctx.log(tool)
    argv = [dcmtk(tool), "-lc", ctx.logcfg, f"-{plan.model}", "-aet", plan.calling_ae]
    argv += ["-aec", BAD_AET, "--max-pdu", str(plan.max_pdu)]
    if tool == "movescu":
        argv += ["-aem", "STORESCP"]  # nobody listens: the SCP only claims sub-operations
    argv += [HOST, str(sc.port), *files]
    rc = ctx.procs.run(tool, argv, log=log, timeout=60, ok_codes=None)
    ctx.notes.append(f"{tool} {plan.calling_ae}: exit code {rc}")
    ctx.dcmtk_logs.append(
        DcmtkLog(log, tool, sc.port, ctx.label(tool), f"badscp ({BAD_IMPL_VERSION})")
    )


def _pynetdicom_client(ctx: Ctx, sc: BadScenario, plan: AssocPlan) -> None:
    assoc = scu_assoc(
        ctx, plan.calling_ae, sc.port, BAD_AET, list(plan.contexts), max_pdu=plan.max_pdu
    )
    for n, op in enumerate(plan.ops, start=1):
        q = op.query if op.query is not None else find_query()
        if op.model in (data.STUDY_ROOT_MOVE, data.PATIENT_ROOT_MOVE):
            rsps = list(assoc.send_c_move(q, "STORESCP", op.model, msg_id=n))
        else:
            rsps = list(assoc.send_c_find(q, op.model, msg_id=n))
        statuses = [
            f"0x{int(s.Status):04X}" if s is not None and "Status" in s else "none" for s, _ in rsps
        ]
        ctx.notes.append(f"{plan.calling_ae} msg {n}: pynetdicom yielded {' '.join(statuses)}")
        if not assoc.is_established:
            break
    if assoc.is_established:
        assoc.release()
    elif not plan.expect_abort:
        raise RuntimeError(f"{plan.calling_ae}: the association ended unexpectedly")
    else:
        ctx.notes.append(f"{plan.calling_ae}: association aborted by pynetdicom, as planned")


def run_bad_scenario(ctx: Ctx, sc: BadScenario) -> None:
    from . import pnpeers

    pyn = {p.calling_ae for p in sc.assocs if p.client == "pynetdicom"}
    if pyn:
        ctx.recorder = pnpeers.Recorder(pyn)
    scp = BadScp(sc.port, sc.assocs, ctx.workdir / "badscp.log")
    ctx.servers.append(scp)
    wait_listening(sc.port)
    ctx.ports[f"badscp {BAD_AET}"] = sc.port
    ctx.capture.start()
    for plan in sc.assocs:
        if plan.client == "pynetdicom":
            _pynetdicom_client(ctx, sc, plan)
        else:
            _dcmtk_client(ctx, sc, plan)
        scp.wait_idle()
        time.sleep(0.1)
    time.sleep(0.2)
    ctx.capture.stop()
    if scp.errors:
        raise RuntimeError(f"badscp: {'; '.join(scp.errors)} (see {scp.log_path})")
    left = {ae: len(ops) for ae, ops in scp.plans.items() if ops}
    if left:
        raise RuntimeError(f"badscp: planned operations never requested: {left}")
    ctx.notes.append(
        "planted: "
        + "; ".join(
            f"{s['calling_ae']} {s['command']} {s['status']} {s['plant']}"
            for s in scp.sent
            if s["plant"]
        )
    )


def _scenario_func(sc: BadScenario) -> Callable[[Ctx], None]:
    def run(ctx: Ctx) -> None:
        run_bad_scenario(ctx, sc)

    run.__name__ = f"scenario_{sc.name.replace('-', '_')}"
    return run


# ------------------------------------------------------------------------------------------------
# Where the planted responses are in a capture: tshark (PDML), independently of dimsesniff
# ------------------------------------------------------------------------------------------------
@dataclass
class WireMessage:
    stream: int
    src_port: int
    dst_port: int
    command: int | None = None
    message_id: int | None = None
    responded_to: int | None = None
    status: int | None = None
    frames: set[int] = field(default_factory=set)
    command_done: bool = False
    data_set_type: int | None = None
    data_done: bool = False

    @property
    def complete(self) -> bool:
        return self.command_done and (self.data_set_type == NO_DATA_SET or self.data_done)

    def key(self) -> dict[str, Any]:
        return {
            "command": COMMAND_NAMES.get(self.command, f"0x{self.command or 0:04X}"),
            "message_id_responded_to": self.responded_to,
            "status": None if self.status is None else f"0x{self.status:04X}",
        }


def _fields(elem: ET.Element, name: str) -> list[ET.Element]:
    return [f for f in elem.iter("field") if f.get("name") == name]


def tshark_messages(pcap: Path, port: int) -> list[WireMessage]:
    """Every DIMSE message tshark decodes, with the frames of the PDUs that carry it."""
    args = [tool_path("tshark"), "-r", str(pcap), "-o", "dicom.tag_tree:TRUE", "-T", "pdml"]
    if port != 104:
        args[3:3] = ["-d", f"tcp.port=={port},dicom"]
    pdml = subprocess.run(args, capture_output=True, check=True, timeout=120).stdout
    current: dict[tuple[int, int], WireMessage] = {}
    out: list[WireMessage] = []
    for packet in ET.fromstring(pdml).iter("packet"):
        frame = stream = sport = dport = None
        segments: list[int] = []
        dicom_protos = []
        for proto in packet.findall("proto"):
            name = proto.get("name")
            if name == "frame":
                frame = int(_fields(proto, "frame.number")[0].get("show"))
            elif name == "tcp":
                stream = int(_fields(proto, "tcp.stream")[0].get("show"))
                sport = int(_fields(proto, "tcp.srcport")[0].get("show"))
                dport = int(_fields(proto, "tcp.dstport")[0].get("show"))
            elif name == "dicom":
                dicom_protos.append(proto)
            if not dicom_protos:  # reassembly of the first PDU of this frame, if any
                segments += [int(s.get("show")) for s in _fields(proto, "tcp.segment")]
        for i, proto in enumerate(dicom_protos):
            pdu_frames = set(segments) if i == 0 and segments else {frame}
            ptype = _fields(proto, "dicom.pdu.type")
            if not ptype or int(ptype[0].get("show"), 16) != 0x04:
                continue
            for pdv_field in proto.findall("field"):
                ctx = [f for f in pdv_field.findall("field") if f.get("name") == "dicom.pdv.flags"]
                if not ctx:
                    continue
                flags = int(ctx[0].get("show"), 16)
                key = (stream, sport)
                msg = current.get(key)
                if msg is None or msg.complete:
                    msg = WireMessage(stream, sport, dport)
                    current[key] = msg
                    out.append(msg)
                msg.frames |= pdu_frames
                if flags & 0x01:
                    for tag_field in pdv_field.findall("field"):
                        tag = [
                            f for f in tag_field.findall("field") if f.get("name") == "dicom.tag"
                        ]
                        if not tag:
                            continue
                        value = [
                            f
                            for f in tag_field.findall("field")
                            if f.get("name") == "dicom.tag.value.16u"
                        ]
                        num = int(value[0].get("show")) if value else None
                        t = int(tag[0].get("show"), 16)
                        if t == 0x0100:
                            msg.command = num
                        elif t == 0x0110:
                            msg.message_id = num
                        elif t == 0x0120:
                            msg.responded_to = num
                        elif t == 0x0800:
                            msg.data_set_type = num
                        elif t == 0x0900:
                            msg.status = num
                    if flags & 0x02:
                        msg.command_done = True
                elif flags & 0x02:
                    msg.data_done = True
    return out


def planted_responses(sc: BadScenario) -> list[tuple[int, int, Rsp, int]]:
    """(association, position among the SCP's messages, response, request Message ID)."""
    out = []
    for a, plan in enumerate(sc.assocs):
        pos = 0
        for n, op in enumerate(plan.ops, start=1):
            for rsp in op.responses:
                out.append((a, pos, rsp, n))
                pos += 1
    return out


def expected_findings(pcap: Path, sc: BadScenario) -> list[dict[str, Any]]:
    """Locate every scripted response in `pcap` with tshark; return the planted findings.

    Raises RuntimeError if the SCP's messages seen by tshark differ from the script (wrong
    number, command, status or Message ID), so a bad capture never yields a wrong expectation.
    """
    msgs = tshark_messages(pcap, sc.port)
    streams = sorted({m.stream for m in msgs})
    if len(streams) != len(sc.assocs):
        raise RuntimeError(f"{pcap}: {len(streams)} DICOM streams, {len(sc.assocs)} planned")
    by_assoc = [[m for m in msgs if m.stream == s and m.src_port == sc.port] for s in streams]
    findings = []
    for a, pos, rsp, n in planted_responses(sc):
        scp_msgs = by_assoc[a]
        if pos >= len(scp_msgs):
            raise RuntimeError(f"{pcap}: association {a} has only {len(scp_msgs)} SCP messages")
        m = scp_msgs[pos]
        plan = sc.assocs[a]
        request_cf = C_MOVE_RQ if plan.client == "movescu" else C_FIND_RQ
        if plan.client == "pynetdicom" and plan.ops[n - 1].model in (
            data.STUDY_ROOT_MOVE,
            data.PATIENT_ROOT_MOVE,
        ):
            request_cf = C_MOVE_RQ
        want = {
            "command": COMMAND_NAMES[rsp.command or request_cf | 0x8000],
            "status": f"0x{rsp.status:04X}",
        }
        got = m.key()
        if {k: got[k] for k in want} != want:
            raise RuntimeError(f"{pcap}: association {a} message {pos}: tshark {got}, plan {want}")
        for rule in rsp.plant:
            findings.append(
                {
                    "rule": rule,
                    "first_frame": min(m.frames),
                    "last_frame": max(m.frames),
                    "association": a,
                    "scp_message": pos,
                    **got,
                    "why": rsp.why,
                }
            )
    if sum(len(x) for x in by_assoc) != len(planted_responses(sc)):
        raise RuntimeError(
            f"{pcap}: tshark sees {sum(len(x) for x in by_assoc)} SCP messages, "
            f"{len(planted_responses(sc))} planned"
        )
    return findings


def write_expected(pcap: Path, sc: BadScenario, out: Path) -> list[dict[str, Any]]:
    findings = expected_findings(pcap, sc)
    out.write_text(json.dumps(findings, indent=1) + "\n")
    return findings


# ------------------------------------------------------------------------------------------------
# Registration and the regeneration command
# ------------------------------------------------------------------------------------------------
if __name__ != "__main__":
    for _sc in BAD_SCENARIOS.values():
        SCENARIOS[_sc.name] = Scenario(_sc.name, _scenario_func(_sc), _sc.description)


def main(argv: list[str] | None = None) -> int:
    from .runner import PeersUnavailable, generate

    ap = argparse.ArgumentParser(description="Regenerate the planted-violation captures.")
    ap.add_argument("--out", type=Path, default=SAMPLES, help="output directory (samples/)")
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(BAD_SCENARIOS))
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument(
        "--expected-only",
        action="store_true",
        help="do not capture; rewrite <name>.expected.json from the existing <name>.pcap",
    )
    args = ap.parse_args(argv)
    names = args.only or list(BAD_SCENARIOS)
    if args.list:
        for n in names:
            print(f"{n:14s} {BAD_SCENARIOS[n].description}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    for name in names:
        t = time.monotonic()
        pcap = args.out / f"{name}.pcap"
        if not args.expected_only:
            with tempfile.TemporaryDirectory(prefix="dsn-bad-") as tmp:
                try:
                    fresh, _log = generate(name, Path(tmp))
                except PeersUnavailable as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
                shutil.copyfile(fresh, pcap)
        findings = write_expected(pcap, BAD_SCENARIOS[name], args.out / f"{name}.expected.json")
        print(
            f"{name:14s} {time.monotonic() - t:5.1f}s {pcap.stat().st_size:>7d} B  "
            f"{len(findings)} planted: {' '.join(f['rule'] for f in findings)}"
        )
    print(f"total {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    from tests.peers import badscp as _registered  # the module scenarios.py registered

    sys.exit(_registered.main())
