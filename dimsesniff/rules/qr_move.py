"""C-MOVE response rules (rules.md §4): related fields, data set, sub-operation arithmetic.

Sources: PS3.4 §C.4.2.1.4.2, §C.4.2.1.6-9, §C.4.2.3.1 and Table C.4-2; PS3.7
§9.1.4; the seed tables PS3.2 N.7-49 / N.7-51.

Notation as in rules.md §0.4: R, C, F, W are this response's Number of
Remaining / Completed / Failed / Warning Sub-operations; Rp, Cp, Fp, Wp those
of the last Pending response of the same operation; T the total R+C+F+W of
its first complete Pending response.  The operation state a rule reads is the
state *before* this response (``ctx.lookup``).

Profiles: rules where the seed tables say otherwise than PS3.4 (Remaining in
final responses, which counts a final response must carry, Table C.4-2 fields
left out) run in the ``standard`` profile only; the ``ps3.2-tables`` profile
checks the seed's related-field column with its own rule.
"""

from __future__ import annotations

import re
import struct
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from dissectors.dimse import (
    COMPLETED,
    FAILED,
    MESSAGE_ID,
    MESSAGE_ID_BEING_RESPONDED_TO,
    REMAINING,
    WARNING,
    Command,
    tag_text,
)

from ..identifiers import DEFLATED, EXPLICIT_BIG_ENDIAN, IMPLICIT_LITTLE_ENDIAN
from ..standard.move_tables import STATUS_FIELDS, move_row, move_status_type
from ..standard.status import NONE, SUBOP_COUNTS, StatusClass
from .base import STANDARD, Problem, Severity, message_rule

if TYPE_CHECKING:
    from ..checks import MessageContext
    from ..observations import ObservedMessage
    from ..operations import Counts, Operation, OperationTracker

MOVE_RSP = (Command.C_MOVE_RSP,)
COUNT_NAMES = ("Remaining", "Completed", "Failed", "Warning")
COUNT_TAGS = (REMAINING, COMPLETED, FAILED, WARNING)
FINAL_COUNT_TAGS = (COMPLETED, FAILED, WARNING)

FAILED_SOP_INSTANCE_UID_LIST = 0x0008_0058
SPECIFIC_CHARACTER_SET = 0x0008_0005

SUCCESS, WARNING_B000, CANCEL, PENDING = 0x0000, 0xB000, 0xFE00, 0xFF00
FAILLIST_STATUSES = (StatusClass.WARNING, StatusClass.FAILURE, StatusClass.CANCEL)

# The counts other rules already ask for, per status (MOVE-PENDING-COUNTS,
# MOVE-CANCEL-COUNTS, MOVE-FINAL-COUNTS); MOVE-RELATED-MISSING reports the rest
# of the Table C.4-2 row.
_COUNTS_CHECKED_ELSEWHERE: dict[int, frozenset[int]] = {
    PENDING: SUBOP_COUNTS,
    CANCEL: frozenset(FINAL_COUNT_TAGS),
    SUCCESS: frozenset(FINAL_COUNT_TAGS),
    WARNING_B000: frozenset(FINAL_COUNT_TAGS),
    0xA702: frozenset(FINAL_COUNT_TAGS),
}

# PS3.5 §9.1: UID components are digits without a leading zero (except "0" itself).
UID_PATTERN = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*\Z")
UID_MAX = 64
_UNDECODED = object()  # a data set came but was not decoded (bad encoding, too long)


# -- small helpers ---------------------------------------------------------------------


def _hex(code: int | None) -> str:
    return "absent" if code is None else f"{code:04X}"


def _show(counts: Counts) -> str:
    return " ".join(
        f"{name[0]}={'absent' if value is None else value}"
        for name, value in zip(COUNT_NAMES, counts, strict=True)
    )


def _absent(ctx: MessageContext, tags: tuple[int, ...]) -> list[str]:
    """Names of the count elements in ``tags`` that the command set does not carry."""
    return [COUNT_NAMES[COUNT_TAGS.index(t)] for t in tags if not ctx.cmd.has(t)]


def _history(ctx: MessageContext) -> Operation | None:
    """The operation as it stood before this response, unless it had already ended."""
    return None if ctx.lookup.after_final else ctx.op


def _pending_counts(ctx: MessageContext) -> Counts | None:
    """(Rp, Cp, Fp, Wp): the counts of the last Pending response, if any."""
    op = _history(ctx)
    return op.last_pending_counts if op is not None else None


def _total(ctx: MessageContext) -> int | None:
    op = _history(ctx)
    return op.total if op is not None else None


def _identifier(ctx: MessageContext) -> Any:
    """The response identifier: a Dataset, None when no data set came, or ``_UNDECODED``."""
    if not ctx.has_data_set:
        return None
    return ctx.obs.identifier if ctx.obs.identifier is not None else _UNDECODED


def _failed_list(ctx: MessageContext) -> Any:
    """The (0008,0058) element of the response identifier, or None."""
    identifier = _identifier(ctx)
    if identifier is None or identifier is _UNDECODED:
        return None
    return identifier.get(FAILED_SOP_INSTANCE_UID_LIST)


def _list_values(element: Any) -> list[str]:
    """The decoded values of a UI element (pydicom gives a str for VM 1, a list otherwise)."""
    value = element.value
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _raw_value(ctx: MessageContext, element: Any) -> bytes | None:
    """The value bytes of a top-level identifier element exactly as sent, when recoverable.

    The decoded value has lost its padding, which PS3.5 §9.1 constrains.  The
    decoder records where each value starts; its length sits right before it
    (4 bytes in Implicit VR, 2 bytes for UI in Explicit VR, PS3.5 §7.1.2-3).
    Deflated data sets are not kept uncompressed, so they give None.
    """
    data = ctx.obs.message.data_set
    start = getattr(element, "file_tell", None)
    if data is None or not isinstance(start, int) or start < 4:
        return None
    syntax, _ = ctx.assoc.transfer_syntax(ctx.obs.message.context_id)
    if syntax == DEFLATED:
        return None
    if syntax == IMPLICIT_LITTLE_ENDIAN:
        (length,) = struct.unpack_from("<I", data, start - 4)
    else:
        (length,) = struct.unpack_from(
            ">H" if syntax == EXPLICIT_BIG_ENDIAN else "<H", data, start - 2
        )
    raw = data[start : start + length]
    if len(raw) != length:
        return None
    # Cross-check against the decoded value; anything odd and we trust the decoder only.
    decoded = "\\".join(_list_values(element))
    if raw.decode("latin-1").rstrip("\x00 ") != decoded.rstrip("\x00 "):
        return None
    return raw


