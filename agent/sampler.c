/*
 * sampler.c -- the agent's one native thread: wakes at absolute deadlines,
 * captures every Python thread's stack through the active reader, interns
 * them, batches samples, and does all the socket I/O.
 *
 * Locks: the sampler holds sampler_lock for everything it does except
 * waiting and taking the GIL, and never waits for the GIL while holding it.
 * The fork prepare handler takes sampler_lock, so a fork never copies the
 * sampler's tables or buffer half-updated.
 *
 * The sampler sleeps in one ppoll() on the daemon socket and a wake-up
 * channel Python threads write to (config changed, stop).  That channel is
 * a Unix socket pair, not an eventfd, a pipe or a futex; why is told at
 * sampler_wake_fd.
 */

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <sys/syscall.h>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

/* Absent until reader_direct.c is linked in. */
extern const struct reader reader_direct __attribute__((weak));

/* Thread lifecycle: changed by Python threads holding the GIL, or in a fork
 * child; sampler_stop_flag is atomic. */
static pthread_t		 sampler_thread;
static int			 sampler_alive;
static int			 sampler_stop_flag;
static int			 sampler_exiting;	/* interpreter gone */
static int			 sampler_last_flush;

/*
 * The wake-up channel: a connected pair of Unix stream sockets.  Python
 * threads send a byte on end 1 (sampler_wake); the sampler polls end 0 and
 * takes what came.  Not an eventfd, though it would take one descriptor
 * instead of two: every eventfd of the system is the same anonymous inode,
 * so no check could tell ours from one the host made on our number after
 * closing it, and the sampler would eat the host's events (ownfd.c).  Each
 * socket has an inode of its own.  A pipe would do as well, but a write to
 * a pipe whose read end the host closed raises SIGPIPE in the writing
 * Python thread; send() with MSG_NOSIGNAL does not, and send() and recv()
 * fail on anything that is not a socket.  A futex needs no descriptor but
 * cannot end the sampler's ppoll() on the daemon socket.
 *
 * Protected by sampler_wake_lock, held only for the identity checks and
 * the one call (never while polling): the host may close either number
 * under us, and whichever side finds an end gone makes a new pair.
 */
static pthread_mutex_t		 sampler_wake_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ownfd		 sampler_wake_fd[2] = { OWNFD_NONE, OWNFD_NONE };

/* Serialises the sampler's work with fork (see above). */
static pthread_mutex_t		 sampler_lock = PTHREAD_MUTEX_INITIALIZER;

/* The sampler's own state.  Sampler thread only. */
static struct reader_thread	*sampler_threads;
static struct intern_sample	 sampler_pending[AGENT_PENDING_MAX];
static uint32_t			 sampler_npending;
static uint64_t			 sampler_invalid_seen;	/* agent_stats.invalid
							   at the last batch */
static uint32_t			 sampler_batch_mode;	/* of the pending
							   samples */
static uint64_t			 sampler_last_flush_ns;
static uint64_t			 sampler_last_stats_ns;
static uint64_t			 sampler_last_io_ns;
static int			 sampler_input;	/* the socket is ready: do
						   its I/O now */
static uint64_t			 sampler_last_tick_ns;
static uint64_t			 sampler_last_alone_ns;
static uint64_t			 sampler_profile_gen;
static uint64_t			 sampler_rng = 0x9e3779b97f4a7c15ull;
static uint64_t			 sampler_clock_cost;	/* ns per CPU-clock read */
static const struct reader	*sampler_reader;
static struct reader_window	 sampler_thread_window;
static int			 sampler_direct_ok = 0;	/* 1 ok, -1 no */
static struct {
	uint64_t	t;
	uint64_t	ticks;
} sampler_window[AGENT_RATE_WINDOW];
static uint32_t			 sampler_window_pos;

/* CLOCK_MONOTONIC in ns. */
uint64_t
agent_now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
}

/* CLOCK_REALTIME in ns. */
uint64_t
agent_realtime_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
}

/* CPU time of a thread by kernel tid; -1 if it is gone.  The clock id is
 * the kernel's per-thread CPU clock encoding (as glibc builds it). */
static int
sampler_thread_cpu(uint64_t tid, uint64_t *ns)
{
	struct timespec	ts;
	clockid_t	clk;

	if (tid == 0 || tid > INT32_MAX)
		return (-1);
	clk = (clockid_t)((~(unsigned int)tid) << 3) | 6;
	if (clock_gettime(clk, &ts) != 0)
		return (-1);
	*ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	return (0);
}

/*
 * Whether a thread of this process is running (or runnable) now: the state
 * field of its stat is 'R'.  1, 0, or -1 if unreadable.
 */
static int
sampler_thread_running(uint64_t tid)
{
	char	buf[512], *p;

	if (reader_task_read(tid, "stat", buf, sizeof buf) != 0)
		return (-1);
	/* The name may hold anything, ')' too: the state follows the last. */
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ')
		return (-1);
	return (p[2] == 'R');
}

/*
 * Whether the sampler is the last thread of the process.  That happens in
 * a child forked from a thread other than the main one: when that thread
 * ends (pthread_exit of the leader, which stays a zombie task), the process
 * would end, unless the sampler keeps it alive.
 */
