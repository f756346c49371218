"""Charts for the HTML report: matplotlib figures rendered to inline SVG.

Each function takes plain numbers and labels and returns one ``<svg>``
element as text, ready to be put into the page as it is.  matplotlib is
imported here only, when a report is written, and is driven through its
object API (no pyplot, no global backend), with text kept as SVG text
(escaped by matplotlib's SVG writer), math-text parsing off (so a ``$`` in
an AE title is just a dollar sign) and a fixed hash salt so that the same
input gives the same file.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

SEVERITY_COLORS = {"error": "#c0392b", "warning": "#e69f00", "info": "#3a7dbf"}
STATUS_COLORS = {
    "Success": "#2e8b57",
    "Pending": "#7aa6d6",
    "Warning": "#e69f00",
    "Failure": "#c0392b",
    "Cancel": "#8c8c8c",
    "Invalid": "#8e44ad",
}
END_COLORS = {
    "released": "#2e8b57",
    "aborted": "#c0392b",
    "rejected": "#8e44ad",
    "other": "#e69f00",
}
MAX_BARS = 40
LABELLED_BARS = 60

_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "dimsesniff",
    "text.parse_math": False,
    "font.size": 9,
    "font.family": "sans-serif",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
}


def _figure(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _svg(fig: Any, description: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # An accessible name; the description is ours (no wire text), escaped all the same.
    from html import escape

    return text.replace("<svg ", f'<svg role="img" aria-label="{escape(description)}" ', 1)


def _legend(ax: Any, handles: list | None = None) -> None:
    """Legend to the right of the plot, never over the bars."""
    kwargs = {"handles": handles} if handles is not None else {}
    ax.legend(**kwargs, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _integer_x(ax: Any, values: Sequence[float]) -> None:
    """Counts: whole-number ticks only."""
    from matplotlib.ticker import MaxNLocator

    if all(float(v).is_integer() for v in values):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _rc() -> Any:
    import matplotlib

    return matplotlib.rc_context(_RC)


def barh(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    xlabel: str,
    colors: Sequence[str] | None = None,
    legend: dict[str, str] | None = None,
) -> str:
    """Horizontal bars, first label on top; at most ``MAX_BARS`` (the rest summed as "others")."""
    labels, values = list(labels), list(values)
    colors = list(colors) if colors else ["#3a7dbf"] * len(labels)
    if len(labels) > MAX_BARS:
        rest = sum(values[MAX_BARS - 1 :])
        labels = labels[: MAX_BARS - 1] + [f"{len(values) - MAX_BARS + 1} others"]
        values = values[: MAX_BARS - 1] + [rest]
        colors = colors[: MAX_BARS - 1] + ["#999999"]
    with _rc():
        fig, ax = _figure(8.0, 0.9 + 0.28 * max(len(labels), 1))
        y = list(range(len(labels)))[::-1]
        bars = ax.barh(y, values, color=colors)
        ax.bar_label(bars, labels=[f"{v:g}" for v in values], padding=3, fontsize=8)
        ax.set_yticks(y, labels)
        ax.set_xlabel(xlabel)
        ax.set_title(title, loc="left")
        ax.margins(x=0.12)
        _integer_x(ax, values)
        if legend:
            from matplotlib.patches import Patch

            _legend(ax, [Patch(color=c, label=k) for k, c in legend.items()])
        return _svg(fig, title)


def stacked_barh(
    labels: Sequence[str],
    stacks: dict[str, Sequence[float]],
    colors: dict[str, str],
    *,
    title: str,
    xlabel: str,
) -> str:
    """Horizontal bars split by category (e.g. severity), first label on top."""
    labels = list(labels)[:MAX_BARS]
    with _rc():
        fig, ax = _figure(8.0, 1.1 + 0.28 * max(len(labels), 1))
        y = list(range(len(labels)))[::-1]
        left = [0.0] * len(labels)
        for name, values in stacks.items():
            vals = list(values)[: len(labels)]
            if not any(vals):
                continue
            ax.barh(y, vals, left=left, color=colors.get(name, "#999999"), label=name)
            left = [a + b for a, b in zip(left, vals, strict=True)]
        for yi, total in zip(y, left, strict=True):
            ax.text(total, yi, f" {total:g}", va="center", fontsize=8)
        ax.set_yticks(y, labels)
        ax.set_xlabel(xlabel)
        ax.set_title(title, loc="left")
        ax.margins(x=0.12)
        _integer_x(ax, left)
        _legend(ax)
        return _svg(fig, title)


def distributions(groups: dict[str, Sequence[float]], *, title: str, xlabel: str) -> str:
    """One box plot per group (with every value as a dot), first group on top.

    The axis is logarithmic when the values span more than two decades.
    """
    names = list(groups)[:MAX_BARS]
    data = [list(groups[n]) for n in names]
    with _rc():
        fig, ax = _figure(8.0, 1.0 + 0.45 * max(len(names), 1))
        positions = list(range(len(names)))[::-1]
        ax.boxplot(
            data,
            positions=positions,
            orientation="horizontal",
            widths=0.5,
            showfliers=False,
            medianprops={"color": "#c0392b"},
        )
        for pos, values in zip(positions, data, strict=True):
            n = len(values)
            offsets = [((i * 0.618) % 1.0 - 0.5) * 0.3 for i in range(n)]
            ax.scatter(
                values, [pos + o for o in offsets], s=9, alpha=0.6, color="#3a7dbf", zorder=3
            )
        ax.set_yticks(positions, [f"{n} (n={len(d)})" for n, d in zip(names, data, strict=True)])
        positive = [v for d in data for v in d if v > 0]
        if positive and max(positive) / min(positive) > 100:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_title(title, loc="left")
        return _svg(fig, title)


def timeline(
    bars: Sequence[tuple[float, float, str, str]],
    *,
    title: str,
    xlabel: str,
) -> str:
    """One horizontal bar per association: (start s, end s, label, end kind), first on top.

    Up to ``LABELLED_BARS`` bars are labelled; beyond that the bars are drawn thinner and
    unlabelled (the report's table below names them), which also keeps the drawing fast.
    """
    bars = list(bars)
    labelled = len(bars) <= LABELLED_BARS
    with _rc():
        n = max(len(bars), 1)
        fig, ax = _figure(9.0, 1.2 + (0.22 * n if labelled else min(0.03 * n, 9.0)))
        span = max((end for _s, end, _l, _k in bars), default=1.0) or 1.0
        minimum = span / 400
        if bars:
            ax.barh(
                [n - 1 - i for i in range(len(bars))],
                [max(end - start, minimum) for start, end, _l, _k in bars],
                left=[start for start, _e, _l, _k in bars],
                height=0.6 if labelled else 0.8,
                color=[END_COLORS.get(kind, END_COLORS["other"]) for *_x, kind in bars],
            )
        if labelled:
            ax.set_yticks([n - 1 - i for i in range(len(bars))], [b[2] for b in bars])
        else:
            ax.set_yticks([])
            ax.set_ylabel(f"{len(bars)} associations, first on top")
        ax.set_ylim(-0.6, n - 0.4)
        from matplotlib.patches import Patch

        used = {b[3] for b in bars}
        _legend(ax, [Patch(color=c, label=k) for k, c in END_COLORS.items() if k in used])
        ax.set_xlabel(xlabel)
        ax.set_title(title, loc="left")
        ax.set_xlim(left=0)
        return _svg(fig, title)
