# persist.mk -- the store on disk (daemon/persist.c): SQLite.
PKGS	+= sqlite3

# The persist suite, linked with only what it needs (store, persist, log,
# proto), so that it builds whatever the rest of the daemon is doing.
PERSIST_UNIT_SRCS := tests/unit/persist/test_persist.c daemon/persist.c \
	daemon/store.c daemon/log.c proto/proto.c
# (OBJDIR is set after the fragments are read.)
PERSIST_OBJDIR    := build/obj$(if $(filter 1,$(SANITIZE)),-san)
PERSIST_UNIT_BIN  := $(PERSIST_OBJDIR)/tests/persist/test_persist

$(PERSIST_UNIT_BIN): $(PERSIST_UNIT_SRCS) daemon/persist.h daemon/store.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -iquote daemon -o $@ \
	    $(PERSIST_UNIT_SRCS) $(PKG_LIBS) $(CRIT_LIBS) $(LDFLAGS) -lm

.PHONY: unit-persist bench-persist fuzz-persist
unit-persist: $(PERSIST_UNIT_BIN)
	@sh tests/run-unit.sh $(PERSIST_UNIT_BIN)

# Opening a store of ~100 MB of buckets (timing; never fails on it).
build/bench/persist-load: bench/persist-load.c daemon/persist.c \
    daemon/store.c daemon/log.c proto/proto.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -iquote daemon -o $@ $^ $(PKG_LIBS) -lm

bench-persist: build/bench/persist-load
	build/bench/persist-load

build/fuzz/fuzz-persist: fuzz/fuzz-persist.c daemon/persist.c \
    daemon/store.c daemon/log.c proto/proto.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ $(PKG_LIBS) -lm

fuzz-persist: build/fuzz/fuzz-persist
	@mkdir -p build/fuzz/corpus-fuzz-persist
	build/fuzz/fuzz-persist -max_total_time=$(FUZZ_SECONDS) \
	    -print_final_stats=1 build/fuzz/corpus-fuzz-persist
