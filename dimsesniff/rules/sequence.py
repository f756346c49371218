"""Sequencing, pairing, cancel and asynchronous-window rules

(rules.md §7), PS3.7 §9.1-9.3, Annex D.3.3.

These rules read the operation tracker (``dimsesniff/operations.py``): for
each message, the state of its operation *before* the message, so a
response is judged against the request and the responses that came before
it.  Association rules run on the release, abort and end events with the
operations still open.

An association caught mid-capture (``assumed``) has no A-ASSOCIATE-RQ/AC and
its earlier requests were not seen: rules that need either stay silent on
it.  A TCP gap can hide a request or a response; its TCP-GAP finding
explains sequence findings that follow it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dissectors.dimse import (
    AFFECTED_SOP_CLASS_UID,
    MESSAGE_ID,
    MESSAGE_ID_BEING_RESPONDED_TO,
    Command,
    command_name,
    is_response,
)

from ..operations import CANCEL_SEEN, Operation
from ..standard.qr_tables import QR_FIND_CLASSES, QR_MOVE_CLASSES
from ..standard.status import StatusClass, status_class
from .base import Problem, Severity, association_rule, message_rule

if TYPE_CHECKING:
    from ..associations import Association
    from ..checks import AssociationEvent, MessageContext
    from ..observations import ObservedMessage

QR_RQ = (Command.C_FIND_RQ, Command.C_MOVE_RQ)
QR_RSP = (Command.C_FIND_RSP, Command.C_MOVE_RSP)
RESPONSES = tuple(c for c in Command if is_response(c))
CANCEL_RQ = (Command.C_CANCEL_RQ,)

# rules.md open item O4: how many Pending responses may still cross a C-CANCEL-RQ on the
# wire before the performer counts as ignoring it.  The standard gives no number.
CANCEL_ALLOWANCE = 1

# PS3.7 §D.3.3.3: "If the Asynchronous Operations Window is absent the default for the
# above parameters shall be equal to one"; "A value of zero indicates ... unlimited".
DEFAULT_WINDOW = 1
UNLIMITED = 0

# Association end reasons (DicomConnection.end) that are not a transport close: the
# association simply ran past the capture.
NOT_CLOSED = frozenset({"capture ended", "idle timeout"})

# The Q/R SOP classes whose service (FIND or MOVE) a context's abstract syntax fixes.
SERVICE_OF_CLASS = {uid: Command.C_FIND_RQ for uid in QR_FIND_CLASSES} | {
    uid: Command.C_MOVE_RQ for uid in QR_MOVE_CLASSES
}


def name_of(obs: ObservedMessage) -> str:
    return command_name(obs.message.command_field)


def operation_text(op: Operation) -> str:
    """The operation with its request's frame: a finding points at one message only."""
    return (
        f"{command_name(op.command_field)} Message ID {op.message_id} "
        f"(frame {op.request.message.first_frame})"
    )


def cancel_text(op: Operation) -> str:
    frame = op.cancel.message.first_frame if op.cancel else "?"
    return f"the C-CANCEL-RQ (frame {frame}) for {operation_text(op)}"


def sender(from_requestor: bool | None) -> str:
    return "association requestor" if from_requestor else "association acceptor"


def is_final(obs: ObservedMessage) -> bool:
    status = obs.message.command.status
    return status is not None and status_class(status) is not StatusClass.PENDING


# -- pairing ----------------------------------------------------------------------------------


@message_rule(
    "SEQ-MSGID-UNMATCHED",
    Severity.ERROR,
    "PS3.7 Tables 9.3-4, 9.3-10 (Message ID Being Responded To); §9.1.2.1.2, §9.1.4.1.2",
    applies_to=QR_RSP,
    origin="[P7]",
)
def message_id_unmatched(ctx: MessageContext) -> Iterator[Problem]:
    """Response to a Message ID the peer never used in a request

    Message ID Being Responded To "shall be set to the value of the Message
    ID (0000,0110) field used in associated C-FIND-RQ Message" (Tables 9.3-4,
    9.3-10).  A response that matches no request of the other peer cannot be
    delivered to anyone.  Silent on associations caught mid-capture, whose
    earlier requests were not seen.  Caveat: a request is known once its
    last fragment is seen, so an early Failure response to a request still
    being sent (PS3.7 §9.3.2.4) is reported here too.
    """
    target = ctx.cmd.us(MESSAGE_ID_BEING_RESPONDED_TO)
    if target is None or ctx.lookup.op is not None or ctx.lookup.same_side is not None:
        return
    if ctx.assoc.assumed:
        return
    yield Problem(
        f"{name_of(ctx.obs)} answers Message ID {target}, which matches no request of the "
        f"{sender(not ctx.obs.from_requestor)}",
        observed=f"(0000,0120) = {target}",
        expected="the Message ID of an outstanding request",
    )


