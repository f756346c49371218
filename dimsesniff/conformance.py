"""The observed conformance statement: PS3.2 Tables N.7-48..N.7-51 filled from the wire.

A vendor's conformance statement says which status codes its Query/Retrieve
SCP sends and under which conditions (Tables N.7-50, N.7-51), and what its
SCU does when it receives each of them (Tables N.7-48, N.7-49).  This module
fills the same tables from what the capture shows, device by device, so the
two can be held side by side:

- for each SCP (called AE title + ``ip:port``): every status code it sent, how
  often, which related fields came with it (against the fields the table
  lists), the conditions seen (query model and level, Move Destination,
  Error Comment, after a C-CANCEL-RQ, ...) and, for C-MOVE, what happened to
  the store sub-operations;
- for each SCU (calling AE title + IP address; the port changes with every
  connection): what it did after each status: waited for the next response,
  sent a C-CANCEL-RQ, sent the next request, retried the same query (and
  after how long), released or aborted the association.

Codes outside the table get an "Other Status Codes" row.  Only what was seen
is reported: a code that never occurred says nothing about the device.

``ObservedConformance`` is a sink like the file writers: ``write(table,
row)`` with the rows of ``report/rows.py``, in the order the pipeline
produces them.  Memory is bounded by the open operations and associations
plus a few counters per device and status code.
"""

from __future__ import annotations

import html
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .report.safe_text import printable
from .standard.qr_tables import QR_FIND_CLASSES, QR_MOVE_CLASSES
from .standard.status import QR_FIND_SEED, QR_MOVE_SEED, StatusClass, StatusRow, one

FIND, MOVE = "C-FIND", "C-MOVE"
RELATED_COLUMNS = (  # row column -> command element it stands for
    ("remaining", "(0000,1020)"),
    ("completed", "(0000,1021)"),
    ("failed", "(0000,1022)"),
    ("warning", "(0000,1023)"),
    ("offending_element", "(0000,0901)"),
    ("error_comment", "(0000,0902)"),
)
_TAG_TEXT = {
    0x0000_1020: "(0000,1020)",
    0x0000_1021: "(0000,1021)",
    0x0000_1022: "(0000,1022)",
    0x0000_1023: "(0000,1023)",
    0x0000_0901: "(0000,0901)",
    0x0000_0902: "(0000,0902)",
}
MAX_LISTED = 6  # conditions / behaviours listed per row before "... n more"
MAX_FRAMES = 3  # example frames per status code
MAX_RECENT = 256  # finished queries remembered per SCU, to spot retries


# -- the four tables of PS3.2 Annex N.7.3.2.7 -------------------------------------------------


@dataclass(frozen=True, slots=True)
class TableRow:
    service_status: str
    meaning: str
    label: str  # the Status Code(s) column as the table prints it
    codes: range
    related: tuple[str, ...]  # Related Fields column, as printed


@dataclass(frozen=True, slots=True)
class StatusTable:
    number: str  # "N.7-51"
    title: str
    service: str  # C-FIND / C-MOVE
    role: str  # SCP / SCU
    rows: tuple[TableRow, ...]
    has_related: bool


def _rows(seed: tuple[StatusRow, ...], failed: str, cxxx: str, only_c000: bool = False):
    out = []
    for row in seed:
        codes = row.codes
        if only_c000 and len(codes) > 1:
            codes = one(codes.start)
        status = failed if row.status is StatusClass.FAILURE else row.status.value
        label = f"{codes.start:04X}" if len(codes) == 1 else cxxx
        related = tuple(
            _TAG_TEXT.get(tag, f"({tag >> 16:04X},{tag & 0xFFFF:04X})")
            for tag in sorted(row.related)
        )
        out.append(TableRow(status, row.meaning, label, codes, related))
    return tuple(out)


