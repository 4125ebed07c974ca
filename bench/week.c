/*
 * week.c -- the fleet week at full density, through the real store and
 * persist code, with past timestamps: 5 services x 10 workers (each
 * recycled every 6 hours), 4 threads a worker (one busy, three mostly
 * waiting), 100 Hz in wall mode, depth-20 stacks drawn from a Zipf
 * (s = 1.1) over 5,000 stacks a service.  Every 10 s bucket holds all its
 * samples: 1,000 a thread.  Housekeeping runs as profd's does, at
 * simulated time: the store ticks every bucket; each simulated minute
 * the store is flushed to disk, buckets on disk past the retention go and
 * those due are rolled up; definitions are swept every 10 simulated
 * minutes, the live processes' marked as their connections would.
 *
 * A thread's 1,000 draws of a bucket come from a pool of pre-drawn
 * histograms (POOL of them, each 1,000 real Zipf draws), picked at random
 * per bucket and thread: a bucket holds as many distinct stacks as 1,000
 * draws do, and a pool this size holds as many as an hour's draws.
 *
 * usage: week [-d days] [-m store MiB] [-t now_ns] DIR
 * Prints what it built and the store's and file's figures, one per line,
 * "name value".
 */

#include <sys/resource.h>

#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "persist.h"
#include "proto.h"
#include "query.h"
#include "store.h"

#define SEC		1000000000ull
#define SERVICES	5
#define WORKERS		10		/* per service */
#define THREADS		4		/* per worker: one busy */
#define NSTACKS		5000		/* per service */
#define DEPTH		20
#define DRAWS		1000		/* a thread's samples a bucket */
#define WAIT_DRAWS	30		/* of a waiting thread's, off its wait */
#define POOL		1024
#define BUCKET		(10 * SEC)
#define RECYCLE		(6 * 3600 * SEC)
#define FLUSH_EVERY	(60 * SEC)
#define SWEEP_EVERY	(600 * SEC)
#define WEIGHT_US	10000		/* 100 Hz */

struct hist {
	uint16_t	n;
	uint16_t	stack[DRAWS];	/* index in the service's stacks */
	uint16_t	count[DRAWS];
};

struct worker {
	uint32_t	instance;
	uint32_t	threads[THREADS];
	uint64_t	born;
};

static double		 zcdf[NSTACKS];
static struct hist	 pool[POOL], wait_pool[POOL];
static uint32_t		 stacks[SERVICES][NSTACKS];
static struct worker	 workers[SERVICES][WORKERS];
static uint64_t		 rng = 88172645463325252ull;
static uint32_t		 next_pid = 1000;

static uint64_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (rng);
}

static int
zipf(void)
{
	double	u = (double)(rnd() >> 11) / 9007199254740992.0;
	int	lo = 0, hi = NSTACKS - 1, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (zcdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo);
}

/* A histogram of `draws` Zipf draws, the rest on stack `rest`. */
static void
hist_make(struct hist *h, int draws, int rest)
{
	static int	at[NSTACKS];	/* index in h + 1, this call's */
	int		i, s;

	h->n = 0;
	for (i = 0; i < DRAWS; i++) {
		s = i < draws ? zipf() : rest;
		if (at[s] == 0) {
			h->stack[h->n] = (uint16_t)s;
			h->count[h->n++] = 0;
			at[s] = h->n;
		}
		h->count[at[s] - 1]++;
	}
	for (i = 0; i < h->n; i++)
		at[h->stack[i]] = 0;
}

static void
make_stacks(struct store *st)
{
	uint32_t	frames[DEPTH], name, file, func;
	char		buf[96];
	int		sv, i, j;

	for (sv = 0; sv < SERVICES; sv++) {
		snprintf(buf, sizeof buf, "/srv/svc%d/app.py", sv);
		file = store_string(st, buf, strlen(buf));
		for (i = 0; i < NSTACKS; i++) {
			/* Shared roots, then a path of its own. */
			for (j = 0; j < DEPTH; j++) {
				snprintf(buf, sizeof buf, "svc%d_f%d", sv,
				    j < 4 ? j : (i * 31 + j * 7) % 4000);
				name = store_string(st, buf, strlen(buf));
				func = store_func(st, name, file, j + 1);
				frames[DEPTH - 1 - j] = store_frame(st, func,
				    10 + (i + j) % 300);
			}
			if ((stacks[sv][i] = store_stack(st, frames, DEPTH,
			    0)) == 0)
				exit(2);
		}
	}
}