@message_rule(
    "SEQ-RSP-AFTER-FINAL",
    Severity.ERROR,
    "PS3.7 §9.3.2.4, §9.3.4.4",
    applies_to=QR_RSP,
    origin="[P7]",
)
def response_after_final(ctx: MessageContext) -> Iterator[Problem]:
    """Response after the operation's final response

    PS3.7 §9.3.2.4 / §9.3.4.4: an operation is "zero or more" Pending
    responses "followed by a single" response with the final status.
    Anything after it (another Pending, a second final) reaches an SCU that
    has already closed the operation, or is taken for a later operation
    reusing the Message ID.
    """
    op = ctx.lookup.op
    if op is None or not ctx.lookup.after_final or op.final is None:
        return
    yield Problem(
        f"{name_of(ctx.obs)} for {operation_text(op)} after its final response "
        f"(frame {op.final.message.first_frame})",
        observed=f"status {ctx.status:04X}H" if ctx.status is not None else "no status",
        expected="nothing after the final response",
    )


@message_rule(
    "SEQ-CMD-MISMATCH",
    Severity.ERROR,
    "PS3.7 Tables 9.3-4, 9.3-10 (Command Field, Message ID Being Responded To)",
    applies_to=RESPONSES,
    origin="[P7]",
)
def command_mismatch(ctx: MessageContext) -> Iterator[Problem]:
    """Response type does not match the request it answers

    The response to a C-FIND-RQ is a C-FIND-RSP (8020H), to a C-MOVE-RQ a
    C-MOVE-RSP (8021H): Command Field and Message ID Being Responded To
    together identify what is answered (Tables 9.3-4 / 9.3-10).  Any other
    pairing leaves the invoker's operation unanswered.
    """
    op = ctx.lookup.op
    if op is None or op.command_field is None or op.command_field == Command.C_CANCEL_RQ:
        return
    expected = op.command_field | 0x8000
    if ctx.command_field != expected:
        yield Problem(
            f"{name_of(ctx.obs)} answers {operation_text(op)}",
            observed=command_name(ctx.command_field),
            expected=command_name(expected),
        )


@message_rule(
    "SEQ-SOPCLASS-MISMATCH",
    Severity.ERROR,
    "PS3.7 §9.1.2.1.3, §9.1.4.1.3; Tables 9.1-2, 9.1-4 (U(=))",
    applies_to=QR_RSP,
    origin="[P7]",
)
def sop_class_mismatch(ctx: MessageContext) -> Iterator[Problem]:
    """Affected SOP Class UID of the response differs from the request's

    PS3.7 §9.1.2.1.3 / §9.1.4.1.3: "If included in the response/confirmation,
    this parameter shall be equal to the value in the request/indication"
    ("U(=)" in Tables 9.1-2 / 9.1-4).  A different class means the response
    belongs to another operation or the performer confused its models.
    """
    op = ctx.lookup.op
    answered = ctx.cmd.text(AFFECTED_SOP_CLASS_UID)
    if op is None or answered is None or op.sop_class is None:
        return
    if answered != op.sop_class:
        yield Problem(
            f"{name_of(ctx.obs)} Affected SOP Class UID differs from {operation_text(op)}'s",
            observed=answered,
            expected=op.sop_class,
        )


@message_rule(
    "SEQ-DIRECTION",
    Severity.ERROR,
    "PS3.7 §9.1.2.2, §9.1.4.2",
    applies_to=QR_RSP,
    origin="[P7]",
)
def direction(ctx: MessageContext) -> Iterator[Problem]:
    """Response sent by the peer that sent the request

    PS3.7 §9.1.2.2 / §9.1.4.2: the invoking DIMSE user sends the request, the
    performing user the responses.  A response from the invoker itself (to
    its own outstanding Message ID) answers nothing.
    """
    op = ctx.lookup.same_side
    if op is None or ctx.lookup.op is not None:
        return
    yield Problem(
        f"{name_of(ctx.obs)} from the {sender(ctx.obs.from_requestor)}, which itself sent "
        f"{operation_text(op)}",
        observed=f"sent by the {sender(ctx.obs.from_requestor)}",
        expected=f"sent by the {sender(not ctx.obs.from_requestor)}",
    )


