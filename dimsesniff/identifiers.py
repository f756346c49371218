"""Decode Query/Retrieve identifiers (data sets of C-FIND/C-MOVE/C-GET).

Flat Little Endian identifiers of text attributes (nearly all of them) are read
by a small reader that reproduces pydicom's values exactly; the rest by pydicom.

Data sets are encoded in the transfer syntax accepted for their presentation
context (PS3.8 §7.6.1), unlike the command set.  Decoding happens only when a
report or a check asks, never for C-STORE data (which is not even kept).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Union

from dissectors.data_set import looks_implicit, walk_flat
from dissectors.dimse import tag_text

from .redact import Redactor

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

Identifier = Union["Dataset", "FlatIdentifier"]
"""A decoded identifier: pydicom's data set, or the flat reader's."""

DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_BIG_ENDIAN = "1.2.840.10008.1.2.2"
IMPLICIT_LITTLE_ENDIAN = "1.2.840.10008.1.2"
MAX_INFLATED = 4 << 20
"""Same cap as for an identifier on the wire (``DEFAULT_MAX_DATA_SET``): no deflate bomb."""
MAX_ELEMENTS = 10_000
"""Element, item and delimiter headers an identifier may hold (a real one has tens).

pydicom builds objects worth about 1 KB and 70 µs per element, so 4 MiB of 8-byte
empty elements would cost half a gigabyte and half a minute; refused before that.
"""
MAX_DEPTH = 32
"""Sequences nested in one another (a real identifier has three or four)."""

_ITEM_END = 0xFFFE_E00D
_SEQUENCE_END = 0xFFFE_E0DD
_UNDEFINED = 0xFFFF_FFFF
_ITEM_BYTES = {"<": b"\xfe\xff\x00\xe0", ">": b"\xff\xfe\xe0\x00"}
_SEQUENCE_END_BYTES = {"<": b"\xfe\xff\xdd\xe0", ">": b"\xff\xfe\xe0\xdd"}


class IdentifierError(ValueError):
    """The data set cannot be read in the transfer syntax of its context."""


class IdentifierTooLarge(IdentifierError):
    """The data set holds more than the decoder accepts (elements, nesting, inflated size)."""


def _inflate(data: bytes) -> bytes:
    """Deflated Explicit VR Little Endian (PS3.5 §A.5): raw deflate, bounded output."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_INFLATED)
    except zlib.error as exc:
        raise IdentifierError(f"deflate stream is corrupt: {exc}") from None
    if inflater.unconsumed_tail:
        raise IdentifierTooLarge(f"inflates to more than {MAX_INFLATED} bytes")
    return out


