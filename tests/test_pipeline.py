"""The whole pipeline on hand-made conversations: detection, reassembly edge cases, pairing."""

from __future__ import annotations

import random

from dissectors import dimse
from tests import build
from tests.conversation import Conversation, analyse

STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
IDENT = build.command_set({0x0008_0052: "STUDY", 0x0010_0010: "DOE^JOHN"}, group_length=False)


def find_rsp(to: int, status: int, identifier: bytes | None = None) -> bytes:
    cmd = build.command_set(
        {
            dimse.AFFECTED_SOP_CLASS_UID: STUDY_FIND,
            dimse.COMMAND_FIELD: dimse.Command.C_FIND_RSP,
            dimse.MESSAGE_ID_BEING_RESPONDED_TO: to,
            dimse.COMMAND_DATA_SET_TYPE: 0 if identifier is not None else 0x0101,
            dimse.STATUS: status,
        }
    )
    out = build.p_data(build.pdv(1, 0x03, cmd))
    if identifier is not None:
        out += build.p_data(build.pdv(1, 0x02, identifier))
    return out


def find_association(conv: Conversation, pendings: int = 3) -> None:
    conv.client_sends(build.associate_rq())
    conv.server_sends(build.associate_ac())
    conv.client_sends(build.find_rq(1, IDENT))
    for _ in range(pendings):
        conv.server_sends(find_rsp(1, 0xFF00, IDENT))
    conv.server_sends(find_rsp(1, 0x0000))
    conv.client_sends(build.release_rq())
    conv.server_sends(build.release_rp())
    conv.close()


def commands(rows: dict) -> list[str]:
    return [m["command"] for m in rows["messages"]]


EXPECTED = ["C-FIND-RQ", "C-FIND-RSP", "C-FIND-RSP", "C-FIND-RSP", "C-FIND-RSP"]


def test_dicom_on_any_port_by_its_associate_rq():
    conv = Conversation(server=("10.0.0.2", 8080))
    find_association(conv)
    rows = analyse(conv.frames)
    assert commands(rows) == EXPECTED
    (assoc,) = rows["associations"]
    assert assoc["server"] == "10.0.0.2:8080" and assoc["end_reason"] == "released"
    assert assoc["calling_ae"] == "SCU" and assoc["called_ae"] == "SCP"
    assert rows["violations"] == []


def test_associate_rq_in_one_byte_segments():
    conv = Conversation()
    rq = build.associate_rq()
    conv.client_sends(rq, sizes=[1] * len(rq))
    conv.server_sends(build.associate_ac())
    conv.client_sends(build.find_rq(1, IDENT))
    conv.server_sends(find_rsp(1, 0x0000))
    conv.close()
    rows = analyse(conv.frames)
    assert commands(rows) == ["C-FIND-RQ", "C-FIND-RSP"]
    assert rows["associations"][0]["start_frame"] == 4  # the RQ's first byte


