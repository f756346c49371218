"""DIMSE operations: a request, its responses, its cancel — the state the sequence rules read.

An operation is keyed by (association, invoking side, Message ID) as PS3.7
§9.1.2.1.1 / §9.1.4.1.1 make Message IDs unique among outstanding
operations of one invoker.  Finished operations are remembered for a while
(bounded) so that a response after the final one can be recognised as such
rather than as a response to nothing.

C-MOVE operations are also indexed by (calling AE, Message ID), which is what
the C-STORE sub-operations on another association carry as Move Originator
AE Title / Message ID (PS3.7 §9.1.1.1.6-7), to tie them together.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from dissectors.dimse import (
    AFFECTED_SOP_CLASS_UID,
    COMPLETED,
    FAILED,
    MESSAGE_ID,
    MESSAGE_ID_BEING_RESPONDED_TO,
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

Counts = tuple[int | None, int | None, int | None, int | None]


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
    responses: list[ObservedMessage] = field(default_factory=list)
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
    store_failed_uids: set[str] = field(default_factory=set)

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


class OperationTracker:
    def __init__(self) -> None:
        self._open: dict[tuple[int, bool, int], Operation] = {}
        self._done: dict[int, deque[Operation]] = {}
        self._by_association: dict[int, set[tuple[int, bool, int]]] = {}
        self._moves: dict[tuple[str, int], Operation] = {}

    # -- lookups (before the message changes anything) ---------------------------------

    def lookup(self, obs: ObservedMessage) -> Lookup:
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
            return Lookup()
        message_id = cmd.us(MESSAGE_ID)
        result = Lookup(outstanding_before=self.outstanding(assoc, obs.from_requestor))
        if message_id is not None:
            result.reused_id = self._open.get((assoc.id, obs.from_requestor, message_id))
        if field == Command.C_STORE_RQ:
            originator = cmd.text(MOVE_ORIGINATOR_AE_TITLE)
            originator_id = cmd.us(MOVE_ORIGINATOR_MESSAGE_ID)
            if originator is not None and originator_id is not None:
                result.move = self._moves.get((originator, originator_id))
        return result

    def outstanding(self, assoc: Association, from_requestor: bool) -> int:
        keys = self._by_association.get(assoc.id, ())
        return sum(1 for k in keys if k[1] == from_requestor)

    def open_operations(self, assoc: Association) -> list[Operation]:
        return [self._open[k] for k in self._by_association.get(assoc.id, ())]

    # -- updates ---------------------------------------------------------------------------

    def update(self, obs: ObservedMessage, found: Lookup) -> Operation | None:
        """Record ``obs``; returns the operation it belongs to."""
        cmd = obs.message.command
        field = cmd.command_field
        op = found.op
        if field == Command.C_CANCEL_RQ:
            if op is not None and op.state == OUTSTANDING:
                op.state = CANCEL_SEEN
                op.cancel = obs
            return op
        if is_response(field):
            if op is None or found.after_final:
                return op
            self._response(op, obs)
            return op
        message_id = cmd.us(MESSAGE_ID)
        if message_id is None:
            return None
        assoc = obs.association
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
