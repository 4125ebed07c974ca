/*
 * fuzz-persist.c -- libFuzzer target for persist_open(): the input is
 * written as DIR/profd.db and opened into a new store.  A bad file must
 * be set aside (or loaded), never crash or leak.  Every other input opens
 * it under a cap too small for its buckets, which then stay on disk, and
 * reads them all as a query does (the rows, their tallies, their entries
 * a slice at a time).  One input in three is opened with no time to load
 * (every bucket left unread): read before its checks, checked a few
 * entries at a time, swept, and read again.  Then what is on disk is
 * rolled up as if two days had passed, swept and read once more.
 */

#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "persist.h"
#include "query.h"
#include "store.h"

#define FUZZ_NOW	(1700000000ull * 1000000000ull)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Reads every bucket left on disk as a query would. */
static void
fuzz_read_cold(struct persist *p)
{
	static struct store_entry	 slice[QUERY_COLD_SLICE];
	const struct query_cold		*src = persist_cold_source(p);
	struct query_cold_row		*rows = NULL;
	struct store_tally		*t;
	size_t				 n = 0, nt, i;
	uint64_t			 at, k;

	if (src->list(src->arg, 0, UINT64_MAX, &rows, &n) != 0)
		return;
	for (i = 0; i < n; i++) {
		if (src->tallies(src->arg, &rows[i], &t, &nt) == 0)
			free(t);
		for (at = 0; at < rows[i].n; at += k) {
			k = rows[i].n - at < QUERY_COLD_SLICE ?
			    rows[i].n - at : QUERY_COLD_SLICE;
			if (src->read(src->arg, &rows[i], at, slice,
			    (size_t)k) != 0)
				break;
		}
	}
	free(rows);
}

/* Removes what an open left in the directory. */
static void
fuzz_clean(const char *dir)
{
	glob_t	g;
	char	pat[128];
	size_t	i;

	snprintf(pat, sizeof pat, "%s/" PERSIST_FILE "*", dir);
	if (glob(pat, 0, NULL, &g) != 0)
		return;
	for (i = 0; i < g.gl_pathc; i++)
		unlink(g.gl_pathv[i]);
	globfree(&g);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char		 dir[64];
	struct store_config	 cfg;
	struct store		*st;
	struct persist		*p;
	char			 path[128], err[256];
	FILE			*f;
	int			 late;

	if (dir[0] == '\0') {
		strcpy(dir, "/tmp/fuzz-persist-XXXXXX");
		if (mkdtemp(dir) == NULL)
			abort();
		log_verbose = -1;
	}
	fuzz_clean(dir);
	snprintf(path, sizeof path, "%s/" PERSIST_FILE, dir);
	if ((f = fopen(path, "w")) == NULL)
		abort();
	fwrite(data, 1, size, f);
	fclose(f);
	store_config_default(&cfg);
	cfg.max_bytes = size % 2 ? 16 << 20 : 24 << 10;
	if ((st = store_new(&cfg)) == NULL)
		abort();
	late = size % 3 == 0;
	if (late)
		setenv("PROFD_PERSIST_LOAD_MS", "0", 1);
	p = persist_open(dir, st, FUZZ_NOW, err, sizeof err);
	unsetenv("PROFD_PERSIST_LOAD_MS");
	if (p == NULL)
		abort();	/* the directory is fine: never NULL */
	fuzz_read_cold(p);
	if (late) {
		while (persist_check_step(p, 5) == 0)
			;
		store_sweep_begin(st);
		store_sweep_end(st);
		fuzz_read_cold(p);
	}
	while (persist_check_step(p, 1 << 20) == 0)
		;
	while (persist_rollup(p, FUZZ_NOW + 2 * 86400 * 1000000000ull,
	    1000) > 0)
		;
	store_sweep_begin(st);
	store_sweep_end(st);
	fuzz_read_cold(p);
	persist_flush(p);
	persist_close(p);
	store_free(st);
	return (0);
}
