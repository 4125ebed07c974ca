/*
 * loadgen.c -- fake agents for profd's benchmark (bench/daemon.py).
 *
 * Every connection speaks the real agent protocol through proto.c's
 * encoders: a hello, then its definitions (strings, functions, frames,
 * threads, stacks, numbered from 1 on each connection), then sample batches
 * and stats.  One thread, non-blocking sockets and poll().
 *
 *   loadgen [-r DIR] ingest   N connections blast full batches for T s
 *   loadgen [-r DIR] fleet    N connections, R samples/s each, every P ms
 *   loadgen [-r DIR] fill     S samples over K stacks, spread over a span
 *   loadgen [-r DIR] stacks   K new stacks, one sample each
 *   loadgen [-r DIR] week     D days of N processes, compressed
 *   loadgen [-r DIR] latency  one probe every P ms: agent-to-store latency
 *
 * Output is one line per event, words of key=value, for the driver:
 * "ready ..." once every connection has sent its definitions, "done ..."
 * when sending stops, "end ..." after the connections are closed.
 *
 * Stacks are built from a fixed pool of frames; stack number k (global, so
 * two runs with different --first never share a stack) is distinct from
 * every other for k below LOADGEN_FRAMES^3, whatever the depth >= 3.
 */

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "rundir.h"

#define LOADGEN_MAX_CONNS	4096		/* connections of one run */
#define LOADGEN_FILES		16		/* source files in the pool */
#define LOADGEN_FUNCS		512		/* functions in the pool */
#define LOADGEN_LINES		4		/* frames (lines) per function */
#define LOADGEN_FRAMES		(LOADGEN_FUNCS * LOADGEN_LINES)
#define LOADGEN_MAX_THREADS	256		/* threads per connection */
#define LOADGEN_MAX_STACKS	(PROTO_MAX_ID - 1) /* stacks per connection */
#define LOADGEN_MAX_SECONDS	86400.0		/* length of a timed run */
#define LOADGEN_NAME_MAX	64		/* bytes of a generated name */
#define LOADGEN_LOW_WATER	(256u << 10)	/* refill below this backlog */
#define LOADGEN_SINK_MAX	(8u << 20)	/* bytes buffered per connection */
#define LOADGEN_INBUF		(64u << 10)	/* bytes of daemon input kept */
#define LOADGEN_CLOSE_WAIT_MS	30000		/* wait for profd to hang up */
#define LOADGEN_STATS_MS	1000		/* stats message period */
#define LOADGEN_MAX_STATS	64		/* agent counters we can send */
#define LOADGEN_POLL_MS		100		/* poll() timeout */
#define LOADGEN_TICK_POLL_MS	5		/* fleet: finer, for its ticks */
#define LOADGEN_READ_CHUNK	65536		/* bytes asked of a reply read */
#define LOADGEN_MAX_PROBES	100000		/* latency probes of one run */
#define LOADGEN_REPLY_MAX	PROTO_MAX_REPLY	/* status reply */
#define LOADGEN_REQUEST_MS	30000		/* give up on one request */
#define LOADGEN_INGEST_WEIGHT	10000		/* us: 100 Hz */
#define LOADGEN_INGEST_SPAN_US	10000		/* time covered by a batch */
#define LOADGEN_READY_WAIT_MS	60000		/* for profd to take definitions */
#define LOADGEN_READY_POLL_US	20000
#define LOADGEN_WEEK_MARGIN_S	600		/* week: s clear of --days */
#define LOADGEN_LAG_NS		1000000000ull	/* newest sample: now - 1 s */

enum loadgen_mode {
	LOADGEN_INGEST,
	LOADGEN_FLEET,
	LOADGEN_FILL,
	LOADGEN_STACKS,
	LOADGEN_WEEK,
	LOADGEN_LATENCY,
};

static const char *const loadgen_mode_names[] = {
	"ingest", "fleet", "fill", "stacks", "week", "latency"
};

struct loadgen_opts {
	enum loadgen_mode	 mode;
	const char		*rundir;
	unsigned		 conns;
	double			 seconds;
	double			 hold;		/* s kept open after "done" */
	int			 hold_stdin;	/* and until stdin ends */
	uint32_t		 stacks;
	uint32_t		 depth;
	uint32_t		 threads;
	uint64_t		 samples;	/* fill: in all */
	uint32_t		 rate;		/* fleet: samples/s a conn */
	uint32_t		 period_ms;	/* fleet, latency */
	uint64_t		 span_s;	/* fill: sample times span */
	uint32_t		 first;		/* global index of stack 1 */
	double			 days;		/* week */
	uint32_t		 bucket_s;	/* week */
	uint32_t		 per_bucket;	/* week: samples a bucket */
	uint32_t		 pid_base;
};

/*
 * One fake agent.  Its stacks are global numbers first..first+nstacks-1;
 * samples refer to them by wire id (1..nstacks).  t_ns is the time of its
 * next sample in timed modes (fill, week), step_ns the time between two.
 */
struct loadgen_conn {
	int			 fd;
	uint32_t		 pid;
	struct proto_sink	 out;
	size_t			 off;		/* bytes of out already sent */
	char			 in[LOADGEN_INBUF];
	size_t			 inlen;
	uint32_t		 first;
	uint32_t		 nstacks;
	uint32_t		 defined;	/* stacks defined so far */
	uint64_t		 quota;		/* samples to send, timed modes */
	uint64_t		 queued;	/* samples encoded */
	uint64_t		 t_ns;
	uint64_t		 step_ns;
	uint32_t		 weight_us;
	uint64_t		 next_tick_ns;	/* fleet */
	uint64_t		 next_stats_ns;
	uint64_t		 rng;
	int			 closed;	/* profd hung up or failed */
	int			 eof;		/* we shut down writing */
};

