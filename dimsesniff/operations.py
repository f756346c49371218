"""DIMSE operations: a request, its responses, its cancel — the state the sequence rules read.

An operation is keyed by (association, invoking side, Message ID) as PS3.7
§9.1.2.1.1 / §9.1.4.1.1 make Message IDs unique among outstanding
operations of one invoker.  Finished operations are remembered for a while
(bounded) so that a response after the final one can be recognised as such
rather than as a response to nothing.

C-MOVE operations are also indexed by (calling AE, Message ID), which is what
the C-STORE sub-operations on another association carry as Move Originator
AE Title / Message ID (PS3.7 §9.1.1.1.6-7), to tie them together.

A message is only seen once its last fragment has arrived, so a response the
performer sent while the request was still being transmitted (an early
Failure, PS3.7 §9.3.2.4 / §9.3.4.4) arrives first.  Such responses are kept
for a while and adopted by the request when it completes, if the request had
begun before them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from dissectors.dimse import (
    AFFECTED_SOP_CLASS_UID,
    AFFECTED_SOP_INSTANCE_UID,
    COMPLETED,
    FAILED,
    MESSAGE_ID,
    MESSAGE_ID_BEING_RESPONDED_TO,
    MOVE_DESTINATION,
    MOVE_ORIGINATOR_AE_TITLE,
    MOVE_ORIGINATOR_MESSAGE_ID,
    REMAINING,
    WARNING,
    Command,
    CommandSet,
    is_response,
)

from .associations import Association
from .observations import ObservedMessage
from .standard.status import StatusClass, status_class

OUTSTANDING, CANCEL_SEEN, DONE = "outstanding", "cancel-seen", "done"
RECENT_DONE = 64  # finished operations remembered per association
MAX_OPEN = 4096  # open operations per association before the oldest is dropped
RECENT_ORPHANS = 64  # unmatched responses remembered per association (early responses)
RECENT_RESPONSES = 64  # responses remembered per operation (a C-FIND may have millions)

Counts = tuple[int | None, int | None, int | None, int | None]

# The commands that open an operation: requests of PS3.7 Annex E (C-CANCEL-RQ only
# refers to one).  A message with an undefined or missing Command Field opens none.
REQUESTS = frozenset(c for c in Command if not is_response(c) and c != Command.C_CANCEL_RQ)


def counts(cmd: CommandSet) -> Counts:
    """(Remaining, Completed, Failed, Warning) sub-operations, None where absent."""
    return cmd.us(REMAINING), cmd.us(COMPLETED), cmd.us(FAILED), cmd.us(WARNING)


@dataclass(eq=False, slots=True)
class Operation:
    association: Association
    invoker_is_requestor: bool
    message_id: int
    request: ObservedMessage
    state: str = OUTSTANDING
    # The last RECENT_RESPONSES responses only: each holds its decoded identifier, and
    # one operation can have millions (counts are in ``pendings``).
    responses: deque[ObservedMessage] = field(
        default_factory=lambda: deque(maxlen=RECENT_RESPONSES)
    )
    pendings: int = 0
    cancel: ObservedMessage | None = None
    pendings_after_cancel: int = 0
    last_counts: Counts | None = None  # from the last response that carried any count
    last_pending_counts: Counts | None = None
    total: int | None = None  # R+C+F+W of the first Pending that had all four
    final: ObservedMessage | None = None
    move: Operation | None = None  # for a C-STORE sub-operation: its C-MOVE
    stores: int = 0  # for a C-MOVE: correlated C-STORE-RQ seen
    store_results: dict[str, int] = field(default_factory=dict)  # class -> count of C-STORE-RSP
    # for a C-MOVE: SOP Instance UIDs of its C-STORE sub-operations, by C-STORE-RSP status
    store_failed_uids: set[str] = field(default_factory=set)  # neither Success nor Warning
    store_done_uids: set[str] = field(default_factory=set)  # Success or Warning

    @property
    def command_field(self) -> int | None:
        return self.request.message.command_field

    @property
    def sop_class(self) -> str | None:
        return self.request.message.command.text(AFFECTED_SOP_CLASS_UID)


@dataclass(eq=False, slots=True)
class Lookup:
    """What the tracker knows about a message before it updates its state."""

    op: Operation | None = None
    after_final: bool = False  # a response to an operation already done
    reused_id: Operation | None = None  # a request reusing an outstanding Message ID
    outstanding_before: int = 0  # operations the sender had outstanding before this request
    move: Operation | None = None  # for a C-STORE-RQ with Move Originator fields
    same_side: Operation | None = None  # unmatched response: an open op the sender itself invoked
    previous: ObservedMessage | None = None  # the sender's previous message on the association
    id_used_before: bool = False  # a request: the sender used this Message ID before
    earlier_reuses: int = 0  # a request: how many earlier requests of the sender reused an ID
    early: tuple[ObservedMessage, ...] = ()  # a request: responses sent before it was complete


class OperationTracker:
    def __init__(self) -> None:
        self._open: dict[tuple[int, bool, int], Operation] = {}
        self._done: dict[int, deque[Operation]] = {}
        self._by_association: dict[int, set[tuple[int, bool, int]]] = {}
        self._moves: dict[tuple[str, int], Operation] = {}
        # Per (association, sender is requestor):
        self._previous: dict[tuple[int, bool], ObservedMessage] = {}
        self._used_ids: dict[tuple[int, bool], set[int]] = {}
        self._reuses: dict[tuple[int, bool], int] = {}
        self._orphans: dict[int, deque[ObservedMessage]] = {}

    # -- lookups (before the message changes anything) ---------------------------------

    def lookup(self, obs: ObservedMessage) -> Lookup:
        found = self._lookup(obs)
        found.previous = self._previous.get((obs.association.id, obs.from_requestor))
        return found

    def _lookup(self, obs: ObservedMessage) -> Lookup:
        cmd = obs.message.command
        field = cmd.command_field
        assoc = obs.association
        if is_response(field) or field == Command.C_CANCEL_RQ:
            target = cmd.us(MESSAGE_ID_BEING_RESPONDED_TO)
            if target is None:
                return Lookup()
            invoker = obs.from_requestor if field == Command.C_CANCEL_RQ else not obs.from_requestor
            op = self._open.get((assoc.id, invoker, target))
            if op is not None:
                return Lookup(op)
            for done in reversed(self._done.get(assoc.id, ())):
                if done.invoker_is_requestor == invoker and done.message_id == target:
                    return Lookup(done, after_final=True)
            if field == Command.C_CANCEL_RQ:
                return Lookup()
            return Lookup(same_side=self._open.get((assoc.id, obs.from_requestor, target)))
        message_id = cmd.us(MESSAGE_ID)
        result = Lookup(outstanding_before=self.outstanding(assoc, obs.from_requestor))
        if message_id is not None:
            side = (assoc.id, obs.from_requestor)
            result.reused_id = self._open.get((assoc.id, obs.from_requestor, message_id))
            result.id_used_before = message_id in self._used_ids.get(side, ())
            result.earlier_reuses = self._reuses.get(side, 0)
            result.early = self._early_responses(obs, message_id)
        if field == Command.C_STORE_RQ:
            originator = cmd.text(MOVE_ORIGINATOR_AE_TITLE)
            originator_id = cmd.us(MOVE_ORIGINATOR_MESSAGE_ID)
            if originator is not None and originator_id is not None:
                result.move = self._moves.get(
                    (originator, originator_id)
                ) or self._move_named_by_performer(assoc, originator, originator_id)
        return result

    def _move_named_by_performer(
        self, assoc: Association, originator: str, originator_id: int
    ) -> Operation | None:
        """The C-MOVE a C-STORE-RQ names with the C-MOVE *SCP's* AE title as originator.

        PS3.7 Annex E: Move Originator AE Title is the AE "that invoked the
        C-MOVE operation", but pynetdicom's Move SCP sends its own AE title
        there.  Accepted when everything else agrees: Message ID, and a
        storage association from that AE to the C-MOVE's Move Destination.
        """
        if assoc.called_ae is None or assoc.calling_ae != originator:
            return None
        for op in self.moves_to(assoc.called_ae, originator):
            if op.message_id == originator_id:
                return op
        return None

    def _early_responses(
        self, obs: ObservedMessage, message_id: int
    ) -> tuple[ObservedMessage, ...]:
        """Unmatched responses to ``message_id`` that the peer began after this request began."""
        begun = obs.message.first_frame
        return tuple(
            orphan
            for orphan in self._orphans.get(obs.association.id, ())
            if orphan.from_requestor != obs.from_requestor
            and orphan.message.command.us(MESSAGE_ID_BEING_RESPONDED_TO) == message_id
            and orphan.message.first_frame > begun
        )

    def outstanding(self, assoc: Association, from_requestor: bool) -> int:
        keys = self._by_association.get(assoc.id, ())
        return sum(1 for k in keys if k[1] == from_requestor)

    def open_operations(self, assoc: Association) -> list[Operation]:
        return [self._open[k] for k in self._by_association.get(assoc.id, ())]

    def open_operation(
        self, assoc: Association, invoker_is_requestor: bool, message_id: int
    ) -> Operation | None:
        """The operation still outstanding under this Message ID from that invoker, if any."""
        return self._open.get((assoc.id, invoker_is_requestor, message_id))

    def moves_to(self, destination: str, performer: str) -> list[Operation]:
        """Outstanding C-MOVEs to Move Destination ``destination`` asked of AE ``performer``.

        What a C-STORE-RQ without Move Originator fields can still be tied to:
        a storage association from the C-MOVE SCP (calling AE) to the
        destination (called AE).
        """
        return [
            op
            for op in self._moves.values()
            if op.association.called_ae == performer
            and op.request.message.command.text(MOVE_DESTINATION) == destination
        ]

    # -- updates ---------------------------------------------------------------------------

    def update(self, obs: ObservedMessage, found: Lookup) -> Operation | None:
        """Record ``obs``; returns the operation it belongs to."""
        self._previous[(obs.association.id, obs.from_requestor)] = obs
        cmd = obs.message.command
        field = cmd.command_field
        op = found.op
        if field == Command.C_CANCEL_RQ:
            if op is not None and op.state == OUTSTANDING:
                op.state = CANCEL_SEEN
                op.cancel = obs
            return op
        if is_response(field):
            if op is None and cmd.us(MESSAGE_ID_BEING_RESPONDED_TO) is not None:
                orphans = self._orphans.setdefault(obs.association.id, deque(maxlen=RECENT_ORPHANS))
                orphans.append(obs)
            if op is None or found.after_final:
                return op
            self._response(op, obs)
            return op
        message_id = cmd.us(MESSAGE_ID)
        if message_id is None or field not in REQUESTS:
            return None
        assoc = obs.association
        side = (assoc.id, obs.from_requestor)
        if found.id_used_before:
            self._reuses[side] = self._reuses.get(side, 0) + 1
        self._used_ids.setdefault(side, set()).add(message_id)
        op = Operation(assoc, obs.from_requestor, message_id, obs)
        key = (assoc.id, obs.from_requestor, message_id)
        keys = self._by_association.setdefault(assoc.id, set())
        if key in self._open:  # reuse of an outstanding ID: the new request wins
            self._finish(self._open[key])
        if len(keys) >= MAX_OPEN:
            self._finish(self._open[next(iter(keys))])
        self._open[key] = op
        keys.add(key)
        if field == Command.C_MOVE_RQ and assoc.calling_ae:
            self._moves[(assoc.calling_ae, message_id)] = op
        if field == Command.C_STORE_RQ and found.move is not None:
            op.move = found.move
            found.move.stores += 1
        for response in found.early:
            self._orphans[assoc.id].remove(response)
            if op.state != DONE:
                self._response(op, response)
        return op

    def _response(self, op: Operation, obs: ObservedMessage) -> None:
        cmd = obs.message.command
        status = cmd.status
        op.responses.append(obs)
        observed = counts(cmd)
        if any(c is not None for c in observed):
            op.last_counts = observed
        klass = status_class(status) if status is not None else StatusClass.INVALID
        if klass is StatusClass.PENDING:
            op.pendings += 1
            if op.state == CANCEL_SEEN:
                op.pendings_after_cancel += 1
            op.last_pending_counts = observed
            if op.total is None and all(c is not None for c in observed):
                op.total = sum(observed)  # type: ignore[arg-type]
            return
        op.final = obs
        if op.move is not None:
            key = klass.value
            op.move.store_results[key] = op.move.store_results.get(key, 0) + 1
            uid = op.request.message.command.text(AFFECTED_SOP_INSTANCE_UID) or cmd.text(
                AFFECTED_SOP_INSTANCE_UID
            )
            if uid:
                done = klass in (StatusClass.SUCCESS, StatusClass.WARNING)
                (op.move.store_done_uids if done else op.move.store_failed_uids).add(uid)
        self._finish(op)

    def _finish(self, op: Operation) -> None:
        op.state = DONE
        assoc = op.association
        key = (assoc.id, op.invoker_is_requestor, op.message_id)
        if self._open.get(key) is op:
            del self._open[key]
            self._by_association[assoc.id].discard(key)
        done = self._done.setdefault(assoc.id, deque(maxlen=RECENT_DONE))
        done.append(op)
        if op.command_field == Command.C_MOVE_RQ and assoc.calling_ae:
            move_key = (assoc.calling_ae, op.message_id)
            if self._moves.get(move_key) is op:
                del self._moves[move_key]

    def forget(self, assoc: Association) -> None:
        """The association is over: drop everything kept for it."""
        for key in self._by_association.pop(assoc.id, set()):
            op = self._open.pop(key)
            if op.command_field == Command.C_MOVE_RQ and assoc.calling_ae:
                self._moves.pop((assoc.calling_ae, op.message_id), None)
        self._done.pop(assoc.id, None)
        self._orphans.pop(assoc.id, None)
        for side in ((assoc.id, True), (assoc.id, False)):
            self._previous.pop(side, None)
            self._used_ids.pop(side, None)
            self._reuses.pop(side, None)
