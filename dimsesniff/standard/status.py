"""Status codes: classes (PS3.7 Annex C) and meanings per service, kept as table rows.

Rows keep their ranges and their source so that a check can ask "is this
code in Table N.7-49?" and a report can cite where a meaning comes from.
Nothing here is expanded or merged: the general codes of PS3.7 Annex C are
one table, each service's codes another.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dissectors.dimse import (
    COMPLETED,
    ERROR_COMMENT,
    FAILED,
    OFFENDING_ELEMENT,
    REMAINING,
    WARNING,
    Command,
)


class StatusClass(StrEnum):
    SUCCESS = "Success"
    WARNING = "Warning"
    FAILURE = "Failure"
    CANCEL = "Cancel"
    PENDING = "Pending"
    INVALID = "Invalid"


SUBOP_COUNTS = frozenset({REMAINING, COMPLETED, FAILED, WARNING})
NONE: frozenset[int] = frozenset()


def status_class(code: int) -> StatusClass:
    """Class of a status code, PS3.7 Annex C introduction table.

    Success 0000; Warning 0001, Bxxx, 0107, 0116; Failure Axxx, Cxxx, 01xx
    (except 0107, 0116), 02xx; Cancel FE00; Pending FF00, FF01.  Everything
    else "shall not" be used.
    """
    if code == 0x0000:
        return StatusClass.SUCCESS
    if code in (0x0001, 0x0107, 0x0116) or 0xB000 <= code <= 0xBFFF:
        return StatusClass.WARNING
    if 0xA000 <= code <= 0xAFFF or 0xC000 <= code <= 0xCFFF or 0x0100 <= code <= 0x02FF:
        return StatusClass.FAILURE
    if code == 0xFE00:
        return StatusClass.CANCEL
    if code in (0xFF00, 0xFF01):
        return StatusClass.PENDING
    return StatusClass.INVALID


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One row of a status table: codes (a range), meaning, related fields, source."""

    status: StatusClass
    codes: range
    meaning: str
    related: frozenset[int]
    source: str

    def __contains__(self, code: int) -> bool:
        return code in self.codes


def one(code: int) -> range:
    return range(code, code + 1)


# PS3.2 Table N.7-48 (SCU) / N.7-50 (SCP): Query/Retrieve FIND SOP Classes.
# The tables give no related fields for C-FIND; PS3.4 Table C.4-1 does (see rules).
QR_FIND_SEED = (
    StatusRow(
        StatusClass.SUCCESS,
        one(0x0000),
        "Matching is complete - No final identifier is supplied",
        NONE,
        "PS3.2 Table N.7-48",
    ),
    StatusRow(
        StatusClass.FAILURE, one(0xA700), "Refused: Out of Resources", NONE, "PS3.2 Table N.7-48"
    ),
    StatusRow(
        StatusClass.FAILURE,
        one(0xA900),
        "Error: Data Set does not match SOP Class",
        NONE,
        "PS3.2 Table N.7-48",
    ),
    StatusRow(
        StatusClass.FAILURE,
        range(0xC000, 0xD000),
        "Error: Unable to process",
        NONE,
        "PS3.2 Table N.7-48",
    ),
    StatusRow(
        StatusClass.FAILURE, one(0x0122), "SOP Class Not Supported", NONE, "PS3.2 Table N.7-48"
    ),
    StatusRow(
        StatusClass.CANCEL,
        one(0xFE00),
        "Matching terminated due to cancel",
        NONE,
        "PS3.2 Table N.7-48",
    ),
    StatusRow(
        StatusClass.PENDING,
        one(0xFF00),
        "Matches are continuing - Current Match is supplied and any Optional Keys were "
        "supported in the same manner as Required Keys",
        NONE,
        "PS3.2 Table N.7-48",
    ),
    StatusRow(
        StatusClass.PENDING,
        one(0xFF01),
        "Matches are continuing - Warning that one or more Optional Keys were not "
        "supported for existence for this Identifier",
        NONE,
        "PS3.2 Table N.7-48",
    ),
)

