"""DIMSE command sets (PS3.7 §6.3, §9.3, §10.3, Annex E), decoded by tag.

A command set is always Implicit VR Little Endian (PS3.7 §6.3.1), whatever the
negotiated transfer syntax, so it can be decoded without the A-ASSOCIATE.
Elements are looked up by tag, never by position: an absent optional element
(no sub-operation counts with A801, an extra Error Comment) must not shift
the others.  The raw value bytes are kept next to the decoded values so that
checks can test lengths and encodings exactly as they were on the wire.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

# Implicit VR Little Endian element header: | group (2) | element (2) | value length (4) |
ELEMENT_HEADER = struct.Struct("<HHI")
US = struct.Struct("<H")
UL = struct.Struct("<I")


class Command(IntEnum):
    """Command Field (0000,0100) values, PS3.7 Annex E (Table E.1-1)."""

    C_STORE_RQ = 0x0001
    C_STORE_RSP = 0x8001
    C_GET_RQ = 0x0010
    C_GET_RSP = 0x8010
    C_FIND_RQ = 0x0020
    C_FIND_RSP = 0x8020
    C_MOVE_RQ = 0x0021
    C_MOVE_RSP = 0x8021
    C_ECHO_RQ = 0x0030
    C_ECHO_RSP = 0x8030
    N_EVENT_REPORT_RQ = 0x0100
    N_EVENT_REPORT_RSP = 0x8100
    N_GET_RQ = 0x0110
    N_GET_RSP = 0x8110
    N_SET_RQ = 0x0120
    N_SET_RSP = 0x8120
    N_ACTION_RQ = 0x0130
    N_ACTION_RSP = 0x8130
    N_CREATE_RQ = 0x0140
    N_CREATE_RSP = 0x8140
    N_DELETE_RQ = 0x0150
    N_DELETE_RSP = 0x8150
    C_CANCEL_RQ = 0x0FFF


_COMMAND_NAMES = {command.value: command.name.replace("_", "-") for command in Command}


def command_name(value: int | None) -> str:
    """``C-FIND-RSP`` for 0x8020; ``unknown(1234H)`` for values Annex E does not define.

    A table lookup, not ``Command(value)``: every message row and finding asks.
    """
    if value is None:
        return "missing"
    name = _COMMAND_NAMES.get(value)
    return f"unknown({value:04X}H)" if name is None else name


def is_response(value: int | None) -> bool:
    """Responses have bit 15 of the Command Field set (PS3.7 Annex E)."""
    return value is not None and value & 0x8000 != 0 and value != Command.C_CANCEL_RQ


# Command elements (group 0000) and their VR, PS3.7 Annex E Table E.1-1 (and E.2-1 retired).
GROUP_LENGTH = 0x0000_0000
AFFECTED_SOP_CLASS_UID = 0x0000_0002
REQUESTED_SOP_CLASS_UID = 0x0000_0003
COMMAND_FIELD = 0x0000_0100
MESSAGE_ID = 0x0000_0110
MESSAGE_ID_BEING_RESPONDED_TO = 0x0000_0120
MOVE_DESTINATION = 0x0000_0600
PRIORITY = 0x0000_0700
COMMAND_DATA_SET_TYPE = 0x0000_0800
STATUS = 0x0000_0900
OFFENDING_ELEMENT = 0x0000_0901
ERROR_COMMENT = 0x0000_0902
ERROR_ID = 0x0000_0903
AFFECTED_SOP_INSTANCE_UID = 0x0000_1000
REQUESTED_SOP_INSTANCE_UID = 0x0000_1001
EVENT_TYPE_ID = 0x0000_1002
ATTRIBUTE_IDENTIFIER_LIST = 0x0000_1005
ACTION_TYPE_ID = 0x0000_1008
REMAINING = 0x0000_1020
COMPLETED = 0x0000_1021
FAILED = 0x0000_1022
WARNING = 0x0000_1023
MOVE_ORIGINATOR_AE_TITLE = 0x0000_1030
MOVE_ORIGINATOR_MESSAGE_ID = 0x0000_1031

NO_DATA_SET = 0x0101  # Command Data Set Type value meaning "no data set" (PS3.7 Table E.1-1)

COMMAND_DICTIONARY: dict[int, tuple[str, str]] = {
    GROUP_LENGTH: ("UL", "CommandGroupLength"),
    0x0000_0001: ("UL", "CommandLengthToEnd"),  # retired
    AFFECTED_SOP_CLASS_UID: ("UI", "AffectedSOPClassUID"),
    REQUESTED_SOP_CLASS_UID: ("UI", "RequestedSOPClassUID"),
    0x0000_0010: ("SH", "CommandRecognitionCode"),  # retired
    COMMAND_FIELD: ("US", "CommandField"),
    MESSAGE_ID: ("US", "MessageID"),
    MESSAGE_ID_BEING_RESPONDED_TO: ("US", "MessageIDBeingRespondedTo"),
    0x0000_0200: ("AE", "Initiator"),  # retired
    0x0000_0300: ("AE", "Receiver"),  # retired
    0x0000_0400: ("AE", "FindLocation"),  # retired
    MOVE_DESTINATION: ("AE", "MoveDestination"),
    PRIORITY: ("US", "Priority"),
    COMMAND_DATA_SET_TYPE: ("US", "CommandDataSetType"),
    0x0000_0850: ("US", "NumberOfMatches"),  # retired
    0x0000_0860: ("US", "ResponseSequenceNumber"),  # retired
    STATUS: ("US", "Status"),
    OFFENDING_ELEMENT: ("AT", "OffendingElement"),
    ERROR_COMMENT: ("LO", "ErrorComment"),
    ERROR_ID: ("US", "ErrorID"),
    AFFECTED_SOP_INSTANCE_UID: ("UI", "AffectedSOPInstanceUID"),
    REQUESTED_SOP_INSTANCE_UID: ("UI", "RequestedSOPInstanceUID"),
    EVENT_TYPE_ID: ("US", "EventTypeID"),
    ATTRIBUTE_IDENTIFIER_LIST: ("AT", "AttributeIdentifierList"),
    ACTION_TYPE_ID: ("US", "ActionTypeID"),
    REMAINING: ("US", "NumberOfRemainingSuboperations"),
    COMPLETED: ("US", "NumberOfCompletedSuboperations"),
    FAILED: ("US", "NumberOfFailedSuboperations"),
    WARNING: ("US", "NumberOfWarningSuboperations"),
    MOVE_ORIGINATOR_AE_TITLE: ("AE", "MoveOriginatorApplicationEntityTitle"),
    MOVE_ORIGINATOR_MESSAGE_ID: ("US", "MoveOriginatorMessageID"),
    0x0000_4000: ("LT", "DialogReceiver"),  # retired
    0x0000_4010: ("LT", "TerminalType"),  # retired
    0x0000_5010: ("SH", "MessageSetID"),  # retired
    0x0000_5020: ("SH", "EndMessageID"),  # retired
    0x0000_5110: ("LT", "DisplayFormat"),  # retired
    0x0000_5120: ("LT", "PagePositionID"),  # retired
    0x0000_5130: ("CS", "TextFormatID"),  # retired
    0x0000_5140: ("CS", "NormalReverse"),  # retired
    0x0000_5150: ("CS", "AddGrayScale"),  # retired
    0x0000_5160: ("CS", "Borders"),  # retired
    0x0000_5170: ("IS", "Copies"),  # retired
    0x0000_5180: ("CS", "CommandMagnificationType"),  # retired
    0x0000_5190: ("CS", "Erase"),  # retired
    0x0000_51A0: ("CS", "Print"),  # retired
    0x0000_51B0: ("US", "Overlays"),  # retired
}


def tag_text(tag: int) -> str:
    """``(0000,0902)``: the notation of the standard and of Wireshark."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@dataclass(slots=True)
