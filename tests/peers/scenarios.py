"""The sample-capture scenarios: real DCMTK and pynetdicom peers talking over loopback.

Each scenario function runs *inside* a private network namespace (see runner.py, which creates
it and starts this module as the worker).  It starts the servers, loads data, starts tcpdump,
runs the clients, stops tcpdump and leaves the peer logs in the context; build_peerlog() then
turns them into `<name>.peerlog.json`.

This is the only implementation: samples/make_samples.py and the tests both reach it through
runner.generate().
"""

from __future__ import annotations

import contextlib
import json
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import dataset as data
from .dcmtklog import LOG_CONFIG, local_midnight, parse_log
from .model import ASSOC_KEYS, MESSAGE_KEYS
from .proc import Capture, ProcSet, dcmtk, dcmtk_version, wait_listening

HOST = "127.0.0.1"
SEGMENT_MAX = 1448  # TCP payload with MTU 1500 and TCP timestamps


@dataclass
class DcmtkLog:
    path: Path
    tool: str
    server_port: int
    requestor: str  # implementation label of the requestor ("findscu (DCMTK 3.6.7)")
    acceptor: str
    primary: bool = True  # messages go into the peer log (else: cross-check only)


@dataclass
class Ctx:
    name: str
    workdir: Path
    out_dir: Path
    procs: ProcSet = field(init=False)
    capture: Capture = field(init=False)
    dcmtk_logs: list[DcmtkLog] = field(default_factory=list)
    recorder: Any = None
    servers: list[Any] = field(default_factory=list)  # pynetdicom ThreadedAssociationServer
    notes: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    day0: float = 0.0
    _images: list[Path] | None = None

    def __post_init__(self) -> None:
        self.procs = ProcSet(self.workdir)
        self.capture = Capture(self.procs, self.out_dir / f"{self.name}.pcap")
        self.day0 = local_midnight(time.time())
        (self.workdir / "logger.cfg").write_text(LOG_CONFIG)
        self.dcmtk_ver = dcmtk_version()

    @property
    def logcfg(self) -> str:
        return str(self.workdir / "logger.cfg")

    def images(self) -> list[Path]:
        if self._images is None:
            self._images = data.write_images(self.workdir / "images")
        return self._images

    def label(self, tool: str) -> str:
        return f"{tool} (DCMTK {self.dcmtk_ver})"

    def log(self, name: str) -> Path:
        """A fresh log path for one DCMTK tool run."""
        n = 1
        while (self.workdir / f"{name}-{n}.log").exists():
            n += 1
        p = self.workdir / f"{name}-{n}.log"
        p.touch()
        return p

    def cleanup(self) -> None:
        for srv in self.servers:
            with contextlib.suppress(Exception):
                srv.shutdown()
        self.servers.clear()
        try:
            self.capture.stop()
        finally:
            self.procs.stop_all()


# ------------------------------------------------------------------------------------------------
# DCMTK helpers
# ------------------------------------------------------------------------------------------------
QR_AET = "DCMQRSCP"


def start_dcmqrscp(
    ctx: Ctx, port: int = 11112, hosts: dict[str, tuple[str, int]] | None = None, load: bool = True
) -> None:
    """dcmqrscp (default forking mode) with an archive AE DCMQRSCP, loaded with all images."""
    db = ctx.workdir / "db" / QR_AET
    db.mkdir(parents=True, exist_ok=True)
    host_lines = "\n".join(
        f"{sym} = ({aet}, localhost, {p})" for sym, (aet, p) in (hosts or {}).items()
    )
    cfg = ctx.workdir / "dcmqrscp.cfg"
    cfg.write_text(
        f"NetworkTCPPort  = {port}\nMaxPDUSize      = 16384\nMaxAssociations = 16\n"
        f"HostTable BEGIN\n{host_lines}\nHostTable END\n"
        "VendorTable BEGIN\nVendorTable END\n"
        f"AETable BEGIN\n{QR_AET} {db} RW (100, 256mb) ANY\nAETable END\n"
    )
    p = ctx.procs.start(
        "dcmqrscp", [dcmtk("dcmqrscp"), "-lc", ctx.logcfg, "-c", str(cfg)], forks=True
    )
    wait_listening(port, proc=p)
    ctx.ports["dcmqrscp"] = port
    if load:
        ctx.procs.run(
            "storescu-load",
            [
                dcmtk("storescu"),
                "-aet",
                "LOADER",
                "-aec",
                QR_AET,
                HOST,
                str(port),
                *map(str, ctx.images()),
            ],
            timeout=60,
        )


MRONLY_CFG = """\
[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1  = LocalEndianExplicit
TransferSyntax2  = OppositeEndianExplicit
TransferSyntax3  = LittleEndianImplicit
[[PresentationContexts]]
[MROnlySCP]
PresentationContext1   = VerificationSOPClass\\Uncompressed
PresentationContext2   = MRImageStorage\\Uncompressed
[[Profiles]]
[MROnly]
PresentationContexts = MROnlySCP
"""