def _uid_problems(values: list[str]) -> list[str]:
    problems = []
    for number, value in enumerate(values, start=1):
        if len(value) > UID_MAX:
            problems.append(f"value {number} is {len(value)} characters long (at most {UID_MAX})")
        if not UID_PATTERN.match(value):
            problems.append(f"value {number} {value[:70]!r} is not a UID")
    return problems


def _uid_list_problems(raw: bytes) -> list[str]:
    """PS3.5 §9.1 / Table 6.2-1 (UI) applied to a whole value field, padding included."""
    problems = []
    if len(raw) % 2:
        problems.append(f"odd value length {len(raw)}")
    body = raw
    if body.endswith(b"\x00"):
        body = body[:-1]
    elif body.endswith(b" "):
        problems.append("padded with a space (20H) instead of 00H")
        body = body.rstrip(b" ")
    return problems + _uid_problems(body.decode("latin-1").split("\\"))


# -- §4.1 related fields and data set --------------------------------------------------


@message_rule(
    "MOVE-PENDING-COUNTS",
    Severity.ERROR,
    "PS3.4 §C.4.2.1.6-9, Table C.4-2; PS3.7 §9.1.4.1.8-11; PS3.2 Table N.7-51",
    applies_to=MOVE_RSP,
    origin="[SEED=P4][P7]",
)
def move_pending_counts(ctx: MessageContext) -> Iterator[Problem]:
    """Pending C-MOVE response without all four sub-operation counts.

    A Pending response "shall contain" the Number of Remaining, Completed,
    Failed and Warning Sub-operations: a retrieve SCU shows progress from them
    and cannot tell how far the move got without them.
    """
    if ctx.status != 0xFF00:
        return
    missing = [name for name, value in zip(COUNT_NAMES, ctx.counts, strict=True) if value is None]
    if missing:
        yield Problem(
            f"Pending (FF00) C-MOVE-RSP without {', '.join(missing)}",
            observed="absent: " + ", ".join(missing),
            expected="(0000,1020) (0000,1021) (0000,1022) (0000,1023)",
        )


@message_rule(
    "MOVE-REMAINING-IN-FINAL",
    Severity.ERROR,
    "PS3.4 §C.4.2.1.6, Table C.4-2; PS3.7 §9.1.4.1.8",
    applies_to=MOVE_RSP,
    profiles=(STANDARD,),
    origin="[P4>SEED]",
)
def move_remaining_in_final(ctx: MessageContext) -> Iterator[Problem]:
    """Success, Warning or Failure C-MOVE response carries Number of Remaining Sub-operations

    PS3.4 §C.4.2.1.6: "A C-MOVE response with a status of ... Warning,
    Failure, or Success shall not contain the Number of Remaining
    Sub-operations Attribute"; Table C.4-2 lists only (0000,1021)-(0000,1023)
    for 0000, B000 and A702.  Only Pending (shall) and Cancel (may) carry it.

    The standard contradicts itself here (rules.md D1-D3): PS3.7 §9.1.4.1.8
    says Remaining "may be included in any response", the seed tables
    N.7-49/51 list (0000,1020) for 0000, B000 and A702, and Table Y.4-1
    (Composite Instance Root Retrieve) lists it too although §Y.4.1.1.5
    defers to §C.4.2.1.6.  Graded accordingly, in the ``standard`` profile
    only: Remaining = 0 breaks only the PS3.4 wording and agrees with every
    other text (nothing remains once the move is over), so it is a warning;
    pynetdicom 3.0.4 sends exactly that in every final response that follows
    Pending ones, because it reuses the Pending response's primitive (seen
    in ``samples/pynetdicom-move.pcap``), while DCMTK strips the element.
    Remaining > 0 (or unreadable) in a final response is an error: it is
    forbidden and contradicts "When the number of Remaining sub-operations
    reaches zero, the SCP shall generate a final response" (§C.4.2.3.1).
    """
    if ctx.klass not in (StatusClass.SUCCESS, StatusClass.WARNING, StatusClass.FAILURE):
        return
    if not ctx.cmd.has(REMAINING):
        return
    remaining = ctx.counts[0]
    yield Problem(
        f"{ctx.klass.value} ({_hex(ctx.status)}) C-MOVE-RSP carries Number of Remaining "
        "Sub-operations",
        observed=f"(0000,1020) = {'unreadable' if remaining is None else remaining}",
        expected="no (0000,1020) outside Pending and Cancel",
        severity=Severity.WARNING if remaining == 0 else None,
    )


@message_rule(
    "MOVE-CANCEL-REMAINING",
    Severity.INFO,
    "PS3.4 §C.4.2.1.6, §C.4.2.3.1",
    applies_to=MOVE_RSP,
    origin="[SEED=P4]",
)
def move_cancel_remaining(ctx: MessageContext) -> Iterator[Problem]:
    """Cancel C-MOVE response states the sub-operations never started (allowed)

    PS3.4 §C.4.2.1.6: "Canceled may contain the Number of Remaining
    Sub-operations"; §C.4.2.3.1: "If present, the Remaining sub-operations
    count shall contain the number of C-STORE sub-operations that were not
    initiated due to the C-MOVE-CANCEL request".  Reported for the record:
    both DCMTK and pynetdicom send it.
    """
    if ctx.status == CANCEL and ctx.cmd.has(REMAINING):
        remaining = ctx.counts[0]
        yield Problem(
            f"Cancel (FE00) C-MOVE-RSP reports {remaining} sub-operations not initiated",
            observed=f"(0000,1020) = {remaining}",
        )


