"""Turn a rule case (TOML data) into associations and messages, run the checker, collect findings.

A case lists messages in wire order; message *i* (1-based) gets frame number
*i*, so ``at = [2]`` means "the finding points at the second message".  See
``tests/rules/cases/README.md`` for the keys.
"""

from __future__ import annotations

import struct
from typing import Any

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from dimsesniff.associations import Association, PresentationContext
from dimsesniff.checks import Checker
from dimsesniff.observations import Finding, ObservedMessage
from dissectors import dimse
from dissectors.dimse_assembly import DimseMessage
from dissectors.ul_events import AssociateAC, AssociateRQ, RoleSelection, UserInformation
from tests import build

FIND_STUDY = "1.2.840.10008.5.1.4.1.2.2.1"
MOVE_STUDY = "1.2.840.10008.5.1.4.1.2.2.2"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
VERIFICATION = "1.2.840.10008.1.1"
IVRLE = "1.2.840.10008.1.2"

DEFAULT_SOP_CLASS = {
    "C-FIND": FIND_STUDY,
    "C-MOVE": MOVE_STUDY,
    "C-STORE": CT_STORAGE,
    "C-ECHO": VERIFICATION,
    "C-GET": "1.2.840.10008.5.1.4.1.2.2.3",
}
DEFAULT_CONTEXTS = [
    [1, FIND_STUDY, IVRLE],
    [3, MOVE_STUDY, IVRLE],
    [5, CT_STORAGE, IVRLE],
    [7, VERIFICATION, IVRLE],
]
CONTEXT_OF = {FIND_STUDY: 1, MOVE_STUDY: 3, CT_STORAGE: 5, VERIFICATION: 7}
EVENT_STATES = {"release-rq": "releasing", "release-rp": "released", "abort": "aborted"}

COUNT_KEYS = {
    "remaining": dimse.REMAINING,
    "completed": dimse.COMPLETED,
    "failed": dimse.FAILED,
    "warning": dimse.WARNING,
}


def encode_identifier(fields: dict[str, Any]) -> bytes:
    ds = Dataset()
    for keyword, value in fields.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            items = []
            for item_fields in value:
                item = Dataset()
                for k, v in item_fields.items():
                    setattr(item, k, v)
                items.append(item)
            setattr(ds, keyword, items)
        else:
            setattr(ds, keyword, value)
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = True, True
    write_dataset(fp, ds)
    return fp.getvalue()


def make_association(number: int, spec: dict[str, Any]) -> Association:
    calling, called = spec.get("calling", "SCU"), spec.get("called", "SCP")
    assoc = Association(
        id=number,
        conn=number,
        requestor=(f"10.0.0.{number}", 40000 + number),
        acceptor=("10.0.9.9", 104),
        calling_ae=calling,
        called_ae=called,
    )
    rq_ui = UserInformation(
        max_pdu_length=spec.get("max_pdu_rq", 16384),
        max_ops_invoked=spec["async_rq"][0] if "async_rq" in spec else None,
        max_ops_performed=spec["async_rq"][1] if "async_rq" in spec else None,
        roles=tuple(RoleSelection(*r) for r in spec.get("roles_rq", [])),
    )
    ac_ui = UserInformation(
        max_pdu_length=spec.get("max_pdu_ac", 16384),
        max_ops_invoked=spec["async_ac"][0] if "async_ac" in spec else None,
        max_ops_performed=spec["async_ac"][1] if "async_ac" in spec else None,
        roles=tuple(RoleSelection(*r) for r in spec.get("roles_ac", [])),
    )
    assoc.rq = AssociateRQ(1, called, calling, "1.2.840.10008.3.1.1.1", (), rq_ui, (), 0, 0, 0.0)
    assoc.ac = AssociateAC(1, called, calling, "1.2.840.10008.3.1.1.1", (), ac_ui, (), 0, 0, 0.0)
    for ctx_id, abstract, ts, *result in spec.get("contexts", DEFAULT_CONTEXTS):
        assoc.contexts[ctx_id] = PresentationContext(
            ctx_id, abstract, (ts,), result[0] if result else 0, ts
        )
    assoc.state = "established"
    if spec.get("assumed"):  # capture began mid-association: no A-ASSOCIATE seen
        assoc.rq = assoc.ac = None
        assoc.assumed = True
    return assoc


