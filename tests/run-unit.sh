#!/bin/sh
# run-unit.sh -- runs every Criterion suite given; fails if any fails.
# Criterion forks one process per test, so a crash is a failed test.
status=0
export LSAN_OPTIONS="suppressions=$(dirname "$0")/unit/lsan.supp:print_suppressions=0"
for t in "$@"; do
	echo "== $t"
	"$t" --jobs 2 || status=1
done
exit $status