@message_rule(
    "MOVE-CANCEL-COUNTS",
    Severity.WARNING,
    "PS3.4 §C.4.2.2.1, §C.4.2.3.1, §C.4.2.1.7-9, Table C.4-2",
    applies_to=MOVE_RSP,
    profiles=(STANDARD,),
    origin="[SEED][P4]",
)
def move_cancel_counts(ctx: MessageContext) -> Iterator[Problem]:
    """Cancel C-MOVE response without the Completed, Failed and Warning counts

    PS3.4 §C.4.2.2.1 and §C.4.2.3.1: "The C-MOVE response with a status of
    Canceled shall contain the number of Completed, Failed, and Warning
    C-STORE sub-operations", and Table C.4-2 lists them for FE00.  But
    §C.4.2.1.7-9 say "Canceled ... may contain" each of them (rules.md D7),
    so the catalog reports a warning.  In the ``ps3.2-tables`` profile the
    seed's related-field rule reports these gaps instead.
    """
    if ctx.status != CANCEL:
        return
    missing = _absent(ctx, FINAL_COUNT_TAGS)
    if missing:
        yield Problem(
            f"Cancel (FE00) C-MOVE-RSP without {', '.join(missing)}",
            observed="absent: " + ", ".join(missing),
            expected="(0000,1021) (0000,1022) (0000,1023)",
        )


@message_rule(
    "MOVE-FINAL-COUNTS",
    Severity.WARNING,
    "PS3.4 §C.4.2.3.1, Table C.4-2; §C.4.2.1.7-9; PS3.7 §9.1.4.1.9-11",
    applies_to=MOVE_RSP,
    profiles=(STANDARD,),
    origin="[SEED][P4]",
)
def move_final_counts(ctx: MessageContext) -> Iterator[Problem]:
    """Success, Warning or A702 C-MOVE response without the Completed, Failed and Warning counts

    PS3.4 §C.4.2.3.1: the final response "shall indicate the number of
    Completed sub-operations, the number of Failed sub-operations, and the
    number of sub-operations with Warning Status", and Table C.4-2 lists
    (0000,1021)-(0000,1023) for 0000, B000 and A702.  §C.4.2.1.7-9 ("may
    contain") and PS3.7 §9.1.4.1.9-11 ("may be included in any response")
    soften it (rules.md D8), hence a warning.  The seed differs for B000 (no
    Completed); in the ``ps3.2-tables`` profile its own rule applies instead.
    """
    if ctx.status not in (SUCCESS, WARNING_B000, 0xA702):
        return
    missing = _absent(ctx, FINAL_COUNT_TAGS)
    if missing:
        yield Problem(
            f"final {_hex(ctx.status)} C-MOVE-RSP without {', '.join(missing)}",
            observed="absent: " + ", ".join(missing),
            expected="(0000,1021) (0000,1022) (0000,1023)",
        )


@message_rule(
    "MOVE-RELATED-MISSING",
    Severity.INFO,
    "PS3.4 Table C.4-2, §C.4.2.1.6; PS3.7 Annex C.5.3, C.5.4, C.5.5",
    applies_to=MOVE_RSP,
    profiles=(STANDARD,),
    origin="[P4][P7]",
)
def move_related_missing(ctx: MessageContext) -> Iterator[Problem]:
    """C-MOVE response omits a related field that its Table C.4-2 row lists

    Table C.4-2 lists Error Comment (0000,0902) for A701 and A801, Offending
    Element (0000,0901) and Error Comment for A900 and Cxxx, and Number of
    Remaining Sub-operations for Cancel.  PS3.7 Annex C.5.3-C.5.5 call the
    first two "This optional field", and PS3.4 §C.4.2.1.6 says Canceled "may
    contain" Remaining, so their absence is legal: reported as info so that
    every gap between a response and its table row is visible (DCMTK's A801,
    for instance, carries no Error Comment).  The sub-operation counts of the
    other rows are reported by MOVE-PENDING-COUNTS, MOVE-CANCEL-COUNTS and
    MOVE-FINAL-COUNTS.  The ``ps3.2-tables`` profile has its own rule for the
    seed's related-field column.
    """
    status = ctx.status
    row = move_row(status) if status is not None else None
    if row is None:
        return
    wanted = row.related - _COUNTS_CHECKED_ELSEWHERE.get(status, NONE)  # type: ignore[arg-type]
    missing = [tag for tag in sorted(wanted) if not ctx.cmd.has(tag)]
    if missing:
        names = " ".join(tag_text(t) for t in missing)
        yield Problem(
            f"{_hex(status)} C-MOVE-RSP omits {names}, listed by {row.source}",
            observed="absent: " + names,
            expected=" ".join(tag_text(t) for t in sorted(row.related)),
        )


@message_rule(
    "MOVE-RELATED-NOT-LISTED",
    Severity.WARNING,
    "PS3.4 Table C.4-2, §C.4.2.1.5; PS3.7 §9.1.4.1.7, Annex C",
    applies_to=MOVE_RSP,
    origin="[SEED=P4][P7]",
)
def move_related_not_listed(ctx: MessageContext) -> Iterator[Problem]:
    """C-MOVE response carries a status field its status row does not list

    Offending Element (0000,0901), Error Comment (0000,0902) and Error ID
    (0000,0903) explain a status; which of them a status may carry is the
    Related Fields column of PS3.4 Table C.4-2 and, for the general codes that
    PS3.4 §C.4.2.1.5 leaves to PS3.7, the Annex C section the status type of
    PS3.7 §9.1.4.1.7 (a)-(l) points to (e.g. C.5.4 and C.5.5 carry only Error
    Comment; Error ID exists only in C.5.21, Processing Failure 0110, which is
    not a C-MOVE status).  A field neither lists is a warning.

    Graded: a field Table C.4-2 omits but the Annex C type of the status
    lists as optional (Error Comment with A702 or B000, Offending Element with
    B000: PS3.7 C.5.5, C.4.1) is reported as info, since the two parts of the
    standard disagree; the catalog's example counts Offending Element with
    B000 as a plain warning.  Sub-operation counts are not judged here: PS3.7
    §9.1.4.1.8-11 allow them in any response (Remaining in finals is
    MOVE-REMAINING-IN-FINAL).  The seed's status-field column equals Table
    C.4-2's, so the rule runs in both profiles.
    """
    status = ctx.status
    if status is None:
        return
    row, kind = move_row(status), move_status_type(status)
    if row is None and kind is None:
        return  # no table for this code: the MOVE-STATUS- rules report it
    typed = kind.status_type.fields if kind is not None else NONE
    listed = row.related if row is not None else typed
    source = row.source if row is not None else kind.status_type.section  # type: ignore[union-attr]
    for tag in sorted(STATUS_FIELDS):
        if not ctx.cmd.has(tag) or tag in listed:
            continue
        expected = " ".join(tag_text(t) for t in sorted(listed & STATUS_FIELDS)) or "none"
        if tag in typed:
            yield Problem(
                f"{_hex(status)} C-MOVE-RSP carries {tag_text(tag)}: not in {source}, "
                f"but optional in {kind.status_type.section}",  # type: ignore[union-attr]
                observed=f"{tag_text(tag)} present",
                expected=f"status fields in {source}: {expected}",
                severity=Severity.INFO,
            )
        else:
            yield Problem(
                f"{_hex(status)} C-MOVE-RSP carries {tag_text(tag)}, which {source} does not list",
                observed=f"{tag_text(tag)} present",
                expected=f"status fields in {source}: {expected}",
            )