static int
sampler_alone(void)
{
	char		 buf[1024], *p, state;
	ssize_t		 n;
	long		 nthreads;
	int		 fd, field;

	if ((fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)) == -1)
		return (0);
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return (0);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ')
		return (0);
	state = p[2];
	/* Field 3 (state) follows ") "; num_threads is field 20. */
	for (field = 2; field < 20 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL)
		return (0);
	nthreads = strtol(p + 1, NULL, 10);
	return (nthreads == 1 || (nthreads == 2 && state == 'Z'));
}

/* The reader to use for what is asked. */
static const struct reader *
sampler_pick(uint32_t want)
{
	if (want == PROTO_READER_DEFAULT)
		want = AGENT_LOAD(agent_config.reader_default);
	if (want != PROTO_READER_GIL && &reader_direct != NULL) {
		if (sampler_direct_ok == 0) {
			sampler_direct_ok = reader_direct.probe() == 0 ? 1 : -1;
			if (sampler_direct_ok < 0)
				agent_log("direct reader unavailable here");
		}
		if (sampler_direct_ok > 0)
			return (&reader_direct);
	}
	return (&reader_gil);
}

/* Writes pending samples as one batch, with the stacks left out as
 * invalid since the previous one (a batch of those alone, if need be). */
static void
sampler_flush(uint64_t now)
{
	uint64_t	invalid = AGENT_LOAD(agent_stats.invalid);

	conn_commit(sampler_pending, sampler_npending,
	    invalid - sampler_invalid_seen > UINT32_MAX ? UINT32_MAX :
	    (uint32_t)(invalid - sampler_invalid_seen), sampler_batch_mode,
	    now);
	sampler_invalid_seen = invalid;
	sampler_npending = 0;
	sampler_last_flush_ns = now;
}

/* Drops the pending samples (conn.c's call, on the sampler thread). */
void
sampler_discard(void)
{
	AGENT_STAT_ADD(discarded, sampler_npending);
	sampler_npending = 0;
}

/* The sampler thread's CPU time, ns (never 0). */
static uint64_t
sampler_cpu_now(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return (1);
	return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + 1);
}

/* The next number of an xorshift64 sequence: no locks, no libc state
 * shared with the host. */
static uint64_t
sampler_random(void)
{
	uint64_t	x = sampler_rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	sampler_rng = x;
	return (x);
}

/*
 * The next tick's offset from the period grid, uniform in +-jitter% of a
 * period.
 * Jitter keeps the sampler from locking in phase with periodic work;
 * wall-mode weights use real elapsed time, so it adds no bias.
 */
static int64_t
sampler_jitter(uint64_t period, uint32_t pct)
{
	uint64_t	span;

	if (pct == 0)
		return (0);
	span = period * pct / 100;
	return ((int64_t)(sampler_random() % (2 * span + 1)) - (int64_t)span);
}

/* A random offset in [0, period / 2). */
static uint64_t
sampler_phase(uint64_t period)
{
	return (period < 2 ? 0 : sampler_random() % (period / 2));
}

/* Measures what reading our own CPU clock costs, to take it out of work_ns. */
static void
sampler_clock_calibrate(void)
{
	uint64_t	a, b, best = UINT64_MAX;
	int		i;

	for (i = 0; i < 16; i++) {
		a = sampler_cpu_now();
		b = sampler_cpu_now();
		if (b - a < best)
			best = b - a;
	}
	sampler_clock_cost = best;
}

/* Updates the sampler's own CPU time counter: for each stats report only,
 * as the thread's CPU clock is a system call. */
static void
sampler_account(void)
{
	AGENT_STORE(agent_stats.sampler_ns, sampler_cpu_now() - 1);
}

/* Updates the achieved rate over the last AGENT_RATE_WINDOW slots: ticks
 * taken and ticks a late one stood in for (made_up, reported beside). */
static void
sampler_rate(uint64_t now)
{
	uint64_t	 ticks = AGENT_LOAD(agent_stats.ticks) +
			     AGENT_LOAD(agent_stats.made_up);
	uint32_t	 pos = sampler_window_pos, w = AGENT_RATE_WINDOW;
	uint64_t	 t0, k0;

	if (pos == 0 || now - sampler_window[(pos - 1) % w].t >=
	    AGENT_RATE_SLOT_NS) {
		sampler_window[pos % w].t = now;
		sampler_window[pos % w].ticks = ticks;
		sampler_window_pos = ++pos;
	}
	t0 = sampler_window[pos <= w ? 0 : pos % w].t;
	k0 = sampler_window[pos <= w ? 0 : pos % w].ticks;
	if (now > t0 + AGENT_RATE_SLOT_NS / 2 && ticks >= k0)
		AGENT_STORE(agent_stats.achieved_mhz,
		    (ticks - k0) * 1000000000000ull / (now - t0));
}

/* Forgets the achieved rate (profiling stopped or restarted). */
static void
sampler_account_reset(void)
{
	memset(sampler_window, 0, sizeof sampler_window);
	sampler_window_pos = 0;
	AGENT_STORE(agent_stats.achieved_mhz, 0);
}

