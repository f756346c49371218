"""Flat rows for the message, association and violation tables.

Column order, types and units are those of ``schema.py`` (the file schema);
values are plain str/int/float/bool/None so that CSV, JSON and pandas all see
the same thing.  Every row
carries frame numbers so it can be found in Wireshark.
"""

from __future__ import annotations

from datetime import UTC, datetime

from dissectors.dimse import (
    AFFECTED_SOP_CLASS_UID,
    COMMAND_DATA_SET_TYPE,
    COMPLETED,
    ERROR_COMMENT,
    FAILED,
    MESSAGE_ID,
    MESSAGE_ID_BEING_RESPONDED_TO,
    MOVE_DESTINATION,
    OFFENDING_ELEMENT,
    PRIORITY,
    REMAINING,
    WARNING,
    command_name,
    tag_text,
)

from ..associations import CONTEXT_RESULTS, Association
from ..identifiers import uid_name
from ..observations import Finding, ObservedMessage
from ..rules import RULES
from ..standard.status import status_class, status_meaning
from .schema import ASSOCIATION_COLUMNS, MESSAGE_COLUMNS, VIOLATION_COLUMNS

__all__ = [
    "ASSOCIATION_COLUMNS",
    "MESSAGE_COLUMNS",
    "VIOLATION_COLUMNS",
    "association_row",
    "message_row",
    "violation_row",
]


