#!/bin/sh
# speedscope-check.sh -- checks that a profile file loads in speedscope's own
# app (headless Chromium) with the expected total weight and frame names.
# Installs the npm packages of tests/tools on first use; needs node, npm and
# Debian's chromium.
#   usage: tests/tools/speedscope-check.sh FILE EXPECTED_TOTAL_WEIGHT [FRAME_NAME...]
set -e
dir=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 2 ]; then
	echo "usage: $0 FILE EXPECTED_TOTAL_WEIGHT [FRAME_NAME...]" >&2
	exit 1
fi
for t in node npm "${CHROMIUM:-/usr/bin/chromium}"; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "speedscope-check: FAIL: $t not found (apt-get install nodejs npm chromium)" >&2
		exit 1
	fi
done
if [ ! -d "$dir/node_modules/speedscope" ] ||
    [ ! -d "$dir/node_modules/playwright-core" ]; then
	(cd "$dir" && npm ci --no-audit --no-fund --silent) || {
		echo "speedscope-check: FAIL: npm ci in $dir failed" >&2
		exit 1
	}
fi
exec node "$dir/speedscope-check.js" "$@"