/*
 * Whether a thread is on a CPU at this tick, decided at the capture, never
 * from what it did since the previous tick (that would book CPU burned in
 * one place to wherever the thread sleeps now).
 *
 * A system call only when needed (the one cost per thread per tick left):
 * the GIL holder on a CPU at its previous tick whose frames changed ran
 * Python and is running it (in the same frames as at its previous tick
 * for AGENT_ONCPU_RECHECK ticks in a row, its clock is read: the reading
 * after that many more tells one blocked holding the GIL, by the 18th
 * tick); a thread off a CPU at its previous
 * tick, without the GIL then and now, in the same frames, is blocked still
 * (read again every AGENT_ONCPU_RECHECK ticks).  Otherwise the CPU clock
 * is read, and compared to the previous reading when that one is good for
 * it: taken at the previous tick, or while the thread was blocked since.
 *
 * A thread whose CPU clock moved less than AGENT_ONCPU_MIN_NS (at most an
 * AGENT_ONCPU_MIN_DIV-th of a period) since the previous read is not, and
 * costs no /proc read: this tells a thread waiting in a run queue, or
 * holding the GIL while preempted, as one just woken from a sleep does on
 * a busy machine, from a running one.
 * The direct reader captures at the tick without the GIL: the thread it
 * saw holding the GIL is running Python; any other one is running if the
 * kernel says 'R' (a C call that released the GIL).  The gil reader
 * captures once it has the GIL; it marks the thread it stopped running
 * Python as the GIL holder, and the one that let the GIL go to sleep or
 * block meanwhile as off a CPU (see reader_gil.c).
 * A thread that did not hold the GIL cannot have run Python: it is running
 * only in a C call that let the GIL go, which leaves its CPU clock moving
 * at least a AGENT_ONCPU_GIL_DIV-th of the time since its previous read.
 * Short of that it is 'R' only on its way between a sleep and the GIL (a
 * thread woken to wait for the GIL, or to time its wait), which burns next
 * to nothing.
 *
 * `exact` (cpu mode) reads the clock of every thread but a blocked one, and
 * sets *burned to the CPU time it used since samples last weighed it
 * (SAMPLER_UNKNOWN without a reading to compare to).
 */
#define SAMPLER_UNKNOWN	UINT64_MAX
static int
sampler_oncpu(const struct reader_thread *t, struct intern_thread_state *st,
    int first, int changed, uint64_t now, uint64_t period_ns, int exact,
    uint64_t *burned)
{
	uint64_t	min = period_ns / AGENT_ONCPU_MIN_DIV, cpu = 0;
	int		r, cpu_ok, prev;

	*burned = SAMPLER_UNKNOWN;
	if (t->offcpu && !exact)
		return (0);
	/* On at its previous tick, it ran Python since and holds the GIL now.
	 * Not one off then: it may have just woken, and the clock tells.
	 * In the same frames as at its previous tick (a loop that came round
	 * to the same instruction, or blocked holding the GIL, or
	 * preempted), it is taken as on without a read for up to
	 * AGENT_ONCPU_RECHECK such ticks in a row. */
	if (t->gil == 1 && !first && st->oncpu && !exact) {
		if (changed) {
			st->same_ticks = 0;
			return (1);
		}
		if (st->same_ticks < AGENT_ONCPU_RECHECK) {
			st->same_ticks++;
			return (1);
		}
	}
	/* Off then, without the GIL then and now, in the same frames: blocked
	 * still, read again only every AGENT_ONCPU_RECHECK ticks (a C call
	 * that goes from waiting to computing is seen that much late).  Its
	 * clock stood still: the last reading stays good to compare to. */
	if (!changed && !first && !st->oncpu && t->gil == 0 && st->gil == 0 &&
	    st->same_ticks < AGENT_ONCPU_RECHECK) {
		st->same_ticks++;
		return (0);
	}
	st->same_ticks = 0;
	if (min > AGENT_ONCPU_MIN_NS)
		min = AGENT_ONCPU_MIN_NS;
	cpu_ok = sampler_thread_cpu(t->native_id, &cpu) == 0;
	prev = cpu_ok && !first && st->last_cpu_at != 0 &&
	    cpu >= st->last_cpu_ns;
	if (exact && cpu_ok) {
		if (first || st->charged_ns == 0 || cpu < st->charged_ns)
			st->charged_ns = cpu;
		else
			*burned = cpu - st->charged_ns;
	}
	if (t->offcpu)
		r = 0;
	else if (prev && cpu < st->last_cpu_ns + min)
		r = 0;
	else if (t->gil == 1)
		r = 1;
	else if (t->gil == 0 && prev && now > st->last_cpu_at &&
	    (cpu - st->last_cpu_ns) * AGENT_ONCPU_GIL_DIV <
	    now - st->last_cpu_at)
		r = 0;
	else if ((r = sampler_thread_running(t->native_id)) < 0)
		/* No /proc: the CPU clock moved, the best guess left. */
		r = prev && cpu > st->last_cpu_ns;
	if (cpu_ok) {
		st->last_cpu_ns = cpu;
		st->last_cpu_at = now;
	}
	return (r);
}

