"""Hostile input: mutated captures never crash, hang or balloon the pipeline.

A bounded, deterministic run of ``fuzz/`` (fixed seeds, a few thousand inputs) checks
the contract of ``fuzz.run.check`` on each: no exception out of ``api.run``, time
within ``base + per_byte * size``, allocation peak within ``mem_base + 8 * size`` (on
every tenth input, traced), every row serialisable to CSV and JSON, every finding a
registered rule with frame numbers.  Then the saved regression inputs, and targeted
tests for each bug the fuzzer found and for the caps (each a finding, not a crash).

``DIMSESNIFF_FUZZ_SCALE=4 pytest tests/test_fuzz.py`` runs four times as many inputs.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import resource
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from dimsesniff.api import TABLE_COLUMNS, run
from dimsesniff.identifiers import (
    MAX_DEPTH,
    MAX_ELEMENTS,
    IdentifierError,
    IdentifierTooLarge,
    check_shape,
    decode_identifier,
)
from dimsesniff.operations import RECENT_RESPONSES, Operation
from dimsesniff.pipeline import Options
from dissectors import dimse
from fuzz.mutators import (
    SYNTAXES,
    deep_sequence,
    generate,
    identifier_elements,
    mutate_bytes,
    mutate_dataset,
    pcap_bytes,
)
from fuzz.run import budget, check, load_case, save, warm_up
from tests import build
from tests.conversation import Conversation, analyse

CASES = Path(__file__).parent / "fuzz_cases"
SCALE = float(os.environ.get("DIMSESNIFF_FUZZ_SCALE", "1"))
PER_RUN = 350  # inputs per (strategy, seed): 2,100 in all, about 90 s on one core
RUNS = [("sample", 1), ("sample", 2), ("built", 1), ("built", 2), ("built", 3), ("file", 1)]


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    warm_up()  # pydicom's import is not the first input's time


def frames_of(conv: Conversation) -> bytes:
    return pcap_bytes([(ts, frame) for ts, _lt, frame in conv.frames])


# ---------------------------------------------------------------- the bounded run


@pytest.mark.parametrize(("strategy", "seed"), RUNS)
def test_fuzz(strategy: str, seed: int, tmp_path: Path) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    failures = []
    for k in range(int(PER_RUN * SCALE)):
        inp = generate(random.Random(f"{strategy}:{seed}:{k}"), strategy)
        traced = k % 10 == 0
        if traced:
            tracemalloc.start()
        try:
            outcome = check(inp, trace_memory=traced, hard_timeout=60)
        finally:
            if traced:
                tracemalloc.stop()
        for failure in outcome.failures:
            where = save(tmp_path, inp, failure)
            failures.append(f"{strategy}:{seed}:{k} {inp.name} -> {where}\n{failure.detail}")
    assert not failures, "\n\n".join(failures[:5])
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert growth < 512 * 1024, f"peak RSS grew by {growth / 1024:.0f} MiB"


@pytest.mark.parametrize("path", sorted(CASES.glob("*.pcap")), ids=lambda p: p.name)
def test_saved_case(path: Path) -> None:
    tracemalloc.start()
    try:
        outcome = check(load_case(path), trace_memory=True, hard_timeout=60)
    finally:
        tracemalloc.stop()
    assert not outcome.failures, "\n".join(f.detail for f in outcome.failures)


def test_inputs_are_the_same_in_every_process() -> None:
    """A failing key (``built:2:137``) must give the same bytes on another machine."""
    code = (
        "import hashlib, random; from fuzz.mutators import generate; print(*("
        "hashlib.sha1(generate(random.Random(f'{s}:7:{k}'), s).pcap).hexdigest()"
        " for s in ('sample', 'built', 'file') for k in range(3)))"
    )
    root = Path(__file__).parent.parent
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1


# ------------------------------------------- bugs found (each now a regression test)


def test_identifier_bombs_are_refused_quickly() -> None:
    """Deflate bombs, 100k empty elements, 100k items, deep nesting: refused, not decoded."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    bombs = {
        "deflate": (deflate.compress(bytes(32 << 20)) + deflate.flush(), SYNTAXES[3]),
        "elements": (
            b"".join(struct.pack("<HHI", 0x0011, i, 0) for i in range(1, 0xFFFF))
            + b"".join(struct.pack("<HHI", 0x0013, i, 0) for i in range(1, 0xFFFF)),
            SYNTAXES[0],
        ),
        "items": (
            struct.pack("<HH2s2xI", 0x0008, 0x1115, b"SQ", 8 * 100_000)
            + struct.pack("<HHI", 0xFFFE, 0xE000, 0) * 100_000,
            SYNTAXES[1],
        ),
        "deep": (deep_sequence(MAX_DEPTH + 1, SYNTAXES[2], False), SYNTAXES[2]),
        "deep-undefined": (deep_sequence(5000, SYNTAXES[0], True), SYNTAXES[0]),
    }
    for name, (data, syntax) in bombs.items():
        tracemalloc.start()
        started = time.perf_counter()
        try:
            with pytest.raises(IdentifierTooLarge):
                decode_identifier(data, syntax.uid)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert time.perf_counter() - started < 5, name
        assert peak < 16 << 20, (name, peak)
    assert decode_identifier(deep_sequence(MAX_DEPTH - 1, SYNTAXES[1], True), SYNTAXES[1].uid)


