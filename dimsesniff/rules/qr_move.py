"""C-MOVE response rules (rules.md §4): related fields, data set, sub-operation arithmetic.

Sources: PS3.4 §C.4.2.1.4.2, §C.4.2.1.6-9, §C.4.2.3.1 and Table C.4-2; PS3.7
§9.1.4; the seed tables PS3.2 N.7-49 / N.7-51.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dissectors.dimse import Command, tag_text

from ..standard.status import SUBOP_COUNTS
from .base import STANDARD, Problem, Severity, message_rule

if TYPE_CHECKING:
    from ..checks import MessageContext

MOVE_RSP = (Command.C_MOVE_RSP,)
COUNT_NAMES = ("Remaining", "Completed", "Failed", "Warning")


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


RULES = (move_pending_counts,)
__all__ = ["RULES", "STANDARD", "SUBOP_COUNTS", "tag_text"]