@message_rule(
    "SEQ-PCTX-MISMATCH",
    Severity.WARNING,
    "PS3.4 §C.4.1.1.1, §C.4.2.1.1",
    applies_to=QR_RSP,
    origin="[DERIVED][P4]",
)
def presentation_context_mismatch(ctx: MessageContext) -> Iterator[Problem]:
    """Response on a presentation context other than its request's

    PS3.4 §C.4.1.1.1 / §C.4.2.1.1: the SOP class of an operation is implied
    by the abstract syntax of the presentation context it uses.  A response
    on another context is, for a strict SCU, a response of another SOP class
    (and possibly another transfer syntax for its identifier).  No explicit
    "shall" names this, hence a warning.
    """
    op = ctx.lookup.op
    if op is None:
        return
    asked, answered = op.request.message.context_id, ctx.obs.message.context_id
    if asked != answered:
        yield Problem(
            f"{name_of(ctx.obs)} on presentation context {answered}, "
            f"{operation_text(op)} on {asked}",
            observed=str(answered),
            expected=str(asked),
        )


@message_rule(
    "SEQ-RQ-PCTX-SOPCLASS",
    Severity.ERROR,
    "PS3.4 §C.4.1.1.1, §C.4.2.1.1, §C.4.2",
    applies_to=QR_RQ,
    origin="[P4]",
)
def request_context_sop_class(ctx: MessageContext) -> Iterator[Problem]:
    """Request's SOP class does not match its presentation context

    The SOP class of a C-FIND / C-MOVE is "implied by the abstract syntax of
    the presentation context" (PS3.4 §C.4.1.1.1 / §C.4.2.1.1) and support
    for C-MOVE "shall be agreed upon at Association establishment time"
    (§C.4.2).  An Affected SOP Class UID other than the context's abstract
    syntax, or a C-FIND on a MOVE context (or the reverse), asks for a
    service nobody negotiated.  Needs the A-ASSOCIATE-RQ.
    """
    context = ctx.assoc.contexts.get(ctx.obs.message.context_id)
    abstract = context.abstract_syntax if context is not None else None
    if abstract is None or ctx.assoc.assumed:
        return
    sop_class = ctx.cmd.text(AFFECTED_SOP_CLASS_UID)
    if sop_class is not None and sop_class != abstract:
        yield Problem(
            f"{name_of(ctx.obs)} for SOP class {sop_class} on presentation context "
            f"{context.context_id} ({abstract})",
            observed=sop_class,
            expected=abstract,
        )
        return
    service = SERVICE_OF_CLASS.get(abstract)
    if service is not None and service != ctx.command_field:
        yield Problem(
            f"{name_of(ctx.obs)} on presentation context {context.context_id}, "
            f"negotiated for {command_name(service).removesuffix('-RQ')} ({abstract})",
            observed=name_of(ctx.obs),
            expected=command_name(service),
        )


def role_accepted(assoc: Association, sop_class: str) -> bool:
    """Did role negotiation make the acceptor an SCU (the requestor an SCP) for the class?

    PS3.7 §D.3.3.4: the requestor proposes its SCP role, the acceptor accepts
    it "by returning the same value (1)".
    """
    if assoc.rq is None or assoc.ac is None:
        return False
    proposed = any(r.sop_class_uid == sop_class and r.scp_role for r in assoc.rq.user_info.roles)
    accepted = any(r.sop_class_uid == sop_class and r.scp_role for r in assoc.ac.user_info.roles)
    return proposed and accepted


