# persist.mk -- the store on disk (daemon/persist.c): SQLite.
PKGS	+= sqlite3

.PHONY: bench-persist bench-week fuzz-persist

# Opening a store of ~100 MB of buckets (timing; never fails on it).
build/bench/persist-load: bench/persist-load.c daemon/persist.c daemon/persist-codec.c \
    daemon/store.c daemon/store-defs.c daemon/log.c proto/proto.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -iquote daemon -o $@ $^ $(PKG_LIBS) -lm

# The fleet week at full density through the store and persist code.
build/bench/week: bench/week.c daemon/persist.c daemon/persist-codec.c \
    daemon/store.c daemon/store-defs.c daemon/log.c proto/proto.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -iquote daemon -o $@ $^ $(PKG_LIBS) -lm

bench-week: build/bench/week
	@$(MAKE) --no-print-directory daemon ctl
	python3 bench/week.py $(BENCH_WEEK_ARGS)

bench-persist: build/bench/persist-load
	build/bench/persist-load

build/fuzz/fuzz-persist: fuzz/fuzz-persist.c daemon/persist.c daemon/persist-codec.c \
    daemon/store.c daemon/store-defs.c daemon/log.c proto/proto.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ $(PKG_LIBS) -lm

fuzz-persist: build/fuzz/fuzz-persist
	@mkdir -p build/fuzz/corpus-fuzz-persist
	build/fuzz/fuzz-persist -max_total_time=$(FUZZ_SECONDS) \
	    -print_final_stats=1 build/fuzz/corpus-fuzz-persist
