# bench.mk -- the daemon benchmark: build/bench/loadgen (fake agents that
# speak the real protocol) and `make bench-daemon`, the daemon half of
# `make bench` (bench/run.sh runs both halves).

LOADGEN	:= build/bench/loadgen

$(LOADGEN): bench/loadgen.c proto/proto.c proto/rundir.c proto/proto.h \
    proto/rundir.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -o $@ $(filter %.c,$^) $(LDFLAGS) \
	    $(PKG_LIBS) -lm

.PHONY: bench-daemon
bench-daemon: daemon ctl $(LOADGEN)
	@python3 bench/daemon.py $(BENCH_DAEMON_ARGS)

# The capture cost table alone (bench/capture.py), the part of `make bench`
# that `BENCH_ONLY=capture` selects.
.PHONY: bench-capture
bench-capture: daemon ctl
	@BENCH_ONLY=capture sh bench/run.sh

# profd beside CPython 3.15's own sampler (bench/tachyon.py), the part of
# `make bench` that `BENCH_ONLY=tachyon` selects.
.PHONY: bench-tachyon
bench-tachyon: daemon ctl
	@BENCH_ONLY=tachyon sh bench/run.sh
