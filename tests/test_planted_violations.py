"""Planted violations: a deliberately non-conformant Q/R SCP, captured talking to real SCUs.

``samples/bad-*.pcap`` were made by ``tests/peers/badscp.py`` (a hand-written SCP answering DCMTK
findscu/movescu and pynetdicom SCUs on loopback); ``samples/bad-*.expected.json`` list, for each
planted response, the rule it must trigger and the frames of that response **as tshark sees
them** (never as dimsesniff reports them).  For every capture:

* every expected finding is reported: same rule ID, same first and last frame;
* no error-severity finding is reported that is not expected (warnings and info are allowed;
  the ones known to appear are listed in KNOWN with the reason).

A planted rule that is not in the registry yet (``dimsesniff.rules.RULES``, read at run time)
turns the capture's test into xfail (strict=False), naming the missing IDs; the findings of the
registered rules are asserted before that marker is applied, so a missing rule never hides a
regression in the others.

Regenerate: ``sudo python -m tests.peers.badscp [--only NAME]`` (see samples/README.md).
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from dimsesniff.api import run
from dimsesniff.rules import RULES

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
NAMES = sorted(p.name.removesuffix(".expected.json") for p in SAMPLES.glob("bad-*.expected.json"))
LIVE = "bad-move"  # the capture test_live_regeneration makes again (movescu and pynetdicom)

# Non-error findings that are known to come with the planted ones: (capture, rule) -> why.
KNOWN: dict[tuple[str, str], str] = {
    ("bad-move", "MOVE-FAILLIST-NOFAIL"): "the B000 planted for MOVE-B000-NEEDS-FW has F=W=0 and "
    "no data set: the 'absent' reading of rules.md D9 (info)",
}


def load_expected(name: str) -> list[dict]:
    return json.loads((SAMPLES / f"{name}.expected.json").read_text())


@cache
def _analyse(path: str) -> tuple[dict, ...]:
    rows: list[dict] = []
    run([path], lambda table, row: rows.append(row) if table == "violations" else None)
    return tuple(rows)


def findings(pcap: Path) -> list[dict]:
    return list(_analyse(str(pcap)))


def key(f: dict) -> tuple[str, int, int]:
    return (f["rule"], int(f["first_frame"]), int(f["last_frame"]))


def missing_rules(expected: list[dict]) -> list[str]:
    return sorted({e["rule"] for e in expected} - set(RULES))


def problems(expected: list[dict], reported: list[dict]) -> list[str]:
    """What is wrong: expected findings not reported, and unexpected error findings."""
    out = []
    misplaced = set()
    got = Counter(key(f) for f in reported)
    for e in expected:
        k = key(e)
        if got[k]:
            got[k] -= 1
            continue
        misplaced.add(e["rule"])
        same_rule = [
            f"{f['first_frame']}-{f['last_frame']} ({f['severity']}: {f['message']})"
            for f in reported
            if f["rule"] == e["rule"]
        ]
        out.append(
            f"{e['rule']} not reported on frames {e['first_frame']}-{e['last_frame']} "
            f"({e['command']} status {e['status']} to Message ID "
            f"{e['message_id_responded_to']}: {e['why']}); "
            + (f"reported at {'; '.join(same_rule)}" if same_rule else "not reported at all")
        )
    want = Counter(key(e) for e in expected)
    for f in reported:
        k = key(f)
        if f["severity"] != "error":
            continue
        if want[k]:
            want[k] -= 1
            continue
        if f["rule"] in misplaced:
            continue  # already shown as "reported at ..." above
        out.append(
            f"unexpected error {f['rule']} on frames {f['first_frame']}-{f['last_frame']} "
            f"({f['command']} {f['status']}): {f['message']}"
        )
    return out


def note_unknown(name: str, expected: list[dict], reported: list[dict]) -> None:
    """Warnings/info that are neither planted nor in KNOWN: allowed, but made visible."""
    planted = {key(e) for e in expected}
    for f in reported:
        if f["severity"] == "error" or key(f) in planted or (name, f["rule"]) in KNOWN:
            continue
        warnings.warn(
            f"{name}: {f['severity']} {f['rule']} on frames {f['first_frame']}-"
            f"{f['last_frame']} is not listed in KNOWN: {f['message']}",
            stacklevel=2,
        )


def test_every_capture_has_its_expectations():
    assert NAMES, "no samples/bad-*.expected.json"
    for name in NAMES:
        assert (SAMPLES / f"{name}.pcap").exists()
        expected = load_expected(name)
        assert expected, name
        for e in expected:
            assert {"rule", "first_frame", "last_frame"} <= set(e)
            assert e["first_frame"] <= e["last_frame"]


def check(name: str, expected: list[dict], reported: list[dict], request) -> None:
    """Assert the expectations; xfail (strict=False) what needs rules not registered yet.

    The planted findings of registered rules are checked first, without any xfail, so a missing
    rule never hides a regression in the others; only then is the xfail marker applied.
    """
    note_unknown(name, expected, reported)
    missing = missing_rules(expected)
    if missing:
        present = [e for e in expected if e["rule"] in RULES]
        wrong = problems(present, reported)
        assert not wrong, f"{name}.pcap (registered rules):\n  " + "\n  ".join(wrong)
        request.applymarker(
            pytest.mark.xfail(
                reason=f"not in the rule registry yet: {', '.join(missing)}", strict=False
            )
        )
    wrong = problems(expected, reported)
    assert not wrong, f"{name}.pcap:\n  " + "\n  ".join(wrong)


@pytest.mark.parametrize("name", NAMES)
def test_planted_findings(name: str, request: pytest.FixtureRequest):
    check(name, load_expected(name), findings(SAMPLES / f"{name}.pcap"), request)


def _content(e: dict) -> tuple:
    return (
        e["rule"],
        e["association"],
        e["scp_message"],
        e["command"],
        e["message_id_responded_to"],
        e["status"],
    )


@pytest.mark.parametrize("name", NAMES)
def test_expected_frames_match_tshark(name: str, require_tool):
    """The committed frames are still those tshark finds (catches a re-captured pcap)."""
    require_tool("tshark")
    from tests.peers.badscp import BAD_SCENARIOS, expected_findings

    fresh = expected_findings(SAMPLES / f"{name}.pcap", BAD_SCENARIOS[name])
    committed = load_expected(name)
    assert [(_content(e), key(e)) for e in fresh] == [(_content(e), key(e)) for e in committed], (
        f"samples/{name}.expected.json is stale; rewrite it with "
        f"`python -m tests.peers.badscp --expected-only --only {name}`"
    )


@pytest.mark.peers
def test_live_regeneration(tmp_path: Path, require_tool, request: pytest.FixtureRequest):
    """Capture LIVE again with real peers; the same planted findings on the fresh frames."""
    require_tool("peers")
    require_tool("tshark")
    from tests.peers import generate
    from tests.peers.badscp import BAD_SCENARIOS, expected_findings

    committed = load_expected(LIVE)
    pcap, _peerlog = generate(LIVE, tmp_path)
    fresh = expected_findings(pcap, BAD_SCENARIOS[LIVE])
    # match the committed expectations to the new capture by message content, not frames
    by_content = {_content(e): e for e in fresh}
    assert set(by_content) == {_content(e) for e in committed}
    expected = [by_content[_content(e)] for e in committed]
    check(LIVE, expected, findings(pcap), request)