class CommandSet:
    """One decoded command set.

    ``raw`` maps each tag to its value bytes exactly as sent; ``order`` keeps
    the tags in wire order (duplicates included) for the ordering and
    duplicate checks of PS3.7 §6.3.1; ``problems`` lists what could not be
    decoded (truncated element, trailing bytes).  ``command_field`` and
    ``status`` are read from ``raw`` once, when the set is made: the pairing,
    the tracker, the rules and the rows ask for them a dozen times a message.
    """

    raw: dict[int, bytes] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    length: int = 0
    misencoding: str | None = None  # when not Implicit VR LE: the encoding it parses as
    command_field: int | None = field(init=False)
    status: int | None = field(init=False)

    def __post_init__(self) -> None:
        self.command_field = self.us(COMMAND_FIELD)
        self.status = self.us(STATUS)

    def has(self, tag: int) -> bool:
        return tag in self.raw

    def us(self, tag: int) -> int | None:
        """An unsigned short value, or None when absent or not 2 bytes long."""
        value = self.raw.get(tag)
        if value is None or len(value) != 2:
            return None
        return US.unpack(value)[0]

    def ul(self, tag: int) -> int | None:
        value = self.raw.get(tag)
        if value is None or len(value) != 4:
            return None
        return UL.unpack(value)[0]

    def text(self, tag: int) -> str | None:
        """UI / AE / LO values with their padding removed (PS3.5 §6.2)."""
        value = self.raw.get(tag)
        if value is None:
            return None
        return value.decode("latin-1").rstrip("\x00 ").lstrip(" ")

    def tags(self, tag: int) -> list[int] | None:
        """An AT value (VM 1-n) as a list of tags; None when absent."""
        value = self.raw.get(tag)
        if value is None:
            return None
        return [
            (group << 16) | element
            for group, element in struct.iter_unpack("<HH", value[: len(value) // 4 * 4])
        ]

    @property
    def has_data_set(self) -> bool | None:
        """What Command Data Set Type announces (0101H = none); None when absent."""
        value = self.us(COMMAND_DATA_SET_TYPE)
        return None if value is None else value != NO_DATA_SET


SHORT_VRS = frozenset(b"AE AS AT CS DA DS DT FL FD IS LO LT PN SH SL SS ST TM UI UL US".split())
"""VRs with a 2-byte length in an Explicit VR header (PS3.5 §7.1.2, Table 7.1-2)."""
LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
"""VRs with a 2-byte reserved field and a 4-byte length in Explicit VR (PS3.5 Table 7.1-1)."""


def _parses_as(data: bytes, *, explicit: bool, little: bool) -> bool:
    """True when ``data`` is a clean run of group-0000 elements in that encoding."""
    order = "<" if little else ">"
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 8:
            return False
        group, element = struct.unpack_from(order + "HH", data, pos)
        if group != 0:
            return False
        if explicit:
            vr = data[pos + 4 : pos + 6]
            if vr in SHORT_VRS:
                (length,) = struct.unpack_from(order + "H", data, pos + 6)
                pos += 8
            elif vr in LONG_VRS and end - pos >= 12:
                (length,) = struct.unpack_from(order + "I", data, pos + 8)
                pos += 12
            else:
                return False
        else:
            (length,) = struct.unpack_from(order + "I", data, pos + 4)
            pos += 8
        if pos + length > end:
            return False
        pos += length
    return end > 0


def misencoding(data: bytes) -> str | None:
    """The encoding a command set that is not Implicit VR Little Endian was written in.

    PS3.7 §6.3.1: command sets are always Implicit VR Little Endian.  Peers
    that encode them in the negotiated transfer syntax instead produce bytes
    that parse cleanly as Explicit VR (either byte order) or Implicit VR Big
    Endian; this names which, or returns None.
    """
    for name, explicit, little in (
        ("Explicit VR Little Endian", True, True),
        ("Explicit VR Big Endian", True, False),
        ("Implicit VR Big Endian", False, False),
    ):
        if _parses_as(data, explicit=explicit, little=little):
            return name
    return None


def decode_command_set(data: bytes) -> CommandSet:
    """Decode Implicit VR Little Endian elements, tolerating and recording damage."""
    raw: dict[int, bytes] = {}
    order: list[int] = []
    problems: list[str] = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 8:
            problems.append(f"{end - pos} trailing bytes after the last element")
            break
        group, element, length = ELEMENT_HEADER.unpack_from(data, pos)
        tag = (group << 16) | element
        pos += 8
        if length == 0xFFFF_FFFF or pos + length > end:
            problems.append(f"element {tag_text(tag)} claims {length} bytes, {end - pos} remain")
            break
        order.append(tag)
        raw.setdefault(tag, data[pos : pos + length])
        pos += length
    return CommandSet(raw, order, problems, len(data), misencoding(data) if problems else None)
