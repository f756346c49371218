#!/usr/bin/env bash
# Set up everything the test suite needs, then run it (lint + tests).
# Usage: bash tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in tshark tcpdump dcmqrscp findscu movescu storescp ip chromium; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q tshark tcpdump dcmtk iproute2 chromium >/dev/null
  else
    echo "missing tools: ${need[*]} (install: apt-get install tshark tcpdump dcmtk iproute2 chromium)" >&2
  fi
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
python3 -m ruff check dimsesniff dissectors tests benchmarks samples fuzz
# In CI the live-capture soak test runs too, bounded to 40 s (set DIMSESNIFF_SOAK=180 for a
# longer one by hand); elsewhere it runs only when asked for.
if [ "${CI:-}" = "true" ]; then
  export DIMSESNIFF_SOAK="${DIMSESNIFF_SOAK:-40}"
fi
python3 -m pytest -q "$@"
