"""What the report tests share: every sample's outputs (written once), and a planted capture.

``sample_outputs(name, root)`` runs ``dimsesniff analyze`` on ``samples/<name>.pcap``
with every table format, the HTML report and the conformance statement, once per
test session, and returns the output directory.

The planted capture is hand-made, with hostile text from the wire: the SCU's
calling AE title is a ``<script>`` tag, the SCP answers a C-FIND with a Cxxx
failure whose Error Comment is a spreadsheet formula, and the SCU then
retries the same query (which succeeds) before releasing.  Every output must
carry these values inert: escaped in HTML and Markdown, neutralised in CSV,
as they were in JSON Lines and Parquet.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

from typer.testing import CliRunner

from dimsesniff.cli import app
from dissectors import dimse
from tests import build
from tests.conversation import Conversation

SAMPLES_DIR = Path(__file__).parent.parent / "samples"
SAMPLES = sorted(p.stem for p in SAMPLES_DIR.glob("*.pcap"))
PHI_KEY = "test-key"  # stable tokens, so that runs can be compared
_DONE: dict[str, Path] = {}


def analyze_cli(capture: Path, out: Path, *extra: str) -> Path:
    """``dimsesniff analyze`` in-process with every format; fails the test on a bad exit."""
    args = ["analyze", str(capture), "-o", str(out), "-q", "--fail-on", "never"]
    args += ["--format", "csv,jsonl,parquet", "--html", "--conformance", "--phi-key", PHI_KEY]
    args += extra
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def sample_outputs(name: str, root: Path) -> Path:
    """Outputs of ``samples/<name>.pcap`` (computed once per session)."""
    if name not in _DONE:
        _DONE[name] = analyze_cli(SAMPLES_DIR / f"{name}.pcap", root / name)
    return _DONE[name]


SCRIPT_AE = "<script>alert(1)"  # 16 characters: the longest AE title
FORMULA = '=HYPERLINK("http://x.invalid/","open")'
PATIENT_NAME = "PLANTED^PATIENT"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


def identifier() -> bytes:
    """QueryRetrieveLevel=STUDY, PatientName (Implicit VR Little Endian)."""
    return build.element(0x0008_0052, b"STUDY ") + build.element(
        0x0010_0010, PATIENT_NAME.encode() + (b" " if len(PATIENT_NAME) % 2 else b"")
    )


def find_rsp(message_id: int, status: int, *, comment: str | None = None) -> bytes:
    fields: dict[int, int | str | bytes] = {
        dimse.AFFECTED_SOP_CLASS_UID: STUDY_ROOT_FIND,
        dimse.COMMAND_FIELD: dimse.Command.C_FIND_RSP,
        dimse.MESSAGE_ID_BEING_RESPONDED_TO: message_id,
        dimse.COMMAND_DATA_SET_TYPE: 0x0101,
        dimse.STATUS: status,
    }
    if comment is not None:
        fields[dimse.ERROR_COMMENT] = comment
    return build.p_data(build.pdv(1, 0x03, build.command_set(fields)))


def conversation() -> Conversation:
    conv = Conversation()
    conv.client_sends(build.associate_rq(called="QRSCP", calling=SCRIPT_AE))
    conv.server_sends(build.associate_ac(called="QRSCP", calling=SCRIPT_AE))
    conv.client_sends(build.find_rq(1, identifier()))
    conv.server_sends(find_rsp(1, 0xC001, comment=FORMULA))
    conv.client_sends(build.find_rq(2, identifier()))  # the same query again
    conv.server_sends(find_rsp(2, 0x0000))
    conv.client_sends(build.release_rq())
    conv.server_sends(build.release_rp())
    conv.close()
    return conv


def conversation_pcap() -> io.BytesIO:
    """The conversation as a classic pcap (microseconds, Ethernet), in memory."""
    out = io.BytesIO()
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    for ts, _linktype, frame in conversation().frames:
        sec = int(ts)
        usec = int(round((ts - sec) * 1e6))
        out.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    out.seek(0)
    return out


def write_capture(path: Path) -> Path:
    path.write_bytes(conversation_pcap().getvalue())
    return path
