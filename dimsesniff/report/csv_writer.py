"""Streaming CSV tables, safe to open in a spreadsheet.

Rows are written (and flushed) as the pipeline produces them, so a capture
of any size is written with flat memory and a live capture can be read
while it runs.  Text from the wire that a spreadsheet would evaluate as a
formula (=, +, -, @, tab, carriage return first) is prefixed with a quote
(OWASP "CSV injection").
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TextIO

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


_FORMULA_START = frozenset(FORMULA_PREFIXES)


def neutralize(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _neutralized(row: dict, columns: tuple[str, ...]) -> list:
    """The row's cells in column order, each neutralized; one pass, no call per cell
    (a set lookup of the first character tells almost every cell apart)."""
    cells = [row[c] for c in columns]
    for i, value in enumerate(cells):
        if isinstance(value, str) and value and value[0] in _FORMULA_START:
            cells[i] = "'" + value
    return cells


class CsvTable:
    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path = path
        self.columns = columns
        self._file: TextIO = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow(columns)
        self.rows = 0

    def write(self, row: dict) -> None:
        self._writer.writerow(_neutralized(row, self.columns))
        self.rows += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