static struct loadgen_opts	 loadgen_opts;
static struct loadgen_conn	*loadgen_conns;
static struct proto_sample	 loadgen_batch[PROTO_MAX_BATCH];
static char			 loadgen_agent_path[108];
static char			 loadgen_control_path[108];
static uint64_t			 loadgen_lost;

/* Nanoseconds on a clock. */
static uint64_t
loadgen_ns(clockid_t clk)
{
	struct timespec	ts;

	clock_gettime(clk, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
}

/* The next number of a xorshift64* generator. */
static uint64_t
loadgen_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return (*s * 2685821657736338717ull);
}

/* A skewed index below n: a few stacks hot, a long tail, as in a profile. */
static uint32_t
loadgen_skewed(uint64_t *s, uint32_t n)
{
	double	u;

	u = (double)(loadgen_rand(s) >> 11) / (double)(1ull << 53);
	return ((uint32_t)(u * u * u * n) % n);
}

/* Mixes two numbers into a frame index. */
static uint32_t
loadgen_mix(uint64_t a, uint64_t b)
{
	uint64_t	x = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull);

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	return ((uint32_t)(x % LOADGEN_FRAMES));
}

/*
 * The frame at depth j (leaf = 0) of global stack k.  The three innermost
 * frames spell k in base LOADGEN_FRAMES, so stacks are distinct; outer
 * frames depend on k coarsely, so stacks share roots as real ones do.
 */
static uint32_t
loadgen_frame_of(uint64_t k, uint32_t j)
{
	switch (j) {
	case 0:
		return ((uint32_t)(k % LOADGEN_FRAMES));
	case 1:
		return ((uint32_t)(k / LOADGEN_FRAMES % LOADGEN_FRAMES));
	case 2:
		return ((uint32_t)(k / LOADGEN_FRAMES / LOADGEN_FRAMES %
		    LOADGEN_FRAMES));
	}
	return (loadgen_mix(k % (j * 3 + 1), j));
}

/* Connects a Unix stream socket to path; the fd, or -1. */
static int
loadgen_connect(const char *path)
{
	struct sockaddr_un	sun;
	int			fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return (-1);
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		close(fd);
		return (-1);
	}
	return (fd);
}

/* Encodes the hello and the frame pool's strings, functions and frames. */
static int
loadgen_define_pool(struct loadgen_conn *c)
{
	struct proto_hello	 h;
	struct proto_sink	*out = &c->out;
	char			 name[LOADGEN_NAME_MAX];
	const char		*argv[] = { "loadgen", loadgen_mode_names[
				    loadgen_opts.mode] };
	uint32_t		 i, sid;
	int			 n;

	memset(&h, 0, sizeof h);
	h.version = PROTO_VERSION;
	h.pid = c->pid;
	h.ppid = (uint64_t)getpid();
	h.start_ns = loadgen_ns(CLOCK_REALTIME);
	h.host = "loadgen";
	h.service = "bench";
	h.python = "3.12.0";
	h.reader = "gil";
	if (proto_send_hello(out, &h, argv, 2) != 0)
		return (-1);
	for (i = 0; i < LOADGEN_FILES; i++) {
		n = snprintf(name, sizeof name, "/srv/app/pkg/module_%u.py", i);
		if (proto_send_string(out, i + 1, name, (size_t)n) != 0)
			return (-1);
	}
	for (i = 0; i < LOADGEN_FUNCS; i++) {
		sid = LOADGEN_FILES + i + 1;
		n = snprintf(name, sizeof name, "handler_%u", i);
		if (proto_send_string(out, sid, name, (size_t)n) != 0 ||
		    proto_send_func(out, i + 1, sid, i % LOADGEN_FILES + 1,
		    10 * i + 1) != 0)
			return (-1);
	}
	for (i = 0; i < LOADGEN_FRAMES; i++) {
		if (proto_send_frame(out, i + 1, i / LOADGEN_LINES + 1,
		    10 * (i / LOADGEN_LINES) + 2 + i % LOADGEN_LINES) != 0)
			return (-1);
	}
	for (i = 0; i < loadgen_opts.threads; i++) {
		sid = LOADGEN_FILES + LOADGEN_FUNCS + i + 1;
		n = snprintf(name, sizeof name, "worker-%u", i);
		if (proto_send_string(out, sid, name, (size_t)n) != 0 ||
		    proto_send_thread(out, i + 1, (uint64_t)c->pid * 1000 + i,
		    sid) != 0)
			return (-1);
	}
	return (0);
}

/* Messages of the hello and the pool, per connection. */
static uint64_t
loadgen_pool_messages(void)
{
	return (1 + LOADGEN_FILES + 2 * LOADGEN_FUNCS + LOADGEN_FRAMES +
	    2 * (uint64_t)loadgen_opts.threads);
}

/* Encodes the definition of wire stack id (1-based) of global number k. */
static int
loadgen_define_stack(struct loadgen_conn *c, uint32_t id, uint64_t k)
{
	uint32_t	frames[PROTO_MAX_DEPTH], j;

	for (j = 0; j < loadgen_opts.depth; j++)
		frames[j] = loadgen_frame_of(k, j) + 1;
	return (proto_send_stack(&c->out, id, 0, frames, loadgen_opts.depth));
}

/* Encodes more of c's stack definitions, up to the low-water mark. */
static int
loadgen_define_stacks(struct loadgen_conn *c)
{
	while (c->defined < c->nstacks && c->out.len < LOADGEN_LOW_WATER) {
		if (loadgen_define_stack(c, c->defined + 1,
		    (uint64_t)c->first + c->defined) != 0)
			return (-1);
		c->defined++;
	}
	return (0);
}