def test_identifier_bomb_is_a_finding_and_the_association_goes_on() -> None:
    conv = Conversation()
    conv.client_sends(build.associate_rq())
    conv.server_sends(build.associate_ac())
    wide = b"".join(struct.pack("<HHI", 0x0011, i, 0) for i in range(1, MAX_ELEMENTS + 10))
    conv.client_sends(build.find_rq(1, wide))
    conv.client_sends(build.echo_rq(2))
    conv.close()
    rows = analyse(conv.frames)
    (finding,) = [v for v in rows["violations"] if v["rule"] == "DIMSE-DS-TOO-LONG"]
    assert f"more than {MAX_ELEMENTS}" in finding["message"]
    assert [m["command"] for m in rows["messages"]] == ["C-FIND-RQ", "C-ECHO-RQ"]


def test_shape_check_never_counts_less_than_pydicom_builds() -> None:
    """check_shape walks headers as pydicom reads them (else a bomb could slip through)."""

    def built(ds) -> int:
        return sum(
            1 + (sum(1 + built(item) for item in el.value) if el.VR == "SQ" else 0) for el in ds
        )

    compared = 0
    for k in range(250):
        rng = random.Random(f"shape:{k}")
        syntax = rng.choice(SYNTAXES[:3])
        elements = identifier_elements(rng, syntax, rng.choice(("find", "move-rsp")))
        for _ in range(rng.randrange(4)):
            mutate_dataset(rng, elements, syntax)
        data = b"".join(u.encode() for u in elements)
        for _ in range(rng.choice((0, 1, 3))):
            data = mutate_bytes(rng, data)
        try:
            dataset = decode_identifier(data, syntax.uid)
        except IdentifierError:
            continue
        implicit = syntax.uid == "1.2.840.10008.1.2"
        assert check_shape(data, implicit, syntax.order == "<") >= built(dataset), k
        compared += 1
    assert compared > 150


