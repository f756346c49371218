"""Events emitted by the TCP layer (``FlowTable``) for the upper layers.

The TCP layer turns captured segments into per-direction, in-order byte
streams.  Everything above it (the DICOM upper-layer parser, the DIMSE
assembler) only ever sees these events, whether the bytes came from a
capture file, a live interface or a test.

A *connection* is one TCP connection (4-tuple plus SYN epoch, so a reused
port pair becomes a new connection).  ``conn`` is a small integer assigned in
order of first appearance.  ``from_initiator`` tells the direction: True for
bytes sent by the side that opened the connection (the SYN sender; when the
SYN is not in the capture, the source of the first segment seen).
"""

from __future__ import annotations

from dataclasses import dataclass

Endpoint = tuple[str, int]
"""(IP address as text, TCP port)."""


@dataclass(frozen=True, slots=True)
class StreamOpen:
    """A connection seen for the first time."""

    conn: int
    initiator: Endpoint
    responder: Endpoint
    syn_seen: bool
    frame: int
    ts: float


@dataclass(slots=True)  # not frozen: built per segment, frozen costs 4x
class StreamData:
    """In-order payload bytes of one direction, from one captured segment."""

    conn: int
    from_initiator: bool
    data: bytes
    frame: int
    ts: float


@dataclass(slots=True)
class StreamSkipped:
    """In-order bytes the layer above said it would not read (``TcpStream.skip_budget``).

    Reported once, before the direction's next event, with the frame and time
    of the last skipped segment: the upper layer only counts them (C-STORE
    pixel data), so no event per segment is needed.
    """

    conn: int
    from_initiator: bool
    length: int
    frame: int
    ts: float


@dataclass(slots=True)  # not frozen: built per segment, frozen costs 4x
class StreamGap:
    """Bytes that were never captured (lost segment); the stream resumes after them.

    The hole is reported, never filled: the parser above must resynchronise.
    """

    conn: int
    from_initiator: bool
    missing: int
    frame: int
    ts: float


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """One connection is over: ``reason`` is ``fin``, ``rst``, ``idle`` or ``capture-end``."""

    conn: int
    reason: str
    frame: int
    ts: float


@dataclass(frozen=True, slots=True)
class TcpFinding:
    """Something wrong at the TCP layer (conflicting overlap, cap reached, ...).

    ``code`` is a stable rule ID such as ``TCP-OVERLAP-CONFLICT``.
    """

    conn: int
    code: str
    detail: str
    frame: int
    ts: float


StreamEvent = StreamOpen | StreamData | StreamSkipped | StreamGap | StreamEnd | TcpFinding
