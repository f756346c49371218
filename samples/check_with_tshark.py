#!/usr/bin/env python3
"""Check sample captures against their peer logs with tshark (a second, independent decoder).

    python samples/check_with_tshark.py [DIR] [NAME...]

For every association of `<name>.peerlog.json`, the sequence of DIMSE commands (command, Message ID
or Message ID Being Responded To, Status) that tshark decodes in each direction of the matching TCP
connection must equal the peer log's.  Also checks that no TCP payload exceeds 1448 bytes.
Exit status 1 on any difference.  Needs tshark (4.0 was used); no root.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def tshark_sequences(pcap: Path, ports: set[int]) -> tuple[dict, int]:
    args = ["tshark", "-r", str(pcap), "-o", "dicom.tag_tree:TRUE", "-V", "-Y", "dicom"]
    for p in sorted(ports):
        if p != 104:
            args[3:3] = ["-d", f"tcp.port=={p},dicom"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    seqs: dict[tuple[int, int], list] = defaultdict(list)
    src = dst = None
    cur: list | None = None

    def flush() -> None:
        nonlocal cur
        if cur is not None:
            seqs[(src, dst)].append(tuple(cur))
            cur = None

    for line in out.splitlines():
        if line.startswith("Frame "):
            flush()
        m = re.match(r"Transmission Control Protocol, Src Port: (\d+), Dst Port: (\d+)", line)
        if m:
            flush()
            src, dst = int(m.group(1)), int(m.group(2))
        m = re.search(r"\(0000,0100\)\s+\d+ Command Field\s+(\S+)", line)
        if m:
            flush()
            cur = [m.group(1), None, None]
        m = re.search(r"\(0000,01[12]0\)\s+\d+ Message ID(?: Being Responded To)?\s+(\d+)", line)
        if m and cur is not None:
            cur[1] = int(m.group(1))
        m = re.search(r"\(0000,0900\)\s+\d+ Status\s+.*\((0x[0-9a-fA-F]+)\)", line)
        if m and cur is not None:
            cur[2] = int(m.group(1), 16)
    flush()
    lens = subprocess.run(
        ["tshark", "-r", str(pcap), "-T", "fields", "-e", "tcp.len"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return seqs, max((int(x) for x in lens if x), default=0)


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
