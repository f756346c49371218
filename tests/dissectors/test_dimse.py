"""Command-set decoding by tag, and message assembly from PDV fragments."""

from __future__ import annotations

from dissectors import dimse
from dissectors.dimse_assembly import DimseAssembler, DimseMessage
from dissectors.ul_events import DecodeFinding, Lost, Pdv
from dissectors.ul_pdu import PduParser
from tests import build

MOVE_RSP_A801 = {
    dimse.AFFECTED_SOP_CLASS_UID: "1.2.840.10008.5.1.4.1.2.2.2",
    dimse.COMMAND_FIELD: dimse.Command.C_MOVE_RSP,
    dimse.MESSAGE_ID_BEING_RESPONDED_TO: 5,
    dimse.COMMAND_DATA_SET_TYPE: 0x0101,
    dimse.STATUS: 0xA801,
    dimse.ERROR_COMMENT: "Unknown destination",
}


def test_decode_by_tag_not_position():
    cmd = dimse.decode_command_set(build.command_set(MOVE_RSP_A801))
    assert cmd.command_field == dimse.Command.C_MOVE_RSP
    assert cmd.status == 0xA801
    assert cmd.us(dimse.REMAINING) is None  # absent counts do not shift anything
    assert cmd.text(dimse.ERROR_COMMENT) == "Unknown destination"
    assert cmd.us(dimse.MESSAGE_ID_BEING_RESPONDED_TO) == 5
    assert cmd.has_data_set is False
    assert cmd.order[0] == dimse.GROUP_LENGTH and not cmd.problems


def test_truncated_and_duplicate_elements_are_recorded():
    data = build.command_set(MOVE_RSP_A801)
    cmd = dimse.decode_command_set(data[:-5])
    assert cmd.problems and "claims" in cmd.problems[0]
    dup = data + build.element(dimse.STATUS, b"\x00\x00")
    cmd = dimse.decode_command_set(dup)
    assert cmd.order.count(dimse.STATUS) == 2 and cmd.status == 0xA801  # first copy wins


def test_command_name_and_response_bit():
    assert dimse.command_name(0x8021) == "C-MOVE-RSP"
    assert dimse.command_name(0x0FFF) == "C-CANCEL-RQ"
    assert dimse.command_name(0x1234) == "unknown(1234H)"
    assert dimse.is_response(0x8020) and not dimse.is_response(0x0FFF)


