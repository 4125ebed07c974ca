/*
 * fuzz-persist.c -- libFuzzer target for persist_open(): the input is
 * written as DIR/profd.db and opened into a new store.  A bad file must
 * be set aside (or loaded), never crash or leak.
 */

#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "persist.h"
#include "store.h"

#define FUZZ_NOW	(1700000000ull * 1000000000ull)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

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
	cfg.max_bytes = 16 << 20;
	if ((st = store_new(&cfg)) == NULL)
		abort();
	if ((p = persist_open(dir, st, FUZZ_NOW, err, sizeof err)) == NULL)
		abort();	/* the directory is fine: never NULL */
	persist_flush(p);
	persist_close(p);
	store_free(st);
	return (0);
}
