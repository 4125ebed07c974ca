#!/bin/sh
# run-e2e.sh -- builds the agent for every interpreter (tests/pythons.sh) and
# runs the end-to-end suite with each; daemon-only tests run once.
# Ends with 'N passed, N failed' over all interpreters.  The tests of the
# tree's interpreters (sid-*, tests/pytree.sh) are driven from the host's
# first interpreter.
# PROFD_E2E_FILTER=SUBSTR runs only matching tests.
set -u
cd "$(dirname "$0")/.."
san=""; suffix=""
if [ "${SANITIZE:-}" = 1 ]; then san="--sanitize"; suffix="-san"; fi
list=$(sh tests/pythons.sh)
if [ -z "$list" ]; then
	echo "run-e2e: no Python 3.9+ interpreter with headers found" >&2
	exit 1
fi
driver=$(echo "$list" | grep -v '^sid-' | head -n1 | cut -d' ' -f2)
[ -n "$driver" ] || driver=$(command -v python3)
passed=0; failed=0; once="--once"
out=$(mktemp)
echo "$list" | while read -r label py; do
	dir="build/e2e$suffix/$label"
	echo "== agent for $label ($py)"
	case $label in
	sid-*)	run=$driver ;;
	*)	run=$py ;;
	esac
	if ! make --no-print-directory -s agent PYTHON="$py" AGENTDIR="$dir" \
	    SANITIZE="${SANITIZE:-}" >"$out.build" 2>&1; then
		cat "$out.build"
		echo "FAIL build [$label]"
		echo "0 1" >>"$out"
		continue
	fi
	"$run" tests/e2e/run.py --python "$py" --agent-dir "$dir" --label "$label" \
	    $once $san -k "${PROFD_E2E_FILTER:-}" | tee "$out.run"
	tail -n1 "$out.run" | awk '{print $1, $3}' >>"$out"
	once=""
done
passed=$(awk '{p+=$1} END {print p+0}' "$out")
failed=$(awk '{f+=$2} END {print f+0}' "$out")
rm -f "$out" "$out.build" "$out.run"
echo "e2e: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
