"""The peer-log record format shared by the DCMTK log parser and the pynetdicom recorder."""

from __future__ import annotations

from typing import Any

COMMANDS = {
    0x0001: "C-STORE-RQ",
    0x8001: "C-STORE-RSP",
    0x0010: "C-GET-RQ",
    0x8010: "C-GET-RSP",
    0x0020: "C-FIND-RQ",
    0x8020: "C-FIND-RSP",
    0x0021: "C-MOVE-RQ",
    0x8021: "C-MOVE-RSP",
    0x0030: "C-ECHO-RQ",
    0x8030: "C-ECHO-RSP",
    0x0FFF: "C-CANCEL-RQ",
    0x0100: "N-EVENT-REPORT-RQ",
    0x8100: "N-EVENT-REPORT-RSP",
    0x0110: "N-GET-RQ",
    0x8110: "N-GET-RSP",
    0x0120: "N-SET-RQ",
    0x8120: "N-SET-RSP",
    0x0130: "N-ACTION-RQ",
    0x8130: "N-ACTION-RSP",
    0x0140: "N-CREATE-RQ",
    0x8140: "N-CREATE-RSP",
    0x0150: "N-DELETE-RQ",
    0x8150: "N-DELETE-RSP",
}

# Keys of one message record, in output order.  See samples/README.md for their meaning.
MESSAGE_KEYS = (
    "index",
    "assoc",
    "sender",
    "sender_ae",
    "assoc_calling_ae",
    "assoc_called_ae",
    "command",
    "command_field",
    "context_id",
    "message_id",
    "message_id_being_responded_to",
    "status",
    "remaining",
    "completed",
    "failed",
    "warning",
    "error_comment",
    "affected_sop_class_uid",
    "affected_sop_instance_uid",
    "move_destination",
    "priority",
    "command_data_set_type",
    "has_dataset",
    "dataset",
    "failed_sop_instance_uids",
    "source",
    "time",
)

# Keys of one association record, in output order.
ASSOC_KEYS = (
    "index",
    "calling_ae",
    "called_ae",
    "client_port",
    "server_port",
    "requestor",
    "acceptor",
    "max_pdu_requestor",
    "max_pdu_acceptor",
    "accepted_contexts",
    "rejected_contexts",
    "end",
    "time",
    "messages",
    "source",
)

# Command-set element -> record key (values are ints or strings)
COMMAND_ELEMENTS = {
    0x0002: "affected_sop_class_uid",
    0x0100: "command_field",
    0x0110: "message_id",
    0x0120: "message_id_being_responded_to",
    0x0600: "move_destination",
    0x0700: "priority",
    0x0800: "command_data_set_type",
    0x0900: "status",
    0x0902: "error_comment",
    0x1000: "affected_sop_instance_uid",
    0x1020: "remaining",
    0x1021: "completed",
    0x1022: "failed",
    0x1023: "warning",
}


def new_message(**kw: Any) -> dict[str, Any]:
    msg: dict[str, Any] = dict.fromkeys(MESSAGE_KEYS)
    msg.update(kw)
    return msg


def finish_message(msg: dict[str, Any]) -> dict[str, Any]:
    """Fill the derived keys (command name, sender role, has_dataset) of a record."""
    cf = msg.get("command_field")
    msg["command"] = COMMANDS.get(cf, f"0x{cf:04X}" if isinstance(cf, int) else None)
    if isinstance(cf, int):
        msg["sender"] = "SCP" if cf & 0x8000 else "SCU"
    dst = msg.get("command_data_set_type")
    if msg.get("has_dataset") is None and isinstance(dst, int):
        msg["has_dataset"] = dst != 0x0101
    return msg


# DCMTK prints well-known UIDs by name ("=FINDStudyRootQueryRetrieveInformationModel").
DCMTK_UID_NAMES = {
    "VerificationSOPClass": "1.2.840.10008.1.1",
    "LittleEndianImplicit": "1.2.840.10008.1.2",
    "LittleEndianExplicit": "1.2.840.10008.1.2.1",
    "DeflatedLittleEndianExplicit": "1.2.840.10008.1.2.1.99",
    "BigEndianExplicit": "1.2.840.10008.1.2.2",
    "FINDPatientRootQueryRetrieveInformationModel": "1.2.840.10008.5.1.4.1.2.1.1",
    "MOVEPatientRootQueryRetrieveInformationModel": "1.2.840.10008.5.1.4.1.2.1.2",
    "GETPatientRootQueryRetrieveInformationModel": "1.2.840.10008.5.1.4.1.2.1.3",
    "FINDStudyRootQueryRetrieveInformationModel": "1.2.840.10008.5.1.4.1.2.2.1",
    "MOVEStudyRootQueryRetrieveInformationModel": "1.2.840.10008.5.1.4.1.2.2.2",
    "GETStudyRootQueryRetrieveInformationModel": "1.2.840.10008.5.1.4.1.2.2.3",
    "RETIRED_FINDPatientStudyOnlyQueryRetrieveInformationModel": "1.2.840.10008.5.1.4.1.2.3.1",
    "RETIRED_MOVEPatientStudyOnlyQueryRetrieveInformationModel": "1.2.840.10008.5.1.4.1.2.3.2",
    "RETIRED_GETPatientStudyOnlyQueryRetrieveInformationModel": "1.2.840.10008.5.1.4.1.2.3.3",
    "CTImageStorage": "1.2.840.10008.5.1.4.1.1.2",
    "MRImageStorage": "1.2.840.10008.5.1.4.1.1.4",
}


def dcmtk_uid(text: str) -> str:
    """Turn a DCMTK dump value ('=CTImageStorage' or '[1.2.3]' or '1.2.3') into a UID."""
    text = text.strip()
    if text.startswith("="):
        name = text[1:]
        if name in DCMTK_UID_NAMES:
            return DCMTK_UID_NAMES[name]
        try:  # fall back on pydicom's keywords, which match DCMTK's names for storage classes
            from pydicom.uid import UID_dictionary

            for uid, entry in UID_dictionary.items():
                if entry[4] == name or entry[4] == name.removesuffix("SOPClass"):
                    return uid
        except Exception:  # noqa: BLE001
            pass
        return text  # unknown: keep DCMTK's name, marked by the leading '='
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return text.rstrip("\x00 ")
