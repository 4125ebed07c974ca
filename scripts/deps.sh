#!/bin/sh
# deps.sh -- installs the Debian packages profd needs to build and test, if
# any is missing (the test ones: golang-go for go tool pprof, chromium,
# nodejs and npm for speedscope's app and the flame graph in a browser,
# libxml2-utils for xmllint, groff-base and man-db to render the man pages,
# systemd-container and mmdebstrap (debootstrap as a fallback) for
# `make test-boot`, clang and
# libclang-rt-dev (libFuzzer) for `make fuzz`, strace for the durability
# test and the capture bench).  Needs root (or sudo) only
# when something is missing.
set -e
PKGS="gcc make pkg-config libevent-dev libmsgpack-dev libcriterion-dev
libsystemd-dev uthash-dev python3 python3-dev systemd libsqlite3-dev
libprotobuf-c-dev protobuf-c-compiler zlib1g-dev
golang-go chromium nodejs libxml2-utils groff-base man-db
systemd-container mmdebstrap debootstrap clang libclang-rt-dev strace"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
# npm may come with nodejs (NodeSource) or as Debian's own package.
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing"
if [ "$(id -u)" = 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "deps: missing packages:$missing; install them as root:" >&2
	echo "  apt-get install -y$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq $missing >/dev/null
