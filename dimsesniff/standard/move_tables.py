"""C-MOVE statuses and the fields that go with them, as the normative text tabulates them.

Two sources, kept apart as the standard keeps them:

* PS3.4 Table C.4-2 "C-MOVE Response Status Values": the Query/Retrieve
  specific codes and their "Related Fields" column.  Rows as in the 2020
  text (rules.md §0.1; open item O1 asks for a 2024c re-read).  The seed
  tables PS3.2 N.7-49 / N.7-51 (``status.QR_MOVE_SEED``) differ for 0000,
  B000 and A702 (rules.md D1-D3).
* PS3.7 Annex C "Status Type Encoding": for each status *type* the status
  fields a response of that type may carry besides Status (0000,0900).  Every
  one of them is described as "This optional field".  PS3.4 §C.4.2.1.5 defers
  to PS3.7 for "General status code values and fields related to status code
  values", and PS3.7 §9.1.4.1.7 (a)-(l) names the status types a C-MOVE
  response may have; ``MOVE_STATUS_TYPES`` records that mapping.

Section numbers are those of the 2020 PS3.7 text (C.5.1 "Error: Cannot
understand" ... C.5.25 "Refused: Not authorized").  Data-set-only fields
("Modification List/Attribute List", "Event Information", "Action
Information": no tag) are left out: only command elements are tabulated.
"""

from __future__ import annotations

from dataclasses import dataclass

from dissectors.dimse import (
    ACTION_TYPE_ID,
    AFFECTED_SOP_CLASS_UID,
    AFFECTED_SOP_INSTANCE_UID,
    ATTRIBUTE_IDENTIFIER_LIST,
    ERROR_COMMENT,
    ERROR_ID,
    EVENT_TYPE_ID,
    OFFENDING_ELEMENT,
)

from .qr_tables import QR_MOVE
from .status import NONE, StatusRow, find_row, one

# The status fields proper (PS3.7 Annex C): what a response adds to explain a status.
STATUS_FIELDS = frozenset({OFFENDING_ELEMENT, ERROR_COMMENT, ERROR_ID})

# PS3.4 Table C.4-2 (C-MOVE Response Status Values) lives in qr_tables.QR_MOVE.


@dataclass(frozen=True, slots=True)
class StatusType:
    """One PS3.7 Annex C status type: its section, name and optional status fields.

    ``code`` is the fixed Status value the section prescribes ("shall be set
    to 0122H"), or None where the value "is Service Class specific".
    """

    section: str
    name: str
    fields: frozenset[int]
    code: int | None = None


_PROBLEM = frozenset({OFFENDING_ELEMENT, ERROR_COMMENT})
_COMMENT = frozenset({ERROR_COMMENT})

