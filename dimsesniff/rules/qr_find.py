"""C-FIND response rules (rules.md §3): identifier and related fields per status, early responses.

Sources: PS3.7 §9.1.2 (the C-FIND service: an Identifier only with Pending,
no Success before the request is complete), PS3.7 Annex C (the fields of
each status type) and PS3.4 §C.4.1 with Table C.4-1 (the Query/Retrieve use
of C-FIND).  Rules citing only PS3.7 apply to every C-FIND; those resting on
PS3.4 Annex C only to the Q/R FIND SOP Classes (see ``status.sop_class``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from dissectors.dimse import (
    ATTRIBUTE_IDENTIFIER_LIST,
    COMMAND_DATA_SET_TYPE,
    ERROR_COMMENT,
    ERROR_ID,
    MESSAGE_ID,
    MESSAGE_ID_BEING_RESPONDED_TO,
    NO_DATA_SET,
    OFFENDING_ELEMENT,
    Command,
    tag_text,
)

from ..identifiers import FlatIdentifier
from ..observations import ObservedMessage
from ..operations import OperationTracker
from ..standard.qr_tables import QR_FIND, QR_FIND_CLASSES
from ..standard.status import SUBOP_COUNTS, StatusClass, find_row, status_class
from .base import Problem, Severity, message_rule
from .status import sop_class

if TYPE_CHECKING:
    from ..checks import MessageContext

FIND_RSP = (Command.C_FIND_RSP,)
FIND_RQ_AND_RSP = (Command.C_FIND_RQ, Command.C_FIND_RSP)

# The status-related command fields of PS3.7 Annex C (C.4 and C.5 tables).
STATUS_FIELDS = (OFFENDING_ELEMENT, ERROR_COMMENT, ERROR_ID, ATTRIBUTE_IDENTIFIER_LIST)

# Request attributes that are not Key Attributes, so the response need not echo them
# (PS3.4 §C.4.1.1.3.1-2): Specific Character Set and Timezone Offset From UTC are
# conditional in the response, Query/Retrieve View is request-only, and Query/Retrieve
# Level is checked by QR-FIND-LEVEL.
NOT_KEYS = frozenset({0x0008_0005, 0x0008_0052, 0x0008_0053, 0x0008_0201})

SUCCESS_OR_WARNING = frozenset({StatusClass.SUCCESS, StatusClass.WARNING})
PENDING = frozenset({StatusClass.PENDING})
RECENT_UNANSWERED = 256  # responses to no known request kept per checker (FIND-EARLY-*)


# -- helpers ---------------------------------------------------------------------------------


def is_qr_find(ctx: MessageContext) -> bool:
    return sop_class(ctx) in QR_FIND_CLASSES


def present(ctx: MessageContext, tags: Iterable[int]) -> list[int]:
    """Those of ``tags`` that the command set carries."""
    raw = ctx.cmd.raw
    return [tag for tag in tags if tag in raw]


def tag_list(tags: Iterable[int]) -> str:
    return " ".join(tag_text(tag) for tag in tags)


def data_set_type(ctx: MessageContext) -> str:
    value = ctx.cmd.us(COMMAND_DATA_SET_TYPE)
    return "absent" if value is None else f"{value:04X}"


def identifier_keys(identifier: object) -> dict[int, str]:
    """Top-level tags of a decoded identifier, with their keywords (read only)."""
    if isinstance(identifier, FlatIdentifier):
        return identifier.keywords()
    elements = identifier if isinstance(identifier, Iterable) else ()
    return {int(e.tag): e.keyword or tag_text(int(e.tag)) for e in elements}


def is_key(tag: int) -> bool:
    """A request attribute the response must echo when supported (PS3.4 §C.4.1.1.3.2).

    Private attributes may be ignored by the SCP (note 4), group lengths are
    encoding, and ``NOT_KEYS`` are not Key Attributes.
    """
    group, element = tag >> 16, tag & 0xFFFF
    return group % 2 == 0 and element != 0 and tag not in NOT_KEYS


class UnansweredResponses:
    """C-FIND responses that answered no request the tracker knew when they arrived.

    The assembler emits a message once its last fragment is in, so a response
    sent while its request was still being transmitted is checked *before*
    that request (its lookup finds nothing).  Such responses are kept here,
    bounded, until a request with their Message ID completes around them.
    """

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[int, int, int], ObservedMessage] = OrderedDict()

    def keep(self, response: ObservedMessage) -> None:
        target = response.message.command.us(MESSAGE_ID_BEING_RESPONDED_TO)
        if target is None:
            return
        key = (response.association.id, target, response.message.first_frame)
        self._kept[key] = response
        while len(self._kept) > RECENT_UNANSWERED:
            self._kept.popitem(last=False)

    def overtaking(
        self, request: ObservedMessage, wanted: frozenset[StatusClass]
    ) -> list[ObservedMessage]:
        """Kept responses of a ``wanted`` class to ``request``, sent after it began and
        complete before it ended (each is handed out once)."""
        message_id = request.message.command.us(MESSAGE_ID)
        first, last = request.message.first_frame, request.message.last_frame
        found = []
        for key, response in list(self._kept.items()):
            if (
                key[0] == request.association.id
                and key[1] == message_id
                and response.from_requestor != request.from_requestor
                and first < response.message.first_frame
                and response.message.last_frame < last
                and status_class(response.message.command.status or 0) in wanted
            ):
                del self._kept[key]
                found.append(response)
        return found


_UNANSWERED: WeakKeyDictionary[OperationTracker, UnansweredResponses] = WeakKeyDictionary()


def early_responses(
    ctx: MessageContext, wanted: frozenset[StatusClass]
) -> Iterator[tuple[ObservedMessage, int]]:
    """On a C-FIND-RSP to no known request, keep it if its class is ``wanted``; on a
    C-FIND-RQ, yield the kept responses (with their status) that overtook it."""
    kept = _UNANSWERED.setdefault(ctx.tracker, UnansweredResponses())
    if ctx.command_field == Command.C_FIND_RSP:
        status = ctx.status
        unanswered = ctx.op is None or ctx.lookup.after_final
        if unanswered and status is not None and status_class(status) in wanted:
            kept.keep(ctx.obs)
        return
    for response in kept.overtaking(ctx.obs, wanted):
        yield response, response.message.command.status or 0


def early_problem(response: ObservedMessage, status: int, ctx: MessageContext) -> Problem:
    request = ctx.obs.message
    return Problem(
        f"C-FIND-RSP {status:04X} ({status_class(status).value}) in frame "
        f"{response.message.first_frame}, before the last fragment of its C-FIND-RQ "
        f"(Message ID {ctx.cmd.us(MESSAGE_ID)}, frames {request.first_frame}-{request.last_frame})",
        observed=f"response complete in frame {response.message.last_frame}",
        expected=f"after frame {request.last_frame}",
        frames=(response.message.first_frame, response.message.last_frame, request.last_frame),
    )


# -- identifier presence ---------------------------------------------------------------------


@message_rule(
    "FIND-PENDING-ID-REQUIRED",
    Severity.ERROR,
    "PS3.7 §9.1.2.1.6 (b); PS3.4 Table C.4-1, §C.4.1.3.1",
    applies_to=FIND_RSP,
    origin="[SEED=P4][P7]",
)
def find_pending_id_required(ctx: MessageContext) -> Iterator[Problem]:
    """Pending C-FIND response without an Identifier

    A Pending response *is* a match: PS3.7 §9.1.2.1.6 (b) "It shall contain
    a matching Identifier", Table C.4-1 lists "Identifier" as the related
    field of FF00 and FF01, and PS3.4 §C.4.1.3.1 says "All such responses
    shall contain an Identifier".  Without one the SCU receives a match with
    nothing in it.  Both signals are checked: Command Data Set Type must not
    be 0101H, and a data set must actually follow the command.
    """
    if ctx.klass is not StatusClass.PENDING:
        return
    says_none = ctx.cmd.us(COMMAND_DATA_SET_TYPE) == NO_DATA_SET
    if says_none or not ctx.has_data_set:
        sent = "sent" if ctx.has_data_set else "not sent"
        yield Problem(
            f"Pending ({ctx.status:04X}) C-FIND-RSP without an Identifier "
            f"(Command Data Set Type {data_set_type(ctx)}, data set {sent})",
            observed=f"Command Data Set Type {data_set_type(ctx)}; data set {sent}",
            expected="Command Data Set Type other than 0101 and an Identifier",
        )


@message_rule(
    "FIND-FINAL-ID-FORBIDDEN",
    Severity.ERROR,
    "PS3.7 §9.1.2.1.5, §9.1.2.1.6 (a), (c)-(e); PS3.4 §C.4.1.3.1",
    applies_to=FIND_RSP,
    origin="[P7][P4]",
)
def find_final_id_forbidden(ctx: MessageContext) -> Iterator[Problem]:
    """Identifier announced or sent in a final C-FIND response

    PS3.7 §9.1.2.1.5: the response Identifier "shall be sent only when that
    Status (0000,0900) is equal to Pending (not permitted for other
    statuses)"; §9.1.2.1.6 repeats it for Success, Refused and Cancel, and
    PS3.4 §C.4.1.3.1 says "A Refused or Failed response shall contain no
    Identifier".  An SCU may take the data set for one more match.  A data
    set sent with Success is reported by FIND-SUCCESS-NO-ID instead; this rule
    still reports a Success whose Command Data Set Type announces one.
    """
    if not ctx.final or not (ctx.announces_data_set or ctx.has_data_set):
        return
    if ctx.status == 0x0000 and ctx.has_data_set:
        return  # FIND-SUCCESS-NO-ID
    sent = "sent" if ctx.has_data_set else "not sent"
    yield Problem(
        f"{status_class(ctx.status or 0).value} ({ctx.status:04X}) C-FIND-RSP with an "
        f"Identifier (Command Data Set Type {data_set_type(ctx)}, data set {sent})",
        observed=f"Command Data Set Type {data_set_type(ctx)}; data set {sent}",
        expected="Command Data Set Type 0101 and no data set",
    )


@message_rule(
    "FIND-SUCCESS-NO-ID",
    Severity.ERROR,
    "PS3.4 Table C.4-1; PS3.7 §9.1.2.1.6 (a); PS3.2 Table N.7-48",
    applies_to=FIND_RSP,
    origin="[SEED=P4]",
)
def find_success_no_id(ctx: MessageContext) -> Iterator[Problem]:
    """Success C-FIND response carries a final Identifier

    Success means "Matching is complete - No final Identifier is supplied"
    (Table C.4-1 and the seed, N.7-48/50), and PS3.7 §9.1.2.1.6 (a): "It
    shall not contain a matching Identifier".  Matches travel only in
    Pending responses; an SCU would either drop this one or count it twice.
    Reported apart from FIND-FINAL-ID-FORBIDDEN because it is the commonest
    case and the seed states it explicitly.
    """
    if ctx.status == 0x0000 and ctx.has_data_set:
        yield Problem(
            "Success (0000) C-FIND-RSP with an Identifier",
            observed=f"data set of {ctx.obs.message.data_set_length} bytes",
            expected="no data set",
        )


# -- related fields --------------------------------------------------------------------------


@message_rule(
    "FIND-SUCCESS-RELATED",
    Severity.WARNING,
    "PS3.4 Table C.4-1; PS3.7 Annex C.1.1, C.3.1",
    applies_to=FIND_RSP,
    origin="[P4]",
)
def find_success_related(ctx: MessageContext) -> Iterator[Problem]:
    """Success or Cancel C-FIND response with status-related fields

    Table C.4-1 gives "None" as the related fields of 0000 and FE00, and the
    Success and Cancel status types of PS3.7 Annex C (C.1.1, C.3.1) consist of
    the Status alone.  Offending Element, Error Comment, Error ID or
    Attribute Identifier List there describe an error that did not happen and
    make an SCU that logs them report a failure.
    """
    if ctx.status not in (0x0000, 0xFE00):
        return
    extra = present(ctx, STATUS_FIELDS)
    if extra:
        yield Problem(
            f"{status_class(ctx.status or 0).value} ({ctx.status:04X}) C-FIND-RSP with "
            f"{tag_list(extra)}",
            observed=tag_list(extra),
            expected="Status only",
        )


@message_rule(
    "FIND-A700-RELATED",
    Severity.WARNING,
    "PS3.4 Table C.4-1; PS3.7 Annex C",
    applies_to=FIND_RSP,
    origin="[P4]",
)
def find_a700_related(ctx: MessageContext) -> Iterator[Problem]:
    """A700 C-FIND response with fields other than Error Comment

    Table C.4-1 lists only Error Comment (0000,0902) for "Refused: Out of
    resources" (A700): running out of resources is not caused by any element
    of the request, so an Offending Element (0000,0901) (or an Error ID or
    Attribute Identifier List) points the SCU at a fault in its query that
    does not exist.  Only the Q/R FIND SOP Classes are checked.
    """
    row = find_row(QR_FIND, 0xA700)
    if ctx.status != 0xA700 or row is None or not is_qr_find(ctx):
        return
    extra = [tag for tag in present(ctx, STATUS_FIELDS) if tag not in row.related]
    if extra:
        yield Problem(
            f"A700 C-FIND-RSP with {tag_list(extra)}; {row.source} lists only "
            f"{tag_list(sorted(row.related))}",
            observed=tag_list(extra),
            expected=tag_list(sorted(row.related)),
        )


@message_rule(
    "FIND-SUBOPS-PRESENT",
    Severity.WARNING,
    "PS3.7 Table 9.3-4",
    applies_to=FIND_RSP,
    origin="[P7]",
)
def find_subops_present(ctx: MessageContext) -> Iterator[Problem]:
    """Sub-operation counts in a C-FIND response

    The Number of Remaining / Completed / Failed / Warning Sub-operations
    (0000,1020)-(0000,1023) belong to C-MOVE and C-GET, which spawn C-STORE
    sub-operations; a query spawns none, and Table 9.3-4 (the C-FIND-RSP
    command fields) does not list them.  Usually a sign that the SCP built the
    response with its retrieve code.
    """
    counts = present(ctx, sorted(SUBOP_COUNTS))
    if counts:
        yield Problem(
            f"C-FIND-RSP with sub-operation counts {tag_list(counts)}",
            observed=tag_list(counts),
            expected="none (PS3.7 Table 9.3-4)",
        )


# -- semantics -------------------------------------------------------------------------------


@message_rule(
    "FIND-FF01-SEMANTICS",
    Severity.WARNING,
    "PS3.4 Table C.4-1 (FF00 / FF01), §C.4.1.1.3.2 notes 1, 3 and 4",
    applies_to=FIND_RSP,
    origin="[DERIVED][P4]",
)
def find_ff01_semantics(ctx: MessageContext) -> Iterator[Problem]:
    """FF00 response drops keys of the request: it should be FF01

    FF00 says "any Optional Keys were supported in the same manner as
    Required Keys"; FF01 warns that "one or more Optional Keys were not
    supported".  By §C.4.1.1.3.2 note 1 every Required Key and every
    supported Optional Key of the request comes back in the response (empty
    if the SCP has no value), and note 3 has unsupported ones left out.  So a
    request key missing from an FF00 identifier contradicts the status.
    Private attributes (note 4), group lengths and attributes that are not
    keys (Specific Character Set, Timezone Offset From UTC, Query/Retrieve
    View and Level) are not counted.  A dropped Required Key is also reported
    by QR-FIND-KEY-DROPPED.
    """
    if ctx.status != 0xFF00 or ctx.op is None or not is_qr_find(ctx):
        return
    request, response = ctx.op.request.identifier, ctx.obs.identifier
    if request is None or response is None:
        return
    returned = identifier_keys(response)
    missing = {
        tag: name
        for tag, name in identifier_keys(request).items()
        if is_key(tag) and tag not in returned
    }
    if missing:
        names = ", ".join(f"{name} {tag_text(tag)}" for tag, name in sorted(missing.items()))
        yield Problem(
            f"FF00 C-FIND-RSP without request key(s) {names}: FF01 says keys were not supported",
            observed="missing: " + names,
            expected="every request key, or status FF01",
        )


@message_rule(
    "FIND-NO-MATCH",
    Severity.INFO,
    "PS3.4 §C.4.1.3.1 (note)",
    applies_to=FIND_RSP,
    origin="[P4]",
)
def find_no_match(ctx: MessageContext) -> Iterator[Problem]:
    """C-FIND with no match: a single Success and no Pending

    "When there are no matches, then no responses with a status of Pending
    are sent, only a single response with a status of Success" (PS3.4
    §C.4.1.3.1).  Legal; reported so that an empty result can be told from a
    query that was never answered.
    """
    op = ctx.op
    if ctx.status != 0x0000 or op is None or ctx.lookup.after_final or op.responses:
        return
    if is_qr_find(ctx):
        yield Problem(
            f"C-FIND (Message ID {op.message_id}) matched nothing: Success with no Pending",
            observed="0000 as the first response",
        )


@message_rule(
    "FIND-EARLY-SUCCESS",
    Severity.ERROR,
    "PS3.7 §9.1.2.2 (last paragraph)",
    applies_to=FIND_RQ_AND_RSP,
    origin="[P7]",
)
def find_early_success(ctx: MessageContext) -> Iterator[Problem]:
    """Success or Warning C-FIND response before the whole request arrived

    PS3.7 §9.1.2.2: "A C-FIND response primitive with the status of Success
    or Warning shall not be returned until the entire C-FIND indication has
    been received by the performing DIMSE Service User."  Only Failed or
    Refused may come early (an "early failed response").  Seen on the wire as
    a response that completes between the first and the last fragment of its
    request; the finding spans from the response to the request's last
    fragment, and is reported when the request completes.
    """
    for response, status in early_responses(ctx, SUCCESS_OR_WARNING):
        yield early_problem(response, status, ctx)


@message_rule(
    "FIND-EARLY-PENDING",
    Severity.WARNING,
    "PS3.7 §9.1.2.2",
    applies_to=FIND_RQ_AND_RSP,
    origin="[DERIVED]",
)
def find_early_pending(ctx: MessageContext) -> Iterator[Problem]:
    """Pending C-FIND response before the whole request arrived

    A Pending response carries a match, and matching needs the whole
    Identifier (PS3.7 §9.1.2.2 performing-user procedure (a): the SCP
    "matches the Identifier" it received in the indication).  A match sent
    before the request's last fragment cannot have been computed from it.
    No sentence forbids it outright, hence a warning.  Detected as for
    FIND-EARLY-SUCCESS.
    """
    for response, status in early_responses(ctx, PENDING):
        yield early_problem(response, status, ctx)


RULES = (
    find_pending_id_required,
    find_final_id_forbidden,
    find_success_no_id,
    find_success_related,
    find_a700_related,
    find_subops_present,
    find_ff01_semantics,
    find_no_match,
    find_early_success,
    find_early_pending,
)
