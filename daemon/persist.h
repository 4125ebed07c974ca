/*
 * persist.h -- the profile store on disk: one SQLite file, DIR/profd.db.
 *
 * Opening loads what is within the store's retention (every definition,
 * then sealed buckets newest first until the store's memory cap refuses
 * one) and installs the store's hooks; each flush then writes what
 * changed since the last one, in one transaction.  A file that is not a
 * readable profd store of this schema is set aside, never fatal.
 */
#ifndef PERSIST_H
#define PERSIST_H

#include <stddef.h>
#include <stdint.h>

#define PERSIST_FILE	"profd.db"
#define PERSIST_MAGIC	"profd-store"
#define PERSIST_SCHEMA	2		/* bump on any change of the tables
					   or of what their blobs hold */
#define PERSIST_SCHEMA_OLDEST 1		/* read, and raised at the first
					   write: 1 had raw entry blobs */

struct store;
struct persist;

/* Counters for status. */
struct persist_counts {
	uint64_t	flushes;
	uint64_t	rows_written;		/* inserted or replaced */
	uint64_t	rows_deleted;
	uint64_t	failures;		/* failed flushes and hooks */
	uint64_t	bytes;			/* file size, with the WAL */
	uint64_t	load_ms;
	uint64_t	buckets_loaded;
	uint64_t	buckets_skipped;	/* over the memory cap */
	uint64_t	buckets_dropped;	/* naming what the file lacks */
	uint64_t	set_aside;		/* files renamed .bad-* */
	uint64_t	shrinks;		/* free pages given back */
	uint64_t	parts_written;		/* slices of buckets over a row */
	uint64_t	lost_at_exit;		/* samples of gone processes the
						   last flush could not write */
	uint64_t	cold_buckets;		/* only on disk, read there */
	uint64_t	cold_samples;		/* of those */
	uint64_t	cold_expired_samples;	/* on disk, past the retention */
	uint64_t	cold_dropped_samples;	/* on disk, for max_disk */
	uint64_t	cold_dropped_buckets;
	uint64_t	cold_unreadable;	/* reads of them that failed */
	uint64_t	cold_unchecked;		/* of them, left by the load to
						   check while serving */
	uint64_t	disk_rollups;		/* pairs of them merged */
	uint64_t	disk_rollup_failures;
};

/* What a flush's commit waits for (--sync). */
enum persist_sync {
	PERSIST_SYNC_INTERVAL = 0,	/* fsync: survives a power cut */
	PERSIST_SYNC_NONE = 1,		/* the OS has it: survives kill -9 */
};

/*
 * Opens (creating) DIR/profd.db and loads it into st, a new store.  NULL
 * with err set only when DIR itself is unusable.  Commits are synced
 * (PERSIST_SYNC_INTERVAL) until persist_set_sync says otherwise.
 */
struct persist	*persist_open(const char *dir, struct store *st,
		     uint64_t now_ns, char *err, size_t errlen);
/* Sets what each commit waits for; 0, or -1. */
int		 persist_set_sync(struct persist *, enum persist_sync);
/* Writes what changed since the last flush; 0, -1 (retried later), or 1:
 * not yet, a big file's whole-file check still runs (nothing written). */
int		 persist_flush(struct persist *);
/* The last flush, with the agents still connected; when it fails, one
 * line says which samples are lost and which the agents still hold. */
int		 persist_final(struct persist *);
/* Flushes, removes the hooks and closes. */
void		 persist_close(struct persist *);
void		 persist_get_counts(const struct persist *,
		     struct persist_counts *);

/*
 * Buckets only on disk: evicted from memory for its cap (the store's
 * bucket_keep hook: a written bucket keeps its row) or left there at load.
 * Queries read them through persist_cold_source; persist_expire, between
 * queries, drops those past the retention, then the oldest while the file
 * holds more than max_disk bytes (0: no bound).
 */
struct query_cold;
const struct query_cold *persist_cold_source(struct persist *);
void		 persist_expire(struct persist *, uint64_t now_ns,
		     uint64_t max_disk);
/*
 * persist_open loads for PERSIST_LOAD_MS at most (newest first); the rows
 * it had no time for are read by queries like any bucket on disk, and
 * checked a slice at a time: up to `budget` entries a call, none while a
 * query reads.  Until the last is, the store's ids are held
 * (store_hold_ids) and nothing expires.  1 when all are checked, else 0.
 */
int		 persist_check_step(struct persist *, size_t budget);

/*
 * Rolls up buckets only on disk as the store rolls up those in memory
 * (store_tick), at now_ns: two rows finer than their age's tier inside
 * one span of it are merged into one row of the tier's width, in a
 * transaction of their own (a row alone in its span is widened), one
 * after another
 * while merges are due, for budget_ms at most (one merge at least); only
 * while no show reads, and once the load's and the file's checks are
 * done.  Returns how many merges (and widenings) it made; a failure stops
 * them for a minute.
 */
int		 persist_rollup(struct persist *, uint64_t now_ns,
		    uint64_t budget_ms);

/*
 * The profiling state (what `profctl start/stop` set), kept in the same
 * file so that a restarted profd resumes it: pid 0 is the global setting,
 * other rows are per-pid ones.  Written at once on every change.
 */
struct persist_profile {
	uint32_t	pid;
	int		profiling;
	uint32_t	rate_hz;
	uint32_t	mode;
	uint32_t	reader;
	uint32_t	jitter_pct;
	uint32_t	max_overhead_bp;	/* PROTO_OVERHEAD_UNSET: none */
};
int		 persist_profile_put(struct persist *,
		     const struct persist_profile *);
int		 persist_profile_clear_pids(struct persist *);
int		 persist_profile_load(struct persist *,
		     void (*)(void *, const struct persist_profile *), void *);

#endif
