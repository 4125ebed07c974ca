#!/bin/sh
# demo.sh -- the showcase behind `make demo`: a private profd, a pre-fork
# style parent with 4 real worker processes under the agent, profiling
# switched on from profctl, the merged profile printed, and a flame graph
# (SVG) and a pprof file of the run written to build/demo/.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ver=$($PYTHON -c 'import sys; print("%d.%d" % sys.version_info[:2])')
agent=$(make -s --no-print-directory agent-dir PYTHON="$PYTHON")
rt=$(mktemp -d /tmp/profd-demo.XXXXXX)
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$rt"' EXIT INT TERM

echo "== profd -r $rt"
bin/profd -r "$rt" 2>"$rt/profd.log" &
daemon=$!
i=0
while [ ! -S "$rt/control.sock" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$rt/profd.log"; exit 1; }
	sleep 0.1
done

echo "== profctl start --rate 200"
bin/profctl -r "$rt" start --rate 200

echo "== python -m profagent run -- $PYTHON tests/workloads/fleet.py --workers 4"
echo "   (leaf_a and leaf_b do the same work, 70% and 30% of it)"
PYTHONPATH="$agent" PROFD_RUNTIME_DIR="$rt" \
    $PYTHON -m profagent run --service demo -- \
    $PYTHON tests/workloads/fleet.py --workers 4 --seconds 5 >"$rt/fleet.log" 2>&1

echo "== profctl status"
bin/profctl -r "$rt" status
echo
echo "== profctl show --top 12"
bin/profctl -r "$rt" show --top 12
echo
echo "== profctl show --format json: leaf_a vs leaf_b (true split 70:30)"
bin/profctl -r "$rt" show --top 0 --format json | $PYTHON -c '
import json, sys
fn = {f["function"]: f["self"] for f in json.load(sys.stdin)["functions"]}
a, b = fn.get("leaf_a", 0), fn.get("leaf_b", 0)
print("   leaf_a:leaf_b = %.1f:%.1f over %d samples" % (100.0 * a / max(1, a + b), 100.0 * b / max(1, a + b), a + b))'
echo
echo "== profctl show --format folded: the heaviest stack, last 3 frames"
bin/profctl -r "$rt" show --format folded | sort -k2 -t"$(printf '\t')" |
    awk '{ n = $NF; if (n > max) { max = n; line = $0 } } END { print line }' |
    awk -F';' '{ printf "   ...;%s;%s;%s\n", $(NF-2), $(NF-1), $NF }'
echo
echo "== profctl ps: the master and its workers"
bin/profctl -r "$rt" ps
echo
echo "== profctl show --tree --depth 4"
bin/profctl -r "$rt" show --tree --depth 4
echo
out=build/demo
mkdir -p "$out"
echo "== profctl flamegraph -o $out/flamegraph.svg"
bin/profctl -r "$rt" flamegraph -o "$out/flamegraph.svg"
echo "== profctl show --format pprof -o $out/profile.pb.gz"
bin/profctl -r "$rt" show --format pprof -o "$out/profile.pb.gz"
bin/profctl -r "$rt" show --format speedscope -o "$out/profile.speedscope.json"
echo
echo "   flame graph: $(pwd)/$out/flamegraph.svg (open it in a browser)"
echo "   pprof:       $(pwd)/$out/profile.pb.gz (go tool pprof -top $out/profile.pb.gz)"
echo "   speedscope:  $(pwd)/$out/profile.speedscope.json (open at speedscope.app)"
echo
echo "== profctl stop"
bin/profctl -r "$rt" stop