@message_rule(
    "SEQ-ROLE",
    Severity.ERROR,
    "PS3.7 §D.3.3.4",
    applies_to=QR_RQ,
    origin="[P7]",
)
def role(ctx: MessageContext) -> Iterator[Problem]:
    """Request from the association acceptor without a negotiated SCU role

    PS3.7 §D.3.3.4: "If the SCP/SCU Role Selection item is absent the default
    role of the Association-requester shall be SCU and the default role of
    the Association-acceptor shall be SCP".  The acceptor may invoke C-FIND /
    C-MOVE only if the requestor proposed, and the acceptor accepted, the
    requestor's SCP role for that SOP class.  Needs the A-ASSOCIATE-RQ/AC.
    """
    assoc = ctx.assoc
    if ctx.obs.from_requestor or assoc.rq is None or assoc.ac is None:
        return
    context = assoc.contexts.get(ctx.obs.message.context_id)
    sop_class = (context.abstract_syntax if context else None) or ctx.cmd.text(
        AFFECTED_SOP_CLASS_UID
    )
    if sop_class is None or role_accepted(assoc, sop_class):
        return
    yield Problem(
        f"{name_of(ctx.obs)} sent by the association acceptor without SCP/SCU Role Selection "
        f"for {sop_class}",
        observed="acceptor acts as SCU",
        expected="requestor SCU, acceptor SCP (no role item accepted)",
    )


@message_rule(
    "SEQ-MSGID-REUSE",
    Severity.ERROR,
    "PS3.7 §9.1.2.1.1, §9.1.4.1.1",
    applies_to=QR_RQ,
    origin="[P7]",
)
def message_id_reuse(ctx: MessageContext) -> Iterator[Problem]:
    """Request reuses the Message ID of an operation still outstanding

    PS3.7 §9.1.2.1.1 / §9.1.4.1.1: "No two identical values for the Message
    ID (0000,0110) shall be used for outstanding operations or
    notifications".  The performer cannot tell the two apart (it may answer
    0210H Duplicate invocation), nor the invoker their responses.
    """
    earlier = ctx.lookup.reused_id
    if earlier is None:
        return
    yield Problem(
        f"{name_of(ctx.obs)} reuses Message ID {earlier.message_id} of the outstanding "
        f"{command_name(earlier.command_field)}",
        observed=f"(0000,0110) = {earlier.message_id}",
        expected="a Message ID no outstanding operation uses",
    )


@message_rule(
    "SEQ-MSGID-REUSE-ASSOC",
    Severity.INFO,
    "PS3.7 §9.1.2.1.1 note 2",
    applies_to=QR_RQ,
    origin="[P7]",
)
def message_id_reuse_in_association(ctx: MessageContext) -> Iterator[Problem]:
    """Message ID reused within the association after its operation completed

    PS3.7 §9.1.2.1.1 note 2: Message IDs are "recommended to be unique within
    the scope of an Association", so that a late response can never be
    mistaken for one to a newer request.  Reported for the first reuse of
    each peer only (a long association wraps around 65535).
    """
    found = ctx.lookup
    message_id = ctx.cmd.us(MESSAGE_ID)
    if not found.id_used_before or found.reused_id is not None or found.earlier_reuses:
        return
    yield Problem(
        f"{name_of(ctx.obs)} reuses Message ID {message_id} of an earlier, completed request "
        "(first reuse by this peer; later ones are not reported)",
        observed=f"(0000,0110) = {message_id}",
        expected="a Message ID unique within the association",
    )


def window(assoc: Association, from_requestor: bool) -> int | None:
    """Negotiated limit on outstanding operations the given peer may invoke; None = unknown.

    PS3.7 §D.3.3.3: the acceptor returns the number of operations it allows
    the requestor to invoke (Maximum-number-operations-invoked) and to
    perform (Maximum-number-operations-performed, which bounds what the
    acceptor invokes).  Without the item in both PDUs the default is one.
    """
    if assoc.rq is None or assoc.ac is None:
        return None
    rq, ac = assoc.rq.user_info, assoc.ac.user_info
    if rq.max_ops_invoked is None or ac.max_ops_invoked is None:
        return DEFAULT_WINDOW
    return ac.max_ops_invoked if from_requestor else ac.max_ops_performed


@message_rule(
    "SEQ-ASYNC-WINDOW",
    Severity.ERROR,
    "PS3.7 §D.3.3.3",
    applies_to=QR_RQ,
    origin="[P7]",
)
def async_window(ctx: MessageContext) -> Iterator[Problem]:
    """More outstanding operations than the negotiated asynchronous window allows

    PS3.7 §D.3.3.3: without an Asynchronous Operations Window "the default
    for the above parameters shall be equal to one" (synchronous operation:
    wait for the final response before the next request); a negotiated value
    of zero means unlimited.  A performer that works synchronously may
    refuse or stall the extra operation.  C-CANCEL-RQ is not an operation.
    Counts every operation the peer has outstanding (any command) when it
    sends a C-FIND-RQ / C-MOVE-RQ; needs the A-ASSOCIATE-RQ/AC.
    """
    limit = window(ctx.assoc, ctx.obs.from_requestor)
    if limit is None or limit == UNLIMITED:
        return
    outstanding = ctx.lookup.outstanding_before + (0 if ctx.lookup.reused_id else 1)
    if outstanding > limit:
        yield Problem(
            f"{name_of(ctx.obs)} makes {outstanding} outstanding operations of the "
            f"{sender(ctx.obs.from_requestor)}; the window allows {limit}",
            observed=str(outstanding),
            expected=f"at most {limit}",
        )


