"""Query/Retrieve status tables of the normative text (PS3.4 Annex C, Annex Y, PS3.7 §9.1), as rows.

``status.py`` holds the seed (PS3.2 Tables N.7-48..N.7-51) and the status
classes of PS3.7 Annex C.  This module holds what PS3.4 and PS3.7 say per
Query/Retrieve service, each table kept whole with its source, so that a
rule can ask "does Table C.4-2 define this code?" and say which table
answered:

- PS3.4 Table C.4-1 (C-FIND) and Table C.4-2 (C-MOVE), with their Related
  Fields column as the 2020 text prints it (rules.md §0.1, open item O1);
- the frame-level codes AA00-AA04, which only Table Y.4-1 (Composite
  Instance Root Retrieve) defines;
- the general codes PS3.7 §9.1.2.1.6 (C-FIND) and §9.1.4.1.7 (C-MOVE) admit
  besides the Service Class specific ones;
- the Q/R SOP Class UIDs these tables apply to (PS3.6 Table A-1).
"""

from __future__ import annotations

from dissectors.dimse import COMPLETED, ERROR_COMMENT, FAILED, OFFENDING_ELEMENT, WARNING

from .status import NONE, SUBOP_COUNTS, StatusClass, StatusRow, one

# -- SOP Classes (PS3.6 Table A-1; models in PS3.4 §C.6 and Annex Y) ---------------------------

PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
PATIENT_STUDY_ONLY_FIND = "1.2.840.10008.5.1.4.1.2.3.1"  # retired
PATIENT_STUDY_ONLY_MOVE = "1.2.840.10008.5.1.4.1.2.3.2"  # retired
COMPOSITE_INSTANCE_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.4.2"
# Repository Query (PS3.4 §C.6.4): a C-FIND class with its own statuses (B001, A710)
# that rules.md open item O3 leaves unverified, hence not a "classic" FIND class below.
REPOSITORY_QUERY_FIND = "1.2.840.10008.5.1.4.1.1.201.6"

# The classes Table C.4-1 governs (rules.md §0.4).
QR_FIND_CLASSES = frozenset({PATIENT_ROOT_FIND, STUDY_ROOT_FIND, PATIENT_STUDY_ONLY_FIND})
# The classes Table C.4-2 governs; Composite Instance Root uses Table Y.4-1, a superset.
QR_MOVE_CLASSES = frozenset(
    {PATIENT_ROOT_MOVE, STUDY_ROOT_MOVE, PATIENT_STUDY_ONLY_MOVE, COMPOSITE_INSTANCE_ROOT_MOVE}
)

# -- C-FIND ------------------------------------------------------------------------------------

_OFFENDING_AND_COMMENT = frozenset({OFFENDING_ELEMENT, ERROR_COMMENT})
_COMPLETED_FAILED_WARNING = frozenset({COMPLETED, FAILED, WARNING})

# PS3.4 Table C.4-1, C-FIND Response Status Values.  The Pending rows list "Identifier"
# as their related field: that is the data set, not a command element, so ``related``
# holds none; the FIND-PENDING-ID-REQUIRED rule checks it.
QR_FIND = (
    StatusRow(
        StatusClass.FAILURE,
        one(0xA700),
        "Refused: Out of resources",
        frozenset({ERROR_COMMENT}),
        "PS3.4 Table C.4-1",
    ),
    StatusRow(
        StatusClass.FAILURE,
        one(0xA900),
        "Error: Data Set does not match SOP Class",
        _OFFENDING_AND_COMMENT,
        "PS3.4 Table C.4-1",
    ),
    StatusRow(
        StatusClass.FAILURE,
        range(0xC000, 0xD000),
        "Failed: Unable to process",
        _OFFENDING_AND_COMMENT,
        "PS3.4 Table C.4-1",
    ),
    StatusRow(
        StatusClass.CANCEL,
        one(0xFE00),
        "Matching terminated due to Cancel request",
        NONE,
        "PS3.4 Table C.4-1",
    ),
    StatusRow(
        StatusClass.SUCCESS,
        one(0x0000),
        "Matching is complete - No final Identifier is supplied",
        NONE,
        "PS3.4 Table C.4-1",
    ),
    StatusRow(
        StatusClass.PENDING,
        one(0xFF00),
        "Matches are continuing - Current Match is supplied and any Optional Keys were "
        "supported in the same manner as Required Keys",
        NONE,
        "PS3.4 Table C.4-1",
    ),
    StatusRow(
        StatusClass.PENDING,
        one(0xFF01),
        "Matches are continuing - Warning that one or more Optional Keys were not "
        "supported for existence and/or matching for this Identifier",
        NONE,
        "PS3.4 Table C.4-1",
    ),
)

# PS3.7 §9.1.2.1.6: the C-FIND statuses (a)-(f).  All but (d) are Service Class specific
# or already rows of Table C.4-1; (d) is the one general code C-FIND admits.  Annex C's
# optional fields for it are not checked, so ``related`` is left empty.
QR_FIND_GENERAL = (
    StatusRow(
        StatusClass.FAILURE,
        one(0x0122),
        "Refused: SOP Class not supported",
        NONE,
        "PS3.7 §9.1.2.1.6 (d)",
    ),
)

# -- C-MOVE ------------------------------------------------------------------------------------