FIND_SCU = StatusTable(
    "N.7-48",
    "Status Codes C-FIND for Query/Retrieve FIND SOP Classes - SCU",
    FIND,
    "SCU",
    _rows(QR_FIND_SEED, "Failure", "C000-CFFF"),
    False,
)
MOVE_SCU = StatusTable(
    "N.7-49",
    "Status Codes C-MOVE for Query/Retrieve MOVE SOP Classes - SCU",
    MOVE,
    "SCU",
    _rows(QR_MOVE_SEED, "Failed", "Cxxx"),
    True,
)
FIND_SCP = StatusTable(
    "N.7-50",
    "Status Codes C-FIND for Query/Retrieve FIND SOP Classes - SCP",
    FIND,
    "SCP",
    _rows(QR_FIND_SEED, "Failure", "C000", only_c000=True),  # N.7-50 lists C000 alone
    False,
)
MOVE_SCP = StatusTable(
    "N.7-51",
    "Status Codes C-MOVE for Query/Retrieve MOVE SOP Classes - SCP",
    MOVE,
    "SCP",
    _rows(QR_MOVE_SEED, "Failed", "Cxxx"),
    True,
)
TABLES = {
    ("SCP", FIND): FIND_SCP,
    ("SCP", MOVE): MOVE_SCP,
    ("SCU", FIND): FIND_SCU,
    ("SCU", MOVE): MOVE_SCU,
}


# -- what is collected ----------------------------------------------------------------------


@dataclass(slots=True)
class Spread:
    """Count, min, max and mean of a few seconds, without keeping them."""

    n: int = 0
    low: float = 0.0
    high: float = 0.0
    total: float = 0.0

    def add(self, value: float) -> None:
        if self.n == 0 or value < self.low:
            self.low = value
        if self.n == 0 or value > self.high:
            self.high = value
        self.n += 1
        self.total += value

    def text(self) -> str:
        if self.n == 0:
            return ""
        if self.n == 1 or self.high - self.low < 0.0005:
            return f"{self.low:.3f} s"
        return f"{self.low:.3f}-{self.high:.3f} s, mean {self.total / self.n:.3f} s"


@dataclass(slots=True)
class CodeSeen:
    """One status code sent by one SCP (or received by one SCU), and what went with it."""

    code: int
    count: int = 0
    related: Counter = field(default_factory=Counter)  # tuple of fields present -> n
    conditions: Counter = field(default_factory=Counter)  # condition text -> n
    actions: Counter = field(default_factory=Counter)  # C-MOVE SCP: action on the store
    behaviours: Counter = field(default_factory=Counter)  # SCU: behaviour -> n
    delays: dict[str, Spread] = field(default_factory=dict)  # SCU: behaviour -> delay
    frames: list[int] = field(default_factory=list)

    def seen_in(self, frame: int) -> None:
        self.count += 1
        if len(self.frames) < MAX_FRAMES:
            self.frames.append(frame)

    def behaved(self, what: str, delay: float | None) -> None:
        self.behaviours[what] += 1
        if delay is not None:
            self.delays.setdefault(what, Spread()).add(max(delay, 0.0))


@dataclass(slots=True)
class Device:
    """An SCP (AE title, ip:port) or an SCU (AE title, IP) and what it did per service."""

    role: str
    ae: str
    address: str
    associations: set[int] = field(default_factory=set)
    peers: Counter = field(default_factory=Counter)  # the other side, "AE at address"
    requests: Counter = field(default_factory=Counter)  # service -> requests
    codes: dict[str, dict[int, CodeSeen]] = field(default_factory=dict)  # service -> code -> seen
    first_ts: str = ""
    last_ts: str = ""

    def code(self, service: str, code: int) -> CodeSeen:
        per = self.codes.setdefault(service, {})
        seen = per.get(code)
        if seen is None:
            seen = per[code] = CodeSeen(code)
        return seen


@dataclass(slots=True)
class Operation:
    """An open C-FIND or C-MOVE: its request and what happened since."""

    service: str
    association_id: int
    scp: tuple[str, str]
    scu: tuple[str, str]
    ts: float
    signature: tuple
    model: str
    level: str
    destination: str | None
    responses: int = 0
    pending: int = 0
    cancel_ts: float | None = None
    stores: int = 0
    store_statuses: Counter = field(default_factory=Counter)
    sub_associations: set[int] = field(default_factory=set)


