/*
 * units.h -- durations, sizes and times as profd and profctl read them on
 * the command line, alike.
 */
#ifndef UNITS_H
#define UNITS_H

#include <stddef.h>
#include <stdint.h>

/* "90", "90s", "5m", "2h", "7d", "1w" -> seconds; -1 when malformed. */
int	units_duration(const char *, uint64_t *seconds);
/* "4096", "512K", "16M", "2G" (powers of 1024; "MiB", "MB" too) ->
 * bytes; -1 when malformed. */
int	units_size(const char *, uint64_t *bytes);
/* A time: a duration ago ("30s", "5m") or ISO 8601 ("2026-11-30T14:05",
 * "...:05Z", "...+01:00", a date alone) or "now" -> CLOCK_REALTIME ns;
 * -1 when malformed.  Times without a zone are local. */
int	units_time(const char *, uint64_t now_ns, uint64_t *ns);

#endif
