/*
 * budget.c -- the agent's CPU budget (--max-overhead): keeps the sampler
 * thread's CPU under a share of a core by lowering the sampling rate, and
 * raises it again, never above the asked rate, when there is room.
 *
 * The measure is the sampler thread's own CPU clock, so it holds every cost
 * of a tick, the wake-up included, and nothing of the host's threads.  Every
 * AGENT_BUDGET_WINDOW_NS the CPU the window took is compared to the budget:
 * over AGENT_BUDGET_HIGH_PCT of it, the period grows at once to what would
 * have used AGENT_BUDGET_TARGET_PCT (the cost of a tick is about constant,
 * so CPU is about proportional to the rate); under AGENT_BUDGET_LOW_PCT, it
 * shrinks towards that, by at most AGENT_BUDGET_RAISE_PCT a window.  The
 * band between keeps the rate still under noise.
 *
 * Weights stay unbiased: wall and gil modes weigh by elapsed time, and cpu
 * mode by the period in force at the tick, which is the one returned here.
 *
 * Threads: budget_period() is called by the sampler thread only and owns
 * the state below; budget_set() and budget_env() write agent_config's
 * atomics from any thread.
 */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"

/* The controller's state.  Sampler thread only. */
static uint64_t	budget_eff_ns;		/* period in force; 0: none yet */
static uint64_t	budget_t0;		/* window start, CLOCK_MONOTONIC */
static uint64_t	budget_cpu0;		/* sampler CPU then */
static uint64_t	budget_window_ns;	/* length of this window */
static uint64_t	budget_last_call;	/* previous budget_period() */

/* The process default from AGENT_BUDGET_ENV (PROTO_OVERHEAD_UNSET: none);
 * written before the sampler starts, read by conn.c's thread: atomic. */
static uint32_t	budget_default = 0;

/* The calling thread's CPU time, ns. */
static uint64_t
budget_cpu_now(void)
{
	struct timespec	ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return (0);
	return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
}

/* Starts a measuring window of `len` at now. */
static void
budget_window(uint64_t now, uint64_t len)
{
	budget_t0 = now;
	budget_cpu0 = budget_cpu_now();
	budget_window_ns = len;
}

/* The next period from what the window that just ended used. */
static uint64_t
budget_adjust(uint64_t period, uint64_t asked, uint32_t bp, uint64_t now)
{
	uint64_t	cpu = budget_cpu_now(), wall = now - budget_t0;
	uint64_t	floor = 1000000000ull / AGENT_BUDGET_RATE_MIN;
	double		used, allowed, next;

	used = cpu > budget_cpu0 ? (double)(cpu - budget_cpu0) : 0.0;
	allowed = (double)wall * bp / PROTO_OVERHEAD_MAX;
	next = (double)period;
	if (used > allowed * AGENT_BUDGET_HIGH_PCT / 100)
		next = period * used / (allowed * AGENT_BUDGET_TARGET_PCT / 100);
	else if (used < allowed * AGENT_BUDGET_LOW_PCT / 100) {
		if (used > 0)
			next = period * used /
			    (allowed * AGENT_BUDGET_TARGET_PCT / 100);
		if (next < period * 100.0 / (100 + AGENT_BUDGET_RAISE_PCT))
			next = period * 100.0 / (100 + AGENT_BUDGET_RAISE_PCT);
	}
	if (next > (double)floor)
		next = (double)floor;
	if (next < (double)asked)
		next = (double)asked;
	return ((uint64_t)next);
}

/*
 * The period to tick at, given the asked one: the asked period without a
 * budget, else the controller's.  Called once per turn of the sampler loop
 * while profiling; a gap (profiling was off) starts a new window.
 */
uint64_t
budget_period(uint64_t asked, uint64_t now)
{
	uint32_t	bp = AGENT_LOAD(agent_config.max_overhead_bp);
	uint64_t	gap = now - budget_last_call;

	budget_last_call = now;
	if (bp == 0 || bp >= PROTO_OVERHEAD_MAX) {
		budget_eff_ns = 0;
		AGENT_STORE(agent_stats.max_overhead_bp, bp);
		AGENT_STORE(agent_stats.effective_mhz,
		    1000000000000ull / asked);
		AGENT_STORE(agent_stats.rate_reason, PROTO_REASON_ASKED);
		return (asked);
	}
	if (budget_eff_ns == 0) {
		/* Starts at the asked rate, with a short first window so
		 * that a costly rate is found out before it costs much. */
		budget_eff_ns = asked;
		budget_window(now, AGENT_BUDGET_FIRST_NS);
	} else if (gap > AGENT_BUDGET_GAP_NS)
		budget_window(now, AGENT_BUDGET_FIRST_NS);
	else if (now - budget_t0 >= budget_window_ns) {
		budget_eff_ns = budget_adjust(budget_eff_ns, asked, bp, now);
		budget_window(now, AGENT_BUDGET_WINDOW_NS);
	}
	if (budget_eff_ns < asked)
		budget_eff_ns = asked;
	AGENT_STORE(agent_stats.max_overhead_bp, bp);
	AGENT_STORE(agent_stats.effective_mhz,
	    1000000000000ull / budget_eff_ns);
	AGENT_STORE(agent_stats.rate_reason, budget_eff_ns > asked ?
	    PROTO_REASON_BUDGET : PROTO_REASON_ASKED);
	return (budget_eff_ns);
}

/* Applies the daemon's budget, or the process default when it gave none. */
void
budget_set(uint32_t bp)
{
	if (bp == PROTO_OVERHEAD_UNSET)
		bp = AGENT_LOAD(budget_default);
	AGENT_STORE(agent_config.max_overhead_bp, bp);
}

/* Reads the process default from AGENT_BUDGET_ENV (a bad value is logged
 * and ignored) and applies it until the daemon says otherwise. */
void
budget_env(void)
{
	const char	*s = getenv(AGENT_BUDGET_ENV);
	uint32_t	 bp;

	if (s == NULL || *s == '\0')
		return;
	if (proto_overhead_parse(s, &bp) != 0) {
		agent_warn("ignoring %s=%s: a percent of a core, 0 to 100, "
		    "at most two decimals", AGENT_BUDGET_ENV, s);
		return;
	}
	AGENT_STORE(budget_default, bp);
	AGENT_STORE(agent_config.max_overhead_bp, bp);
}

/* In a fork child: the controller starts again. */
void
budget_fork_child(void)
{
	budget_eff_ns = 0;
	budget_last_call = 0;
}