def check_shape(data: bytes, implicit: bool, little: bool) -> int:
    """Refuse a data set with more headers or deeper nesting than an identifier needs.

    Walks the headers the way pydicom 3 reads them (PS3.5 §7.1, §7.5): each data
    set (the top one and every item) is Implicit VR when its first element's VR
    bytes are not letters; every header inside a sequence is an item; a
    defined-length sequence is read from its own bytes; an Item Delimitation
    ends a data set; an undefined length opens a sequence when pydicom would
    read one (SQ, UN, the dictionary says so) and otherwise runs to the Sequence
    Delimitation Item.  A defined-length value pydicom could read as a sequence
    (SQ, UN, a private or unknown tag, a value starting with an Item tag) is
    walked as one, so the count never falls short of what pydicom builds.
    Raises ``IdentifierTooLarge``; malformed bytes are left to pydicom.
    Returns the number of headers walked.
    """
    from pydicom.datadict import dictionary_VR
    from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

    def dictionary_sq(tag: int) -> bool | None:
        """True/False for a tag the dictionary knows, None for one it does not."""
        try:
            return dictionary_VR(tag) == "SQ"
        except KeyError:
            return None

    long_vrs = frozenset(vr.encode() for vr in EXPLICIT_VR_LENGTH_32)
    end = len(data)
    # Open containers, outermost first: sequences (their headers are items) and data sets.
    stack = [_Container(end, False, implicit, little)]
    headers = 0
    pos = 0
    while True:
        # Close what the position has left, innermost first; a defined-length
        # sequence is read from its own bytes, so an overrun inside stops at its end.
        for i in range(len(stack) - 1, 0, -1):
            box = stack[i]
            if box.end is not None and pos >= box.end:
                if box.sequence:
                    pos = box.end
                del stack[i:]
        if pos + 8 > end:
            return headers
        box = stack[-1]
        order = "<" if box.little else ">"
        group, element, length = struct.unpack_from(order + "HHI", data, pos)
        tag = group << 16 | element
        headers += 1
        if headers > MAX_ELEMENTS:
            raise IdentifierTooLarge(f"more than {MAX_ELEMENTS} elements and items")
        if len(stack) > 2 * MAX_DEPTH:
            raise IdentifierTooLarge(f"sequences nested more than {MAX_DEPTH} deep")
        if box.sequence:
            pos += 8
            if tag == _SEQUENCE_END:  # the sequence ends, whatever its length said
                if box.end is not None:
                    pos = box.end
                stack.pop()
            else:  # pydicom reads any header here as an item, whatever its tag
                item_end = None if length == _UNDEFINED else pos + length
                stack.append(_Container(item_end, False, box.implicit, box.little))
            continue
        vr = data[pos + 4 : pos + 6]
        if box.first:
            box.first = False
            if not (box.implicit and len(stack) > 1):  # a nested implicit set stays implicit
                box.implicit = not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B)
        head = 8
        explicit = not box.implicit and b"AA" <= vr <= b"ZZ"
        if explicit and vr in long_vrs:
            if pos + 12 > end:
                return headers
            length = struct.unpack_from(order + "I", data, pos + 8)[0]
            head = 12
        elif explicit:
            length = struct.unpack_from(order + "H", data, pos + 6)[0]
        value = pos + head
        if tag == _ITEM_END:  # ends the data set, an item or the top one
            if len(stack) == 1:
                return headers
            stack.pop()
            pos = value
            continue
        item_tag = _ITEM_BYTES[order]
        if length == _UNDEFINED:
            if explicit:
                sequence = vr in (b"SQ", b"UN")
            else:
                known = dictionary_sq(tag)
                sequence = data[value : value + 4] == item_tag if known is None else known
            if sequence:
                stack.append(_Container(None, True, box.implicit, box.little))
                pos = value
                continue
            # The bytes of the innermost defined-length sequence, or all of them.
            limit = next((b.end for b in reversed(stack) if b.sequence and b.end), end)
            resume = _undefined_value_end(data, value, limit, order)
            if resume is not None:
                pos = resume
                continue
            # pydicom rewinds to the value and ends the data set (EOFError).
            if len(stack) == 1:
                return headers
            stack.pop()
            pos = value
            continue
        if length >= 8 and (
            (explicit and vr == b"SQ")
            or ((not explicit or vr == b"UN") and dictionary_sq(tag) is not False)
            or data[value : value + 4] == item_tag
        ):
            stack.append(_Container(value + length, True, box.implicit, box.little))
            pos = value
            continue
        pos = value + length


def _undefined_value_end(data: bytes, value: int, limit: int, order: str) -> int | None:
    """Where pydicom goes on after an undefined-length value that is not a sequence.

    As encapsulated pixel data first (Items, then the Sequence Delimitation
    Item), else the first Sequence Delimitation tag; None when there is none.
    """
    item, sequence_end = _ITEM_BYTES[order], _SEQUENCE_END_BYTES[order]
    pos = value
    while pos + 4 <= limit:
        tag = data[pos : pos + 4]
        if tag == sequence_end:
            return pos + 8
        if tag != item or pos + 8 > limit:
            break
        pos += 8 + struct.unpack_from(order + "I", data, pos + 4)[0]
    found = data.find(sequence_end, value, limit)
    return None if found < 0 else found + 8


