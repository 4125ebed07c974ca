#!/bin/sh
# run.sh -- `make bench`: the timer wake-up floor of this machine, the
# agent's benchmark table (bench/bench.py), the floor of the direct reader's
# copy (bench/copyfloor.c) and the capture cost table against a baseline
# build (bench/capture.py), then the daemon's
# (bench/daemon.py, fake agents from build/bench/loadgen) and the fleet week
# at full density (bench/week.py, written by build/bench/week).  Extra
# arguments:
# BENCH_ARGS="--pythons python3.12 --pairs 5" for bench.py,
# BENCH_CAPTURE_ARGS="--rounds 1 --no-callgrind" for capture.py,
# BENCH_DAEMON_ARGS="--quick" or "--only a,e" for daemon.py,
# BENCH_TACHYON_ARGS="--rounds 1" for tachyon.py (profd beside CPython
# 3.15's own sampler, when tests/pytree.sh's tree has 3.15);
# BENCH_WEEK_ARGS="--days 1" for week.py (the fleet week at full density,
# about 20 minutes for 7 days);
# BENCH_ONLY=agent, capture, tachyon, daemon or week runs one part.
set -e
cd "$(dirname "$0")/.."
mkdir -p build/bench
if [ "${BENCH_ONLY:-agent}" = agent ]; then
	cc -O2 -Wall -Wextra -o build/bench/wakeup bench/wakeup.c
	build/bench/wakeup
	python3 bench/bench.py $BENCH_ARGS
fi
if [ "${BENCH_ONLY:-capture}" = capture ]; then
	cc -O2 -Wall -Wextra -o build/bench/wakeup bench/wakeup.c
	cc -O2 -Wall -Wextra -o build/bench/copyfloor bench/copyfloor.c
	build/bench/copyfloor
	python3 bench/capture.py $BENCH_CAPTURE_ARGS
fi
if [ "${BENCH_ONLY:-tachyon}" = tachyon ]; then
	python3 bench/tachyon.py $BENCH_TACHYON_ARGS
fi
if [ "${BENCH_ONLY:-daemon}" = daemon ]; then
	make --no-print-directory -s build/bench/loadgen
	python3 bench/daemon.py $BENCH_DAEMON_ARGS
fi
if [ "${BENCH_ONLY:-week}" = week ]; then
	make --no-print-directory -s build/bench/week
	python3 bench/week.py $BENCH_WEEK_ARGS
fi
