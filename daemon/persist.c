/* persist.c -- interim: the on-disk store is not built in yet. */

#include <stdio.h>

#include "persist.h"

/* Says the state directory cannot be used yet. */
struct persist *
persist_open(const char *dir, struct store *st, uint64_t now_ns, char *err,
    size_t errlen)
{
	snprintf(err, errlen, "-s %s: this build keeps the store in memory "
	    "only", dir);
	return (NULL);
}

int
persist_flush(struct persist *p)
{
	return (-1);
}

void
persist_close(struct persist *p)
{
}
