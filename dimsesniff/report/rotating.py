"""Output files for long runs: never overwritten, started afresh by size or age (``--rotate``).

An output always has the same name (``messages.csv``), so a tool can follow
it with ``tail -F``.  When it is rotated, the finished piece is renamed
aside with the UTC time of the rotation (``messages-20261103T120000Z.csv``)
and a new piece, with its own header, is started under the usual name.  A
file already there when a run starts is moved aside the same way (its name
then carries its modification time), so restarting a capture never destroys
the output of the previous one.

Rotation is checked by the caller, about once a second, so a piece can grow
past the size limit by what is written in that second.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, Protocol, TypeVar

_SIZE_UNITS = {
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_TIME_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_AMOUNT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*")


@dataclass(frozen=True, slots=True)
class RotatePolicy:
    """When a piece is finished: at ``max_bytes``, after ``max_seconds``, or both."""

    max_bytes: int | None = None
    max_seconds: float | None = None


def parse_rotate(values: list[str]) -> RotatePolicy:
    """``["100MB", "1h"]`` -> both limits; raises ``ValueError`` with a one-line reason.

    Sizes: B, KB/MB/GB (powers of 1000) and KiB/MiB/GiB; times: s, min (or m), h, d.
    ``m`` alone means minutes, as in ``30m``.
    """
    max_bytes: int | None = None
    max_seconds: float | None = None
    for value in values:
        match = _AMOUNT.fullmatch(value.lower())
        number, unit = (float(match[1]), match[2]) if match else (0.0, "")
        if unit in _TIME_UNITS and number > 0:
            max_seconds = number * _TIME_UNITS[unit]
        elif unit in _SIZE_UNITS and number * _SIZE_UNITS[unit] >= 1024:
            max_bytes = int(number * _SIZE_UNITS[unit])
        else:
            raise ValueError(
                f"--rotate {value!r}: give a size such as 100MB (at least 1 KiB) "
                "or a time such as 30min or 1h"
            )
    return RotatePolicy(max_bytes, max_seconds)


class Piece(Protocol):
    """What is rotated: a CSV table, a JSONL table, a pcapng file."""

    def flush(self) -> None: ...
    def close(self) -> None: ...


P = TypeVar("P", bound=Piece)


def aside_name(path: Path, when: float) -> Path:
    """A free name for a finished piece: ``name-YYYYMMDDTHHMMSSZ[_N].suffix``.

    Names sort in time order (``_2`` sorts after the suffix's dot).
    """
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.stem}-{stamp}{path.suffix}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{stamp}_{n}{path.suffix}")
    return candidate


def move_aside(path: Path, when: float | None = None) -> Path | None:
    """Rename ``path`` (if it exists) to a timestamped name; return the new name."""
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    target = aside_name(path, mtime if when is None else when)
    os.replace(path, target)
    return target


class Rotating(Generic[P]):
    """One output kept at ``path``; ``open_piece(path)`` starts each piece (header included)."""

    def __init__(
        self, path: Path, open_piece: Callable[[Path], P], policy: RotatePolicy, now: float
    ) -> None:
        self.path = path
        self.policy = policy
        self._open_piece = open_piece
        self.moved_aside = move_aside(path)  # where a file of an earlier run went
        self.rotations = 0
        self.current: P = open_piece(path)
        # Time rotation keeps to a schedule (start + k * max_seconds), so the roughly
        # once-a-second checks make the pieces neither drift nor skip.
        self._next_time = now + policy.max_seconds if policy.max_seconds is not None else None

    def due(self, now: float) -> bool:
        policy = self.policy
        if self._next_time is not None and now >= self._next_time:
            return True
        if policy.max_bytes is not None:
            self.current.flush()
            return self.path.stat().st_size >= policy.max_bytes
        return False

    def rotate_if_due(self, now: float) -> bool:
        if not self.due(now):
            return False
        self.current.close()
        move_aside(self.path, now)
        self.rotations += 1
        self.current = self._open_piece(self.path)
        if self._next_time is not None:
            while self._next_time <= now:
                self._next_time += self.policy.max_seconds
        return True

    def flush(self) -> None:
        self.current.flush()

    def close(self) -> None:
        self.current.close()
