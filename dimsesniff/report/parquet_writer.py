"""Streaming Parquet tables (pyarrow), written in row groups so memory stays bounded.

Rows are buffered column by column and written as one row group every
``row_group_rows`` rows (and at ``flush``/``close``).  The file's schema is
``schema.arrow_schema``: typed columns (int64, double, bool, UTF-8 string,
timestamp[us, UTC]) with the pandas dtypes in the metadata, so
``pd.read_parquet`` gives back the documented dtypes.  Values are kept as
they were on the wire (nothing is neutralised, unlike CSV).  The file is
complete only once closed (Parquet keeps its index at the end).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from .schema import TABLES, TIMESTAMP, arrow_schema, normalize

ROW_GROUP_ROWS = 10_000


class ParquetTable:
    def __init__(self, path: Path, table: str, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self.path = path
        self.table = table
        self.columns = tuple(c.name for c in TABLES[table])
        self._timestamps = frozenset(c.name for c in TABLES[table] if c.dtype == TIMESTAMP)
        self.schema = arrow_schema(table)
        self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self._limit = row_group_rows
        self._buffer: dict[str, list] = {c: [] for c in self.columns}
        self._buffered = 0
        self.rows = 0

    def write(self, row: dict) -> None:
        row = normalize(self.table, row)
        for name, values in self._buffer.items():
            value = row[name]
            if value is not None and name in self._timestamps:
                value = datetime.fromisoformat(value)
            values.append(value)
        self._buffered += 1
        self.rows += 1
        if self._buffered >= self._limit:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one row group."""
        if not self._buffered:
            return
        batch = self._pa.RecordBatch.from_pydict(self._buffer, schema=self.schema)
        self._writer.write_batch(batch)
        self._buffer = {c: [] for c in self.columns}
        self._buffered = 0

    def close(self) -> None:
        self.flush()
        self._writer.close()