# PS3.4 Table C.4-2, C-MOVE Response Status Values (2020 text; rules.md D1-D3 for where
# the seed's Related Fields differ: no (0000,1020) for A702, B000 and 0000).
QR_MOVE = (
    StatusRow(
        StatusClass.FAILURE,
        one(0xA701),
        "Refused: Out of resources - Unable to calculate number of matches",
        frozenset({ERROR_COMMENT}),
        "PS3.4 Table C.4-2",
    ),
    StatusRow(
        StatusClass.FAILURE,
        one(0xA702),
        "Refused: Out of resources - Unable to perform sub-operations",
        _COMPLETED_FAILED_WARNING,
        "PS3.4 Table C.4-2",
    ),
    StatusRow(
        StatusClass.FAILURE,
        one(0xA801),
        "Refused: Move Destination unknown",
        frozenset({ERROR_COMMENT}),
        "PS3.4 Table C.4-2",
    ),
    StatusRow(
        StatusClass.FAILURE,
        one(0xA900),
        "Error: Data Set does not match SOP Class",
        _OFFENDING_AND_COMMENT,
        "PS3.4 Table C.4-2",
    ),
    StatusRow(
        StatusClass.FAILURE,
        range(0xC000, 0xD000),
        "Failed: Unable to Process",
        _OFFENDING_AND_COMMENT,
        "PS3.4 Table C.4-2",
    ),
    StatusRow(
        StatusClass.CANCEL,
        one(0xFE00),
        "Sub-operations terminated due to Cancel Indication",
        SUBOP_COUNTS,
        "PS3.4 Table C.4-2",
    ),
    StatusRow(
        StatusClass.WARNING,
        one(0xB000),
        "Sub-operations Complete - One or more Failures",
        _COMPLETED_FAILED_WARNING,
        "PS3.4 Table C.4-2",
    ),
    StatusRow(
        StatusClass.SUCCESS,
        one(0x0000),
        "Sub-operations Complete - No Failures",
        _COMPLETED_FAILED_WARNING,
        "PS3.4 Table C.4-2",
    ),
    StatusRow(
        StatusClass.PENDING,
        one(0xFF00),
        "Sub-operations are continuing",
        SUBOP_COUNTS,
        "PS3.4 Table C.4-2",
    ),
)

# PS3.4 Table Y.4-1 (Composite Instance Root Retrieve, C-MOVE): the frame-level codes no
# other Q/R table has.  Y.4-1's other rows repeat Table C.4-2 (with 1020-1023 for A702,
# B000 and 0000, the conflict rules.md D2 describes), so only these are kept here.
QR_MOVE_FRAME = (
    StatusRow(
        StatusClass.FAILURE,
        one(0xAA00),
        "Failed: None of the frames requested were found in the SOP Instance",
        frozenset({ERROR_COMMENT}),
        "PS3.4 Table Y.4-1",
    ),
    StatusRow(
        StatusClass.FAILURE,
        one(0xAA01),
        "Failed: Unable to create new object for this SOP Class",
        frozenset({ERROR_COMMENT}),
        "PS3.4 Table Y.4-1",
    ),
    StatusRow(
        StatusClass.FAILURE,
        one(0xAA02),
        "Failed: Unable to extract frames",
        frozenset({ERROR_COMMENT}),
        "PS3.4 Table Y.4-1",
    ),
    StatusRow(
        StatusClass.FAILURE,
        one(0xAA03),
        "Failed: Time-based request received for a non-time-based original SOP Instance",
        frozenset({ERROR_COMMENT}),
        "PS3.4 Table Y.4-1",
    ),
    StatusRow(
        StatusClass.FAILURE,
        one(0xAA04),
        "Failed: Invalid Request",
        _OFFENDING_AND_COMMENT,
        "PS3.4 Table Y.4-1",
    ),
)

# PS3.7 §9.1.4.1.7: the general codes C-MOVE admits, (d) and (h)-(k).  The seed's MOVE
# tables list none of them (rules.md D4).  Related fields are not checked (see above).
QR_MOVE_GENERAL = (
    StatusRow(
        StatusClass.FAILURE,
        one(0x0122),
        "Refused: SOP Class not supported",
        NONE,
        "PS3.7 §9.1.4.1.7 (d)",
    ),
    StatusRow(
        StatusClass.FAILURE, one(0x0210), "Duplicate invocation", NONE, "PS3.7 §9.1.4.1.7 (h)"
    ),
    StatusRow(StatusClass.FAILURE, one(0x0212), "Mistyped argument", NONE, "PS3.7 §9.1.4.1.7 (i)"),
    StatusRow(
        StatusClass.FAILURE, one(0x0211), "Unrecognized operation", NONE, "PS3.7 §9.1.4.1.7 (j)"
    ),
    StatusRow(
        StatusClass.FAILURE, one(0x0124), "Refused: Not authorized", NONE, "PS3.7 §9.1.4.1.7 (k)"
    ),
)

# Every code the normative text defines for each service, service-specific tables first.
QR_FIND_ALL = QR_FIND + QR_FIND_GENERAL
QR_MOVE_SPECIFIC = QR_MOVE + QR_MOVE_FRAME
QR_MOVE_ALL = QR_MOVE_SPECIFIC + QR_MOVE_GENERAL
