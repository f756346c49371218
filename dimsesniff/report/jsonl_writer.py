"""Streaming JSON Lines tables: one JSON object per row, one row per line.

Rows are written as the pipeline produces them (flat memory; ``flush`` makes
them readable while a live capture runs).  Keys and their order are those of
``schema.py``; a missing or empty value is ``null``.  Values are kept as they
were on the wire: unlike CSV nothing is neutralised, so a consumer that puts
them into HTML or a spreadsheet must escape them itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from .schema import TABLE_COLUMNS, normalize


class JsonlTable:
    """``JsonlTable(path, "messages")``, or with the column tuple like ``CsvTable``."""

    def __init__(self, path: Path, table: str | tuple[str, ...]) -> None:
        self.path = path
        if isinstance(table, str):
            self.table: str | None = table
            self.columns = TABLE_COLUMNS[table]
        else:
            self.columns = tuple(table)
            self.table = next((t for t, c in TABLE_COLUMNS.items() if c == self.columns), None)
        self._file: TextIO = path.open("w", encoding="utf-8", errors="backslashreplace")
        self._encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
        self.rows = 0

    def write(self, row: dict) -> None:
        if self.table is not None:
            row = normalize(self.table, row)
        else:
            row = {c: (None if row[c] == "" else row[c]) for c in self.columns}
        self._file.write(self._encode(row) + "\n")
        self.rows += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
