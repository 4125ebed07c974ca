#!/bin/sh
# pprof-check.sh FILE EXPECTED_TOTAL_SAMPLES [FUNC...] -- reads a pprof file
# with the real tool (`go tool pprof`, or $PPROF) and checks that it parses,
# that both sample types read (index 0 samples, index 1 time), that the
# samples total EXPECTED_TOTAL_SAMPLES, and that every FUNC is a function
# of the profile.  Exit 0, or 1 with one line per failure.  Needs golang-go.
usage="usage: pprof-check.sh FILE EXPECTED_TOTAL_SAMPLES [FUNC...]"
[ $# -ge 2 ] || { echo "$usage" >&2; exit 1; }
file=$1
want=$2
shift 2
PPROF=${PPROF:-go tool pprof}
case $want in
''|*[!0-9]*) echo "$usage" >&2; exit 1 ;;
esac
[ -r "$file" ] || { echo "pprof-check: cannot read $file" >&2; exit 1; }
command -v "${PPROF%% *}" >/dev/null 2>&1 || {
	echo "pprof-check: ${PPROF%% *} not found (install golang-go)" >&2
	exit 1
}

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
status=0
fail() {
	echo "pprof-check: $file: $*" >&2
	status=1
}

# Every node, however small.
flags="-top -nodefraction=0 -nodecount=1000000"
for i in 0 1; do
	if ! $PPROF $flags -sample_index=$i "$file" >"$tmp/top$i" \
	    2>"$tmp/err$i"; then
		fail "pprof -sample_index=$i failed:" \
		    "$(head -n 2 "$tmp/err$i" | tr "\n" " ")"
	fi
done
[ $status = 0 ] || exit 1

# "Showing nodes accounting for X, P% of TOTAL total"
total() {
	sed -n 's/^Showing nodes accounting for .* of \(.*\) total$/\1/p' "$1"
}
got=$(total "$tmp/top0")
if [ "$want" = 0 ]; then
	# pprof prints no node table for an empty profile.
	[ -z "$got" ] || [ "$got" = 0 ] || fail "total samples $got, want 0"
elif [ "$got" != "$want" ]; then
	fail "total samples ${got:-missing}, want $want"
fi
grep -q '^Type: samples$' "$tmp/top0" ||
	fail "sample index 0 is not 'samples'"
grep -Eq '^Type: (wall|cpu)$' "$tmp/top1" ||
	fail "sample index 1 is not 'wall' or 'cpu'"
if [ "$want" != 0 ] && [ -z "$(total "$tmp/top1")" ]; then
	fail "no time total at sample index 1"
fi

# Node rows: flat flat% sum% cum cum% name (the name may hold spaces).
awk 'f { sub(/^ *[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +/, ""); print }
    /^ *flat +flat%/ { f = 1 }' "$tmp/top0" >"$tmp/names"
for fn in "$@"; do
	grep -Fxq -- "$fn" "$tmp/names" || fail "no function '$fn'"
done

if [ $status = 0 ]; then
	echo "pprof-check: $file: ok, $want samples," \
	    "time $(total "$tmp/top1"), $(wc -l <"$tmp/names") functions"
fi
exit $status
