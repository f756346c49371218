"""Decoders for the A-ASSOCIATE-RQ/AC/RJ, A-RELEASE and A-ABORT PDU bodies.

PS3.8 §9.3.2-9.3.8 and Annex D.  Every item is bounded by its parent's
length: an item claiming more bytes than its parent holds is ``Malformed``,
never read past.  Unknown items are skipped, as PS3.8 §9.3.1 tells receivers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from .malformed import Malformed
from .ul_events import (
    Abort,
    AssociateAC,
    AssociateRJ,
    AssociateRQ,
    PresentationContextAC,
    PresentationContextRQ,
    ReleaseRP,
    ReleaseRQ,
    RoleSelection,
    UserInformation,
)

# PS3.8 Table 9-11 / 9-17: fixed part of A-ASSOCIATE-RQ/AC after the 6-byte PDU header
#  6-7 protocol version | 8-9 reserved | 10-25 called AE | 26-41 calling AE | 42-73 reserved
ASSOCIATE_FIXED = 68
ITEM_HEADER = struct.Struct(">BxH")
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")

APPLICATION_CONTEXT = 0x10
PRESENTATION_CONTEXT_RQ = 0x20
PRESENTATION_CONTEXT_AC = 0x21
ABSTRACT_SYNTAX = 0x30
TRANSFER_SYNTAX = 0x40
USER_INFORMATION = 0x50
MAXIMUM_LENGTH = 0x51
IMPLEMENTATION_CLASS_UID = 0x52
ASYNC_OPERATIONS_WINDOW = 0x53
ROLE_SELECTION = 0x54
IMPLEMENTATION_VERSION_NAME = 0x55
SOP_CLASS_EXTENDED = 0x56
SOP_CLASS_COMMON_EXTENDED = 0x57
USER_IDENTITY_RQ = 0x58
USER_IDENTITY_AC = 0x59


def iter_items(body: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Yield ``(item_type, value_start, value_end)`` for the items in ``body[start:end]``."""
    pos = start
    while pos < end:
        if end - pos < 4:
            raise Malformed("UL-ITEM-LENGTH", f"{end - pos} stray bytes after the last item")
        item_type, length = ITEM_HEADER.unpack_from(body, pos)
        value_start = pos + 4
        value_end = value_start + length
        if value_end > end:
            raise Malformed(
                "UL-ITEM-LENGTH",
                f"item {item_type:02X}H claims {length} bytes, only {end - value_start} remain",
            )
        yield item_type, value_start, value_end
        pos = value_end


def text(body: bytes, start: int, end: int) -> str:
    """AE titles and UIDs: ASCII, with the padding (spaces, NULs) stripped."""
    return body[start:end].decode("ascii", "replace").strip(" \x00")


def decode_user_information(body: bytes, start: int, end: int) -> UserInformation:
    """User Information item sub-items (PS3.8 Annex D, PS3.7 Annex D.3.3)."""
    fields: dict = {"roles": [], "extended_negotiation": [], "max_length_items": 0}
    for sub_type, vs, ve in iter_items(body, start, end):
        if sub_type == MAXIMUM_LENGTH:
            fields["max_length_items"] += 1
            if ve - vs == 4:
                fields["max_pdu_length"] = U32.unpack_from(body, vs)[0]
        elif sub_type == IMPLEMENTATION_CLASS_UID:
            fields["implementation_class_uid"] = text(body, vs, ve)
        elif sub_type == IMPLEMENTATION_VERSION_NAME:
            fields["implementation_version_name"] = text(body, vs, ve)
        elif sub_type == ASYNC_OPERATIONS_WINDOW and ve - vs >= 4:
            fields["max_ops_invoked"], fields["max_ops_performed"] = struct.unpack_from(
                ">HH", body, vs
            )
        elif sub_type == ROLE_SELECTION and ve - vs >= 2:
            (uid_len,) = U16.unpack_from(body, vs)
            if vs + 2 + uid_len + 2 <= ve:
                uid = text(body, vs + 2, vs + 2 + uid_len)
                scu, scp = body[vs + 2 + uid_len], body[vs + 3 + uid_len]
                fields["roles"].append(RoleSelection(uid, scu, scp))
        elif sub_type in (SOP_CLASS_EXTENDED, SOP_CLASS_COMMON_EXTENDED) and ve - vs >= 2:
            (uid_len,) = U16.unpack_from(body, vs)
            fields["extended_negotiation"].append(text(body, vs + 2, min(ve, vs + 2 + uid_len)))
        elif sub_type == USER_IDENTITY_RQ and ve - vs >= 2:
            # Type and "positive response requested" only: the identity itself is a secret.
            fields["user_identity_type"] = body[vs]
            fields["user_identity_response_requested"] = bool(body[vs + 1])
        elif sub_type == USER_IDENTITY_AC and ve - vs >= 2:
            fields["user_identity_server_response_length"] = U16.unpack_from(body, vs)[0]
    fields["roles"] = tuple(fields["roles"])
    fields["extended_negotiation"] = tuple(fields["extended_negotiation"])
    return UserInformation(**fields)


