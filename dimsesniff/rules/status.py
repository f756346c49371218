"""Status-code rules (rules.md §2): is this Status legal for this response and this service?

PS3.7 Annex C puts every status code in a class and forbids codes outside
them, for every DIMSE response.  For the Query/Retrieve C-FIND and C-MOVE
SOP Classes, PS3.4 Tables C.4-1, C.4-2 and Y.4-1 and PS3.7 §9.1.2.1.6 /
§9.1.4.1.7 then say which codes each service may return
(``standard/qr_tables.py``).  The ``ps3.2-tables`` profile adds the seed's
literal reading, PS3.2 Tables N.7-48..N.7-51 (``SEED-*`` rules): a status
must be listed in the table and every related field its row lists must be
sent.  rules.md §11 (D1-D4, D9, D16) says where the two readings part.

The service a response belongs to is taken from its own Affected SOP Class
UID, else from its request's, else from the abstract syntax of its
presentation context (PS3.4 §C.4.1.1.1 / §C.4.2.1.1: the SOP Class "is
implied by the Abstract Syntax UID of the Presentation Context").  When
none is known the service-specific rules stay silent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dissectors.dimse import (
    AFFECTED_SOP_CLASS_UID,
    STATUS,
    Command,
    command_name,
    is_response,
    tag_text,
)

from ..standard.qr_tables import (
    COMPOSITE_INSTANCE_ROOT_MOVE,
    QR_FIND,
    QR_FIND_ALL,
    QR_FIND_CLASSES,
    QR_FIND_GENERAL,
    QR_MOVE_ALL,
    QR_MOVE_CLASSES,
    QR_MOVE_FRAME,
    QR_MOVE_GENERAL,
    QR_MOVE_SPECIFIC,
)
from ..standard.status import (
    QR_FIND_SEED,
    QR_MOVE_SEED,
    StatusClass,
    StatusRow,
    find_row,
    status_class,
)
from .base import SEED_TABLES, STANDARD, Problem, Severity, message_rule

if TYPE_CHECKING:
    from ..checks import MessageContext

RESPONSES = tuple(command for command in Command if is_response(command))
FIND_RSP = (Command.C_FIND_RSP,)
MOVE_RSP = (Command.C_MOVE_RSP,)
VALID_CLASSES = "0000, 0001, Bxxx, 0107, 0116, Axxx, Cxxx, 01xx, 02xx, FE00, FF00, FF01"


# -- helpers ---------------------------------------------------------------------------------


def sop_class(ctx: MessageContext) -> str | None:
    """The SOP Class of a response: its own (0000,0002), the request's, or its context's."""
    uid = ctx.cmd.text(AFFECTED_SOP_CLASS_UID)
    if uid:
        return uid
    if ctx.op is not None and ctx.op.sop_class:
        return ctx.op.sop_class
    context = ctx.assoc.contexts.get(ctx.obs.message.context_id)
    return context.abstract_syntax if context is not None else None


def qr_find_status(ctx: MessageContext) -> int | None:
    """The Status of a C-FIND-RSP of a classic Q/R FIND SOP Class (Table C.4-1), else None."""
    return ctx.status if sop_class(ctx) in QR_FIND_CLASSES else None


def qr_move_status(ctx: MessageContext) -> int | None:
    """The Status of a C-MOVE-RSP of a Q/R MOVE SOP Class (Table C.4-2 / Y.4-1), else None."""
    return ctx.status if sop_class(ctx) in QR_MOVE_CLASSES else None


def listing(rows: tuple[StatusRow, ...]) -> str:
    """``0000, FF00, C000-CFFF, ...``: the codes of a table, for the ``expected`` column."""
    return ", ".join(
        f"{row.codes.start:04X}"
        if len(row.codes) == 1
        else f"{row.codes.start:04X}-{row.codes.stop - 1:04X}"
        for row in rows
    )


def described(row: StatusRow) -> str:
    return f"{row.meaning} ({row.source})"


def move_only(code: int) -> StatusRow | None:
    """The Table C.4-2 / Y.4-1 failure row of a code no C-FIND table defines (A701, A801...)."""
    row = find_row(QR_MOVE_SPECIFIC, code)
    if row is None or row.status is not StatusClass.FAILURE or find_row(QR_FIND_ALL, code):
        return None
    return row


def find_only(code: int) -> StatusRow | None:
    """The Table C.4-1 failure row of a code no C-MOVE table defines (A700)."""
    row = find_row(QR_FIND, code)
    if row is None or row.status is not StatusClass.FAILURE or find_row(QR_MOVE_ALL, code):
        return None
    return row


# -- every DIMSE response --------------------------------------------------------------------


@message_rule(
    "ST-CLASS-INVALID",
    Severity.ERROR,
    "PS3.7 Annex C (introduction)",
    applies_to=RESPONSES,
    origin="[P7]",
)
def status_class_invalid(ctx: MessageContext) -> Iterator[Problem]:
    """Status outside every PS3.7 status class

    PS3.7 Annex C sorts every status code into Success (0000), Warning (0001,
    Bxxx, 0107, 0116), Failure (Axxx, Cxxx, other 01xx, 02xx), Cancel (FE00)
    and Pending (FF00, FF01), and says "Implementations shall not use Status
    Codes with values not listed in the table above."  A receiver cannot even
    tell whether such a response is final, so the operation is left hanging.
    The seed's "Other Status Codes: anything else" row (rules.md D10) only
    documents how an SCU copes with one; it does not make the code legal.
    """
    status = ctx.status
    if status is not None and ctx.klass is StatusClass.INVALID:
        yield Problem(
            f"{command_name(ctx.command_field)} status {status:04X} is in no PS3.7 status class",
            observed=f"{status:04X}",
            expected=VALID_CLASSES,
        )


@message_rule(
    "ST-STATUS-MISSING",
    Severity.ERROR,
    "PS3.7 Annex C (note: Status is required for all Status Types), Tables 9.3-4 / 9.3-10; "
    "PS3.5 Table 6.2-1 (US)",
    applies_to=RESPONSES,
    origin="[P7]",
)
def status_missing(ctx: MessageContext) -> Iterator[Problem]:
    """Status element missing or malformed

    Every DIMSE response carries Status (0000,0900): PS3.7 Annex C notes that
    "The Status (0000,0900) Command Element is required for all Status Types"
    and the response command tables (e.g. 9.3-4 for C-FIND-RSP, 9.3-10 for
    C-MOVE-RSP) list it.  Its VR is US, exactly two bytes (PS3.5 Table
    6.2-1).  Without a readable status the receiver cannot tell success from
    failure, nor a Pending response from the final one.
    """
    raw = ctx.cmd.raw.get(STATUS)
    name = command_name(ctx.command_field)
    if raw is None:
        yield Problem(
            f"{name} without Status {tag_text(STATUS)}", observed="absent", expected="US, VL 2"
        )
    elif len(raw) != 2:
        yield Problem(
            f"{name} Status {tag_text(STATUS)} is {len(raw)} bytes long, not 2",
            observed=f"VL {len(raw)}",
            expected="US, VL 2",
        )


# -- C-FIND (Q/R FIND SOP Classes) -----------------------------------------------------------


@message_rule(
    "FIND-STATUS-WARNING",
    Severity.ERROR,
    "PS3.4 Table C.4-1, §C.4.1.2.1; PS3.7 §9.1.2.1.6",
    applies_to=FIND_RSP,
    origin="[SEED=P4][P7]",
)
def find_status_warning(ctx: MessageContext) -> Iterator[Problem]:
    """C-FIND has no Warning status

    Neither Table C.4-1 nor the seed (N.7-48/50) nor PS3.7 §9.1.2.1.6 (a)-(f)
    define a Warning for C-FIND, and PS3.4 §C.4.1.2.1 has the SCU end the
    Pending responses on "Success, Failed or Refused".  The Warning in the last
    paragraph of PS3.7 §9.1.2.2 has no code behind it (rules.md D11).  An SCU
    may not even take a Warning as final.  The warning that does exist for
    C-FIND is the Pending code FF01.  Only the classic Q/R FIND classes are
    checked: Repository Query's B001 is open item O3.
    """
    status = qr_find_status(ctx)
    if status is not None and status_class(status) is StatusClass.WARNING:
        yield Problem(
            f"C-FIND-RSP with Warning status {status:04X}: C-FIND defines no Warning",
            observed=f"{status:04X}",
            expected=listing(QR_FIND_ALL),
        )


@message_rule(
    "FIND-STATUS-MOVEONLY",
    Severity.ERROR,
    "PS3.4 Table C.4-1 vs Tables C.4-2 / Y.4-1; PS3.2 Tables N.7-48 / N.7-50",
    applies_to=FIND_RSP,
    origin="[SEED][P4]",
)
def find_status_move_only(ctx: MessageContext) -> Iterator[Problem]:
    """A C-MOVE status code sent in a C-FIND response

    A701, A702, A801 (Table C.4-2) and AA00-AA04 (Table Y.4-1) describe
    sub-operations, move destinations and frames, none of which a query has;
    Table C.4-1 and the seed's FIND tables do not list them.  A C-FIND SCP
    sending one has mixed up its tables (out of resources is A700 for C-FIND),
    and an SCU looking the code up in the C-FIND table finds nothing.  B000 is
    reported by FIND-STATUS-WARNING.
    """
    status = qr_find_status(ctx)
    row = move_only(status) if status is not None else None
    if row is not None:
        yield Problem(
            f"C-FIND-RSP with the C-MOVE status {status:04X} {described(row)}",
            observed=f"{status:04X}",
            expected=listing(QR_FIND_ALL),
        )


@message_rule(
    "FIND-STATUS-UNLISTED",
    Severity.WARNING,
    "PS3.4 Table C.4-1; PS3.7 §9.1.2.1.6; PS3.2 Tables N.7-48 / N.7-50",
    applies_to=FIND_RSP,
    origin="[SEED][P4][P7]",
)
def find_status_unlisted(ctx: MessageContext) -> Iterator[Problem]:
    """A failure code that no C-FIND table defines

    C-FIND failures are A700, A900 and Cxxx (Table C.4-1) and the general
    0122 (PS3.7 §9.1.2.1.6 (d)).  Other Failure-class codes are legal
    *classes* (PS3.7 Annex C) but undefined for this service: an SCU that
    follows PS3.4 §C.4.1.1.4 only knows the meanings of the listed ranges.
    Note that 0124, 0210, 0211 and 0212, valid for C-MOVE, are not listed for
    C-FIND (rules.md D4).  C-MOVE-only codes go to FIND-STATUS-MOVEONLY.
    Warning, not error: the class is right, only the service never defines it.
    """
    status = qr_find_status(ctx)
    if (
        status is not None
        and status_class(status) is StatusClass.FAILURE
        and find_row(QR_FIND_ALL, status) is None
        and move_only(status) is None
    ):
        yield Problem(
            f"C-FIND-RSP with failure status {status:04X}, which no C-FIND table defines",
            observed=f"{status:04X}",
            expected=listing(QR_FIND_ALL),
        )


@message_rule(
    "FIND-STATUS-0122",
    Severity.INFO,
    "PS3.7 §9.1.2.1.6 (d); PS3.2 Table N.7-48",
    applies_to=FIND_RSP,
    origin="[SEED][P7]",
)
def find_status_0122(ctx: MessageContext) -> Iterator[Problem]:
    """0122 (SOP Class not supported) in a C-FIND: valid, though Table C.4-1 lacks it

    PS3.4 Table C.4-1 lists only the Service Class specific codes and defers
    the general ones to PS3.7, whose §9.1.2.1.6 (d) gives "Refused: SOP Class
    not supported (0122H)" for C-FIND; the seed (N.7-48/50) lists it too
    (rules.md D4).  Reported for information: an SCU built from Table C.4-1
    alone may not expect it.
    """
    status = qr_find_status(ctx)
    row = find_row(QR_FIND_GENERAL, status) if status is not None else None
    if row is not None:
        yield Problem(
            f"C-FIND-RSP {status:04X} {row.meaning}: valid per {row.source}, "
            "not listed in PS3.4 Table C.4-1",
            observed=f"{status:04X}",
        )


# -- C-MOVE (Q/R MOVE SOP Classes) -----------------------------------------------------------


@message_rule(
    "MOVE-STATUS-FF01",
    Severity.ERROR,
    "PS3.4 Table C.4-2; PS3.2 Tables N.7-49 / N.7-51",
    applies_to=MOVE_RSP,
    origin="[SEED=P4]",
)
def move_status_ff01(ctx: MessageContext) -> Iterator[Problem]:
    """FF01 is not a C-MOVE status

    FF01 means "one or more Optional Keys were not supported" for a C-FIND
    match.  C-MOVE has a single Pending code, FF00 "Sub-operations are
    continuing" (Table C.4-2, seed N.7-49/51); its Pending responses carry
    sub-operation counts, not matches.
    """
    status = qr_move_status(ctx)
    if (
        status is not None
        and status_class(status) is StatusClass.PENDING
        and find_row(QR_MOVE_ALL, status) is None
    ):
        yield Problem(
            f"C-MOVE-RSP with Pending status {status:04X}: C-MOVE's only Pending code is FF00",
            observed=f"{status:04X}",
            expected="FF00",
        )


@message_rule(
    "MOVE-STATUS-WARNING-UNLISTED",
    Severity.ERROR,
    "PS3.4 Table C.4-2; PS3.7 §9.1.4.1.7 (l)",
    applies_to=MOVE_RSP,
    origin="[SEED=P4]",
)
def move_status_warning_unlisted(ctx: MessageContext) -> Iterator[Problem]:
    """Only B000 is a C-MOVE warning

    PS3.7 §9.1.4.1.7 (l) leaves the Warning code to the Service Class, and
    Table C.4-2 (like the seed, N.7-49/51) defines exactly one: B000
    "Sub-operations Complete - One or more Failures".  0001, 0107, 0116 or
    other Bxxx codes are Warning-class codes (PS3.7 Annex C) that the
    Query/Retrieve Service Class never gives to C-MOVE (rules.md D6).
    """
    status = qr_move_status(ctx)
    if (
        status is not None
        and status_class(status) is StatusClass.WARNING
        and find_row(QR_MOVE_ALL, status) is None
    ):
        yield Problem(
            f"C-MOVE-RSP with Warning status {status:04X}: C-MOVE's only Warning code is B000",
            observed=f"{status:04X}",
            expected="B000",
        )


@message_rule(
    "MOVE-STATUS-FINDONLY",
    Severity.WARNING,
    "PS3.4 Table C.4-1 vs Table C.4-2; PS3.2 Tables N.7-49 / N.7-51",
    applies_to=MOVE_RSP,
    origin="[SEED][P4]",
)
def move_status_find_only(ctx: MessageContext) -> Iterator[Problem]:
    """A C-FIND-only failure code sent in a C-MOVE response

    A700 "Refused: Out of resources" belongs to C-FIND (Table C.4-1).  C-MOVE
    splits it in two, A701 "Unable to calculate number of matches" and A702
    "Unable to perform sub-operations" (Table C.4-2, seed N.7-49/51), and the
    SCU needs to know which: after A702 some sub-operations may have run.
    Warning rather than error: the meaning is still clear.
    """
    status = qr_move_status(ctx)
    row = find_only(status) if status is not None else None
    if row is not None:
        yield Problem(
            f"C-MOVE-RSP with the C-FIND status {status:04X} {described(row)}",
            observed=f"{status:04X}",
            expected="A701 or A702",
        )


@message_rule(
    "MOVE-STATUS-AAXX",
    Severity.WARNING,
    "PS3.4 Table Y.4-1",
    applies_to=MOVE_RSP,
    origin="[P4]",
)
def move_status_aaxx(ctx: MessageContext) -> Iterator[Problem]:
    """Frame-retrieve codes outside Composite Instance Root Retrieve

    AA00-AA04 (frames not found, cannot extract frames, invalid request...)
    are defined only in Table Y.4-1, for the Composite Instance Root Retrieve
    MOVE SOP Class (1.2.840.10008.5.1.4.1.2.4.2), the one Q/R model with a
    FRAME level.  Patient and Study Root retrieves have no frames to fail on.
    pynetdicom accepts the codes for every MOVE class (rules.md D16), which
    is why they appear elsewhere.
    """
    status = qr_move_status(ctx)
    row = find_row(QR_MOVE_FRAME, status) if status is not None else None
    uid = sop_class(ctx)
    if row is not None and uid != COMPOSITE_INSTANCE_ROOT_MOVE:
        yield Problem(
            f"C-MOVE-RSP {status:04X} {described(row)} for SOP Class {uid}, "
            "which has no FRAME level",
            observed=f"{status:04X} with {uid}",
            expected=f"AA00-AA04 only with {COMPOSITE_INSTANCE_ROOT_MOVE}",
        )


@message_rule(
    "MOVE-STATUS-GENERAL",
    Severity.INFO,
    "PS3.7 §9.1.4.1.7 (d), (h)-(k)",
    applies_to=MOVE_RSP,
    profiles=[STANDARD],
    origin="[P7]",
)
def move_status_general(ctx: MessageContext) -> Iterator[Problem]:
    """General code valid for C-MOVE but missing from the seed tables

    PS3.7 §9.1.4.1.7 lists for C-MOVE 0122 (SOP Class not supported), 0210
    (Duplicate invocation), 0211 (Unrecognized operation), 0212 (Mistyped
    argument) and 0124 (Not authorized).  Table C.4-2 defers general codes to
    PS3.7; the seed's MOVE tables (N.7-49/51) leave them out (rules.md D4).
    The standard profile accepts them and reports them for information.  In
    the ``ps3.2-tables`` profile they are errors (SEED-MOVE-STATUS-UNLISTED),
    so this rule is standard-only.
    """
    status = qr_move_status(ctx)
    row = find_row(QR_MOVE_GENERAL, status) if status is not None else None
    if row is not None:
        yield Problem(
            f"C-MOVE-RSP {status:04X} {row.meaning}: valid per {row.source}, "
            "not listed in PS3.2 Tables N.7-49 / N.7-51",
            observed=f"{status:04X}",
        )


@message_rule(
    "MOVE-STATUS-UNLISTED",
    Severity.WARNING,
    "PS3.4 Tables C.4-2 / Y.4-1; PS3.7 §9.1.4.1.7; PS3.2 Tables N.7-49 / N.7-51",
    applies_to=MOVE_RSP,
    origin="[SEED][P4][P7]",
)
def move_status_unlisted(ctx: MessageContext) -> Iterator[Problem]:
    """A failure code that no C-MOVE table defines

    C-MOVE failures are A701, A702, A801, A900 and Cxxx (Table C.4-2),
    AA00-AA04 (Table Y.4-1) and the general 0122, 0124, 0210, 0211 and 0212
    (PS3.7 §9.1.4.1.7).  Any other Failure-class code is a legal class with
    no meaning for this service: an SCU that follows PS3.4 §C.4.2.1.5 cannot
    interpret it.  A700 is left to MOVE-STATUS-FINDONLY.  Warning, not error:
    the class still tells the SCU that the retrieve failed.
    """
    status = qr_move_status(ctx)
    if (
        status is not None
        and status_class(status) is StatusClass.FAILURE
        and find_row(QR_MOVE_ALL, status) is None
        and find_only(status) is None
    ):
        yield Problem(
            f"C-MOVE-RSP with failure status {status:04X}, which no C-MOVE table defines",
            observed=f"{status:04X}",
            expected=listing(QR_MOVE_ALL),
        )


# -- ps3.2-tables profile: the seed read literally -------------------------------------------


@message_rule(
    "SEED-FIND-STATUS-UNLISTED",
    Severity.ERROR,
    "PS3.2 Tables N.7-48 / N.7-50",
    applies_to=FIND_RSP,
    profiles=[SEED_TABLES],
    origin="[SEED]",
)
def seed_find_status_unlisted(ctx: MessageContext) -> Iterator[Problem]:
    """C-FIND status not listed in the seed's C-FIND tables

    Read literally, PS3.2 Tables N.7-48 (SCU) and N.7-50 (SCP) admit 0000,
    A700, A900, C000-CFFF, 0122, FE00, FF00 and FF01 for the Q/R FIND SOP
    Classes (N.7-50 prints only C000 as an example of the Cxxx range).  A
    conformance statement that copies them promises nothing else.  The
    standard profile is milder: an unlisted Failure-class code is a warning
    (FIND-STATUS-UNLISTED), since PS3.7 Annex C lets implementations assign
    Axxx/Cxxx codes; a Warning code is an error there too
    (FIND-STATUS-WARNING).  The two readings agree on the listed codes: PS3.4
    Table C.4-1 lacks 0122 but PS3.7 §9.1.2.1.6 (d) supplies it (rules.md D4).
    """
    status = qr_find_status(ctx)
    if status is not None and find_row(QR_FIND_SEED, status) is None:
        yield Problem(
            f"C-FIND-RSP status {status:04X} is not listed in PS3.2 Table N.7-48 / N.7-50",
            observed=f"{status:04X}",
            expected=listing(QR_FIND_SEED),
        )


@message_rule(
    "SEED-MOVE-STATUS-UNLISTED",
    Severity.ERROR,
    "PS3.2 Tables N.7-49 / N.7-51",
    applies_to=MOVE_RSP,
    profiles=[SEED_TABLES],
    origin="[SEED]",
)
def seed_move_status_unlisted(ctx: MessageContext) -> Iterator[Problem]:
    """C-MOVE status not listed in the seed's C-MOVE tables

    Read literally, PS3.2 Tables N.7-49 (SCU) and N.7-51 (SCP) admit 0000,
    B000, A701, A702, A801, A900, Cxxx, FE00 and FF00 for the Q/R MOVE SOP
    Classes.  Here the seed and the normative text disagree (rules.md D4,
    D16): PS3.7 §9.1.4.1.7 also gives C-MOVE 0122, 0124, 0210, 0211 and 0212,
    and Table Y.4-1 gives Composite Instance Root Retrieve AA00-AA04; the
    standard profile accepts those (MOVE-STATUS-GENERAL, info) while this
    profile reports them as errors, as a conformance statement copying the
    seed tables promises not to send them.
    """
    status = qr_move_status(ctx)
    if status is not None and find_row(QR_MOVE_SEED, status) is None:
        yield Problem(
            f"C-MOVE-RSP status {status:04X} is not listed in PS3.2 Table N.7-49 / N.7-51",
            observed=f"{status:04X}",
            expected=listing(QR_MOVE_SEED),
        )


@message_rule(
    "SEED-MOVE-RELATED-MISSING",
    Severity.WARNING,
    "PS3.2 Table N.7-51 (Related Fields sent in the response)",
    applies_to=MOVE_RSP,
    profiles=[SEED_TABLES],
    origin="[SEED]",
)
def seed_move_related_missing(ctx: MessageContext) -> Iterator[Problem]:
    """C-MOVE response lacks a related field its seed table row lists

    PS3.2 Table N.7-51 names, per status, the "Related Fields sent in the
    response"; read literally, every one of them must be there: Error Comment
    with A701/A801, Offending Element and Error Comment with A900/Cxxx, all
    four counts with 0000, A702, FE00 and FF00, Remaining, Failed and Warning
    with B000.  The normative text disagrees in several rows (rules.md §11):
    PS3.4 §C.4.2.1.6 forbids Remaining in Success, Warning and Failure (D1-D3)
    while the seed asks for it in 0000, B000 and A702; the seed's B000 row
    omits Completed, which Table C.4-2 lists (D1); PS3.7 Annex C makes Error
    Comment and Offending Element optional ("This optional field..."), so the
    standard profile never requires them; and the seed never mentions the
    Failed SOP Instance UID List (D9), which is not checked here.  Hence a
    warning: a response can follow PS3.4 exactly and still miss a seed field.
    """
    status = qr_move_status(ctx)
    row = find_row(QR_MOVE_SEED, status) if status is not None else None
    if row is None:
        return
    missing = sorted(row.related - ctx.cmd.raw.keys())
    if missing:
        fields = " ".join(tag_text(tag) for tag in missing)
        yield Problem(
            f"C-MOVE-RSP {status:04X} without {fields}, listed for it in {row.source}",
            observed="absent: " + fields,
            expected=" ".join(tag_text(tag) for tag in sorted(row.related)),
        )


RULES = (
    status_class_invalid,
    status_missing,
    find_status_warning,
    find_status_move_only,
    find_status_unlisted,
    find_status_0122,
    move_status_ff01,
    move_status_warning_unlisted,
    move_status_find_only,
    move_status_aaxx,
    move_status_general,
    move_status_unlisted,
    seed_find_status_unlisted,
    seed_move_status_unlisted,
    seed_move_related_missing,
)