def start_storescp(ctx: Ctx, aet: str, port: int, mr_only: bool = False) -> Path:
    out = ctx.workdir / f"in-{aet}"
    out.mkdir(exist_ok=True)
    log = ctx.log(f"storescp-{aet}")
    argv = [dcmtk("storescp"), "-lc", ctx.logcfg, "-aet", aet, "-od", str(out)]
    if mr_only:
        cfg = ctx.workdir / "storescp-mronly.cfg"
        cfg.write_text(MRONLY_CFG)
        argv += ["--config-file", str(cfg), "MROnly"]
    argv.append(str(port))
    p = ctx.procs.start(f"storescp-{aet}", argv, log=log)
    wait_listening(port, proc=p)
    ctx.ports[f"storescp {aet}"] = port
    return log


def findscu(
    ctx: Ctx,
    model: str,
    queries: list[Any],
    port: int,
    called: str,
    calling: str = "FINDSCU",
    extra: list[str] | None = None,
    primary: bool = True,
    acceptor: str | None = None,
) -> Path:
    """One findscu association sending each query (a Dataset) in turn."""
    files = []
    for q in queries:
        n = len(list(ctx.workdir.glob("query-*.dcm"))) + 1
        files.append(str(data.write_query(ctx.workdir / f"query-{n:03d}.dcm", q)))
    log = ctx.log("findscu")
    argv = [
        dcmtk("findscu"),
        "-lc",
        ctx.logcfg,
        f"-{model}",
        "-aet",
        calling,
        "-aec",
        called,
        *(extra or []),
        HOST,
        str(port),
        *files,
    ]
    ctx.procs.run("findscu", argv, log=log, timeout=60, ok_codes=None)
    ctx.dcmtk_logs.append(
        DcmtkLog(
            log, "findscu", port, ctx.label("findscu"), acceptor or ctx.label("dcmqrscp"), primary
        )
    )
    return log


def movescu(
    ctx: Ctx,
    model: str,
    query: Any,
    dest: str,
    port: int,
    called: str = QR_AET,
    calling: str = "MOVESCU",
    extra: list[str] | None = None,
) -> Path:
    qf = data.write_query(ctx.workdir / f"move-{len(ctx.dcmtk_logs) + 1:03d}.dcm", query)
    log = ctx.log("movescu")
    argv = [
        dcmtk("movescu"),
        "-lc",
        ctx.logcfg,
        f"-{model}",
        "-aet",
        calling,
        "-aec",
        called,
        "-aem",
        dest,
        *(extra or []),
        HOST,
        str(port),
        str(qf),
    ]
    # movescu exits non-zero when the final status is a failure: that is expected here
    ctx.procs.run("movescu", argv, log=log, timeout=60, ok_codes=None)
    ctx.dcmtk_logs.append(
        DcmtkLog(log, "movescu", port, ctx.label("movescu"), ctx.label("dcmqrscp"))
    )
    return log


def study_query(level: str = "STUDY", **keys: Any) -> Any:
    return data.query(level, **keys)


S = {s.key: s for s in data.STUDIES}


def series_uid(study_key: str, n: int) -> str:
    st = S[study_key]
    return data.series_uid(st, st.series[n - 1])


# ------------------------------------------------------------------------------------------------
# Scenarios
# ------------------------------------------------------------------------------------------------
def scenario_dcmtk_echo(ctx: Ctx) -> None:
    start_dcmqrscp(ctx, 11112, load=False)
    ctx.capture.start()
    for extra in ([], ["--repeat", "3"]):
        log = ctx.log("echoscu")
        ctx.procs.run(
            "echoscu",
            [
                dcmtk("echoscu"),
                "-lc",
                ctx.logcfg,
                "-aet",
                "ECHOSCU",
                "-aec",
                QR_AET,
                *extra,
                HOST,
                "11112",
            ],
            log=log,
        )
        ctx.dcmtk_logs.append(
            DcmtkLog(log, "echoscu", 11112, ctx.label("echoscu"), ctx.label("dcmqrscp"))
        )
    ctx.capture.stop()


def scenario_dcmtk_find_levels(ctx: Ctx) -> None:
    start_dcmqrscp(ctx, 11112)
    ctx.capture.start()
    q = data.query
    # association 1, Patient Root: PATIENT level, all / one / no match
    findscu(
        ctx,
        "P",
        [
            q("PATIENT", PatientName="*", PatientID=None, PatientBirthDate=None, PatientSex=None),
            q("PATIENT", PatientID="DSN002", PatientName=None),
            q("PATIENT", PatientName="NOBODY*", PatientID=None),
        ],
        11112,
        QR_AET,
    )
    # association 2, Patient Root: STUDY, SERIES and IMAGE levels down DOE^JOHN's CT study
    findscu(
        ctx,
        "P",
        [
            q(
                "STUDY",
                PatientID="DSN001",
                StudyInstanceUID=None,
                StudyDate=None,
                StudyDescription=None,
                AccessionNumber=None,
            ),
            q(
                "SERIES",
                PatientID="DSN001",
                StudyInstanceUID=S["S1"].uid,
                SeriesInstanceUID=None,
                Modality=None,
                SeriesNumber=None,
            ),
            q(
                "IMAGE",
                PatientID="DSN001",
                StudyInstanceUID=S["S1"].uid,
                SeriesInstanceUID=series_uid("S1", 1),
                SOPInstanceUID=None,
                InstanceNumber=None,
            ),
        ],
        11112,
        QR_AET,
    )
    # association 3, Study Root: STUDY (date range, wildcard name), SERIES, IMAGE
    findscu(
        ctx,
        "S",
        [
            q(
                "STUDY",
                StudyDate="20240101-20241231",
                StudyInstanceUID=None,
                PatientName=None,
                PatientID=None,
                StudyDescription=None,
            ),
            q("STUDY", PatientName="SMITH*", StudyInstanceUID=None, StudyDate=None),
            q(
                "SERIES",
                StudyInstanceUID=S["S3"].uid,
                Modality="MR",
                SeriesInstanceUID=None,
                SeriesDescription=None,
            ),
            q(
                "IMAGE",
                StudyInstanceUID=S["S4"].uid,
                SeriesInstanceUID=series_uid("S4", 1),
                SOPInstanceUID=None,
                SOPClassUID=None,
                InstanceNumber=None,
            ),
        ],
        11112,
        QR_AET,
    )
    # association 4, Study Root: no match
    findscu(
        ctx, "S", [q("STUDY", AccessionNumber="NOSUCH999", StudyInstanceUID=None)], 11112, QR_AET
    )
    ctx.capture.stop()


