#!/usr/bin/env python3
"""Check sample captures against their peer logs with tshark (a second, independent decoder).

    python samples/check_with_tshark.py [DIR] [NAME...]

For every association of `<name>.peerlog.json`, the sequence of DIMSE commands (command, Message ID
or Message ID Being Responded To, Status) that tshark decodes in each direction of the matching TCP
connection must equal the peer log's.  Also checks that no TCP payload exceeds 1448 bytes.
Exit status 1 on any difference.  Needs tshark (4.0 was used); no root.

Importable (tests/test_tshark.py does): `tshark_messages(pcap, ports)` returns every command set
tshark decodes, with its frames, from `tshark -T pdml`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


# Patterns for the `show` text of a DICOM tag, the same line tshark prints with -V, e.g.
# "(0000,0900)          2 Status                                        Success (0x00)".
COMMAND_FIELD = re.compile(r"\(0000,0100\)\s+\d+ Command Field\s+(\S+)")
MESSAGE_ID = re.compile(r"\(0000,01[12]0\)\s+\d+ Message ID(?: Being Responded To)?\s+(\d+)")
STATUS = re.compile(r"\(0000,0900\)\s+\d+ Status\s+.*\((0x[0-9a-fA-F]+)\)")


@dataclass(frozen=True, slots=True)
class TsharkMessage:
    """One DIMSE command set as tshark decodes it."""

    frame: int  # the frame tshark shows it in (where the command set completes)
    first_frame: int  # the earliest frame holding bytes of its PDU (TCP / PDV reassembly)
    src_port: int
    dst_port: int
    command: str  # "C-FIND-RSP"
    message_id: int | None  # Message ID, or Message ID Being Responded To for responses
    status: int | None


def tshark_args(pcap: Path, ports: Iterable[int], *rest: str) -> list[str]:
    """tshark on `pcap` with the DICOM dissector forced on `ports` (104 is registered)."""
    args = ["tshark", "-r", str(pcap), "-o", "dicom.tag_tree:TRUE"]
    for p in sorted(set(ports)):
        if p != 104:
            args += ["-d", f"tcp.port=={p},dicom"]
    return args + list(rest)


def _packet_messages(packet: ET.Element) -> list[TsharkMessage]:
    frame = src = dst = 0
    segments: list[int] = []  # frames of a TCP-reassembled PDU ending in this packet
    out: list[TsharkMessage] = []
    for proto in packet.findall("proto"):
        name = proto.get("name")
        if name == "geninfo":
            for f in proto.iter("field"):
                if f.get("name") == "num":
                    frame = int(f.get("show"))
            continue
        if name != "dicom":
            for f in proto.iter("field"):
                fname = f.get("name")
                if fname == "tcp.srcport":
                    src = int(f.get("show"))
                elif fname == "tcp.dstport":
                    dst = int(f.get("show"))
                elif fname == "tcp.segment":
                    segments.append(int(f.get("show")))
            continue
        # Only the first PDU of a packet can have begun in earlier TCP segments.
        pdu_frames, segments = segments, []
        fragments: list[int] = []  # frames of the PDV fragments of a PDV reassembled here
        cur: list | None = None
        for f in proto.iter("field"):
            fname = f.get("name")
            if fname == "dicom.pdv.len":
                fragments = []
                continue
            if fname == "dicom.pdv.fragment":
                fragments.append(int(f.get("show")))
                continue
            show = f.get("show") or ""
            if not show.startswith("("):
                continue
            if m := COMMAND_FIELD.match(show):
                if cur is not None:
                    out.append(TsharkMessage(*cur))
                first = min([frame, *pdu_frames, *fragments])
                cur = [frame, first, src, dst, m.group(1), None, None]
            elif cur is not None and (m := MESSAGE_ID.match(show)):
                cur[5] = int(m.group(1))
            elif cur is not None and (m := STATUS.match(show)):
                cur[6] = int(m.group(1), 16)
        if cur is not None:
            out.append(TsharkMessage(*cur))
    return out


def tshark_messages(pcap: Path, ports: Iterable[int]) -> list[TsharkMessage]:
    """Every DIMSE command set tshark decodes in `pcap` (DICOM forced on `ports`), in order."""
    # Only packets holding a Command Field: the rest (pixel data) would be most of the PDML.
    args = tshark_args(pcap, ports, "-T", "pdml", "-Y", "dicom.tag == 0x00000100")
    out: list[TsharkMessage] = []
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        for _event, elem in ET.iterparse(proc.stdout, events=("end",)):
            if elem.tag == "packet":
                out.extend(_packet_messages(elem))
                elem.clear()
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, args)
    return out


def max_tcp_payload(pcap: Path) -> int:
    lens = subprocess.run(
        ["tshark", "-r", str(pcap), "-T", "fields", "-e", "tcp.len"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return max((int(x) for x in lens if x), default=0)


def tshark_sequences(pcap: Path, ports: set[int]) -> tuple[dict, int]:
    """Per (source port, destination port): the list of (command, Message ID, Status)."""
    seqs: dict[tuple[int, int], list] = defaultdict(list)
    for m in tshark_messages(pcap, ports):
        seqs[(m.src_port, m.dst_port)].append((m.command, m.message_id, m.status))
    return seqs, max_tcp_payload(pcap)


def check(directory: Path, name: str) -> bool:
    log = json.loads((directory / f"{name}.peerlog.json").read_text())
    ports = {a["server_port"] for a in log["associations"]}
    seqs, max_len = tshark_sequences(directory / log["pcap"], ports)
    ok = max_len <= 1448
    if not ok:
        print(f"  {name}: TCP payload of {max_len} bytes")
    for a in log["associations"]:
        msgs = [m for m in log["messages"] if m["assoc"] == a["index"]]
        for s, d, role in (
            (a["client_port"], a["server_port"], "SCU"),
            (a["server_port"], a["client_port"], "SCP"),
        ):
            mine = [
                (
                    m["command"],
                    m["message_id"]
                    if m["message_id"] is not None
                    else m["message_id_being_responded_to"],
                    m["status"],
                )
                for m in msgs
                if m["sender"] == role
            ]
            theirs = seqs.get((s, d), [])
            if mine != theirs:
                ok = False
                print(
                    f"  {name} assoc {a['index']} {role}->:\n    peerlog {mine}\n"
                    f"    tshark  {theirs}"
                )
    n = sum(len(v) for v in seqs.values())
    print(
        f"{name}: {'ok' if ok else 'DIFFERS'} ({len(log['associations'])} associations, "
        f"{len(log['messages'])} messages in peer log, {n} decoded by tshark, "
        f"max TCP payload {max_len})"
    )
    return ok


def main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else HERE
    names = argv[1:] or sorted(
        p.name.removesuffix(".peerlog.json") for p in directory.glob("*.peerlog.json")
    )
    results = [check(directory, n) for n in names]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
