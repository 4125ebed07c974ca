# profd -- statistical profiler for fleets of Python processes.
#
#   make                  profd, profctl (bin/) and the agent for $(PYTHON)
#   make agent PYTHON=/path/to/python3.X   agent into build/python3.X-HASH/
#   make agent-dir PYTHON=...   prints that directory (for PYTHONPATH)
#   make test [SANITIZE=1]  unit + end-to-end suites on every interpreter
#   make demo             private profd + real workers + merged profile
#   make bench            benchmark table (never fails on timing)
#   make bench-capture    its capture cost part alone (bench/capture.py)
#   make install [PREFIX=/usr/local] [DESTDIR=] [PYTHON=]   and uninstall
#   make wheels [WHEELDIR=dist]  one profagent wheel per interpreter
#   make test-boot        the installed units booted under systemd-nspawn

PREFIX	?= /usr/local
BINDIR	?= $(PREFIX)/bin
SBINDIR	?= $(PREFIX)/sbin
UNITDIR	?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
MANDIR	?= $(PREFIX)/share/man
DOCDIR	?= $(PREFIX)/share/doc/profd
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
PYTHON	?= python3
DEPS	?= scripts/deps.sh
# Parallel compile jobs for `make test` and `make fuzz-ci` builds (the
# tests themselves run one at a time).
JOBS	?= $(shell nproc 2>/dev/null || echo 1)

CC	?= cc
CFLAGS	?= -O2 -g
CFLAGS	+= -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wshadow \
	   -Wstrict-prototypes -Wmissing-prototypes -D_GNU_SOURCE -Iproto
