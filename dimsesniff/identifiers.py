"""Decode Query/Retrieve identifiers (data sets of C-FIND/C-MOVE/C-GET) with pydicom.

Data sets are encoded in the transfer syntax accepted for their presentation
context (PS3.8 §7.6.1), unlike the command set.  Decoding happens only when a
report or a check asks, never for C-STORE data (which is not even kept).
"""

from __future__ import annotations

import importlib.util
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
