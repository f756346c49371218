"""The documented schema of the three tables: one place for names, types, units and meaning.

Every output (CSV, JSON Lines, Parquet, the DataFrames of ``dimsesniff.analyze``)
has exactly these columns, in this order, with these types; ``dimsesniff
schema`` prints this module.  ``rows.py`` builds the rows and takes its column
order from here.

Types are pandas nullable dtypes, so a missing value is ``<NA>`` whatever the
type and integers stay integers:

========================  ================================  ==================================
dtype                     CSV / JSON Lines                  Parquet
========================  ================================  ==================================
``Int64``                 decimal integer                   int64
``Float64``               decimal number                    double
``boolean``               ``True`` / ``False`` (JSON bool)  bool
``string``                text                              string (UTF-8)
``datetime64[us, UTC]``   ISO-8601 text, UTC, microseconds  timestamp[us, tz=UTC]
========================  ================================  ==================================

Missing and empty are the same thing: a missing value is an empty CSV cell,
JSON ``null`` and Parquet null, and an empty text from the wire is written as
missing too.  Status codes and command fields are text (``0xFF00``), the way
Wireshark shows them, never numbers.

CSV cells that a spreadsheet would run as a formula (first character ``=``,
``+``, ``-``, ``@``, tab or carriage return) carry a leading ``'``; JSON Lines
and Parquet keep the values as they were on the wire (escape them yourself
before putting them into HTML or a spreadsheet).

Reload a file with :func:`read_table` (any format), or with plain pandas::

    pd.read_csv(p, dtype=dtypes(t), keep_default_na=False, na_values=[""])  # then timestamps
    pd.read_parquet(p)                       # dtypes are stored in the file
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INT = "Int64"
FLOAT = "Float64"
BOOL = "boolean"
STRING = "string"
TIMESTAMP = "datetime64[us, UTC]"

DTYPES = (INT, FLOAT, BOOL, STRING, TIMESTAMP)
FORMATS = ("csv", "jsonl", "parquet")
TABLES_ORDER = ("messages", "associations", "violations")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    dtype: str
    unit: str
    description: str


# -- messages: one row per DIMSE message ---------------------------------------------------------

MESSAGES = (
    Column(
        "first_frame",
        INT,
        "frame",
        "First capture frame carrying bytes of the message "
        "(numbered from 1 like Wireshark, continuing across input files).",
    ),
    Column("last_frame", INT, "frame", "Frame that completed the message."),
    Column("timestamp", TIMESTAMP, "UTC", "Capture time of first_frame."),
    Column(
        "association_id",
        INT,
        "",
        "Association number in this analysis (1, 2, ... in order of "
        "detection); joins associations.association_id.",
    ),
    Column("client", STRING, "ip:port", "Association requestor (SCU side); IPv6 as [addr]:port."),
    Column("server", STRING, "ip:port", "Association acceptor (SCP side)."),
    Column(
        "calling_ae", STRING, "AE title", "Calling AE Title of the A-ASSOCIATE-RQ, padding removed."
    ),
    Column(
        "called_ae", STRING, "AE title", "Called AE Title of the A-ASSOCIATE-RQ, padding removed."
    ),
    Column("direction", STRING, "", "client->server or server->client."),
    Column("context_id", INT, "", "Presentation Context ID of the message's PDVs."),
    Column(
        "abstract_syntax", STRING, "UID", "Abstract syntax (SOP Class) of the presentation context."
    ),
    Column("abstract_syntax_name", STRING, "", "Name of that SOP Class (PS3.6 Table A-1)."),
    Column("transfer_syntax", STRING, "UID", "Transfer syntax accepted for the context."),
    Column(
        "transfer_syntax_assumed",
        BOOL,
        "",
        "True when the capture began mid-association and the "
        "transfer syntax was assumed (Implicit VR Little Endian).",
    ),
    Column("command", STRING, "", "DIMSE command name, e.g. C-FIND-RSP."),
    Column("command_field", STRING, "hex", "Command Field (0000,0100), e.g. 0x8020."),
    Column("message_id", INT, "", "Message ID (0000,0110) of a request."),
    Column("message_id_responded_to", INT, "", "Message ID Being Responded To (0000,0120)."),
    Column("affected_sop_class_uid", STRING, "UID", "Affected SOP Class UID (0000,0002)."),
    Column(
        "status",
        STRING,
        "hex",
        "Status (0000,0900) of a response, e.g. 0xFF00; missing for requests.",
    ),
    Column("status_meaning", STRING, "", "Meaning of the status for this service (PS3.4 / PS3.7)."),
    Column(
        "status_class",
        STRING,
        "",
        "Success, Warning, Failure, Cancel, Pending or Invalid (PS3.7 Annex C).",
    ),
    Column("remaining", INT, "count", "Number of Remaining Sub-operations (0000,1020)."),
    Column("completed", INT, "count", "Number of Completed Sub-operations (0000,1021)."),
    Column("failed", INT, "count", "Number of Failed Sub-operations (0000,1022)."),
    Column("warning", INT, "count", "Number of Warning Sub-operations (0000,1023)."),
    Column("error_comment", STRING, "", "Error Comment (0000,0902), as sent."),
    Column(
        "offending_element",
        STRING,
        "tags",
        "Offending Element (0000,0901) as (gggg,eeee), space-separated.",
    ),
    Column("move_destination", STRING, "AE title", "Move Destination (0000,0600) of a C-MOVE-RQ."),
    Column("priority", INT, "", "Priority (0000,0700): 0 medium, 1 high, 2 low."),
    Column(
        "data_set_type", STRING, "hex", "Command Data Set Type (0000,0800); 0x0101 = no data set."
    ),
    Column("data_set_present", BOOL, "", "Whether a data set followed the command set."),
    Column("data_set_bytes", INT, "bytes", "Size of the data set (0 without one)."),
    Column(
        "identifier",
        STRING,
        "",
        "Query/Retrieve identifier as Keyword=value; ... (patient data "
        "as phi: tokens unless --include-phi); C-STORE data sets are never kept.",
    ),
    Column("identifier_error", STRING, "", "Why the identifier could not be decoded."),
    Column(
        "request_first_frame",
        INT,
        "frame",
        "For a response or C-CANCEL-RQ: first frame of the request it answers.",
    ),
    Column(
        "response_time_s",
        FLOAT,
        "s",
        "From the request's last frame to this message's first frame.",
    ),
    Column("complete", BOOL, "", "False when the capture ended or lost bytes inside the message."),
    Column("lost_bytes", INT, "bytes", "Bytes of the message missing from the capture (TCP gaps)."),
)

# -- associations: one row per association -------------------------------------------------------

ASSOCIATIONS = (
    Column("association_id", INT, "", "Association number in this analysis."),
    Column("client", STRING, "ip:port", "Association requestor."),
    Column("server", STRING, "ip:port", "Association acceptor."),
    Column("calling_ae", STRING, "AE title", "Calling AE Title."),
    Column("called_ae", STRING, "AE title", "Called AE Title."),
    Column("start_frame", INT, "frame", "Frame of the A-ASSOCIATE-RQ (or the first frame seen)."),
    Column(
        "end_frame", INT, "frame", "Frame that ended it (A-RELEASE-RP, A-ABORT, FIN, RST, ...)."
    ),
    Column("start_time", TIMESTAMP, "UTC", "Capture time of start_frame."),
    Column("end_time", TIMESTAMP, "UTC", "Capture time of end_frame."),
    Column("duration_s", FLOAT, "s", "end_time - start_time."),
    Column(
        "end_reason",
        STRING,
        "",
        "released, aborted by ..., rejected (...), connection reset, capture ended, ...",
    ),
    Column(
        "started_mid_capture", BOOL, "", "True when the capture began after the association did."
    ),
    Column("application_context", STRING, "UID", "Application Context Name."),
    Column(
        "accepted_contexts", STRING, "", "id:SOP Class@transfer syntax; ... for accepted contexts."
    ),
    Column("rejected_contexts", STRING, "", "id:SOP Class:reason; ... for rejected contexts."),
    Column(
        "max_pdu_client", INT, "bytes", "Maximum Length the requestor can receive (0 = no limit)."
    ),
    Column(
        "max_pdu_server", INT, "bytes", "Maximum Length the acceptor can receive (0 = no limit)."
    ),
    Column(
        "implementation_class_uid_client", STRING, "UID", "Requestor's Implementation Class UID."
    ),
    Column("implementation_version_client", STRING, "", "Requestor's Implementation Version Name."),
    Column(
        "implementation_class_uid_server", STRING, "UID", "Acceptor's Implementation Class UID."
    ),
    Column("implementation_version_server", STRING, "", "Acceptor's Implementation Version Name."),
    Column(
        "async_window",
        STRING,
        "",
        "Asynchronous Operations Window, 'rq invoked/performed, ac invoked/performed'.",
    ),
    Column("role_selection", STRING, "", "SCP/SCU Role Selection items proposed."),
    Column("user_identity_type", INT, "", "User Identity Type proposed (PS3.7 D.3.3.7)."),
    Column("messages_client", INT, "count", "DIMSE messages sent by the requestor."),
    Column("messages_server", INT, "count", "DIMSE messages sent by the acceptor."),
    Column("findings", INT, "count", "Findings on this association."),
)

# -- violations: one row per finding -------------------------------------------------------------

VIOLATIONS = (
    Column("rule", STRING, "", "Rule ID (see: dimsesniff rules ID)."),
    Column("severity", STRING, "", "error, warning or info."),
    Column("message", STRING, "", "What was found."),
    Column("citation", STRING, "", "Where the standard says so."),
    Column("first_frame", INT, "frame", "First frame of the evidence."),
    Column("last_frame", INT, "frame", "Last frame of the evidence."),
    Column("timestamp", TIMESTAMP, "UTC", "Capture time of the evidence."),
    Column("association_id", INT, "", "Association, when the finding belongs to one."),
    Column("client", STRING, "ip:port", "Association requestor (or TCP initiator)."),
    Column("server", STRING, "ip:port", "Association acceptor (or TCP responder)."),
    Column("calling_ae", STRING, "AE title", "Calling AE Title."),
    Column("called_ae", STRING, "AE title", "Called AE Title."),
    Column("message_id", INT, "", "Message ID (or Message ID Being Responded To) of the message."),
    Column("command", STRING, "", "Command of the message, when the finding is about one."),
    Column("status", STRING, "hex", "Its status, e.g. 0xA801."),
    Column("status_meaning", STRING, "", "Meaning of that status."),
    Column("observed", STRING, "", "The value seen."),
    Column("expected", STRING, "", "What the standard expects."),
    Column("profile", STRING, "", "Rule profile that reported it (standard or ps3.2-tables)."),
    Column("tshark_filter", STRING, "", "Wireshark/tshark display filter showing the frames."),
)

TABLES: dict[str, tuple[Column, ...]] = {
    "messages": MESSAGES,
    "associations": ASSOCIATIONS,
    "violations": VIOLATIONS,
}

MESSAGE_COLUMNS = tuple(c.name for c in MESSAGES)
ASSOCIATION_COLUMNS = tuple(c.name for c in ASSOCIATIONS)
VIOLATION_COLUMNS = tuple(c.name for c in VIOLATIONS)
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {t: tuple(c.name for c in TABLES[t]) for t in TABLES}

_TEXT_LIKE = frozenset({STRING, TIMESTAMP})
_TEXT_COLUMNS = {
    t: frozenset(c.name for c in cols if c.dtype in _TEXT_LIKE) for t, cols in TABLES.items()
}


def dtypes(table: str) -> dict[str, str]:
    """``{column: pandas dtype}`` for ``table``."""
    return {c.name: c.dtype for c in TABLES[table]}


def normalize(table: str, row: dict) -> dict:
    """A row as every typed output writes it: columns in order, empty text as missing."""
    text = _TEXT_COLUMNS[table]
    return {
        name: (None if name in text and row[name] == "" else row[name])
        for name in TABLE_COLUMNS[table]
    }


def to_frame(table: str, rows: list[dict]) -> Any:
    """A pandas DataFrame of raw rows with the documented dtypes."""
    import pandas as pd

    frame = pd.DataFrame([normalize(table, r) for r in rows], columns=list(TABLE_COLUMNS[table]))
    return apply(table, frame)


def apply(table: str, frame: Any) -> Any:
    """Cast the columns of ``frame`` to the documented dtypes (timestamps from ISO-8601)."""
    import pandas as pd

    out = {}
    for col in TABLES[table]:
        values = frame[col.name] if col.name in frame else pd.Series([None] * len(frame))
        if col.dtype == TIMESTAMP:
            if str(values.dtype) != TIMESTAMP:
                values = pd.to_datetime(values.astype("object"), utc=True, format="ISO8601")
            out[col.name] = values.astype(TIMESTAMP)
        elif col.dtype == STRING:
            out[col.name] = values.astype("object").where(values.notna(), None).astype(STRING)
        else:
            out[col.name] = values.astype(col.dtype)
    return pd.DataFrame(out, index=range(len(frame)))


def table_of(path: Path) -> str:
    """``messages`` for ``out/messages.csv`` (the file names the CLI writes)."""
    name = path.name.split(".", 1)[0]
    if name not in TABLES:
        raise ValueError(f"{path}: not one of {', '.join(f'{t}.*' for t in TABLES)}")
    return name


def read_table(path: str | Path, table: str | None = None) -> Any:
    """Load a table written by dimsesniff (CSV, JSON Lines or Parquet) with the documented dtypes.

    CSV cells keep the ``'`` that neutralised formulas; the other formats hold raw values.
    """
    import pandas as pd

    path = Path(path)
    table = table or table_of(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        text_types = {c.name: (STRING if c.dtype == TIMESTAMP else c.dtype) for c in TABLES[table]}
        frame = pd.read_csv(
            path,
            dtype=text_types,
            keep_default_na=False,
            na_values=[""],
        )
    elif suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            records = [json.loads(line) for line in fh if line.strip()]
        frame = pd.DataFrame(records, columns=list(TABLE_COLUMNS[table]), dtype="object")
    elif suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        raise ValueError(f"{path}: unknown table format (csv, jsonl, parquet)")
    return apply(table, frame)


def arrow_schema(table: str) -> Any:
    """The pyarrow schema of ``table``, with pandas metadata so pandas restores the dtypes."""
    import pyarrow as pa

    arrow = {
        INT: pa.int64(),
        FLOAT: pa.float64(),
        BOOL: pa.bool_(),
        STRING: pa.string(),
        TIMESTAMP: pa.timestamp("us", tz="UTC"),
    }
    numpy_type = {INT: "Int64", FLOAT: "Float64", BOOL: "boolean", STRING: "string"}
    pandas_type = {INT: "int64", FLOAT: "float64", BOOL: "bool", STRING: "unicode"}
    columns = []
    for c in TABLES[table]:
        if c.dtype == TIMESTAMP:
            columns.append(
                {
                    "name": c.name,
                    "field_name": c.name,
                    "pandas_type": "datetimetz",
                    "numpy_type": "datetime64[us]",
                    "metadata": {"timezone": "UTC"},
                }
            )
        else:
            columns.append(
                {
                    "name": c.name,
                    "field_name": c.name,
                    "pandas_type": pandas_type[c.dtype],
                    "numpy_type": numpy_type[c.dtype],
                    "metadata": None,
                }
            )
    pandas_meta = {
        "index_columns": [],
        "column_indexes": [],
        "columns": columns,
        "creator": {"library": "dimsesniff"},
    }
    fields = [
        pa.field(c.name, arrow[c.dtype], metadata={"unit": c.unit, "description": c.description})
        for c in TABLES[table]
    ]
    return pa.schema(fields, metadata={"pandas": json.dumps(pandas_meta)})


NOTES = """\
# dimsesniff table schema