/*
 * Decides whether a thread is sampled this tick in `mode`, and with which
 * weight and flags; updates its state.  1 to sample it, 2 to charge its
 * previous sample's stack (below), 0 to skip.  `changed`: its frames
 * differ from its previous tick's.
 *
 * In cpu mode a thread on a CPU at the tick is sampled, weighed by the CPU
 * time it used since samples last weighed it (the period, before its first
 * clock reading).  One off a CPU now that burned at least
 * AGENT_ONCPU_MIN_NS since samples last weighed it (a burst that ended
 * between ticks, a late sampler) has that time charged to the last stack it
 * was seen running in, never to where it sleeps now; less (waking from a
 * sleep, waiting for the GIL) waits for its next charge.  So the weights
 * add up to the CPU time the threads used, however late the ticks: what a
 * thread burns after the last tick that read its clock is all that is
 * lost when it exits.
 */
static int
sampler_weigh(const struct reader_thread *t, struct intern_thread_state *st,
    int changed, uint32_t mode, uint64_t now, uint64_t period_ns,
    uint32_t copies, uint64_t *weight_us, uint32_t *flags)
{
	uint64_t	w, tick, ticks = AGENT_LOAD(agent_stats.ticks), burned;
	int		first, oncpu, take;

	first = st->seen_gen != sampler_profile_gen;
	oncpu = sampler_oncpu(t, st, first, changed, now, period_ns,
	    mode == PROTO_MODE_CPU, &burned);
	*flags = oncpu ? PROTO_SAMPLE_ONCPU : 0;
	if (t->gil == 1)
		*flags |= PROTO_SAMPLE_GIL;
	tick = sampler_last_tick_ns == 0 || now <= sampler_last_tick_ns ?
	    period_ns : now - sampler_last_tick_ns;
	switch (mode) {
	case PROTO_MODE_CPU:
		/* Without a reading: a period per tick since its last capture,
		 * more than one when the thread window (reader.c) left it
		 * out. */
		take = oncpu;
		w = period_ns / 1000;
		if (burned != SAMPLER_UNKNOWN) {
			w = burned / 1000;
			if (!oncpu && burned >= AGENT_ONCPU_MIN_NS) {
				take = 2;
				*flags |= PROTO_SAMPLE_ONCPU;
			}
			/* Charged now (a charge to the previous stack once
			 * made, sampler_take); what an off thread burned
			 * under the minimum waits for its next charge. */
			if (take == 1)
				st->charged_ns += burned;
		} else {
			if (!first && ticks > st->last_tick)
				w *= ticks - st->last_tick;
			w *= copies;	/* shared by the repeats */
		}
		break;
	case PROTO_MODE_GIL:
		/* Without a GIL flag from the reader, the threads that ran
		 * are the best guess of who held it. */
		take = t->gil == 1 || (t->gil < 0 && oncpu);
		w = first ? period_ns / 1000 : tick / 1000;
		break;
	default:
		take = 1;
		w = first ? period_ns / 1000 : (now - st->last_ns) / 1000;
		break;
	}
	st->seen_gen = sampler_profile_gen;
	st->last_ns = now;
	st->last_tick = ticks;
	st->oncpu = oncpu;
	st->gil = t->gil;
	if (w > AGENT_MAX_WEIGHT_US)
		w = AGENT_MAX_WEIGHT_US;
	if (w == 0)
		w = 1;
	*weight_us = w;
	return (take);
}

/*
 * A hash of a capture's frames (code, the reader's fingerprint of it,
 * location, depth), their number and truncation, and in *parent of all of
 * them but the leaf: a thread whose hash is its last sample's is in the
 * same frames, and its stack is not interned again; one whose parent hash
 * is has only its leaf interned.  The fingerprints tell a code object freed
 * and another made at its address (what the interner checks once per tick)
 * apart.  The hash is a sum of the frames' shares: a reader that summed
 * them as it read the frames (the direct reader) saves the loop here.
 */
static uint64_t
sampler_frames_hash(const struct reader_thread *t, uint64_t *parent)
{
	uint64_t	h = (0x51ed2701u ^ ((uint64_t)t->depth << 1) ^
			    (t->truncated != 0)) * 0xbf58476d1ce4e5b9ull;
	uint64_t	share, leaf = 0, fp = 0;
	uintptr_t	last = 0;
	uint32_t	i, n = t->depth < PROTO_MAX_DEPTH ? t->depth :
			    PROTO_MAX_DEPTH;

	if (t->hashed) {
		h += t->share_sum;
		leaf = t->share_leaf;
	} else {
		for (i = 0; i < n; i++) {
			if (t->frames[i].code != last) {
				last = t->frames[i].code;
				fp = sampler_reader->fingerprint != NULL ?
				    sampler_reader->fingerprint(last) : 0;
			}
			share = reader_frame_share(i, t->frames[i].code, fp,
			    t->frames[i].loc);
			if (i == 0)
				leaf = share;
			h += share;
		}
	}
	*parent = (h - leaf) | 1;
	return (h | 1);		/* 0: none */
}

/* Interns one captured thread into a pending sample; 0, or -1 if a table
 * is full (nothing pending was added). */
