#!/bin/sh
# run.sh -- `make bench`: the timer wake-up floor of this machine, then the
# benchmark table (bench/bench.py).  Extra arguments go to bench.py:
# BENCH_ARGS="--pythons python3.12 --pairs 5" make bench.
set -e
cd "$(dirname "$0")/.."
mkdir -p build/bench
cc -O2 -Wall -Wextra -o build/bench/wakeup bench/wakeup.c
build/bench/wakeup
exec python3 bench/bench.py $BENCH_ARGS