def iso(ts: float | None) -> str:
    """UTC ISO-8601 with microseconds."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def endpoint(ep: tuple[str, int] | None) -> str:
    if ep is None:
        return ""
    host, port = ep
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def hex4(value: int | None) -> str:
    """``0x0000``: hex the way Wireshark shows it, and never read back as a number."""
    return "" if value is None else f"0x{value:04X}"


def message_row(obs: ObservedMessage, identifier: str = "", identifier_error: str = "") -> dict:
    assoc = obs.association
    msg = obs.message
    cmd = msg.command
    ctx = assoc.contexts.get(msg.context_id)
    transfer_syntax, assumed = assoc.transfer_syntax(msg.context_id)
    field = cmd.command_field
    status = cmd.status
    offending = cmd.tags(OFFENDING_ELEMENT)
    abstract = ctx.abstract_syntax if ctx else None
    return {
        # Reassembly can complete a message with bytes captured before its first ones
        # (reordering): the frame range, not the byte order, is what finds it in Wireshark.
        "first_frame": min(msg.first_frame, msg.last_frame),
        "last_frame": max(msg.first_frame, msg.last_frame),
        "timestamp": iso(msg.ts_first),
        "association_id": assoc.id,
        "client": endpoint(assoc.requestor),
        "server": endpoint(assoc.acceptor),
        "calling_ae": assoc.calling_ae,
        "called_ae": assoc.called_ae,
        "direction": "client->server" if obs.from_requestor else "server->client",
        "context_id": msg.context_id,
        "abstract_syntax": abstract,
        "abstract_syntax_name": uid_name(abstract),
        "transfer_syntax": transfer_syntax,
        "transfer_syntax_assumed": assumed,
        "command": command_name(field),
        "command_field": hex4(field),
        "message_id": cmd.us(MESSAGE_ID),
        "message_id_responded_to": cmd.us(MESSAGE_ID_BEING_RESPONDED_TO),
        "affected_sop_class_uid": cmd.text(AFFECTED_SOP_CLASS_UID),
        "status": hex4(status),
        "status_meaning": status_meaning(field, status),
        "status_class": status_class(status).value if status is not None else "",
        "remaining": cmd.us(REMAINING),
        "completed": cmd.us(COMPLETED),
        "failed": cmd.us(FAILED),
        "warning": cmd.us(WARNING),
        "error_comment": cmd.text(ERROR_COMMENT),
        "offending_element": " ".join(tag_text(t) for t in offending) if offending else None,
        "move_destination": cmd.text(MOVE_DESTINATION),
        "priority": cmd.us(PRIORITY),
        "data_set_type": hex4(cmd.us(COMMAND_DATA_SET_TYPE)),
        "data_set_present": msg.has_data_set,
        "data_set_bytes": msg.data_set_length,
        "identifier": identifier,
        "identifier_error": identifier_error,
        "request_first_frame": obs.request.message.first_frame if obs.request else None,
        "response_time_s": round(obs.response_time, 6) if obs.response_time is not None else None,
        "complete": msg.complete,
        "lost_bytes": msg.lost_bytes,
    }


def _contexts(assoc: Association, accepted: bool) -> str:
    parts = []
    for ctx in sorted(assoc.contexts.values(), key=lambda c: c.context_id):
        if ctx.result is None or ctx.accepted != accepted:
            continue
        name = uid_name(ctx.abstract_syntax) or ctx.abstract_syntax or "?"
        if accepted:
            parts.append(f"{ctx.context_id}:{name}@{ctx.transfer_syntax}")
        else:
            parts.append(f"{ctx.context_id}:{name}:{CONTEXT_RESULTS.get(ctx.result, ctx.result)}")
    return "; ".join(parts)


def association_row(assoc: Association) -> dict:
    rq_ui = assoc.rq.user_info if assoc.rq else None
    ac_ui = assoc.ac.user_info if assoc.ac else None
    window = ""
    if rq_ui and rq_ui.max_ops_invoked is not None:
        window = f"rq {rq_ui.max_ops_invoked}/{rq_ui.max_ops_performed}"
        if ac_ui and ac_ui.max_ops_invoked is not None:
            window += f", ac {ac_ui.max_ops_invoked}/{ac_ui.max_ops_performed}"
    roles = "; ".join(
        f"{uid_name(r.sop_class_uid) or r.sop_class_uid} scu={r.scu_role} scp={r.scp_role}"
        for r in (rq_ui.roles if rq_ui else ())
    )
    duration = (assoc.end_ts - assoc.start_ts) if assoc.end_ts is not None else None
    return {
        "association_id": assoc.id,
        "client": endpoint(assoc.requestor),
        "server": endpoint(assoc.acceptor),
        "calling_ae": assoc.calling_ae,
        "called_ae": assoc.called_ae,
        "start_frame": assoc.start_frame,
        "end_frame": assoc.end_frame,
        "start_time": iso(assoc.start_ts),
        "end_time": iso(assoc.end_ts),
        "duration_s": round(duration, 6) if duration is not None else None,
        "end_reason": assoc.end_reason,
        "started_mid_capture": assoc.assumed,
        "application_context": assoc.rq.application_context if assoc.rq else None,
        "accepted_contexts": _contexts(assoc, True),
        "rejected_contexts": _contexts(assoc, False),
        "max_pdu_client": assoc.max_pdu_requestor,
        "max_pdu_server": assoc.max_pdu_acceptor,
        "implementation_class_uid_client": rq_ui.implementation_class_uid if rq_ui else None,
        "implementation_version_client": rq_ui.implementation_version_name if rq_ui else None,
        "implementation_class_uid_server": ac_ui.implementation_class_uid if ac_ui else None,
        "implementation_version_server": ac_ui.implementation_version_name if ac_ui else None,
        "async_window": window,
        "role_selection": roles,
        "user_identity_type": rq_ui.user_identity_type if rq_ui else None,
        "messages_client": assoc.messages_from_requestor,
        "messages_server": assoc.messages_from_acceptor,
        "findings": assoc.findings,
    }


def tshark_filter(
    first: int,
    last: int,
    ends: tuple[tuple[str, int], tuple[str, int]] | None,
) -> str:
    """A display filter showing the frames of a finding: its frame range on its connection."""
    frames = (
        f"frame.number == {first}"
        if first == last
        else f"frame.number >= {first} && frame.number <= {last}"
    )
    if ends is None:
        return frames
    (a_host, a_port), (b_host, b_port) = ends
    ip = "ipv6" if ":" in a_host else "ip"
    return (
        f"{frames} && {ip}.addr == {a_host} && {ip}.addr == {b_host} "
        f"&& tcp.port == {a_port} && tcp.port == {b_port}"
    )


def violation_row(finding: Finding) -> dict:
    rule = RULES.get(finding.rule)
    assoc = finding.association
    obs = finding.observed
    cmd = obs.message.command if obs else None
    ends = (assoc.requestor, assoc.acceptor) if assoc else finding.endpoints
    field = cmd.command_field if cmd else None
    status = cmd.status if cmd else None
    return {
        "rule": finding.rule,
        "severity": finding.severity or (rule.severity.value if rule else "error"),
        "message": finding.message,
        "citation": rule.cite if rule else "",
        "first_frame": finding.first_frame,
        "last_frame": finding.last_frame,
        "timestamp": iso(finding.ts),
        "association_id": assoc.id if assoc else None,
        "client": endpoint(ends[0]) if ends else "",
        "server": endpoint(ends[1]) if ends else "",
        "calling_ae": assoc.calling_ae if assoc else None,
        "called_ae": assoc.called_ae if assoc else None,
        "message_id": (
            cmd.us(MESSAGE_ID) if cmd.has(MESSAGE_ID) else cmd.us(MESSAGE_ID_BEING_RESPONDED_TO)
        )
        if cmd
        else None,
        "command": command_name(field) if cmd else "",
        "status": hex4(status),
        "status_meaning": status_meaning(field, status) if cmd else "",
        "observed": finding.observed_value,
        "expected": finding.expected,
        "profile": finding.profile,
        "tshark_filter": tshark_filter(finding.first_frame, finding.last_frame, ends),
    }
