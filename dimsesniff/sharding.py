"""Split one analysis into shards by TCP connection, and merge them back into the serial result.

Each shard reads every capture file in order (frame numbers stay global) but
follows only its own connections (``Options.shard``).  Two things make a
shard's output differ from its part of the serial run, and the merge puts
them right:

* Association IDs are handed out in the order connections turn out to be
  DICOM.  A shard spools an ``id`` record at that moment, tagged with the
  emission key below; the merge renumbers in key order, which is the serial
  order, and rewrites ``association_id`` in every row.
* The cross-association rules (``rules/cross.py``, rules.md §10) tie C-STORE
  sub-operations on one association to a C-MOVE on another, which usually
  lives in another shard.  Shards run without them and spool instead a compact
  record of every message those rules or their tracker state depend on
  (command set, frames, association AE titles; no data set).  The merge
  replays these records in serial order through an ``OperationTracker`` and
  a ``Checker`` restricted to the cross rules.

Every spooled record carries an *emission key*: the frame being fed when it
was produced (``Pipeline.counters.frames``), or, at the end of the capture,
the first frame of the connection being closed (``FlowTable.close_all`` ends
connections in the order they were opened).  A frame belongs to one TCP
connection, hence to one shard, so merging the shards' spools by key (each
spool is already in key order) reproduces the serial order of every row:
the tables, ``report.html`` and the conformance statement come out as the
serial run writes them.

Spools are pickle batches on disk, read back as a stream: the merge holds one
batch per shard, not a shard's rows.

Known limits (where shards cannot see what the serial run sees, all far
beyond ordinary traffic): more than ``Options.max_flows`` connections open at
once (the least recently used one is evicted per shard, not globally); the
bounded per-checker memories of early responses (256) and of unmatched
responses per association (64), which shards fill with fewer entries.
"""

from __future__ import annotations

import heapq
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from operator import itemgetter
from pathlib import Path

from dissectors.dimse import Command, CommandSet
from dissectors.dimse_assembly import DimseMessage

from .analysis import Analysis, RowWriter, Tally
from .associations import Association
from .checks import Checker
from .observations import ObservedMessage
from .pipeline import Counters, Options, Pipeline
from .redact import Redactor
from .rules import RULES
from .rules import cross as cross_rules
from .rules.base import STANDARD

CROSS_RULE_IDS = frozenset(rule.id for rule in cross_rules.RULES)
"""Rules whose outcome depends on another association: run by the merge, not the shards."""

CROSS_COMMANDS = frozenset(
    (Command.C_MOVE_RQ, Command.C_MOVE_RSP, Command.C_STORE_RQ, Command.C_STORE_RSP)
)
"""Messages that make or feed the C-MOVE <-> C-STORE links: always spooled."""

_OPERATIONS = frozenset((Command.C_MOVE_RQ, Command.C_STORE_RQ))
FAILED_LIST = cross_rules.FAILED_SOP_INSTANCE_UID_LIST
BATCH = 2048  # records per pickle batch: few enough to bound memory, many for speed

Key = tuple[int, int, int]
"""(frame being fed, 0 while feeding / 1 at capture end, first frame of the connection closing)."""


class ShardingError(Exception):
    """A sharded run could not be set up or run (one line for the user)."""


@dataclass(slots=True)
class ShardResult:
    """What a shard returns besides its spool: counters, summary tally and reader warnings."""

    index: int
    count: int
    counters: Counters
    tally: Tally
    warnings: list[str]
    spool: Path | None
    payload: bytes | None = None  # the spool itself, when the shard ran on another machine


# -- spooling ---------------------------------------------------------------------------------


