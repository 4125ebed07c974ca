#!/bin/sh
# pytree.sh -- Pythons this machine's Debian release does not carry (3.14,
# 3.15), from Debian's unstable suite, in a tree of their own.
#
#   pytree.sh build       makes the tree if it is missing (root; network)
#   pytree.sh list        "LABEL WRAPPER" for each of its Pythons, if built
#   pytree.sh exec CMD..  runs CMD in the tree, in the current directory
#
# The tree (PROFD_PYTREE, default /var/cache/profd/pytree) is made once by
# mmdebstrap from the mirror of /etc/apt/sources.list.d and kept between
# runs.  A command runs in it through a private mount namespace (unshare
# -m, no fork: the command keeps the caller's pid) where /proc, /dev, /sys,
# /tmp, /run and this checkout are bound in at the same paths, then chroot.
# So profd on the host and an agent in the tree share sockets, pids and
# paths.  build/pytree/bin/python3.X are wrappers that run the tree's
# python3.X this way (or at once when already inside the tree), so they
# stand in for an interpreter anywhere a path to one is taken.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
tree=${PROFD_PYTREE:-/var/cache/profd/pytree}
suite=${PROFD_PYTREE_SUITE:-sid}
versions="3.14 3.15"
bindir=$here/build/pytree/bin

mirror() {
	m=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources \
	    2>/dev/null | grep -v security | head -n1)
	[ -n "$m" ] || m=$(sed -n 's/^deb[[:space:]]\+\([^[:space:]]*\).*/\1/p' \
	    /etc/apt/sources.list 2>/dev/null | grep -v security | head -n1)
	echo "${m:-http://deb.debian.org/debian}"
}

wrappers() {
	mkdir -p "$bindir"
	for v in $versions; do
		[ -x "$tree/usr/bin/python$v" ] || continue
		cat >"$bindir/python$v" <<EOF
#!/bin/sh
# python$v of the tree at $tree (tests/pytree.sh).
exec "$here/tests/pytree.sh" exec /usr/bin/python$v "\$@"
EOF
		chmod 755 "$bindir/python$v"
	done
}

case "${1:-}" in
build)
	if [ -e "$tree/.profd-pytree" ]; then
		wrappers
		exit 0
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "pytree: SKIPPING Python $versions: making their tree needs root" >&2
		exit 0
	fi
	pkgs=""
	for v in $versions; do pkgs="$pkgs,python$v-dev,python$v-venv"; done
	echo "pytree: no tree of Python $versions at $tree: making it from $(mirror) ($suite; about a minute)"
	rm -rf --one-file-system "$tree.new"
	mkdir -p "$(dirname "$tree")"
	# The suite's Release file may be past its Valid-Until date.
	if ! mmdebstrap --quiet --variant=apt \
	    --aptopt='Acquire::Check-Valid-Until "false"' \
	    --include="${pkgs#,},gcc,make,pkg-config,libmsgpack-c-dev" \
	    "$suite" "$tree.new" "$(mirror)" >"$tree.log" 2>&1; then
		tail -n 5 "$tree.log" >&2
		echo "pytree: SKIPPING Python $versions: mmdebstrap failed (no network or no mirror?); log in $tree.log" >&2
		rm -rf --one-file-system "$tree.new"
		exit 0
	fi
	touch "$tree.new/.profd-pytree"
	rm -rf --one-file-system "$tree"
	mv "$tree.new" "$tree"
	wrappers
	;;
list)
	# Entering the tree takes root (unshare -m, chroot).
	[ -e "$tree/.profd-pytree" ] && [ "$(id -u)" = 0 ] || exit 0
	wrappers
	for v in $versions; do
		[ -x "$bindir/python$v" ] && [ -x "$tree/usr/bin/python$v" ] &&
			echo "sid-python$v $bindir/python$v"
	done
	;;
exec)
	shift
	# Already in the tree (a wrapper run by a process in it).
	if [ -e /.profd-pytree ]; then
		exec "$@"
	fi
	if [ ! -e "$tree/.profd-pytree" ]; then
		echo "pytree: no tree at $tree: run tests/pytree.sh build" >&2
		exit 127
	fi
	mkdir -p "$tree$here"
	exec unshare --mount --propagation private -- /bin/sh -c '
		t=$1; repo=$2; shift 2
		for d in proc dev sys; do mount --rbind "/$d" "$t/$d" || exit 126; done
		for d in /tmp /run "$repo"; do mount --rbind "$d" "$t$d" || exit 126; done
		# The caller'"'"'s directory, if the tree shares it (else /).
		case $PWD in /tmp|/tmp/*|/run|/run/*|"$repo"|"$repo"/*) d=$PWD ;; *) d=/ ;; esac
		exec chroot "$t" /bin/sh -c "cd \"\$0\" 2>/dev/null || cd /; exec \"\$@\"" "$d" "$@"
	' pytree "$tree" "$here" "$@"
	;;
*)
	sed -n '2,17s/^# \{0,1\}//p' "$0" >&2
	exit 2
	;;
esac
