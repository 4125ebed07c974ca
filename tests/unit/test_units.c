/* test_units.c -- durations, sizes and times as typed on command lines. */

#include <stdlib.h>
#include <time.h>

#include <criterion/criterion.h>

#include "units.h"

#define NS	1000000000ull

static uint64_t
dur(const char *s)
{
	uint64_t	v = 12345;

	cr_assert_eq(units_duration(s, &v), 0, "'%s'", s);
	return (v);
}

static uint64_t
size(const char *s)
{
	uint64_t	v = 12345;

	cr_assert_eq(units_size(s, &v), 0, "'%s'", s);
	return (v);
}

static uint64_t
tm_ns(const char *s, uint64_t now)
{
	uint64_t	v = 12345;

	cr_assert_eq(units_time(s, now, &v), 0, "'%s'", s);
	return (v);
}

Test(units, durations)
{
	cr_assert_eq(dur("0"), 0);
	cr_assert_eq(dur("90"), 90);
	cr_assert_eq(dur("90s"), 90);
	cr_assert_eq(dur("5m"), 300);
	cr_assert_eq(dur("5min"), 300);
	cr_assert_eq(dur("2h"), 7200);
	cr_assert_eq(dur("2H"), 7200);
	cr_assert_eq(dur("7d"), 7 * 86400);
	cr_assert_eq(dur("1w"), 7 * 86400);
}

Test(units, malformed_durations)
{
	const char	*bad[] = { "", "s", "-5", "+5", " 5", "5 m", "5x",
			    "1.5h", "5mm", "99999999999999999999",
			    "30500000000000000w", NULL };
	uint64_t	 v = 7;
	size_t		 i;

	for (i = 0; bad[i] != NULL; i++) {
		cr_assert_eq(units_duration(bad[i], &v), -1, "'%s'", bad[i]);
		cr_assert_eq(v, 7, "'%s' wrote its output", bad[i]);
	}
}

Test(units, sizes)
{
	cr_assert_eq(size("4096"), 4096);
	cr_assert_eq(size("512K"), 512 << 10);
	cr_assert_eq(size("512k"), 512 << 10);
	cr_assert_eq(size("16M"), 16 << 20);
	cr_assert_eq(size("16MiB"), 16 << 20);
	cr_assert_eq(size("16MB"), 16 << 20);
	cr_assert_eq(size("2G"), 2ull << 30);
	cr_assert_eq(size("1T"), 1ull << 40);
}

Test(units, malformed_sizes)
{
	const char	*bad[] = { "", "M", "-1M", "1.5G", "16 M", "16Q",
			    "16MiBs", "20000000000T", NULL };
	uint64_t	 v = 7;
	size_t		 i;

	for (i = 0; bad[i] != NULL; i++) {
		cr_assert_eq(units_size(bad[i], &v), -1, "'%s'", bad[i]);
		cr_assert_eq(v, 7);
	}
}

Test(units, times_ago_and_now)
{
	uint64_t	now = 1800000000ull * NS;

	cr_assert_eq(tm_ns("now", now), now);
	cr_assert_eq(tm_ns("NOW", now), now);
	cr_assert_eq(tm_ns("30s", now), now - 30 * NS);
	cr_assert_eq(tm_ns("5m", now), now - 300 * NS);
	cr_assert_eq(tm_ns("90", now), now - 90 * NS);
	cr_assert_eq(tm_ns("100000w", now), 0, "before the epoch: 0");
}

Test(units, iso8601_in_utc_and_with_offsets)
{
	/* 2026-11-30T14:05:00Z */
	const uint64_t	t = 1796047500ull * NS;

	cr_assert_eq(tm_ns("2026-11-30T14:05Z", 0), t);
	cr_assert_eq(tm_ns("2026-11-30T14:05:00Z", 0), t);
	cr_assert_eq(tm_ns("2026-11-30t14:05:00z", 0), t);
	cr_assert_eq(tm_ns("2026-11-30 14:05:00Z", 0), t);
	cr_assert_eq(tm_ns("2026-11-30T14:05:07Z", 0), t + 7 * NS);
	cr_assert_eq(tm_ns("2026-11-30T14:05:07.25Z", 0),
	    t + 7 * NS + 250000000);
	cr_assert_eq(tm_ns("2026-11-30T14:05:07.123456789Z", 0),
	    t + 7 * NS + 123456789);
	cr_assert_eq(tm_ns("2026-11-30T15:05+01:00", 0), t);
	cr_assert_eq(tm_ns("2026-11-30T15:05:00+0100", 0), t);
	cr_assert_eq(tm_ns("2026-11-30T15:05+01", 0), t);
	cr_assert_eq(tm_ns("2026-11-30T08:35-05:30", 0), t);
	cr_assert_eq(tm_ns("2026-11-30Z", 0), t - (14 * 3600 + 5 * 60) * NS);
}

Test(units, iso8601_without_a_zone_is_local)
{
	struct tm	tm = { 0 };
	time_t		want;

	setenv("TZ", "America/New_York", 1);
	tzset();
	tm.tm_year = 2026 - 1900;
	tm.tm_mon = 6;
	tm.tm_mday = 4;
	tm.tm_hour = 9;
	tm.tm_min = 30;
	tm.tm_isdst = -1;
	want = mktime(&tm);
	cr_assert_eq(tm_ns("2026-07-04T09:30", 0), (uint64_t)want * NS);
	cr_assert_eq(tm_ns("2026-07-04T09:30:00", 0), (uint64_t)want * NS);
	tm.tm_hour = tm.tm_min = 0;
	tm.tm_isdst = -1;
	want = mktime(&tm);
	cr_assert_eq(tm_ns("2026-07-04", 0), (uint64_t)want * NS);
	/* Summer time in New York: four hours behind UTC. */
	cr_assert_eq(tm_ns("2026-07-04T09:30", 0),
	    tm_ns("2026-07-04T13:30Z", 0));
	cr_assert_eq(tm_ns("2026-01-04T09:30", 0),
	    tm_ns("2026-01-04T14:30Z", 0));
}

Test(units, malformed_times)
{
	const char	*bad[] = { "", "yesterday", "2026-11-30T", "2026-11-30T14",
			    "2026-11-30T14:05Q", "2026-11-30T14:05+1",
			    "2026-11-30T14:05+01:0", "2026-13-01",
			    "2026-11-30T25:00Z", "2026/11/30", "14:05",
			    "2026-11-30T14:05Z junk", "1969-07-20T20:17Z",
			    NULL };
	uint64_t	 v = 7;
	size_t		 i;

	for (i = 0; bad[i] != NULL; i++) {
		cr_assert_eq(units_time(bad[i], 1800000000ull * NS, &v), -1,
		    "'%s'", bad[i]);
		cr_assert_eq(v, 7);
	}
}
