# agent.mk -- builds profagent for one interpreter: make -f agent/agent.mk
# PYTHON=/path/to/python3.X AGENTDIR=build/python3.X.  Called by `make agent`.

PYTHON	?= python3
CC	?= cc
PYINC	:= $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
EXT	:= $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
# msgpack-c 6 renamed its pkg-config module.
MSGPACK	:= $(shell pkg-config --exists msgpack-c 2>/dev/null && echo msgpack-c || echo msgpack)
FREETHREADED := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("Py_GIL_DISABLED") or 0)')
ifeq ($(FREETHREADED),1)
$(error $(PYTHON) is a free-threaded build (python3.Xt), which profagent does not support yet: build for the GIL-enabled python3.X of the same release)
endif
CFLAGS	?= -O2 -g
CFLAGS	+= -std=gnu11 -fPIC -fvisibility=hidden -Wall -Wextra \
	   -Wno-unused-parameter -Wno-missing-field-initializers -D_GNU_SOURCE \
	   -Iproto -Iagent -I$(PYINC) -I$(PYINC)/internal \
	   $(shell pkg-config --cflags $(MSGPACK))
LIBS	:= $(shell pkg-config --libs $(MSGPACK)) -lpthread
ifeq ($(SANITIZE),1)
SAN	:= -fsanitize=address,undefined -fno-omit-frame-pointer
CFLAGS	+= $(SAN)
LDFLAGS	+= $(SAN)
endif

SRCS	:= $(wildcard agent/*.c) proto/proto.c proto/rundir.c proto/sampling.c
OBJS	:= $(SRCS:%.c=$(AGENTDIR)/obj/%.o)
PY	:= $(wildcard agent/profagent/*.py agent/profagent/_boot/*.py)
PYOUT	:= $(PY:agent/%=$(AGENTDIR)/%)
SO	:= $(AGENTDIR)/profagent/_profagent$(EXT)

all: $(SO) $(PYOUT)

$(SO): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LIBS)

$(AGENTDIR)/obj/%.o: %.c $(wildcard agent/*.h proto/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(AGENTDIR)/%.py: agent/%.py
	@mkdir -p $(dir $@)
	cp $< $@
