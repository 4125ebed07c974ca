#!/bin/sh
# run-unit.sh -- runs every Criterion suite given; fails if any fails.
# Criterion forks one process per test, so a crash is a failed test.
status=0
for t in "$@"; do
	echo "== $t"
	"$t" --jobs 2 || status=1
done
exit $status