@dataclass(slots=True)
class Awaiting:
    """A response the SCU received; resolved by the SCU's next move on the association."""

    seen: CodeSeen
    ts: float
    operation: Operation
    final: bool


@dataclass(slots=True)
class OpenAssociation:
    awaiting: list[Awaiting] = field(default_factory=list)
    last_final: dict[tuple, Awaiting] = field(default_factory=dict)  # signature -> final


def _seconds(iso: str | None) -> float | None:
    if not iso:
        return None
    return datetime.fromisoformat(iso).timestamp()


def _ip(endpoint: str) -> str:
    """``127.0.0.1:104`` -> ``127.0.0.1``; ``[::1]:104`` -> ``::1``."""
    if endpoint.startswith("["):
        return endpoint[1:].split("]", 1)[0]
    return endpoint.rsplit(":", 1)[0]


def _keywords(identifier: str | None) -> list[str]:
    if not identifier:
        return []
    return [part.split("=", 1)[0] for part in identifier.split("; ") if part]


def _level(identifier: str | None) -> str:
    for part in (identifier or "").split("; "):
        if part.startswith("QueryRetrieveLevel="):
            return part.split("=", 1)[1]
    return ""


def _model(name: str | None) -> str:
    """``Study Root Query/Retrieve Information Model - FIND`` -> ``Study Root``."""
    if not name:
        return ""
    return name.split(" Query/Retrieve", 1)[0]


