"""Cross-association rules tying a C-MOVE to its C-STORE sub-operations

(rules.md §10), PS3.4 §C.4.2.

A C-MOVE SCP performs its sub-operations as C-STORE-RQs on another
association, to the Move Destination.  The optional Move Originator AE
Title / Message ID (0000,1030) / (0000,1031) (PS3.7 §9.1.1.1.6-7) name the
C-MOVE; the tracker uses them to link each C-STORE to its C-MOVE and to
tally the C-STORE-RSP statuses (``Operation.stores``, ``store_results``,
``store_failed_uids``).  Every check here needs the storage association in
the capture: with no linked C-STORE the rules stay silent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dissectors.dimse import (
    MOVE_ORIGINATOR_AE_TITLE,
    MOVE_ORIGINATOR_MESSAGE_ID,
    PRIORITY,
    Command,
)

from ..standard.status import StatusClass
from .base import Problem, Severity, message_rule

if TYPE_CHECKING:
    from ..checks import MessageContext
    from ..operations import Operation

STORE_RQ = (Command.C_STORE_RQ,)
MOVE_RSP = (Command.C_MOVE_RSP,)
SUCCESS = 0x0000
FAILED_SOP_INSTANCE_UID_LIST = "FailedSOPInstanceUIDList"  # (0008,0058)
COUNT_NAMES = ("Completed", "Failed", "Warning")


def move_text(move: Operation) -> str:
    return f"C-MOVE Message ID {move.message_id} (frame {move.request.message.first_frame})"


def same_association_move(ctx: MessageContext) -> Operation | None:
    """The outstanding C-MOVE of this association that a C-STORE-RQ names as its originator."""
    originator_id = ctx.cmd.us(MOVE_ORIGINATOR_MESSAGE_ID)
    if originator_id is None:
        return None
    move = ctx.lookup.move
    if move is not None and move.association is ctx.assoc:
        return move
    op = ctx.tracker.open_operation(ctx.assoc, not ctx.obs.from_requestor, originator_id)
    if op is not None and op.command_field == Command.C_MOVE_RQ:
        return op
    return None


@message_rule(
    "XA-SAME-ASSOC",
    Severity.ERROR,
    "PS3.4 §C.4.2",
    applies_to=STORE_RQ,
    origin="[P4]",
)
def same_association(ctx: MessageContext) -> Iterator[Problem]:
    """C-STORE sub-operation sent on the association of its own C-MOVE

    PS3.4 §C.4.2: "The C-STORE sub-operations shall always be accomplished
    over an Association different from the Association that accomplishes
    the C-MOVE operation" (retrieving over the same association is C-GET).
    The C-MOVE SCU, an SCU on that association, is not expecting C-STORE
    requests there.
    """
    move = same_association_move(ctx)
    if move is None:
        return
    yield Problem(
        f"C-STORE-RQ for {move_text(move)} on the C-MOVE's own association",
        observed="same association",
        expected="a separate association to the Move Destination",
    )


@message_rule(
    "XA-PRIORITY",
    Severity.WARNING,
    "PS3.4 §C.4.2.1.2; PS3.7 §9.1.4.1.4",
    applies_to=STORE_RQ,
    origin="[P4][P7]",
)
def sub_operation_priority(ctx: MessageContext) -> Iterator[Problem]:
    """C-STORE sub-operation priority differs from its C-MOVE's

    PS3.4 §C.4.2.1.2: "The same priority shall be used for all C-STORE
    sub-operations" as the C-MOVE's.  Checked on C-STORE-RQs that name their
    C-MOVE through the Move Originator fields (PS3.7 §9.1.4.1.4).
    """
    move = ctx.lookup.move
    if move is None:
        return
    asked = move.request.message.command.us(PRIORITY)
    used = ctx.cmd.us(PRIORITY)
    if asked is not None and used is not None and asked != used:
        yield Problem(
            f"C-STORE-RQ priority {used:04X}H, its {move_text(move)} asked {asked:04X}H",
            observed=f"{used:04X}H",
            expected=f"{asked:04X}H",
        )


@message_rule(
    "XA-ORIGINATOR",
    Severity.INFO,
    "PS3.7 Table 9.1-1 (U), §9.1.1.1.6-7",
    applies_to=STORE_RQ,
    origin="[P7]",
)
def originator_fields(ctx: MessageContext) -> Iterator[Problem]:
    """C-STORE sub-operation without Move Originator fields

    Move Originator AE Title / Message ID are optional (U) in a C-STORE-RQ
    (PS3.7 Table 9.1-1), but only they tie a sub-operation to its C-MOVE;
    without them the destination cannot report progress per retrieve, nor
    can dimsesniff check counts and priority.  Correlated here by route
    instead: a storage association from the AE a C-MOVE was asked of (its
    called AE title) to that C-MOVE's Move Destination, while it is
    outstanding.
    """
    if ctx.cmd.has(MOVE_ORIGINATOR_AE_TITLE) and ctx.cmd.has(MOVE_ORIGINATOR_MESSAGE_ID):
        return
    assoc = ctx.assoc
    if assoc.called_ae is None or assoc.calling_ae is None:
        return
    moves = ctx.tracker.moves_to(assoc.called_ae, assoc.calling_ae)
    if not moves:
        return
    missing = [
        name
        for tag, name in (
            (MOVE_ORIGINATOR_AE_TITLE, "(0000,1030)"),
            (MOVE_ORIGINATOR_MESSAGE_ID, "(0000,1031)"),
        )
        if not ctx.cmd.has(tag)
    ]
    yield Problem(
        f"C-STORE-RQ from {assoc.calling_ae} to {assoc.called_ae}, probably for "
        f"{move_text(moves[0])}, without Move Originator {' '.join(missing)}",
        observed="absent: " + " ".join(missing),
        expected="(0000,1030) and (0000,1031)",
    )


def store_tally(move: Operation) -> tuple[int, int, int] | None:
    """(Completed, Failed, Warning) seen as C-STORE-RSP statuses; None while some are unanswered.

    PS3.4 §C.4.2.1.7-9: Completed counts sub-operations that succeeded,
    Warning those with a Warning status, Failed the rest.
    """
    results = move.store_results
    if move.stores == 0 or sum(results.values()) < move.stores:
        return None
    completed = results.get(StatusClass.SUCCESS.value, 0)
    warning = results.get(StatusClass.WARNING.value, 0)
    return completed, sum(results.values()) - completed - warning, warning


def move_final(ctx: MessageContext) -> tuple[Operation, tuple[int, int, int]] | None:
    """The C-MOVE this final response completes and its C-STORE tally, if all were answered."""
    op = ctx.lookup.op
    if op is None or ctx.lookup.after_final or not ctx.final:
        return None
    if op.command_field != Command.C_MOVE_RQ:
        return None
    seen = store_tally(op)
    return None if seen is None else (op, seen)


@message_rule(
    "XA-COUNTS",
    Severity.WARNING,
    "PS3.4 §C.4.2.1.7-9",
    applies_to=MOVE_RSP,
    origin="[DERIVED]",
)
def sub_operation_counts(ctx: MessageContext) -> Iterator[Problem]:
    """Final C-MOVE counts disagree with the C-STORE sub-operations seen

    PS3.4 §C.4.2.1.7-9 define Completed, Failed and Warning as the numbers of
    C-STORE sub-operations that succeeded, failed or had a warning.  When the
    storage association is in the capture, the C-STORE-RSP statuses give
    those numbers independently.  A Failed count above the failures seen is
    accepted: a sub-operation can fail without a C-STORE (no presentation
    context, association refused, never started; §C.4.2.3.1).
    """
    found = move_final(ctx)
    if found is None:
        return
    move, seen = found
    reported = ctx.counts[1:]
    wrong = [
        f"{name} {said} (seen {saw})"
        for name, said, saw in zip(COUNT_NAMES, reported, seen, strict=True)
        if said is not None and (said < saw if name == "Failed" else said != saw)
    ]
    if wrong:
        yield Problem(
            f"final C-MOVE-RSP reports {', '.join(wrong)} for {move.stores} C-STORE "
            "sub-operations seen",
            observed=" ".join(f"{n}={v}" for n, v in zip(COUNT_NAMES, reported, strict=True)),
            expected=" ".join(f"{n}={v}" for n, v in zip(COUNT_NAMES, seen, strict=True)),
        )


def failed_list(identifier: object | None) -> set[str]:
    """The values of Failed SOP Instance UID List (0008,0058) in a decoded identifier."""
    if identifier is None:
        return set()
    value = identifier.get(FAILED_SOP_INSTANCE_UID_LIST)  # type: ignore[attr-defined]
    if not value:
        return set()
    values = [value] if isinstance(value, str) else list(value)
    return {str(v).strip() for v in values if str(v).strip()}


@message_rule(
    "XA-FAILLIST",
    Severity.INFO,
    "PS3.4 §C.4.2.1.4.2, §C.4.2.3.1",
    applies_to=MOVE_RSP,
    origin="[P4]",
)
def failed_list_matches(ctx: MessageContext) -> Iterator[Problem]:
    """Failed SOP Instance UID List disagrees with the C-STORE sub-operations seen

    PS3.4 §C.4.2.1.4.2: the final response lists in (0008,0058) the SOP
    Instances whose sub-operation failed.  With the storage association in
    the capture, each C-STORE-RSP tells whether its instance failed.
    Reported: a failed C-STORE whose UID is not listed, and a listed UID
    whose C-STORE was seen to succeed.  A listed UID never seen in any
    C-STORE is not reported: a sub-operation can fail without one
    (§C.4.2.3.1: a failed presentation-context negotiation counts as a
    failed sub-operation), which real SCPs do for SOP classes the
    destination did not accept.
    """
    found = move_final(ctx)
    if found is None or ctx.status == SUCCESS or ctx.obs.identifier_error:
        return
    move = found[0]
    listed = failed_list(ctx.obs.identifier)
    unlisted = sorted(move.store_failed_uids - listed)
    if unlisted:
        yield Problem(
            f"{len(unlisted)} failed C-STORE sub-operation(s) missing from the Failed SOP "
            f"Instance UID List of {move_text(move)}",
            observed="not listed: " + " ".join(unlisted),
            expected="(0008,0058) listing every failed SOP Instance UID",
        )
    stored = sorted(listed & move.store_done_uids)
    if stored:
        yield Problem(
            f"{len(stored)} UID(s) in the Failed SOP Instance UID List of {move_text(move)} "
            "were stored successfully",
            observed="listed but stored: " + " ".join(stored),
            expected="only instances whose sub-operation failed",
        )


RULES = (
    same_association,
    sub_operation_priority,
    originator_fields,
    sub_operation_counts,
    failed_list_matches,
)