/* Encodes this agent's counters, as a real agent does once a second. */
static int
loadgen_send_stats(struct loadgen_conn *c)
{
	uint64_t	v[LOADGEN_MAX_STATS];
	size_t		i;

	if (proto_agent_stat_count > LOADGEN_MAX_STATS)
		return (-1);
	memset(v, 0, sizeof v);
	for (i = 0; i < proto_agent_stat_count; i++) {
		if (strcmp(proto_agent_stat_names[i], "samples") == 0)
			v[i] = c->queued;
		else if (strcmp(proto_agent_stat_names[i], "connects") == 0)
			v[i] = 1;
	}
	return (proto_send_stats(&c->out, v));
}

/* Ingest: one full batch of the 1,000 stacks, stamped now. */
static int
loadgen_refill_ingest(struct loadgen_conn *c, uint64_t now_real)
{
	uint32_t	i, n = PROTO_MAX_BATCH;

	for (i = 0; i < n; i++) {
		loadgen_batch[i].stack = loadgen_skewed(&c->rng, c->nstacks) +
		    1;
		loadgen_batch[i].thread = i % loadgen_opts.threads + 1;
		loadgen_batch[i].dt_us = i % loadgen_opts.threads == 0 ?
		    (uint32_t)((uint64_t)LOADGEN_INGEST_SPAN_US *
		    loadgen_opts.threads / n) : 0;
		loadgen_batch[i].weight_us = LOADGEN_INGEST_WEIGHT;
		loadgen_batch[i].flags = PROTO_SAMPLE_ONCPU;
	}
	if (proto_send_samples(&c->out, now_real - LOADGEN_LAG_NS,
	    loadgen_batch, n) != 0)
		return (-1);
	c->queued += n;
	return (0);
}

/* Fleet: one period's samples, spread over the period just gone. */
static int
loadgen_refill_fleet(struct loadgen_conn *c, uint64_t now_real)
{
	uint64_t	period_us = (uint64_t)loadgen_opts.period_ms * 1000;
	uint32_t	i, n;

	n = (uint32_t)((uint64_t)loadgen_opts.rate * loadgen_opts.period_ms /
	    1000);
	if (n == 0)
		n = 1;
	if (n > PROTO_MAX_BATCH)
		n = PROTO_MAX_BATCH;
	for (i = 0; i < n; i++) {
		loadgen_batch[i].stack = loadgen_skewed(&c->rng, c->nstacks) +
		    1;
		loadgen_batch[i].thread = i % loadgen_opts.threads + 1;
		loadgen_batch[i].dt_us = i == 0 ? 0 : (uint32_t)(period_us / n);
		loadgen_batch[i].weight_us = (uint32_t)(1000000 /
		    loadgen_opts.rate);
		loadgen_batch[i].flags = PROTO_SAMPLE_ONCPU;
	}
	if (proto_send_samples(&c->out, now_real - period_us * 1000, loadgen_batch,
	    n) != 0)
		return (-1);
	c->queued += n;
	return (0);
}

/* Fill, stacks, week: the next batch of c's quota, at its own times. */
static int
loadgen_refill_timed(struct loadgen_conn *c)
{
	uint64_t	base = c->t_ns, t = c->t_ns, prev = c->t_ns;
	uint32_t	i, n;

	n = c->quota - c->queued < PROTO_MAX_BATCH ?
	    (uint32_t)(c->quota - c->queued) : PROTO_MAX_BATCH;
	for (i = 0; i < n; i++) {
		if (loadgen_opts.mode == LOADGEN_STACKS)
			loadgen_batch[i].stack = (uint32_t)(c->queued + i) %
			    c->nstacks + 1;
		else
			loadgen_batch[i].stack = loadgen_skewed(&c->rng,
			    c->nstacks) + 1;
		loadgen_batch[i].thread = (uint32_t)((c->queued + i) %
		    loadgen_opts.threads) + 1;
		loadgen_batch[i].dt_us = (uint32_t)((t - prev) / 1000);
		prev += (uint64_t)loadgen_batch[i].dt_us * 1000;
		loadgen_batch[i].weight_us = c->weight_us;
		loadgen_batch[i].flags = PROTO_SAMPLE_ONCPU;
		t += c->step_ns;
	}
	if (proto_send_samples(&c->out, base, loadgen_batch, n) != 0)
		return (-1);
	c->t_ns = t;
	c->queued += n;
	return (0);
}

/* Encodes what c should send next; *more is cleared once it has no more. */
static int
loadgen_refill(struct loadgen_conn *c, uint64_t now, uint64_t deadline,
    int *more)
{
	*more = 1;
	if (c->defined < c->nstacks)
		return (loadgen_define_stacks(c));
	if (c->out.len - c->off >= LOADGEN_LOW_WATER)
		return (0);
	switch (loadgen_opts.mode) {
	case LOADGEN_INGEST:
		if (now >= deadline)
			break;
		return (loadgen_refill_ingest(c,
		    loadgen_ns(CLOCK_REALTIME)));
	case LOADGEN_FLEET:
		if (now >= deadline)
			break;
		if (now >= c->next_stats_ns) {
			c->next_stats_ns += (uint64_t)LOADGEN_STATS_MS *
			    1000000;
			if (loadgen_send_stats(c) != 0)
				return (-1);
		}
		if (now < c->next_tick_ns)
			return (0);
		c->next_tick_ns += (uint64_t)loadgen_opts.period_ms * 1000000;
		return (loadgen_refill_fleet(c, loadgen_ns(CLOCK_REALTIME)));
	default:
		if (c->queued >= c->quota)
			break;
		return (loadgen_refill_timed(c));
	}
	*more = 0;
	return (0);
}