class ObservedConformance:
    """Sink: aggregates message and association rows into the four tables, per device."""

    def __init__(self) -> None:
        self.scps: dict[tuple[str, str], Device] = {}
        self.scus: dict[tuple[str, str], Device] = {}
        self._operations: dict[tuple[int, int], Operation] = {}
        self._associations: dict[int, OpenAssociation] = {}
        self._recent: dict[tuple[str, str], OrderedDict] = {}  # SCU -> signature -> (ts, seen)
        self._store_associations: dict[int, Operation] = {}  # sub-association -> C-MOVE
        self.first_ts = ""
        self.last_ts = ""
        self.messages = 0
        self.other_sop_classes: Counter = Counter()

    # -- the sink --------------------------------------------------------------------------

    def write(self, table: str, row: dict) -> None:
        if table == "messages":
            self._message(row)
        elif table == "associations":
            self._association(row)

    # -- messages -----------------------------------------------------------------------------

    def _service(self, row: dict) -> str | None:
        command = row["command"] or ""
        if command.startswith("C-CANCEL"):
            return "cancel"
        if not command.startswith((FIND, MOVE)):
            return None
        syntax = row["abstract_syntax"] or row["affected_sop_class_uid"]
        service = FIND if command.startswith(FIND) else MOVE
        if syntax in (QR_FIND_CLASSES if service == FIND else QR_MOVE_CLASSES):
            return service
        self.other_sop_classes[row["abstract_syntax_name"] or syntax or "?"] += 1
        return None

    def _device(self, role: str, ae: str | None, address: str, row: dict) -> Device:
        registry = self.scps if role == "SCP" else self.scus
        key = (ae or "", address)
        device = registry.get(key)
        if device is None:
            device = registry[key] = Device(role, ae or "", address)
        device.associations.add(row["association_id"])
        ts = row["timestamp"] or ""
        if ts and (not device.first_ts or ts < device.first_ts):
            device.first_ts = ts
        if ts > device.last_ts:
            device.last_ts = ts
        return device

    def _message(self, row: dict) -> None:
        ts_text = row["timestamp"] or ""
        if ts_text and (not self.first_ts or ts_text < self.first_ts):
            self.first_ts = ts_text
        self.last_ts = max(self.last_ts, ts_text)
        command = row["command"] or ""
        if command == "C-STORE-RQ" or command == "C-STORE-RSP":
            self._store(row, command)
            return
        service = self._service(row)
        if service is None:
            return
        self.messages += 1
        ts = _seconds(ts_text) or 0.0
        scp_key = (row["called_ae"] or "", row["server"])
        scu_key = (row["calling_ae"] or "", _ip(row["client"]))
        if row["direction"] == "client->server":
            self._client_message(row, service, ts, scp_key, scu_key)
            return
        if service == "cancel" or not command.endswith("-RSP") or not row["status"]:
            return
        self._response(row, service, ts, scp_key, scu_key)

    def _client_message(self, row, service, ts, scp_key, scu_key) -> None:
        assoc_id = row["association_id"]
        state = self._associations.setdefault(assoc_id, OpenAssociation())
        if service == "cancel":
            op = self._operations.get((assoc_id, row["request_first_frame"] or -1))
            if op is not None and op.cancel_ts is None:
                op.cancel_ts = ts
            self._resolve(state, ts, "sent C-CANCEL-RQ")
            return
        if not row["command"].endswith("-RQ"):
            return
        scu = self._device("SCU", *scu_key, row)
        scp = self._device("SCP", *scp_key, row)
        scu.requests[service] += 1
        scp.requests[service] += 1
        scu.peers[f"{scp_key[0]} at {scp_key[1]}"] += 1
        scp.peers[f"{scu_key[0]} at {scu_key[1]}"] += 1
        signature = (
            service,
            row["abstract_syntax"],
            row["identifier"],
            row["move_destination"],
        )
        op = Operation(
            service,
            assoc_id,
            scp_key,
            scu_key,
            ts,
            signature,
            _model(row["abstract_syntax_name"]),
            _level(row["identifier"]),
            row["move_destination"],
        )
        self._operations[(assoc_id, row["first_frame"])] = op
        # What the SCU does after a response: this request is its next move.
        for waiting in state.awaiting:
            if waiting.final and waiting.operation.signature == signature:
                waiting.seen.behaved("same query retried on the same association", ts - waiting.ts)
            else:
                what = (
                    "sent the next request"
                    if waiting.final
                    else ("sent another request while responses were pending")
                )
                waiting.seen.behaved(f"{what} ({row['command']})", ts - waiting.ts)
        state.awaiting.clear()
        recent = self._recent.get(scu_key)
        if recent is not None:
            earlier = recent.pop(signature, None)
            if earlier is not None and earlier[2] != assoc_id:
                earlier_ts, seen, _assoc = earlier
                seen.behaved("same query retried on a new association", ts - earlier_ts)

    def _response(self, row, service, ts, scp_key, scu_key) -> None:
        assoc_id = row["association_id"]
        code = int(row["status"], 16)
        op = self._operations.get((assoc_id, row["request_first_frame"] or -1))
        if op is None:  # its request was not seen (capture began mid-operation)
            op = Operation(
                service,
                assoc_id,
                scp_key,
                scu_key,
                ts,
                (service, None, None, None),
                _model(row["abstract_syntax_name"]),
                "",
                None,
            )
        final = row["status_class"] != "Pending"
        scp = self._device("SCP", *scp_key, row)
        seen = scp.code(service, code)
        seen.seen_in(row["first_frame"])
        present = tuple(tag for column, tag in RELATED_COLUMNS if row[column] is not None)
        if row["data_set_present"]:
            keywords = _keywords(row["identifier"])
            if service == MOVE and keywords:
                present += (f"data set ({', '.join(keywords)})",)
            else:
                present += ("Identifier",)
        seen.related[present] += 1
        seen.conditions[self._condition(row, op, final)] += 1
        if service == MOVE and final:
            seen.actions[self._store_action(row, op)] += 1
        # The SCU's side of it.
        scu = self._device("SCU", *scu_key, row)
        received = scu.code(service, code)
        received.seen_in(row["first_frame"])
        received.related[present] += 1
        state = self._associations.setdefault(assoc_id, OpenAssociation())
        still = []
        for waiting in state.awaiting:
            if not waiting.final and waiting.operation is op:
                waiting.seen.behaved("waited for the next response", ts - waiting.ts)
            else:
                still.append(waiting)
        still.append(Awaiting(received, ts, op, final))
        state.awaiting = still
        op.responses += 1
        if not final:
            op.pending += 1
            return
        self._operations.pop((assoc_id, row["request_first_frame"] or -1), None)
        recent = self._recent.setdefault(scu_key, OrderedDict())
        recent.pop(op.signature, None)
        recent[op.signature] = (ts, received, assoc_id)
        while len(recent) > MAX_RECENT:
            recent.popitem(last=False)

    def _condition(self, row: dict, op: Operation, final: bool) -> str:
        parts = []
        if op.model:
            parts.append(op.model + (f", {op.level}" if op.level else ""))
        if op.service == MOVE and op.destination is not None:
            parts.append(f"Move Destination was {op.destination}")
        if row["status_class"] == "Pending":
            pass
        elif op.cancel_ts is not None:
            parts.append("after a C-CANCEL-RQ")
        elif row["status_class"] == "Cancel":
            parts.append("without a C-CANCEL-RQ seen")
        if final and op.service == FIND and row["status_class"] == "Success":
            parts.append("no match" if op.pending == 0 else "after matches")
        if row["error_comment"] is not None:
            parts.append(f'Error Comment "{row["error_comment"]}"')
        if row["offending_element"] is not None:
            parts.append(f"Offending Element {row['offending_element']}")
        if op.signature[1] is None:
            parts.append("request not in the capture")
        return "; ".join(parts) or "-"

    def _store_action(self, row: dict, op: Operation) -> str:
        counts = ", ".join(
            f"{name} {row[col]}"
            for name, col in (
                ("completed", "completed"),
                ("failed", "failed"),
                ("warning", "warning"),
            )
            if row[col] is not None
        )
        parts = [counts or "no sub-operation counts"]
        if op.stores:
            statuses = ", ".join(f"{k} {n}" for k, n in sorted(op.store_statuses.items()))
            parts.append(
                f"{op.stores} C-STORE-RQ sent to {op.destination or '?'}"
                + (f" ({statuses})" if statuses else "")
            )
        elif op.sub_associations:
            parts.append(f"association to {op.destination or '?'} opened, no C-STORE sent")
        else:
            parts.append("no C-STORE seen")
        if "FailedSOPInstanceUIDList" in _keywords(row["identifier"]):
            parts.append("Failed SOP Instance UID List sent")
        return "; ".join(parts)

    def _store(self, row: dict, command: str) -> None:
        """C-STORE sub-operations: attributed to an open C-MOVE by AE titles and time."""
        assoc_id = row["association_id"]
        if command == "C-STORE-RSP":
            op = self._store_associations.get(assoc_id)
            if op is not None and row["status_class"]:
                op.store_statuses[row["status_class"]] += 1
            return
        op = self._store_associations.get(assoc_id) or self._move_for(
            row["calling_ae"], row["called_ae"], _seconds(row["timestamp"]) or 0.0
        )
        if op is not None:
            self._store_associations[assoc_id] = op
            op.stores += 1

    def _move_for(self, calling: str | None, called: str | None, ts: float) -> Operation | None:
        for op in self._operations.values():
            if (
                op.service == MOVE
                and op.destination == called
                and op.scp[0] == calling
                and op.ts <= ts
            ):
                return op
        return None

    # -- associations ---------------------------------------------------------------------

    def _association(self, row: dict) -> None:
        assoc_id = row["association_id"]
        self._store_associations.pop(assoc_id, None)
        op = self._move_for(row["calling_ae"], row["called_ae"], _seconds(row["start_time"]) or 0.0)
        if op is not None:
            op.sub_associations.add(assoc_id)
        state = self._associations.pop(assoc_id, None)
        for key in [k for k in self._operations if k[0] == assoc_id]:
            del self._operations[key]
        if state is None or not state.awaiting:
            return
        reason = row["end_reason"] or "ended"
        if reason == "released":
            what = "released the association"
        elif reason.startswith("aborted by requestor"):
            what = "aborted the association (A-ABORT)"
        elif reason.startswith("aborted by acceptor"):
            what = "association aborted by the SCP"
        else:
            what = reason
        end = _seconds(row["end_time"])
        for waiting in state.awaiting:
            label = what if waiting.final else f"{what} while responses were pending"
            waiting.seen.behaved(label, None if end is None else end - waiting.ts)

    def _resolve(self, state: OpenAssociation, ts: float, what: str) -> None:
        for waiting in state.awaiting:
            waiting.seen.behaved(what, ts - waiting.ts)
        state.awaiting.clear()

    # -- the statement --------------------------------------------------------------------

    def statement(self) -> list[Section]:
        """Every device with Q/R traffic and its filled tables, SCPs first."""
        sections = []
        for role, registry in (("SCP", self.scps), ("SCU", self.scus)):
            for key in sorted(registry):
                device = registry[key]
                tables = [
                    fill(TABLES[(role, service)], device, device.codes.get(service, {}))
                    for service in (FIND, MOVE)
                    if device.requests[service] or device.codes.get(service)
                ]
                if tables:
                    sections.append(Section(device, tables))
        return sections

    def markdown(self, inputs: list[str] | None = None) -> str:
        return render_markdown(self, inputs or [])

    def html(self, inputs: list[str] | None = None) -> str:
        return render_html(self, inputs or [])