@association_rule(
    "SEQ-ASYNC-NEG",
    Severity.ERROR,
    "PS3.7 §D.3.3.3",
    events=["end"],
    origin="[P7]",
)
def async_negotiation(event: AssociationEvent) -> Iterator[Problem]:
    """Asynchronous Operations Window answered against the negotiation rules

    PS3.7 §D.3.3.3: "If this negotiation is not present in the A-ASSOCIATE
    indication it shall be omitted in the A-ASSOCIATE response", and each
    value the acceptor returns "shall be equal or less than" the one the
    requestor offered (zero offered means unlimited, so anything goes; zero
    returned for a finite offer is more).  A requestor that did not ask may
    not understand the item; one that gets more than it offered may
    overrun itself.
    """
    rq, ac = event.assoc.rq, event.assoc.ac
    if rq is None or ac is None or ac.user_info.max_ops_invoked is None:
        return
    where = (ac.first_frame, ac.last_frame)
    offered = (rq.user_info.max_ops_invoked, rq.user_info.max_ops_performed)
    returned = (ac.user_info.max_ops_invoked, ac.user_info.max_ops_performed)
    if offered[0] is None:
        yield Problem(
            "A-ASSOCIATE-AC carries an Asynchronous Operations Window the RQ did not propose",
            observed=f"AC {returned[0]}/{returned[1]}",
            expected="no window item in the AC",
            frames=where,
        )
        return
    for label, asked, got in zip(("invoked", "performed"), offered, returned, strict=True):
        if asked != UNLIMITED and (got == UNLIMITED or (got or 0) > asked):
            shown = "0 (unlimited)" if got == UNLIMITED else str(got)
            yield Problem(
                f"A-ASSOCIATE-AC Maximum-number-operations-{label} {shown} exceeds the "
                f"{asked} proposed",
                observed=str(got),
                expected=f"1..{asked}",
                frames=where,
            )


# -- cancel -----------------------------------------------------------------------------------


@message_rule(
    "SEQ-FE00-NO-CANCEL",
    Severity.ERROR,
    "PS3.7 §9.1.2.1.6 (e), §9.1.4.1.7 (f); PS3.4 Tables C.4-1, C.4-2; PS3.2 Tables N.7-48/49",
    applies_to=QR_RSP,
    origin="[SEED=P4][P7]",
)
def cancel_status_without_cancel(ctx: MessageContext) -> Iterator[Problem]:
    """Cancel status (FE00) although no C-CANCEL-RQ was sent for the operation

    FE00 means "terminated due to a C-FIND / C-MOVE Cancel indication"
    (PS3.7 §9.1.2.1.6 (e), §9.1.4.1.7 (f)).  The seed tables list FE00 but
    do not say it must follow a C-CANCEL; PS3.7 does (rules.md D17).  An SCP
    that stops on its own must say why with a Failure status.
    """
    op = ctx.lookup.op
    if ctx.status != 0xFE00 or op is None or ctx.lookup.after_final or op.cancel is not None:
        return
    yield Problem(
        f"{name_of(ctx.obs)} status FE00 (Cancel) but no C-CANCEL-RQ was seen for "
        f"{operation_text(op)}",
        observed="FE00, no C-CANCEL-RQ",
        expected="FE00 only after a C-CANCEL-RQ",
    )