def assemble(data: bytes, chunk: int = 10_000) -> list:
    parser, assembler, out = PduParser(), DimseAssembler(), []
    for i in range(0, len(data), chunk):
        for ev in parser.feed(data[i : i + chunk], i // chunk + 1, float(i)):
            if isinstance(ev, Pdv):
                out += assembler.pdv(ev)
            elif isinstance(ev, Lost):
                out += assembler.lost(ev)
    return out + assembler.close(999, 0.0)


def test_fragmented_command_and_identifier_reassemble():
    cmd = build.command_set(
        {
            dimse.AFFECTED_SOP_CLASS_UID: "1.2.840.10008.5.1.4.1.2.2.1",
            dimse.COMMAND_FIELD: dimse.Command.C_FIND_RQ,
            dimse.MESSAGE_ID: 3,
            dimse.PRIORITY: 0,
            dimse.COMMAND_DATA_SET_TYPE: 0,
        }
    )
    ident = build.command_set({0x0008_0052: "STUDY", 0x0010_0010: "DOE^J"}, group_length=False)
    data = (
        build.p_data(build.pdv(1, 0x01, cmd[:10]), build.pdv(1, 0x01, cmd[10:30]))
        + build.p_data(build.pdv(1, 0x03, cmd[30:]))
        + build.p_data(build.pdv(1, 0x00, ident[:6]))
        + build.p_data(build.pdv(1, 0x02, ident[6:]))
    )
    for chunk in (1, 7, 1000):
        (msg,) = assemble(data, chunk)
        assert isinstance(msg, DimseMessage)
        assert msg.command.us(dimse.MESSAGE_ID) == 3
        assert msg.data_set == ident and msg.data_set_length == len(ident)
        assert (msg.command_pdvs, msg.data_pdvs) == (3, 2) and msg.complete


def test_store_data_is_counted_not_kept():
    cmd = build.command_set(
        {
            dimse.COMMAND_FIELD: dimse.Command.C_STORE_RQ,
            dimse.MESSAGE_ID: 1,
            dimse.COMMAND_DATA_SET_TYPE: 0,
        }
    )
    data = build.p_data(build.pdv(3, 0x03, cmd)) + build.p_data(build.pdv(3, 0x02, b"p" * 5000))
    (msg,) = assemble(data, 1448)
    assert msg.data_set is None and msg.data_set_length == 5000


def test_last_of_many_small_pdus_in_one_segment():
    """tshark 4.0 loses the last message here; we must not."""
    msgs = b"".join(
        build.p_data(
            build.pdv(
                1,
                0x03,
                build.command_set(
                    {
                        dimse.COMMAND_FIELD: dimse.Command.C_ECHO_RSP,
                        dimse.MESSAGE_ID_BEING_RESPONDED_TO: i,
                        dimse.COMMAND_DATA_SET_TYPE: 0x0101,
                        dimse.STATUS: 0,
                    }
                ),
            )
        )
        for i in range(1, 21)
    )
    out = assemble(msgs)
    assert [m.command.us(dimse.MESSAGE_ID_BEING_RESPONDED_TO) for m in out] == list(range(1, 21))


def test_new_command_before_data_end_is_a_finding():
    cmd = build.command_set(
        {
            dimse.COMMAND_FIELD: dimse.Command.C_FIND_RQ,
            dimse.MESSAGE_ID: 1,
            dimse.COMMAND_DATA_SET_TYPE: 0,
        }
    )
    data = (
        build.p_data(build.pdv(1, 0x03, cmd))
        + build.p_data(build.pdv(1, 0x00, b"ab"))
        + build.p_data(build.pdv(1, 0x03, cmd))
    )
    out = assemble(data)
    assert [o.code for o in out if isinstance(o, DecodeFinding)] == ["UL-MCH-ORDER"]
    messages = [o for o in out if isinstance(o, DimseMessage)]
    assert [m.complete for m in messages] == [False, False]  # second one never got its data


def test_gap_marks_message_incomplete():
    cmd = build.command_set(
        {
            dimse.COMMAND_FIELD: dimse.Command.C_STORE_RQ,
            dimse.MESSAGE_ID: 1,
            dimse.COMMAND_DATA_SET_TYPE: 0,
        }
    )
    data = build.p_data(build.pdv(3, 0x03, cmd)) + build.p_data(build.pdv(3, 0x02, b"p" * 3000))
    parser, assembler = PduParser(), DimseAssembler()
    out = []
    for ev in (
        parser.feed(data[: len(data) - 2000], 1, 0.0)
        + parser.gap(1000, 2, 0.0)
        + parser.feed(data[-1000:], 3, 0.0)
    ):
        out += (
            assembler.pdv(ev)
            if isinstance(ev, Pdv)
            else (assembler.lost(ev) if isinstance(ev, Lost) else [])
        )
    (msg,) = out
    assert not msg.complete and msg.lost_bytes == 1000 and msg.data_set_length == 2000


def test_skipped_bulk_bytes_are_still_counted():
    """PduParser.skip_count absorbs pixel data unseen; the assembler must still count every byte."""
    cmd = build.command_set({dimse.COMMAND_FIELD: dimse.Command.C_STORE_RQ,
                             dimse.MESSAGE_ID: 1, dimse.COMMAND_DATA_SET_TYPE: 0})
    data = (build.p_data(build.pdv(3, 0x03, cmd)) + build.p_data(build.pdv(3, 0x00, b"p" * 5000))
            + build.p_data(build.pdv(3, 0x02, b"q" * 3000)))
    parser, assembler, out, skipped = PduParser(), DimseAssembler(), [], 0
    for i in range(0, len(data), 700):
        chunk = data[i:i + 700]
        events = parser.skip_count(len(chunk), i, 0.0) if assembler.counting_only else None
        if events is not None:
            skipped += len(chunk)
        else:
            events = parser.feed(chunk, i, 0.0)
        for ev in events:
            if isinstance(ev, Pdv):
                out += assembler.pdv(ev)
    (msg,) = out
    assert skipped > 5000 and msg.data_set_length == 8000 and msg.data_pdvs == 2