# -- filled tables (plain text; the renderers escape) ---------------------------------------


@dataclass(slots=True)
class FilledRow:
    service_status: str
    meaning: str
    label: str
    related: tuple[str, ...]
    seen: str  # "0000 ×3" or "not seen"
    count: int
    observed_related: list[str]
    conditions: list[str]  # SCP: conditions; SCU: behaviours
    actions: list[str]
    frames: list[int]


@dataclass(slots=True)
class FilledTable:
    table: StatusTable
    rows: list[FilledRow]


@dataclass(slots=True)
class Section:
    device: Device
    tables: list[FilledTable]


def _listing(counter: Counter, suffix: dict[str, str] | None = None) -> list[str]:
    items = counter.most_common()
    out = []
    for text, n in items[:MAX_LISTED]:
        extra = (suffix or {}).get(text, "")
        out.append(f"{text} ×{n}" + (f" (after {extra})" if extra else ""))
    if len(items) > MAX_LISTED:
        out.append(f"… {len(items) - MAX_LISTED} more")
    return out


def _related_listing(counter: Counter, listed: tuple[str, ...], has_related: bool) -> list[str]:
    out = []
    for present, n in counter.most_common(MAX_LISTED):
        fields = [f for f in present if f.startswith("(")]
        rest = [f for f in present if not f.startswith("(")]
        notes = []
        if has_related:
            missing = [f for f in listed if f not in fields]
            extra = [f for f in fields if f not in listed]
            if missing:
                notes.append("without " + " ".join(missing))
            if extra:
                notes.append("plus " + " ".join(extra))
        text = " ".join(fields) or ("none" if notes or not rest else "")
        if notes:
            text += f" ({'; '.join(notes)})"
        text = "; ".join(p for p in (text, *rest) if p)
        out.append(f"{text} ×{n}")
    return out


