/*
 * test_budget.c -- agent/budget.c: the rate follows the sampler's own CPU
 * (this test's thread, burning real CPU between calls, on a made-up
 * monotonic clock): down at once past the budget, up by at most a step a
 * window, never above the asked rate nor below the floor.
 */

#include <criterion/criterion.h>

#include <time.h>

#include "fixture.h"

#define MS	1000000ull
#define ASKED	(1000000000ull / 10000)		/* 10 kHz */

/* Burns about `ns` of this thread's CPU. */
static void
burn(uint64_t ns)
{
	struct timespec	ts;
	uint64_t	t0, t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	t0 = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	do {
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
		t = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	} while (t - t0 < ns);
}

static void
setup(void)
{
	budget_fork_child();	/* a fresh controller */
	AGENT_STORE(agent_config.max_overhead_bp, 100);	/* 1% */
}

TestSuite(budget, .init = setup);

Test(budget, no_budget_is_the_asked_rate)
{
	AGENT_STORE(agent_config.max_overhead_bp, 0);
	cr_assert_eq(budget_period(ASKED, 1000 * MS), ASKED);
	cr_assert_eq(agent_stats.effective_mhz, 10000000);
	cr_assert_eq(agent_stats.rate_reason, PROTO_REASON_ASKED);
	cr_assert_eq(agent_stats.max_overhead_bp, 0);
}

Test(budget, slows_down_at_once_past_the_budget)
{
	uint64_t	now = 1000 * MS, p;

	cr_assert_eq(budget_period(ASKED, now), ASKED);
	/* 5 ms of CPU in the 20 ms first window: 25%, 25 times a 1% budget:
	 * the period grows about 31 times (aiming at 80% of it). */
	burn(5 * MS);
	now += AGENT_BUDGET_FIRST_NS;
	p = budget_period(ASKED, now);
	cr_assert_gt(p, ASKED * 25, "period %llu", (unsigned long long)p);
	cr_assert_lt(p, ASKED * 60, "period %llu", (unsigned long long)p);
	cr_assert_eq(agent_stats.rate_reason, PROTO_REASON_BUDGET);
	cr_assert_eq(agent_stats.max_overhead_bp, 100);
	cr_assert_eq(agent_stats.effective_mhz, 1000000000000ull / p);
	/* Within the next window it holds still. */
	cr_assert_eq(budget_period(ASKED, now + AGENT_BUDGET_WINDOW_NS / 2), p);
}

Test(budget, speeds_up_gently_up_to_the_asked_rate)
{
	uint64_t	now = 1000 * MS, p, q;
	int		i;

	budget_period(ASKED, now);
	burn(10 * MS);
	now += AGENT_BUDGET_FIRST_NS;
	p = budget_period(ASKED, now);
	cr_assert_gt(p, ASKED * 40);
	/* Idle windows: at most AGENT_BUDGET_RAISE_PCT faster each. */
	for (i = 0; i < 100 && p > ASKED; i++) {
		now += AGENT_BUDGET_WINDOW_NS;
		q = budget_period(ASKED, now);
		cr_assert_geq(q * (100 + AGENT_BUDGET_RAISE_PCT) / 100 + 1, p,
		    "%llu -> %llu", (unsigned long long)p,
		    (unsigned long long)q);
		cr_assert_leq(q, p);
		p = q;
	}
	cr_assert_eq(p, ASKED, "never back at the asked rate");
	cr_assert_eq(agent_stats.rate_reason, PROTO_REASON_ASKED);
}

Test(budget, never_slower_than_the_floor)
{
	uint64_t	now = 1000 * MS, p;

	AGENT_STORE(agent_config.max_overhead_bp, 1);	/* 0.01% */
	budget_period(ASKED, now);
	burn(30 * MS);
	now += AGENT_BUDGET_FIRST_NS;
	p = budget_period(ASKED, now);
	cr_assert_eq(p, 1000000000ull / AGENT_BUDGET_RATE_MIN);
}

Test(budget, a_slower_asked_rate_wins)
{
	uint64_t	now = 1000 * MS;

	budget_period(ASKED, now);
	burn(2 * MS);
	now += AGENT_BUDGET_FIRST_NS;
	cr_assert_gt(budget_period(ASKED, now), ASKED);
	/* Asked for 1 Hz: slower than any budget here. */
	cr_assert_eq(budget_period(1000000000ull, now + MS), 1000000000ull);
	cr_assert_eq(agent_stats.rate_reason, PROTO_REASON_ASKED);
}
