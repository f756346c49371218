"""What ``analyze`` and ``live`` share: option declarations, rule selection, the exit rule.

One place, so the two commands cannot drift apart in how ``--select MOVE,SEQ``
or ``--fail-on warning`` behave.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .report.safe_text import printable
from .rules import RULES, Severity

err = Console(stderr=True, soft_wrap=True)


class Profile(StrEnum):
    standard = "standard"
    seed_tables = "ps3.2-tables"


class FailOn(StrEnum):
    error = "error"
    warning = "warning"
    never = "never"


def fail(message: str) -> typer.Exit:
    """One line on stderr and exit code 2 (usage or input error), never a traceback."""
    err.print(f"[red]error:[/] {escape(printable(message))}", highlight=False)
    return typer.Exit(code=2)


def matches(rule_id: str, patterns: list[str]) -> bool:
    """``--select MOVE,SEQ``: a pattern is a rule ID or a prefix of one."""
    return any(rule_id == p or rule_id.startswith(p) for p in patterns)


def split_list(values: list[str] | None) -> list[str]:
    return [v.strip().upper() for item in values or [] for v in item.split(",") if v.strip()]


def rule_filter(select: list[str] | None, ignore: list[str] | None) -> Callable[[str], bool]:
    """The finding filter of ``--select`` / ``--ignore``; unknown patterns are a usage error."""
    selected, ignored = split_list(select), split_list(ignore)
    unknown = [p for p in selected + ignored if not any(r.startswith(p) for r in RULES)]
    if unknown:
        raise fail(f"no rule matches {', '.join(unknown)} (see: dimsesniff rules)")

    def keep(rule_id: str) -> bool:
        return (not selected or matches(rule_id, selected)) and not matches(rule_id, ignored)

    return keep


def failed(severities_seen: Iterable[str], fail_on: FailOn) -> bool:
    """Whether a finding at or above ``--fail-on`` was reported (exit code 1)."""
    if fail_on is FailOn.never:
        return False
    threshold = Severity(fail_on.value).rank
    return any(Severity(s).rank >= threshold for s in severities_seen)


PortOption = Annotated[
    list[int] | None,
    typer.Option("--port", help="Always decode this TCP port as DICOM (repeatable)."),
]
SelectOption = Annotated[
    list[str] | None,
    typer.Option(help="Only report these rule IDs or prefixes (comma-separated)."),
]
IgnoreOption = Annotated[
    list[str] | None,
    typer.Option(help="Do not report these rule IDs or prefixes (comma-separated)."),
]
ProfileOption = Annotated[
    Profile,
    typer.Option(
        help="standard: PS3.4/PS3.7 normative text; ps3.2-tables: the PS3.2 "
        "Annex N tables N.7-48..N.7-51 read literally."
    ),
]
IncludePhiOption = Annotated[
    bool,
    typer.Option(
        help="Write patient names, IDs and birth dates as they are (default: keyed tokens)."
    ),
]
PhiKeyOption = Annotated[
    str | None,
    typer.Option(help="Key for the patient-data tokens, so they are stable across runs."),
]