def test_huge_value_length_allocates_nothing() -> None:
    data = struct.pack("<HHI", 0x0010, 0x0010, 0xFFFFFFF0) + b"DOE^JOHN"
    tracemalloc.start()
    try:
        with contextlib.suppress(IdentifierError):  # pydicom keeps the 8 bytes there are
            decode_identifier(data, "1.2.840.10008.1.2")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_mid_stream_probe_is_linear() -> None:
    """A connection caught mid-way that never lines up two PDUs, fed in one-byte segments.

    The probe rescanned every held event per segment: 16,000 segments took 38 s.
    """
    conv = Conversation(handshake=False)
    junk = build.release_rq() + b"\x04\x00\x00\x00\x00\x08\x00\x00\x00\x09\x01\x00"
    n = 20_000
    data = build.p_data(build.pdv(1, 0x00, b"x" * n))
    conv.client_sends(junk + data, sizes=[len(junk)] + [1] * len(data))
    pcap = frames_of(conv)
    started = time.perf_counter()
    run([io.BytesIO(pcap)], lambda _t, _r: None)
    assert time.perf_counter() - started < budget(len(pcap)) / 2


@pytest.mark.parametrize("length", [0x0400_0001, 0x7FFF_FFFF, 0xFFFF_FFFF])
def test_pdata_claiming_gigabytes_does_not_swallow_the_stream(length: int) -> None:
    conv = Conversation()
    conv.client_sends(build.associate_rq(contexts=build.ECHO_CONTEXT))
    conv.server_sends(build.associate_ac())
    bad = bytearray(build.echo_rq(1))
    bad[2:6] = length.to_bytes(4, "big")
    first = len(conv.frames) + 1
    conv.client_sends(bytes(bad))
    conv.client_sends(build.echo_rq(2))
    conv.server_sends(build.echo_rsp(2))
    conv.close()
    rows = analyse(conv.frames)
    (finding,) = [v for v in rows["violations"] if v["rule"] == "UL-PDU-TOO-LONG"]
    assert finding["first_frame"] == first and str(length) in finding["message"]
    assert [m["message_id"] or m["message_id_responded_to"] for m in rows["messages"]] == [2, 2]


def test_data_without_command_is_one_finding_not_one_per_segment() -> None:
    """The capture began between a C-STORE-RQ's command set and its 1 MB data set."""
    conv = Conversation(handshake=False)
    data = build.p_data(build.pdv(1, 0x02, b"\x11\x22" * 500_000))
    conv.client_sends(build.release_rq() + data + build.echo_rq(5))
    conv.server_sends(build.echo_rsp(5))
    rows = analyse(conv.frames)
    rules = [v["rule"] for v in rows["violations"]]
    assert rules.count("DIMSE-DATA-WITHOUT-COMMAND") == 1  # was one per segment: 691
    assert [m["command"] for m in rows["messages"]] == ["C-ECHO-RQ", "C-ECHO-RSP"]


# ----------------------------------------------------- malformations are findings

ECHO = build.echo_rq(9)
PDU_BODY = len(ECHO) - 6
PDV_LENGTH = struct.unpack_from(">I", ECHO, 6)[0]