/* Opens connection i, hello and pool encoded; 0, or -1 (printed). */
static int
loadgen_open(struct loadgen_conn *c, unsigned i)
{
	c->fd = loadgen_connect(loadgen_agent_path);
	if (c->fd == -1) {
		fprintf(stderr, "loadgen: connect %s: %s\n",
		    loadgen_agent_path, strerror(errno));
		return (-1);
	}
	if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) == -1) {
		fprintf(stderr, "loadgen: fcntl: %s\n", strerror(errno));
		return (-1);
	}
	c->pid = loadgen_opts.pid_base + i;
	c->rng = 0x853c49e6748fea9bull ^ ((uint64_t)i + 1) * 0x9e3779b97f4a7c15ull;
	proto_sink_init(&c->out, LOADGEN_SINK_MAX);
	if (loadgen_define_pool(c) != 0) {
		fprintf(stderr, "loadgen: definitions do not fit %u bytes\n",
		    LOADGEN_SINK_MAX);
		return (-1);
	}
	return (0);
}

/* Reads and drops what profd sent (CONFIG); -1 once it hung up. */
static int
loadgen_read(struct loadgen_conn *c)
{
	ssize_t	n;

	for (;;) {
		n = recv(c->fd, c->in, sizeof c->in, MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return (0);
		return (-1);
	}
}

/* Sends what is buffered; -1 when the connection failed. */
static int
loadgen_write(struct loadgen_conn *c)
{
	ssize_t	n;

	while (c->off < c->out.len) {
		n = send(c->fd, c->out.data + c->off, c->out.len - c->off,
		    MSG_NOSIGNAL);
		if (n > 0) {
			c->off += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return (-1);
	}
	if (c->off == c->out.len) {
		c->out.len = 0;
		c->off = 0;
	} else if (c->off >= LOADGEN_LOW_WATER) {
		proto_sink_consume(&c->out, c->off);
		c->off = 0;
	}
	return (0);
}

/* Marks c failed, once, saying why. */
static void
loadgen_lose(struct loadgen_conn *c, const char *why)
{
	if (c->closed)
		return;
	fprintf(stderr, "loadgen: connection of pid %u: %s\n", c->pid, why);
	c->closed = 1;
	loadgen_lost++;
}

static void	loadgen_wait_handled(uint64_t, uint64_t);

/*
 * Every definition is written: waits for profd to have handled them, then
 * schedules the connections' first ticks and says "ready".  Returns the
 * time the run starts.
 */
static uint64_t
loadgen_ready(unsigned nconns, unsigned open, uint64_t base_msgs)
{
	struct loadgen_conn	*c;
	uint64_t		 now, defs = 0;
	unsigned		 i;

	for (i = 0; i < nconns; i++)
		defs += loadgen_pool_messages() + loadgen_conns[i].nstacks;
	loadgen_wait_handled(base_msgs, defs);
	now = loadgen_ns(CLOCK_MONOTONIC);
	for (i = 0; i < nconns; i++) {
		c = &loadgen_conns[i];
		c->next_tick_ns = now + loadgen_rand(&c->rng) %
		    ((uint64_t)loadgen_opts.period_ms * 1000000);
		c->next_stats_ns = now + (uint64_t)LOADGEN_STATS_MS * 1000000;
	}
	printf("ready conns=%u lost=%llu defs=%llu\n", open,
	    (unsigned long long)loadgen_lost, (unsigned long long)defs);
	fflush(stdout);
	return (now);
}

/* Whether stdin has ended (never blocks). */
static int
loadgen_stdin_ended(void)
{
	struct pollfd	pfd = { .fd = 0, .events = POLLIN };
	char		buf[256];

	if (poll(&pfd, 1, 0) <= 0)
		return (0);
	return (read(0, buf, sizeof buf) <= 0);
}

/*
 * Runs the connections until every one has sent all it has and, after
 * "done" and the hold, until profd has hung up on each one after our
 * shutdown (so everything sent has been read by profd).
 */
static int
loadgen_pump(unsigned nconns, uint64_t base_msgs)
{
	struct pollfd	*pfd;
	struct loadgen_conn *c;
	uint64_t	 now, deadline = UINT64_MAX, done_at = 0, sent;
	uint64_t	 close_by = 0, ready_at = 0;
	unsigned	 i, active, open;
	int		 more, ready = 0, timeout;

	if ((pfd = calloc(nconns, sizeof *pfd)) == NULL)
		return (-1);
	for (;;) {
		now = loadgen_ns(CLOCK_MONOTONIC);
		active = open = 0;
		for (i = 0; i < nconns; i++) {
			c = &loadgen_conns[i];
			pfd[i].fd = -1;
			pfd[i].events = 0;
			pfd[i].revents = 0;
			if (c->closed)
				continue;
			open++;
			pfd[i].fd = c->fd;
			pfd[i].events = POLLIN;
			if (c->eof)
				continue;
			if (ready && done_at == 0) {
				if (loadgen_refill(c, now, deadline, &more)
				    != 0) {
					loadgen_lose(c, "encoding failed");
					continue;
				}
				if (more)
					active++;
			} else if (!ready && c->defined < c->nstacks) {
				if (loadgen_define_stacks(c) != 0) {
					loadgen_lose(c, "encoding failed");
					continue;
				}
			}
			if (c->off < c->out.len) {
				pfd[i].events |= POLLOUT;
				active++;
			}
		}
		if (!ready) {
			for (i = 0; i < nconns; i++) {
				c = &loadgen_conns[i];
				if (!c->closed && (c->defined < c->nstacks ||
				    c->off < c->out.len))
					break;
			}
			if (i == nconns) {
				ready = 1;
				ready_at = now = loadgen_ready(nconns, open,
				    base_msgs);
				deadline = now + (uint64_t)(loadgen_opts.seconds *
				    1e9);
				continue;
			}
		} else if (done_at == 0 && active == 0) {
			done_at = now;
			for (sent = 0, i = 0; i < nconns; i++)
				sent += loadgen_conns[i].queued;
			printf("done sent=%llu seconds=%.3f conns=%u "
			    "lost=%llu\n", (unsigned long long)sent,
			    (double)(now - ready_at) / 1e9, open,
			    (unsigned long long)loadgen_lost);
			fflush(stdout);
		}
		if (done_at != 0 && close_by == 0 &&
		    now >= done_at + (uint64_t)(loadgen_opts.hold * 1e9) &&
		    (!loadgen_opts.hold_stdin || loadgen_stdin_ended())) {
			for (i = 0; i < nconns; i++) {
				c = &loadgen_conns[i];
				if (!c->closed && shutdown(c->fd, SHUT_WR) == 0)
					c->eof = 1;
			}
			close_by = now + (uint64_t)LOADGEN_CLOSE_WAIT_MS *
			    1000000;
		}
		if (close_by != 0 && (open == 0 || now >= close_by))
			break;

		timeout = LOADGEN_POLL_MS;
		if (loadgen_opts.mode == LOADGEN_FLEET && ready)
			timeout = LOADGEN_TICK_POLL_MS;
		if (poll(pfd, nconns, timeout) == -1 && errno != EINTR) {
			fprintf(stderr, "loadgen: poll: %s\n", strerror(errno));
			free(pfd);
			return (-1);
		}
		for (i = 0; i < nconns; i++) {
			c = &loadgen_conns[i];
			if (c->closed || pfd[i].fd == -1)
				continue;
			if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    loadgen_read(c) != 0) {
				if (c->eof) {
					c->closed = 1;
					continue;
				}
				loadgen_lose(c, "profd hung up");
				continue;
			}
			if ((pfd[i].revents & POLLOUT) && loadgen_write(c) != 0)
				loadgen_lose(c, strerror(errno));
		}
	}
	free(pfd);
	for (sent = 0, i = 0; i < nconns; i++)
		sent += loadgen_conns[i].queued;
	printf("end sent=%llu lost=%llu\n", (unsigned long long)sent,
	    (unsigned long long)loadgen_lost);
	return (0);
}

/* Sends one control request with no args and returns the reply body,
 * which points into *bufp (the caller frees it). */
static int
loadgen_request(const char *command, msgpack_unpacked *up, char **bufp,
    const msgpack_object **body)
{
	struct proto_sink	 sink;
	struct proto_msg	 msg;
	struct pollfd		 pfd;
	const char		*payload, *err;
	char			*buf = NULL, *p;
	size_t			 len = 0, cap = 0, off = 0, plen, flen;
	uint64_t		 deadline;
	ssize_t			 n;
	int			 fd = -1, r;

	proto_sink_init(&sink, PROTO_MAX_MSG);
	if (proto_end(&sink, proto_begin_request(&sink, command, 0)) != 0)
		goto fail;
	if ((fd = loadgen_connect(loadgen_control_path)) == -1) {
		fprintf(stderr, "loadgen: connect %s: %s\n",
		    loadgen_control_path, strerror(errno));
		goto fail;
	}
	while (off < sink.len) {
		n = send(fd, sink.data + off, sink.len - off, MSG_NOSIGNAL);
		if (n <= 0 && errno != EINTR)
			goto fail;
		if (n > 0)
			off += (size_t)n;
	}
	deadline = loadgen_ns(CLOCK_MONOTONIC) +
	    (uint64_t)LOADGEN_REQUEST_MS * 1000000;
	for (;;) {
		r = proto_frame_peek(buf, len, LOADGEN_REPLY_MAX, &payload,
		    &plen, &flen);
		if (r == 1)
			break;
		if (r == -1 || loadgen_ns(CLOCK_MONOTONIC) > deadline)
			goto fail;
		if (cap - len < LOADGEN_READ_CHUNK) {
			if ((p = realloc(buf, cap + LOADGEN_READ_CHUNK)) == NULL)
				goto fail;
			buf = p;
			cap += LOADGEN_READ_CHUNK;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 1000) <= 0)
			continue;
		n = recv(fd, buf + len, cap - len, 0);
		if (n == 0 || (n < 0 && errno != EINTR))
			goto fail;
		if (n > 0)
			len += (size_t)n;
	}
	msgpack_unpacked_destroy(up);
	msgpack_unpacked_init(up);
	if (proto_decode(payload, plen, up, &msg, &err) != 0 ||
	    msg.type != PROTO_REPLY || !msg.reply.ok ||
	    msg.reply.body->type != MSGPACK_OBJECT_MAP)
		goto fail;
	*body = msg.reply.body;
	*bufp = buf;
	close(fd);
	proto_sink_free(&sink);
	return (0);

fail:
	fprintf(stderr, "loadgen: request '%s' failed\n", command);
	if (fd != -1)
		close(fd);
	free(buf);
	proto_sink_free(&sink);
	return (-1);
}