One schema per table, the same in CSV, JSON Lines, Parquet and the DataFrames of
dimsesniff.analyze(). dtypes are pandas nullable dtypes:

| dtype | CSV / JSON Lines | Parquet |
|---|---|---|
| Int64 | decimal integer | int64 |
| Float64 | decimal number | double |
| boolean | True / False (JSON true / false) | bool |
| string | text | string (UTF-8) |
| datetime64[us, UTC] | ISO-8601 text, UTC, microseconds | timestamp[us, tz=UTC] |

- Missing and empty are the same: empty CSV cell, JSON null, Parquet null, <NA>.
- Status codes and command fields are text, as Wireshark shows them (0xFF00).
- CSV cells from the wire that start with =, +, -, @, tab or carriage return get a
  leading ' (spreadsheet safety); JSON Lines and Parquet keep the raw values.
- Reload with dimsesniff.read_table(path) (csv, jsonl or parquet), or pd.read_parquet(path).
"""


def describe_markdown(table: str | None = None) -> str:
    """The schema as Markdown tables (what ``dimsesniff schema`` prints)."""
    out = [] if table else [NOTES]
    for name in [table] if table else TABLES_ORDER:
        out.append(f"## {name}\n")
        out.append("| column | dtype | unit | description |")
        out.append("|---|---|---|---|")
        for c in TABLES[name]:
            out.append(f"| {c.name} | {c.dtype} | {c.unit} | {c.description} |")
        out.append("")
    return "\n".join(out)


def describe_json(table: str | None = None) -> str:
    return json.dumps(
        {
            name: [
                {"name": c.name, "dtype": c.dtype, "unit": c.unit, "description": c.description}
                for c in TABLES[name]
            ]
            for name in ([table] if table else TABLES_ORDER)
        },
        indent=2,
    )