@message_rule(
    "MOVE-PENDING-NO-DS",
    Severity.ERROR,
    "PS3.4 §C.4.2.1.4.2",
    applies_to=MOVE_RSP,
    origin="[P4]",
)
def move_pending_no_ds(ctx: MessageContext) -> Iterator[Problem]:
    """Pending C-MOVE response with a Data Set

    PS3.4 §C.4.2.1.4.2: the Identifier in a C-MOVE response with a status of
    "Pending shall not contain the Failed SOP Instance UID List Attribute (no
    Data Set)".  Failures are listed once, in the final response.
    """
    if ctx.status != PENDING:
        return
    if ctx.announces_data_set or ctx.has_data_set:
        yield Problem(
            "Pending (FF00) C-MOVE-RSP with a Data Set",
            observed=_data_set_text(ctx),
            expected="Command Data Set Type 0101H and no data set",
        )


@message_rule(
    "MOVE-SUCCESS-NO-DS",
    Severity.ERROR,
    "PS3.4 §C.4.2.1.4.2",
    applies_to=MOVE_RSP,
    origin="[P4]",
)
def move_success_no_ds(ctx: MessageContext) -> Iterator[Problem]:
    """Success C-MOVE response with a Data Set

    PS3.4 §C.4.2.1.4.2: "If no C-STORE sub-operation failed, Failed SOP
    Instance UID List (0008,0058) is absent and therefore no Data Set shall
    be sent in the C-MOVE response", and Success means no sub-operation failed.
    """
    if ctx.status != SUCCESS:
        return
    if ctx.announces_data_set or ctx.has_data_set:
        yield Problem(
            "Success (0000) C-MOVE-RSP with a Data Set",
            observed=_data_set_text(ctx),
            expected="Command Data Set Type 0101H and no data set",
        )


def _data_set_text(ctx: MessageContext) -> str:
    dst = ctx.cmd.us(0x0000_0800)
    parts = [f"Command Data Set Type {_hex(dst)}"]
    if ctx.has_data_set:
        parts.append(f"{ctx.obs.message.data_set_length} data set bytes")
    return ", ".join(parts)


@message_rule(
    "MOVE-FAILLIST-REQUIRED",
    Severity.ERROR,
    "PS3.4 §C.4.2.1.4.2",
    applies_to=MOVE_RSP,
    origin="[P4]",
)
def move_faillist_required(ctx: MessageContext) -> Iterator[Problem]:
    """Final C-MOVE response after failed sub-operations without the Failed SOP Instance UID List

    PS3.4 §C.4.2.1.4.2: "The Identifier in a C-MOVE response with a status
    of Canceled, Failure, Refused, or Warning shall contain the Failed SOP
    Instance UID List Attribute".  The same section also says the list is
    absent when nothing failed (rules.md D9), so this error is raised only
    when this response or the last Pending one counts failures (F > 0 or
    Fp > 0).  An identifier that could not be decoded is left to
    DIMSE-DS-DECODE.
    """
    if ctx.klass not in FAILLIST_STATUSES:
        return
    failed = ctx.counts[2]
    pending = _pending_counts(ctx)
    failed_before = pending[2] if pending is not None else None
    if not ((failed or 0) > 0 or (failed_before or 0) > 0):
        return
    identifier = _identifier(ctx)
    if identifier is _UNDECODED:
        return
    if identifier is None or FAILED_SOP_INSTANCE_UID_LIST not in identifier:
        yield Problem(
            f"{_hex(ctx.status)} C-MOVE-RSP after failed sub-operations lacks the Failed SOP "
            "Instance UID List",
            observed=("no data set" if identifier is None else "identifier without (0008,0058)")
            + f"; F={failed if failed is not None else 'absent'}"
            + (f", Fp={failed_before}" if failed_before is not None else ""),
            expected="identifier with (0008,0058)",
        )


@message_rule(
    "MOVE-FAILLIST-NOFAIL",
    Severity.INFO,
    "PS3.4 §C.4.2.1.4.2",
    applies_to=MOVE_RSP,
    origin="[P4]",
)
def move_faillist_nofail(ctx: MessageContext) -> Iterator[Problem]:
    """Warning, Failure or Cancel C-MOVE response with no failures and no Data Set

    PS3.4 §C.4.2.1.4.2 says both that a Canceled, Failure, Refused or Warning
    response "shall contain the Failed SOP Instance UID List" and that "If no
    C-STORE sub-operation failed, ... no Data Set shall be sent" (rules.md
    D9).  With F = 0 (or F absent and Fp = 0) the second sentence is
    followed and the first is not: legal either way, reported as info.  DCMTK
    takes this reading; pynetdicom sends an empty list (MOVE-FAILLIST-EMPTY).
    """
    if ctx.klass not in FAILLIST_STATUSES or ctx.has_data_set:
        return
    failed = ctx.counts[2]
    source = "F"
    if failed is None:
        pending = _pending_counts(ctx)
        failed, source = (pending[2] if pending is not None else None), "Fp"
    if failed == 0:
        yield Problem(
            f"{_hex(ctx.status)} C-MOVE-RSP with no failed sub-operations sends no Failed SOP "
            "Instance UID List",
            observed=f"{source}=0, no data set",
            expected="either reading of PS3.4 §C.4.2.1.4.2",
        )


