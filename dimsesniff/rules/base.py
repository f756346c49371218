"""What a rule is: a stable ID, a one-line message, a severity, a citation, and its doc.

Decode rules (TCP, upper layer, DIMSE encoding) are raised by the dissectors
and only described here.  Message rules carry a ``check`` that is run on
every DIMSE message whose Command Field is in ``applies_to``, and association
rules one that runs on association events (release, abort, end, and per PDU).
A check returns an iterable of ``Problem``: a generator, or a tuple (``()``
when nothing is wrong) in the rules that run on every PDU or every message,
where making and exhausting an empty generator costs more than the check.
IDs are stable forever; a retired ID is never reused.

A rule belongs to one or both profiles: ``standard`` (PS3.4 / PS3.7 normative
text, the default) and ``ps3.2-tables`` (the seed tables N.7-48..N.7-51 read
literally).  See ``../shared/spec/rules.md`` §11 for where they disagree.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..checks import AssociationEvent, MessageContext

STANDARD = "standard"
SEED_TABLES = "ps3.2-tables"
PROFILES = (STANDARD, SEED_TABLES)
BOTH = frozenset(PROFILES)


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]


@dataclass(frozen=True, slots=True)
class Problem:
    """What a check yields: the specifics of one violation.

    Frames default to the message being checked; ``frames`` widens them
    (e.g. the request and the response of a pairing problem).
    """

    message: str
    observed: str = ""
    expected: str = ""
    frames: tuple[int, ...] = ()
    severity: Severity | None = None  # overrides the rule's, for rules with graded severity


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: Severity
    summary: str  # one line: what is wrong
    cite: str  # standard part + section/table
    doc: str = ""  # why it matters; seed/standard disagreements
    check: Callable[..., Iterable[Problem]] | None = field(default=None, compare=False)
    applies_to: frozenset[int] = frozenset()  # Command Field values (message rules)
    events: frozenset[str] = frozenset()  # association events (association rules)
    profiles: frozenset[str] = BOTH
    origin: str = ""  # [SEED], [P4], [P7], [P8], [DERIVED]... as in rules.md §0.2

    @property
    def family(self) -> str:
        return self.id.split("-", 1)[0]


def _doc(func: Callable[..., Any]) -> tuple[str, str]:
    doc = inspect.getdoc(func) or ""
    first, _, rest = doc.partition("\n")
    return first.strip().rstrip("."), rest.strip()


def _declare(
    rule_id: str,
    severity: Severity,
    cite: str,
    profiles: Iterable[str],
    origin: str,
    *,
    applies_to: Iterable[int] = (),
    events: Iterable[str] = (),
) -> Callable[[Callable[..., Iterable[Problem]]], Rule]:
    """A decorator that turns a check function into its ``Rule`` (message from its docstring)."""

    def wrap(func: Callable[..., Iterable[Problem]]) -> Rule:
        summary, doc = _doc(func)
        return Rule(
            rule_id,
            severity,
            summary,
            cite,
            doc,
            func,
            frozenset(applies_to),
            frozenset(events),
            frozenset(profiles),
            origin,
        )

    return wrap


def message_rule(
    rule_id: str,
    severity: Severity,
    cite: str,
    *,
    applies_to: Iterable[int],
    profiles: Iterable[str] = PROFILES,
    origin: str = "",
) -> Callable[[Callable[[MessageContext], Iterable[Problem]]], Rule]:
    """Declare a message rule; the docstring's first line is its message, the rest its doc."""
    return _declare(rule_id, severity, cite, profiles, origin, applies_to=applies_to)


def association_rule(
    rule_id: str,
    severity: Severity,
    cite: str,
    *,
    events: Iterable[str],
    profiles: Iterable[str] = PROFILES,
    origin: str = "",
) -> Callable[[Callable[[AssociationEvent], Iterable[Problem]]], Rule]:
    """Declare a rule run on association events (``release-rq``, ``abort``, ``end``...)."""
    return _declare(rule_id, severity, cite, profiles, origin, events=events)