/* One of profd's counters (daemon.NAME), from a status request. */
static int
loadgen_counter(const char *name, uint64_t *v)
{
	msgpack_unpacked	 up;
	const msgpack_object	*body, *d;
	char			*buf = NULL;
	int			 rc = -1;

	msgpack_unpacked_init(&up);
	if (loadgen_request("status", &up, &buf, &body) != 0)
		goto out;
	d = proto_map_get(&body->via.map, "daemon");
	if (d == NULL || d->type != MSGPACK_OBJECT_MAP ||
	    proto_map_uint(&d->via.map, name, v) != 0) {
		fprintf(stderr, "loadgen: status has no daemon.%s\n", name);
		goto out;
	}
	rc = 0;
out:
	msgpack_unpacked_destroy(&up);
	free(buf);
	return (rc);
}

/* Waits until profd has handled `want` more messages than `base`, so
 * definitions are not timed as samples; gives up quietly. */
static void
loadgen_wait_handled(uint64_t base, uint64_t want)
{
	uint64_t	v, until;

	until = loadgen_ns(CLOCK_MONOTONIC) + (uint64_t)LOADGEN_READY_WAIT_MS *
	    1000000;
	while (loadgen_counter("messages_received", &v) == 0 &&
	    v < base + want && loadgen_ns(CLOCK_MONOTONIC) < until)
		usleep(LOADGEN_READY_POLL_US);
}

