/*
 * test_reader.c -- agent/reader.c: the thread window that keeps a capture
 * within AGENT_MAX_THREADS, fairly, with the main thread and the GIL
 * holder always in.
 */

#include <criterion/criterion.h>

#include <string.h>

#include "fixture.h"

#define MAIN_IDENT	1000

/* One capture over threads with idents 1..n (n is the main thread, the
 * oldest: last in the list, as CPython keeps it); marks taken[]. */
static uint32_t
capture(struct reader_window *w, int max, uint32_t n, uint64_t holder,
    int *taken)
{
	uint32_t	i, got = 0;
	uint64_t	ident;

	reader_window_begin(w, max, MAIN_IDENT);
	for (i = 1; i <= n; i++) {
		ident = i == n ? MAIN_IDENT : i;
		if (reader_window_take(w, ident, ident == holder)) {
			taken[i]++;
			got++;
		}
	}
	reader_window_end(w);
	return (got);
}

Test(reader, takes_every_thread_under_the_cap)
{
	struct reader_window	w;
	int			taken[202];

	memset(&w, 0, sizeof w);
	memset(taken, 0, sizeof taken);
	cr_assert_eq(capture(&w, 256, 200, 0, taken), 200);
	cr_assert_eq(w.skipped, 0);
	cr_assert_eq(capture(&w, 256, 200, 0, taken), 200);
	cr_assert_eq(w.skipped, 0);
}

Test(reader, rotates_past_the_cap_and_keeps_main)
{
	struct reader_window	w;
	int			taken[302];
	uint32_t		i, got, tick;

	memset(&w, 0, sizeof w);
	memset(taken, 0, sizeof taken);
	for (tick = 0; tick < 20; tick++) {
		got = capture(&w, 256, 301, 0, taken);
		cr_assert_leq(got, 256);
		cr_assert_eq(got + w.skipped, 301, "tick %u: %u + %llu", tick,
		    got, (unsigned long long)w.skipped);
	}
	/* 300 others through a window of 254: the 46 left out move on every
	 * tick, so in 20 ticks each is left out 20 * 46 / 300 = 3.07 times. */
	cr_assert_eq(taken[301], 20, "main taken %d times", taken[301]);
	for (i = 1; i <= 300; i++)
		cr_assert(taken[i] >= 16 && taken[i] <= 17,
		    "thread %u taken %d times in 20 ticks", i, taken[i]);
}

Test(reader, takes_the_gil_holder_every_tick)
{
	struct reader_window	w;
	int			taken[1002];
	uint32_t		tick;

	memset(&w, 0, sizeof w);
	memset(taken, 0, sizeof taken);
	for (tick = 0; tick < 4; tick++)
		cr_assert_leq(capture(&w, 256, 1000, 777, taken), 256);
	cr_assert_eq(taken[777], 4);
	cr_assert_eq(taken[1000], 4);
}

Test(reader, never_fills_more_than_max)
{
	struct reader_window	w;
	int			taken[12];

	memset(&w, 0, sizeof w);
	memset(taken, 0, sizeof taken);
	cr_assert_eq(capture(&w, 1, 10, 3, taken), 1);
	cr_assert_eq(w.skipped, 9);
}

/* The agent's own code objects are hidden, others never, whatever the
 * filter in front of the table says. */
Test(reader, hidden_codes_are_found_and_others_are_not)
{
	uintptr_t	a;
	int		hidden = 0, shown = 0;

	for (a = 0x7f0000001000; a < 0x7f0000001000 + 8 * 0x40; a += 0x40)
		cr_assert_geq(reader_hide(a), 0);
	for (a = 0x7f0000001000; a < 0x7f0000001000 + 8 * 0x40; a += 0x40)
		hidden += reader_hidden(a);
	for (a = 0x7f0000100000; a < 0x7f0000100000 + 4096 * 0x40; a += 0x40)
		shown += !reader_hidden(a);
	cr_assert_eq(hidden, 8);
	cr_assert_eq(shown, 4096);
	cr_assert_eq(reader_hide(0x7f0000001000), 0);
}
