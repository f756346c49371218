"""pynetdicom peers: an event recorder (the ground truth of what pynetdicom sent/received) and
Query/Retrieve + Storage SCP handlers over the synthetic archive of dataset.py."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import pynetdicom
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dsutils import decode

from . import dataset as data
from .model import COMMAND_ELEMENTS, finish_message, new_message

PYNETDICOM_VERSION = pynetdicom.__version__
DCMTK_IMPL_PREFIX = "1.2.276.0.7230010.3"

_DATASET_COMMANDS = {0x0020, 0x8020, 0x0021, 0x8021, 0x0010, 0x8010}


def implementation_label(impl_uid: str, version_name: str) -> str:
    impl_uid = (impl_uid or "").strip()
    if impl_uid.startswith(DCMTK_IMPL_PREFIX):
        return f"DCMTK ({version_name or impl_uid})"
    if impl_uid == pynetdicom.PYNETDICOM_IMPLEMENTATION_UID:
        return f"pynetdicom ({version_name or impl_uid})"
    return f"{version_name or '?'} ({impl_uid})"


def dataset_to_dict(ds: Dataset) -> dict[str, Any]:
    """Top-level elements as keyword -> str / list[str] ('' for empty; sequences summarized)."""
    out: dict[str, Any] = {}
    for elem in ds:
        kw = elem.keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})"
        if elem.VR == "SQ":
            out[kw] = f"<sequence of {len(elem.value)} items>"
        elif elem.tag == 0x7FE00010:
            out[kw] = f"<{len(elem.value or b'')} bytes>"
        elif kw == "FailedSOPInstanceUIDList":
            v = elem.value
            out[kw] = [] if v in (None, "") else ([str(x) for x in v] if elem.VM > 1 else [str(v)])
        elif elem.VM > 1:
            out[kw] = [str(x) for x in elem.value]
        elif elem.value is None:
            out[kw] = ""
        else:
            out[kw] = str(elem.value)
    return out


class Recorder:
    """Collects associations and DIMSE messages from pynetdicom events, across threads.

    Each message is recorded once: on EVT_DIMSE_SENT of the pynetdicom AE that sends it, or on
    EVT_DIMSE_RECV of the receiving pynetdicom AE when the sender is not one of `pyn_aets`
    (the AE titles of the pynetdicom AEs in this process).
    """

    def __init__(self, pyn_aets: set[str]):
        self.pyn_aets = set(pyn_aets)
        self.lock = threading.Lock()
        self.assocs: dict[tuple[int, int], dict[str, Any]] = {}
        self.keys: dict[int, tuple[int, int]] = {}
        self.messages: list[dict[str, Any]] = []
        self._seq = 0

    # -- handlers -----------------------------------------------------------------------------
    def handlers(self) -> list[tuple[Any, Any]]:
        return [
            (evt.EVT_ESTABLISHED, self._on_established),
            (evt.EVT_RELEASED, self._on_end_released),
            (evt.EVT_ABORTED, self._on_end_aborted),
            (evt.EVT_DIMSE_SENT, self._on_sent),
            (evt.EVT_DIMSE_RECV, self._on_recv),
        ]

    def _key(self, assoc: Any) -> tuple[int, int]:
        k = self.keys.get(id(assoc))
        if k is not None:
            return k
        sock = assoc.dul.socket.socket
        local, peer = sock.getsockname(), sock.getpeername()
        k = (local[1], peer[1]) if assoc.is_requestor else (peer[1], local[1])
        self.keys[id(assoc)] = k
        return k

    def _on_established(self, event: Any) -> None:
        a = event.assoc
        with self.lock:
            key = self._key(a)
            rq, ac = a.requestor, a.acceptor
            info = self.assocs.setdefault(key, {})
            info.setdefault("time", round(event.timestamp.timestamp(), 6))
            info.update(
                {
                    "calling_ae": rq.ae_title,
                    "called_ae": ac.ae_title,
                    "client_port": key[0],
                    "server_port": key[1],
                    "requestor": implementation_label(
                        rq.implementation_class_uid, rq.implementation_version_name
                    ),
                    "acceptor": implementation_label(
                        ac.implementation_class_uid, ac.implementation_version_name
                    ),
                    "max_pdu_requestor": rq.maximum_length,
                    "max_pdu_acceptor": ac.maximum_length,
                    "accepted_contexts": [
                        {
                            "id": cx.context_id,
                            "abstract_syntax": str(cx.abstract_syntax),
                            "transfer_syntax": str(cx.transfer_syntax[0]),
                        }
                        for cx in sorted(a.accepted_contexts, key=lambda c: c.context_id)
                    ],
                    "rejected_contexts": [
                        {"id": cx.context_id, "abstract_syntax": str(cx.abstract_syntax)}
                        for cx in sorted(a.rejected_contexts, key=lambda c: c.context_id)
                    ],
                    "source": "pynetdicom-events",
                }
            )
            info.setdefault("end", None)

    def _end(self, event: Any, how: str) -> None:
        with self.lock:
            k = self.keys.get(id(event.assoc))
            if k in self.assocs and self.assocs[k].get("end") is None:
                self.assocs[k]["end"] = how

    def _on_end_released(self, event: Any) -> None:
        self._end(event, "released")

    def _on_end_aborted(self, event: Any) -> None:
        self._end(event, "aborted")

    def _on_sent(self, event: Any) -> None:
        self._record(event, sent=True)

    def _on_recv(self, event: Any) -> None:
        a = event.assoc
        peer = a.acceptor if a.is_requestor else a.requestor
        if peer.ae_title in self.pyn_aets:
            return  # the pynetdicom sender logs it as SENT
        self._record(event, sent=False)

    def _record(self, event: Any, sent: bool) -> None:
        now = time.time()
        a = event.assoc
        m = event.message
        rec = new_message(
            source="pynetdicom-sent" if sent else "pynetdicom-recv",
            time=round(now, 6),
            context_id=m.context_id,
        )
        for elem in m.command_set:
            if elem.tag.group == 0 and elem.tag.element in COMMAND_ELEMENTS:
                v = elem.value
                rec[COMMAND_ELEMENTS[elem.tag.element]] = (
                    int(v)
                    if isinstance(v, int)
                    else (str(v).rstrip("\x00 ") if v is not None else None)
                )
        finish_message(rec)
        me = a.requestor if a.is_requestor else a.acceptor
        peer = a.acceptor if a.is_requestor else a.requestor
        rec["sender_ae"] = me.ae_title if sent else peer.ae_title
        raw = b""
        ds_obj = getattr(m, "data_set", None)
        if isinstance(ds_obj, BytesIO):
            raw = ds_obj.getvalue()
        if rec["command_field"] in _DATASET_COMMANDS and raw:
            ts = None
            for cx in a.accepted_contexts:
                if cx.context_id == m.context_id:
                    ts = cx.transfer_syntax[0]
            if ts is not None:
                try:
                    ds = decode(
                        BytesIO(raw), ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated
                    )
                    rec["dataset"] = dataset_to_dict(ds)
                except Exception as exc:  # noqa: BLE001
                    rec["dataset"] = {"_decode_error": str(exc)}
        if isinstance(rec.get("dataset"), dict) and "FailedSOPInstanceUIDList" in rec["dataset"]:
            rec["failed_sop_instance_uids"] = rec["dataset"]["FailedSOPInstanceUIDList"]
        with self.lock:
            key = self._key(a)
            rec["_key"] = key
            rec["_seq"] = self._seq
            self._seq += 1
            self.messages.append(rec)


# ------------------------------------------------------------------------------------------------
# Query/Retrieve model over the synthetic archive
# ------------------------------------------------------------------------------------------------
LEVEL_UNIQUE = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}
_LEVELS = ["PATIENT", "STUDY", "SERIES", "IMAGE"]
_SKIP_MATCH = {
    "QueryRetrieveLevel",
    "SpecificCharacterSet",
    "RetrieveAETitle",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedInstances",
    "NumberOfStudyRelatedSeries",
    "NumberOfSeriesRelatedInstances",
    "NumberOfPatientRelatedStudies",
    "PatientComments",
}


def long_comment(patient_id: str, n: int = 5000) -> str:
    line = f"SYNTHETIC COMMENT FOR {patient_id}: THIS TEXT MAKES THE IDENTIFIER LONGER. "
    text = ""
    i = 0
    while len(text) < n:
        text += f"{i:04d} {line}"
        i += 1
    return text[:n].rstrip() + "."


def _match_value(have: str, want: str, vr: str | None) -> bool:
    if want == "" or want == "*":
        return True
    if vr == "UI" and "\\" in want:
        return have in want.split("\\")
    if vr in ("DA", "TM") and "-" in want:
        lo, _, hi = want.partition("-")
        return (not lo or have >= lo) and (not hi or have <= hi)
    if "*" in want or "?" in want:
        rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in want)
        return re.fullmatch(rx, have) is not None
    return have == want


class Archive:
    """In-memory archive of dataset.py images (+ optional synthetic studies without pixels)."""

    def __init__(self, extra_studies: int = 0, long_comments: bool = False):
        self.images: list[Dataset] = data.all_images()
        self.long_comments = long_comments
        for k in range(1, extra_studies + 1):
            ds = Dataset()
            ds.PatientName = f"CANCEL^PATIENT{k:02d}"
            ds.PatientID = f"DSNX{k:03d}"
            ds.PatientBirthDate = "19700101"
            ds.PatientSex = "O"
            ds.StudyInstanceUID = f"{data.UID_ROOT}.2.{k}"
            ds.StudyDate = "20240601"
            ds.StudyTime = "120000"
            ds.AccessionNumber = f"ACCX{k:03d}"
            ds.StudyID = str(5000 + k)
            ds.StudyDescription = f"SYNTHETIC STUDY {k:02d}"
            ds.ReferringPhysicianName = "WELBY^MARCUS"
            ds.SeriesInstanceUID = f"{data.UID_ROOT}.2.{k}.1"
            ds.Modality = "OT"
            ds.SeriesNumber = 1
            ds.SOPInstanceUID = f"{data.UID_ROOT}.2.{k}.1.1"
            ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
            ds.InstanceNumber = 1
            self.images.append(ds)

    def _matching_images(self, ident: Dataset) -> list[Dataset]:
        out = []
        for img in self.images:
            ok = True
            for elem in ident:
                kw = elem.keyword
                if not kw or kw in _SKIP_MATCH or elem.VR == "SQ":
                    continue
                want = (
                    ""
                    if elem.value is None
                    else ("\\".join(str(v) for v in elem.value) if elem.VM > 1 else str(elem.value))
                )
                have = str(img.get(kw, "") or "")
                if not _match_value(have, want, elem.VR):
                    ok = False
                    break
            if ok:
                out.append(img)
        return out

    def find(self, ident: Dataset, retrieve_aet: str) -> list[Dataset]:
        level = str(ident.get("QueryRetrieveLevel", "")).upper()
        if level not in LEVEL_UNIQUE:
            raise ValueError(f"bad QueryRetrieveLevel {level!r}")
        groups: dict[str, list[Dataset]] = {}
        for img in self._matching_images(ident):
            groups.setdefault(str(img.get(LEVEL_UNIQUE[level])), []).append(img)
        results = []
        for members in groups.values():
            rep = members[0]
            ds = Dataset()
            for elem in ident:
                kw = elem.keyword
                if not kw:
                    continue
                if kw == "QueryRetrieveLevel":
                    ds.QueryRetrieveLevel = level
                elif kw == "SpecificCharacterSet":
                    ds.SpecificCharacterSet = "ISO_IR 100"
                elif kw == "RetrieveAETitle":
                    ds.RetrieveAETitle = retrieve_aet
                elif kw == "ModalitiesInStudy":
                    ds.ModalitiesInStudy = sorted({str(m.Modality) for m in members})
                elif kw == "NumberOfStudyRelatedInstances":
                    ds.NumberOfStudyRelatedInstances = len(members)
                elif kw == "NumberOfSeriesRelatedInstances":
                    ds.NumberOfSeriesRelatedInstances = len(members)
                elif kw == "NumberOfStudyRelatedSeries":
                    ds.NumberOfStudyRelatedSeries = len({str(m.SeriesInstanceUID) for m in members})
                elif kw == "PatientComments":
                    ds.PatientComments = (
                        long_comment(str(rep.PatientID)) if self.long_comments else ""
                    )
                elif kw in rep:
                    setattr(ds, kw, rep.get(kw))
                else:
                    setattr(ds, kw, "")
            if "QueryRetrieveLevel" not in ds:
                ds.QueryRetrieveLevel = level
            if "RetrieveAETitle" not in ds:
                ds.RetrieveAETitle = retrieve_aet
            results.append(ds)
        return results

    def instances(self, ident: Dataset) -> list[Dataset]:
        """The images a C-MOVE identifier selects (only images with pixel data)."""
        return [img for img in self._matching_images(ident) if "PixelData" in img]


def make_find_handler(archive: Archive, retrieve_aet: str, delay: float = 0.0):
    def handle_find(event: Any) -> Iterator[tuple[int, Dataset | None]]:
        try:
            matches = archive.find(event.identifier, retrieve_aet)
        except ValueError:
            yield 0xA900, None
            return
        for ds in matches:
            if delay:
                time.sleep(delay)
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, ds

    return handle_find


def make_move_handler(
    archive: Archive, destinations: dict[str, tuple[str, int]], sub_handlers: list[tuple[Any, Any]]
):
    """C-MOVE handler; sub-associations get `sub_handlers` (the recorder) bound."""

    def handle_move(event: Any) -> Iterator[Any]:
        dest = str(event.move_destination).strip()
        if dest not in destinations:
            yield None, None
            return
        addr, port = destinations[dest]
        yield addr, port, {"evt_handlers": sub_handlers}
        instances = archive.instances(event.identifier)
        yield len(instances)
        for ds in instances:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, ds

    return handle_move


def make_store_handler(fail_sop_classes: set[str] | None = None, status: int = 0xA700):
    fail = fail_sop_classes or set()

    def handle_store(event: Any) -> int:
        if str(event.request.AffectedSOPClassUID) in fail:
            return status
        return 0x0000

    return handle_store


def handle_echo(event: Any) -> int:
    return 0x0000