@message_rule(
    "MOVE-FAILLIST-EMPTY",
    Severity.INFO,
    "PS3.4 §C.4.2.1.4.2",
    applies_to=MOVE_RSP,
    origin="[P4]",
)
def move_faillist_empty(ctx: MessageContext) -> Iterator[Problem]:
    """C-MOVE response identifier with an empty Failed SOP Instance UID List

    A zero-length (0008,0058) is the only way to obey both sentences of PS3.4
    §C.4.2.1.4.2 when nothing failed (rules.md D9): the list is "contained"
    yet names no instance.  pynetdicom does this on every Cancel, Failure and
    Warning response without failures.  Legal, reported as info.
    """
    element = _failed_list(ctx)
    if element is not None and not _list_values(element):
        yield Problem(
            f"{_hex(ctx.status)} C-MOVE-RSP carries a zero-length Failed SOP Instance UID List",
            observed="(0008,0058) empty",
        )


@message_rule(
    "MOVE-FAILLIST-VR",
    Severity.ERROR,
    "PS3.5 Table 6.2-1 (UI), §9.1; PS3.6 (0008,0058)",
    applies_to=MOVE_RSP,
    origin="[P5]",
)
def move_faillist_vr(ctx: MessageContext) -> Iterator[Problem]:
    """Failed SOP Instance UID List holds something other than UIDs

    (0008,0058) is UI, VM 1-n (PS3.6).  Each value is digits and periods, no
    component with a leading zero, at most 64 characters, and a value field
    of odd length is padded with one 00H (PS3.5 §9.1, Table 6.2-1).  An SCU
    that re-requests or reports the failed instances needs them verbatim.
    The padding is checked on the bytes as sent where the data set is kept
    uncompressed; otherwise only the decoded values are checked.
    """
    element = _failed_list(ctx)
    if element is None or not _list_values(element):
        return
    raw = _raw_value(ctx, element)
    problems = _uid_list_problems(raw) if raw is not None else _uid_problems(_list_values(element))
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; {len(problems) - 3} more" if len(problems) > 3 else ""
        )
        yield Problem(
            "Failed SOP Instance UID List (0008,0058) is not a valid UI value",
            observed=shown,
            expected="UIDs of digits and periods, ≤ 64 characters each, padded with 00H",
        )


@message_rule(
    "MOVE-ID-CHARSET",
    Severity.ERROR,
    "PS3.4 §C.4.2.1.4.2",
    applies_to=MOVE_RSP,
    origin="[P4]",
)
def move_id_charset(ctx: MessageContext) -> Iterator[Problem]:
    """C-MOVE response identifier contains Specific Character Set

    PS3.4 §C.4.2.1.4.2: in the C-MOVE response Identifier "Specific Character
    Set (0008,0005) shall not be present"; the list holds only UIDs, which
    are always in the default repertoire.
    """
    identifier = _identifier(ctx)
    if identifier is None or identifier is _UNDECODED:
        return
    if SPECIFIC_CHARACTER_SET in identifier:
        yield Problem(
            "C-MOVE-RSP identifier contains Specific Character Set (0008,0005)",
            observed=f"(0008,0005) = {identifier[SPECIFIC_CHARACTER_SET].value!r}"[:120],
            expected="no (0008,0005)",
        )


# Reported by their own rules: the character set (MOVE-ID-CHARSET) and status fields
# misplaced in the data set (RF-IN-DATASET).
_NOT_EXTRA = frozenset({FAILED_SOP_INSTANCE_UID_LIST, SPECIFIC_CHARACTER_SET} | STATUS_FIELDS)


@message_rule(
    "MOVE-ID-EXTRA",
    Severity.WARNING,
    "PS3.4 §C.4.2.1.4.2; PS3.7 §9.1.4.1.6",
    applies_to=MOVE_RSP,
    origin="[P4][P7]",
)
def move_id_extra(ctx: MessageContext) -> Iterator[Problem]:
    """C-MOVE response identifier carries attributes besides the Failed SOP Instance UID List

    PS3.7 §9.1.4.1.6 leaves "The list of Attributes allowed" in the response
    Identifier to PS3.4, and PS3.4 §C.4.2.1.4.2 defines only the Failed SOP
    Instance UID List (0008,0058).  Echoing the request keys, for instance,
    is outside the definition, and an SCU may take them for data.
    """
    identifier = _identifier(ctx)
    if identifier is None or identifier is _UNDECODED:
        return
    extra = [element for element in identifier if int(element.tag) not in _NOT_EXTRA]
    if extra:
        names = [element.keyword or tag_text(int(element.tag)) for element in extra[:5]] + (
            [f"{len(extra) - 5} more"] if len(extra) > 5 else []
        )
        yield Problem(
            f"C-MOVE-RSP identifier carries {len(extra)} attribute(s) besides (0008,0058)",
            observed=", ".join(names),
            expected="only Failed SOP Instance UID List (0008,0058)",
        )


# Early responses, per tracker (one per checker run): key (association, invoker is the
# requestor, Message ID) -> the response.  Bounded; entries leave when the request comes.
_EarlyResponses = OrderedDict[tuple[int, bool, int], "ObservedMessage"]
_EARLY: WeakKeyDictionary[OperationTracker, _EarlyResponses] = WeakKeyDictionary()
EARLY_KEEP = 256


@message_rule(
    "MOVE-EARLY-SUCCESS",
    Severity.ERROR,
    "PS3.7 §9.1.4.2",
    applies_to=(Command.C_MOVE_RSP, Command.C_MOVE_RQ),
    origin="[P7]",
)
def move_early_success(ctx: MessageContext) -> Iterator[Problem]:
    """Success or Warning C-MOVE response sent before the whole C-MOVE request arrived

    PS3.7 §9.1.4.2: "A C-MOVE response primitive with the status of Success
    or Warning shall not be returned until the entire C-MOVE indication has
    been received"; only Failed or Refused may come early.  Messages reach
    the rules when their last fragment arrives, so such a response is seen
    before its request and matches no operation: it is remembered, and the
    finding is made when a C-MOVE-RQ with that Message ID arrives whose first
    fragment preceded the response and whose last fragment followed it.  A
    response to no request at all (capture started mid-operation) never
    finds such a request and is not reported here.
    """
    early = _EARLY.setdefault(ctx.tracker, OrderedDict())
    assoc_id = ctx.assoc.id
    if ctx.command_field == Command.C_MOVE_RSP:
        target = ctx.cmd.us(MESSAGE_ID_BEING_RESPONDED_TO)
        if ctx.status in (SUCCESS, WARNING_B000) and ctx.op is None and target is not None:
            early[(assoc_id, not ctx.obs.from_requestor, target)] = ctx.obs
            while len(early) > EARLY_KEEP:
                early.popitem(last=False)
        return
    message_id = ctx.cmd.us(MESSAGE_ID)
    if message_id is None:
        return
    response = early.pop((assoc_id, ctx.obs.from_requestor, message_id), None)
    if response is None:
        return
    request, answer = ctx.obs.message, response.message
    if request.first_frame < answer.first_frame and answer.last_frame < request.last_frame:
        yield Problem(
            f"{_hex(answer.command.status)} C-MOVE-RSP (frame {answer.first_frame}) came before "
            f"the last fragment of its C-MOVE-RQ (frame {request.last_frame})",
            observed=f"C-MOVE-RQ frames {request.first_frame}-{request.last_frame}, "
            f"response frames {answer.first_frame}-{answer.last_frame}",
            expected="Success or Warning only after the whole request",
            frames=(answer.first_frame, answer.last_frame, request.last_frame),
        )