static int
sampler_take(const struct reader_thread *t, uint32_t mode, uint64_t now,
    uint64_t period_ns, uint32_t copies)
{
	struct intern_thread_state *st;
	struct intern_sample	*s;
	uint64_t		 w, h, parent;
	uint32_t		 thread, stack, flags, i;
	int			 full = 0, changed;

	if ((thread = intern_thread(t->native_id, t->ident, &full)) == 0)
		return (full ? -1 : 0);
	st = intern_thread_state(thread);
	h = sampler_frames_hash(t, &parent);
	changed = h != st->frames_hash;
	st->frames_hash = h;
	switch (sampler_weigh(t, st, changed, mode, now, period_ns, copies,
	    &w, &flags)) {
	case 0:
		return (0);
	case 2:
		if (st->stack == 0 || st->stack_gen != intern_generation())
			return (0);
		st->charged_ns += w * 1000;
		s = &sampler_pending[sampler_npending++];
		s->stack = st->stack;
		s->thread = thread;
		s->t_ns = now;
		s->weight_us = (uint32_t)w;
		s->flags = flags;
		AGENT_STAT_ADD(samples, 1);
		return (0);
	}
	/* The same frames as its last sample: the same stack; the same but
	 * the leaf (a loop at another line): only the leaf is looked up. */
	if (st->stack != 0 && st->stack_gen == intern_generation() &&
	    st->stack_hash == h)
		stack = st->stack;
	else if ((stack = st->stack != 0 &&
	    st->stack_gen == intern_generation() && st->stack_parent == parent ?
	    intern_stack_leaf(sampler_reader, t, st->stack, &full) :
	    intern_stack(sampler_reader, t, &full)) == 0) {
		if (full)
			return (-1);
		AGENT_STAT_ADD(invalid, 1);
		return (0);
	}
	st->stack = stack;
	st->stack_hash = h;
	st->stack_parent = parent;
	st->stack_gen = intern_generation();
	s = &sampler_pending[sampler_npending++];
	s->stack = stack;
	s->thread = thread;
	s->t_ns = now;
	s->weight_us = (uint32_t)(w / copies + w % copies);
	s->flags = flags;
	for (i = 1; i < copies; i++) {
		sampler_pending[sampler_npending] = *s;
		sampler_pending[sampler_npending++].weight_us =
		    w / copies > 0 ? (uint32_t)(w / copies) : 1;
	}
	AGENT_STAT_ADD(samples, copies);
	AGENT_STAT_ADD(samples_made_up, copies - 1);
	if (t->truncated)
		AGENT_STAT_ADD(truncated, copies);
	return (0);
}

/* One tick: capture, intern, batch.  Called with sampler_lock held. */
static void
sampler_tick(int n, uint64_t now, uint64_t period_ns, uint32_t mode,
    uint32_t copies)
{
	int	i;

	intern_tick();
	for (i = 0; i < n; i++) {
		if (sampler_npending + copies > AGENT_PENDING_MAX)
			sampler_flush(now);
		if (sampler_take(&sampler_threads[i], mode, now,
		    period_ns, copies) == 0)
			continue;
		/* A table is full: send what refers to the old tables, clear
		 * them, and try this thread again once. */
		sampler_flush(now);
		intern_reset(sampler_reader);
		intern_tick();
		if (sampler_take(&sampler_threads[i], mode, now,
		    period_ns, copies) != 0) {
			/* Taken, and dropped: samples - dropped stays what
			 * the daemon gets. */
			AGENT_STAT_ADD(samples, copies);
			AGENT_STAT_ADD(dropped, copies);
		}
	}
	sampler_last_tick_ns = now;
	if (sampler_npending >= AGENT_FLUSH_SAMPLES ||
	    now - sampler_last_flush_ns >= AGENT_FLUSH_NS)
		sampler_flush(now);
}

/*
 * Work due whatever the state: stats and socket I/O.  While sampling, the
 * socket is read at most every AGENT_IO_NS, and only when the last poll()
 * did not find it quiet (conn_poll_quiet): a recv() that finds nothing
 * costs as much as reading a thread's stack.
 */
static void
sampler_housekeep(uint64_t now, int sampling)
{
	if (now - sampler_last_stats_ns >= AGENT_STATS_NS) {
		sampler_account();
		conn_stats();
		sampler_last_stats_ns = now;
	}
	if (sampling && !sampler_input && now - sampler_last_io_ns <
	    AGENT_IO_NS)
		return;
	sampler_last_io_ns = now;
	sampler_input = 0;
	conn_io(now);
}

/* Switches reader if the config asks for another one. */
static void
sampler_select_reader(uint64_t now)
{
	const struct reader	*r;

	r = sampler_pick(AGENT_LOAD(agent_config.reader));
	if (r == sampler_reader)
		return;
	if (sampler_reader != NULL) {
		/* Pending samples refer to the old reader's entries. */
		sampler_flush(now);
		intern_reset(sampler_reader);
	}
	sampler_reader = r;
	AGENT_STORE(agent_reader_active, (uint32_t)r->id);
	agent_log("using the %s reader", r->name);
}

/* Closes what is left of the wake-up pair (what is still ours). */
static void
sampler_wake_close(void)
{
	ownfd_close(&sampler_wake_fd[0]);
	ownfd_close(&sampler_wake_fd[1]);
}