def scenario_dcmtk_move(ctx: Ctx) -> None:
    start_dcmqrscp(ctx, 11112, hosts={"storescp": ("STORESCP", 11113), "mronly": ("MRONLY", 11114)})
    st1 = start_storescp(ctx, "STORESCP", 11113)
    st2 = start_storescp(ctx, "MRONLY", 11114, mr_only=True)
    ctx.capture.start()
    q = data.query
    # 1: study with two 512x512 CT images -> Success
    movescu(ctx, "S", q("STUDY", StudyInstanceUID=S["S4"].uid), "STORESCP", 11112)
    # 2: Patient Root, SERIES level, 3 MR images -> Success
    movescu(
        ctx,
        "P",
        q(
            "SERIES",
            PatientID="DSN001",
            StudyInstanceUID=S["S2"].uid,
            SeriesInstanceUID=series_uid("S2", 1),
        ),
        "STORESCP",
        11112,
    )
    # 3: CT+MR study to an MR-only destination -> B000 with Failed SOP Instance UID List
    movescu(ctx, "S", q("STUDY", StudyInstanceUID=S["S3"].uid), "MRONLY", 11112)
    # 4: CT-only study to the MR-only destination -> every sub-operation fails -> A702
    movescu(ctx, "S", q("STUDY", StudyInstanceUID=S["S6"].uid), "MRONLY", 11112)
    # 5: unknown destination -> A801
    movescu(ctx, "S", q("STUDY", StudyInstanceUID=S["S1"].uid), "NOWHERE", 11112)
    ctx.capture.stop()
    for log, aet, port in ((st1, "STORESCP", 11113), (st2, "MRONLY", 11114)):
        ctx.dcmtk_logs.append(
            DcmtkLog(
                log,
                "storescp",
                port,
                ctx.label("dcmqrscp"),
                f"storescp {aet} (DCMTK {ctx.dcmtk_ver})",
            )
        )


# -- pynetdicom helpers --------------------------------------------------------------------------
def _pn():
    from pynetdicom import AE, evt  # noqa: F401
    from pynetdicom.sop_class import (  # noqa: F401
        CTImageStorage,
        MRImageStorage,
        PatientRootQueryRetrieveInformationModelFind,
        PatientRootQueryRetrieveInformationModelMove,
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelMove,
        Verification,
    )

    return sys.modules["pynetdicom"], sys.modules["pynetdicom.sop_class"]


TS_EXPLICIT = "1.2.840.10008.1.2.1"
TS_IMPLICIT = "1.2.840.10008.1.2"
TS_UNCOMPRESSED = [TS_EXPLICIT, TS_IMPLICIT]


def start_qr_scp(
    ctx: Ctx,
    aet: str,
    port: int,
    archive: Any,
    *,
    delay: float = 0.0,
    destinations: dict[str, tuple[str, int]] | None = None,
    storage: bool = False,
    max_pdu: int = 16384,
) -> Any:
    from . import pnpeers

    pn, sc = _pn()
    ae = pn.AE(ae_title=aet)
    ae.maximum_pdu_size = max_pdu
    ae.maximum_associations = 20
    ae.add_supported_context(sc.Verification, TS_UNCOMPRESSED)
    for uid in (
        sc.PatientRootQueryRetrieveInformationModelFind,
        sc.StudyRootQueryRetrieveInformationModelFind,
        sc.PatientRootQueryRetrieveInformationModelMove,
        sc.StudyRootQueryRetrieveInformationModelMove,
    ):
        ae.add_supported_context(uid, TS_UNCOMPRESSED)
    handlers = [
        (pn.evt.EVT_C_ECHO, pnpeers.handle_echo),
        (pn.evt.EVT_C_FIND, pnpeers.make_find_handler(archive, aet, delay)),
    ]
    if destinations is not None:
        for uid in (sc.CTImageStorage, sc.MRImageStorage):
            ae.add_requested_context(uid, TS_UNCOMPRESSED)
        handlers.append(
            (
                pn.evt.EVT_C_MOVE,
                pnpeers.make_move_handler(archive, destinations, ctx.recorder.handlers()),
            )
        )
    if storage:
        for uid in (sc.CTImageStorage, sc.MRImageStorage):
            ae.add_supported_context(uid, TS_UNCOMPRESSED)
        handlers.append((pn.evt.EVT_C_STORE, pnpeers.make_store_handler()))
    srv = ae.start_server(
        (HOST, port), block=False, evt_handlers=handlers + ctx.recorder.handlers()
    )
    ctx.servers.append(srv)
    wait_listening(port)
    ctx.ports[f"pynetdicom {aet}"] = port
    return srv