def test_http_is_skipped():
    conv = Conversation(server=("10.0.0.2", 8080))
    conv.client_sends(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conv.server_sends(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 5000)
    conv.close()
    rows = analyse(conv.frames)
    assert rows == {"messages": [], "associations": [], "violations": []}


def test_forced_port_decodes_garbage_as_findings():
    conv = Conversation(server=("10.0.0.2", 104))
    conv.client_sends(b"\x99" * 100 + build.release_rq())
    conv.close()
    rows = analyse(conv.frames, ports=[104])
    assert [v["rule"] for v in rows["violations"]][:2] == ["UL-PDU-TYPE", "UL-RESYNC"]


def test_capture_started_mid_association():
    full = Conversation()
    find_association(full, pendings=5)
    # Drop the handshake, the A-ASSOCIATE exchange and the first bytes of the request.
    frames = full.frames[3:]
    frames = [f for f in frames if b"\x01\x00\x00\x00" not in f[2][54:60]][2:]
    rows = analyse(frames)
    assert rows["associations"][0]["started_mid_capture"] is True
    assert commands(rows)[-1] == "C-FIND-RSP"
    assert len([c for c in commands(rows) if c == "C-FIND-RSP"]) >= 4
    msg = rows["messages"][-1]
    assert msg["transfer_syntax_assumed"] is True
    assert msg["server"] == "10.0.0.2:104"  # roles guessed from the ports


def test_reordered_and_duplicated_segments_give_identical_messages():
    conv = Conversation(mss=40)
    find_association(conv, pendings=4)
    reference = analyse(conv.frames)
    rng = random.Random(7)
    frames = list(conv.frames)
    sender = [f[2][34:36] for f in frames]  # TCP source port
    for _ in range(8):
        # Reorder: swap two neighbouring segments of the same direction.
        i = rng.randrange(3, len(frames) - 3)
        if sender[i] == sender[i + 1]:
            frames[i], frames[i + 1] = frames[i + 1], frames[i]
        # Retransmit: an earlier segment seen again later.
        j = rng.randrange(3, len(frames) - 3)
        frames.insert(rng.randrange(j + 1, len(frames)), frames[j])
        sender = [f[2][34:36] for f in frames]
    rows = analyse(frames)
    keep = ("command", "message_id", "message_id_responded_to", "status", "data_set_bytes")
    assert [{k: m[k] for k in keep} for m in rows["messages"]] == [
        {k: m[k] for k in keep} for m in reference["messages"]
    ]


def test_lost_segment_is_reported_and_the_rest_decodes():
    conv = Conversation(mss=60)
    find_association(conv, pendings=6)
    victim = next(i for i, f in enumerate(conv.frames) if len(f[2]) > 100 and i > 20)
    frames = conv.frames[:victim] + conv.frames[victim + 1 :]
    rows = analyse(frames)
    assert "TCP-GAP" in [v["rule"] for v in rows["violations"]]
    assert commands(rows).count("C-FIND-RSP") >= 5
    assert rows["messages"][-1]["status"] == "0x0000"


def test_pairing_and_response_time():
    conv = Conversation()
    find_association(conv)
    rows = analyse(conv.frames)
    rq, *rsps = rows["messages"]
    assert all(r["request_first_frame"] == rq["first_frame"] for r in rsps)
    assert all(r["response_time_s"] > 0 for r in rsps)


def test_identifier_phi_is_tokenised_unless_asked():
    from dimsesniff.redact import Redactor

    conv = Conversation()
    find_association(conv, pendings=1)
    rows = analyse(conv.frames)
    assert "DOE^JOHN" not in str(rows)
    assert "PatientName=phi:" in rows["messages"][0]["identifier"]
    rows = analyse(conv.frames, redactor=Redactor(include_phi=True))
    assert "PatientName=DOE^JOHN" in rows["messages"][0]["identifier"]


def test_deflated_identifier_and_the_command_after_it():
    """tshark 4.0 loses command sets that follow a deflated data set; we must not."""
    import zlib

    deflated = "1.2.840.10008.1.2.1.99"
    explicit = b"\x08\x00\x52\x00CS\x06\x00STUDY " + b"\x10\x00\x10\x00PN\x08\x00DOE^JOHN"
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    packed = packer.compress(explicit) + packer.flush()
    packed += b"\x00" * (len(packed) % 2)
    conv = Conversation()
    conv.client_sends(build.associate_rq(contexts=((1, STUDY_FIND, (deflated,)),)))
    conv.server_sends(build.associate_ac(results=((1, 0, deflated),)))
    conv.client_sends(build.find_rq(1, packed))
    conv.server_sends(find_rsp(1, 0xFF00, packed) + find_rsp(1, 0x0000))
    conv.close()
    rows = analyse(conv.frames)
    assert commands(rows) == ["C-FIND-RQ", "C-FIND-RSP", "C-FIND-RSP"]
    assert rows["messages"][0]["transfer_syntax"] == deflated
    identifier = rows["messages"][0]["identifier"]
    assert identifier.startswith("QueryRetrieveLevel=STUDY; PatientName=phi:")
    assert rows["messages"][1]["identifier_error"] == ""
    assert rows["messages"][2]["status"] == "0x0000"


def test_command_set_in_explicit_vr_is_named_as_such():
    import struct

    def explicit(group: int, element: int, vr: bytes, value: bytes) -> bytes:
        return struct.pack("<HH", group, element) + vr + struct.pack("<H", len(value)) + value

    body = (explicit(0, 0x0100, b"US", b"\x30\x80") + explicit(0, 0x0120, b"US", b"\x01\x00")
            + explicit(0, 0x0800, b"US", b"\x01\x01") + explicit(0, 0x0900, b"US", b"\x00\x00"))
    bad = explicit(0, 0, b"UL", struct.pack("<I", len(body))) + body
    conv = Conversation()
    conv.client_sends(build.associate_rq(contexts=build.ECHO_CONTEXT))
    conv.server_sends(build.associate_ac())
    conv.client_sends(build.echo_rq())
    conv.server_sends(build.p_data(build.pdv(1, 0x03, bad)))
    conv.client_sends(build.echo_rq(2))
    conv.server_sends(build.echo_rsp(2))
    conv.close()
    rules = [v["rule"] for v in analyse(conv.frames)["violations"]]
    assert "DIMSE-CMD-IVRLE" in rules and "DIMSE-CMD-DECODE" not in rules
    assert rules.count("DIMSE-CMD-IVRLE") == 1  # the good C-ECHO-RSP after it is not flagged
