#!/bin/sh
# run.sh -- `make bench`: the benchmark table (bench/bench.py).  Extra
# arguments: BENCH_ARGS="--pythons python3.12 --pairs 5" make bench.
cd "$(dirname "$0")/.."
exec python3 bench/bench.py $BENCH_ARGS
