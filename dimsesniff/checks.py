"""Run the rules: every message rule on each DIMSE message, association rules on events.

For each message the checker looks up the operation it belongs to (state as
it was *before* this message), runs the rules that apply to its Command
Field, then lets the tracker record the message.  Rules therefore see, for
example, the counts of the previous Pending response when judging this one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from dissectors.dimse import COMMAND_DATA_SET_TYPE, NO_DATA_SET, CommandSet

from .associations import Association
from .observations import Finding, ObservedMessage
from .operations import Counts, Lookup, Operation, OperationTracker, counts
from .rules import RULES, Rule
from .rules.base import STANDARD, Problem
from .standard.status import StatusClass, status_class


class MessageContext:
    """What a message rule is given: the message, its association and its operation.

    The command set, its Command Field, its Status and the Status's class are
    read once here: some forty rules ask for them on every message.  A plain
    slotted class, not a dataclass with ``cached_property``: that takes a lock
    on every first read (Python 3.11), and a C-FIND-RSP makes one context per
    message of a busy capture.
    """

    __slots__ = (
        "obs",
        "lookup",
        "tracker",
        "profile",
        "assoc",
        "cmd",
        "command_field",
        "status",
        "klass",
        "_counts",
    )

    def __init__(
        self, obs: ObservedMessage, lookup: Lookup, tracker: OperationTracker, profile: str
    ) -> None:
        self.obs = obs
        self.lookup = lookup
        self.tracker = tracker
        self.profile = profile
        self.assoc: Association = obs.association
        self.cmd: CommandSet = obs.message.command
        self.command_field: int | None = self.cmd.command_field
        status = self.status = self.cmd.status
        self.klass: StatusClass | None = None if status is None else status_class(status)
        self._counts: Counts | None = None

    @property
    def final(self) -> bool:
        """Final per rules.md D12: any class but Pending (and a status must be present)."""
        return self.klass is not None and self.klass is not StatusClass.PENDING

    @property
    def op(self) -> Operation | None:
        return self.lookup.op

    @property
    def counts(self) -> Counts:
        """The sub-operation counts, read on first use (only C-MOVE/C-GET rules ask)."""
        found = self._counts
        if found is None:
            found = self._counts = counts(self.cmd)
        return found

    @property
    def has_data_set(self) -> bool:
        """Data-set PDVs followed the command (``HAS_DS`` in rules.md §0.4)."""
        return self.obs.message.has_data_set

    @property
    def announces_data_set(self) -> bool:
        """Command Data Set Type is present and not 0101H (``DST ≠ 0101``)."""
        value = self.cmd.us(COMMAND_DATA_SET_TYPE)
        return value is not None and value != NO_DATA_SET


class AssociationEvent:
    """What an association rule is given: the association, the event, the open operations.

    One per association, refilled by the checker for each of its events: a
    P-DATA-TF makes three events and a busy capture tens of thousands a
    second, and building an object for each cost more than most rules.  Valid
    only while the rules run (none keeps it); ``scratch`` is the association's
    state kept for rules from one event to the next.
    """

    __slots__ = (
        "assoc",
        "kind",
        "from_requestor",
        "frame",
        "ts",
        "tracker",
        "profile",
        "pdu",
        "scratch",
        "_open",
    )

    def __init__(self, assoc: Association, tracker: OperationTracker, profile: str) -> None:
        self.assoc = assoc
        self.tracker = tracker
        self.profile = profile
        self.kind = ""  # see EVENTS
        self.from_requestor: bool | None = None
        self.frame = 0
        self.ts = 0.0
        self.pdu: object | None = None  # the upper-layer event (AssociateRQ, PDataTF, Pdv...)
        self.scratch: dict = {}
        self._open: list[Operation] | None = None

    @property
    def open_operations(self) -> list[Operation]:
        """Operations of this association still waiting for their final response."""
        if self._open is None:
            self._open = self.tracker.open_operations(self.assoc)
        return self._open


EventListener = Callable[[Association, bool | None, int, float, object | None], None]
"""``listen(association, from_requestor, frame, ts, pdu)``: runs the rules of one event kind."""


EVENTS = (
    "associate-rq",
    "associate-ac",
    "associate-rj",  # after the association record took it in
    "pdata",  # a P-DATA-TF header (pdu = PDataTF)
    "pdata-end",  # the end of a P-DATA-TF (pdu = PDataEnd: length, first and last frame)
    "pdv",  # the first piece of each PDV (pdu = Pdv)
    "release-rq",
    "release-rp",
    "abort",
    "end",  # the association is over (after release, abort, close or capture end)
)


class Checker:
    def __init__(
        self,
        emit: Callable[[Finding], None],
        *,
        profile: str = STANDARD,
        rules: Iterable[Rule] | None = None,
    ) -> None:
        self._emit = emit
        self.profile = profile
        self.tracker = OperationTracker()
        active = [
            r
            for r in (rules if rules is not None else RULES.values())
            if r.check is not None and profile in r.profiles
        ]
        self._events: dict[int, AssociationEvent] = {}  # by association ID
        by_command: dict[int, list[Rule]] = {}
        by_event: dict[str, list[Rule]] = {}
        for rule in active:
            for command_field in rule.applies_to:
                by_command.setdefault(command_field, []).append(rule)
            for event in rule.events:
                by_event.setdefault(event, []).append(rule)
        # (rule, check) pairs bound once: the loops below run ~40 of them per message.
        self._by_command = {
            command_field: tuple((rule, rule.check) for rule in rules)
            for command_field, rules in by_command.items()
        }
        self._listeners = {kind: self._listener(kind, rules) for kind, rules in by_event.items()}

    def message(self, obs: ObservedMessage) -> None:
        tracker = self.tracker
        found = tracker.lookup(obs)
        msg = obs.message
        checks = self._by_command.get(msg.command_field or 0)
        if checks:
            ctx = MessageContext(obs, found, tracker, self.profile)
            for rule, check in checks:
                problems = check(ctx)  # type: ignore[misc]
                if problems:  # () from a rule that returns, not yields, when nothing is wrong
                    for problem in problems:
                        self._report(
                            rule,
                            problem,
                            (msg.first_frame, msg.last_frame),
                            msg.ts_first,
                            obs.association,
                            obs,
                        )
        tracker.update(obs, found)

    def _report(
        self,
        rule: Rule,
        problem: Problem,
        frames: tuple[int, ...],
        ts: float,
        assoc: Association,
        obs: ObservedMessage | None = None,
    ) -> None:
        """One problem becomes one finding; its own frames, if any, replace the default ones."""
        frames = problem.frames or frames
        self._emit(
            Finding(
                rule.id,
                problem.message,
                min(frames),
                max(frames),
                ts,
                assoc,
                obs,
                observed_value=problem.observed,
                expected=problem.expected,
                profile=self.profile,
                severity=problem.severity.value if problem.severity else "",
            )
        )

    def _listener(self, kind: str, rules: list[Rule]) -> EventListener:
        """The function that runs ``rules`` on each event of ``kind``, all bound once."""
        checks = tuple((rule, rule.check) for rule in rules)
        events, tracker, profile, report = self._events, self.tracker, self.profile, self._report

        def listen(
            assoc: Association,
            from_requestor: bool | None,
            frame: int,
            ts: float,
            pdu: object | None = None,
        ) -> None:
            event = events.get(assoc.id)
            if event is None:
                event = events[assoc.id] = AssociationEvent(assoc, tracker, profile)
            event.assoc = assoc
            event.kind = kind
            event.from_requestor = from_requestor
            event.frame = frame
            event.ts = ts
            event.pdu = pdu
            event._open = None
            for rule, check in checks:
                problems = check(event)  # type: ignore[misc]
                if problems:  # () from a rule that returns, not yields, when nothing is wrong
                    for problem in problems:
                        report(rule, problem, (frame,), ts, assoc)

        return listen

    def listener(self, kind: str) -> EventListener | None:
        """What to call for each event of ``kind``; None when no active rule listens to it.

        The per-PDU events (``pdata``, ``pdv``, ``pdata-end``) are sent here
        directly: three a P-DATA-TF, so the hot path skips the lookups of
        ``association_event``, and skips the call altogether when nobody listens.
        """
        return self._listeners.get(kind)

    def association_event(
        self,
        assoc: Association,
        kind: str,
        from_requestor: bool | None,
        frame: int,
        ts: float,
        pdu: object | None = None,
    ) -> None:
        listen = self._listeners.get(kind)
        if listen is not None:
            listen(assoc, from_requestor, frame, ts, pdu)
        if kind == "end":
            self.tracker.forget(assoc)
            self._events.pop(assoc.id, None)


__all__ = ["AssociationEvent", "Checker", "EventListener", "MessageContext", "Problem"]