def _context_rq(body: bytes, vs: int, ve: int) -> PresentationContextRQ:
    if ve - vs < 4:
        raise Malformed("UL-ITEM-LENGTH", "presentation context item shorter than 4 bytes")
    abstract = ""
    transfer: list[str] = []
    for sub_type, ss, se in iter_items(body, vs + 4, ve):
        if sub_type == ABSTRACT_SYNTAX:
            abstract = text(body, ss, se)
        elif sub_type == TRANSFER_SYNTAX:
            transfer.append(text(body, ss, se))
    return PresentationContextRQ(body[vs], abstract, tuple(transfer))


def _context_ac(body: bytes, vs: int, ve: int) -> PresentationContextAC:
    if ve - vs < 4:
        raise Malformed("UL-ITEM-LENGTH", "presentation context item shorter than 4 bytes")
    transfer = [
        text(body, ss, se) for t, ss, se in iter_items(body, vs + 4, ve) if t == TRANSFER_SYNTAX
    ]
    return PresentationContextAC(body[vs], body[vs + 2], tuple(transfer))


def decode_associate(
    pdu_type: int, body: bytes, first_frame: int, last_frame: int, ts: float
) -> AssociateRQ | AssociateAC:
    """Decode an A-ASSOCIATE-RQ (type 1) or -AC (type 2); ``body`` starts after the PDU header."""
    if len(body) < ASSOCIATE_FIXED:
        raise Malformed(
            "UL-PDU-LENGTH", f"A-ASSOCIATE PDU of {len(body)} bytes, at least 68 needed"
        )
    (version,) = U16.unpack_from(body, 0)
    called = text(body, 4, 20)
    calling = text(body, 20, 36)
    app_context: str | None = None
    user_info = UserInformation()
    contexts_rq: list[PresentationContextRQ] = []
    contexts_ac: list[PresentationContextAC] = []
    item_types: list[int] = []
    for item_type, vs, ve in iter_items(body, ASSOCIATE_FIXED, len(body)):
        item_types.append(item_type)
        if item_type == APPLICATION_CONTEXT:
            app_context = text(body, vs, ve)
        elif item_type == PRESENTATION_CONTEXT_RQ and pdu_type == 1:
            contexts_rq.append(_context_rq(body, vs, ve))
        elif item_type == PRESENTATION_CONTEXT_AC and pdu_type == 2:
            contexts_ac.append(_context_ac(body, vs, ve))
        elif item_type == USER_INFORMATION:
            user_info = decode_user_information(body, vs, ve)
    if pdu_type == 1:
        return AssociateRQ(
            version,
            called,
            calling,
            app_context,
            tuple(contexts_rq),
            user_info,
            tuple(item_types),
            first_frame,
            last_frame,
            ts,
        )
    return AssociateAC(
        version,
        called,
        calling,
        app_context,
        tuple(contexts_ac),
        user_info,
        tuple(item_types),
        first_frame,
        last_frame,
        ts,
    )


def decode_fixed(
    pdu_type: int, body: bytes, first_frame: int, last_frame: int, ts: float
) -> AssociateRJ | ReleaseRQ | ReleaseRP | Abort:
    """Decode the four 4-byte PDUs (PS3.8 Tables 9-21, 9-24, 9-25, 9-26)."""
    if len(body) < 4:
        raise Malformed(
            "UL-PDU-LEN-FIXED", f"PDU type {pdu_type:02X}H with length {len(body)}, 4 expected"
        )
    if pdu_type == 0x03:
        return AssociateRJ(body[1], body[2], body[3], first_frame, last_frame, ts)
    if pdu_type == 0x05:
        return ReleaseRQ(first_frame, last_frame, ts)
    if pdu_type == 0x06:
        return ReleaseRP(first_frame, last_frame, ts)
    return Abort(body[2], body[3], first_frame, last_frame, ts)