/* Makes the wake-up pair if an end is missing; the end to poll, or -1.
 * With sampler_wake_lock held. */
static int
sampler_wake_open(void)
{
	int	sv[2];

	if (sampler_wake_fd[0].fd != -1 && sampler_wake_fd[1].fd != -1)
		return (sampler_wake_fd[0].fd);
	sampler_wake_close();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) == -1)
		return (-1);
	if (ownfd_set(&sampler_wake_fd[0], sv[0]) != 0 ||
	    ownfd_set(&sampler_wake_fd[1], sv[1]) != 0) {
		close(sv[0]);
		close(sv[1]);
		sampler_wake_fd[0].fd = sampler_wake_fd[1].fd = -1;
		return (-1);
	}
	return (sv[0]);
}

/*
 * Takes the wake-ups that came, if the polled end is still ours (never
 * reads the host's data).  An end found gone, or a pair whose other end
 * was closed (recv() says end of stream, which would poll ready for ever),
 * is replaced.
 */
static void
sampler_wake_take(void)
{
	char	buf[64];
	ssize_t	n;
	int	fd;

	pthread_mutex_lock(&sampler_wake_lock);
	if ((fd = ownfd_get(&sampler_wake_fd[0])) != -1) {
		n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n == 0 || (n == -1 && errno != EAGAIN &&
		    errno != EWOULDBLOCK && errno != EINTR))
			sampler_wake_close();
	}
	(void)sampler_wake_open();
	pthread_mutex_unlock(&sampler_wake_lock);
}

/*
 * Waits until `deadline` or a wake-up; wakes early on daemon input.  The
 * sleep is the poll: one system call a tick says whether the socket has
 * input, so that conn_io reads it only then (conn_poll_quiet).  The
 * numbers polled are not checked first: poll() takes nothing from a
 * descriptor, and a foreign one that polls ready is found out by the check
 * before the read (wake-up) or by conn_io's (socket), so it cannot keep
 * the sampler spinning.
 */
static void
sampler_wait(uint64_t deadline)
{
	struct pollfd	 pfd[2];
	struct timespec	 ts;
	uint64_t	 now = agent_now_ns();
	int		 nfd = 0, rc, wake, sock = -1;

	if (deadline > now) {
		pthread_mutex_lock(&sampler_wake_lock);
		pfd[0].fd = sampler_wake_open();
		pthread_mutex_unlock(&sampler_wake_lock);
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		wake = pfd[0].fd != -1;
		nfd = wake;
		if (conn_fd() != -1) {
			sock = nfd;
			pfd[nfd].fd = conn_fd();
			pfd[nfd].events = POLLIN |
			    (conn_want_write() ? POLLOUT : 0);
			pfd[nfd].revents = 0;
			nfd++;
		}
		ts.tv_sec = (time_t)((deadline - now) / 1000000000ull);
		ts.tv_nsec = (long)((deadline - now) % 1000000000ull);
		rc = nfd > 0 ? ppoll(pfd, (nfds_t)nfd, &ts, NULL) : -1;
		if (rc >= 0 && sock != -1)
			conn_poll_quiet((pfd[sock].revents & ~POLLOUT) == 0);
		if (rc > 0) {
			if (wake && pfd[0].revents != 0)
				sampler_wake_take();
			/* Read it at once, or poll would keep saying so. */
			if (sock != -1 && pfd[sock].revents != 0)
				sampler_input = 1;
			return;
		}
		if (rc == 0)
			return;
	}
	if (deadline > agent_now_ns()) {
		ts.tv_sec = (time_t)(deadline / 1000000000ull);
		ts.tv_nsec = (long)(deadline % 1000000000ull);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
		    NULL) == EINTR)
			;
	}
}

/* The last flush at exit: send what is pending, for a bounded time. */
static void
sampler_drain(void)
{
	struct pollfd	 pfd;
	uint64_t	 now = agent_now_ns(), end = now + AGENT_EXIT_FLUSH_NS;

	int		 pass;

	pthread_mutex_lock(&sampler_lock);
	sampler_flush(now);
	/* First the batches; then what could not go is counted as dropped,
	 * and the counters that say so go last, if the socket takes them. */
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			conn_abandon();
			if (conn_want_write())
				break;
			sampler_account();
			conn_stats();
		}
		conn_io(agent_now_ns());
		/* Batches not yet encoded for want of the CONFIG that names
		 * the version (a process that ends at once) wait for it. */
		while (conn_fd() != -1 && (conn_want_write() ||
		    conn_want_config()) && (now = agent_now_ns()) < end) {
			pfd.fd = conn_fd();
			pfd.events = conn_want_write() ? POLLOUT : POLLIN;
			pthread_mutex_unlock(&sampler_lock);
			(void)poll(&pfd, 1, (int)((end - now) / 1000000) + 1);
			pthread_mutex_lock(&sampler_lock);
			conn_io(agent_now_ns());
		}
	}
	pthread_mutex_unlock(&sampler_lock);
}

/*
 * The sampler thread.  Profiling: ticks at absolute deadlines one period
 * apart; a tick late by more than a period skips the missed ones instead of
 * bursting.  Not profiling: waits in poll() for config or a wake-up.
 */