def fill(table: StatusTable, device: Device, codes: dict[int, CodeSeen]) -> FilledTable:
    rows = []
    placed: set[int] = set()
    scu = table.role == "SCU"
    for spec in table.rows:
        members = [codes[c] for c in sorted(codes) if c in spec.codes]
        placed.update(s.code for s in members)
        rows.append(
            _filled(
                spec.service_status,
                spec.meaning,
                spec.label,
                spec.related,
                members,
                table.has_related,
                scu,
            )
        )
    others = [codes[c] for c in sorted(codes) if c not in placed]
    if others or scu:
        for seen in others:
            rows.append(
                _filled(
                    "-",
                    "Other Status Codes",
                    f"{seen.code:04X}",
                    (),
                    [seen],
                    table.has_related,
                    scu,
                )
            )
        if not others:
            rows.append(
                _filled("-", "Other Status Codes", "anything else", (), [], table.has_related, scu)
            )
    return FilledTable(table, rows)


def _filled(status, meaning, label, related, members, has_related, scu) -> FilledRow:
    count = sum(s.count for s in members)
    seen = ", ".join(f"{s.code:04X} ×{s.count}" for s in members) or "not seen"
    related_seen: Counter = Counter()
    conditions: Counter = Counter()
    actions: Counter = Counter()
    delays: dict[str, str] = {}
    frames: list[int] = []
    for s in members:
        related_seen.update(s.related)
        conditions.update(s.behaviours if scu else s.conditions)
        actions.update(s.actions)
        frames.extend(s.frames)
        for what, spread in s.delays.items():
            delays[what] = spread.text()
    return FilledRow(
        status,
        meaning,
        label,
        related,
        seen,
        count,
        _related_listing(related_seen, related, has_related),
        _listing(conditions, delays if scu else None),
        _listing(actions),
        sorted(frames)[:MAX_FRAMES],
    )