# PS3.2 Table N.7-49 (SCU) / N.7-51 (SCP): Query/Retrieve MOVE SOP Classes, with the
# related fields exactly as the seed lists them (see rules.md D1-D3 for where PS3.4 differs).
_MOVE_COUNTS_NO_COMPLETED = frozenset({REMAINING, FAILED, WARNING})
QR_MOVE_SEED = (
    StatusRow(
        StatusClass.SUCCESS,
        one(0x0000),
        "Sub-operations Complete - No Failures",
        SUBOP_COUNTS,
        "PS3.2 Table N.7-49",
    ),
    StatusRow(
        StatusClass.WARNING,
        one(0xB000),
        "Sub-operations Complete - One or more Failures",
        _MOVE_COUNTS_NO_COMPLETED,
        "PS3.2 Table N.7-49",
    ),
    StatusRow(
        StatusClass.FAILURE,
        one(0xA701),
        "Out of Resources - Unable to calculate number of matches",
        frozenset({ERROR_COMMENT}),
        "PS3.2 Table N.7-49",
    ),
    StatusRow(
        StatusClass.FAILURE,
        one(0xA702),
        "Out of Resources - Unable to perform sub-operations",
        SUBOP_COUNTS,
        "PS3.2 Table N.7-49",
    ),
    StatusRow(
        StatusClass.FAILURE,
        one(0xA801),
        "Move Destination unknown",
        frozenset({ERROR_COMMENT}),
        "PS3.2 Table N.7-49",
    ),
    StatusRow(
        StatusClass.FAILURE,
        one(0xA900),
        "Data Set does not match SOP Class",
        frozenset({OFFENDING_ELEMENT, ERROR_COMMENT}),
        "PS3.2 Table N.7-49",
    ),
    StatusRow(
        StatusClass.FAILURE,
        range(0xC000, 0xD000),
        "Unable to process",
        frozenset({OFFENDING_ELEMENT, ERROR_COMMENT}),
        "PS3.2 Table N.7-49",
    ),
    StatusRow(
        StatusClass.CANCEL,
        one(0xFE00),
        "Sub-operations terminated due to Cancel Indication",
        SUBOP_COUNTS,
        "PS3.2 Table N.7-49",
    ),
    StatusRow(
        StatusClass.PENDING,
        one(0xFF00),
        "Sub-operations are continuing",
        SUBOP_COUNTS,
        "PS3.2 Table N.7-49",
    ),
)

# PS3.4 Table C.4-2 / Y.4-1 codes the seed does not list (meanings only).
QR_MOVE_EXTRA = (
    StatusRow(
        StatusClass.FAILURE,
        range(0xAA00, 0xAA05),
        "Frame-level retrieve failure",
        NONE,
        "PS3.4 Table Y.4-1",
    ),
)

# PS3.4 Table B.2-1: Storage Service Class (C-STORE), for the sub-operations of a C-MOVE.
STORAGE = (
    StatusRow(
        StatusClass.FAILURE,
        range(0xA700, 0xA800),
        "Refused: Out of Resources",
        NONE,
        "PS3.4 Table B.2-1",
    ),
    StatusRow(
        StatusClass.FAILURE,
        range(0xA900, 0xAA00),
        "Error: Data Set does not match SOP Class",
        NONE,
        "PS3.4 Table B.2-1",
    ),
    StatusRow(
        StatusClass.FAILURE,
        range(0xC000, 0xD000),
        "Error: Cannot understand",
        NONE,
        "PS3.4 Table B.2-1",
    ),
    StatusRow(
        StatusClass.WARNING, one(0xB000), "Coercion of Data Elements", NONE, "PS3.4 Table B.2-1"
    ),
    StatusRow(
        StatusClass.WARNING,
        one(0xB007),
        "Data Set does not match SOP Class",
        NONE,
        "PS3.4 Table B.2-1",
    ),
    StatusRow(StatusClass.WARNING, one(0xB006), "Elements Discarded", NONE, "PS3.4 Table B.2-1"),
)

# PS3.4 Table C.4-3: C-GET (same codes as C-MOVE except A801 / move destination).
QR_GET_EXTRA = (
    StatusRow(
        StatusClass.PENDING,
        one(0xFF00),
        "Sub-operations are continuing",
        SUBOP_COUNTS,
        "PS3.4 Table C.4-3",
    ),
    StatusRow(
        StatusClass.WARNING,
        one(0xB000),
        "Sub-operations complete - One or more Failures",
        NONE,
        "PS3.4 Table C.4-3",
    ),
)

SERVICE_TABLES: dict[int, tuple[StatusRow, ...]] = {
    Command.C_FIND_RSP: QR_FIND_SEED,
    Command.C_MOVE_RSP: QR_MOVE_SEED + QR_MOVE_EXTRA,
    Command.C_GET_RSP: QR_GET_EXTRA + QR_MOVE_SEED,
    Command.C_STORE_RSP: STORAGE,
}


def find_row(rows: tuple[StatusRow, ...], code: int) -> StatusRow | None:
    """The first row whose range holds ``code``."""
    for row in rows:
        if code in row.codes:
            return row
    return None


def status_meaning(command_field: int | None, code: int | None) -> str:
    """Meaning of a status in the context of its response type, for reports."""
    if code is None:
        return ""
    row = find_row(SERVICE_TABLES.get(command_field or 0, ()), code)
    if row is not None:
        return row.meaning
    from .move_tables import STATUS_TYPES  # PS3.7 Annex C; imported late: it imports us

    for status_type in STATUS_TYPES:
        if status_type.code == code:
            return status_type.name
    klass = status_class(code)
    if klass is StatusClass.INVALID:
        return "Invalid status code (outside every PS3.7 Annex C class)"
    return f"{klass.value} (no meaning defined for this service)"