/* Orders two latencies. */
static int
loadgen_cmp(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x < y ? -1 : x > y);
}

/*
 * Latency: one agent connection sends, every period, a new stack and one
 * sample on it, then asks `status` over control.sock again and again until
 * daemon.samples_received counts that sample.  The time from the sample's
 * send to that reply is the agent-to-store latency: it includes every
 * stall of profd's one event loop (say a big `show` being computed, which
 * the driver runs meanwhile), plus one status round trip (tens of us when
 * idle).  Nothing else may send samples during the run.
 */
static int
loadgen_latency(void)
{
	struct loadgen_conn	*c = &loadgen_conns[0];
	struct proto_sample	 s;
	uint64_t		*lat = NULL, want, got, t0, now, end, next;
	uint64_t		 period = (uint64_t)loadgen_opts.period_ms * 1000000;
	size_t			 n = 0, max;
	unsigned		 polls = 0;
	int			 rc = -1;

	max = (size_t)(loadgen_opts.seconds * 1000 / loadgen_opts.period_ms) + 1;
	if (max > LOADGEN_MAX_PROBES)
		max = LOADGEN_MAX_PROBES;
	if ((lat = calloc(max, sizeof *lat)) == NULL)
		goto out;
	c->nstacks = 0;
	/* Blocking from here: a probe is written whole before its clock. */
	if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK) == -1)
		goto out;
	while (c->off < c->out.len)
		if (loadgen_write(c) != 0)
			goto out;
	if (loadgen_counter("samples_received", &want) != 0)
		goto out;
	printf("ready conns=1 lost=0\n");
	fflush(stdout);
	now = loadgen_ns(CLOCK_MONOTONIC);
	end = now + (uint64_t)(loadgen_opts.seconds * 1e9);
	next = now;
	while (n < max && (now = loadgen_ns(CLOCK_MONOTONIC)) < end) {
		if (now < next) {
			usleep((useconds_t)((next - now) / 1000));
			continue;
		}
		next += period;
		c->nstacks++;
		if (loadgen_define_stack(c, c->nstacks, (uint64_t)
		    loadgen_opts.first + c->nstacks - 1) != 0)
			goto out;
		s.stack = c->nstacks;
		s.thread = 1;
		s.dt_us = 0;
		s.weight_us = 1000 * loadgen_opts.period_ms;
		s.flags = PROTO_SAMPLE_ONCPU;
		if (proto_send_samples(&c->out, loadgen_ns(CLOCK_REALTIME) -
		    LOADGEN_LAG_NS, &s, 1) != 0)
			goto out;
		t0 = loadgen_ns(CLOCK_MONOTONIC);
		while (c->off < c->out.len) {
			if (loadgen_write(c) != 0) {
				loadgen_lose(c, strerror(errno));
				goto out;
			}
		}
		c->queued++;
		want++;
		do {
			if (loadgen_counter("samples_received", &got) != 0)
				goto out;
			polls++;
		} while (got < want);
		lat[n++] = loadgen_ns(CLOCK_MONOTONIC) - t0;
		if (loadgen_read(c) != 0) {
			loadgen_lose(c, "profd hung up");
			goto out;
		}
		if (got > want)
			want = got;	/* someone else sends: keep going */
		if (next < loadgen_ns(CLOCK_MONOTONIC))
			next = loadgen_ns(CLOCK_MONOTONIC);
	}
	if (n == 0)
		goto out;
	qsort(lat, n, sizeof *lat, loadgen_cmp);
	printf("done sent=%zu probes=%zu polls=%u p50_ms=%.3f p99_ms=%.3f "
	    "max_ms=%.3f\n", n, n, polls, lat[n / 2] / 1e6,
	    lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1e6,
	    lat[n - 1] / 1e6);
	printf("end sent=%zu lost=0\n", n);
	rc = 0;
out:
	free(lat);
	return (rc);
}

/* Prints the usage. */
static void
loadgen_usage(FILE *f)
{
	fprintf(f,
"usage: loadgen [-r DIR] ingest|fleet|fill|stacks|week|latency [options]\n"
"  -r DIR            profd's runtime dir\n"
"  -c N              connections (ingest 2, fleet 500, fill 4, week 50)\n"
"  -t S              seconds (ingest, fleet, latency)\n"
"  -n K              distinct stacks (ingest 1000, fill 100000, stacks\n"
"                    100000, week 5000)\n"
"  -d D              stack depth (20)\n"
"  -T N              threads per connection (8)\n"
"  -N S              samples in all (fill: 10000000)\n"
"  --rate HZ         fleet: samples a second per connection (100)\n"
"  --period-ms MS    fleet: batch period (100); latency: probe period (20)\n"
"  --span S          fill: sample times over the last S seconds (3540)\n"
"  --first K         global number of the first stack (1)\n"
"  --days D          week: days of data (7)\n"
"  --bucket S        week: bucket seconds (10)\n"
"  --per-bucket N    week: samples per bucket and process (20); each\n"
"                    weighs bucket/N so weights add up to 100 Hz\n"
"  --hold S          keep connections open S seconds after 'done'\n"
"  --hold-stdin      and until stdin ends\n"
"  --pid-base P      fake pid of the first connection\n");
}