class Spool:
    """Append-only record file of one shard: pickle batches of ``(key, kind, data)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = path.open("wb")
        self._batch: list[tuple] = []
        self.counters: Counters | None = None
        self.finishing = False
        self.tiebreak = 0

    def key(self) -> Key:
        frame = self.counters.frames if self.counters is not None else 0
        return (frame, 1, self.tiebreak) if self.finishing else (frame, 0, 0)

    def add(self, kind: str, data: object) -> None:
        batch = self._batch
        batch.append((self.key(), kind, data))
        if len(batch) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            pickle.dump(self._batch, self._fh, protocol=pickle.HIGHEST_PROTOCOL)
            self._batch = []

    def close(self) -> None:
        self._flush()
        self._fh.close()


def read_spool(path: Path) -> Iterator[tuple]:
    """The records of a spool, in the order written (one batch in memory at a time)."""
    with path.open("rb") as fh:
        while True:
            try:
                batch = pickle.load(fh)
            except EOFError:
                return
            yield from batch


# -- one shard --------------------------------------------------------------------------------


class ShardPipeline(Pipeline):
    """A ``Pipeline`` that tells its spool when association IDs are given and what is closing."""

    def __init__(self, sink: ShardSink, options: Options, spool: Spool) -> None:
        super().__init__(sink, options)
        self._spool = spool
        spool.counters = self.counters

    def _next_association_id(self) -> int:
        local = super()._next_association_id()
        self._spool.add("i", local)
        return local

    def finish(self) -> None:
        self._spool.finishing = True
        super().finish()

    def _dispatch(self, events: list) -> None:
        if not self._spool.finishing:
            super()._dispatch(events)
            return
        # Capture end: close_all ends connections one after the other, in the order they
        # were opened; the first frame of each orders them across shards.
        for ev in events:
            conn = self.connections.get(ev.conn)
            self._spool.tiebreak = conn.first_frame if conn is not None else 0
            super()._dispatch([ev])


class ShardSink(Analysis):
    """The ``Analysis`` of a shard: rows go to the spool; cross rules are left to the merge."""

    def __init__(
        self,
        spool: Spool,
        redactor: Redactor | None,
        keep_finding: Callable[[str], bool],
        profile: str,
    ) -> None:
        super().__init__(self._spool_row, redactor, keep_finding, profile)
        self.checker = Checker(
            self.finding,
            profile=profile,
            rules=[r for r in RULES.values() if r.id not in CROSS_RULE_IDS],
        )
        self._spool = spool
        self._pending: ObservedMessage | None = None
        self._linked: set[int] = set()  # associations that carried C-MOVE / C-STORE messages

    def message(self, observed: ObservedMessage) -> None:
        if self._cross_relevant(observed):
            self._pending = observed
        super().message(observed)

    def _cross_relevant(self, obs: ObservedMessage) -> bool:
        """Whether the cross rules, or the tracker state they read, depend on this message.

        C-MOVE and C-STORE messages always; on an association that carried them,
        any other message that answers, reuses the ID of, or might be adopted by
        (an unmatched response) a C-MOVE or C-STORE operation.
        """
        assoc_id = obs.association.id
        if obs.message.command.command_field in CROSS_COMMANDS:
            self._linked.add(assoc_id)
            return True
        if assoc_id not in self._linked:
            return False
        found = self.checker.tracker.lookup(obs)
        for op in (found.op, found.reused_id):
            if op is not None and op.command_field in _OPERATIONS:
                return True
        return found.op is None and obs.is_response

    def association(self, association: Association) -> None:
        super().association(association)
        self._linked.discard(association.id)

    def _spool_row(self, table: str, row: dict) -> None:
        if table == "messages" and self._pending is not None:
            # The cross rules run last on a message (rules/__init__.py), just before its row.
            self._spool.add("x", cross_record(self._pending))
            self._pending = None
        self._spool.add("r", (table, row))


def cross_record(obs: ObservedMessage) -> tuple:
    """What the cross rules read of a message, picklable and without its data set."""
    assoc, msg = obs.association, obs.message
    failed: tuple[str, ...] | None = None
    if obs.identifier is not None:
        value = obs.identifier.get(FAILED_LIST)  # type: ignore[attr-defined]
        values = [] if not value else [value] if isinstance(value, str) else list(value)
        failed = tuple(str(v) for v in values)
    return (
        assoc.id,
        (assoc.requestor, assoc.acceptor, assoc.calling_ae, assoc.called_ae),
        obs.from_requestor,
        msg.context_id,
        dict(msg.command.raw),
        (msg.first_frame, msg.last_frame, msg.ts_first, msg.ts, msg.data_pdvs),
        failed,
        obs.identifier_error,
    )


def run_shard(
    sources: Sequence[str | Path],
    index: int,
    count: int,
    spool_path: Path,
    *,
    options: Options | None = None,
    redactor: Redactor | None = None,
    keep_finding: Callable[[str], bool] | None = None,
    profile: str = STANDARD,
) -> ShardResult:
    """Analyse shard ``index`` of ``count`` of ``sources`` (one capture); records go to
    ``spool_path`` (see ``Spool``).

    A plain function of picklable arguments: it runs the same in this process
    (tests) or on a Dask worker.  The redactor must be the same object (key) in
    every shard, or patient-data tokens would differ between shards.
    """
    spool = Spool(spool_path)
    try:
        sink = ShardSink(spool, redactor, keep_finding or _keep_all, profile)
        pipeline = ShardPipeline(sink, replace(options or Options(), shard=(index, count)), spool)
        warnings = pipeline.feed_captures(sources)
        pipeline.finish()
    finally:
        spool.close()
    return ShardResult(index, count, pipeline.counters, sink.tally, warnings, spool_path)


def _keep_all(_rule: str) -> bool:
    return True


# -- the merge --------------------------------------------------------------------------------


def merge_counters(results: Sequence[ShardResult]) -> Counters:
    """Frames, bytes and the time span are those of the whole capture in every shard; the
    rest counts each shard's own connections and adds up."""
    first = results[0].counters
    merged = Counters(
        frames=first.frames, bytes=first.bytes, first_ts=first.first_ts, last_ts=first.last_ts
    )
    for result in results:
        merged.tcp_segments += result.counters.tcp_segments
        merged.connections += result.counters.connections
        merged.dicom_connections += result.counters.dicom_connections
    return merged