# PS3.7 Annex C (2020 text), in section order.
STATUS_TYPES = (
    StatusType("PS3.7 C.1.1", "Success", NONE, 0x0000),
    StatusType("PS3.7 C.2.1", "Pending", NONE),
    StatusType("PS3.7 C.3.1", "Cancel", NONE, 0xFE00),
    StatusType("PS3.7 C.4.1", "Warning", _PROBLEM),
    StatusType(
        "PS3.7 C.4.2",
        "Attribute list error",
        frozenset({AFFECTED_SOP_CLASS_UID, AFFECTED_SOP_INSTANCE_UID, ATTRIBUTE_IDENTIFIER_LIST}),
        0x0107,
    ),
    StatusType("PS3.7 C.4.3", "Attribute Value out of range", NONE, 0x0116),
    StatusType("PS3.7 C.5.1", "Error: Cannot understand", _PROBLEM),
    StatusType("PS3.7 C.5.2", "Error: Data Set does not match SOP Class", _PROBLEM),
    StatusType("PS3.7 C.5.3", "Failed", _PROBLEM),
    StatusType("PS3.7 C.5.4", "Refused: Move Destination unknown", _COMMENT),
    StatusType("PS3.7 C.5.5", "Refused: Out of resources", _COMMENT),
    StatusType("PS3.7 C.5.6", "Refused: SOP Class not supported", _COMMENT, 0x0122),
    StatusType(
        "PS3.7 C.5.7",
        "Class-Instance conflict",
        frozenset({AFFECTED_SOP_CLASS_UID, AFFECTED_SOP_INSTANCE_UID}),
        0x0119,
    ),
    StatusType(
        "PS3.7 C.5.8", "Duplicate SOP Instance", frozenset({AFFECTED_SOP_INSTANCE_UID}), 0x0111
    ),
    StatusType("PS3.7 C.5.9", "Duplicate invocation", NONE, 0x0210),
    StatusType(
        "PS3.7 C.5.10",
        "Invalid argument value",
        frozenset(
            {AFFECTED_SOP_CLASS_UID, AFFECTED_SOP_INSTANCE_UID, EVENT_TYPE_ID, ACTION_TYPE_ID}
        ),
        0x0115,
    ),
    StatusType("PS3.7 C.5.11", "Invalid Attribute Value", NONE, 0x0106),
    StatusType(
        "PS3.7 C.5.12", "Invalid SOP Instance", frozenset({AFFECTED_SOP_INSTANCE_UID}), 0x0117
    ),
    StatusType("PS3.7 C.5.13", "Missing Attribute", frozenset({ATTRIBUTE_IDENTIFIER_LIST}), 0x0120),
    StatusType("PS3.7 C.5.14", "Missing Attribute Value", NONE, 0x0121),
    StatusType("PS3.7 C.5.15", "Mistyped argument", NONE, 0x0212),
    StatusType(
        "PS3.7 C.5.16",
        "No such argument",
        frozenset({AFFECTED_SOP_CLASS_UID, EVENT_TYPE_ID, ACTION_TYPE_ID}),
        0x0114,
    ),
    StatusType("PS3.7 C.5.17", "No such Attribute", frozenset({ATTRIBUTE_IDENTIFIER_LIST}), 0x0105),
    StatusType(
        "PS3.7 C.5.18",
        "No such Event Type",
        frozenset({AFFECTED_SOP_CLASS_UID, EVENT_TYPE_ID}),
        0x0113,
    ),
    StatusType(
        "PS3.7 C.5.19", "No such SOP Instance", frozenset({AFFECTED_SOP_INSTANCE_UID}), 0x0112
    ),
    StatusType("PS3.7 C.5.20", "No such SOP Class", frozenset({AFFECTED_SOP_CLASS_UID}), 0x0118),
    StatusType(
        "PS3.7 C.5.21",
        "Processing Failure",
        frozenset({AFFECTED_SOP_CLASS_UID, ERROR_COMMENT, ERROR_ID, AFFECTED_SOP_INSTANCE_UID}),
        0x0110,
    ),
    StatusType("PS3.7 C.5.22", "Resource Limitation", NONE, 0x0213),
    StatusType("PS3.7 C.5.23", "Unrecognized operation", NONE, 0x0211),
    StatusType(
        "PS3.7 C.5.24",
        "No such Action Type",
        frozenset({AFFECTED_SOP_CLASS_UID, ACTION_TYPE_ID}),
        0x0123,
    ),
    StatusType("PS3.7 C.5.25", "Refused: Not authorized", _COMMENT, 0x0124),
)

_BY_SECTION = {t.section: t for t in STATUS_TYPES}


@dataclass(frozen=True, slots=True)
class MoveStatusType:
    """One item of PS3.7 §9.1.4.1.7: C-MOVE status codes and the Annex C type they are."""

    item: str  # the list letter, "a" ... "l"
    codes: tuple[range, ...]  # for service-specific types, the codes Table C.4-2 assigns
    status_type: StatusType


def _move(item: str, section: str, *codes: range) -> MoveStatusType:
    return MoveStatusType(item, codes, _BY_SECTION[section])


# PS3.7 §9.1.4.1.7 (a)-(l).  Service-class-specific types get their codes from
# PS3.4 Table C.4-2 (A701/A702 out of resources, A801, A900 and Cxxx "Failed", B000).
MOVE_STATUS_TYPES = (
    _move("a", "PS3.7 C.1.1", one(0x0000)),
    _move("b", "PS3.7 C.2.1", one(0xFF00)),
    _move("c", "PS3.7 C.5.5", one(0xA701), one(0xA702)),
    _move("d", "PS3.7 C.5.6", one(0x0122)),
    _move("e", "PS3.7 C.5.4", one(0xA801)),
    _move("f", "PS3.7 C.3.1", one(0xFE00)),
    _move("g", "PS3.7 C.5.3", one(0xA900), range(0xC000, 0xD000)),
    _move("h", "PS3.7 C.5.9", one(0x0210)),
    _move("i", "PS3.7 C.5.15", one(0x0212)),
    _move("j", "PS3.7 C.5.23", one(0x0211)),
    _move("k", "PS3.7 C.5.25", one(0x0124)),
    _move("l", "PS3.7 C.4.1", one(0xB000)),
)


def move_row(code: int) -> StatusRow | None:
    """The PS3.4 Table C.4-2 row of a C-MOVE status code, if the table has one."""
    return find_row(QR_MOVE, code)


def move_status_type(code: int) -> MoveStatusType | None:
    """The PS3.7 §9.1.4.1.7 item (and so the Annex C type) of a C-MOVE status code."""
    for entry in MOVE_STATUS_TYPES:
        if any(code in r for r in entry.codes):
            return entry
    return None


__all__ = [
    "MOVE_STATUS_TYPES",
    "STATUS_FIELDS",
    "STATUS_TYPES",
    "MoveStatusType",
    "StatusType",
    "move_row",
    "move_status_type",
]