@message_rule(
    "SEQ-CANCEL-UNKNOWN",
    Severity.WARNING,
    "PS3.7 §9.1.2.2 (b), §9.1.4.2 (b)",
    applies_to=CANCEL_RQ,
    origin="[P7]",
)
def cancel_unknown(ctx: MessageContext) -> Iterator[Problem]:
    """C-CANCEL-RQ for a Message ID with no outstanding operation

    PS3.7 §9.1.2.2 (b) / §9.1.4.2 (b): a cancel is issued "at any time before
    receiving a ... confirmation primitive with a status unequal to Pending",
    so it names an outstanding operation of the same invoker.  A cancel for
    nothing points at a Message ID bookkeeping bug.  Silent on associations
    caught mid-capture.
    """
    target = ctx.cmd.us(MESSAGE_ID_BEING_RESPONDED_TO)
    if target is None or ctx.lookup.op is not None or ctx.assoc.assumed:
        return
    yield Problem(
        f"C-CANCEL-RQ for Message ID {target}, which the {sender(ctx.obs.from_requestor)} "
        "has no operation under",
        observed=f"(0000,0120) = {target}",
        expected="the Message ID of an outstanding request",
    )


@message_rule(
    "SEQ-CANCEL-AFTER-FINAL",
    Severity.INFO,
    "PS3.7 §9.1.2.2 (b), §9.1.4.2 (b)",
    applies_to=CANCEL_RQ,
    origin="[P7]",
)
def cancel_after_final(ctx: MessageContext) -> Iterator[Problem]:
    """C-CANCEL-RQ crossed the operation's final response

    The cancel names an operation whose final response was already on the
    wire: the two crossed, a race PS3.7 §9.1.2.2 (b) / §9.1.4.2 (b) leaves
    possible.  Harmless; the performer ignores it.
    """
    op = ctx.lookup.op
    if op is None or not ctx.lookup.after_final:
        return
    yield Problem(
        f"C-CANCEL-RQ for {operation_text(op)} after its final response",
        observed="operation already complete",
        expected="a cancel before the final response (a crossing is harmless)",
    )


@message_rule(
    "SEQ-CANCEL-PENDING-INFLIGHT",
    Severity.INFO,
    "PS3.7 §9.1.2.2 note, §9.1.4.2",
    applies_to=QR_RSP,
    origin="[P7]",
)
def cancel_pending_in_flight(ctx: MessageContext) -> Iterator[Problem]:
    """Pending response after the C-CANCEL-RQ (allowed)

    PS3.7 §9.1.2.2 notes that Pending responses (c) "may precede" the
    cancel (b): responses already sent cross the C-CANCEL-RQ on the wire.
    Reported once per operation, at the first such Pending;
    SEQ-CANCEL-NOT-HONOURED judges whether there were too many.
    """
    op = ctx.lookup.op
    if op is None or op.state != CANCEL_SEEN or op.cancel is None:
        return
    if ctx.klass is StatusClass.PENDING and op.pendings_after_cancel == 0:
        yield Problem(
            f"Pending {name_of(ctx.obs)} after {cancel_text(op)}",
            observed="Pending after C-CANCEL-RQ",
            expected="allowed while responses cross the cancel",
        )


@message_rule(
    "SEQ-CANCEL-NOT-HONOURED",
    Severity.WARNING,
    "PS3.4 §C.4.1.3.1, §C.4.2.3.1; PS3.7 §9.1.2.2 (c)-(d), §9.1.4.2 (c)-(d)",
    applies_to=QR_RSP,
    origin="[P4][P7]",
)
def cancel_not_honoured(ctx: MessageContext) -> Iterator[Problem]:
    """Performer went on after the C-CANCEL-RQ

    On a cancel the SCP "shall interrupt the matching process and return a
    status of Canceled" (PS3.4 §C.4.1.3.1; for C-MOVE §C.4.2.3.1, the C-STORE
    sub-operations).  A few Pending responses may already be on the wire
    (CANCEL_ALLOWANCE, rules.md O4, default 1), and a final other than FE00
    is legal if processing had completed (PS3.7 §9.1.2.2 (c)-(d)).  Reported:
    (a) at the first Pending beyond the allowance; (b) a final status other
    than FE00 after more Pendings than the allowance (the catalog says one;
    a single Pending and a final can both cross the cancel in flight, so the
    same allowance applies).  Known bug of this kind: dcm4chee-arc-light #2303.
    """
    op = ctx.lookup.op
    if op is None or op.state != CANCEL_SEEN or op.cancel is None:
        return
    after = op.pendings_after_cancel
    if ctx.klass is StatusClass.PENDING and after == CANCEL_ALLOWANCE:
        yield Problem(
            f"Pending {name_of(ctx.obs)} number {after + 1} after {cancel_text(op)}",
            observed=f"{after + 1} Pending after C-CANCEL-RQ",
            expected=f"at most {CANCEL_ALLOWANCE}, then FE00",
        )
    elif ctx.final and ctx.status != 0xFE00 and after > CANCEL_ALLOWANCE:
        yield Problem(
            f"{name_of(ctx.obs)} status {ctx.status:04X}H after {after} Pending responses "
            f"following {cancel_text(op)}",
            observed=f"{ctx.status:04X}H",
            expected="FE00 (Cancel)",
        )