def add_tally(into: Tally, other: Tally) -> None:
    into.messages.update(other.messages)
    into.statuses.update(other.statuses)
    into.findings.update(other.findings)
    into.severities.update(other.severities)
    into.findings_by_peer.update(other.findings_by_peer)
    into.associations += other.associations
    into.mid_capture += other.mid_capture


class CrossReplay:
    """Runs the cross rules over the spooled messages of every shard, in serial order."""

    def __init__(self, analysis: Analysis, profile: str) -> None:
        self.checker = Checker(
            analysis.finding,
            profile=profile,
            rules=[r for r in RULES.values() if r.id in CROSS_RULE_IDS],
        )
        self._associations: dict[tuple[int, int], Association] = {}

    def message(self, shard: int, record: tuple, association_id: int) -> None:
        local, (requestor, acceptor, calling, called), from_requestor, context_id = record[:4]
        raw, (first, last, ts_first, ts, data_pdvs), failed, identifier_error = record[4:]
        assoc = self._associations.get((shard, local))
        if assoc is None:
            assoc = self._associations[(shard, local)] = Association(
                association_id, 0, requestor, acceptor, calling_ae=calling, called_ae=called
            )
        message = DimseMessage(
            context_id, CommandSet(raw=raw), first, last, ts_first, ts, data_pdvs=data_pdvs
        )
        obs = ObservedMessage(assoc, message, from_requestor, 0)
        obs.identifier = None if failed is None else {FAILED_LIST: list(failed)} if failed else {}
        obs.identifier_error = identifier_error
        self.checker.message(obs)

    def association_end(self, shard: int, local: int, row: dict) -> None:
        assoc = self._associations.pop((shard, local), None)
        if assoc is not None:
            self.checker.association_event(assoc, "end", None, row["end_frame"] or 0, 0.0)


def _tagged(shard: int, spool: Path) -> Iterator[tuple]:
    for key, kind, data in read_spool(spool):
        yield key, shard, kind, data