def start_store_scp(ctx: Ctx, aet: str, port: int, fail_sop_classes: set[str] | None = None) -> Any:
    from . import pnpeers

    pn, sc = _pn()
    ae = pn.AE(ae_title=aet)
    ae.add_supported_context(sc.Verification, TS_UNCOMPRESSED)
    for uid in (sc.CTImageStorage, sc.MRImageStorage):
        ae.add_supported_context(uid, TS_UNCOMPRESSED)
    handlers = [
        (pn.evt.EVT_C_ECHO, pnpeers.handle_echo),
        (pn.evt.EVT_C_STORE, pnpeers.make_store_handler(fail_sop_classes)),
    ]
    srv = ae.start_server(
        (HOST, port), block=False, evt_handlers=handlers + ctx.recorder.handlers()
    )
    ctx.servers.append(srv)
    wait_listening(port)
    ctx.ports[f"pynetdicom {aet}"] = port
    return srv


def scu_assoc(
    ctx: Ctx, aet: str, port: int, called: str, contexts: list[str], max_pdu: int = 16384
) -> Any:
    pn, _sc = _pn()
    ae = pn.AE(ae_title=aet)
    ae.maximum_pdu_size = max_pdu
    for uid in contexts:
        ae.add_requested_context(uid, TS_UNCOMPRESSED)
    assoc = ae.associate(
        HOST,
        port,
        ae_title=called,
        max_pdu=max_pdu,
        bind_address=(HOST, 0),
        evt_handlers=ctx.recorder.handlers(),
    )
    if not assoc.is_established:
        raise RuntimeError(f"{aet} could not associate with {called} on port {port}")
    return assoc


def _final_status(responses: list[tuple[Any, Any]]) -> int | None:
    if not responses:
        return None
    st = responses[-1][0]
    return int(st.Status) if st is not None and "Status" in st else None


def scenario_pynetdicom_find_cancel(ctx: Ctx) -> None:
    from . import pnpeers

    _pn_mod, sc = _pn()
    ctx.recorder = pnpeers.Recorder({"PYQRSCP", "PYFINDSCU"})
    start_qr_scp(ctx, "PYQRSCP", 104, pnpeers.Archive(extra_studies=40), delay=0.05)
    ctx.capture.start()
    q = data.query
    model_s = sc.StudyRootQueryRetrieveInformationModelFind
    model_p = sc.PatientRootQueryRetrieveInformationModelFind

    def find(assoc: Any, ident: Any, model: str, msg_id: int, cancel_after: int | None) -> None:
        n = 0
        for status, _ident in assoc.send_c_find(ident, model, msg_id=msg_id):
            if status is None:
                raise RuntimeError("C-FIND timed out / association ended")
            if status.Status in (0xFF00, 0xFF01):
                n += 1
                if cancel_after is not None and n == cancel_after:
                    assoc.send_c_cancel(msg_id, query_model=model)
            else:
                ctx.notes.append(f"C-FIND msg {msg_id}: {n} pending, final 0x{status.Status:04X}")

    # association 1: cancel a long study query after 5 matches, then a query that completes
    a = scu_assoc(ctx, "PYFINDSCU", 104, "PYQRSCP", [model_s, model_p])
    find(
        a,
        q(
            "STUDY",
            PatientName="CANCEL*",
            StudyInstanceUID=None,
            StudyDate=None,
            StudyDescription=None,
        ),
        model_s,
        1,
        cancel_after=5,
    )
    find(a, q("PATIENT", PatientID="DSN00*", PatientName=None), model_p, 2, cancel_after=None)
    a.release()
    # association 2: cancel after the first match of a patient-level query
    a = scu_assoc(ctx, "PYFINDSCU", 104, "PYQRSCP", [model_p])
    find(
        a, q("PATIENT", PatientName="CANCEL^PATIENT1*", PatientID=None), model_p, 7, cancel_after=1
    )
    a.release()
    time.sleep(0.2)
    ctx.capture.stop()