static void
spawn(struct store *st, int sv, int w, uint64_t t)
{
	static const char *const names[THREADS] = { "MainThread",
	    "heartbeat", "logger", "pool-0" };
	struct store_instance_info	 info;
	const char			*argv[] = { "gunicorn", "app:app" };
	char				 svc[16];
	struct worker			*k = &workers[sv][w];
	uint32_t			 name;
	int				 i;

	if (k->instance != 0)
		store_instance_detach(st, k->instance, t);
	memset(&info, 0, sizeof info);
	snprintf(svc, sizeof svc, "svc%d", sv);
	info.pid = next_pid++;
	info.ppid = 1;
	info.start_ns = t;
	info.host = "bench";
	info.host_len = 5;
	info.service = svc;
	info.service_len = (uint32_t)strlen(svc);
	info.python = "3.13.0";
	info.python_len = 6;
	info.reader = "direct";
	info.reader_len = 6;
	info.argv = argv;
	info.argc = 2;
	if ((k->instance = store_instance_attach(st, &info, t)) == 0)
		exit(2);
	for (i = 0; i < THREADS; i++) {
		name = store_string(st, names[i], strlen(names[i]));
		if ((k->threads[i] = store_thread(st, k->instance,
		    info.pid * 10 + i, name)) == 0)
			exit(2);
	}
	k->born = t;
}

/* A sweep as profd's: what live connections use is marked. */
static void
sweep(struct store *st)
{
	int	sv, w, i;

	store_sweep_begin(st);
	for (sv = 0; sv < SERVICES; sv++) {
		for (i = 0; i < NSTACKS; i++)
			store_mark(st, STORE_STACK, stacks[sv][i]);
		for (w = 0; w < WORKERS; w++) {
			store_mark(st, STORE_INSTANCE, workers[sv][w].instance);
			for (i = 0; i < THREADS; i++)
				store_mark(st, STORE_THREAD,
				    workers[sv][w].threads[i]);
		}
	}
	store_sweep_end(st);
}

static double
now_s(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + ts.tv_nsec / 1e9);
}

static double
cpu_s(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ((double)ts.tv_sec + ts.tv_nsec / 1e9);
}