/* Parses a number option, or exits. */
static double
loadgen_number(const char *name, const char *s, double min, double max)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max)) {
		fprintf(stderr, "loadgen: %s wants a number from %g to %g, "
		    "not '%s'\n", name, min, max, s);
		exit(2);
	}
	return (v);
}

/* Fills in the defaults of the mode, then checks the options. */
static void
loadgen_defaults(struct loadgen_opts *o, int set_c, int set_n, int set_N)
{
	switch (o->mode) {
	case LOADGEN_INGEST:
		o->conns = set_c ? o->conns : 2;
		o->stacks = set_n ? o->stacks : 1000;
		break;
	case LOADGEN_FLEET:
		o->conns = set_c ? o->conns : 500;
		o->stacks = set_n ? o->stacks : 1000;
		break;
	case LOADGEN_FILL:
		o->conns = set_c ? o->conns : 4;
		o->stacks = set_n ? o->stacks : 100000;
		o->samples = set_N ? o->samples : 10000000;
		break;
	case LOADGEN_STACKS:
		o->conns = 1;
		o->stacks = set_n ? o->stacks : 100000;
		o->samples = o->stacks;
		break;
	case LOADGEN_WEEK:
		o->conns = set_c ? o->conns : 50;
		o->stacks = set_n ? o->stacks : 5000;
		o->threads = 1;
		break;
	case LOADGEN_LATENCY:
		o->conns = 1;
		o->stacks = 0;
		break;
	}
	if (o->conns < 1 || o->conns > LOADGEN_MAX_CONNS) {
		fprintf(stderr, "loadgen: -c wants 1 to %d connections\n",
		    LOADGEN_MAX_CONNS);
		exit(2);
	}
	if (o->mode == LOADGEN_FILL && o->stacks < o->conns) {
		fprintf(stderr, "loadgen: fill wants at least one stack per "
		    "connection\n");
		exit(2);
	}
}

/* Sets up connection i's stacks and quota for the mode. */
static void
loadgen_plan(struct loadgen_conn *c, unsigned i, uint64_t now_real)
{
	struct loadgen_opts	*o = &loadgen_opts;
	uint64_t		 span_ns, buckets;

	c->first = o->first;
	c->nstacks = o->stacks;
	switch (o->mode) {
	case LOADGEN_FILL:
		/* Each connection its own share of the stacks and samples. */
		c->first = o->first + (uint32_t)((uint64_t)o->stacks * i /
		    o->conns);
		c->nstacks = (uint32_t)((uint64_t)o->stacks * (i + 1) /
		    o->conns) + o->first - c->first;
		c->quota = o->samples / o->conns + (i < o->samples % o->conns);
		span_ns = o->span_s * 1000000000ull;
		c->t_ns = now_real - LOADGEN_LAG_NS - span_ns;
		c->step_ns = c->quota ? span_ns / c->quota : 0;
		c->weight_us = LOADGEN_INGEST_WEIGHT;
		break;
	case LOADGEN_STACKS:
		c->quota = o->samples;
		c->t_ns = now_real - LOADGEN_LAG_NS;
		c->step_ns = 1000;
		c->weight_us = LOADGEN_INGEST_WEIGHT;
		break;
	case LOADGEN_WEEK:
		/*
		 * Every bucket of every process gets per_bucket samples in
		 * place of 100 Hz x bucket: the daemon keeps cells by
		 * (bucket, stack), so fewer samples a bucket underestimate
		 * the distinct cells, never the bucket count or the weights.
		 */
		buckets = o->days * 86400 > LOADGEN_WEEK_MARGIN_S ? (uint64_t)
		    ((o->days * 86400 - LOADGEN_WEEK_MARGIN_S) / o->bucket_s) :
		    1;
		span_ns = buckets * o->bucket_s * 1000000000ull;
		c->quota = buckets * o->per_bucket;
		c->t_ns = now_real - LOADGEN_LAG_NS - span_ns;
		c->step_ns = (uint64_t)o->bucket_s * 1000000000ull /
		    o->per_bucket;
		c->weight_us = (uint32_t)((uint64_t)o->bucket_s * 1000000 /
		    o->per_bucket);
		break;
	default:
		break;
	}
}