class _Container:
    """A sequence or a data set being walked by ``check_shape``."""

    __slots__ = ("end", "sequence", "implicit", "little", "first")

    def __init__(self, end: int | None, sequence: bool, implicit: bool, little: bool) -> None:
        self.end = end  # offset after its last byte; None for an undefined length
        self.sequence = sequence
        self.implicit = implicit
        self.little = little
        self.first = True  # no element read yet: pydicom looks at this one's VR bytes


def decode_identifier(data: bytes, transfer_syntax: str) -> Identifier:
    """Parse ``data`` fully (values included) in ``transfer_syntax``.

    A flat Little Endian identifier of text attributes, the usual kind, is read
    by ``_decode_flat`` without pydicom; anything else (sequences, binary or
    ambiguous VRs, private or unknown tags, Specific Character Set, Big
    Endian...) by pydicom, whose values the flat reader reproduces.  pydicom is
    imported only then: it costs half a second (numpy, pixel handlers).
    """
    if transfer_syntax == DEFLATED:
        data = _inflate(data)
        implicit, little = False, True
    elif transfer_syntax == IMPLICIT_LITTLE_ENDIAN:
        implicit, little = True, True
    elif transfer_syntax == EXPLICIT_BIG_ENDIAN:
        implicit, little = False, False
    else:
        implicit, little = False, True
    if little:
        flat = _decode_flat(data, implicit)
        if flat is not None:
            return flat
    return _decode_pydicom(data, implicit, little)


def _decode_pydicom(data: bytes, implicit: bool, little: bool) -> Dataset:
    """The full decoder, within ``check_shape``'s limits."""
    from pydicom.filereader import read_dataset

    check_shape(data, implicit, little)
    try:
        with warnings.catch_warnings():
            # pydicom warns (on stderr) when the data set is not in the transfer syntax it
            # was told, e.g. Explicit VR where Implicit was assumed mid-association; it
            # then reads it right anyway, which is what we want here.
            warnings.simplefilter("ignore")
            dataset = read_dataset(BytesIO(data), implicit, little)
            for element in dataset.iterall():  # force every value to decode now
                element.value  # noqa: B018
    except Exception as exc:  # pydicom raises many types on bad input
        raise IdentifierError(f"{type(exc).__name__}: {exc}") from None
    return dataset


# -- the flat reader: pydicom's values without pydicom ---------------------------------------

