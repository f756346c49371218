"""Decode Query/Retrieve identifiers (data sets of C-FIND/C-MOVE/C-GET) with pydicom.

Data sets are encoded in the transfer syntax accepted for their presentation
context (PS3.8 §7.6.1), unlike the command set.  Decoding happens only when a
report or a check asks, never for C-STORE data (which is not even kept).
"""

from __future__ import annotations

import importlib.util
import struct
import warnings
import zlib
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

from .redact import Redactor

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

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


def decode_identifier(data: bytes, transfer_syntax: str) -> Dataset:
    """Parse ``data`` fully (values included) in ``transfer_syntax``.

    pydicom is imported here, not at start-up: it costs half a second
    (numpy, pixel handlers) that a capture without identifiers never needs.
    """
    from pydicom.filereader import read_dataset

    if transfer_syntax == DEFLATED:
        data = _inflate(data)
        implicit, little = False, True
    elif transfer_syntax == IMPLICIT_LITTLE_ENDIAN:
        implicit, little = True, True
    elif transfer_syntax == EXPLICIT_BIG_ENDIAN:
        implicit, little = False, False
    else:
        implicit, little = False, True
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


def summarize(dataset: Dataset, redactor: Redactor, limit: int = 1000) -> str:
    """``Keyword=value; ...`` for a report cell, patient data redacted."""
    parts: list[str] = []
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


@cache
def _uid_names() -> dict[str, tuple]:
    """pydicom's table of registered UIDs (PS3.6 Table A-1), without importing pydicom.

    The table is a plain dict literal in pydicom's ``_uid_dict`` module; loading
    that one file takes a millisecond where importing the package takes 500.
    Falls back to the package when the file is not where it used to be.
    """
    spec = importlib.util.find_spec("pydicom")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).with_name("_uid_dict.py")
        table_spec = importlib.util.spec_from_file_location("_dimsesniff_uid_dict", path)
        if path.exists() and table_spec is not None and table_spec.loader is not None:
            module = importlib.util.module_from_spec(table_spec)
            table_spec.loader.exec_module(module)
            return module.UID_dictionary
    from pydicom._uid_dict import UID_dictionary

    return UID_dictionary


@cache
def uid_name(uid: str | None) -> str:
    """The registered name of a UID, or ''."""
    if not uid:
        return ""
    entry = _uid_names().get(uid)
    return entry[0] if entry else ""