# -- Markdown and HTML -----------------------------------------------------------------------

INTRO = (
    "Filled from what dimsesniff saw on the wire, in the layout of PS3.2 Annex N.7.3.2.7 "
    "(Tables N.7-48 to N.7-51), to hold against each vendor's published conformance "
    "statement. Only what was seen is reported: a status code that never occurred says "
    "nothing about whether a device can send or handle it. SCPs are identified by called "
    "AE title and IP:port, SCUs by calling AE title and IP address. Frames are capture "
    "frame numbers (Wireshark: frame.number == N)."
)


def md_escape(value: object) -> str:
    """Wire text for a Markdown table cell: no HTML, no table or emphasis syntax, and no
    control characters (the file is also read with ``cat`` on a terminal)."""
    text = html.escape(printable(str(value).replace("\r", " ").replace("\n", " ")), quote=False)
    for ch in "\\`*_[]|#":
        text = text.replace(ch, "\\" + ch)
    return text


def _device_title(device: Device) -> str:
    return f"{device.role} {device.ae or '(no AE title)'} at {device.address}"


def _summary(device: Device) -> str:
    requests = ", ".join(
        f"{device.requests[s]} {s} requests" for s in (FIND, MOVE) if device.requests[s]
    )
    peers = ", ".join(f"{p} ({n})" for p, n in device.peers.most_common(MAX_LISTED))
    other = "SCUs" if device.role == "SCP" else "SCPs"
    return (
        f"{len(device.associations)} associations; {requests or 'no requests seen'}; "
        f"{other}: {peers or '-'}; seen {device.first_ts} to {device.last_ts}."
    )


def _headers(table: StatusTable) -> list[str]:
    cols = ["Service Status", "Further Meaning", "Status Code" + ("s" if table.has_related else "")]
    if table.has_related:
        cols.append("Related Fields" + (" sent in the response" if table.role == "SCP" else ""))
    cols += ["Seen", "Related fields observed"]
    if table.role == "SCP":
        cols.append("Condition (observed)")
        if table.service == MOVE:
            cols.append("Action on the Store (observed)")
    else:
        cols.append("Behavior (observed)")
    cols.append("Frames")
    return cols


def _cells(table: StatusTable, row: FilledRow) -> list[list[str]]:
    """Each cell as a list of lines (plain text)."""
    cells = [[row.service_status], [row.meaning], [row.label]]
    if table.has_related:
        cells.append(list(row.related) or ["-"])
    cells += [[row.seen], row.observed_related or ["-"], row.conditions or ["-"]]
    if table.role == "SCP" and table.service == MOVE:
        cells.append(row.actions or ["-"])
    cells.append([", ".join(str(f) for f in row.frames)] if row.frames else ["-"])
    return cells