# -- the association ends ---------------------------------------------------------------------


def outstanding(event: AssociationEvent) -> list[Operation]:
    return sorted(event.open_operations, key=lambda op: op.request.message.first_frame)


@association_rule(
    "SEQ-NO-FINAL",
    Severity.WARNING,
    "PS3.7 §9.3.2.4, §9.3.4.4",
    events=["release-rp"],
    origin="[P7]",
)
def no_final(event: AssociationEvent) -> Iterator[Problem]:
    """Association released while an operation never got its final response

    PS3.7 §9.3.2.4 / §9.3.4.4: a single response with a final status
    completes the procedure.  An operation still open at A-RELEASE-RP never
    completed: its invoker cannot know whether the matches or sub-operations
    it got are all there were.
    """
    for op in outstanding(event):
        yield Problem(
            f"association released with {operation_text(op)} still outstanding",
            observed=f"{op.pendings} Pending, no final response",
            expected="a final response before A-RELEASE-RP",
        )


def closed_abruptly(event: AssociationEvent) -> bool:
    """An A-ABORT, or (at the end) a transport close without release or abort."""
    if event.kind == "abort":
        return True
    assoc = event.assoc
    return assoc.state not in ("released", "aborted", "rejected") and (
        assoc.end_reason not in NOT_CLOSED
    )


@association_rule(
    "SEQ-ABORT-OUTSTANDING",
    Severity.INFO,
    "PS3.4 §C.4.2.3.1 note",
    events=["abort", "end"],
    origin="[P4]",
)
def abort_outstanding(event: AssociationEvent) -> Iterator[Problem]:
    """Association aborted (or its connection closed) with operations outstanding

    PS3.4 §C.4.2.3.1 note: after an abort "it will not be possible to issue
    any further pending responses nor a final response".  The invoker loses
    the result; for a C-MOVE the destination may hold a partial set.
    Reported at the A-ABORT, or at the end of an association whose TCP
    connection closed without release or abort; not when the capture simply
    ended, nor again after a release (SEQ-NO-FINAL).
    """
    if not closed_abruptly(event):
        return
    how = "aborted" if event.kind == "abort" or event.assoc.state == "aborted" else "closed"
    for op in outstanding(event):
        yield Problem(
            f"association {how} with {operation_text(op)} outstanding",
            observed=f"{op.pendings} Pending, no final response",
            expected="no outstanding operations at abort",
        )


@association_rule(
    "SEQ-RELEASE-WITH-OUTSTANDING",
    Severity.WARNING,
    "PS3.8 §7.2.2.1, §7.2.2.2",
    events=["release-rq"],
    origin="[P8]",
)
def release_with_outstanding(event: AssociationEvent) -> Iterator[Problem]:
    """A-RELEASE-RQ from a peer still waiting for responses

    PS3.8 §7.2.2.1: after its A-RELEASE request the requestor "shall not
    issue any further primitives other than an A-ABORT", so it can no longer
    cancel; the acceptor may still send P-DATA (§7.2.2.2), but a peer that
    releases with operations of its own outstanding has given up on them.
    """
    if event.from_requestor is None:
        return
    for op in outstanding(event):
        if op.invoker_is_requestor == event.from_requestor:
            yield Problem(
                f"A-RELEASE-RQ from the {sender(event.from_requestor)} while its "
                f"{operation_text(op)} is outstanding",
                observed=f"{op.pendings} Pending so far",
                expected="release after the final response",
            )


RULES = (
    message_id_unmatched,
    response_after_final,
    command_mismatch,
    sop_class_mismatch,
    direction,
    presentation_context_mismatch,
    request_context_sop_class,
    role,
    message_id_reuse,
    message_id_reuse_in_association,
    async_window,
    async_negotiation,
    cancel_status_without_cancel,
    cancel_unknown,
    cancel_after_final,
    cancel_pending_in_flight,
    cancel_not_honoured,
    no_final,
    abort_outstanding,
    release_with_outstanding,
)
