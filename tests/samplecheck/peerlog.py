"""Compare what dimsesniff decoded with what the peers logged sending (``*.peerlog.json``).

The peer log format is described in samples/README.md.  Everything here turns
both sides into plain tuples/dicts so that a test can assert equality and
pytest shows the difference.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SAMPLES = Path(__file__).resolve().parent.parent.parent / "samples"

DECODE_RULE_PREFIXES = (
    "TCP-",
    "UL-PDU",
    "UL-PDV-FRAMING",
    "UL-RESYNC",
    "DIMSE-CMD-DECODE",
    "DIMSE-DS-DECODE",
)
"""Findings that mean the bytes were not decoded as the peers sent them."""

MESSAGE_FIELDS = (
    "direction",
    "command",
    "message_id",
    "message_id_responded_to",
    "status",
    "remaining",
    "completed",
    "failed",
    "warning",
    "error_comment",
    "has_data_set",
    "data_set_type",
    "context_id",
    "affected_sop_class_uid",
    "move_destination",
    "priority",
)
"""One message, as both the peer log and messages.csv can state it."""

PHI_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientComments")
"""Identifier attributes of the peer logs that identify a patient (group 0010)."""


def sample_names() -> list[str]:
    return sorted(p.name.removesuffix(".peerlog.json") for p in SAMPLES.glob("*.peerlog.json"))


def cell(value):
    """A DataFrame cell as a plain value: NA/NaN/None -> None, numpy scalars -> int/float/bool."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item") and hasattr(value, "dtype"):  # a numpy scalar
        value = value.item()
    if isinstance(value, float):
        if pd.isna(value):
            return None
        if value.is_integer():
            return int(value)
    return value


def hex_cell(value) -> int | None:
    """``0xFF00`` -> 65280; empty -> None."""
    value = cell(value)
    return int(value, 16) if value else None


def port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def direction(log_assoc: dict, log_message: dict) -> str:
    """The TCP direction a logged message went: the requestor is the TCP client here."""
    sender = log_message["sender_ae"]
    calling, called = log_assoc["calling_ae"], log_assoc["called_ae"]
    if calling == called:
        raise ValueError(f"association {log_assoc['index']}: same AE on both ends")
    if sender == calling:
        return "client->server"
    if sender == called:
        return "server->client"
    raise ValueError(f"message {log_message['index']}: sender {sender!r} is neither end")


def logged_messages(log: dict, log_assoc: dict) -> list[tuple]:
    """The messages of one logged association, in the order sent, as MESSAGE_FIELDS tuples."""
    out = []
    for m in log["messages"]:
        if m["assoc"] != log_assoc["index"]:
            continue
        out.append(
            (
                direction(log_assoc, m),
                m["command"],
                m["message_id"],
                m["message_id_being_responded_to"],
                m["status"],
                m["remaining"],
                m["completed"],
                m["failed"],
                m["warning"],
                m["error_comment"],
                m["has_dataset"],
                m["command_data_set_type"],
                m["context_id"],
                m["affected_sop_class_uid"],
                m["move_destination"],
                m["priority"],
            )
        )
    return out


def decoded_message(row) -> tuple:
    """One messages.csv row (a DataFrame itertuples row) as a MESSAGE_FIELDS tuple."""
    return (
        row.direction,
        row.command,
        cell(row.message_id),
        cell(row.message_id_responded_to),
        hex_cell(row.status),
        cell(row.remaining),
        cell(row.completed),
        cell(row.failed),
        cell(row.warning),
        cell(row.error_comment),
        bool(row.data_set_present),
        hex_cell(row.data_set_type),
        cell(row.context_id),
        cell(row.affected_sop_class_uid),
        cell(row.move_destination),
        cell(row.priority),
    )


def association_rows(log: dict, associations: pd.DataFrame) -> dict[int, object]:
    """Peer-log association index -> the associations.csv row of the same TCP connection.

    Matched by client and server port (each TCP connection is one association);
    a logged association without exactly one row raises AssertionError.
    """
    rows = {}
    for a in log["associations"]:
        hits = [
            r
            for r in associations.itertuples()
            if port(r.client) == a["client_port"] and port(r.server) == a["server_port"]
        ]
        assert len(hits) == 1, f"association {a['index']} (client port {a['client_port']}): {hits}"
        rows[a["index"]] = hits[0]
    return rows


def messages_of(messages: pd.DataFrame, association_id) -> list:
    """The rows of one association in wire order (by first frame; ties keep output order)."""
    rows = messages[messages["association_id"] == association_id]
    return list(rows.sort_values("first_frame", kind="stable").itertuples())


def abstract_name(uid: str) -> str:
    """How associations.csv names an abstract syntax: its registered name, else the UID."""
    from pydicom.uid import UID

    name = UID(uid).name
    return name or uid


def decoded_contexts(text: str) -> dict[int, tuple[str, str]]:
    """``1:Name@1.2.840.10008.1.2.1; 3:...`` -> {1: ("Name", "1.2.840.10008.1.2.1"), ...}."""
    out = {}
    for part in text.split("; ") if isinstance(text, str) and text else []:
        cid, rest = part.split(":", 1)
        name, ts = rest.rsplit("@", 1)
        out[int(cid)] = (name, ts)
    return out


def decoded_rejected_ids(text: str) -> set[int]:
    """``1:Name:reason; 3:...`` -> {1, 3}."""
    return (
        {int(p.split(":", 1)[0]) for p in text.split("; ")}
        if isinstance(text, str) and text
        else set()
    )


