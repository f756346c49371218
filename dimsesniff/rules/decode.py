"""Decode rules: what the dissectors report about bytes that are not valid traffic.

These are findings of the TCP layer, the upper-layer parser (PS3.8 §9.3) and
the DIMSE assembler (PS3.8 Annex E, PS3.7 §6.3).  They share the report
format and the ``--select`` / ``--ignore`` options with every other rule.
"""

from __future__ import annotations

from .base import Rule, Severity

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO  # noqa: E741

DECODE_RULES = (
    Rule(
        "TCP-GAP",
        W,
        "Bytes missing from the capture (lost segment)",
        "RFC 9293 §3.4 (sequence numbers)",
        "The capture lost bytes the peers exchanged; the message in progress is incomplete "
        "and the parser resynchronises on the next PDU header.",
    ),
    Rule(
        "TCP-OVERLAP-CONFLICT",
        W,
        "Retransmitted bytes differ from the first copy",
        "RFC 9293 §3.10.7.4",
        "Overlapping segments carry different bytes: an evasion attempt or a broken stack. "
        "The first copy is kept.",
    ),
    Rule(
        "TCP-OUT-OF-WINDOW",
        W,
        "Segment far beyond the expected sequence number; ignored",
        "RFC 9293 §3.10.7.4 (segment acceptability)",
        "A segment 2**30 bytes or more ahead of the stream cannot belong to it (a junk or "
        "spoofed packet); accepting it would declare a gigabyte-sized hole. Reported once "
        "per direction.",
    ),
    Rule(
        "TCP-FLOW-CAP",
        W,
        "Too many simultaneous TCP connections; the oldest was dropped",
        "dimsesniff resource limit",
    ),
    Rule(
        "UL-PDU-TYPE",
        E,
        "PDU type is not 01H-07H",
        "PS3.8 §9.3.1, Table 9-10",
        "Garbage where a PDU header should be; the parser resynchronises.",
    ),
    Rule(
        "UL-PDU-LEN-FIXED",
        E,
        "A-ASSOCIATE-RJ, A-RELEASE or A-ABORT with PDU-length not 4",
        "PS3.8 Tables 9-21, 9-24, 9-25, 9-26",
    ),
    Rule("UL-PDU-LENGTH", E, "PDU shorter than its fixed fields", "PS3.8 Tables 9-11, 9-17"),
    Rule(
        "UL-PDU-TOO-LONG",
        E,
        "PDU longer than the decoder accepts (1 MiB for non-data PDUs, 64 MiB for P-DATA-TF)",
        "PS3.8 §9.3.2; dimsesniff resource limit",
    ),
    Rule("UL-PDU-TRUNCATED", W, "Stream ended inside a PDU", "PS3.8 §9.3.1"),
    Rule("UL-ITEM-LENGTH", E, "Item length runs past its parent", "PS3.8 §9.3.2, §9.3.3, Annex D"),
    Rule("UL-PDV-FRAMING", E, "PDV items do not tile the P-DATA-TF PDU", "PS3.8 Tables 9-22, 9-23"),
    Rule(
        "UL-RESYNC",
        I,
        "Bytes skipped to find the next PDU header",
        "PS3.8 §9.3.1",
        "Reported after a gap, after garbage, and at the start of a capture that began "
        "mid-association.",
    ),
    Rule(
        "UL-MCH-ORDER",
        E,
        "Command and data fragments out of order",
        "PS3.7 §6.3; PS3.8 Annex E.1/E.2",
    ),
    Rule(
        "UL-PDV-CTX-SWITCH",
        E,
        "Fragments of one message on different presentation contexts",
        "PS3.8 Annex E.1",
    ),
    Rule(
        "DIMSE-DATA-WITHOUT-COMMAND",
        W,
        "Data set fragment with no command set before it",
        "PS3.7 §6.3; PS3.8 Annex E.2",
        "Expected at the start of a capture that began mid-message.",
    ),
    Rule(
        "DIMSE-CMD-TOO-LONG",
        E,
        "Command set longer than the decoder accepts",
        "PS3.7 §6.3; dimsesniff resource limit",
    ),
    Rule(
        "DIMSE-CMD-DECODE", E, "Command set is not valid Implicit VR Little Endian", "PS3.7 §6.3.1"
    ),
    Rule(
        "DIMSE-CMD-IVRLE",
        E,
        "Command set not encoded in Implicit VR Little Endian",
        "PS3.7 §6.3.1",
        "A command set is always Implicit VR Little Endian, whatever transfer syntax was "
        "negotiated (rules.md D13); one that parses only as Explicit VR or Big Endian was "
        "written in the negotiated syntax, and strict peers cannot read it.",
    ),
    Rule(
        "DIMSE-DS-TOO-LONG",
        W,
        "Identifier longer than the decoder keeps; not decoded",
        "dimsesniff resource limit",
    ),
    Rule(
        "DIMSE-DS-DECODE",
        E,
        "Identifier cannot be parsed in the transfer syntax of its presentation context",
        "PS3.8 §7.6.1",
    ),
)