def scenario_pynetdicom_move(ctx: Ctx) -> None:
    from . import pnpeers

    _pn_mod, sc = _pn()
    ctx.recorder = pnpeers.Recorder({"PYQRSCP", "PYSTORE", "PYPARTIAL", "PYMOVESCU"})
    start_store_scp(ctx, "PYSTORE", 11113)
    start_store_scp(ctx, "PYPARTIAL", 11114, fail_sop_classes={data.CT_IMAGE_STORAGE})
    start_qr_scp(
        ctx,
        "PYQRSCP",
        11112,
        pnpeers.Archive(),
        destinations={"PYSTORE": (HOST, 11113), "PYPARTIAL": (HOST, 11114)},
    )
    ctx.capture.start()
    q = data.query
    model = sc.StudyRootQueryRetrieveInformationModelMove
    pmodel = sc.PatientRootQueryRetrieveInformationModelMove

    def move(assoc: Any, ident: Any, dest: str, m: str, msg_id: int) -> None:
        rsps = list(assoc.send_c_move(ident, dest, m, msg_id=msg_id))
        st = _final_status(rsps)
        ctx.notes.append(
            f"C-MOVE msg {msg_id} to {dest}: {len(rsps)} responses, final "
            + (f"0x{st:04X}" if st is not None else "none")
        )

    # association 1: a full success, then a partial failure (PYPARTIAL refuses CT with A700)
    a = scu_assoc(ctx, "PYMOVESCU", 11112, "PYQRSCP", [model, pmodel])
    move(a, q("STUDY", StudyInstanceUID=S["S2"].uid), "PYSTORE", model, 1)
    move(a, q("STUDY", StudyInstanceUID=S["S3"].uid), "PYPARTIAL", model, 2)
    a.release()
    # association 2: unknown destination (A801), then every sub-operation failing
    a = scu_assoc(ctx, "PYMOVESCU", 11112, "PYQRSCP", [model, pmodel])
    move(a, q("STUDY", StudyInstanceUID=S["S1"].uid), "UNKNOWNAE", model, 1)
    move(
        a,
        q(
            "SERIES",
            PatientID="DSN005",
            StudyInstanceUID=S["S6"].uid,
            SeriesInstanceUID=series_uid("S6", 1),
        ),
        "PYPARTIAL",
        pmodel,
        2,
    )
    a.release()
    time.sleep(0.2)
    ctx.capture.stop()


def scenario_dcmtk_find_pynetdicom_scp(ctx: Ctx) -> None:
    from . import pnpeers

    ctx.recorder = pnpeers.Recorder({"PYQRSCP", "PYQRSLOW"})
    start_qr_scp(ctx, "PYQRSCP", 11112, pnpeers.Archive())
    start_qr_scp(ctx, "PYQRSLOW", 11113, pnpeers.Archive(extra_studies=20), delay=0.1)
    ctx.capture.start()
    q = data.query
    pyn = f"pynetdicom {pnpeers.PYNETDICOM_VERSION}"
    findscu(
        ctx,
        "P",
        [
            q("PATIENT", PatientName="*", PatientID=None, PatientBirthDate=None),
            q(
                "STUDY",
                PatientID="DSN001",
                StudyInstanceUID=None,
                StudyDate=None,
                StudyDescription=None,
                ModalitiesInStudy=None,
            ),
        ],
        11112,
        "PYQRSCP",
        primary=False,
        acceptor=pyn,
    )
    findscu(
        ctx,
        "S",
        [
            q(
                "STUDY",
                StudyDate="20240101-20241231",
                StudyInstanceUID=None,
                PatientName=None,
                NumberOfStudyRelatedInstances=None,
            ),
            q(
                "SERIES",
                StudyInstanceUID=S["S3"].uid,
                SeriesInstanceUID=None,
                Modality=None,
                NumberOfSeriesRelatedInstances=None,
            ),
            q(
                "IMAGE",
                StudyInstanceUID=S["S3"].uid,
                SeriesInstanceUID=series_uid("S3", 2),
                SOPInstanceUID=None,
                InstanceNumber=None,
            ),
            q("STUDY", AccessionNumber="NOSUCH999", StudyInstanceUID=None),
        ],
        11112,
        "PYQRSCP",
        primary=False,
        acceptor=pyn,
    )
    # findscu --cancel 3 against a slow SCP: C-CANCEL after the third response -> FE00
    findscu(
        ctx,
        "S",
        [q("STUDY", PatientName="CANCEL*", StudyInstanceUID=None)],
        11113,
        "PYQRSLOW",
        extra=["--cancel", "3"],
        primary=False,
        acceptor=pyn,
    )
    time.sleep(0.2)
    ctx.capture.stop()


