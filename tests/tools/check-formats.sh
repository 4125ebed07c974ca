#!/bin/sh
# check-formats.sh -- runs the sample profile (format-sample) through the
# folded and speedscope encoders, with both weights, and checks each output
# with python3's json module (speedscope) and speedscope's own importer.
#   usage: tests/tools/check-formats.sh path/to/format-sample
sample=$1
dir=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
pass=0
fail=0

check() {
	if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); status=1; fi
}

for w in samples time; do
	total=$("$sample" total $w)
	"$sample" speedscope $w > "$tmp/sample-$w.json" || status=1
	"$sample" folded $w > "$tmp/sample-$w.folded" || status=1
	check python3 -c 'import json, sys; json.load(open(sys.argv[1], encoding="utf-8"))' \
	    "$tmp/sample-$w.json"
	check sh "$dir/speedscope-check.sh" "$tmp/sample-$w.json" "$total" \
	    main 'handle "req" \ now' "café_€_😀" "$(printf 'semi;colon\ttab\nnewline\001')" \
	    'bad���utf8' recurse
	check sh "$dir/speedscope-check.sh" "$tmp/sample-$w.folded" "$total" \
	    'main (app.py:1)' 'handle "req" \ now (C:\srv\app.py:2)' \
	    'semi:colon tab newline  (x:y.py:4)' 'recurse (deep.py:6)'
done
echo "check-formats: $pass passed, $fail failed"
exit $status