def _scope_lines(conf: ObservedConformance, inputs: list[str]) -> list[str]:
    lines = []
    if inputs:
        from .report.html import describe_inputs

        lines.append("Capture: " + describe_inputs(inputs))
    if conf.first_ts:
        lines.append(f"Messages from {conf.first_ts} to {conf.last_ts}")
    lines.append(f"Query/Retrieve FIND/MOVE messages: {conf.messages}")
    if conf.other_sop_classes:
        lines.append(
            "C-FIND/C-MOVE of other SOP Classes (not in these tables): "
            + ", ".join(f"{k} ({n})" for k, n in conf.other_sop_classes.most_common())
        )
    return lines


def render_markdown(conf: ObservedConformance, inputs: list[str]) -> str:
    out = ["# Observed conformance statement", "", INTRO, ""]
    out += [f"- {md_escape(line)}" for line in _scope_lines(conf, inputs)]
    out.append("")
    sections = conf.statement()
    if not sections:
        out.append("No Query/Retrieve FIND or MOVE traffic was seen.")
    for section in sections:
        out += [f"## {md_escape(_device_title(section.device))}", ""]
        out += [md_escape(_summary(section.device)), ""]
        for filled in section.tables:
            t = filled.table
            out += [f"### Table {t.number}. {t.title} (observed)", ""]
            headers = _headers(t)
            out.append("| " + " | ".join(headers) + " |")
            out.append("|" + "---|" * len(headers))
            for row in filled.rows:
                cells = ["<br>".join(md_escape(x) for x in cell) for cell in _cells(t, row)]
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
    return "\n".join(out) + "\n"


def render_html(conf: ObservedConformance, inputs: list[str]) -> str:
    from .report.html import esc, page

    body = ["<h1>Observed conformance statement</h1>", f"<p>{esc(INTRO)}</p>", "<ul>"]
    body += [f"<li>{esc(line)}</li>" for line in _scope_lines(conf, inputs)]
    body.append("</ul>")
    sections = conf.statement()
    if not sections:
        body.append("<p>No Query/Retrieve FIND or MOVE traffic was seen.</p>")
    if sections:
        body.append("<nav><ul>")
        for i, section in enumerate(sections):
            body.append(f'<li><a href="#dev{i}">{esc(_device_title(section.device))}</a></li>')
        body.append("</ul></nav>")
    for i, section in enumerate(sections):
        device = section.device
        body.append(
            f'<section id="dev{i}" data-role="{esc(device.role)}" data-ae="{esc(device.ae)}" '
            f'data-address="{esc(device.address)}">'
        )
        body.append(f"<h2>{esc(_device_title(device))}</h2><p>{esc(_summary(device))}</p>")
        for filled in section.tables:
            t = filled.table
            body.append(f"<h3>Table {esc(t.number)}. {esc(t.title)} (observed)</h3>")
            body.append(f'<table class="conf" data-table="{esc(t.number)}"><thead><tr>')
            body += [f"<th>{esc(h)}</th>" for h in _headers(t)]
            body.append("</tr></thead><tbody>")
            for row in filled.rows:
                klass = "seen" if row.count else "unseen"
                body.append(
                    f'<tr class="{klass}" data-code="{esc(row.label)}" data-count="{row.count}">'
                )
                for cell in _cells(t, row):
                    if len(cell) > 1:
                        items = "".join(f"<li>{esc(x)}</li>" for x in cell)
                        body.append(f"<td><ul>{items}</ul></td>")
                    else:
                        body.append(f"<td>{esc(cell[0])}</td>")
                body.append("</tr>")
            body.append("</tbody></table>")
        body.append("</section>")
    return page("Observed conformance statement", "\n".join(body))


def write_statement(conf: ObservedConformance, output: Path, inputs: list[str]) -> list[Path]:
    """``conformance.md`` and ``conformance.html`` in ``output``."""
    md = output / "conformance.md"
    md.write_text(render_markdown(conf, inputs), encoding="utf-8")
    page_path = output / "conformance.html"
    page_path.write_text(render_html(conf, inputs), encoding="utf-8")
    return [md, page_path]
