/*
 * wakeup.c -- the floor under any sampler that sleeps between samples: the
 * CPU time a thread spends being woken by an absolute-deadline timer, with
 * no work at all.  Printed per tick at 1 kHz and 10 kHz, or with arguments
 * `wakeup HZ TICKS` at one rate only (bench/capture.py's floor).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

/* Reads a clock in ns. */
static uint64_t
wakeup_ns(clockid_t clk)
{
	struct timespec	ts;

	clock_gettime(clk, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
}

int
main(int argc, char **argv)
{
	unsigned		rates[] = { 1000, 10000 };
	unsigned		nrates = 2;
	struct timespec		ts;
	uint64_t		next, period, c0, c1, t0, t1;
	unsigned		i, n, ticks = 3000;

	if (argc == 3) {
		rates[0] = (unsigned)strtoul(argv[1], NULL, 10);
		ticks = (unsigned)strtoul(argv[2], NULL, 10);
		nrates = 1;
		if (rates[0] == 0 || rates[0] > 100000 || ticks == 0) {
			fprintf(stderr, "usage: wakeup [HZ TICKS]\n");
			return (1);
		}
	}
	(void)prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0);
	for (i = 0; i < nrates; i++) {
		period = 1000000000ull / rates[i];
		next = t0 = wakeup_ns(CLOCK_MONOTONIC);
		c0 = wakeup_ns(CLOCK_THREAD_CPUTIME_ID);
		for (n = 0; n < ticks; n++) {
			next += period;
			ts.tv_sec = (time_t)(next / 1000000000ull);
			ts.tv_nsec = (long)(next % 1000000000ull);
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		}
		c1 = wakeup_ns(CLOCK_THREAD_CPUTIME_ID);
		t1 = wakeup_ns(CLOCK_MONOTONIC);
		printf("timer wake-up alone at %5u Hz: %.1f us of thread CPU a tick "
		    "(%.0f Hz achieved)\n", rates[i], (double)(c1 - c0) / 1000 / n,
		    (double)n * 1e9 / (double)(t1 - t0));
	}
	return (0);
}