# -- §4.2 sub-operation arithmetic -------------------------------------------------------


@message_rule(
    "MOVE-SUCCESS-CLEAN",
    Severity.ERROR,
    "PS3.4 §C.4.2.3.1, §C.4.2.2.1, Table C.4-2",
    applies_to=MOVE_RSP,
    origin="[SEED=P4]",
)
def move_success_clean(ctx: MessageContext) -> Iterator[Problem]:
    """Success C-MOVE response counts failed or warning sub-operations

    PS3.4 §C.4.2.3.1: the status shall contain "Success if all sub-operations
    were successfully completed"; Table C.4-2 and the seed: "Sub-operations
    Complete - No Failures".  With F > 0 or W > 0 the status must be Warning
    (B000) or Failure; an SCU that trusts Success loses the failures.
    """
    if ctx.status != SUCCESS:
        return
    _, _, failed, warned = ctx.counts
    if (failed or 0) > 0 or (warned or 0) > 0:
        yield Problem(
            "Success (0000) C-MOVE-RSP reports failed or warning sub-operations",
            observed=_show(ctx.counts),
            expected="F=0 W=0, or status B000 / Failure",
        )


@message_rule(
    "MOVE-SUCCESS-AFTER-FAIL",
    Severity.ERROR,
    "PS3.4 §C.4.2.3.1, §C.4.2.1.8-9",
    applies_to=MOVE_RSP,
    origin="[P4][DERIVED]",
)
def move_success_after_fail(ctx: MessageContext) -> Iterator[Problem]:
    """Success C-MOVE response after Pending responses that counted failures or warnings

    The counts are cumulative (PS3.4 §C.4.2.1.8-9: the number of
    sub-operations "that have Failed" / "that had a status of warning"), so
    once a Pending response reports Fp > 0 or Wp > 0 the move can no longer
    end in Success (§C.4.2.3.1).  Also raised when the final response leaves
    F and W out; when the final response itself shows F > 0 or W > 0,
    MOVE-SUCCESS-CLEAN reports it instead.
    """
    if ctx.status != SUCCESS:
        return
    _, _, failed, warned = ctx.counts
    if (failed or 0) > 0 or (warned or 0) > 0:
        return
    pending = _pending_counts(ctx)
    if pending is None:
        return
    if (pending[2] or 0) > 0 or (pending[3] or 0) > 0:
        yield Problem(
            "Success (0000) C-MOVE-RSP after Pending responses counted failures or warnings",
            observed=f"last Pending {_show(pending)}; final {_show(ctx.counts)}",
            expected="status B000 (or Failure)",
        )


@message_rule(
    "MOVE-B000-NEEDS-FW",
    Severity.ERROR,
    "PS3.4 §C.4.2.3.1, Table C.4-2; PS3.2 Tables N.7-49, N.7-51",
    applies_to=MOVE_RSP,
    origin="[SEED=P4]",
)
def move_b000_needs_fw(ctx: MessageContext) -> Iterator[Problem]:
    """Warning (B000) C-MOVE response without any failed or warning sub-operation

    PS3.4 §C.4.2.3.1: Warning when "one or more sub-operations were
    unsuccessful or had a warning status" or "all sub-operations had a
    warning status"; with F = W = 0 the status must be Success.  B000 with
    F = 0 and W > 0 is valid (rules.md D6).  When the response leaves F and
    W out, the counts of the last Pending response stand in for them, but only
    if that Pending said nothing remained (Rp = 0): otherwise a later
    sub-operation may have failed, and the rule reports info (as it does when
    no counts are known at all).
    """
    if ctx.status != WARNING_B000:
        return
    _, _, failed, warned = ctx.counts
    observed = _show(ctx.counts)
    pending = _pending_counts(ctx)
    if (failed is None or warned is None) and pending is not None and pending[0] == 0:
        failed = failed if failed is not None else pending[2]
        warned = warned if warned is not None else pending[3]
        observed += f"; last Pending {_show(pending)}"
    if (failed or 0) > 0 or (warned or 0) > 0:
        return
    if failed == 0 and warned == 0:
        yield Problem(
            "Warning (B000) C-MOVE-RSP although no sub-operation failed or had a warning",
            observed=observed,
            expected="F > 0 or W > 0 (else status 0000)",
        )
        return
    yield Problem(
        "Warning (B000) C-MOVE-RSP whose counts cannot show a failed or warning sub-operation",
        observed=observed,
        expected="F > 0 or W > 0",
        severity=Severity.INFO,
    )


@message_rule(
    "MOVE-B000-ALL-FAILED",
    Severity.ERROR,
    "PS3.4 §C.4.2.3.1",
    applies_to=MOVE_RSP,
    origin="[P4]",
)
def move_b000_all_failed(ctx: MessageContext) -> Iterator[Problem]:
    """Warning (B000) C-MOVE response although every sub-operation failed

    PS3.4 §C.4.2.3.1: the status shall be "Failure or Refused if all
    sub-operations were unsuccessful".  With F > 0, C = 0 and W = 0 nothing
    was delivered, and B000 would tell the SCU part of the move worked.
    DCMTK (``dcmqrcbm.cc``) and pynetdicom (``_move_scp``) send A702 here.
    """
    if ctx.status != WARNING_B000:
        return
    _, completed, failed, warned = ctx.counts
    if completed == 0 and warned == 0 and failed is not None and failed > 0:
        yield Problem(
            "Warning (B000) C-MOVE-RSP although every sub-operation failed",
            observed=_show(ctx.counts),
            expected="a Failure status such as A702",
        )