def logged_association(a: dict) -> dict:
    """The association facts the peer log states, in associations.csv terms."""
    return {
        "calling_ae": a["calling_ae"],
        "called_ae": a["called_ae"],
        "max_pdu_client": a["max_pdu_requestor"],
        "max_pdu_server": a["max_pdu_acceptor"],
        "end_reason": a["end"],
        "messages": a["messages"],
        "accepted_ids": {c["id"]: c["transfer_syntax"] for c in a["accepted_contexts"]},
        # DCMTK logs name some abstract syntaxes by DCMTK's own symbol ("=...Storage"),
        # not by UID: only UIDs can be compared with the decoded names.
        "accepted_abstract": {
            c["id"]: abstract_name(c["abstract_syntax"])
            for c in a["accepted_contexts"]
            if not c["abstract_syntax"].startswith("=")
        },
        "rejected_ids": {c["id"] for c in a["rejected_contexts"]},
    }


def decoded_association(row, compare_abstract: set[int]) -> dict:
    """An associations.csv row in the shape of ``logged_association``."""
    accepted = decoded_contexts(row.accepted_contexts)
    return {
        "calling_ae": row.calling_ae,
        "called_ae": row.called_ae,
        "max_pdu_client": cell(row.max_pdu_client),
        "max_pdu_server": cell(row.max_pdu_server),
        "end_reason": row.end_reason,
        "messages": cell(row.messages_client) + cell(row.messages_server),
        "accepted_ids": {cid: ts for cid, (_name, ts) in accepted.items()},
        "accepted_abstract": {
            cid: name for cid, (name, _ts) in accepted.items() if cid in compare_abstract
        },
        "rejected_ids": decoded_rejected_ids(row.rejected_contexts),
    }


def logged_identifier(dataset: dict) -> dict[str, str]:
    """A peer-log data set as ``keyword -> text`` the way messages.csv writes values."""
    return {k: "\\".join(v) if isinstance(v, list) else v for k, v in dataset.items()}


def decoded_identifier(summary) -> tuple[dict[str, str], bool]:
    """``Keyword=value; ...`` -> ({keyword: value}, truncated).

    A summary cut at its length limit ends with an ellipsis; its last, partial
    element is dropped.
    """
    summary = cell(summary) or ""
    truncated = summary.endswith("…")
    parts = summary.removesuffix("…").split("; ") if summary else []
    if truncated:
        parts = parts[:-1]
    return dict(p.split("=", 1) for p in parts), truncated


def phi_values(log: dict) -> set[str]:
    """Patient names/IDs/birth dates/comments the peers sent, as needles to search for.

    Wildcard query keys (``DSN00*``) and values shorter than 4 characters are left
    out (they occur innocently); long values are cut to 40 characters.
    """
    out = set()
    for m in log["messages"]:
        for key, value in (m["dataset"] or {}).items():
            if key not in PHI_KEYWORDS:
                continue
            for v in value if isinstance(value, list) else [value]:
                if len(v) >= 4 and not any(c in v for c in "*?"):
                    out.add(v[:40])
    return out


def decode_findings(violations: pd.DataFrame) -> list[tuple]:
    """The findings that say the traffic was not decoded cleanly."""
    return [
        (r.rule, cell(r.first_frame), r.message)
        for r in violations.itertuples()
        if str(r.rule).startswith(DECODE_RULE_PREFIXES)
    ]


# -- the checks, shared by the committed samples and freshly generated captures ---------------


def check_associations(log: dict, tables) -> None:
    """Association count, AE titles, max PDU lengths, contexts and ending match the peer log."""
    assert len(tables.associations) == len(log["associations"])
    rows = association_rows(log, tables.associations)
    for a in log["associations"]:
        want = logged_association(a)
        got = decoded_association(rows[a["index"]], set(want["accepted_abstract"]))
        assert got == want, f"association {a['index']} (client port {a['client_port']})"


def check_messages(log: dict, tables) -> None:
    """Per association, the ordered messages equal the peer log's, field by field."""
    assert len(tables.messages) == len(log["messages"])
    rows = association_rows(log, tables.associations)
    for a in log["associations"]:
        got = [
            decoded_message(r)
            for r in messages_of(tables.messages, rows[a["index"]].association_id)
        ]
        assert got == logged_messages(log, a), f"association {a['index']}"


def check_complete(tables) -> None:
    """Every message complete, no byte lost, and no finding that says decoding went wrong."""
    messages = tables.messages
    assert len(messages) > 0
    assert [cell(v) for v in messages["complete"]] == [True] * len(messages)
    assert [cell(v) for v in messages["lost_bytes"]] == [0] * len(messages)
    assert decode_findings(tables.violations) == []


def check_identifiers(log: dict, tables) -> int:
    """Every C-FIND/C-MOVE data set decodes and holds what the peers logged; returns how many
    identifiers were compared (DCMTK logs some, not all)."""
    identifiers = [
        (cell(r.identifier), cell(r.identifier_error))
        for r in tables.messages.itertuples()
        if r.command.startswith(("C-FIND-", "C-MOVE-")) and r.data_set_present
    ]
    assert [error for _summary, error in identifiers] == [None] * len(identifiers)
    assert all(summary for summary, _error in identifiers)
    rows = association_rows(log, tables.associations)
    compared = 0
    for a in log["associations"]:
        logged = [m for m in log["messages"] if m["assoc"] == a["index"]]
        decoded = messages_of(tables.messages, rows[a["index"]].association_id)
        for m, row in zip(logged, decoded, strict=True):
            if m["dataset"] is None:
                continue
            want = logged_identifier(m["dataset"])
            got, truncated = decoded_identifier(row.identifier)
            if truncated:  # a 5000-character PatientComments: compare what is shown
                want = {k: v for k, v in want.items() if k in got}
            assert got == want, f"message {m['index']} ({m['command']})"
            compared += 1
    return compared
