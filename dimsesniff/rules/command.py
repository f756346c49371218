"""Command-set encoding and message structure rules (rules.md §6), PS3.7 §6.3.1, §9.3, Annex E.

Structural rules (element order, duplicates, groups, group length, value
lengths, Command Data Set Type) run on every DIMSE message with a defined
Command Field, and on command sets without a readable one; service rules on
the C-FIND / C-MOVE messages and C-CANCEL-RQ of the Query/Retrieve services.
They read the command set as the dissector kept it: ``CommandSet.raw`` holds
each value exactly as sent, ``CommandSet.order`` the tags in wire order with
duplicates.

Reported elsewhere: a command set that does not decode at all
(DIMSE-CMD-DECODE) and an identifier that does not parse in its transfer
syntax (DIMSE-DS-DECODE) are decode rules in ``decode.py``, raised by the
analysis; a Command Data Set Type of 0101H followed by data PDVs is seen by
the DIMSE assembler only (DIMSE-DATA-WITHOUT-COMMAND), since the message is
complete without them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from dissectors.dimse import (
    AFFECTED_SOP_CLASS_UID,
    COMMAND_DATA_SET_TYPE,
    COMMAND_DICTIONARY,
    COMMAND_FIELD,
    COMPLETED,
    ERROR_COMMENT,
    ERROR_ID,
    FAILED,
    GROUP_LENGTH,
    LONG_VRS,
    MESSAGE_ID,
    MESSAGE_ID_BEING_RESPONDED_TO,
    MOVE_DESTINATION,
    NO_DATA_SET,
    OFFENDING_ELEMENT,
    PRIORITY,
    REMAINING,
    SHORT_VRS,
    STATUS,
    WARNING,
    Command,
    CommandSet,
    command_name,
    is_response,
    tag_text,
)

from ..identifiers import DEFLATED, EXPLICIT_BIG_ENDIAN, IMPLICIT_LITTLE_ENDIAN
from ..standard.status import StatusClass, status_class
from .base import Problem, Severity, message_rule

if TYPE_CHECKING:
    from ..checks import MessageContext

# -- which messages -----------------------------------------------------------------------------

# The checker files a message under its Command Field, or 0 when it has none (or not 2 bytes).
NO_COMMAND_FIELD = 0
STRUCTURAL = frozenset(Command) | {NO_COMMAND_FIELD}
# The checker files rules under each Command Field value they apply to, so "every
# undefined value" would be 65,000 entries per checker.  Checked instead: the blocks
# Annex E numbers commands in (requests 0000H-0FFFH, responses with bit 15 set) and the
# byte-swapped defined values (a big-endian encoder).
UNDEFINED_COMMAND_FIELDS = (
    frozenset(range(0x1000))
    | frozenset(range(0x8000, 0x9000))
    | frozenset(int.from_bytes(int(c).to_bytes(2, "little"), "big") for c in Command)
) - frozenset(Command)
RESPONSES = frozenset(c for c in Command if is_response(c))
QR_RQ = (Command.C_FIND_RQ, Command.C_MOVE_RQ)
QR_RSP = (Command.C_FIND_RSP, Command.C_MOVE_RSP)
CANCEL_RQ = (Command.C_CANCEL_RQ,)

# -- data from the standard ---------------------------------------------------------------------

# PS3.7 Annex E.2, Table E.2-1 (Retired Command Fields).
RETIRED_COMMAND_ELEMENTS = frozenset(
    {
        0x0000_0001,  # Command Length to End
        0x0000_0010,  # Command Recognition Code
        0x0000_0200,  # Initiator
        0x0000_0300,  # Receiver
        0x0000_0400,  # Find Location
        0x0000_0850,  # Number of Matches
        0x0000_0860,  # Response Sequence Number
        0x0000_4000,  # Dialog Receiver
        0x0000_4010,  # Terminal Type
        0x0000_5010,  # Message Set ID
        0x0000_5020,  # End Message ID
        0x0000_5110,  # Display Format
        0x0000_5120,  # Page Position ID
        0x0000_5130,  # Text Format ID
        0x0000_5140,  # Normal/Reverse
        0x0000_5150,  # Add Gray Scale
        0x0000_5160,  # Borders
        0x0000_5170,  # Copies
        0x0000_5180,  # Command Magnification Type
        0x0000_5190,  # Erase
        0x0000_51A0,  # Print
        0x0000_51B0,  # Overlays
    }
)

# Mandatory command elements, PS3.7 Tables 9.3-3 / 9.3-9 (C-FIND-RQ / C-MOVE-RQ) and
# 9.3-4 / 9.3-10 (C-FIND-RSP / C-MOVE-RSP).  Command Field is the key the message is
# filed under, so always there; Status is ST-STATUS-MISSING's (all responses).
REQUIRED_FIELDS: dict[int, tuple[int, ...]] = {
    Command.C_FIND_RQ: (AFFECTED_SOP_CLASS_UID, MESSAGE_ID, PRIORITY, COMMAND_DATA_SET_TYPE),
    Command.C_MOVE_RQ: (
        AFFECTED_SOP_CLASS_UID,
        MESSAGE_ID,
        MOVE_DESTINATION,
        PRIORITY,
        COMMAND_DATA_SET_TYPE,
    ),
    Command.C_FIND_RSP: (MESSAGE_ID_BEING_RESPONDED_TO, COMMAND_DATA_SET_TYPE),
    Command.C_MOVE_RSP: (MESSAGE_ID_BEING_RESPONDED_TO, COMMAND_DATA_SET_TYPE),
}

# PS3.7 Tables 9.3-5 / 9.3-11: the whole C-CANCEL-FIND-RQ / C-CANCEL-MOVE-RQ command set.
CANCEL_FIELDS = frozenset(
    {GROUP_LENGTH, COMMAND_FIELD, MESSAGE_ID_BEING_RESPONDED_TO, COMMAND_DATA_SET_TYPE}
)

# PS3.7 Tables 9.3-3 / 9.3-9: LOW = 0002H, MEDIUM = 0000H, HIGH = 0001H.
PRIORITIES = {0x0000: "MEDIUM", 0x0001: "HIGH", 0x0002: "LOW"}
LEGACY_IDENTIFIER = 0x0102  # Table 9.3-3 note: "Identifier" in older editions

# PS3.5 Table 6.2-1 limits of the VRs the Command Dictionary uses (PS3.7 Annex E).
US_LENGTH, UL_LENGTH, AT_LENGTH = 2, 4, 4
UI_MAX, AE_MAX, LO_MAX = 64, 16, 64

# Elements whose encoding a more specific rule reports for the commands it covers: one
# defect, one finding.  DIMSE-VR-LEN leaves these alone there.
OWNED_ELEMENTS: dict[int, tuple[str, frozenset[int]]] = {
    STATUS: ("ST-STATUS-MISSING", RESPONSES),
    OFFENDING_ELEMENT: ("RF-OFFELEM-ENC", frozenset(QR_RSP)),
    ERROR_COMMENT: ("RF-ERRCOMMENT-LEN", frozenset(QR_RSP)),
    ERROR_ID: ("RF-ERRID-ENC", frozenset(QR_RSP)),
    REMAINING: ("MOVE-COUNT-RANGE", frozenset({Command.C_MOVE_RSP})),
    COMPLETED: ("MOVE-COUNT-RANGE", frozenset({Command.C_MOVE_RSP})),
    FAILED: ("MOVE-COUNT-RANGE", frozenset({Command.C_MOVE_RSP})),
    WARNING: ("MOVE-COUNT-RANGE", frozenset({Command.C_MOVE_RSP})),
    MOVE_DESTINATION: ("DIMSE-MOVEDEST", frozenset({Command.C_MOVE_RQ})),
}

ELEMENT_HEADER_LENGTH = 8  # Implicit VR Little Endian: tag (4) + value length (4)


def group(tag: int) -> int:
    return tag >> 16


def all_annex_e(cmd: CommandSet) -> bool:
    """Every tag of the command set is a group 0000 element of Annex E (the usual case).

    One C-level subset test that lets the per-tag rules (CMD-GROUP, CMD-PRIVATE,
    GL-MISMATCH) skip their loops: they run on every DIMSE message.
    """
    return cmd.raw.keys() <= COMMAND_DICTIONARY.keys()


def element_name(tag: int) -> str:
    entry = COMMAND_DICTIONARY.get(tag)
    return f"{tag_text(tag)} {entry[1]}" if entry else tag_text(tag)


# -- structure --------------------------------------------------------------------------------


@message_rule(
    "DIMSE-CMD-ORDER",
    Severity.ERROR,
    "PS3.7 §6.3.1",
    applies_to=STRUCTURAL,
    origin="[P7]",
)
def command_order(ctx: MessageContext) -> tuple[Problem, ...]:
    """Command elements not in ascending tag order

    PS3.7 §6.3.1: the elements of a command set "shall be ordered by
    increasing Data Element Tag Number".  Receivers that read by position or
    stop at the first unexpected tag (or decode the set as a data set with a
    streaming parser) misread the rest.  A tag repeated in place is reported
    by DIMSE-CMD-DUP instead.
    """
    order = ctx.cmd.order
    if sorted(order) == order:
        return ()
    return tuple(
        Problem(
            f"{tag_text(after)} follows {tag_text(before)} in the command set",
            observed=" ".join(tag_text(t) for t in order),
            expected="ascending tags",
        )
        for before, after in zip(order, order[1:], strict=False)
        if after < before
    )


@message_rule(
    "DIMSE-CMD-DUP",
    Severity.ERROR,
    "PS3.7 §6.3.1",
    applies_to=STRUCTURAL,
    origin="[P7]",
)
def command_duplicate(ctx: MessageContext) -> Iterable[Problem]:
    """A command element appears more than once

    PS3.7 §6.3.1 defines a command set as elements each with its own tag, in
    ascending order, so no tag can occur twice.  Receivers keep either the
    first or the last copy; dimsesniff keeps the first, so the checks on
    this message may judge a value the receiver never used.
    """
    if len(set(ctx.cmd.order)) == len(ctx.cmd.order):
        return ()
    return _duplicates(ctx.cmd.order)


def _duplicates(order: list[int]) -> Iterator[Problem]:
    seen: set[int] = set()
    reported: set[int] = set()
    for tag in order:
        if tag in seen and tag not in reported:
            reported.add(tag)
            count = order.count(tag)
            yield Problem(
                f"{element_name(tag)} appears {count} times in the command set",
                observed=f"{count} copies",
                expected="at most one",
            )
        seen.add(tag)


@message_rule(
    "DIMSE-CMD-GROUP",
    Severity.ERROR,
    "PS3.7 §6.3, Annex E",
    applies_to=STRUCTURAL,
    origin="[P7]",
)
def command_group(ctx: MessageContext) -> tuple[Problem, ...]:
    """Element of a group other than 0000 inside the command set

    PS3.7 §6.3 and the Command Dictionary (Annex E) define command elements
    in group 0000 only; Data Set attributes (group 0008 and above) belong in
    the data set, which follows in its own PDVs.  Odd (private) groups are
    reported by DIMSE-CMD-PRIVATE instead.
    """
    if all_annex_e(ctx.cmd):
        return ()
    return tuple(
        Problem(
            f"{tag_text(tag)} (group {group(tag):04X}) inside the command set",
            observed=tag_text(tag),
            expected="group 0000 only",
        )
        for tag in dict.fromkeys(ctx.cmd.order)
        if group(tag) != 0 and group(tag) % 2 == 0
    )


@message_rule(
    "DIMSE-CMD-PRIVATE",
    Severity.WARNING,
    "PS3.7 §6.3.1 note 1, Annex E",
    applies_to=STRUCTURAL,
    origin="[P7]",
)
def command_private(ctx: MessageContext) -> Iterable[Problem]:
    """Private or unregistered command element

    PS3.7 §6.3.1 (note 1) records that private command elements, allowed by
    earlier editions, are retired; the Command Dictionary (Annex E) is the
    complete list of group 0000 elements.  An odd-group element or a
    (0000,xxxx) tag outside Annex E is meaningful only to its sender.
    """
    if all_annex_e(ctx.cmd):
        return ()
    return _private(ctx.cmd.order)


def _private(order: list[int]) -> Iterator[Problem]:
    for tag in dict.fromkeys(order):
        if group(tag) % 2 == 1:
            yield Problem(
                f"private element {tag_text(tag)} in the command set",
                observed=tag_text(tag),
                expected="elements of PS3.7 Annex E",
            )
        elif group(tag) == 0 and tag not in COMMAND_DICTIONARY:
            yield Problem(
                f"{tag_text(tag)} is not a command element of PS3.7 Annex E",
                observed=tag_text(tag),
                expected="elements of PS3.7 Annex E",
            )


@message_rule(
    "DIMSE-CMD-RETIRED",
    Severity.INFO,
    "PS3.7 §6.3.1 note 1, Annex E.2 (Table E.2-1)",
    applies_to=STRUCTURAL,
    origin="[P7]",
)
def command_retired(ctx: MessageContext) -> tuple[Problem, ...]:
    """Retired command element

    PS3.7 Annex E.2 lists command elements kept only for compatibility with
    earlier editions, among them (0000,0001) Command Length to End (§6.3.1
    note 1).  Current receivers ignore them; their presence points at an old
    or ACR-NEMA era implementation.
    """
    if RETIRED_COMMAND_ELEMENTS.isdisjoint(ctx.cmd.raw):
        return ()
    return tuple(
        Problem(
            f"retired command element {element_name(tag)}",
            observed=tag_text(tag),
            expected="no retired elements",
        )
        for tag in dict.fromkeys(ctx.cmd.order)
        if tag in RETIRED_COMMAND_ELEMENTS
    )


@message_rule(
    "DIMSE-GL-MISSING",
    Severity.ERROR,
    "PS3.7 Tables 9.3-3, 9.3-4, 9.3-5, 9.3-9, 9.3-10, 9.3-11; §6.3.1",
    applies_to=STRUCTURAL,
    origin="[P7]",
)
def group_length_missing(ctx: MessageContext) -> Iterator[Problem]:
    """Command Group Length (0000,0000) missing or not the first element

    Every command table of PS3.7 §9.3 starts with Command Group Length and
    states that the fields it lists "are required by the DIMSE-C protocol";
    with ascending order (§6.3.1) it is necessarily the first element.
    Receivers use it to know where the command set ends.
    """
    order = ctx.cmd.order
    if not order:
        return
    if GROUP_LENGTH not in ctx.cmd.raw:
        yield Problem(
            f"{command_name(ctx.command_field)} without Command Group Length (0000,0000)",
            observed="absent",
            expected="(0000,0000) UL, first",
        )
    elif order[0] != GROUP_LENGTH:
        yield Problem(
            f"Command Group Length is element {order.index(GROUP_LENGTH) + 1}, not the first",
            observed=f"first element {tag_text(order[0])}",
            expected="(0000,0000) first",
        )


def group_zero_length(cmd: CommandSet) -> int:
    """Encoded bytes of the group 0000 elements after (0000,0000), as on the wire."""
    others = (
        0
        if all_annex_e(cmd)
        else sum(ELEMENT_HEADER_LENGTH + len(cmd.raw[t]) for t in cmd.order if group(t) != 0)
    )
    return cmd.length - ELEMENT_HEADER_LENGTH - UL_LENGTH - others


@message_rule(
    "DIMSE-GL-MISMATCH",
    Severity.ERROR,
    "PS3.7 Tables 9.3-3, 9.3-4, 9.3-5, 9.3-9, 9.3-10, 9.3-11 (Command Group Length)",
    applies_to=STRUCTURAL,
    origin="[P7]",
)
def group_length_mismatch(ctx: MessageContext) -> Iterator[Problem]:
    """Command Group Length differs from the bytes of the command elements that follow

    PS3.7 defines Command Group Length as "the even number of bytes from the
    end of the value field to the beginning of the next group".  A receiver
    that trusts it cuts the command set short or reads past it.  Checked only
    when the set decoded completely and (0000,0000) is first and 4 bytes long
    (otherwise DIMSE-CMD-DECODE, DIMSE-GL-MISSING or DIMSE-VR-LEN report it).
    """
    cmd = ctx.cmd
    value = cmd.ul(GROUP_LENGTH)
    if value is None or cmd.problems or cmd.order[0] != GROUP_LENGTH:
        return
    actual = group_zero_length(cmd)
    if value != actual:
        yield Problem(
            f"Command Group Length says {value} bytes, the group 0000 elements after it "
            f"take {actual}",
            observed=str(value),
            expected=str(actual),
        )
    elif value % 2:
        yield Problem(f"Command Group Length {value} is odd", observed=str(value), expected="even")


@message_rule(
    "DIMSE-VL-ODD",
    Severity.ERROR,
    "PS3.7 §6.3.1",
    applies_to=STRUCTURAL,
    origin="[P7]",
)
def value_length_odd(ctx: MessageContext) -> tuple[Problem, ...]:
    """Command element with an odd value length

    PS3.7 §6.3.1: the Value Field of a command element holds "an even number
    of bytes"; text and UID values are padded (space, or 00H for UI) to
    reach it.  An odd length shifts every later element for a receiver that
    assumes alignment.
    """
    return tuple(
        Problem(
            f"{element_name(tag)} has odd value length {len(value)}",
            observed=f"VL {len(value)}",
            expected="even VL",
        )
        for tag, value in ctx.cmd.raw.items()
        if len(value) % 2
    )


def owned_elsewhere(tag: int, command_field: int | None) -> bool:
    owner = OWNED_ELEMENTS.get(tag)
    return owner is not None and command_field in owner[1]


FIXED_LENGTH = {"US": US_LENGTH, "UL": UL_LENGTH}


def vr_length_problem(vr: str, value: bytes) -> str | None:
    """Why ``value`` does not fit ``vr`` (PS3.5 Table 6.2-1), or None."""
    fixed = FIXED_LENGTH.get(vr)
    if fixed is not None:
        return None if len(value) == fixed else f"{vr} value of {len(value)} bytes, not {fixed}"
    if vr == "AT" and len(value) % AT_LENGTH:
        return f"AT value of {len(value)} bytes, not a multiple of 4"
    if vr == "UI":
        if len(value) > UI_MAX:
            return f"UI value of {len(value)} bytes, more than 64"
        if value.rstrip(b"\x00") != value.rstrip(b"\x00 "):
            return "UI value padded with spaces, not 00H"
    if vr == "AE":
        if len(value) > AE_MAX:
            return f"AE value of {len(value)} bytes, more than 16"
        if value and not value.strip(b" "):
            return "AE value of spaces only"
    if vr == "LO" and len(value.rstrip(b" ")) > LO_MAX:
        return f"LO value of {len(value.rstrip(b' '))} characters, more than 64"
    return None


@message_rule(
    "DIMSE-VR-LEN",
    Severity.ERROR,
    "PS3.7 §6.3.1, Annex E; PS3.5 Table 6.2-1",
    applies_to=STRUCTURAL,
    origin="[P5][P7]",
)
def vr_length(ctx: MessageContext) -> tuple[Problem, ...]:
    """Command element value does not fit its VR

    PS3.7 §6.3.1 requires the VR of each command element to agree with the
    Command Dictionary (Annex E), and PS3.5 Table 6.2-1 fixes their sizes: US
    is 2 bytes, UL 4, AT a multiple of 4; UI at most 64 bytes padded with
    00H; AE at most 16 bytes and not all spaces; LO at most 64 characters.
    A US read from 4 bytes is a different number.  Elements that a more
    specific rule checks (Status, the sub-operation counts of a C-MOVE-RSP,
    the status-related fields of a Q/R response, Move Destination) are left
    to it.
    """
    command_field = ctx.command_field
    problems: list[Problem] = []
    for tag, value in ctx.cmd.raw.items():
        entry = COMMAND_DICTIONARY.get(tag)
        # ``in`` first: nine owned elements, and this runs on every element of every message.
        if entry is None or (tag in OWNED_ELEMENTS and owned_elsewhere(tag, command_field)):
            continue
        problem = vr_length_problem(entry[0], value)
        if problem:
            problems.append(
                Problem(
                    f"{element_name(tag)}: {problem}",
                    observed=f"VL {len(value)}",
                    expected=entry[0],
                )
            )
    return tuple(problems)


@message_rule(
    "DIMSE-CMDFIELD",
    Severity.ERROR,
    "PS3.7 Annex E (0000,0100); Tables 9.3-3, 9.3-4, 9.3-5, 9.3-9, 9.3-10, 9.3-11",
    applies_to=UNDEFINED_COMMAND_FIELDS,
    origin="[P7]",
)
def command_field_defined(ctx: MessageContext) -> Iterator[Problem]:
    """Command Field missing or not a value PS3.7 Annex E defines

    Command Field (0000,0100) "shall be set to one of" the values of Annex E
    (for Query/Retrieve: C-FIND-RQ 0020H, C-FIND-RSP 8020H, C-MOVE-RQ 0021H,
    C-MOVE-RSP 8021H, C-CANCEL-RQ 0FFFH).  Without a known value the
    receiver cannot tell what the message is, nor whether it answers a
    request.  Checked for values 0000H-0FFFH and 8000H-8FFFH and byte-swapped
    defined values; a Command Field that is not 2 bytes long is DIMSE-VR-LEN's.
    """
    raw = ctx.cmd.raw.get(COMMAND_FIELD)
    if raw is None:
        yield Problem(
            "command set without Command Field (0000,0100)",
            observed="absent",
            expected="a value of PS3.7 Annex E",
        )
    elif len(raw) == US_LENGTH:
        yield Problem(
            f"Command Field {ctx.command_field:04X}H is not defined by PS3.7 Annex E",
            observed=f"{ctx.command_field:04X}H",
            expected="a value of PS3.7 Annex E",
        )


@message_rule(
    "DIMSE-DST-MISMATCH",
    Severity.ERROR,
    "PS3.7 Tables 9.3-3, 9.3-4, 9.3-9, 9.3-10 (Command Data Set Type)",
    applies_to=STRUCTURAL,
    origin="[P7]",
)
def data_set_type_mismatch(ctx: MessageContext) -> Iterator[Problem]:
    """Command Data Set Type announced a data set that never came

    Command Data Set Type "shall be set to the value of 0101H (Null) if no
    Data Set is present; any other value indicates a Data Set is included".
    Seen when the sender's next command set starts with no data PDV in between
    (reported on that next message, naming the frame of the faulty one).  A
    receiver that trusts the field waits for data, or takes the next command
    for the data set.  (The reverse case, 0101H followed by data PDVs, is
    reported by the assembler as DIMSE-DATA-WITHOUT-COMMAND; a C-CANCEL-RQ's
    Data Set Type is DIMSE-CANCEL-FIELDS'.)
    """
    previous = ctx.lookup.previous
    if previous is None:
        return
    before = previous.message
    announced = before.command.us(COMMAND_DATA_SET_TYPE)
    if (
        announced is None
        or announced == NO_DATA_SET
        or before.has_data_set
        or before.lost_bytes
        or before.command_field == Command.C_CANCEL_RQ
    ):
        return
    yield Problem(
        f"{command_name(before.command_field)} (frame {before.first_frame}) announced a data "
        f"set (Command Data Set Type {announced:04X}H), but this command set followed it "
        "without one",
        observed="no data PDV",
        expected="a data set, or Command Data Set Type 0101H",
    )


@message_rule(
    "DIMSE-DST-LEGACY",
    Severity.INFO,
    "PS3.7 Table 9.3-3 note",
    applies_to=STRUCTURAL,
    origin="[P7]",
)
def data_set_type_legacy(ctx: MessageContext) -> Iterator[Problem]:
    """Command Data Set Type 0102H, the "Identifier" value of older editions

    Any value other than 0101H announces a data set, so 0102H is valid; the
    note to PS3.7 Table 9.3-3 records it as what earlier editions called the
    Identifier.  It dates the implementation.
    """
    if ctx.cmd.us(COMMAND_DATA_SET_TYPE) == LEGACY_IDENTIFIER:
        yield Problem(
            "Command Data Set Type 0102H (legacy Identifier value)",
            observed="0102H",
            expected="any value but 0101H (commonly 0000H or 0001H)",
        )


# -- service fields ---------------------------------------------------------------------------


def missing_fields(ctx: MessageContext) -> Iterator[Problem]:
    """One problem per mandatory command element of this Command Field that is absent.

    The requests' and the responses' rules differ only in their tables
    (``REQUIRED_FIELDS``), citations and severity, so they share this body.
    """
    for tag in REQUIRED_FIELDS.get(ctx.command_field or 0, ()):
        if tag not in ctx.cmd.raw:
            yield Problem(
                f"{command_name(ctx.command_field)} without {element_name(tag)}",
                observed="absent",
                expected=tag_text(tag),
            )


@message_rule(
    "DIMSE-RSP-FIELDS",
    Severity.ERROR,
    "PS3.7 Tables 9.3-4, 9.3-10; Tables 9.1-2, 9.1-4",
    applies_to=QR_RSP,
    origin="[P7]",
)
def response_fields(ctx: MessageContext) -> Iterator[Problem]:
    """C-FIND-RSP / C-MOVE-RSP lacks a mandatory command element

    PS3.7 Tables 9.3-4 and 9.3-10 list Command Field, Message ID Being
    Responded To, Command Data Set Type and Status as the fields the
    protocol requires (Message ID Being Responded To and Status are "M" in
    Tables 9.1-2 / 9.1-4).  Without Message ID Being Responded To the SCU
    cannot tell which request is answered; without Command Data Set Type,
    whether an identifier follows.  A missing Status is ST-STATUS-MISSING's.
    """
    return missing_fields(ctx)


@message_rule(
    "DIMSE-RSP-SOPCLASS-ABSENT",
    Severity.INFO,
    "PS3.7 Tables 9.1-2, 9.1-4 (U(=)), Tables 9.3-4, 9.3-10",
    applies_to=QR_RSP,
    origin="[P7]",
)
def response_sop_class_absent(ctx: MessageContext) -> Iterator[Problem]:
    """Response without Affected SOP Class UID (allowed)

    Tables 9.3-4 / 9.3-10 list Affected SOP Class UID in the response, but
    the service tables 9.1-2 / 9.1-4 make it user optional, "U(=)": absent is
    legal (rules.md D15).  Reported because some receivers (DVTk's
    definitions, for instance) treat it as required.
    """
    if AFFECTED_SOP_CLASS_UID not in ctx.cmd.raw:
        yield Problem(
            f"{command_name(ctx.command_field)} without Affected SOP Class UID (0000,0002)",
            observed="absent",
            expected="optional (U(=))",
        )


@message_rule(
    "DIMSE-RSP-MSGID",
    Severity.INFO,
    "PS3.7 §9.1.2.1.1 / §9.1.4.1.1 note 1",
    applies_to=QR_RSP,
    origin="[P7]",
)
def response_message_id(ctx: MessageContext) -> Iterator[Problem]:
    """Response carries a Message ID (0000,0110), a retired usage

    PS3.7 §9.1.2.1.1 / §9.1.4.1.1 (note 1): a Message ID in a response is a
    retired usage; the response is identified by Message ID Being Responded
    To alone.  Harmless, but it dates the implementation.
    """
    if MESSAGE_ID in ctx.cmd.raw:
        yield Problem(
            f"{command_name(ctx.command_field)} carries Message ID (0000,0110)",
            observed=str(ctx.cmd.us(MESSAGE_ID)),
            expected="absent in responses",
        )


@message_rule(
    "DIMSE-RQ-FIELDS",
    Severity.ERROR,
    "PS3.7 Tables 9.1-2, 9.1-4 (M); Tables 9.3-3, 9.3-9",
    applies_to=QR_RQ,
    origin="[P7]",
)
def request_fields(ctx: MessageContext) -> Iterator[Problem]:
    """C-FIND-RQ / C-MOVE-RQ lacks a mandatory command element

    Affected SOP Class UID, Message ID, Priority and Command Data Set Type
    are mandatory in both requests, Move Destination in a C-MOVE-RQ (PS3.7
    Tables 9.1-2 / 9.1-4, "M"; Tables 9.3-3 / 9.3-9).  The performer cannot
    answer a request without a Message ID, nor know where to send the
    C-STORE sub-operations without a Move Destination.
    """
    return missing_fields(ctx)


@message_rule(
    "DIMSE-RQ-DST",
    Severity.ERROR,
    "PS3.7 Tables 9.3-3, 9.3-9; Tables 9.1-2, 9.1-4 (Identifier M); PS3.4 §C.4.2.1.4",
    applies_to=QR_RQ,
    origin="[P7]",
)
def request_data_set_type(ctx: MessageContext) -> Iterator[Problem]:
    """C-FIND-RQ / C-MOVE-RQ announces no Identifier (Command Data Set Type 0101H)

    The Identifier is mandatory in both requests (Tables 9.1-2 / 9.1-4) and
    Tables 9.3-3 / 9.3-9 say Command Data Set Type "shall be set to any value
    other than 0101H".  A request without one cannot be matched.  (A value
    other than 0101H with no data following is DIMSE-DST-MISMATCH's.)
    """
    if ctx.cmd.us(COMMAND_DATA_SET_TYPE) == NO_DATA_SET:
        yield Problem(
            f"{command_name(ctx.command_field)} with Command Data Set Type 0101H (no Identifier)",
            observed="0101H",
            expected="any value but 0101H, followed by the Identifier",
        )


@message_rule(
    "DIMSE-PRIORITY",
    Severity.ERROR,
    "PS3.7 Tables 9.3-3, 9.3-9 (Priority)",
    applies_to=QR_RQ,
    origin="[P7]",
)
def priority_value(ctx: MessageContext) -> Iterator[Problem]:
    """Priority is not LOW (0002H), MEDIUM (0000H) or HIGH (0001H)

    Tables 9.3-3 / 9.3-9 enumerate the three values; anything else leaves
    the performer to guess how to schedule the request.
    """
    value = ctx.cmd.us(PRIORITY)
    if value is not None and value not in PRIORITIES:
        yield Problem(
            f"Priority {value:04X}H is not LOW, MEDIUM or HIGH",
            observed=f"{value:04X}H",
            expected="0000H, 0001H or 0002H",
        )


def ae_title_problem(value: bytes) -> str | None:
    """Why ``value`` is not a usable AE title (PS3.5 Table 6.2-1, AE), or None."""
    if not value.strip(b" "):
        return "empty" if not value else "spaces only"
    if len(value) > AE_MAX:
        return f"{len(value)} bytes, more than 16"
    if b"\\" in value:
        return 'contains "\\"'
    if any(b < 0x20 or b > 0x7E for b in value):
        return "contains control characters or bytes outside the Default Character Repertoire"
    return None


@message_rule(
    "DIMSE-MOVEDEST",
    Severity.ERROR,
    "PS3.7 Table 9.3-9 (Move Destination); PS3.5 Table 6.2-1 (AE)",
    applies_to=(Command.C_MOVE_RQ,),
    origin="[P7][P5]",
)
def move_destination(ctx: MessageContext) -> Iterator[Problem]:
    """Move Destination is not a valid AE title

    Move Destination (0000,0600) names the AE the C-STORE sub-operations go
    to (Table 9.3-9).  An AE value is at most 16 characters of the Default
    Character Repertoire without "\\" or control characters, and not only
    spaces (PS3.5 Table 6.2-1).  An SCP cannot look such a title up and
    answers A801 (Move Destination unknown) at best.
    """
    value = ctx.cmd.raw.get(MOVE_DESTINATION)
    if value is None:
        return
    problem = ae_title_problem(value)
    if problem:
        yield Problem(
            f"Move Destination {value!r}: {problem}",
            observed=value.decode("latin-1"),
            expected="1-16 characters, no \\ or control characters",
        )


@message_rule(
    "DIMSE-CANCEL-FIELDS",
    Severity.ERROR,
    "PS3.7 Tables 9.3-5, 9.3-11; Tables 9.1-2, 9.1-4 (CnclReq)",
    applies_to=CANCEL_RQ,
    origin="[P7]",
)
def cancel_fields(ctx: MessageContext) -> Iterator[Problem]:
    """C-CANCEL-RQ does not carry exactly the cancel fields

    Tables 9.3-5 / 9.3-11 give the whole C-CANCEL-FIND-RQ / C-CANCEL-MOVE-RQ
    command set: Command Group Length, Command Field, Message ID Being
    Responded To and Command Data Set Type 0101H, with no data set (the
    "CnclReq" column of Tables 9.1-2 / 9.1-4 has only Message ID Being
    Responded To).  Without Message ID Being Responded To the performer
    cannot tell what to cancel (error); other command elements are ignored
    by receivers (warning).
    """
    cmd = ctx.cmd
    if MESSAGE_ID_BEING_RESPONDED_TO not in cmd.raw:
        yield Problem(
            "C-CANCEL-RQ without Message ID Being Responded To (0000,0120)",
            observed="absent",
            expected="(0000,0120)",
        )
    data_set_type = cmd.us(COMMAND_DATA_SET_TYPE)
    if data_set_type != NO_DATA_SET:
        shown = "absent" if data_set_type is None else f"{data_set_type:04X}H"
        yield Problem(
            f"C-CANCEL-RQ with Command Data Set Type {shown}",
            observed=shown,
            expected="0101H",
        )
    if ctx.has_data_set:
        yield Problem("C-CANCEL-RQ followed by a data set", observed="data PDVs", expected="none")
    for tag in dict.fromkeys(cmd.order):
        if group(tag) == 0 and tag in COMMAND_DICTIONARY and tag not in CANCEL_FIELDS:
            yield Problem(
                f"C-CANCEL-RQ carries {element_name(tag)}",
                observed=tag_text(tag),
                expected="only (0000,0000) (0000,0100) (0000,0120) (0000,0800)",
                severity=Severity.WARNING,
            )


# -- a request cut short ----------------------------------------------------------------------

VRS = LONG_VRS | SHORT_VRS  # every VR an Explicit VR header may carry (PS3.5 §7.1.2)
ITEM, ITEM_END, SEQUENCE_END = 0xFFFE_E000, 0xFFFE_E00D, 0xFFFE_E0DD  # PS3.5 §7.5
UNDEFINED_LENGTH = 0xFFFF_FFFF


class EndsInside(Exception):
    """The bytes end inside an element (PS3.7 §9.3.2.4: message not completely transmitted)."""


class NotElements(Exception):
    """The bytes are not data elements of the transfer syntax at hand."""


class DataSetWalker:
    """Steps over data elements (PS3.5 §7.1, §7.5) without decoding values.

    Only asks one question: do the bytes end on an element boundary?
    Anything that cannot be a data element (unknown explicit VR, tags out of
    order, a stray delimiter) stops the walk as ``NotElements``, so garbage
    is never taken for a truncation.
    """

    def __init__(self, data: bytes, implicit: bool, little: bool) -> None:
        self.data = data
        self.pos = 0
        self.implicit = implicit
        self.tag_struct = struct.Struct("<HH" if little else ">HH")
        self.u16 = struct.Struct("<H" if little else ">H")
        self.u32 = struct.Struct("<I" if little else ">I")

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise EndsInside
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def header(self) -> tuple[int, bytes | None, int]:
        """(tag, explicit VR or None, value length) of the next element or delimiter."""
        grp, elem = self.tag_struct.unpack(self.take(4))
        tag = (grp << 16) | elem
        if grp == 0xFFFE or self.implicit:
            return tag, None, self.u32.unpack(self.take(4))[0]
        vr = self.take(2)
        if vr not in VRS:
            raise NotElements
        if vr in LONG_VRS:
            self.take(2)
            return tag, vr, self.u32.unpack(self.take(4))[0]
        return tag, vr, self.u16.unpack(self.take(2))[0]

    def element(self, previous: int) -> int:
        """Step over one element whose tag must follow ``previous``; returns its tag."""
        tag, vr, length = self.header()
        if tag >> 16 == 0xFFFE or tag <= previous:
            raise NotElements
        if length != UNDEFINED_LENGTH:
            self.take(length)
        elif vr in (None, b"SQ", b"UN"):
            self.items()
        else:
            raise NotElements
        return tag

    def items(self) -> None:
        """Step over the items of an undefined-length sequence, up to its delimiter."""
        while True:
            tag, _vr, length = self.header()
            if tag == SEQUENCE_END:
                return
            if tag != ITEM:
                raise NotElements
            if length != UNDEFINED_LENGTH:
                self.take(length)
                continue
            previous = -1
            while True:
                if self.pos + 4 <= len(self.data):
                    grp, elem = self.tag_struct.unpack_from(self.data, self.pos)
                    if (grp << 16) | elem == ITEM_END:
                        self.header()
                        break
                previous = self.element(previous)


def truncation_offset(data: bytes, implicit: bool, little: bool) -> int | None:
    """Offset of the top-level element the data ends inside, or None.

    None also when nothing before the cut parsed as a complete element: a
    data set in another transfer syntax fails on its very first element,
    which must not pass for a truncation.
    """
    walker = DataSetWalker(data, implicit, little)
    previous, complete = -1, 0
    while walker.pos < len(data):
        start = walker.pos
        try:
            previous = walker.element(previous)
        except EndsInside:
            return start if complete else None
        except NotElements:
            return None
        complete += 1
    return None


def walkable_transfer_syntax(ctx: MessageContext) -> tuple[bool, bool] | None:
    """(implicit, little endian) of the message's context, None when unknown or deflated."""
    ts, assumed = ctx.assoc.transfer_syntax(ctx.obs.message.context_id)
    if assumed or ts == DEFLATED:
        return None
    return ts == IMPLICIT_LITTLE_ENDIAN, ts != EXPLICIT_BIG_ENDIAN


@message_rule(
    "DIMSE-REQ-TRUNCATED",
    Severity.ERROR,
    "PS3.7 §9.3.2.4, §9.3.4.4",
    applies_to=QR_RQ,
    origin="[P7]",
)
def request_truncated(ctx: MessageContext) -> Iterator[Problem]:
    """Request Identifier ends inside an element although no Failure came back early

    PS3.7 §9.3.2.4 / §9.3.4.4: "It is a protocol violation for an invoking
    DIMSE Service User to set the Last Fragment bit to 1 before a C-FIND-RQ
    Message has been completely transmitted if it has not received a Failed
    or Refused C-FIND-RSP" (likewise C-MOVE).  Checked on complete messages
    (no capture loss) whose transfer syntax is known and not deflated: the
    last data fragment ends inside an element although earlier elements
    parsed.  A Failure-class response that arrived before the request was
    complete makes the early end legal.
    """
    msg = ctx.obs.message
    if msg.data_set is None or not msg.complete or msg.lost_bytes or msg.data_set_truncated:
        return
    syntax = walkable_transfer_syntax(ctx)
    if syntax is None:
        return
    offset = truncation_offset(msg.data_set, *syntax)
    if offset is None:
        return
    for early in ctx.lookup.early:
        status = early.message.command.status
        if status is not None and status_class(status) is StatusClass.FAILURE:
            return
    yield Problem(
        f"{command_name(ctx.command_field)} Identifier ends inside the element at byte "
        f"{offset} of {len(msg.data_set)}",
        observed=f"{len(msg.data_set)} bytes, last element incomplete",
        expected="a complete Identifier, or an earlier Failed/Refused response",
    )


RULES = (
    command_order,
    command_duplicate,
    command_group,
    command_private,
    command_retired,
    group_length_missing,
    group_length_mismatch,
    value_length_odd,
    vr_length,
    command_field_defined,
    data_set_type_mismatch,
    data_set_type_legacy,
    response_fields,
    response_sop_class_absent,
    response_message_id,
    request_fields,
    request_data_set_type,
    priority_value,
    move_destination,
    cancel_fields,
    request_truncated,
)