/* Parses the options, opens the connections and runs the mode. */
int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "rate", required_argument, NULL, 'R' },
		{ "period-ms", required_argument, NULL, 'P' },
		{ "span", required_argument, NULL, 'S' },
		{ "first", required_argument, NULL, 'F' },
		{ "days", required_argument, NULL, 'D' },
		{ "bucket", required_argument, NULL, 'B' },
		{ "per-bucket", required_argument, NULL, 'M' },
		{ "hold", required_argument, NULL, 'H' },
		{ "pid-base", required_argument, NULL, 'I' },
		{ "hold-stdin", no_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct loadgen_opts	*o = &loadgen_opts;
	struct rlimit		 rl;
	char			 dir[256];
	uint64_t		 now_real, base_msgs;
	unsigned		 i;
	int			 ch, set_c = 0, set_n = 0, set_N = 0, rc = 1;
	int			 set_p = 0;

	o->seconds = 5;
	o->depth = 20;
	o->threads = 8;
	o->rate = 100;
	o->period_ms = 100;
	o->span_s = 3540;
	o->first = 1;
	o->days = 7;
	o->bucket_s = 10;
	o->per_bucket = 20;
	o->pid_base = (uint32_t)(getpid() % 2000000) * 1024 + 1;
	/* Options may come before and after the mode word. */
	for (;;) {
		ch = getopt_long(argc, argv, "+r:c:t:n:d:T:N:h", longopts, NULL);
		if (ch == -1) {
			if (optind >= argc)
				break;
			for (i = 0; i < sizeof loadgen_mode_names /
			    sizeof loadgen_mode_names[0]; i++)
				if (strcmp(argv[optind], loadgen_mode_names[i])
				    == 0)
					break;
			if (i == sizeof loadgen_mode_names /
			    sizeof loadgen_mode_names[0]) {
				fprintf(stderr, "loadgen: unknown mode '%s'\n",
				    argv[optind]);
				loadgen_usage(stderr);
				return (2);
			}
			o->mode = (enum loadgen_mode)i;
			set_p |= 2;
			optind++;
			continue;
		}
		switch (ch) {
		case 'r':
			o->rundir = optarg;
			break;
		case 'c':
			o->conns = (unsigned)loadgen_number("-c", optarg, 1,
			    LOADGEN_MAX_CONNS);
			set_c = 1;
			break;
		case 't':
			o->seconds = loadgen_number("-t", optarg, 0.01,
			    LOADGEN_MAX_SECONDS);
			break;
		case 'n':
			o->stacks = (uint32_t)loadgen_number("-n", optarg, 1,
			    LOADGEN_MAX_STACKS);
			set_n = 1;
			break;
		case 'd':
			o->depth = (uint32_t)loadgen_number("-d", optarg, 3,
			    PROTO_MAX_DEPTH);
			break;
		case 'T':
			o->threads = (uint32_t)loadgen_number("-T", optarg, 1,
			    LOADGEN_MAX_THREADS);
			break;
		case 'N':
			o->samples = (uint64_t)loadgen_number("-N", optarg, 1,
			    1e12);
			set_N = 1;
			break;
		case 'R':
			o->rate = (uint32_t)loadgen_number("--rate", optarg, 1,
			    PROTO_RATE_MAX);
			break;
		case 'P':
			o->period_ms = (uint32_t)loadgen_number("--period-ms",
			    optarg, 1, 60000);
			set_p |= 1;
			break;
		case 'S':
			o->span_s = (uint64_t)loadgen_number("--span", optarg,
			    1, 366 * 86400.0);
			break;
		case 'F':
			o->first = (uint32_t)loadgen_number("--first", optarg,
			    0, 1e9);
			break;
		case 'D':
			o->days = loadgen_number("--days", optarg, 0.001, 366);
			break;
		case 'B':
			o->bucket_s = (uint32_t)loadgen_number("--bucket",
			    optarg, 1, 86400);
			break;
		case 'M':
			o->per_bucket = (uint32_t)loadgen_number(
			    "--per-bucket", optarg, 1, 100000);
			break;
		case 'H':
			o->hold = loadgen_number("--hold", optarg, 0,
			    LOADGEN_MAX_SECONDS);
			break;
		case 'I':
			o->pid_base = (uint32_t)loadgen_number("--pid-base",
			    optarg, 1, 4e9);
			break;
		case 'W':
			o->hold_stdin = 1;
			break;
		case 'h':
			loadgen_usage(stdout);
			return (0);
		default:
			loadgen_usage(stderr);
			return (2);
		}
	}
	if (!(set_p & 2)) {
		loadgen_usage(stderr);
		return (2);
	}
	if (o->mode == LOADGEN_LATENCY && !(set_p & 1))
		o->period_ms = 20;
	loadgen_defaults(o, set_c, set_n, set_N);
	if (rundir_resolve(o->rundir, dir, sizeof dir) != 0 ||
	    rundir_socket(dir, RUNDIR_AGENT_SOCK, loadgen_agent_path,
	    sizeof loadgen_agent_path) != 0 ||
	    rundir_socket(dir, RUNDIR_CONTROL_SOCK, loadgen_control_path,
	    sizeof loadgen_control_path) != 0) {
		fprintf(stderr, "loadgen: runtime dir path is too long\n");
		return (2);
	}
	/* Room for every connection's fd. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);

	if ((loadgen_conns = calloc(o->conns, sizeof *loadgen_conns)) == NULL) {
		fprintf(stderr, "loadgen: out of memory\n");
		return (1);
	}
	for (i = 0; i < o->conns; i++)
		loadgen_conns[i].fd = -1;
	if (loadgen_counter("messages_received", &base_msgs) != 0)
		base_msgs = 0;
	now_real = loadgen_ns(CLOCK_REALTIME);
	for (i = 0; i < o->conns; i++) {
		if (loadgen_open(&loadgen_conns[i], i) != 0)
			goto out;
		loadgen_plan(&loadgen_conns[i], i, now_real);
	}
	if (o->mode == LOADGEN_LATENCY)
		rc = loadgen_latency() == 0 ? 0 : 1;
	else
		rc = loadgen_pump(o->conns, base_msgs) == 0 ? 0 : 1;
out:
	for (i = 0; i < o->conns; i++) {
		if (loadgen_conns[i].fd != -1)
			close(loadgen_conns[i].fd);
		proto_sink_free(&loadgen_conns[i].out);
	}
	free(loadgen_conns);
	return (rc);
}