def merge(
    results: Sequence[ShardResult],
    write: RowWriter,
    *,
    redactor: Redactor | None = None,
    keep_finding: Callable[[str], bool] | None = None,
    profile: str = STANDARD,
) -> Analysis:
    """Stream the shards' spools to ``write`` in serial order, with serial association IDs
    and the cross rules' findings; returns an ``Analysis`` whose tally is the whole run's."""
    analysis = Analysis(write, redactor, keep_finding or _keep_all, profile)
    replay = CrossReplay(analysis, profile)
    ids: dict[tuple[int, int], int] = {}
    next_id = 0
    streams = [_tagged(shard, r.spool) for shard, r in enumerate(results)]  # type: ignore[arg-type]
    for _key, shard, kind, data in heapq.merge(*streams, key=itemgetter(0)):
        if kind == "r":
            table, row = data
            local = row["association_id"]
            if local is not None:
                row["association_id"] = ids[(shard, local)]
                if table == "associations":
                    replay.association_end(shard, local, row)
                    del ids[(shard, local)]
            write(table, row)
        elif kind == "i":
            next_id += 1
            ids[(shard, data)] = next_id
        else:
            replay.message(shard, data, ids[(shard, data[0])])
    for result in results:
        add_tally(analysis.tally, result.tally)
    return analysis


# -- the whole run ----------------------------------------------------------------------------


@dataclass(slots=True)
class ShardTask:
    """The arguments of ``run_shard`` for one shard (what a runner sends to a worker)."""

    sources: list[str]
    index: int
    count: int
    spool: Path
    options: Options
    redactor: Redactor
    keep_finding: Callable[[str], bool]
    profile: str

    def __call__(self) -> ShardResult:
        return run_shard(
            self.sources,
            self.index,
            self.count,
            self.spool,
            options=self.options,
            redactor=self.redactor,
            keep_finding=self.keep_finding,
            profile=self.profile,
        )


Runner = Callable[[list[ShardTask]], list[ShardResult]]
"""Runs shard tasks (in this process, on a local Dask cluster, on a remote one)."""


def run_in_process(tasks: list[ShardTask]) -> list[ShardResult]:
    """One shard after the other, here: for tests and debugging."""
    return [task() for task in tasks]


def run_sharded(
    sources: Sequence[str | Path],
    write: RowWriter,
    *,
    shards: int,
    spool_dir: Path,
    runner: Runner = run_in_process,
    options: Options | None = None,
    redactor: Redactor | None = None,
    keep_finding: Callable[[str], bool] | None = None,
    profile: str = STANDARD,
) -> tuple[Analysis, Counters, list[str]]:
    """Analyse ``sources`` (files, one capture) as ``shards`` shards run by ``runner``, and
    merge: ``write`` receives the rows of the serial run, in its order.

    Spools go to ``spool_dir`` (hidden files, removed afterwards).  The redactor is
    created here when not given, so that every shard tokenises with the same key.
    """
    if shards < 1:
        raise ShardingError(f"cannot split into {shards} shards")
    names = [str(s) for s in sources]
    if "-" in names:
        raise ShardingError("sharded analysis needs capture files, not standard input")
    redactor = redactor or Redactor()
    tag = f"{os.getpid()}-{id(write):x}"
    tasks = [
        ShardTask(
            names,
            index,
            shards,
            spool_dir / f".dimsesniff-shard-{tag}-{index}-of-{shards}.spool",
            options or Options(),
            redactor,
            keep_finding or _keep_all,
            profile,
        )
        for index in range(shards)
    ]
    try:
        results = runner(tasks)
        for result, task in zip(results, tasks, strict=True):
            if result.payload is not None:  # run elsewhere: the spool came back as bytes
                task.spool.write_bytes(result.payload)
                result.payload = None
            result.spool = task.spool
        analysis = merge(
            results, write, redactor=redactor, keep_finding=keep_finding, profile=profile
        )
        warnings = results[0].warnings
        return analysis, merge_counters(results), warnings
    finally:
        for task in tasks:
            task.spool.unlink(missing_ok=True)
