"""The flat identifier reader gives exactly what pydicom gives, or hands over to pydicom.

``decode_identifier`` reads flat Little Endian identifiers of text attributes
without pydicom (``_decode_flat``).  Every report cell and every rule outcome
must stay what pydicom's decoding gave, so each identifier here is decoded
both ways and compared: the summary (redacted and not), each element's tag,
VR, keyword, ``str()`` of its values and value offset, and the error when
there is one.  Identifiers come from every capture in ``samples/`` and
``tests/fuzz_cases/``, from hand-made tricky encodings, and from the fuzzer's
identifier generator with mutations.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from dimsesniff import analysis, api
from dimsesniff import identifiers as ids
from dimsesniff.redact import Redactor
from fuzz.mutators import SYNTAXES, identifier_elements, mutate_bytes, mutate_dataset

ROOT = Path(__file__).parent.parent
IMPLICIT, EXPLICIT = ids.IMPLICIT_LITTLE_ENDIAN, "1.2.840.10008.1.2.1"
REDACTORS = (Redactor(include_phi=True), Redactor(key="flat-test"))


def pydicom_only(data: bytes, syntax: str) -> object:
    """What ``decode_identifier`` returned before the flat reader: pydicom, always."""
    if syntax == ids.DEFLATED:
        data = ids._inflate(data)
        implicit, little = False, True
    else:
        implicit = syntax == ids.IMPLICIT_LITTLE_ENDIAN
        little = syntax != ids.EXPLICIT_BIG_ENDIAN
    return ids._decode_pydicom(data, implicit, little)


def _values(value: object) -> list[str] | str:
    if value is None:
        return ""
    if isinstance(value, list) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]  # type: ignore[attr-defined]
    return str(value)


def _elements(dataset: object) -> list[tuple]:
    return [
        (int(e.tag), str(e.VR), e.keyword, _values(e.value), e.file_tell)
        for e in dataset  # type: ignore[attr-defined]
    ]


def decode(data: bytes, syntax: str) -> object:
    try:
        return ids.decode_identifier(data, syntax)
    except ids.IdentifierError as exc:
        return exc


def assert_same(data: bytes, syntax: str) -> bool:
    """Decode both ways and compare; True when the flat reader took it."""
    got = decode(data, syntax)
    try:
        want: object = pydicom_only(data, syntax)
    except ids.IdentifierError as exc:
        want = exc
    if not isinstance(got, ids.FlatIdentifier):
        assert type(got) is type(want) and str(got) == str(want), (data, syntax)
        return False
    assert not isinstance(want, Exception), (data, syntax, want)
    for redactor in REDACTORS:
        assert ids.summarize(got, redactor) == ids.summarize(want, redactor), (data, syntax)  # type: ignore[arg-type]
    assert _elements(got) == _elements(want), (data, syntax)
    assert [int(e.tag) for e in got.iterall()] == [int(e.tag) for e in want.iterall()]  # type: ignore[attr-defined]
    for element in want:  # type: ignore[attr-defined]
        assert int(element.tag) in got
        assert got.get(int(element.tag)).keyword == element.keyword  # type: ignore[union-attr]
    return True


def captured_identifiers() -> set[tuple[str, bytes]]:
    """Every identifier the analysis decodes in the sample and fuzz-case captures."""
    seen: set[tuple[str, bytes]] = set()
    original = analysis.decode_identifier

    def record(data: bytes, syntax: str) -> object:
        seen.add((syntax, bytes(data)))
        return original(data, syntax)

    captures = sorted((ROOT / "samples").glob("*.pcap")) + sorted(
        (ROOT / "tests" / "fuzz_cases").glob("*.pcap")
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(analysis, "decode_identifier", record)
        for capture in captures:
            api.run([capture], lambda _table, _row: None)
    return seen


def test_every_captured_identifier() -> None:
    seen = captured_identifiers()
    flat = sum(assert_same(data, syntax) for syntax, data in seen)
    assert len(seen) > 100
    assert flat > len(seen) // 2  # most take the flat path


def element(tag: int, vr: str, value: bytes, explicit: bool) -> bytes:
    group, number = tag >> 16, tag & 0xFFFF
    if not explicit:
        return struct.pack("<HHI", group, number, len(value)) + value
    if vr in ("UC", "UR", "UT", "UN", "OB", "SQ"):
        return struct.pack("<HH2s2xI", group, number, vr.encode(), len(value)) + value
    return struct.pack("<HH2sH", group, number, vr.encode(), len(value)) + value


TRICKY: list[tuple[int, str, bytes]] = [
    (0x0008_0052, "CS", b"STUDY "),
    (0x0008_0052, "CS", b""),
    (0x0008_0052, "CS", b"  "),
    (0x0008_0052, "CS", b"A\\B \\ C\x00"),
    (0x0008_0054, "AE", b" ARCHIVE  "),
    (0x0008_0054, "AE", b"A\\ B \\"),
    (0x0008_0054, "AE", b"\xa0AE\xa0\x85"),
    (0x0008_0020, "DA", b"20240101-20241231"),
    (0x0008_0020, "DA", b"2024\x00"),
    (0x0008_0030, "TM", b"101010.123 "),
    (0x0008_002A, "DT", b"20240101101010+0100"),
    (0x0010_1010, "AS", b"045Y"),
    (0x0020_000D, "UI", b"1.2.3.4\x00"),
    (0x0020_000D, "UI", b"1.2.3 \x00"),
    (0x0020_000D, "UI", b"1.2\\3.4\x00"),
    (0x0020_000D, "UI", b"\x00\x00"),
    (0x0010_0010, "PN", b"DOE^JOHN "),
    (0x0010_0010, "PN", b"DOE^JOHN=\xc4\xd6^=\x00"),
    (0x0010_0010, "PN", b"A^B\\C^D="),
    (0x0010_0010, "PN", b"*"),
    (0x0010_0010, "PN", b"  "),
    (0x0010_0010, "PN", b"\x00 \x00 "),
    (0x0010_0010, "PN", b"===="),
    (0x0010_0010, "PN", b"M\xfcller^J\xf6rg"),
    (0x0010_0010, "PN", b"ESC\x1b$B"),
    (0x0010_0020, "LO", b"ID 1\\ID 2 \x00"),
    (0x0010_0020, "LO", b" lead"),
    (0x0010_0020, "LO", b"\x1b(B"),
    (0x0008_1030, "LO", b"caf\xe9  "),
    (0x0020_0010, "SH", b"S\\"),
    (0x0008_0080, "LO", b"=cmd|' /C calc'!A0"),
    (0x0010_4000, "LT", b"a\\b\r\nc  \x00"),
    (0x0008_0081, "ST", b"\\\\ "),
    (0x0040_A160, "UT", b"text\\more   "),
    (0x0008_0119, "UC", b"x\\y "),
    (0x0008_0120, "UR", b"http://x/ \t"),
    (0x0020_1208, "IS", b"12 "),
    (0x0020_1208, "IS", b" 12"),
    (0x0020_1208, "IS", b"+7\\-3\\ 0 "),
    (0x0020_1208, "IS", b"1.0"),
    (0x0020_1208, "IS", b"1.5"),
    (0x0020_1208, "IS", b"abc"),
    (0x0020_1208, "IS", b"1_0"),
    (0x0020_1208, "IS", b"99999999999999999999"),
    (0x0020_1208, "IS", b"1\\\\2"),
    (0x0020_1208, "IS", b"\x00"),
    (0x0010_1020, "DS", b"1.75"),
    (0x0010_1020, "DS", b" 1.5E3 "),
    (0x0010_1020, "DS", b"1.\\.5\\-0\\+1e-2"),
    (0x0010_1020, "DS", b"1.0000000000000000001"),
    (0x0010_1020, "DS", b"nan"),
    (0x0010_1020, "DS", b"inf"),
    (0x0010_1020, "DS", b"1,5"),
    (0x0010_1020, "DS", b"1\\  \\2"),
    (0x0010_1020, "DS", b"  "),
    (0x0008_0005, "CS", b"ISO_IR 100"),
    (0x0008_0058, "UI", b"1.2\\1.3\x00"),
    (0x0009_0010, "LO", b"PRIVATE"),
    (0x0011_1001, "LO", b"private value"),
    (0x0008_0000, "UL", b"\x04\x00\x00\x00"),
    (0x0028_0010, "US", b"\x00\x02"),
    (0x0008_0016, "UN", b"1.2\x00"),
    (0x7FE0_0010, "OB", b"\x00\x01"),
    (0x0008_1110, "SQ", b""),
    (0x1234_5678, "LO", b"unknown tag"),
    (0x5000_0010, "US", b"\x01\x00"),  # a repeating-group tag
    (0x0008_1032, "SQ", b"\xfe\xff\x00\xe0\x00\x00\x00\x00"),
]


@pytest.mark.parametrize("explicit", [False, True])
@pytest.mark.parametrize("case", range(len(TRICKY)))
def test_tricky_values(case: int, explicit: bool) -> None:
    tag, vr, value = TRICKY[case]
    syntax = EXPLICIT if explicit else IMPLICIT
    for data in (
        element(tag, vr, value, explicit),
        element(0x0008_0052, "CS", b"STUDY ", explicit) + element(tag, vr, value, explicit)
        if tag > 0x0008_0052
        else element(tag, vr, value, explicit) + element(0x0010_0020, "LO", b"X", explicit),
    ):
        assert_same(data, syntax)
        assert_same(data, ids.DEFLATED) if explicit else None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x08\x00",
        b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY",  # value runs past the end
        b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY \x00\x00",  # trailing bytes
        b"\x08\x00\x52\x00\xff\xff\xff\xffSTUDY ",  # undefined length
        # out of order, then a duplicate tag (pydicom keeps the last, in tag order)
        element(0x0010_0020, "LO", b"B", False) + element(0x0008_0052, "CS", b"A ", False),
        element(0x0008_0052, "CS", b"A ", False) + element(0x0008_0052, "CS", b"B ", False),
        # an item delimiter ends pydicom's read
        element(0x0008_0052, "CS", b"A ", False) + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00",
        # Explicit VR where Implicit was negotiated, and the reverse
        element(0x0008_0052, "CS", b"IMAGE ", True) + element(0x0010_0010, "PN", b"X", True),
    ],
)
@pytest.mark.parametrize("syntax", [IMPLICIT, EXPLICIT, ids.EXPLICIT_BIG_ENDIAN])
def test_malformed_and_mixed(data: bytes, syntax: str) -> None:
    assert_same(data, syntax)


def test_generated_and_mutated_identifiers() -> None:
    """The fuzzer's identifiers (C-FIND and C-MOVE response kinds), mutated or not."""
    flat = 0
    for k in range(1500):
        rng = random.Random(f"flat:{k}")
        syntax = rng.choice(SYNTAXES)
        elements = identifier_elements(rng, syntax, rng.choice(("find", "move-rsp")))
        for _ in range(rng.choice((0, 0, 1, 2))):
            mutate_dataset(rng, elements, syntax)
        data = b"".join(u.encode() for u in elements)
        if syntax.uid != ids.DEFLATED:
            for _ in range(rng.choice((0, 0, 1, 3))):
                data = mutate_bytes(rng, data)
        else:
            data = ids.zlib.compress(data)[2:-4]  # raw deflate (PS3.5 §A.5)
        flat += assert_same(data, syntax.uid)
    assert flat > 50


def test_random_flat_identifiers() -> None:
    """Random sets of the tricky elements above, in tag order, then maybe byte-mutated."""
    flat = 0
    for k in range(2000):
        rng = random.Random(f"flat-random:{k}")
        explicit = rng.random() < 0.5
        chosen = {tag: (vr, value) for tag, vr, value in rng.sample(TRICKY, rng.randrange(1, 7))}
        data = b"".join(element(t, *chosen[t], explicit) for t in sorted(chosen))
        for _ in range(rng.choice((0, 0, 0, 1, 2))):
            data = mutate_bytes(rng, data)
        flat += assert_same(data, EXPLICIT if explicit else IMPLICIT)
    assert flat > 300


def test_flat_path_does_not_import_pydicom() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from dimsesniff.identifiers import decode_identifier, FlatIdentifier;"
        "d = decode_identifier(b'\\x08\\x00\\x52\\x00\\x06\\x00\\x00\\x00STUDY ', "
        "'1.2.840.10008.1.2');"
        "assert isinstance(d, FlatIdentifier); assert 'pydicom' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