def command_bytes(spec: dict[str, Any]) -> tuple[bytes, bytes | None]:
    name = spec["command"]
    field = dimse.Command[name.replace("-", "_")]
    service = name.rsplit("-", 1)[0]
    fields: dict[int, Any] = {dimse.COMMAND_FIELD: int(field)}
    sop_class = spec.get("sop_class", DEFAULT_SOP_CLASS.get(service))
    if sop_class and field != dimse.Command.C_CANCEL_RQ:
        fields[dimse.AFFECTED_SOP_CLASS_UID] = sop_class
    if "id" in spec:
        fields[dimse.MESSAGE_ID] = spec["id"]
    if "to" in spec:
        fields[dimse.MESSAGE_ID_BEING_RESPONDED_TO] = spec["to"]
    if "status" in spec:
        fields[dimse.STATUS] = spec["status"]
    for key, tag in COUNT_KEYS.items():
        if key in spec:
            fields[tag] = spec[key]
    if "error_comment" in spec:
        fields[dimse.ERROR_COMMENT] = spec["error_comment"].encode("latin-1")
    if "offending" in spec:
        fields[dimse.OFFENDING_ELEMENT] = b"".join(
            struct.pack("<HH", t >> 16, t & 0xFFFF) for t in spec["offending"]
        )
    if "dst" in spec:
        fields[dimse.MOVE_DESTINATION] = spec["dst"].encode().ljust(16)
    if "priority" in spec or (not name.endswith("RSP") and field != dimse.Command.C_CANCEL_RQ):
        fields[dimse.PRIORITY] = spec.get("priority", 0)
    if "originator_ae" in spec:
        fields[dimse.MOVE_ORIGINATOR_AE_TITLE] = spec["originator_ae"].encode().ljust(16)
    if "originator_id" in spec:
        fields[dimse.MOVE_ORIGINATOR_MESSAGE_ID] = spec["originator_id"]
    if "instance" in spec:
        fields[dimse.AFFECTED_SOP_INSTANCE_UID] = spec["instance"]
    data: bytes | None = None
    if "identifier" in spec:
        data = encode_identifier(spec["identifier"])
    elif "data" in spec:
        data = bytes.fromhex(spec["data"])
    fields[dimse.COMMAND_DATA_SET_TYPE] = spec.get(
        "ds_type", 0x0000 if data is not None else 0x0101
    )
    for tag_hex, value_hex in spec.get("extra", {}).items():
        fields[int(tag_hex, 16)] = bytes.fromhex(value_hex)
    for tag_hex in spec.get("drop", []):
        fields.pop(int(tag_hex, 16), None)
    raw = build.command_set(fields)
    if "raw_command" in spec:
        raw = bytes.fromhex(spec["raw_command"])
    return raw, data


def run_case(case: dict[str, Any], profile: str = "standard") -> list[Finding]:
    findings: list[Finding] = []
    checker = Checker(findings.append, profile=case.get("profile", profile))
    associations: dict[str, Association] = {}
    specs = case.get("associations", {})
    for number, name in enumerate(["main", *[n for n in specs if n != "main"]], start=1):
        associations[name] = make_association(number, specs.get(name, {}))
    index: dict[str, int] = {}
    for i, spec in enumerate(case["messages"], start=1):
        assoc = associations[spec.get("assoc", "main")]
        from_requestor = spec.get("from", "scu") == "scu"
        if "event" in spec:
            # The state the association is in when the event is dispatched, as
            # DicomConnection sets it before telling the sink.
            assoc.state = EVENT_STATES.get(spec["event"], assoc.state)
            checker.association_event(assoc, spec["event"], from_requestor, i, float(i))
            if spec["event"] == "end":
                assoc.end_frame = i
            continue
        raw, data = command_bytes(spec)
        command = dimse.decode_command_set(raw)
        service = spec["command"].rsplit("-", 1)[0]
        ctx_id = spec.get("ctx", CONTEXT_OF.get(DEFAULT_SOP_CLASS.get(service, ""), 1))
        first, last = spec.get("frames", [i, i])  # a message spread over several frames
        msg = DimseMessage(
            ctx_id,
            command,
            first,
            last,
            float(first),
            float(last),
            data_set=data,
            data_set_length=len(data or b""),
            data_pdvs=1 if data is not None else 0,
            command_pdvs=1,
        )
        position = index.get(assoc.id, 0)
        index[assoc.id] = position + 1
        obs = ObservedMessage(assoc, msg, from_requestor, position)
        if data is not None:
            from dimsesniff.identifiers import decode_identifier

            ts, _ = assoc.transfer_syntax(ctx_id)
            try:
                obs.identifier = decode_identifier(data, ts)
            except ValueError as exc:
                obs.identifier_error = str(exc)
        checker.message(obs)
    return findings