def scenario_mixed_smallpdu_port(ctx: Ctx) -> None:
    from . import pnpeers

    _pn_mod, sc = _pn()
    port = 5678
    ctx.recorder = pnpeers.Recorder({"PYMIXSCP", "PYSCU1", "PYSCU2", "PYSCU3"})
    start_qr_scp(
        ctx, "PYMIXSCP", port, pnpeers.Archive(long_comments=True), storage=True, max_pdu=4096
    )
    images = ctx.images()
    ctx.capture.start()
    q = data.query
    fmodel = sc.StudyRootQueryRetrieveInformationModelFind
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run(fn: Callable[[], None]) -> Callable[[], None]:
        def wrapper() -> None:
            try:
                barrier.wait(timeout=10)
                fn()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        return wrapper

    from pydicom import dcmread

    small = [ds for ds in (dcmread(p) for p in images) if ds.Rows == 64]

    def scu1() -> None:
        a = scu_assoc(ctx, "PYSCU1", port, "PYMIXSCP", [sc.Verification, fmodel], max_pdu=4096)
        a.send_c_echo(msg_id=1)
        list(
            a.send_c_find(
                q(
                    "STUDY",
                    PatientName="*",
                    PatientID=None,
                    StudyInstanceUID=None,
                    PatientComments=None,
                ),
                fmodel,
                msg_id=2,
            )
        )
        time.sleep(0.05)
        a.send_c_echo(msg_id=3)
        a.release()

    def scu2() -> None:
        a = scu_assoc(
            ctx, "PYSCU2", port, "PYMIXSCP", [sc.CTImageStorage, sc.MRImageStorage], max_pdu=4096
        )
        for i, ds in enumerate(small[:4], start=1):
            a.send_c_store(ds, msg_id=i)
            time.sleep(0.02)
        a.release()

    def scu3() -> None:
        a = scu_assoc(
            ctx,
            "PYSCU3",
            port,
            "PYMIXSCP",
            [fmodel, sc.CTImageStorage, sc.MRImageStorage],
            max_pdu=4096,
        )
        list(
            a.send_c_find(
                q(
                    "SERIES",
                    StudyInstanceUID=S["S1"].uid,
                    SeriesInstanceUID=None,
                    Modality=None,
                    PatientComments=None,
                ),
                fmodel,
                msg_id=11,
            )
        )
        for i, ds in enumerate(small[6:8], start=12):
            a.send_c_store(ds, msg_id=i)
        a.release()

    threads = [threading.Thread(target=run(f), name=f.__name__) for f in (scu1, scu2, scu3)]
    for t in threads:
        t.start()
    # DCMTK clients at the same moment: findscu and storescu, both with a 4096-byte max PDU
    barrier.wait(timeout=10)
    fq = data.write_query(
        ctx.workdir / "mixed-find.dcm",
        q("STUDY", PatientName="*", StudyInstanceUID=None, PatientComments=None),
    )
    flog, slog = ctx.log("findscu"), ctx.log("storescu")
    pf = ctx.procs.start(
        "findscu",
        [
            dcmtk("findscu"),
            "-lc",
            ctx.logcfg,
            "-S",
            "-aet",
            "DCMFINDSCU",
            "-aec",
            "PYMIXSCP",
            "--max-pdu",
            "4096",
            HOST,
            str(port),
            str(fq),
        ],
        log=flog,
    )
    ps = ctx.procs.start(
        "storescu",
        [
            dcmtk("storescu"),
            "-lc",
            ctx.logcfg,
            "-aet",
            "DCMSTORESCU",
            "-aec",
            "PYMIXSCP",
            "--max-pdu",
            "4096",
            HOST,
            str(port),
            *map(str, images[8:11]),
        ],
        log=slog,
    )
    for p in (pf, ps):
        if p.popen.wait(timeout=60) != 0:
            raise RuntimeError(f"{p.name} failed; see {p.log}")
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]
    pyn = f"pynetdicom {pnpeers.PYNETDICOM_VERSION}"
    ctx.dcmtk_logs.append(DcmtkLog(flog, "findscu", port, ctx.label("findscu"), pyn, False))
    ctx.dcmtk_logs.append(DcmtkLog(slog, "storescu", port, ctx.label("storescu"), pyn, False))
    time.sleep(0.2)
    ctx.capture.stop()


@dataclass
class Scenario:
    name: str
    func: Callable[[Ctx], None]
    description: str


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "dcmtk-echo",
            scenario_dcmtk_echo,
            "echoscu -> dcmqrscp: one C-ECHO, then an association with 3 C-ECHOs",
        ),
        Scenario(
            "dcmtk-find-levels",
            scenario_dcmtk_find_levels,
            "findscu -> dcmqrscp: PATIENT/STUDY/SERIES/IMAGE C-FINDs, Patient and Study Root, "
            "4 associations, several matches and queries without match",
        ),
        Scenario(
            "dcmtk-move",
            scenario_dcmtk_move,
            "movescu -> dcmqrscp -> storescp: C-MOVE with C-STORE sub-operations; success, "
            "B000 partial failure, A702 all failed, A801 unknown destination",
        ),
        Scenario(
            "pynetdicom-find-cancel",
            scenario_pynetdicom_find_cancel,
            "pynetdicom SCU -> pynetdicom Q/R SCP on port 104: C-FIND cancelled with C-CANCEL "
            "(FE00), plus a completed C-FIND",
        ),
        Scenario(
            "mixed-smallpdu-port",
            scenario_mixed_smallpdu_port,
            "3 pynetdicom SCUs + findscu + storescu, concurrently, -> pynetdicom SCP on port "
            "5678, max PDU 4096 on both sides: fragmented messages, interleaved associations",
        ),
        Scenario(
            "pynetdicom-move",
            scenario_pynetdicom_move,
            "pynetdicom SCU -> pynetdicom Move SCP -> pynetdicom Storage SCPs: success, B000 "
            "with failed list, A801 unknown destination, A702 all failed",
        ),
        Scenario(
            "dcmtk-find-pynetdicom-scp",
            scenario_dcmtk_find_pynetdicom_scp,
            "findscu -> pynetdicom Q/R FIND SCP: levels, no match, and findscu --cancel 3",
        ),
    ]
}


