"""Decode Query/Retrieve identifiers (data sets of C-FIND/C-MOVE/C-GET) with pydicom.

Data sets are encoded in the transfer syntax accepted for their presentation
context (PS3.8 §7.6.1), unlike the command set.  Decoding happens only when a
report or a check asks, never for C-STORE data (which is not even kept).
"""

from __future__ import annotations

import zlib
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import UID

from .redact import Redactor

DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_BIG_ENDIAN = "1.2.840.10008.1.2.2"
IMPLICIT_LITTLE_ENDIAN = "1.2.840.10008.1.2"
MAX_INFLATED = 64 << 20


class IdentifierError(ValueError):
    """The data set cannot be read in the transfer syntax of its context."""


def _inflate(data: bytes) -> bytes:
    """Deflated Explicit VR Little Endian (PS3.5 §A.5): raw deflate, bounded output."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_INFLATED)
    except zlib.error as exc:
        raise IdentifierError(f"deflate stream is corrupt: {exc}") from None
    if inflater.unconsumed_tail:
        raise IdentifierError(f"inflates to more than {MAX_INFLATED} bytes")
    return out


def decode_identifier(data: bytes, transfer_syntax: str) -> Dataset:
    """Parse ``data`` fully (values included) in ``transfer_syntax``."""
    if transfer_syntax == DEFLATED:
        data = _inflate(data)
        implicit, little = False, True
    elif transfer_syntax == IMPLICIT_LITTLE_ENDIAN:
        implicit, little = True, True
    elif transfer_syntax == EXPLICIT_BIG_ENDIAN:
        implicit, little = False, False
    else:
        implicit, little = False, True
    try:
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


def uid_name(uid: str | None) -> str:
    """The registered name of a UID (pydicom's dictionary of PS3.6 Table A-1), or ''."""
    if not uid:
        return ""
    name = UID(uid).name
    return "" if name == uid else name
