"""tshark's DICOM dissector as a second opinion, through samples/check_with_tshark.py.

That script owns the PDML parsing (``tshark_messages``); this module only loads
it (samples/ is not a package) and pairs its messages with dimsesniff's.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from tests.samplecheck.peerlog import SAMPLES, cell, hex_cell, port


def checker() -> ModuleType:
    """samples/check_with_tshark.py, imported once."""
    name = "check_with_tshark"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SAMPLES / "check_with_tshark.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[name]


def server_ports(pcap: Path) -> set[int]:
    """Destination ports of the connection-opening SYNs in the capture."""
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0"]
        + ["-T", "fields", "-e", "tcp.dstport"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {int(p) for p in out.split()}


def ours(messages) -> list[tuple]:
    """messages.csv rows as (first, last, src port, dst port, command, id, status)."""
    out = []
    for r in messages.itertuples():
        client, server = port(r.client), port(r.server)
        src, dst = (client, server) if r.direction == "client->server" else (server, client)
        mid = cell(r.message_id)
        out.append(
            (
                cell(r.first_frame),
                cell(r.last_frame),
                src,
                dst,
                r.command,
                mid if mid is not None else cell(r.message_id_responded_to),
                hex_cell(r.status),
            )
        )
    return out


def unmatched(tshark_messages: list, decoded: list[tuple], *, same_start: bool = True) -> list:
    """tshark messages with no counterpart among ours, pairing in order per direction.

    A counterpart has the same ports, command, Message ID (or Message ID Being
    Responded To) and Status, starts in the same frame, and its frame range
    holds the frame tshark shows the command set in.

    tshark starts a message at its P-DATA-TF PDU header, dimsesniff at its PDV
    header (dissectors/ul_pdu.py), 6 bytes later: in re-cut captures those can be
    different frames, and ``same_start=False`` only asks that ours starts
    between tshark's first frame and the frame tshark shows it in.
    """
    lanes: dict[tuple[int, int], list[tuple]] = {}
    for d in decoded:
        lanes.setdefault((d[2], d[3]), []).append(d)
    cursor = dict.fromkeys(lanes, 0)
    missing = []
    for t in tshark_messages:
        lane = lanes.get((t.src_port, t.dst_port), [])
        i = cursor.get((t.src_port, t.dst_port), 0)
        while i < len(lane) and not _same(t, lane[i], same_start):
            i += 1
        if i == len(lane):
            missing.append(t)
            continue
        cursor[(t.src_port, t.dst_port)] = i + 1
    return missing


def _same(t, d: tuple, same_start: bool) -> bool:
    first, last, _src, _dst, command, mid, status = d
    starts = first == t.first_frame if same_start else t.first_frame <= first <= t.frame
    return (command, mid, status) == (t.command, t.message_id, t.status) and (
        starts and first <= t.frame <= last
    )
