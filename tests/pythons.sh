#!/bin/sh
# pythons.sh -- lists the interpreters the agent is built and tested for, one
# "LABEL PATH" a line: every pyenv CPython 3.9-3.13, Debian's python3, and
# Debian sid's 3.14 and 3.15 from the tree of tests/pytree.sh (label sid-*;
# listed once `tests/pytree.sh build` made it).
# PROFD_PYTHONS="/path/a /path/b" overrides the list.
if [ -n "$PROFD_PYTHONS" ]; then
	for p in $PROFD_PYTHONS; do
		v=$("$p" -c 'import sys; print("%d.%d" % sys.version_info[:2])') ||
			continue
		case $p in
		*/build/pytree/bin/*) echo "sid-python$v $p" ;;
		*) echo "python$v $p" ;;
		esac
	done
	exit 0
fi
root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
for minor in 9 10 11 12 13; do
	for d in "$root"/versions/3.$minor.*; do
		[ -x "$d/bin/python3.$minor" ] || continue
		"$d/bin/python3.$minor" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null || continue
		echo "python3.$minor $d/bin/python3.$minor"
		break
	done
done
if [ -x /usr/bin/python3 ]; then
	v=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
	/usr/bin/python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null &&
		echo "debian-python$v /usr/bin/python3"
fi
sh "$(dirname "$0")/pytree.sh" list