def _set32(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack(">I", value) + data[offset + 4 :]


MALFORMED = {
    **{f"pdu-length-{v:#x}": _set32(ECHO, 2, v) for v in (0, 1, 7, PDU_BODY - 1, 0xFFFFFFFF)},
    **{
        f"pdv-length-{v:#x}": _set32(ECHO, 6, v)
        for v in (0, 1, PDV_LENGTH + 1, PDU_BODY + 1, 0xFFFFFFFF)
    },
    "pdu-type-08": b"\x08" + ECHO[1:],
    "pdu-type-ff": b"\xff" + ECHO[1:],
    "release-reserved": b"\x05\x01" + build.release_rq()[2:],
    "mch-reserved-bits": ECHO[:11] + bytes([ECHO[11] | 0xFC]) + ECHO[12:],
    "associate-item-past-parent": build.associate_rq()[:76]
    + b"\xff\xff"
    + build.associate_rq()[78:],
    "truncated-pdv": ECHO[:20],
    "command-element-past-set": ECHO[:12] + struct.pack("<HHI", 0, 0, 0xFFFFFF) + ECHO[20:],
}


@pytest.mark.parametrize("bad", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformation_is_a_finding_at_its_frame_and_decoding_resumes(bad: bytes) -> None:
    conv = Conversation()
    conv.client_sends(build.associate_rq(contexts=build.ECHO_CONTEXT))
    conv.server_sends(build.associate_ac())
    conv.client_sends(build.echo_rq(1))
    conv.server_sends(build.echo_rsp(1))
    first = len(conv.frames) + 1
    conv.client_sends(bad)
    for message_id in (2, 3, 4):
        conv.client_sends(build.echo_rq(message_id))
        conv.server_sends(build.echo_rsp(message_id))
    conv.client_sends(build.release_rq())
    conv.server_sends(build.release_rp())
    conv.close()
    rows = analyse(conv.frames)
    at = [v for v in rows["violations"] if first <= v["first_frame"] <= first + 1]
    assert at, rows["violations"]
    assert all(v["message"] for v in at)
    seen = {
        (m["command"], m["message_id"] or m["message_id_responded_to"]) for m in rows["messages"]
    }
    assert {("C-ECHO-RQ", 4), ("C-ECHO-RSP", 4)} <= seen  # the analysis resumed


# ------------------------------------------------------------------ caps


def _association(conv: Conversation, message_id: int = 1) -> None:
    conv.client_sends(build.associate_rq(contexts=build.ECHO_CONTEXT))
    conv.server_sends(build.associate_ac())
    conv.client_sends(build.echo_rq(message_id))


def test_flow_cap_is_a_finding() -> None:
    convs = [Conversation(client=("10.0.0.1", 40000 + i)) for i in range(3)]
    for conv in convs:
        _association(conv)
    frames = [f for conv in convs for f in conv.frames]  # all three open at once
    rows = {name: [] for name in TABLE_COLUMNS}
    run(
        [io.BytesIO(pcap_bytes([(ts, f) for ts, _lt, f in frames]))],
        lambda table, row: rows[table].append(row),
        options=Options(max_flows=2),
    )
    caps = [v for v in rows["violations"] if v["rule"] == "TCP-FLOW-CAP"]
    assert len(caps) == 1 and caps[0]["client"] == "10.0.0.1:40000"
    assert len(rows["associations"]) == 3


def test_non_data_pdu_over_the_buffer_cap_is_a_finding() -> None:
    conv = Conversation()
    conv.client_sends(build.associate_rq(contexts=build.ECHO_CONTEXT))
    ac = build.associate_ac()
    unknown_items = build.item(0x99, b"V" * 60000) * 20  # 1.2 MB: past the 1 MiB PDU cap
    conv.server_sends(build.pdu(0x02, ac[6:] + unknown_items))
    conv.client_sends(build.echo_rq(1))
    conv.close()
    rows = analyse(conv.frames)
    assert "UL-PDU-TOO-LONG" in [v["rule"] for v in rows["violations"]]
    assert [m["command"] for m in rows["messages"]] == ["C-ECHO-RQ"]


def test_command_and_identifier_caps_are_findings() -> None:
    conv = Conversation()
    conv.client_sends(build.associate_rq())
    conv.server_sends(build.associate_ac())
    huge_command = build.command_set({dimse.ERROR_COMMENT: b"x" * (70 << 10)})
    conv.client_sends(build.p_data(build.pdv(1, 0x03, huge_command)))
    conv.client_sends(build.find_rq(2, b"\x10\x00\x10\x00\x00\x00\x00\x00" * (600 << 10)))
    conv.close()
    rules = [v["rule"] for v in analyse(conv.frames)["violations"]]
    assert "DIMSE-CMD-TOO-LONG" in rules and "DIMSE-DS-TOO-LONG" in rules


def test_responses_kept_per_operation_are_bounded() -> None:
    """Each kept response holds its decoded identifier; a C-FIND can have millions."""
    operation = Operation(None, True, 1, None)  # type: ignore[arg-type]
    for i in range(3 * RECENT_RESPONSES):
        operation.responses.append(i)  # type: ignore[arg-type]
    assert len(operation.responses) == RECENT_RESPONSES and operation.responses[-1] == i
