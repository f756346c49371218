#!/usr/bin/env python3
"""Regenerate the bundled sample captures of real DICOM peers (DCMTK and pynetdicom).

    sudo python samples/make_samples.py                    # all scenarios into samples/
    sudo python samples/make_samples.py --out /tmp/s --only dcmtk-move dcmtk-echo
    python samples/make_samples.py --list

Needs root (a private network namespace per scenario, tcpdump), iproute2, tcpdump, the Debian
DCMTK tools in /usr/bin, pydicom and pynetdicom.  All traffic stays on 127.0.0.1 inside the
namespace.  For each scenario it writes <name>.pcap and <name>.peerlog.json (see README.md).

The scenario code lives in tests/peers/ (one implementation, shared with the tests).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from peers.runner import PeersUnavailable, generate, scenario_names  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output directory (default: samples/)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="only these scenarios")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = ap.parse_args(argv)

    names = scenario_names()
    if args.list:
        from peers.scenarios import SCENARIOS

        for n in names:
            print(f"{n:28s} {SCENARIOS[n].description}")
        return 0
    if args.only:
        unknown = [n for n in args.only if n not in names]
        if unknown:
            ap.error(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(names)}")
        names = [n for n in names if n in args.only]

    t0 = time.monotonic()
    failed = []
    for name in names:
        t = time.monotonic()
        try:
            pcap, log = generate(name, args.out)
        except PeersUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        d = json.loads(log.read_text())
        s, c = d["summary"], d["capture"]
        finals = " ".join(
            sorted(
                {
                    f["status_hex"]
                    for f in s["final_responses"]
                    if f["command"] in ("C-FIND-RSP", "C-MOVE-RSP")
                }
            )
        )
        print(
            f"{name:28s} {time.monotonic() - t:5.1f}s  {c['size']:>8d} B  "
            f"{c['packets']:5d} pkts  {s['associations']:2d} assoc  {s['messages']:3d} msgs  "
            f"max seg {c['max_tcp_payload']}  final Q/R statuses: {finals or '-'}"
        )
        for note in d["notes"]:
            print(f"    note: {note}")
        if d.get("cross_check") and d["cross_check"]["result"] != "ok":
            print(f"    cross-check: {d['cross_check']}")
    print(f"total {time.monotonic() - t0:.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