@message_rule(
    "MOVE-B000-MIXED-NO-COMPLETED",
    Severity.INFO,
    "PS3.4 §C.4.2.3.1, §Y.4.1.2.1",
    applies_to=MOVE_RSP,
    origin="[P4]",
)
def move_b000_mixed_no_completed(ctx: MessageContext) -> Iterator[Problem]:
    """Warning (B000) C-MOVE response with failures and warnings but nothing completed

    PS3.4 §C.4.2.3.1 names Warning for "one or more ... successfully
    completed and one or more ... unsuccessful or had a warning status" and
    for "all ... had a warning status", Failure for "all ... unsuccessful";
    C = 0 with F > 0 and W > 0 is none of these.  §Y.4.1.2.1 ("Warning in all
    other cases") supports B000, so this is info.
    """
    if ctx.status != WARNING_B000:
        return
    _, completed, failed, warned = ctx.counts
    if completed == 0 and (failed or 0) > 0 and (warned or 0) > 0:
        yield Problem(
            "Warning (B000) C-MOVE-RSP with failed and warning sub-operations, none completed",
            observed=_show(ctx.counts),
        )


@message_rule(
    "MOVE-FAILURE-WITH-COMPLETED",
    Severity.INFO,
    "PS3.7 §9.1.4.1.7 (c); PS3.4 §C.4.2.3.1",
    applies_to=MOVE_RSP,
    origin="[P7]",
)
def move_failure_with_completed(ctx: MessageContext) -> Iterator[Problem]:
    """Failure C-MOVE response after some sub-operations completed

    PS3.4 §C.4.2.3.1 reserves Failure or Refused for "all sub-operations were
    unsuccessful", yet PS3.7 §9.1.4.1.7 (c) lets Refused: Out of resources
    "be sent after a number of Pending statuses", i.e. after some instances
    were delivered.  Reported as info so the partial delivery is visible.
    """
    if ctx.klass is StatusClass.FAILURE and (ctx.counts[1] or 0) > 0:
        yield Problem(
            f"Failure ({_hex(ctx.status)}) C-MOVE-RSP after {ctx.counts[1]} sub-operations "
            "completed",
            observed=_show(ctx.counts),
        )


@message_rule(
    "MOVE-COUNTS-MONOTONIC",
    Severity.ERROR,
    "PS3.4 §C.4.2.1.6-9; PS3.7 §9.1.4.1.8-11",
    applies_to=MOVE_RSP,
    origin="[DERIVED][P4][P7]",
)
def move_counts_monotonic(ctx: MessageContext) -> Iterator[Problem]:
    """C-MOVE sub-operation counts go backwards between responses

    Completed, Failed and Warning count sub-operations "that have completed
    successfully" / "that have Failed" / "that had a status of warning"
    (PS3.4 §C.4.2.1.7-9, PS3.7 §9.1.4.1.9-11): a sub-operation, once counted,
    stays counted, so these never decrease; Remaining (§C.4.2.1.6, "necessary
    to complete") never increases.  Compared with the previous response of the
    same operation that carried counts, element by element where both have it.
    """
    op = _history(ctx)
    if op is None or op.last_counts is None:
        return
    before, now = op.last_counts, ctx.counts
    changes = []
    for index, (name, old, new) in enumerate(zip(COUNT_NAMES, before, now, strict=True)):
        if old is None or new is None:
            continue
        if (index == 0 and new > old) or (index > 0 and new < old):
            changes.append(f"{name} {old}→{new}")
    if changes:
        yield Problem(
            f"C-MOVE-RSP counts go backwards: {', '.join(changes)}",
            observed=f"previous {_show(before)}; this {_show(now)}",
            expected="Completed, Failed, Warning never decrease; Remaining never increases",
        )


@message_rule(
    "MOVE-TOTAL-CONSTANT",
    Severity.WARNING,
    "PS3.4 §C.4.2.1.6",
    applies_to=MOVE_RSP,
    origin="[DERIVED]",
)
def move_total_constant(ctx: MessageContext) -> Iterator[Problem]:
    """Total of the four counts changes between Pending C-MOVE responses

    Remaining is the number of sub-operations "necessary to complete the
    C-MOVE operation" (PS3.4 §C.4.2.1.6); every sub-operation moves from
    Remaining to exactly one of Completed, Failed or Warning, so R+C+F+W
    stays the same.  A drifting total makes an SCU's progress display wrong;
    Orthanc issue #128 was such a bug.  Compared with the previous complete
    Pending response (else the first one, T).
    """
    if ctx.status != PENDING or any(c is None for c in ctx.counts):
        return
    op = _history(ctx)
    if op is None:
        return
    last = op.last_pending_counts
    if last is not None and all(c is not None for c in last):
        reference, what = sum(last), "the previous Pending"  # type: ignore[arg-type]
    elif op.total is not None:
        reference, what = op.total, "the first Pending"
    else:
        return
    total = sum(ctx.counts)  # type: ignore[arg-type]
    if total != reference:
        yield Problem(
            f"Pending C-MOVE-RSP counts add up to {total}, {what} to {reference}",
            observed=_show(ctx.counts),
            expected=f"R+C+F+W = {reference}",
        )


def _stopped_early(ctx: MessageContext, done: int, total: int) -> bool:
    """The MOVE-FINAL-BEFORE-ZERO case: the last Pending still had work left."""
    pending = _pending_counts(ctx)
    return pending is not None and (pending[0] or 0) > 0 and done < total


