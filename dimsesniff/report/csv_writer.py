"""Streaming CSV tables, safe to open in a spreadsheet.

Rows are written (and flushed) as the pipeline produces them, so a capture
of any size is written with flat memory and a live capture can be read
while it runs.  Text from the wire that a spreadsheet would evaluate as a
formula (=, +, -, @, tab, carriage return first) is prefixed with a quote
(OWASP "CSV injection").
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import TextIO

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


_FORMULA_START = frozenset(FORMULA_PREFIXES)


def neutralize(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _neutralized(row: dict, cells: Callable[[dict], tuple]) -> Sequence:
    """The row's cells in column order, each neutralized.

    ``cells`` picks them out in one C call (``operator.itemgetter``); a row
    needing no quote (almost every one) is passed on as that tuple, so one
    pass of first-character set lookups is all it costs.
    """
    values: tuple = cells(row)
    for value in values:
        if isinstance(value, str) and value[:1] in _FORMULA_START:
            break
    else:
        return values
    return ["'" + v if isinstance(v, str) and v[:1] in _FORMULA_START else v for v in values]


class CsvTable:
    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path = path
        self.columns = columns
        # itemgetter of one key returns the bare value, not a 1-tuple.
        self._cells = itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
        self._file: TextIO = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow(columns)
        self.rows = 0

    def write(self, row: dict) -> None:
        self._writer.writerow(_neutralized(row, self._cells))
        self.rows += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
