"""Status-related fields: how they are encoded and where they live (rules.md §5).

PS3.7 Annex C defines the status fields once for every DIMSE service:
Offending Element (0000,0901) AT 1-n, Error Comment (0000,0902) LO 1, Error
ID (0000,0903) US 1.  The encoding rules below therefore apply to every
response type (C-STORE, C-GET, C-FIND, C-MOVE, C-ECHO and the N- services),
not just to the Query/Retrieve responses the catalog starts from.  Two rules
need an Identifier, which dimsesniff keeps only for C-FIND, C-MOVE and C-GET
(``dissectors.dimse_assembly.KEEP_DATA_SET``): RF-OFFELEM-TAG and
RF-IN-DATASET apply to those three responses.

DIMSE-VR-LEN checks the VR of every command element in general; these rules
say what is wrong with a status field in the terms of PS3.7 Annex C.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dissectors.dimse import (
    ERROR_COMMENT,
    ERROR_ID,
    OFFENDING_ELEMENT,
    Command,
    command_name,
    is_response,
    tag_text,
)

from ..standard.move_tables import STATUS_FIELDS
from .base import Problem, Severity, message_rule

if TYPE_CHECKING:
    from ..checks import MessageContext

# Every response Command Field of PS3.7 Annex E: Annex C status fields are general.
RESPONSES = tuple(command for command in Command if is_response(command))
# The responses whose data sets (and whose requests' Identifiers) are kept.
QR_RESPONSES = (Command.C_FIND_RSP, Command.C_MOVE_RSP, Command.C_GET_RSP)

LO_MAX = 64  # PS3.5 Table 6.2-1: LO, 64 characters maximum
BACKSLASH = 0x5C
SPACE, DEL = 0x20, 0x7F


def _printable(raw: bytes, limit: int = 80) -> str:
    """The value for a report: printable ASCII kept, other bytes as \\xNN."""
    text = "".join(chr(b) if SPACE <= b < DEL else f"\\x{b:02X}" for b in raw[:limit])
    return text + ("…" if len(raw) > limit else "")


def _where(ctx: MessageContext) -> str:
    status = ctx.status
    return (
        f"{command_name(ctx.command_field)} ({'no status' if status is None else f'{status:04X}'})"
    )


@message_rule(
    "RF-ERRCOMMENT-LEN",
    Severity.ERROR,
    "PS3.7 Annex C (Error Comment LO 1), Annex E; PS3.5 Table 6.2-1 (LO)",
    applies_to=RESPONSES,
    origin="[P7][P5]",
)
def rf_errcomment_len(ctx: MessageContext) -> Iterator[Problem]:
    """Error Comment longer than 64 characters

    Every PS3.7 Annex C table gives Error Comment (0000,0902) VR LO, VM 1,
    and PS3.5 Table 6.2-1 limits LO to 64 characters; trailing padding
    spaces do not count.  Receivers may truncate or reject longer values, so
    the explanation of a failure gets lost.  Applies to every response type.
    """
    raw = ctx.cmd.raw.get(ERROR_COMMENT)
    if raw is None:
        return
    length = len(raw.rstrip(b" "))
    if length > LO_MAX:
        yield Problem(
            f"{_where(ctx)}: Error Comment is {length} characters long",
            observed=_printable(raw),
            expected=f"at most {LO_MAX} characters (LO)",
        )


@message_rule(
    "RF-ERRCOMMENT-CHARS",
    Severity.ERROR,
    "PS3.7 Annex C.5.21 note (2024e); PS3.5 Table 6.2-1 (LO)",
    applies_to=RESPONSES,
    origin="[P7][P5]",
)
def rf_errcomment_chars(ctx: MessageContext) -> Iterator[Problem]:
    """Error Comment uses characters outside the Default Character Repertoire

    A command set has no Specific Character Set, and PS3.7 C.5.21 (2024e)
    notes for Error Comment: "Only characters from the Default Character
    Repertoire may be used".  So bytes above 7EH, control characters (ESC
    included: without a character set there is no escape sequence to start)
    and, because LO is single-valued text, the value separator 5CH "\\"
    (PS3.5 Table 6.2-1) are all errors.  A trailing 00H used as padding is a
    control character too (LO is padded with a space).  Every response type.
    """
    raw = ctx.cmd.raw.get(ERROR_COMMENT)
    if raw is None:
        return
    bad = sorted({b for b in raw if b < SPACE or b > 0x7E or b == BACKSLASH})
    if bad:
        yield Problem(
            f"{_where(ctx)}: Error Comment contains "
            + ", ".join(f"{b:02X}H" for b in bad[:8])
            + (" …" if len(bad) > 8 else ""),
            observed=_printable(raw),
            expected="20H-7EH except 5CH (Default Character Repertoire, LO)",
        )


@message_rule(
    "RF-OFFELEM-ENC",
    Severity.ERROR,
    "PS3.7 Annex C (Offending Element AT 1-n); PS3.5 Table 6.2-1 (AT)",
    applies_to=RESPONSES,
    origin="[P7][P5]",
)
def rf_offelem_enc(ctx: MessageContext) -> Iterator[Problem]:
    """Offending Element is empty or not a whole number of tags

    Offending Element (0000,0901) is AT, VM 1-n (PS3.7 Annex C): at least
    one tag, each 4 bytes (PS3.5 Table 6.2-1), so the value length is a
    non-zero multiple of 4.  Otherwise the SCU cannot tell which element was
    at fault.  Every response type.
    """
    raw = ctx.cmd.raw.get(OFFENDING_ELEMENT)
    if raw is None:
        return
    if not raw or len(raw) % 4:
        yield Problem(
            f"{_where(ctx)}: Offending Element has {len(raw)} byte(s)",
            observed=f"VL={len(raw)}" + (f": {raw[:16].hex(' ')}" if raw else ""),
            expected="VL a non-zero multiple of 4 (AT, VM 1-n)",
        )


def _request_tags(ctx: MessageContext) -> set[int] | None:
    """Every tag of the request Identifier, nested items included; None when unknown."""
    op = ctx.op
    identifier: Any = op.request.identifier if op is not None else None
    if identifier is None:
        return None
    return {int(element.tag) for element in identifier.iterall()}


@message_rule(
    "RF-OFFELEM-TAG",
    Severity.INFO,
    "PS3.7 Annex C (Offending Element), Annex E",
    applies_to=QR_RESPONSES,
    origin="[P7]",
)
def rf_offelem_tag(ctx: MessageContext) -> Iterator[Problem]:
    """Offending Element names a tag the request did not carry

    Offending Element is "a list of the elements in which the error was
    detected" (PS3.7 Annex C, Annex E), so it normally names attributes of
    the request Identifier, or command elements of the request (e.g. Move
    Destination (0000,0600) with A801).  A tag in neither may still be right
    (a missing required key such as Query/Retrieve Level is an error "in"
    an element the request lacks), hence info.  Applies to C-FIND, C-MOVE
    and C-GET responses, whose requests' Identifiers are kept.
    """
    offending = ctx.cmd.tags(OFFENDING_ELEMENT)
    known = _request_tags(ctx)
    if not offending or known is None:
        return
    request = ctx.op.request.message.command  # type: ignore[union-attr]
    foreign = [
        tag for tag in offending if tag not in known and not (tag >> 16 == 0 and request.has(tag))
    ]
    if foreign:
        yield Problem(
            f"{_where(ctx)}: Offending Element names "
            + " ".join(tag_text(t) for t in foreign[:6])
            + (" …" if len(foreign) > 6 else "")
            + ", not in the request",
            observed=" ".join(tag_text(t) for t in offending[:12]),
            expected="tags of the request Identifier or command set",
        )


@message_rule(
    "RF-ERRID-ENC",
    Severity.ERROR,
    "PS3.7 Annex C.5.21 (Error ID US 1), Annex E; PS3.5 Table 6.2-1 (US)",
    applies_to=RESPONSES,
    origin="[P7][P5]",
)
def rf_errid_enc(ctx: MessageContext) -> Iterator[Problem]:
    """Error ID is not a 2-byte US value

    Error ID (0000,0903) is US, VM 1 (PS3.7 C.5.21, Annex E), and US is 2
    bytes (PS3.5 Table 6.2-1).  Any other length leaves the
    application-specific error code unreadable.  Every response type.
    """
    raw = ctx.cmd.raw.get(ERROR_ID)
    if raw is not None and len(raw) != 2:
        yield Problem(
            f"{_where(ctx)}: Error ID has {len(raw)} byte(s)",
            observed=f"VL={len(raw)}: {raw[:16].hex(' ')}",
            expected="VL=2 (US, VM 1)",
        )


@message_rule(
    "RF-IN-DATASET",
    Severity.ERROR,
    "PS3.7 §6.3, Annex C; PS3.4 §C.4.1.1.3 note",
    applies_to=QR_RESPONSES,
    origin="[P7]",
)
def rf_in_dataset(ctx: MessageContext) -> Iterator[Problem]:
    """Status field sent in the data set instead of the command set

    Offending Element, Error Comment and Error ID are command elements,
    group 0000 (PS3.7 §6.3, Annex C); PS3.4 §C.4.1.1.3 notes that "The
    definition of a Data Set in PS3.5 specifically excludes the range of
    groups below group 0008".  A receiver looks for them in the command set
    only, so the explanation is lost.  Applies to C-FIND, C-MOVE and C-GET
    responses, whose data sets are kept.
    """
    identifier: Any = ctx.obs.identifier
    if identifier is None:
        return
    misplaced = [tag for tag in sorted(STATUS_FIELDS) if tag in identifier]
    if misplaced:
        names = " ".join(tag_text(t) for t in misplaced)
        yield Problem(
            f"{_where(ctx)}: {names} in the data set",
            observed=f"data set carries {names}",
            expected="status fields in the command set (group 0000)",
        )


RULES = (
    rf_errcomment_len,
    rf_errcomment_chars,
    rf_offelem_enc,
    rf_offelem_tag,
    rf_errid_enc,
    rf_in_dataset,
)
__all__ = ["RULES"]
