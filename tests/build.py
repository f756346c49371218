"""Tiny builders for hand-made upper-layer bytes, for edge cases real peers never send.

Layouts follow PS3.8 §9.3 (PDUs, items) and PS3.7 §6.3.1 (Implicit VR Little
Endian command elements).  Real traffic comes from ``samples/``.
"""

from __future__ import annotations

import struct

from dissectors import dimse

# Tags whose value is an unsigned short, from the Command Dictionary (PS3.7 Annex E).
US_TAGS = frozenset(tag for tag, (vr, _name) in dimse.COMMAND_DICTIONARY.items() if vr == "US")


def element(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def encode_value(tag: int, value: int | str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, int):
        return struct.pack("<H", value) if tag in US_TAGS else struct.pack("<I", value)
    raw = value.encode("ascii")
    if len(raw) % 2:
        raw += (
            b"\x00"
            if tag
            in (
                dimse.AFFECTED_SOP_CLASS_UID,
                dimse.AFFECTED_SOP_INSTANCE_UID,
                dimse.REQUESTED_SOP_CLASS_UID,
            )
            else b" "
        )
    return raw


def command_set(fields: dict[int, int | str | bytes], *, group_length: bool = True) -> bytes:
    """Elements in ascending tag order, with (0000,0000) Command Group Length first."""
    body = b"".join(element(tag, encode_value(tag, value)) for tag, value in sorted(fields.items()))
    if not group_length:
        return body
    return element(dimse.GROUP_LENGTH, struct.pack("<I", len(body))) + body


def pdv(context_id: int, control: int, data: bytes) -> bytes:
    """PDV item (PS3.8 Table 9-23): length counts the context ID and control header bytes."""
    return struct.pack(">IBB", len(data) + 2, context_id, control) + data


def pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BxI", pdu_type, len(body)) + body


def p_data(*pdvs: bytes) -> bytes:
    return pdu(0x04, b"".join(pdvs))


def item(item_type: int, value: bytes) -> bytes:
    return struct.pack(">BxH", item_type, len(value)) + value


def ae(title: str) -> bytes:
    return title.encode("ascii").ljust(16)


def associate_rq(
    called: str = "SCP",
    calling: str = "SCU",
    contexts: tuple[tuple[int, str, tuple[str, ...]], ...] = (
        (1, "1.2.840.10008.5.1.4.1.2.2.1", ("1.2.840.10008.1.2",)),
    ),
    max_pdu: int = 16384,
    extra_user_items: bytes = b"",
    version: int = 1,
) -> bytes:
    items = item(0x10, b"1.2.840.10008.3.1.1.1")
    for ctx_id, abstract, transfers in contexts:
        sub = item(0x30, abstract.encode()) + b"".join(item(0x40, t.encode()) for t in transfers)
        items += item(0x20, bytes([ctx_id, 0, 0, 0]) + sub)
    user = item(0x51, struct.pack(">I", max_pdu)) + item(0x52, b"1.2.3.4") + extra_user_items
    items += item(0x50, user)
    return pdu(0x01, struct.pack(">HH", version, 0) + ae(called) + ae(calling) + bytes(32) + items)


def associate_ac(
    called: str = "SCP",
    calling: str = "SCU",
    results: tuple[tuple[int, int, str], ...] = ((1, 0, "1.2.840.10008.1.2"),),
    max_pdu: int = 16384,
    extra_user_items: bytes = b"",
) -> bytes:
    items = item(0x10, b"1.2.840.10008.3.1.1.1")
    for ctx_id, result, transfer in results:
        items += item(0x21, bytes([ctx_id, 0, result, 0]) + item(0x40, transfer.encode()))
    items += item(0x50, item(0x51, struct.pack(">I", max_pdu)) + extra_user_items)
    return pdu(0x02, struct.pack(">HH", 1, 0) + ae(called) + ae(calling) + bytes(32) + items)


def release_rq() -> bytes:
    return pdu(0x05, bytes(4))


def release_rp() -> bytes:
    return pdu(0x06, bytes(4))


def abort(source: int = 0, reason: int = 0) -> bytes:
    return pdu(0x07, bytes([0, 0, source, reason]))


def find_rq(message_id: int = 1, identifier: bytes | None = None, ctx: int = 1) -> bytes:
    """A C-FIND-RQ as one P-DATA-TF per fragment type."""
    cmd = command_set(
        {
            dimse.AFFECTED_SOP_CLASS_UID: "1.2.840.10008.5.1.4.1.2.2.1",
            dimse.COMMAND_FIELD: dimse.Command.C_FIND_RQ,
            dimse.MESSAGE_ID: message_id,
            dimse.PRIORITY: 0,
            dimse.COMMAND_DATA_SET_TYPE: 0x0000 if identifier is not None else 0x0101,
        }
    )
    out = p_data(pdv(ctx, 0x03, cmd))
    if identifier is not None:
        out += p_data(pdv(ctx, 0x02, identifier))
    return out


def echo_rq(message_id: int = 1, ctx: int = 1, control: int = 0x03) -> bytes:
    cmd = command_set(
        {
            dimse.AFFECTED_SOP_CLASS_UID: "1.2.840.10008.1.1",
            dimse.COMMAND_FIELD: dimse.Command.C_ECHO_RQ,
            dimse.MESSAGE_ID: message_id,
            dimse.COMMAND_DATA_SET_TYPE: 0x0101,
        }
    )
    return p_data(pdv(ctx, control, cmd))


def echo_rsp(message_id: int = 1, ctx: int = 1, status: int = 0) -> bytes:
    cmd = command_set(
        {
            dimse.AFFECTED_SOP_CLASS_UID: "1.2.840.10008.1.1",
            dimse.COMMAND_FIELD: dimse.Command.C_ECHO_RSP,
            dimse.MESSAGE_ID_BEING_RESPONDED_TO: message_id,
            dimse.COMMAND_DATA_SET_TYPE: 0x0101,
            dimse.STATUS: status,
        }
    )
    return p_data(pdv(ctx, 0x03, cmd))


ECHO_CONTEXT = ((1, "1.2.840.10008.1.1", ("1.2.840.10008.1.2",)),)


def role_item(uid: str, scu: int, scp: int) -> bytes:
    """SCP/SCU Role Selection sub-item (PS3.7 Table D.3-9)."""
    raw = uid.encode()
    return item(0x54, struct.pack(">H", len(raw)) + raw + bytes([scu, scp]))
