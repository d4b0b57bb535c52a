#!/usr/bin/env bash
# An editor's round trip: the editor exports into exports/, enhancer watches it and writes into
# imports/, the editor imports from there. Here the "editor" is a cp of the sample clips.
#
#   bash examples/watch_round_trip.sh [enhance options...]     e.g. --codec prores
#
# Run from the repository root (it uses samples/); it works in a fresh folder under /tmp.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/enhancer-round-trip.XXXX)
mkdir -p "$work/exports" "$work/imports"
echo "working in $work"

# 1. start watching (in the background); it takes a file once it has stood still for 1 s
python -m enhancer watch "$work/exports" -o "$work/imports" --settle 1 --interval 0.5 "$@" &
watcher=$!
trap 'kill -INT $watcher 2>/dev/null || true' EXIT

# 2. the editor exports two clips, the second written slowly (as a long export is)
cp "$here/samples/bikes.mp4" "$work/exports/"
python - "$here/samples/traffic.mp4" "$work/exports/traffic.mp4" <<'PY'
import sys, time
data = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "wb") as out:
    for k in range(0, len(data), 16384):
        out.write(data[k:k + 16384]); out.flush(); time.sleep(0.3)
PY

# 3. wait until the output folder's records say both are done (a file appears a moment before
#    its record), then stop the watcher with Ctrl-C (SIGINT)
for _ in $(seq 600); do
    python - "$work/imports" <<'PY' && break
import sys
from enhancer.batch.state import BatchState
done = {k: e.status for k, e in BatchState(sys.argv[1], read_only=True).entries.items()}
sys.exit(0 if all(done.get(n) == "done" for n in ("bikes.mp4", "traffic.mp4")) else 1)
PY
    sleep 0.5
done
sleep 1  # the watcher finishes its batch (the summary lines) and goes back to waiting
kill -INT $watcher
wait $watcher
trap - EXIT
ls -l "$work/imports"
