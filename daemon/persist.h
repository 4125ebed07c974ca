/*
 * persist.h -- the store on disk (SQLite): loaded at start, written at an
 * interval.  (Interim: not built in yet; persist_open says so.)
 */
#ifndef PERSIST_H
#define PERSIST_H

#include <stddef.h>
#include <stdint.h>

struct persist;
struct store;

struct persist	*persist_open(const char *dir, struct store *,
		     uint64_t now_ns, char *err, size_t errlen);
int		 persist_flush(struct persist *);
void		 persist_close(struct persist *);

#endif
