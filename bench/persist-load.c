/*
 * persist-load.c -- how long profd takes to serve again after a restart:
 * builds 7 days of samples (5,000 stacks x 50 processes, 10-s buckets
 * rolled up to minutes and hours as the store does), flushing as profd
 * would, then times persist_open() on the file, warm and cold (the file
 * dropped from the page cache): until it can serve, and until the buckets
 * it left unread are checked (persist_check_step, as profd's loop does
 * between other work).
 *
 * usage: persist-load [-k] [samples per 10 s (default 50)]
 *   -k keeps the directory.
 */

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "persist.h"
#include "store.h"

#define SEC		1000000000ull
#define NOW		(1700000000ull * SEC)
#define DAYS		7
#define NSTACKS		5000
#define NPROCS		50
#define DEPTH		20
#define FLUSH_EVERY	(60 * SEC)

/* Monotonic seconds. */
static double
now_s(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + ts.tv_nsec / 1e9);
}

/* Interns the stacks and the processes' threads. */
static void
make_defs(struct store *st, uint32_t *stacks, uint32_t *threads)
{
	struct store_instance_info	 info;
	const char			*argv[] = { "python3", "app.py" };
	uint32_t			 frames[DEPTH], name, file, func, i, j;
	char				 buf[64];

	file = store_string(st, "/srv/app/module.py", 18);
	for (i = 0; i < NSTACKS; i++) {
		for (j = 0; j < DEPTH; j++) {
			snprintf(buf, sizeof buf, "func_%u", (i * 7 + j) % 3000);
			name = store_string(st, buf, strlen(buf));
			func = store_func(st, name, file, j + 1);
			frames[j] = store_frame(st, func, 10 + (i + j) % 500);
		}
		if ((stacks[i] = store_stack(st, frames, DEPTH, 0)) == 0)
			abort();
	}
	memset(&info, 0, sizeof info);
	info.host = "bench";
	info.host_len = 5;
	info.service = "svc";
	info.service_len = 3;
	info.argv = argv;
	info.argc = 2;
	name = store_string(st, "MainThread", 10);
	for (i = 0; i < NPROCS; i++) {
		info.pid = 1000 + i;
		info.start_ns = NOW - DAYS * 86400 * SEC - SEC;
		j = store_instance_attach(st, &info, info.start_ns);
		if ((threads[i] = store_thread(st, j, 1000 + i, name)) == 0)
			abort();
	}
}

int
main(int argc, char **argv)
{
	static uint32_t		 stacks[NSTACKS], threads[NPROCS];
	struct store_config	 cfg;
	struct store		*st;
	struct persist		*p;
	struct persist_counts	 c;
	struct store_counts	 sc;
	char			 dir[] = "/tmp/persist-load-XXXXXX", path[128];
	char			 err[256];
	uint64_t		 t, last_flush, per = 50, k;
	double			 t0, t1, flush_max = 0, flush_sum = 0, f0;
	size_t			 unchecked;
	int			 keep = 0, fd, nflush = 0, pass;

	if (argc > 1 && strcmp(argv[1], "-k") == 0) {
		keep = 1;
		argc--;
		argv++;
	}
	if (argc > 1)
		per = strtoull(argv[1], NULL, 10);
	log_verbose = -1;
	if (mkdtemp(dir) == NULL)
		return (1);
	store_config_default(&cfg);
	if ((st = store_new(&cfg)) == NULL)
		return (1);
	store_tick(st, NOW - DAYS * 86400 * SEC);
	if ((p = persist_open(dir, st, NOW, err, sizeof err)) == NULL) {
		fprintf(stderr, "persist-load: %s\n", err);
		return (1);
	}
	make_defs(st, stacks, threads);
	srand(1);
	t0 = now_s();
	last_flush = 0;
	for (t = NOW - DAYS * 86400 * SEC + 10 * SEC; t <= NOW; t += 10 * SEC) {
		for (k = 0; k < per; k++)
			store_add(st, t - 1 - k, threads[rand() % NPROCS],
			    stacks[rand() % NSTACKS], 0, 1 + rand() % 4, 10000);
		store_tick(st, t);
		if (t - last_flush >= FLUSH_EVERY) {
			f0 = now_s();
			if (persist_flush(p) != 0)
				return (1);
			f0 = now_s() - f0;
			flush_sum += f0;
			if (f0 > flush_max)
				flush_max = f0;
			nflush++;
			last_flush = t;
		}
	}
	store_get_counts(st, &sc);
	persist_close(p);
	printf("generated %.1f s: %zu buckets, %zu entries (%.1f MB of "
	    "entries), store %.1f MB\n", now_s() - t0, sc.buckets, sc.entries,
	    sc.entries * 32 / 1e6, sc.bytes / 1e6);
	printf("flushes: %d, mean %.1f ms, max %.1f ms\n", nflush,
	    flush_sum / nflush * 1e3, flush_max * 1e3);
	store_free(st);

	snprintf(path, sizeof path, "%s/%s", dir, PERSIST_FILE);
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1 && (fd = open(path, O_RDONLY)) >= 0) {
			fdatasync(fd);
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			close(fd);
		}
		if ((st = store_new(&cfg)) == NULL)
			return (1);
		t0 = now_s();
		if ((p = persist_open(dir, st, NOW, err, sizeof err)) == NULL)
			return (1);
		t0 = now_s() - t0;
		persist_get_counts(p, &c);
		unchecked = c.cold_unchecked;
		t1 = now_s();
		while (persist_check_step(p, 16384) == 0)
			;
		t1 = now_s() - t1;
		persist_get_counts(p, &c);
		store_get_counts(st, &sc);
		printf("open (%s cache): serving after %.0f ms; %" PRIu64
		    " buckets loaded, %" PRIu64 " left on disk (%zu unread, "
		    "checked in %.0f ms more, %" PRIu64 " dropped), %zu entries "
		    "in memory; file %.1f MB\n", pass ? "cold" : "warm", t0 * 1e3,
		    c.buckets_loaded, c.buckets_skipped, unchecked, t1 * 1e3,
		    c.buckets_dropped, sc.entries, c.bytes / 1e6);
		persist_close(p);
		store_free(st);
	}
	if (!keep) {
		snprintf(path, sizeof path, "rm -rf %s", dir);
		if (system(path) != 0)
			return (1);
	} else
		printf("kept %s\n", dir);
	return (0);
}
