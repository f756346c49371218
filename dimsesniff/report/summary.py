"""The short summary printed on the terminal after an analysis.

Text that can come from the wire (AE titles in the peer column) or from the user
(file names in warnings and paths) goes through ``safe`` first: control characters
made visible, rich markup escaped.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..analysis import Tally
from ..pipeline import Counters
from ..rules import RULES
from .rows import iso
from .safe_text import printable


def safe(text: object) -> str:
    """Any text for a rich console string: no control character, no live markup."""
    return escape(printable(str(text)))


def print_summary(
    console: Console,
    counters: Counters,
    tally: Tally,
    outputs: list[Path],
    warnings: list[str],
    elapsed: float,
) -> None:
    span = ""
    if counters.first_ts is not None and counters.last_ts is not None:
        span = f" from {iso(counters.first_ts)} to {iso(counters.last_ts)}"
    console.print(
        f"[bold]{counters.frames}[/] frames ({counters.bytes / 1e6:.1f} MB){span}; "
        f"{counters.connections} TCP connections, [bold]{tally.associations}[/] DICOM "
        f"associations"
        + (f" ({tally.mid_capture} caught mid-way)" if tally.mid_capture else "")
        + f"; analysed in {elapsed:.2f} s",
        highlight=False,
    )
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {safe(warning)}", highlight=False)
    if tally.messages:
        table = Table(title="DIMSE messages", title_justify="left", show_edge=False)
        table.add_column("command")
        table.add_column("count", justify="right")
        table.add_column("statuses")
        for command, count in sorted(tally.messages.items(), key=lambda kv: -kv[1]):
            statuses = ", ".join(
                f"{status}×{n}"
                for (cmd, status), n in sorted(tally.statuses.items())
                if cmd == command
            )
            table.add_row(safe(command), str(count), safe(statuses))
        console.print(table)
    if tally.findings:
        table = Table(title="Findings by rule", title_justify="left", show_edge=False)
        table.add_column("rule")
        table.add_column("severity")
        table.add_column("count", justify="right")
        table.add_column("what")
        for rule_id, count in sorted(tally.findings.items(), key=lambda kv: -kv[1]):
            rule = RULES.get(rule_id)
            table.add_row(
                safe(rule_id),
                rule.severity.value if rule else "?",
                str(count),
                safe(rule.summary) if rule else "",
            )
        console.print(table)
        table = Table(
            title="Findings by peer (server, called AE)", title_justify="left", show_edge=False
        )
        table.add_column("peer")
        table.add_column("count", justify="right")
        for peer, count in tally.findings_by_peer.most_common(10):
            table.add_row(safe(peer), str(count))
        console.print(table)
        sev = tally.severities
        console.print(
            f"findings: {sev['error']} error, {sev['warning']} warning, {sev['info']} info",
            highlight=False,
        )
    else:
        console.print("no findings")
    for path in outputs:
        console.print(f"wrote {safe(path)}", highlight=False)