SPECIFIC_CHARACTER_SET = 0x0008_0005
FAILED_SOP_INSTANCE_UID_LIST = 0x0008_0058
_PYDICOM_ONLY = frozenset({SPECIFIC_CHARACTER_SET, FAILED_SOP_INSTANCE_UID_LIST})
"""Left to pydicom: Specific Character Set changes how text decodes (PS3.5 §6.1.2.3),
and C-MOVE rules read the Failed SOP Instance UID List as pydicom's element."""
_CHARSET = "latin-1"
"""pydicom's default (its ``"iso8859"``) for text without Specific Character Set."""
_ESC = b"\x1b"
_DS_TEXT = re.compile(r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *")
"""A Decimal String value (PS3.5 Table 6.2-1) that Python's float() reads as it stands."""
_IS_TEXT = re.compile(r" *[+-]?[0-9]{1,9} *")
"""An Integer String value (PS3.5 Table 6.2-1) that Python's int() reads exactly."""


def _split(text: str) -> list[str]:
    """pydicom's ``multi_string``: trailing spaces and NULs off, values split at "\\"."""
    return text.rstrip(" \x00").split("\\")


def _numbers(values: list[str], pattern: re.Pattern[str]) -> list[str] | None:
    """DS / IS values as pydicom's ``str()`` gives them: as written, stripped (its DSfloat
    and IS keep an ``original_string``), a blank one as it is; None when float() or int()
    might not read one (pydicom would then keep the bytes as UN)."""
    out = []
    for value in values:
        if value.strip() == "":
            out.append(value)
        elif pattern.fullmatch(value):
            out.append(value.strip())
        else:
            return None
    return out


def _person_names(raw: bytes) -> list[str]:
    """PN: trailing NULs and spaces off the bytes, values split at "\\" (PS3.5 §6.2.1);
    pydicom's PersonName drops empty component groups at the end ("A==" is "A")."""
    out = []
    for value in raw.rstrip(b"\x00 ").decode(_CHARSET).split("\\"):
        groups = value.split("=")
        while groups and not groups[-1]:
            groups.pop()
        out.append("=".join(groups))
    return out


def _multi_text(raw: bytes) -> list[str]:
    """SH, LO, UC: values split at "\\", each without trailing NULs and spaces."""
    return [v.rstrip("\x00 ") for v in raw.decode(_CHARSET).split("\\")]


def _single_text(raw: bytes) -> list[str]:
    """ST, LT, UT: one value, backslashes included (PS3.5 Table 6.2-1)."""
    return [raw.decode(_CHARSET).rstrip("\x00 ")]


def _plain(raw: bytes) -> list[str]:
    return _split(raw.decode(_CHARSET))


_CONVERT: dict[str, Callable[[bytes], list[str] | None]] = {
    # Leading and trailing spaces are not significant in AE (PS3.5 Table 6.2-1).
    "AE": lambda raw: [v.strip() for v in raw.decode(_CHARSET).split("\\")],
    "AS": _plain,
    "CS": _plain,
    "DA": _plain,
    "DT": _plain,
    "TM": _plain,
    # UI is padded with a NUL (PS3.5 §9.1).
    "UI": lambda raw: _split(raw.decode(_CHARSET).rstrip("\x00 ")),
    "DS": lambda raw: _numbers(_split(raw.decode(_CHARSET).strip()), _DS_TEXT),
    "IS": lambda raw: _numbers(_split(raw.decode(_CHARSET)), _IS_TEXT),
    "PN": _person_names,
    "SH": _multi_text,
    "LO": _multi_text,
    "UC": _multi_text,
    "ST": _single_text,
    "LT": _single_text,
    "UT": _single_text,
    "UR": lambda raw: [raw.decode(_CHARSET).rstrip()],
}
"""Each VR the flat reader handles, and its values as pydicom's ``str()`` gives them
(pydicom 3 ``values.converters`` with no Specific Character Set and
``datetime_conversion`` off); None leaves the data set to pydicom."""
_CHARSET_VRS = frozenset({"SH", "LO", "UC", "ST", "LT", "UT", "PN"})
"""Text VRs in which pydicom interprets escape sequences (PS3.5 §6.1.2.5.3)."""


class TextElement:
    """One element read by the flat reader, with the attributes rules use of pydicom's."""

    __slots__ = ("tag", "VR", "keyword", "value", "file_tell", "text")

    def __init__(self, tag: int, vr: str, keyword: str, values: list[str], offset: int) -> None:
        self.tag = tag
        self.VR = vr
        self.keyword = keyword
        # pydicom's shape: one value as itself, several as a list.
        self.value: str | list[str] = values[0] if len(values) == 1 else values
        self.file_tell = offset  # where the value starts, as pydicom records it
        self.text = "\\".join(values)  # what ``summarize`` shows, before redaction


class FlatIdentifier:
    """An identifier read by the flat reader: what rules use of a pydicom ``Dataset``
    (iteration in tag order, ``in``, ``get``, ``[]``, ``iterall``), nothing more."""

    __slots__ = ("_elements", "_keywords")

    def __init__(self, elements: dict[int, TextElement]) -> None:
        self._elements = elements
        self._keywords: dict[int, str] | None = None

    def keywords(self) -> dict[int, str]:
        """Tag -> keyword of the top-level elements, made once (do not change it): a
        request's are compared with each of its responses'."""
        if self._keywords is None:
            self._keywords = {tag: e.keyword for tag, e in self._elements.items()}
        return self._keywords

    def __iter__(self) -> Iterator[TextElement]:
        return iter(self._elements.values())

    def __len__(self) -> int:
        return len(self._elements)

    def __contains__(self, tag: object) -> bool:
        return tag in self._elements

    def __getitem__(self, tag: int) -> TextElement:
        return self._elements[tag]

    def get(self, tag: int, default: TextElement | None = None) -> TextElement | None:
        return self._elements.get(tag, default)

    def iterall(self) -> Iterator[TextElement]:
        """Every element, nested ones included: a flat identifier has no nested ones."""
        return iter(self._elements.values())


def _decode_flat(data: bytes, implicit: bool) -> FlatIdentifier | None:
    """Read a flat Little Endian identifier of text attributes; None when pydicom must.

    Only tags of the standard data dictionary (PS3.6 Table 6-1) qualify, so
    keywords (and VRs in Implicit VR) are the dictionary's as pydicom gives
    them; a value ``_CONVERT`` cannot reproduce exactly (an escape sequence, a
    malformed number) sends the whole data set to pydicom.
    """
    dictionary = _dictionary()

    def vr_of(tag: int) -> str | None:
        entry = dictionary.get(tag)
        return entry[0] if entry is not None else None

    implicit = looks_implicit(data, implicit)
    walked = walk_flat(data, implicit, vr_of, _CONVERT, MAX_ELEMENTS)
    if walked is None:
        return None
    elements: dict[int, TextElement] = {}
    for tag, vr, offset, length in walked:
        entry = dictionary.get(tag)
        if entry is None or tag in _PYDICOM_ONLY:
            return None
        raw = data[offset : offset + length]
        if vr in _CHARSET_VRS and _ESC in raw:
            return None
        values = _CONVERT[vr](raw) if length else [""]
        if values is None:
            return None
        elements[tag] = TextElement(tag, vr, entry[4] or tag_text(tag), values, offset)
    return FlatIdentifier(elements)


def summarize(dataset: Identifier, redactor: Redactor, limit: int = 1000) -> str:
    """``Keyword=value; ...`` for a report cell, patient data redacted."""
    parts: list[str] = []
    if isinstance(dataset, FlatIdentifier):
        for flat in dataset:
            text = redactor.value(flat.tag, flat.VR, flat.keyword, flat.text)
            parts.append(f"{flat.keyword}={text}")
        out = "; ".join(parts)
        return out if len(out) <= limit else out[: limit - 1] + "…"
    for element in dataset:
        keyword = element.keyword or f"({element.tag.group:04X},{element.tag.element:04X})"
        if element.VR == "SQ":
            parts.append(f"{keyword}=<{len(element.value)} items>")
            continue
        value = element.value
        if isinstance(value, bytes):
            text = f"<{len(value)} bytes>"
        elif isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            text = "\\".join(str(v) for v in value)
        else:
            text = "" if value is None else str(value)
        text = redactor.value(int(element.tag), element.VR, keyword, text)
        parts.append(f"{keyword}={text}")
    out = "; ".join(parts)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def _pydicom_table(module: str, name: str) -> dict:
    """A plain dict literal of pydicom's (``_uid_dict``, ``_dicom_dict``) without importing
    pydicom: loading that one file takes milliseconds where importing the package takes 500.
    Falls back to the package when the file is not where it used to be.
    """
    spec = importlib.util.find_spec("pydicom")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).with_name(f"{module}.py")
        table_spec = importlib.util.spec_from_file_location(f"_dimsesniff{module}", path)
        if path.exists() and table_spec is not None and table_spec.loader is not None:
            loaded = importlib.util.module_from_spec(table_spec)
            table_spec.loader.exec_module(loaded)
            return getattr(loaded, name)
    return getattr(importlib.import_module(f"pydicom.{module}"), name)


@cache
def _uid_names() -> dict[str, tuple]:
    """pydicom's table of registered UIDs (PS3.6 Table A-1)."""
    return _pydicom_table("_uid_dict", "UID_dictionary")


@cache
def _dictionary() -> dict[int, tuple]:
    """pydicom's data dictionary (PS3.6 Table 6-1): tag -> (VR, VM, name, retired, keyword)."""
    return _pydicom_table("_dicom_dict", "DicomDictionary")


@cache
def uid_name(uid: str | None) -> str:
    """The registered name of a UID, or ''."""
    if not uid:
        return ""
    entry = _uid_names().get(uid)
    return entry[0] if entry else ""