# ------------------------------------------------------------------------------------------------
# pcap summary (plain parser: Ethernet/IPv4/TCP as written by tcpdump on lo)
# ------------------------------------------------------------------------------------------------
def pcap_summary(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    if len(raw) < 24:
        raise RuntimeError(f"{path}: empty or truncated pcap")
    magic = raw[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", raw[20:24])[0]
    off = 24
    packets = 0
    max_payload = 0
    payload_bytes = 0
    syns: list[tuple[float, int, int]] = []
    fins: set[tuple[int, int]] = set()
    resets = 0
    streams: set[tuple[int, int]] = set()
    first_t = last_t = None
    while off + 16 <= len(raw):
        ts, tfrac, incl, _orig = struct.unpack(endian + "IIII", raw[off : off + 16])
        frame = raw[off + 16 : off + 16 + incl]
        off += 16 + incl
        t = ts + tfrac / (1e9 if nano else 1e6)
        first_t = t if first_t is None else first_t
        last_t = t
        packets += 1
        if linktype == 1:
            if len(frame) < 14 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
        elif linktype in (101, 228):  # raw IP
            ip = frame
        else:
            continue
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[ihl:]
        sport, dport = struct.unpack("!HH", tcp[:4])
        doff = (tcp[12] >> 4) * 4
        flags = tcp[13]
        plen = total - ihl - doff
        max_payload = max(max_payload, plen)
        payload_bytes += max(plen, 0)
        streams.add((min(sport, dport), max(sport, dport)))
        if flags & 0x02 and not flags & 0x10:
            syns.append((t, sport, dport))
        if flags & 0x01:
            fins.add((sport, dport))
        if flags & 0x04:
            resets += 1
    closed = sum(1 for _t, s, d in syns if (s, d) in fins and (d, s) in fins)
    return {
        "file": path.name,
        "size": len(raw),
        "packets": packets,
        "tcp_connections": len(syns),
        "tcp_connections_closed": closed,
        "tcp_resets": resets,
        "tcp_payload_bytes": payload_bytes,
        "max_tcp_payload": max_payload,
        "duration": round((last_t or 0) - (first_t or 0), 3),
        "syns": syns,
    }


# ------------------------------------------------------------------------------------------------
# Peer log assembly
# ------------------------------------------------------------------------------------------------
def _dcmtk_assoc_entry(a: Any, lg: DcmtkLog) -> dict[str, Any]:
    req = a.role == "requestor"
    return {
        "calling_ae": a.calling_ae,
        "called_ae": a.called_ae,
        "client_port": None,
        "server_port": lg.server_port,
        "requestor": lg.requestor,
        "acceptor": lg.acceptor,
        "max_pdu_requestor": a.our_max_pdu if req else a.their_max_pdu,
        "max_pdu_acceptor": a.their_max_pdu if req else a.our_max_pdu,
        "accepted_contexts": a.accepted_contexts,
        "rejected_contexts": a.rejected_contexts,
        "end": a.end,
        "time": a.time,
        "source": f"dcmtk-log:{lg.tool}",
    }


def _compare_key(m: dict[str, Any]) -> tuple:
    return (
        m["command_field"],
        m["message_id"],
        m["message_id_being_responded_to"],
        m["status"],
        m["remaining"],
        m["completed"],
        m["failed"],
        m["warning"],
        m["has_dataset"],
    )


def build_peerlog(ctx: Ctx, scenario: Scenario, pcap: dict[str, Any]) -> dict[str, Any]:
    entries: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    secondary: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for lg in ctx.dcmtk_logs:
        for a in parse_log(lg.path, lg.tool, ctx.day0):
            msgs = [dict(m) for m in a.messages]
            for m in msgs:
                m.pop("_sent", None)
            (entries if lg.primary else secondary).append((_dcmtk_assoc_entry(a, lg), msgs))
    if ctx.recorder is not None:
        for key, info in ctx.recorder.assocs.items():
            msgs = sorted(
                (m for m in ctx.recorder.messages if m["_key"] == key),
                key=lambda m: (m["time"], m["_seq"]),
            )
            entries.append((dict(info), msgs))
    entries.sort(key=lambda e: e[0]["time"])

    # client ports of DCMTK-logged associations: k-th association to port P = k-th SYN to P
    syn_by_port: dict[int, list[int]] = {}
    for _t, sport, dport in sorted(pcap["syns"]):
        syn_by_port.setdefault(dport, []).append(sport)
    known = {e["client_port"] for e, _ in entries if e["client_port"] is not None}
    for port, clients in syn_by_port.items():
        free = [c for c in clients if c not in known]
        todo = [e for e, _ in entries if e["server_port"] == port and e["client_port"] is None]
        if todo and len(todo) != len(free):
            ctx.notes.append(
                f"port {port}: {len(todo)} logged associations but {len(free)} "
                "unmatched TCP connections; client ports left null"
            )
            continue
        for e, c in zip(todo, free, strict=False):
            e["client_port"] = c

    associations = []
    all_msgs = []
    for idx, (info, msgs) in enumerate(entries):
        a = dict(info, index=idx, messages=len(msgs))
        associations.append({k: a.get(k) for k in ASSOC_KEYS})
        for pos, m in enumerate(msgs):
            m["assoc"] = idx
            m["assoc_calling_ae"] = info["calling_ae"]
            m["assoc_called_ae"] = info["called_ae"]
            if m.get("sender_ae") is None:
                m["sender_ae"] = info["calling_ae"] if m["sender"] == "SCU" else info["called_ae"]
            m["_pos"] = pos
            all_msgs.append(m)
    all_msgs.sort(key=lambda m: (m["time"], m["assoc"], m["_pos"]))
    messages = []
    for i, m in enumerate(all_msgs):
        m["index"] = i
        messages.append({k: m.get(k) for k in MESSAGE_KEYS})

    # cross-check: what DCMTK logged against what pynetdicom recorded, association by association
    cross = None
    if secondary:
        problems = []
        by_calling: dict[str, list[list[dict[str, Any]]]] = {}
        for info, msgs in entries:
            by_calling.setdefault(info["calling_ae"], []).append(msgs)
        used: dict[str, int] = {}
        for info, msgs in sorted(secondary, key=lambda e: e[0]["time"]):
            ca = info["calling_ae"]
            k = used.get(ca, 0)
            used[ca] = k + 1
            cands = by_calling.get(ca, [])
            if k >= len(cands):
                problems.append(
                    f"{info['source']} association {ca}->{info['called_ae']} "
                    "not in the pynetdicom record"
                )
                continue
            mine = [_compare_key(m) for m in msgs]
            theirs = [_compare_key(m) for m in cands[k]]
            if mine != theirs:
                problems.append(
                    f"{info['source']} {ca}: {len(mine)} messages differ from the "
                    f"{len(theirs)} pynetdicom recorded"
                )
        cross = {
            "compared": len(secondary),
            "result": "ok" if not problems else "mismatch",
            "problems": problems,
        }

    by_cmd: dict[str, int] = {}
    finals: list[dict[str, Any]] = []
    for m in messages:
        by_cmd[m["command"]] = by_cmd.get(m["command"], 0) + 1
        if m["command"] in (
            "C-FIND-RSP",
            "C-MOVE-RSP",
            "C-GET-RSP",
            "C-ECHO-RSP",
            "C-STORE-RSP",
        ) and m["status"] not in (0xFF00, 0xFF01):
            finals.append(
                {
                    "assoc": m["assoc"],
                    "command": m["command"],
                    "message_id_being_responded_to": m["message_id_being_responded_to"],
                    "status": m["status"],
                    "status_hex": f"{m['status']:04X}" if isinstance(m["status"], int) else None,
                }
            )
    sources = sorted({a["source"] for a in associations})
    import pydicom
    import pynetdicom

    pcap_out = {k: v for k, v in pcap.items() if k != "syns"}
    return {
        "format": "dimsesniff-peerlog/1",
        "scenario": scenario.name,
        "description": scenario.description,
        "pcap": pcap["file"],
        "source": "dcmtk-log"
        if all(x.startswith("dcmtk-log") for x in sources)
        else ("pynetdicom-events" if sources == ["pynetdicom-events"] else "mixed"),
        "sources": sources,
        "peers": {
            "dcmtk": ctx.dcmtk_ver,
            "pynetdicom": pynetdicom.__version__,
            "pydicom": pydicom.__version__,
        },
        "ports": ctx.ports,
        "capture": pcap_out,
        "summary": {
            "associations": len(associations),
            "messages": len(messages),
            "by_command": dict(sorted(by_cmd.items())),
            "final_responses": finals,
        },
        "cross_check": cross,
        "notes": ctx.notes,
        "associations": associations,
        "messages": messages,
    }


def run_scenario(name: str, out_dir: Path, workdir: Path) -> tuple[Path, Path]:
    """Run one scenario in the current (already private) network namespace."""
    scenario = SCENARIOS[name]
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(name, workdir, out_dir)
    pcap_path = out_dir / f"{name}.pcap"
    pcap_path.unlink(missing_ok=True)
    try:
        scenario.func(ctx)
    finally:
        ctx.cleanup()
    pcap = pcap_summary(pcap_path)
    if pcap["max_tcp_payload"] > SEGMENT_MAX:
        raise RuntimeError(
            f"{pcap_path}: TCP segment of {pcap['max_tcp_payload']} bytes "
            f"(> {SEGMENT_MAX}): loopback GSO/MTU not limited"
        )
    if pcap["tcp_connections_closed"] != pcap["tcp_connections"]:
        raise RuntimeError(
            f"{pcap_path}: only {pcap['tcp_connections_closed']} of "
            f"{pcap['tcp_connections']} TCP connections closed in the capture "
            "(capture stopped early?)"
        )
    peerlog = build_peerlog(ctx, scenario, pcap)
    if peerlog["summary"]["associations"] != pcap["tcp_connections"]:
        peerlog["notes"].append(
            f"{pcap['tcp_connections']} TCP connections in the capture, "
            f"{peerlog['summary']['associations']} associations logged"
        )
    log_path = out_dir / f"{name}.peerlog.json"
    log_path.write_text(json.dumps(peerlog, indent=1) + "\n")
    return pcap_path, log_path


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(f"worker stopped by signal {signum}")


def worker_main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _terminate)  # unwind through the cleanup in run_scenario
    name, out_dir, workdir = argv[0], Path(argv[1]), Path(argv[2])
    pcap, log = run_scenario(name, out_dir, workdir)
    print(json.dumps({"pcap": str(pcap), "peerlog": str(log)}))
    return 0


# ------------------------------------------------------------------------------------------------
# Scenarios defined in other modules register themselves in SCENARIOS when imported: importing
# them here makes them known to generate() and to the worker.  badscp.py: the "bad-*" captures of
# a deliberately non-conformant Q/R SCP (planted violations, samples/bad-*.expected.json).
# ------------------------------------------------------------------------------------------------
from . import badscp as _badscp  # noqa: E402, F401