/* Rows of the file by width, and their entries and bytes. */
static void
file_rows(const char *dir)
{
	sqlite3		*d;
	sqlite3_stmt	*s;
	char		 path[512];

	snprintf(path, sizeof path, "%s/%s", dir, PERSIST_FILE);
	if (sqlite3_open_v2(path, &d, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK || sqlite3_prepare_v2(d, "SELECT width_ns / 1000000000, "
	    "count(*), sum(n) FROM buckets GROUP BY width_ns", -1, &s,
	    NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(s) == SQLITE_ROW)
		printf("rows_%llds %lld buckets, %lld entries\n",
		    (long long)sqlite3_column_int64(s, 0),
		    (long long)sqlite3_column_int64(s, 1),
		    (long long)sqlite3_column_int64(s, 2));
	sqlite3_finalize(s);
	if (sqlite3_prepare_v2(d, "SELECT sum(n), (SELECT sum(length(entries)) "
	    "FROM buckets) + ifnull((SELECT sum(length(entries)) FROM "
	    "bucket_parts), 0) FROM buckets", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		printf("disk_entries %lld\ndisk_entry_bytes %lld\n",
		    (long long)sqlite3_column_int64(s, 0),
		    (long long)sqlite3_column_int64(s, 1));
	sqlite3_finalize(s);
	sqlite3_close(d);
}

int
main(int argc, char **argv)
{
	struct store_config	 cfg;
	struct store		*st;
	struct persist		*p;
	struct persist_counts	 pc;
	struct store_counts	 sc;
	struct rusage		 ru;
	const struct hist	*h;
	char			 err[256];
	double			 days = 7, mib = 184, t0, c0, flush_s = 0;
	double			 rollup_s = 0, f0;
	uint64_t		 now = 0, t, first, samples = 0, rollups = 0;
	uint32_t		 flags;
	int			 c, sv, w, i, k;

	while ((c = getopt(argc, argv, "d:m:t:")) != -1) {
		switch (c) {
		case 'd':
			days = atof(optarg);
			break;
		case 'm':
			mib = atof(optarg);
			break;
		case 't':
			now = strtoull(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: week [-d days] [-m store MiB] "
			    "[-t now_ns] DIR\n");
			return (2);
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: week [-d days] [-m store MiB] "
		    "[-t now_ns] DIR\n");
		return (2);
	}
	if (now == 0)
		now = (uint64_t)time(NULL) * SEC;
	now -= now % BUCKET;
	log_verbose = -1;
	zcdf[0] = 1;
	for (i = 1; i < NSTACKS; i++)
		zcdf[i] = zcdf[i - 1] + 1 / pow(i + 1, 1.1);
	for (i = 0; i < NSTACKS; i++)
		zcdf[i] /= zcdf[NSTACKS - 1];
	for (i = 0; i < POOL; i++) {
		hist_make(&pool[i], DRAWS, -1);
		hist_make(&wait_pool[i], WAIT_DRAWS, NSTACKS - 1 - i % 3);
	}
	store_config_default(&cfg);
	cfg.max_bytes = (size_t)(mib * 1048576);
	if ((st = store_new(&cfg)) == NULL)
		return (1);
	first = now - (uint64_t)(days * 86400) * SEC;
	first -= first % BUCKET;
	store_tick(st, first);
	if ((p = persist_open(argv[optind], st, first, err, sizeof err)) ==
	    NULL) {
		fprintf(stderr, "week: %s\n", err);
		return (1);
	}
	make_stacks(st);
	for (sv = 0; sv < SERVICES; sv++)
		for (w = 0; w < WORKERS; w++)
			spawn(st, sv, w, first - (uint64_t)w * RECYCLE /
			    WORKERS);
	t0 = now_s();
	c0 = cpu_s();
	for (t = first; t < now; t += BUCKET) {
		for (sv = 0; sv < SERVICES; sv++) {
			for (w = 0; w < WORKERS; w++) {
				if (t - workers[sv][w].born >= RECYCLE)
					spawn(st, sv, w, t);
				for (i = 0; i < THREADS; i++) {
					h = i == 0 ? &pool[rnd() % POOL] :
					    &wait_pool[rnd() % POOL];
					flags = (i == 0 ? PROTO_SAMPLE_ONCPU |
					    PROTO_SAMPLE_GIL : 0) |
					    (PROTO_MODE_WALL + 1) <<
					    QUERY_FLAGS_MODE_SHIFT;
					for (k = 0; k < h->n; k++)
						store_add(st, t + 5 * SEC,
						    workers[sv][w].threads[i],
						    stacks[sv][h->stack[k]],
						    flags, h->count[k],
						    (uint64_t)h->count[k] *
						    WEIGHT_US);
				}
				store_add_tally(st, t + 5 * SEC,
				    workers[sv][w].instance,
				    (PROTO_MODE_WALL + 1) <<
				    QUERY_FLAGS_MODE_SHIFT, THREADS * DRAWS, 0);
				samples += THREADS * DRAWS;
			}
		}
		store_tick(st, t + BUCKET + 10 * SEC);
		if ((t + BUCKET - first) % FLUSH_EVERY == 0) {
			f0 = now_s();
			if (persist_flush(p) != 0) {
				fprintf(stderr, "week: a flush failed\n");
				return (1);
			}
			flush_s += now_s() - f0;
			f0 = now_s();
			persist_expire(p, t + BUCKET, 4ull << 30);
			while ((k = persist_rollup(p, t + BUCKET, 1000)) > 0)
				rollups += (uint64_t)k;
			rollup_s += now_s() - f0;
		}
		if ((t + BUCKET - first) % SWEEP_EVERY == 0)
			sweep(st);
	}
	if (persist_flush(p) != 0)
		return (1);
	store_get_counts(st, &sc);
	persist_get_counts(p, &pc);
	getrusage(RUSAGE_SELF, &ru);
	printf("days %.2f\nsamples %" PRIu64 "\nseconds %.1f\n"
	    "cpu_seconds %.1f\n", days, samples, now_s() - t0, cpu_s() - c0);
	printf("flush_seconds %.1f\nrollup_seconds %.1f\n", flush_s,
	    rollup_s);
	printf("max_rss_kib %ld\nstore_bytes %zu\nstore_max_bytes %zu\n"
	    "store_buckets %zu\nstore_entries %zu\n", ru.ru_maxrss, sc.bytes,
	    cfg.max_bytes, sc.buckets, sc.entries);
	printf("evicted_samples %" PRIu64 "\nsamples_dropped %" PRIu64 "\n"
	    "expired_samples %" PRIu64 "\nspilled_samples %" PRIu64 "\n"
	    "spilled_buckets %" PRIu64 "\n", sc.evicted_samples,
	    sc.samples_dropped, sc.expired_samples, sc.spilled_samples,
	    sc.spilled_buckets);
	printf("disk_buckets %" PRIu64 "\ndisk_samples %" PRIu64 "\n"
	    "disk_expired_samples %" PRIu64 "\ndisk_dropped_samples %" PRIu64
	    "\ndisk_rollups %" PRIu64 "\ndisk_rollup_failures %" PRIu64 "\n",
	    pc.cold_buckets, pc.cold_samples, pc.cold_expired_samples,
	    pc.cold_dropped_samples, pc.disk_rollups, pc.disk_rollup_failures);
	persist_close(p);
	store_free(st);
	file_rows(argv[optind]);
	printf("now_ns %" PRIu64 "\n", now);
	return (0);
}