PKGS	:= libevent msgpack libsystemd
# Optional pieces add their packages, sources and rules in mk/*.mk.
-include $(sort $(wildcard mk/*.mk))
.DEFAULT_GOAL := all
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CRIT_LIBS  := $(shell pkg-config --libs criterion 2>/dev/null || echo -lcriterion)

ifeq ($(SANITIZE),1)
SAN	:= -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined
CFLAGS	+= $(SAN)
LDFLAGS	+= $(SAN)
OBJDIR	:= build/obj-san
FLAVOR	:= san
else
OBJDIR	:= build/obj
FLAVOR	:= plain
endif
# profd runs a worker thread beside its loop (daemon/worker.c).
CFLAGS	+= -pthread
LDFLAGS	+= -pthread
# bin/ holds one flavour at a time; switching SANITIZE relinks.
STAMP	:= bin/.flavor-$(FLAVOR)

PROTO_SRCS	:= proto/proto.c proto/rundir.c proto/sampling.c proto/units.c
# mk/*.mk may add generated daemon sources (under build/) to DAEMON_GEN_SRCS.
DAEMON_SRCS	:= $(wildcard daemon/*.c) $(DAEMON_GEN_SRCS)
CTL_SRCS	:= $(wildcard ctl/*.c)
AGENT_SRCS	:= $(wildcard agent/*.c)
AGENT_PY	:= $(wildcard agent/profagent/*.py agent/profagent/_boot/*.py)

PROTO_OBJS	:= $(PROTO_SRCS:%.c=$(OBJDIR)/%.o)
DAEMON_OBJS	:= $(DAEMON_SRCS:%.c=$(OBJDIR)/%.o)
CTL_OBJS	:= $(CTL_SRCS:%.c=$(OBJDIR)/%.o)

# The daemon's objects without main(), for unit tests.
DAEMON_LIB_OBJS	:= $(filter-out $(OBJDIR)/daemon/profd.o,$(DAEMON_OBJS))
CTL_LIB_OBJS	:= $(filter-out $(OBJDIR)/ctl/profctl.o,$(CTL_OBJS))

UNIT_SRCS	:= $(wildcard tests/unit/test_*.c)
UNIT_BINS	:= $(UNIT_SRCS:tests/unit/%.c=$(OBJDIR)/tests/%)

# Agent unit suites: every agent object, built for $(PYTHON) with
# agent/agent.mk's flags but visible symbols, linked with that libpython
# (never initialised by the tests); tests/unit/agent/fixture.c holds their
# table reader and wire checker.
AGENT_UNIT_SRCS	:= $(wildcard tests/unit/agent/test_*.c)
AGENT_UNIT_BINS	:= $(AGENT_UNIT_SRCS:tests/unit/agent/%.c=$(OBJDIR)/tests/agent/%)
AGENT_UNIT_OBJS	:= $(AGENT_SRCS:%.c=$(OBJDIR)/tests/agent/obj/%.o)
AGENT_UNIT_CFLAGS = -std=gnu11 -Wall -Wextra -Wno-unused-parameter \
	   -Wno-missing-field-initializers -D_GNU_SOURCE -Iproto -Iagent \
	   -I$(PYINC) -I$(PYINC)/internal
PYINC	= $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
PYLIBS	= $(shell $(PYTHON)-config --embed --ldflags)

# The agent is built per interpreter, into build/python3.X-HASH/ by default
# (agent/_build/pytag.py: HASH tells interpreters of one version apart).
PYVER	= $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
AGENTDIR ?= build/$(shell $(PYTHON) agent/_build/pytag.py 2>/dev/null)
# An interpreter of tests/pytree.sh's tree is built for inside the tree,
# with its compiler and libraries.
PYTREE	= $(shell $(PYTHON) -c 'import os; print(int(os.path.exists("/.profd-pytree")))' 2>/dev/null)
PYINNER	= $(shell $(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null)

.PHONY: all daemon ctl agent agent-dir test unit unit-bins unit-agent e2e demo bench install \
	install-agent uninstall units wheels test-boot clean deps fuzz fuzz-ci

all: daemon ctl agent

daemon: bin/profd
ctl: bin/profctl

bin/profd: $(DAEMON_OBJS) $(PROTO_OBJS) $(STAMP)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(PKG_LIBS) -lm

bin/profctl: $(CTL_OBJS) $(PROTO_OBJS) $(STAMP)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(PKG_LIBS) -lm

$(STAMP):
	@mkdir -p bin
	@rm -f bin/.flavor-*
	@touch $@

$(OBJDIR)/%.o: %.c $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -iquote daemon -iquote ctl -c -o $@ $<

agent:
	@test -n "$(PYVER)" || { echo "make agent: cannot run PYTHON=$(PYTHON)" >&2; exit 1; }
	@if [ "$(PYTREE)" = 1 ]; then \
		sh tests/pytree.sh exec $(MAKE) --no-print-directory -f agent/agent.mk \
		    PYTHON="$(PYINNER)" AGENTDIR="$(AGENTDIR)" SANITIZE="$(SANITIZE)"; \
	else \
		$(MAKE) --no-print-directory -f agent/agent.mk PYTHON="$(PYTHON)" \
		    AGENTDIR="$(AGENTDIR)" SANITIZE="$(SANITIZE)" CC="$(CC)"; \
	fi

agent-dir:
	@test -n "$(PYVER)" || { echo "make agent-dir: cannot run PYTHON=$(PYTHON)" >&2; exit 1; }
	@echo "$(abspath $(AGENTDIR))"

$(OBJDIR)/tests/test_%: tests/unit/test_%.c $(DAEMON_LIB_OBJS) $(CTL_LIB_OBJS) $(PROTO_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -iquote daemon -iquote ctl -o $@ $^ $(PKG_LIBS) $(CRIT_LIBS) $(LDFLAGS) -lm

$(OBJDIR)/tests/agent/obj/%.o: %.c $(wildcard agent/*.h proto/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(filter -O% -g -fsanitize% -fno-%,$(CFLAGS)) $(AGENT_UNIT_CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

$(OBJDIR)/tests/agent/test_%: tests/unit/agent/test_%.c tests/unit/agent/fixture.c tests/unit/agent/fixture.h $(AGENT_UNIT_OBJS) $(PROTO_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(filter -O% -g -fsanitize% -fno-%,$(CFLAGS)) $(AGENT_UNIT_CFLAGS) $(PKG_CFLAGS) -o $@ $(filter %.c %.o,$^) $(PYLIBS) $(PKG_LIBS) $(CRIT_LIBS) $(LDFLAGS) -lpthread -lm

# Kept between runs (make would delete them as intermediate).
.SECONDARY: $(AGENT_UNIT_OBJS)

unit-agent: $(AGENT_UNIT_BINS)
	@sh tests/run-unit.sh $(AGENT_UNIT_BINS)

deps:
	@sh $(DEPS)

unit-bins: $(UNIT_BINS) $(AGENT_UNIT_BINS)

unit: $(UNIT_BINS) $(AGENT_UNIT_BINS)
	@sh tests/run-unit.sh $(UNIT_BINS) $(AGENT_UNIT_BINS)

e2e: daemon ctl
	@SANITIZE="$(SANITIZE)" sh tests/run-e2e.sh

test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) daemon ctl unit-bins
	@$(MAKE) --no-print-directory unit
	@sh tests/pytree.sh build
	@$(MAKE) --no-print-directory e2e

# Root only; the first run debootstraps a Debian tree into build/boot/rootfs
# (BOOT_ROOT= to use another).  Not part of `make test`.
BOOT_ROOT ?= build/boot/rootfs
test-boot: deps
	@$(MAKE) --no-print-directory daemon ctl
	@/usr/bin/python3 tests/boot/run.py --root $(abspath $(BOOT_ROOT))

demo: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory daemon ctl
	@sh bench/run.sh

# Fuzzers (libFuzzer, clang): one per decoder, seeded from the real encoders.
FUZZ_CC		?= clang
FUZZ_SECONDS	?= 30
FUZZ_FLAGS	:= -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 \
		   -D_GNU_SOURCE -Iproto -iquote daemon $(PKG_CFLAGS)
FUZZ_CI_SECONDS	?= 20
# Every decoder of untrusted bytes: the wire format, an agent's stream, a
# control request (server-control's argument parsing and the show views),
# the store file (mk/persist.mk) and a blob of its entries, the sampling
# settings file agents read.
FUZZERS		:= build/fuzz/fuzz-proto build/fuzz/fuzz-agent-input \
		   build/fuzz/fuzz-control build/fuzz/fuzz-persist \
		   build/fuzz/fuzz-persist-codec build/fuzz/fuzz-sampling

build/fuzz/fuzz-proto: fuzz/fuzz-proto.c $(PROTO_SRCS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ $(PKG_LIBS)

build/fuzz/fuzz-sampling: fuzz/fuzz-sampling.c $(PROTO_SRCS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ $(PKG_LIBS)

build/fuzz/fuzz-persist-codec: fuzz/fuzz-persist-codec.c \
    daemon/persist-codec.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^

build/fuzz/fuzz-agent-input: fuzz/fuzz-agent-input.c \
    $(filter-out daemon/profd.c,$(DAEMON_SRCS)) $(PROTO_SRCS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ $(PKG_LIBS) -lm

build/fuzz/fuzz-control: fuzz/fuzz-control.c \
    $(filter-out daemon/profd.c,$(DAEMON_SRCS)) $(PROTO_SRCS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ $(PKG_LIBS) -lm

build/fuzz/seeds: fuzz/seeds.c $(PROTO_SRCS)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE -Iproto $(PKG_CFLAGS) -o $@ $^ $(PKG_LIBS)

# Each fuzzer for FUZZ_SECONDS from its corpus: fuzz/corpus-NAME where
# there is one (store files, blobs of entries, sampling files), else what
# build/fuzz/seeds writes; prints executions per target.
fuzz: $(FUZZERS) build/fuzz/seeds
	@for f in $(FUZZERS); do \
		n=$$(basename $$f); c=build/fuzz/corpus-$$n; mkdir -p $$c; \
		if [ -d fuzz/corpus-$${n#fuzz-} ]; then \
			cp fuzz/corpus-$${n#fuzz-}/* $$c/ 2>/dev/null; d=""; \
		else \
			build/fuzz/seeds $$c; d=-dict=fuzz/proto.dict; \
		fi; \
		echo "== $$n for $(FUZZ_SECONDS) s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) $$d -print_final_stats=1 \
		    $$c >build/fuzz/$$n.log 2>&1 || \
		    { tail -n 40 build/fuzz/$$n.log; exit 1; }; \
		grep -E "stat::number_of_executed_units|stat::peak_rss" \
		    build/fuzz/$$n.log; \
	done

# What CI runs: every fuzzer for FUZZ_CI_SECONDS.
fuzz-ci:
	@$(MAKE) --no-print-directory -j$(JOBS) $(FUZZERS) build/fuzz/seeds
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_CI_SECONDS)

# The units name the installed binaries: generated from systemd/*.in.
UNITS	:= build/systemd/profd.service build/systemd/profd.socket \
	   build/systemd/profd-control.socket
units: $(UNITS)

build/systemd/%: systemd/%.in Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' $< >$@

# The agent goes into $(PYTHON)'s own site-packages (platlib), under DESTDIR:
# with PREFIX=/usr, Debian's python3 puts it in /usr/lib/python3/dist-packages
# (its deb_system scheme), not in the /usr/local one it uses by default.
PYSITEDIR = $(shell $(PYTHON) -c 'import sys, sysconfig; print(sysconfig.get_path("platlib", "deb_system") if sys.argv[1] == "/usr" and "deb_system" in sysconfig.get_scheme_names() else sysconfig.get_path("platlib"))' '$(PREFIX)')
MANPAGES := man/profd.8 man/profctl.1

install: daemon ctl units install-agent
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	    $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(DOCDIR)
	install -m 755 bin/profd $(DESTDIR)$(SBINDIR)/profd
	install -m 755 bin/profctl $(DESTDIR)$(BINDIR)/profctl
	install -m 644 $(UNITS) $(DESTDIR)$(UNITDIR)
	install -m 644 systemd/profd.sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/profd.conf
	install -m 644 systemd/profd.tmpfiles.conf $(DESTDIR)$(TMPFILESDIR)/profd.conf
	install -m 644 man/profctl.1 $(DESTDIR)$(MANDIR)/man1/profctl.1
	install -m 644 man/profd.8 $(DESTDIR)$(MANDIR)/man8/profd.8
	install -m 644 completion/profctl.bash $(DESTDIR)$(BASHCOMPDIR)/profctl
	install -m 644 systemd/profd.conf.example $(DESTDIR)$(DOCDIR)/profd.conf.example

install-agent: agent
	@test -n "$(PYSITEDIR)" || { echo "make install: cannot run PYTHON=$(PYTHON)" >&2; exit 1; }
	install -d $(DESTDIR)$(PYSITEDIR)/profagent/_boot
	install -m 644 $(AGENTDIR)/profagent/*.py $(DESTDIR)$(PYSITEDIR)/profagent
	install -m 644 $(AGENTDIR)/profagent/_boot/*.py \
	    $(DESTDIR)$(PYSITEDIR)/profagent/_boot
	install -m 755 $(AGENTDIR)/profagent/_profagent*.so \
	    $(DESTDIR)$(PYSITEDIR)/profagent

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/profd $(DESTDIR)$(BINDIR)/profctl \
	    $(UNITS:build/systemd/%=$(DESTDIR)$(UNITDIR)/%) \
	    $(DESTDIR)$(SYSUSERSDIR)/profd.conf \
	    $(DESTDIR)$(TMPFILESDIR)/profd.conf \
	    $(DESTDIR)$(MANDIR)/man1/profctl.1 $(DESTDIR)$(MANDIR)/man8/profd.8 \
	    $(DESTDIR)$(BASHCOMPDIR)/profctl \
	    $(DESTDIR)$(DOCDIR)/profd.conf.example
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null
	@if [ -n "$(PYSITEDIR)" ]; then \
		echo rm -rf $(DESTDIR)$(PYSITEDIR)/profagent; \
		rm -rf $(DESTDIR)$(PYSITEDIR)/profagent; \
	fi

# One wheel per interpreter of tests/pythons.sh (one per minor version),
# built by the agent's own PEP 517 backend, as `pip install ./agent` does.
WHEELDIR ?= dist
wheels:
	@mkdir -p $(WHEELDIR) build
	@sh tests/pythons.sh | while read -r label py; do \
		v=$${label##*python}; \
		case " $$seen " in *" $$v "*) continue;; esac; \
		seen="$$seen $$v"; \
		echo "== wheel for $$label ($$py)"; \
		"$$py" agent/_build/profagent_build.py $(WHEELDIR) 2>build/wheel.log || \
		    { cat build/wheel.log; exit 1; }; \
	done

clean:
	rm -rf bin build dist
