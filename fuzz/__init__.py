"""Hostile-input fuzzing of the whole pipeline (capture file in, rows out).

``mutators`` makes inputs (every input is a pcap file, as bytes): mutations of
the real-peer captures in ``samples/`` and of hand-built conversations whose
PDUs, items, PDVs, command sets and identifiers are kept as trees of
length-prefixed units, so that one length field can be set to 0, 1, an odd
value, its parent's room + 1 or 0xFFFFFFFF and everything around it stays
well formed.  ``run`` checks the contract on each input (no exception, time
proportional to size, bounded memory, rows that serialise) and is also the
long-run script: ``python -m fuzz.run --seconds 600 --seed 1 --save-dir tests/fuzz_cases/``.
"""