static void *
sampler_main(void *arg)
{
	uint64_t	 now, next = 0, period = 0, late, made, work0, work1;
	uint32_t	 copies;
	uint32_t	 rate, mode;
	int		 n, profiling, was_profiling = 0, alone = 0;

	(void)prctl(PR_SET_TIMERSLACK, AGENT_TIMER_SLACK_NS, 0, 0, 0);
	(void)pthread_setname_np(pthread_self(), "profagent");
	sampler_clock_calibrate();
	/* The hello names the reader: pick it before anything is sent. */
	pthread_mutex_lock(&sampler_lock);
	sampler_select_reader(agent_now_ns());
	conn_restart();
	pthread_mutex_unlock(&sampler_lock);

	while (!__atomic_load_n(&sampler_stop_flag, __ATOMIC_ACQUIRE)) {
		now = agent_now_ns();
		profiling = AGENT_LOAD(agent_config.profiling);
		rate = AGENT_LOAD(agent_config.rate_hz);
		mode = AGENT_LOAD(agent_config.mode);
		if (rate < PROTO_RATE_MIN || rate > PROTO_RATE_MAX)
			rate = PROTO_RATE_DEFAULT;
		AGENT_STORE(agent_stats.rate_hz, rate);

		if (now - sampler_last_alone_ns >= AGENT_ALONE_CHECK_NS) {
			sampler_last_alone_ns = now;
			if ((alone = sampler_alone()) != 0) {
				agent_log("last thread of the process: exiting");
				break;
			}
		}

		pthread_mutex_lock(&sampler_lock);
		sampler_select_reader(now);
		/* A batch holds samples of one mode (profd files it under
		 * that mode): a new mode starts a new batch. */
		if (mode != sampler_batch_mode) {
			if (sampler_npending > 0)
				sampler_flush(now);
			sampler_batch_mode = mode;
		}
		if (profiling && !was_profiling) {
			sampler_profile_gen++;
			sampler_account_reset();
			next = now;
		}
		if (!profiling && was_profiling) {
			sampler_flush(now);
			sampler_account_reset();
		}
		was_profiling = profiling;
		if (!profiling) {
			sampler_housekeep(now, 0);
			pthread_mutex_unlock(&sampler_lock);
			/* A CONFIG just read may have turned it on: start at
			 * once, not at the next poll. */
			if (!AGENT_LOAD(agent_config.profiling))
				sampler_wait(now + AGENT_IDLE_POLL_MS *
				    1000000ull);
			continue;
		}
		if (sampler_threads == NULL) {
			sampler_threads = malloc(AGENT_MAX_THREADS *
			    sizeof *sampler_threads);
			if (sampler_threads == NULL) {
				pthread_mutex_unlock(&sampler_lock);
				sampler_wait(now + AGENT_IDLE_POLL_MS *
				    1000000ull);
				continue;
			}
		}
		period = budget_period(1000000000ull / rate, now);
		/* The rate went up (a jittered deadline may lie up to
		 * PROTO_JITTER_MAX% of a period past the grid). */
		if (next > now + period + period * PROTO_JITTER_MAX / 100)
			next = now + period;
		if (now < next) {
			/* Input or a wake-up may change the plan: loop.  So
			 * may a CONFIG the housekeeping read: no tick after
			 * one that said stop. */
			sampler_housekeep(now, 1);
			pthread_mutex_unlock(&sampler_lock);
			sampler_wait(next);
			if (agent_now_ns() < next ||
			    !AGENT_LOAD(agent_config.profiling))
				continue;
			pthread_mutex_lock(&sampler_lock);
			now = agent_now_ns();
		}
		/* Late by k periods: this tick stands in for the k missed,
		 * its samples repeated with their weight shared, so a sampler
		 * starved while a thread computes does not make that thread
		 * look idle in sample counts. */
		copies = 1;
		late = now - next;
		if (late >= period) {
			made = late / period;
			if (made > AGENT_MAKEUP_MAX - 1) {
				AGENT_STAT_ADD(missed, made - (AGENT_MAKEUP_MAX - 1));
				made = AGENT_MAKEUP_MAX - 1;
			}
			/* The grid restarts from now, at a random phase: kept,
			 * or restarted right at the moment the tick got in, it
			 * can lock in phase with work whose period is a
			 * multiple of ours (a 1 ms burst every 10 ms seen at 2%
			 * of the time). */
			next = now - sampler_phase(period);
			AGENT_STAT_ADD(made_up, made);
			copies += (uint32_t)made;
		}
		next += period + sampler_jitter(period,
		    AGENT_LOAD(agent_config.jitter_pct));
		AGENT_STAT_ADD(ticks, 1);
		sampler_rate(now);
		/* One tick in AGENT_WORK_EVERY has its work timed: the thread
		 * CPU clock costs a system call, too much to read every tick. */
		work0 = 0;
		if (AGENT_LOAD(agent_stats.ticks) % AGENT_WORK_EVERY == 0)
			work0 = sampler_cpu_now();

		if (sampler_reader->id == PROTO_READER_GIL) {
			/* Never wait for the GIL holding sampler_lock. */
			pthread_mutex_unlock(&sampler_lock);
			n = sampler_reader->capture(sampler_threads,
			    AGENT_MAX_THREADS, &sampler_thread_window,
			    &agent_stats.invalid);
			pthread_mutex_lock(&sampler_lock);
			now = agent_now_ns();
		} else
			n = sampler_reader->capture(sampler_threads,
			    AGENT_MAX_THREADS, &sampler_thread_window,
			    &agent_stats.invalid);
		if (n >= 0 && sampler_thread_window.skipped > 0)
			AGENT_STAT_ADD(threads_skipped,
			    sampler_thread_window.skipped);
		if (n > 0)
			sampler_tick(n, now, period, mode, copies);
		else if (now - sampler_last_flush_ns >= AGENT_FLUSH_NS)
			sampler_flush(now);
		if (work0 != 0 && (work1 = sampler_cpu_now()) > work0 +
		    sampler_clock_cost)
			AGENT_STAT_ADD(work_ns, (work1 - work0 -
			    sampler_clock_cost) * AGENT_WORK_EVERY);
		sampler_housekeep(now, 1);
		pthread_mutex_unlock(&sampler_lock);
	}

	if (alone) {
		/* Python is gone with its last thread: no Python calls. */
		sampler_drain();
		return (NULL);
	}
	if (!__atomic_load_n(&sampler_exiting, __ATOMIC_ACQUIRE)) {
		if (sampler_last_flush)
			sampler_drain();
		reader_gil_thread_exit();
	}
	return (NULL);
}