@message_rule(
    "MOVE-FINAL-TOTAL",
    Severity.WARNING,
    "PS3.4 §C.4.2.3.1, §C.4.2.2.1",
    applies_to=MOVE_RSP,
    origin="[DERIVED][P4]",
)
def move_final_total(ctx: MessageContext) -> Iterator[Problem]:
    """Final C-MOVE counts do not add up to the total the Pending responses announced

    PS3.4 §C.4.2.3.1: the final Success or Warning comes "When the number of
    Remaining sub-operations reaches zero", so C+F+W of the final response
    equals T, the R+C+F+W of the Pending responses.  A Cancel carrying
    Remaining counts the sub-operations "not initiated", so R+C+F+W = T there.
    A Success or Warning with C+F+W < T while the last Pending still had
    work left is MOVE-FINAL-BEFORE-ZERO, not reported here.
    """
    total = _total(ctx)
    remaining, completed, failed, warned = ctx.counts
    if total is None or completed is None or failed is None or warned is None:
        return
    done = completed + failed + warned
    if ctx.status in (SUCCESS, WARNING_B000):
        if done != total and not _stopped_early(ctx, done, total):
            yield Problem(
                f"final {_hex(ctx.status)} C-MOVE-RSP counts C+F+W = {done}, the Pending "
                f"responses announced {total}",
                observed=_show(ctx.counts),
                expected=f"C+F+W = {total}",
            )
    elif ctx.status == CANCEL and remaining is not None and remaining + done != total:
        yield Problem(
            f"Cancel C-MOVE-RSP counts R+C+F+W = {remaining + done}, the Pending responses "
            f"announced {total}",
            observed=_show(ctx.counts),
            expected=f"R+C+F+W = {total}",
        )


@message_rule(
    "MOVE-FINAL-BEFORE-ZERO",
    Severity.WARNING,
    "PS3.4 §C.4.2.3.1",
    applies_to=MOVE_RSP,
    origin="[P4]",
)
def move_final_before_zero(ctx: MessageContext) -> Iterator[Problem]:
    """Success or Warning C-MOVE response while sub-operations were still remaining

    PS3.4 §C.4.2.3.1: "When the number of Remaining sub-operations reaches
    zero, the SCP shall generate a final response with a status equal to
    Success, Warning, ...".  The last Pending said Rp > 0 and the final
    counts account for fewer than the total T: some sub-operations were
    neither performed nor reported, yet the status claims completion.
    """
    if ctx.status not in (SUCCESS, WARNING_B000):
        return
    total = _total(ctx)
    _, completed, failed, warned = ctx.counts
    if total is None or completed is None or failed is None or warned is None:
        return
    done = completed + failed + warned
    if _stopped_early(ctx, done, total):
        pending = _pending_counts(ctx)
        yield Problem(
            f"final {_hex(ctx.status)} C-MOVE-RSP accounts for {done} of {total} sub-operations",
            observed=f"last Pending {_show(pending)}; final {_show(ctx.counts)}",  # type: ignore[arg-type]
            expected=f"C+F+W = {total} (Remaining reached zero)",
        )


@message_rule(
    "MOVE-FAILLIST-COUNT",
    Severity.WARNING,
    "PS3.4 §C.4.2.1.4.2, §C.4.2.1.8",
    applies_to=MOVE_RSP,
    origin="[DERIVED]",
)
def move_faillist_count(ctx: MessageContext) -> Iterator[Problem]:
    """Failed SOP Instance UID List and Number of Failed Sub-operations disagree

    The list names the instances "for which this C-MOVE operation has failed"
    (PS3.4 §C.4.2.1.4.2) and F counts the sub-operations "that have Failed"
    (§C.4.2.1.8): more UIDs than F is a warning.  Fewer UIDs than F has a
    known benign cause: pynetdicom adds the sub-operations never started to
    F in Failure and Warning responses (``_move_scp``), and those have no
    attempted instance to name.  So a shortfall no larger than the
    sub-operations not yet performed at the last Pending (T - Cp - Fp - Wp),
    or with no Pending to tell, is info; a larger one is a warning.
    """
    element = _failed_list(ctx)
    failed = ctx.counts[2]
    if element is None or failed is None:
        return
    listed = len(_list_values(element))
    if listed == failed:
        return
    observed = f"{listed} UID(s) listed, F={failed}"
    if listed > failed:
        yield Problem(
            f"Failed SOP Instance UID List names {listed} instance(s), F is {failed}",
            observed=observed,
            expected=f"{failed} UID(s)",
        )
        return
    unstarted = _unstarted(ctx)
    within = unstarted is None or failed - listed <= unstarted
    yield Problem(
        f"Failed SOP Instance UID List names {listed} instance(s), F is {failed}",
        observed=observed
        + (f"; {unstarted} not yet performed at the last Pending" if unstarted is not None else ""),
        expected=f"{failed} UID(s)",
        severity=Severity.INFO if within else None,
    )


def _unstarted(ctx: MessageContext) -> int | None:
    """T - Cp - Fp - Wp: sub-operations not performed by the last Pending, when known."""
    total, pending = _total(ctx), _pending_counts(ctx)
    if total is None or pending is None or any(c is None for c in pending[1:]):
        return None
    return total - sum(pending[1:])  # type: ignore[arg-type]


@message_rule(
    "MOVE-COUNT-RANGE",
    Severity.ERROR,
    "PS3.7 Table 9.3-10; PS3.5 Table 6.2-1 (US)",
    applies_to=MOVE_RSP,
    origin="[P5][P7]",
)
def move_count_range(ctx: MessageContext) -> Iterator[Problem]:
    """C-MOVE sub-operation count is not a 2-byte US value

    PS3.7 Table 9.3-10 gives (0000,1020)-(0000,1023) VR US, VM 1; PS3.5
    Table 6.2-1 fixes US at 2 bytes, so the counts run 0-65535.  A count of
    any other length cannot be read, and the arithmetic rules skip it.
    """
    for name, tag in zip(COUNT_NAMES, COUNT_TAGS, strict=True):
        raw = ctx.cmd.raw.get(tag)
        if raw is not None and len(raw) != 2:
            yield Problem(
                f"Number of {name} Sub-operations {tag_text(tag)} has {len(raw)} bytes",
                observed=f"VL={len(raw)}",
                expected="VL=2 (US)",
            )


RULES = (
    move_pending_counts,
    move_remaining_in_final,
    move_cancel_remaining,
    move_cancel_counts,
    move_final_counts,
    move_related_missing,
    move_related_not_listed,
    move_pending_no_ds,
    move_success_no_ds,
    move_faillist_required,
    move_faillist_nofail,
    move_faillist_empty,
    move_faillist_vr,
    move_id_charset,
    move_id_extra,
    move_early_success,
    move_success_clean,
    move_success_after_fail,
    move_b000_needs_fw,
    move_b000_all_failed,
    move_b000_mixed_no_completed,
    move_failure_with_completed,
    move_counts_monotonic,
    move_total_constant,
    move_final_total,
    move_final_before_zero,
    move_faillist_count,
    move_count_range,
)
__all__ = ["RULES"]
