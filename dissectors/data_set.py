"""A flat data set walked element by element: (tag, VR, where the value is), no objects built.

Query/Retrieve identifiers are short lists of text attributes in Implicit or
Explicit VR Little Endian.  ``walk_flat`` reads such a data set's element
headers (PS3.5 §7.1.2 Explicit VR, §7.1.3 Implicit VR; Little Endian byte
order, PS3.5 §7.3) and gives up, returning None, on anything it does not
handle itself: a sequence, an undefined length, a VR it was not asked for,
tags out of ascending order (PS3.5 §7.1: "Data Elements ... shall occur in
increasing numeric order"), a value running past the end, trailing bytes.
The caller then uses a full decoder.  It never raises on any input.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection

from .dimse import ELEMENT_HEADER, LONG_VRS

# Explicit VR Little Endian header: | group (2) | element (2) | VR (2) | length (2) |
EXPLICIT_SHORT_HEADER = struct.Struct("<HH2sH")
LONG_LENGTH = struct.Struct("<I")

FlatElement = tuple[int, str, int, int]
"""(tag, VR, offset of the value, value length)."""


def looks_implicit(data: bytes, assumed: bool) -> bool:
    """Whether the data set is Implicit VR, judged by its first element's VR bytes.

    A peer may encode the identifier in a transfer syntax other than the
    context's (or the context is assumed mid-capture): an Explicit VR header
    has two upper-case letters after the tag (PS3.5 §7.1.2), an Implicit one
    the low bytes of a 32-bit length (§7.1.3) that are letters only for a
    first value of over 16 KB.  pydicom decides the same way.
    """
    if len(data) < 6:
        return assumed
    return not (0x40 < data[4] < 0x5B and 0x40 < data[5] < 0x5B)


def walk_flat(
    data: bytes,
    implicit: bool,
    vr_of: Callable[[int], str | None],
    vrs: Collection[str],
    max_elements: int,
) -> list[FlatElement] | None:
    """The elements of a flat Little Endian data set, or None when it is not one.

    ``vr_of(tag)`` gives the VR of a tag in Implicit VR (its dictionary VR; None
    for a tag the caller does not handle); ``vrs`` are the VRs handled.  More
    than ``max_elements`` elements also give None, so the caller's own limits
    apply through its full decoder.
    """
    out: list[FlatElement] = []
    end = len(data)
    pos = 0
    last_tag = -1
    while pos < end:
        if pos + 8 > end or len(out) >= max_elements:
            return None
        if implicit:
            group, element, length = ELEMENT_HEADER.unpack_from(data, pos)
            tag = group << 16 | element
            vr = vr_of(tag)
            if vr is None:
                return None
            pos += 8
        else:
            group, element, raw_vr, length = EXPLICIT_SHORT_HEADER.unpack_from(data, pos)
            tag = group << 16 | element
            if raw_vr in LONG_VRS:
                if pos + 12 > end:
                    return None
                (length,) = LONG_LENGTH.unpack_from(data, pos + 8)
                pos += 12
            else:
                pos += 8
            vr = raw_vr.decode("latin-1")
        if tag <= last_tag or vr not in vrs or pos + length > end:
            # Also catches the undefined length 0xFFFFFFFF (PS3.5 §7.1.1).
            return None
        last_tag = tag
        out.append((tag, vr, pos, length))
        pos += length
    return out