/* Starts the sampler thread. */
int
sampler_start(void)
{
	pthread_attr_t	 attr;
	sigset_t	 all, old;
	int		 rc;

	if (sampler_alive)
		return (0);
	pthread_mutex_lock(&sampler_wake_lock);
	rc = sampler_wake_open();
	pthread_mutex_unlock(&sampler_wake_lock);
	if (rc == -1)
		return (-1);
	__atomic_store_n(&sampler_stop_flag, 0, __ATOMIC_RELEASE);
	sampler_last_flush = 0;
	sampler_npending = 0;
	sampler_invalid_seen = AGENT_LOAD(agent_stats.invalid);
	sampler_last_stats_ns = 0;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1u << 20);
	/* The sampler takes no signals: the host's handlers run elsewhere. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	/* sampler: captures stacks and does all socket I/O; never takes locks
	 * the host holds except the GIL in the gil reader. */
	rc = pthread_create(&sampler_thread, &attr, sampler_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		errno = rc;
		return (-1);
	}
	sampler_alive = 1;
	return (0);
}

/*
 * Wakes the sampler: a byte on the pair, both ends checked first (a pair
 * with a lost end is replaced: the sampler polls the new one from its next
 * wait on).  A full socket already holds a wake-up.
 */
void
sampler_wake(void)
{
	char	one = 1;
	int	fd = -1;

	pthread_mutex_lock(&sampler_wake_lock);
	if (ownfd_get(&sampler_wake_fd[0]) == -1 ||
	    (fd = ownfd_get(&sampler_wake_fd[1])) == -1) {
		(void)sampler_wake_open();
		fd = sampler_wake_fd[1].fd;
	}
	if (fd != -1)
		(void)send(fd, &one, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	pthread_mutex_unlock(&sampler_wake_lock);
}

/* Stops and joins the sampler (caller has released the GIL). */
void
sampler_stop(int last_flush)
{
	if (!sampler_alive)
		return;
	sampler_last_flush = last_flush;
	__atomic_store_n(&sampler_stop_flag, 1, __ATOMIC_RELEASE);
	sampler_wake();
	pthread_join(sampler_thread, NULL);
	sampler_alive = 0;
}

/* Whether the sampler thread runs. */
int
sampler_running(void)
{
	return (sampler_alive);
}

/* The interpreter is gone: the sampler must stop without Python. */
void
sampler_exit_flag(void)
{
	__atomic_store_n(&sampler_exiting, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&sampler_stop_flag, 1, __ATOMIC_RELEASE);
	sampler_wake();
}

/* Before fork: wait for the sampler to be between steps. */
void
sampler_fork_prepare(void)
{
	pthread_mutex_lock(&sampler_lock);
}

/* After fork, in the parent. */
void
sampler_fork_parent(void)
{
	pthread_mutex_unlock(&sampler_lock);
}

/* After fork, in the child: no sampler thread, no connection; state for a
 * new agent.  Only async-signal-safe work here; the restart comes from
 * Python (module.c). */
void
sampler_fork_child(void)
{
	pthread_mutex_t	fresh = PTHREAD_MUTEX_INITIALIZER;

	memcpy(&sampler_lock, &fresh, sizeof fresh);
	memcpy(&sampler_wake_lock, &fresh, sizeof fresh);
	sampler_alive = 0;
	__atomic_store_n(&sampler_stop_flag, 0, __ATOMIC_RELEASE);
	sampler_wake_close();
	sampler_npending = 0;
	sampler_invalid_seen = 0;
	sampler_last_tick_ns = 0;
	sampler_account_reset();
	conn_fork_child();
	intern_fork_child();
	reader_gil_fork_child();
	memset(&agent_stats, 0, sizeof agent_stats);
	AGENT_STORE(agent_connected, 0);
}
