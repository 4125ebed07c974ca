/*
 * persist.c -- the profile store on disk (see persist.h).
 *
 * One SQLite file in WAL mode (synchronous=FULL, or NORMAL with --sync
 * none: a crash, or with NORMAL a power cut, loses at most the last flush,
 * never the file).  Definitions are rows keyed by their
 * store id.  A bucket is one row keyed by a row id of ours, because two
 * buckets with the same start and width can live at once (a back-fill
 * next to a sealed one); a bucket's row id is remembered by the bucket's
 * address, which stays valid until the store's bucket_del hook.
 *
 * Blobs are memory images on a little-endian host: a stack's frames are
 * uint32 LE; a bucket's entries, sorted as the store sorts them, are
 * coded by persist-codec.c (compact, PERSIST_CODEC_BLOCK a row or part;
 * rows an older profd wrote hold struct store_entry images); its tallies,
 * a row of their own keyed by the bucket's row id (only for a bucket that
 * has some), are struct store_tally (24 bytes: two uint32 then two uint64,
 * LE), sorted alike.
 *
 * The store calls the hooks, which only queue (an id, a row id), so a
 * hook never does I/O; persist_flush() reads the current content through
 * the store's getters and writes everything in one transaction.  Nothing
 * is marked clean before the commit succeeds, so a failed flush is simply
 * retried by the next one.
 */

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "persist.h"
#include "persist-codec.h"
#include "proto.h"
#include "query.h"
#include "store.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "persist.c writes memory images as little-endian blobs"
#endif

#define PERSIST_MAX_ROW		(256 << 20)	/* SQLITE_LIMIT_LENGTH */
#define PERSIST_PARTS_MAX	65535		/* slices of one bucket */
/* Buckets on disk are rolled up in pairs of at most this many entries: a
 * merge runs whole on the event loop (holding four slices of entries
 * whatever their size); one whose write fails stops them for
 * PERSIST_ROLLUP_RETRY_MS. */
#define PERSIST_ROLLUP_ENTRIES	(1u << 20)
#define PERSIST_ROLLUP_RETRY_MS	60000
/* Entries of one bucket: as many as raw slices of a full row hold. */
#define PERSIST_ENTRIES_MAX	((uint64_t)PERSIST_MAX_ROW / \
				    sizeof(struct store_entry) * \
				    (PERSIST_PARTS_MAX + 1))
/* Bytes of entries a bucket row holds; the rest goes in bucket_parts.
 * PERSIST_MAX_ROW, or less from PROFD_PERSIST_MAX_ROW (tests). */
static size_t	persist_max_row = PERSIST_MAX_ROW;
#define PERSIST_BAD_TRIES	100		/* .bad-<time>.<n> names */
#define PERSIST_STATE_MIN	1024		/* ids of a new pending map */
#define PERSIST_MAP_MIN		64		/* slots of the bucket map */
#define PERSIST_PATH_MAX	4096		/* DIR/profd.db.bad-<t>.<n> */
#define PERSIST_SUFFIX_MAX	64		/* what we append to it */
#define PERSIST_SHRINK_MIN	256		/* free pages worth giving back */
#define PERSIST_SHRINK_STEP	8192		/* pages given back per flush */
#define PERSIST_CONVERT_MAX	(256ull << 20)	/* biggest older file made
						   shrinkable at open */
#define PERSIST_WAL_LIMIT	(64 << 20)	/* WAL kept after a checkpoint */
#define PERSIST_LOAD_MS		300		/* loading before serving; the
						   rest is checked meanwhile */
#define PERSIST_CHECK_ROW_COST	256		/* entries a row's start counts
						   as, in a check's budget */
#define PERSIST_CHECK_LOGS	8		/* rows left out logged alone */
#define PERSIST_SYNC_CHECK_MAX	(64ull << 20)	/* files checked whole before
						   serving; bigger ones on a
						   thread, before any write */
static uint64_t	persist_sync_check_max = PERSIST_SYNC_CHECK_MAX; /* or from
						   PROFD_PERSIST_SYNC_CHECK_MAX */
#define PERSIST_DAMAGED		".damaged"	/* marks a file to check whole
						   and set aside at start */
static uint64_t	persist_load_ms = PERSIST_LOAD_MS;	/* or from
						   PROFD_PERSIST_LOAD_MS */

/* What opening or loading found. */
enum persist_qc {
	PERSIST_QC_RUNNING = 0,
	PERSIST_QC_OK,
	PERSIST_QC_BAD,
	PERSIST_QC_STOPPED,	/* interrupted: the file's state unknown */
};

enum persist_rc {
	PERSIST_OK = 0,
	PERSIST_FAIL = -1,	/* cannot use the directory or the file */
	PERSIST_BAD = -2,	/* not a usable store: set it aside */
	PERSIST_NOFIT = -3,	/* definitions over the store's memory */
	PERSIST_LATE = -4	/* past the load's time: the rest later */
};

/* Pending definition changes of one kind, each id once. */
#define PERSIST_PUT	0x1
#define PERSIST_DEL	0x2
struct persist_pending {
	uint32_t	*ids;
	size_t		 n, cap;
	uint8_t		*state;		/* PERSIST_PUT|DEL by id */
	size_t		 state_len;
};

/* A bucket only on disk. */
struct persist_cold {
	int64_t		row;
	uint64_t	start_ns;
	uint64_t	width_ns;
	uint64_t	n;		/* entries */
	uint64_t	samples;
	uint64_t	bytes;		/* entries and tallies, about */
	int		checked;	/* its names checked and pinned */
	int		stuck;		/* a roll-up could not read it */
};

/* Where a read of a row on disk was: the slice, and its first entry's
 * index.  Rows on disk never change, and their ids are never given
 * again. */
struct persist_pos {
	int64_t		row;		/* 0: none */
	int64_t		part;
	uint64_t	base;
};

/* A bucket's address to its row id. */
struct persist_slot {
	const struct store_bucket	*b;	/* NULL: empty */
	int64_t				 row;
	uint64_t			 bytes;	/* its entries on disk */
};

enum persist_stmt {
	PS_PUT_STRING, PS_PUT_FUNC, PS_PUT_FRAME, PS_PUT_STACK,
	PS_PUT_INSTANCE, PS_PUT_THREAD,
	PS_DEL_STRING, PS_DEL_FUNC, PS_DEL_FRAME, PS_DEL_STACK,
	PS_DEL_INSTANCE, PS_DEL_THREAD,
	PS_PUT_BUCKET, PS_DEL_BUCKET,
	PS_BEGIN, PS_COMMIT, PS_ROLLBACK,
	PS_PUT_SEQ, PS_DEL_SEQ, PS_PUT_PROFILE, PS_DEL_PID_PROFILES,
	PS_PUT_OVERHEAD, PS_DEL_OVERHEAD, PS_DEL_PID_OVERHEADS,
	PS_PUT_TALLIES, PS_DEL_TALLIES,
	PS_DEL_BUCKETS_BELOW, PS_DEL_TALLIES_BELOW,
	PS_PUT_PART, PS_DEL_PARTS, PS_DEL_PARTS_BELOW, PS_GET_PARTS,
	PS_SET_SPAN,
	PS_COUNT
};

static const char *persist_stmt_sql[PS_COUNT] = {
	"INSERT OR REPLACE INTO strings VALUES(?1, ?2)",
	"INSERT OR REPLACE INTO funcs VALUES(?1, ?2, ?3, ?4)",
	"INSERT OR REPLACE INTO frames VALUES(?1, ?2, ?3)",
	"INSERT OR REPLACE INTO stacks VALUES(?1, ?2)",
	("INSERT OR REPLACE INTO instances VALUES(?1, ?2, ?3, ?4, ?5, ?6, "
	    "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
	"INSERT OR REPLACE INTO threads VALUES(?1, ?2, ?3, ?4)",
	"DELETE FROM strings WHERE id = ?1",
	"DELETE FROM funcs WHERE id = ?1",
	"DELETE FROM frames WHERE id = ?1",
	"DELETE FROM stacks WHERE id = ?1",
	"DELETE FROM instances WHERE id = ?1",
	"DELETE FROM threads WHERE id = ?1",
	"INSERT OR REPLACE INTO buckets VALUES(?1, ?2, ?3, ?4, ?5)",
	"DELETE FROM buckets WHERE id = ?1",
	"BEGIN IMMEDIATE",
	"COMMIT",
	"ROLLBACK",
	"INSERT OR REPLACE INTO seqs VALUES(?1, ?2)",
	"DELETE FROM seqs WHERE instance = ?1",
	"INSERT OR REPLACE INTO profiles VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	"DELETE FROM profiles WHERE pid != 0",
	"INSERT OR REPLACE INTO overheads VALUES(?1, ?2)",
	"DELETE FROM overheads WHERE pid = ?1",
	"DELETE FROM overheads WHERE pid != 0",
	"INSERT OR REPLACE INTO tallies VALUES(?1, ?2)",
	"DELETE FROM tallies WHERE bucket = ?1",
	"DELETE FROM buckets WHERE id < ?1",
	"DELETE FROM tallies WHERE bucket < ?1",
	"INSERT OR REPLACE INTO bucket_parts VALUES(?1, ?2)",
	"DELETE FROM bucket_parts WHERE id >= ?1 * 65536 AND "
	    "id < (?1 + 1) * 65536",
	"DELETE FROM bucket_parts WHERE id < ?1 * 65536",
	"SELECT entries FROM bucket_parts WHERE id > ?1 * 65536 AND "
	    "id < (?1 + 1) * 65536 ORDER BY id",
	"UPDATE buckets SET start_ns = ?2, width_ns = ?3 WHERE id = ?1",
};

/* The schema, exactly as sqlite_schema must hold it. */
static const struct {
	const char	*type, *name, *sql;
} persist_schema[] = {
	{ "table", "meta", "CREATE TABLE meta(magic TEXT NOT NULL, "
	    "version INTEGER NOT NULL)" },
	{ "table", "strings", "CREATE TABLE strings(id INTEGER PRIMARY KEY, "
	    "text BLOB NOT NULL)" },
	{ "table", "funcs", "CREATE TABLE funcs(id INTEGER PRIMARY KEY, "
	    "name INTEGER NOT NULL, file INTEGER NOT NULL, "
	    "line INTEGER NOT NULL)" },
	{ "table", "frames", "CREATE TABLE frames(id INTEGER PRIMARY KEY, "
	    "func INTEGER NOT NULL, line INTEGER NOT NULL)" },
	{ "table", "stacks", "CREATE TABLE stacks(id INTEGER PRIMARY KEY, "
	    "frames BLOB NOT NULL)" },
	{ "table", "instances", "CREATE TABLE instances("
	    "id INTEGER PRIMARY KEY, pid INTEGER, ppid INTEGER, "
	    "start_ns INTEGER, attach_ns INTEGER, end_ns INTEGER, "
	    "last_ns INTEGER, host TEXT, service TEXT, python TEXT, "
	    "reader TEXT, argv BLOB, samples INTEGER, dropped INTEGER)" },
	{ "table", "threads", "CREATE TABLE threads(id INTEGER PRIMARY KEY, "
	    "instance INTEGER NOT NULL, tid INTEGER NOT NULL, "
	    "name INTEGER NOT NULL)" },
	{ "table", "buckets", "CREATE TABLE buckets(id INTEGER PRIMARY KEY, "
	    "start_ns INTEGER NOT NULL, width_ns INTEGER NOT NULL, "
	    "n INTEGER NOT NULL, entries BLOB NOT NULL)" },
	{ "index", "buckets_start",
	    "CREATE INDEX buckets_start ON buckets(start_ns)" },
	/* Added later: created in an older file as it is opened. */
	{ "table", "seqs", "CREATE TABLE seqs(instance INTEGER PRIMARY KEY, "
	    "seq INTEGER NOT NULL)" },
	{ "table", "profiles", "CREATE TABLE profiles("
	    "pid INTEGER PRIMARY KEY, profiling INTEGER NOT NULL, "
	    "rate_hz INTEGER NOT NULL, mode INTEGER NOT NULL, "
	    "reader INTEGER NOT NULL, jitter_pct INTEGER NOT NULL)" },
	/* A profile's --max-overhead, when one was given. */
	{ "table", "overheads", "CREATE TABLE overheads("
	    "pid INTEGER PRIMARY KEY, max_overhead_bp INTEGER NOT NULL)" },
	/* What a bucket's batches said of their stacks (store_tally). */
	{ "table", "tallies", "CREATE TABLE tallies("
	    "bucket INTEGER PRIMARY KEY, rows BLOB NOT NULL)" },
	/* The entries of a bucket too big for one row past its first
	 * persist_max_row bytes, in slices: id = bucket row << 16 | part. */
	{ "table", "bucket_parts", "CREATE TABLE bucket_parts("
	    "id INTEGER PRIMARY KEY, entries BLOB NOT NULL)" },
};
#define PERSIST_NSCHEMA	(sizeof persist_schema / sizeof persist_schema[0])
#define PERSIST_FIRST_ADDED	9	/* persist_schema[9..] came later */

struct persist {
	char			*path;
	sqlite3			*db;
	sqlite3_stmt		*stmt[PS_COUNT];
	struct store		*st;
	struct persist_pending	 pending[STORE_NKINDS];
	int			 resync_defs;	/* a queue lost an id */
	struct persist_slot	*map;		/* bucket -> row id */
	size_t			 map_mask, map_used;
	int64_t			*dels;		/* row ids to delete */
	size_t			 ndels, dels_cap;	/* cap >= ndels +
						 * map_used */
	int64_t			 next_row;
	struct store_entry	*scratch;	/* an open bucket, sorted */
	size_t			 scratch_cap;
	unsigned char		*enc;		/* a blob being coded */
	size_t			 enc_cap;
	struct store_entry	*dec;		/* a blob of a cold read */
	size_t			 dec_cap;
	struct store_entry	*merge_buf;	/* a roll-up's four slices */
	struct persist_pos	 pos;		/* where the last read of a row
						   on disk was */
	int64_t			 dec_key;	/* the blob dec holds: row id,
						   or -(part id); 0: none */
	int			 failing;	/* logged; quiet until ok */
	int			 incremental;	/* auto_vacuum=INCREMENTAL */
	char			 why[160];	/* the last failure */
	struct persist_counts	 counts;
	/* Loading: past the memory cap, buckets stay on disk and only pin
	 * what they name; rows naming what the file lacks are dropped. */
	int			 pin_only;
	int64_t			*drops;
	size_t			 ndrops, drops_cap;
	int64_t			 reset_below;	/* rows under it go (reset) */
	/* Buckets only on disk (evicted for the memory cap, or left there
	 * at load), oldest first: queries read them from the file. */
	struct persist_cold	*cold;
	size_t			 ncold, cold_cap;
	uint64_t		 pin_samples;	/* of the row being pinned */
	uint64_t		 cold_pending;	/* bytes of rows to delete */
	int			 loading;	/* cold rows come unsorted */
	struct query_cold	 source;	/* for queries */
	/* A load stops taking rows at load_until (ms); those left are
	 * checked and pinned a slice at a time (persist_check_step), the
	 * store's ids held (store_hold_ids) until the last is done. */
	uint64_t		 load_until;
	int64_t			 load_row;	/* the row it stopped at */
	int			 load_skip;	/* until that row is seen */
	size_t			 unchecked;
	int			 held;
	uint32_t		 id_limit[STORE_NKINDS];	/* ids the file
						   had: a row naming one past
						   them names what it lacks */
	uint64_t		 check_ms;	/* when checking began */
	uint64_t		 check_dropped;	/* rows left out */
	/* A big file's whole-file check (quick_check) runs on a thread of
	 * its own with its own connection; nothing is written until it says
	 * the file is sound (persist_qc_*). */
	pthread_t		 qc;
	sqlite3			*qc_db;
	int			 qc_running;	/* a thread to join */
	int			 qc_state;	/* atomic: PERSIST_QC_* */
	char			 qc_why[160];
	int			 damaged;	/* nothing more is written */
	int			 schema_old;	/* meta's version to raise */
	uint64_t		 rollup_retry_ms;	/* after a failure */
	/* Held until the check passes: the retention's deletes at open
	 * (rows older than cut), the rows a load dropped, and the saved
	 * profiling state (the newest per pid; clear: pids' rows go). */
	int			 defer;		/* writes wait for the check */
	int			 defer_cut;
	uint64_t		 cut;
	struct persist_profile	*defer_pf;
	size_t			 ndefer_pf, defer_pf_cap;
	int			 defer_clear;
	struct {
		int64_t			 row;	/* being checked; 0: none */
		size_t			 at;	/* where it was in cold[] */
		uint64_t		 from;	/* entries checked, pinned */
		uint64_t		 samples;
		struct store_entry	 last;
		struct store_tally	*t;	/* its tallies, pinned */
		size_t			 nt;
	}			 check;
};

/* Monotonic milliseconds. */
static uint64_t
persist_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

/* Logs a failure once per run of failures, and counts it. */
static void
persist_fail(struct persist *p, const char *what)
{
	p->counts.failures++;
	snprintf(p->why, sizeof p->why, "%s", p->db != NULL ?
	    sqlite3_errmsg(p->db) : "no db");
	if (p->failing)
		return;
	p->failing = 1;
	log_warn("%s: %s: %s (kept in memory, retried at the next flush)",
	    p->path, what, p->db != NULL ? sqlite3_errmsg(p->db) : "no db");
}

/* Whether a definition is live in the store. */
static int
persist_live(const struct store *st, enum store_kind k, uint32_t id)
{
	uint32_t	a, b, c;

	switch (k) {
	case STORE_STRING:
		return (store_string_get(st, id, NULL) != NULL);
	case STORE_FUNC:
		return (store_func_get(st, id, &a, &b, &c) == 0);
	case STORE_FRAME:
		return (store_frame_get(st, id, &a, &b) == 0);
	case STORE_STACK:
		return (store_stack_get(st, id, &a) != NULL);
	case STORE_INSTANCE:
		return (store_instance_get(st, id) != NULL);
	default:
		return (store_thread_get(st, id) != NULL);
	}
}

/* -- the pending queues and the bucket map ------------------------------- */

/* Queues a definition change; on no memory, asks for a full rewrite. */
static void
persist_pend(struct persist *p, enum store_kind k, uint32_t id, int bit)
{
	struct persist_pending	*q = &p->pending[k];
	uint8_t			*state;
	uint32_t		*ids;
	size_t			 len, cap;

	if (id >= q->state_len) {
		len = q->state_len == 0 ? PERSIST_STATE_MIN : q->state_len;
		while (len <= id)
			len *= 2;
		if ((state = realloc(q->state, len)) == NULL)
			goto fail;
		memset(state + q->state_len, 0, len - q->state_len);
		q->state = state;
		q->state_len = len;
	}
	if (q->state[id] == 0) {
		if (q->n == q->cap) {
			cap = q->cap == 0 ? PERSIST_STATE_MIN : q->cap * 2;
			if ((ids = realloc(q->ids, cap * sizeof *ids)) == NULL)
				goto fail;
			q->ids = ids;
			q->cap = cap;
		}
		q->ids[q->n++] = id;
	}
	q->state[id] |= bit;
	return;
fail:
	p->resync_defs = 1;
	persist_fail(p, "out of memory queueing a change");
}

/* Empties the queues (after a commit). */
static void
persist_pend_clear(struct persist *p)
{
	struct persist_pending	*q;
	size_t			 i;
	int			 k;

	for (k = 0; k < STORE_NKINDS; k++) {
		q = &p->pending[k];
		for (i = 0; i < q->n; i++)
			q->state[q->ids[i]] = 0;
		q->n = 0;
	}
}

/* The slot of a bucket in the map (its own or the empty one to use). */
static size_t
persist_map_find(const struct persist *p, const struct store_bucket *b)
{
	size_t	j;

	j = (size_t)(((uintptr_t)b >> 4) * 0x9e3779b97f4a7c15ull) &
	    p->map_mask;
	while (p->map[j].b != NULL && p->map[j].b != b)
		j = (j + 1) & p->map_mask;
	return (j);
}

/* The row id of a bucket, or 0. */
static int64_t
persist_map_get(const struct persist *p, const struct store_bucket *b)
{
	size_t	j;

	if (p->map == NULL)
		return (0);
	j = persist_map_find(p, b);
	return (p->map[j].b == b ? p->map[j].row : 0);
}

/*
 * Remembers a bucket's row id, reserving room for its later deletion so
 * that the bucket_del hook never allocates.
 */
static int
persist_map_put(struct persist *p, const struct store_bucket *b, int64_t row)
{
	struct persist_slot	*old = p->map, *slots;
	size_t			 n, oldn = old != NULL ? p->map_mask + 1 : 0, i;
	int64_t			*dels;

	if (p->dels_cap < p->ndels + p->map_used + 1) {
		n = p->dels_cap == 0 ? PERSIST_MAP_MIN : p->dels_cap * 2;
		if ((dels = realloc(p->dels, n * sizeof *dels)) == NULL)
			return (-1);
		p->dels = dels;
		p->dels_cap = n;
	}
	if (old == NULL || (p->map_used + 1) * 2 > oldn) {
		n = oldn == 0 ? PERSIST_MAP_MIN : oldn * 2;
		if ((slots = calloc(n, sizeof *slots)) == NULL)
			return (-1);
		p->map = slots;
		p->map_mask = n - 1;
		for (i = 0; i < oldn; i++) {
			if (old[i].b != NULL)
				p->map[persist_map_find(p, old[i].b)] = old[i];
		}
		free(old);
	}
	i = persist_map_find(p, b);
	if (p->map[i].b == NULL)
		p->map_used++;
	if (p->map[i].b != b)
		p->map[i].bytes = 0;
	p->map[i].b = b;
	p->map[i].row = row;
	return (0);
}

/* What a mapped bucket's entries take on disk, as last written or loaded
 * (else as raw images). */
static uint64_t
persist_map_bytes_of(const struct persist *p, const struct store_bucket *b)
{
	size_t	j;

	if (p->map != NULL) {
		j = persist_map_find(p, b);
		if (p->map[j].b == b && p->map[j].bytes != 0)
			return (p->map[j].bytes);
	}
	return (b->n * sizeof *b->entries);
}

/* Says what a mapped bucket's entries take on disk. */
static void
persist_map_bytes(struct persist *p, const struct store_bucket *b,
    uint64_t bytes)
{
	size_t	j;

	if (p->map == NULL)
		return;
	j = persist_map_find(p, b);
	if (p->map[j].b == b)
		p->map[j].bytes = bytes;
}

/* Forgets a bucket (backward-shift deletion); its row id, or 0. */
static int64_t
persist_map_del(struct persist *p, const struct store_bucket *b)
{
	size_t	i, j, home;
	int64_t	row;

	if (p->map == NULL)
		return (0);
	i = persist_map_find(p, b);
	if (p->map[i].b != b)
		return (0);
	row = p->map[i].row;
	for (j = (i + 1) & p->map_mask; p->map[j].b != NULL;
	    j = (j + 1) & p->map_mask) {
		home = (size_t)(((uintptr_t)p->map[j].b >> 4) *
		    0x9e3779b97f4a7c15ull) & p->map_mask;
		/* Move j back to i unless its home lies in (i, j]. */
		if (((j - home) & p->map_mask) >= ((j - i) & p->map_mask)) {
			p->map[i] = p->map[j];
			i = j;
		}
	}
	p->map[i].b = NULL;
	p->map_used--;
	return (row);
}

/* Forgets every bucket. */
static void
persist_map_clear(struct persist *p)
{
	if (p->map != NULL)
		memset(p->map, 0, (p->map_mask + 1) * sizeof *p->map);
	p->map_used = 0;
	p->ndels = 0;
}

/* -- buckets only on disk ------------------------------------------------- */

static int64_t	persist_pragma(struct persist *, const char *);
static int	persist_scratch(struct persist *, size_t);
static int	persist_enc(struct persist *, size_t);
static int	persist_step(struct persist *, enum persist_stmt);
static int	persist_put_head(struct persist *, int64_t, uint64_t,
		    uint64_t, uint64_t, const struct store_entry *, size_t,
		    uint64_t *);
static int	persist_put_part(struct persist *, int64_t, int64_t,
		    const struct store_entry *, size_t, uint64_t *);
static int	persist_put_tallies(struct persist *, int64_t,
		    const struct store_tally *, size_t);
static size_t	persist_per_part(void);
static int	persist_del_row(struct persist *, int64_t);

/* Adds a bucket only on disk, in start order: 0, or -1 out of memory. */
static int
persist_cold_add(struct persist *p, int64_t row, uint64_t start,
    uint64_t width, uint64_t n, uint64_t samples, uint64_t bytes, int checked)
{
	struct persist_cold	*v;
	size_t			 cap, at;

	if (p->ncold == p->cold_cap) {
		cap = p->cold_cap == 0 ? PERSIST_MAP_MIN : p->cold_cap * 2;
		if (cap > SIZE_MAX / sizeof *v ||
		    (v = realloc(p->cold, cap * sizeof *v)) == NULL)
			return (-1);
		p->cold = v;
		p->cold_cap = cap;
	}
	/* Loading: appended, sorted once at the end (persist_cold_sort);
	 * later mostly the newest (an eviction). */
	at = p->ncold;
	while (!p->loading && at > 0 && (p->cold[at - 1].start_ns > start ||
	    (p->cold[at - 1].start_ns == start && p->cold[at - 1].row > row)))
		at--;
	memmove(&p->cold[at + 1], &p->cold[at],
	    (p->ncold - at) * sizeof *p->cold);
	p->cold[at].row = row;
	p->cold[at].start_ns = start;
	p->cold[at].width_ns = width;
	p->cold[at].n = n;
	p->cold[at].samples = samples;
	p->cold[at].bytes = bytes;
	p->cold[at].checked = checked;
	p->cold[at].stuck = 0;
	p->ncold++;
	/* The row being checked moved up one. */
	if (p->check.row != 0 && at <= p->check.at)
		p->check.at++;
	p->counts.cold_buckets = p->ncold;
	p->counts.cold_samples += samples;
	return (0);
}

/* Orders buckets on disk by start, then row. */
static int
persist_cold_cmp(const void *a, const void *b)
{
	const struct persist_cold	*x = a, *y = b;

	if (x->start_ns != y->start_ns)
		return (x->start_ns < y->start_ns ? -1 : 1);
	return (x->row < y->row ? -1 : x->row > y->row);
}

/* Queries: the buckets on disk overlapping [since, until). */
static int
persist_cold_list(void *arg, uint64_t since, uint64_t until,
    struct query_cold_row **out, size_t *nout)
{
	struct persist		*p = arg;
	struct query_cold_row	*v;
	size_t			 i, n = 0;

	*out = NULL;
	*nout = 0;
	for (i = 0; i < p->ncold; i++)
		n += p->cold[i].start_ns + p->cold[i].width_ns > since &&
		    p->cold[i].start_ns < until;
	if (n == 0)
		return (0);
	if ((v = calloc(n, sizeof *v)) == NULL)
		return (-1);
	for (i = 0, n = 0; i < p->ncold; i++) {
		if (p->cold[i].start_ns + p->cold[i].width_ns <= since ||
		    p->cold[i].start_ns >= until)
			continue;
		v[n].row = p->cold[i].row;
		v[n].start_ns = p->cold[i].start_ns;
		v[n].width_ns = p->cold[i].width_ns;
		v[n].unchecked = !p->cold[i].checked;
		v[n++].n = p->cold[i].n;
	}
	*out = v;
	*nout = n;
	return (0);
}

/*
 * Reads [from, from + n) of a blob's entries into to; how many it holds
 * in *have.  0, or -1 (no such row, or damaged).  A compact blob is read
 * and decoded whole (PERSIST_CODEC_BLOCK entries at most); of a raw one
 * only the entries asked for are read.
 */
static int
persist_cold_blob(struct persist *p, const char *table, int64_t rowid,
    uint64_t from, struct store_entry *to, size_t n, uint64_t *have)
{
	unsigned char	 head[PERSIST_CODEC_HEAD];
	sqlite3_blob	*b;
	int64_t		 key = strcmp(table, "buckets") == 0 ? rowid : -rowid;
	int		 bytes, rc = -1, compact, k;

	if (sqlite3_blob_open(p->db, "main", table, "entries", rowid, 0,
	    &b) != SQLITE_OK)
		return (-1);
	bytes = sqlite3_blob_bytes(b);
	k = bytes < (int)sizeof head ? bytes : (int)sizeof head;
	if (bytes < 0 || (k > 0 && sqlite3_blob_read(b, head, k, 0) !=
	    SQLITE_OK) || persist_codec_count(head, (size_t)bytes, have,
	    &compact) != 0 || from + n > *have)
		goto out;
	if (n == 0)
		rc = 0;
	else if (!compact)
		rc = sqlite3_blob_read(b, to, (int)(n * sizeof *to),
		    (int)(from * sizeof *to)) == SQLITE_OK ? 0 : -1;
	else if (p->dec_key == key) {
		/* Decoded by the last read (rows on disk never change). */
		memcpy(to, p->dec + from, n * sizeof *to);
		rc = 0;
	} else if (*have <= PERSIST_CODEC_BLOCK &&
	    persist_enc(p, (size_t)bytes) == 0 &&
	    sqlite3_blob_read(b, p->enc, bytes, 0) == SQLITE_OK) {
		if (p->dec_cap < *have) {
			free(p->dec);
			p->dec_cap = 0;
			if ((p->dec = malloc(PERSIST_CODEC_BLOCK *
			    sizeof *p->dec)) == NULL)
				goto out;
			p->dec_cap = PERSIST_CODEC_BLOCK;
		}
		p->dec_key = 0;
		if (persist_codec_decode(p->enc, (size_t)bytes, p->dec,
		    *have) == 0) {
			p->dec_key = key;
			memcpy(to, p->dec + from, n * sizeof *to);
			rc = 0;
		}
	}
out:
	sqlite3_blob_close(b);
	return (rc);
}

/* Whether an entry of a row left unread names an id past those the file
 * had: a definition it lacks, which a new one may have taken since. */
static int
persist_past_file(const struct persist *p, const struct store_entry *e)
{
	return (e->thread >= p->id_limit[STORE_THREAD] ||
	    e->stack >= p->id_limit[STORE_STACK]);
}

static int	persist_cold_entries(struct persist *,
		    const struct query_cold_row *, uint64_t,
		    struct store_entry *, size_t);
static int	persist_cold_entries_at(struct persist *,
		    const struct query_cold_row *, uint64_t,
		    struct store_entry *, size_t, struct persist_pos *);

/* A bucket on disk a query could not read: one log line a minute. */
static void
persist_cold_failed(struct persist *p, int64_t row, const char *what)
{
	static uint64_t	last_ms;
	uint64_t	now = persist_ms();

	p->counts.cold_unreadable++;
	if (last_ms != 0 && now - last_ms < 60000)
		return;
	last_ms = now;
	log_warn("%s: the %s of bucket row %lld cannot be read (%s): queries "
	    "leave it out", p->path, what, (long long)row,
	    p->db != NULL ? sqlite3_errmsg(p->db) : "closed");
}

/* Whether a row a query listed was dropped since (persist_cold_drop):
 * what it names is unpinned at once, and a sweep may have given those ids
 * to new definitions before the next flush deletes the row, so it must not
 * be read; nor, once deleted, be reported as damaged. */
static int
persist_row_gone(const struct persist *p, int64_t row)
{
	size_t	i;

	for (i = 0; i < p->ncold; i++)
		if (p->cold[i].row == row)
			return (0);
	return (1);
}

/* Queries: entries [from, from + n) of a bucket on disk, across its
 * slices (the row's own, then bucket_parts). */
static int
persist_cold_read(void *arg, const struct query_cold_row *r, uint64_t from,
    struct store_entry *to, size_t n)
{
	struct persist	*p = arg;
	size_t		 i;

	if (persist_row_gone(p, r->row))
		return (-1);	/* gone, not damaged: not counted */
	if (persist_cold_entries(p, r, from, to, n) == 0) {
		/* Not checked yet: what names an id past the file's is left
		 * out (a new definition may have that id). */
		for (i = 0; r->unchecked && p->held && i < n; i++)
			if (persist_past_file(p, &to[i]))
				to[i].count = 0;
		return (0);
	}
	persist_cold_failed(p, r->row, "entries");
	return (-1);
}

/* persist_cold_read, without a word. */
static int
persist_cold_entries(struct persist *p, const struct query_cold_row *r,
    uint64_t from, struct store_entry *to, size_t n)
{
	return (persist_cold_entries_at(p, r, from, to, n, &p->pos));
}

/* The same, starting at the slice where *pos says the last read of the
 * row was (and noting where this one ends), so that reading a row whole
 * opens each slice once or twice, not once per slice before it. */
static int
persist_cold_entries_at(struct persist *p, const struct query_cold_row *r,
    uint64_t from, struct store_entry *to, size_t n, struct persist_pos *pos)
{
	uint64_t	 base = 0, have, k;
	int64_t		 part = 0;

	if (p->db == NULL || from + n > r->n)
		return (-1);
	if (pos->row == r->row && from >= pos->base) {
		part = pos->part;
		base = pos->base;
	}
	for (; n > 0 && part <= PERSIST_PARTS_MAX; part++) {
		/* How many this slice holds, first. */
		if (persist_cold_blob(p, part == 0 ? "buckets" :
		    "bucket_parts", part == 0 ? r->row : r->row * 65536 + part,
		    0, NULL, 0, &have) != 0)
			return (-1);
		if (from < base + have) {
			pos->row = r->row;
			pos->part = part;
			pos->base = base;
			k = base + have - from < n ? base + have - from : n;
			if (persist_cold_blob(p, part == 0 ? "buckets" :
			    "bucket_parts", part == 0 ? r->row :
			    r->row * 65536 + part, from - base, to, (size_t)k,
			    &have) != 0)
				return (-1);
			to += k;
			from += k;
			n -= (size_t)k;
		}
		base += have;
	}
	return (n == 0 ? 0 : -1);
}

/* Queries: a bucket on disk's tallies. */
static int
persist_cold_tallies(void *arg, const struct query_cold_row *r,
    struct store_tally **out, size_t *nout)
{
	struct persist	*p = arg;
	sqlite3_stmt	*s;
	const void	*blob;
	size_t		 i, k;
	int		 bytes, rc = -1;

	*out = NULL;
	*nout = 0;
	if (persist_row_gone(p, r->row))
		return (-1);	/* gone, not damaged: not counted */
	if (p->db == NULL || sqlite3_prepare_v2(p->db, "SELECT rows FROM "
	    "tallies WHERE bucket = ?1", -1, &s, NULL) != SQLITE_OK)
		return (-1);
	sqlite3_bind_int64(s, 1, r->row);
	switch (sqlite3_step(s)) {
	case SQLITE_DONE:
		rc = 0;
		break;
	case SQLITE_ROW:
		blob = sqlite3_column_blob(s, 0);
		bytes = sqlite3_column_bytes(s, 0);
		if (bytes <= 0 || blob == NULL ||
		    (size_t)bytes % sizeof **out != 0 ||
		    (*out = malloc((size_t)bytes)) == NULL)
			break;
		memcpy(*out, blob, (size_t)bytes);
		*nout = (size_t)bytes / sizeof **out;
		rc = 0;
		break;
	}
	/* Not checked yet: a process past the file's is left out. */
	if (rc == 0 && r->unchecked && p->held) {
		for (i = 0, k = 0; i < *nout; i++)
			if ((*out)[i].instance < p->id_limit[STORE_INSTANCE])
				(*out)[k++] = (*out)[i];
		*nout = k;
	}
	sqlite3_finalize(s);
	if (rc != 0)
		persist_cold_failed(p, r->row, "tallies");
	return (rc);
}

/* The source queries read buckets on disk through. */
const struct query_cold *
persist_cold_source(struct persist *p)
{
	if (p == NULL)
		return (NULL);
	p->source.arg = p;
	p->source.list = persist_cold_list;
	p->source.read = persist_cold_read;
	p->source.tallies = persist_cold_tallies;
	return (&p->source);
}

/* A bucket on disk as queries see it. */
static void
persist_cold_row(const struct persist_cold *c, struct query_cold_row *r)
{
	r->row = c->row;
	r->start_ns = c->start_ns;
	r->width_ns = c->width_ns;
	r->n = c->n;
	r->unchecked = 0;	/* read as it is: checks and unpins */
}

/* Unpins what the first `upto` entries of a bucket on disk name, read back
 * from it: 0, or -1 if they cannot be read (they stay pinned: memory, never
 * a wrong name). */
static int
persist_cold_unpin_entries(struct persist *p, const struct persist_cold *c,
    uint64_t upto)
{
	struct query_cold_row	 r;
	uint64_t		 at, k, i;

	persist_cold_row(c, &r);
	if (upto > 0 && persist_scratch(p, QUERY_COLD_SLICE) != 0)
		return (-1);
	for (at = 0; at < upto; at += k) {
		k = upto - at < QUERY_COLD_SLICE ? upto - at : QUERY_COLD_SLICE;
		if (persist_cold_entries(p, &r, at, p->scratch, (size_t)k) !=
		    0)
			return (-1);
		for (i = 0; i < k; i++) {
			store_unpin(p->st, STORE_THREAD, p->scratch[i].thread);
			store_unpin(p->st, STORE_STACK, p->scratch[i].stack);
		}
	}
	return (0);
}

/* Unpins what a bucket on disk names, read back from it; what cannot be
 * read stays pinned (memory, never a wrong name). */
static void
persist_cold_unpin(struct persist *p, const struct persist_cold *c)
{
	struct query_cold_row	 r;
	struct store_tally	*t;
	size_t			 nt, i;

	persist_cold_row(c, &r);
	if (persist_cold_unpin_entries(p, c, c->n) != 0)
		return;
	if (persist_cold_tallies(p, &r, &t, &nt) != 0)
		return;
	for (i = 0; i < nt; i++)
		store_unpin(p->st, STORE_INSTANCE, t[i].instance);
	free(t);
}

/* Takes the oldest `n` buckets on disk off the list, their rows to delete
 * at the next flush and what they name unpinned: how many, fewer if no
 * room was left to note a row. */
static size_t
persist_cold_drop(struct persist *p, size_t n, uint64_t *samples)
{
	int64_t	*v;
	size_t	 i, cap;

	*samples = 0;
	for (i = 0; i < n; i++) {
		if (p->dels_cap < p->ndels + p->map_used + 1) {
			cap = p->dels_cap == 0 ? PERSIST_MAP_MIN :
			    p->dels_cap * 2;
			if ((v = reallocarray(p->dels, cap, sizeof *v)) == NULL)
				break;
			p->dels = v;
			p->dels_cap = cap;
		}
		/* Not checked yet: it pinned nothing (expiry waits for the
		 * checks, so none is half done). */
		if (p->cold[i].checked)
			persist_cold_unpin(p, &p->cold[i]);
		p->dels[p->ndels++] = p->cold[i].row;
		p->cold_pending += p->cold[i].bytes;
		*samples += p->cold[i].samples;
	}
	memmove(&p->cold[0], &p->cold[i], (p->ncold - i) * sizeof *p->cold);
	p->ncold -= i;
	p->counts.cold_samples -= *samples;
	p->counts.cold_buckets = p->ncold;
	return (i);
}

/*
 * Housekeeping of the buckets on disk: those past the retention go, then the oldest while the file holds more
 * than max_disk bytes (0: no bound), counting what deletes not yet
 * flushed will free.  Their rows are deleted by the next flush.
 */
void
persist_expire(struct persist *p, uint64_t now_ns, uint64_t max_disk)
{
	const struct store_config	*cfg;
	uint64_t			 cut, used, freed, samples;
	int64_t				 pages, free_pages, page;
	size_t				 n, done;

	if (p == NULL || p->db == NULL || p->ncold == 0 || p->unchecked > 0)
		return;
	cfg = store_get_config(p->st);
	cut = now_ns > cfg->retention_ns ? now_ns - cfg->retention_ns : 0;
	for (n = 0; n < p->ncold && p->cold[n].start_ns +
	    p->cold[n].width_ns <= cut; n++)
		;
	if (n > 0) {
		done = persist_cold_drop(p, n, &samples);
		p->counts.cold_expired_samples += samples;
		if (done < n)
			return;
	}
	if (max_disk == 0 || p->ncold == 0)
		return;
	pages = persist_pragma(p, "PRAGMA page_count");
	free_pages = persist_pragma(p, "PRAGMA freelist_count");
	page = persist_pragma(p, "PRAGMA page_size");
	if (pages < 0 || free_pages < 0 || page <= 0 || free_pages > pages)
		return;
	used = (uint64_t)(pages - free_pages) * (uint64_t)page;
	freed = p->cold_pending;
	for (n = 0; n < p->ncold && used > max_disk + freed; n++)
		freed += p->cold[n].bytes;
	if (n > 0) {
		done = persist_cold_drop(p, n, &samples);
		p->counts.cold_dropped_samples += samples;
		p->counts.cold_dropped_buckets += done;
	}
}

/* -- rolling up buckets on disk ------------------------------------------ */

/*
 * Finds what to roll up on disk: in a span of its age's tier that holds
 * more than one bucket, the two smallest (at *a < *b), so that each entry
 * is rewritten a few times, not once per bucket merged; or a bucket finer
 * than the tier alone in its span (*a == *b).  0, or -1 if nothing is
 * due.
 */
static int
persist_rollup_find(const struct persist *p, uint64_t now, size_t *a,
    size_t *b, uint64_t *start, uint64_t *width)
{
	const struct persist_cold	*c, *d;
	uint64_t			 s, w;
	size_t				 i, j, first, x, y;

	for (i = 0; i < p->ncold; i++) {
		c = &p->cold[i];
		if (now < c->start_ns)
			break;
		if (c->stuck)
			continue;
		w = store_tier_width(p->st, now - c->start_ns);
		s = c->start_ns - c->start_ns % w;
		if (c->width_ns > w || c->start_ns + c->width_ns > s + w)
			continue;
		/* Sorted by start: the span's rows are around i. */
		for (first = i; first > 0 && p->cold[first - 1].start_ns >= s;
		    first--)
			;
		x = y = SIZE_MAX;
		for (j = first; j < p->ncold && p->cold[j].start_ns < s + w;
		    j++) {
			d = &p->cold[j];
			if (d->stuck || d->start_ns + d->width_ns > s + w)
				continue;
			if (x == SIZE_MAX || d->n < p->cold[x].n) {
				y = x;
				x = j;
			} else if (y == SIZE_MAX || d->n < p->cold[y].n)
				y = j;
		}
		*start = s;
		*width = w;
		if (y == SIZE_MAX) {
			/* Widened, it must still sort first of its span. */
			if (c->width_ns == w || first != i)
				continue;
			*a = *b = i;
			return (0);
		}
		if (p->cold[x].n + p->cold[y].n <= PERSIST_ROLLUP_ENTRIES) {
			*a = x < y ? x : y;
			*b = x < y ? y : x;
			return (0);
		}
	}
	return (-1);
}

/* Widens the bucket on disk at i, alone in its span, to [start, +width). */
static int
persist_rollup_widen(struct persist *p, size_t i, uint64_t start,
    uint64_t width)
{
	sqlite3_stmt	*s = p->stmt[PS_SET_SPAN];

	sqlite3_bind_int64(s, 1, p->cold[i].row);
	sqlite3_bind_int64(s, 2, (int64_t)start);
	sqlite3_bind_int64(s, 3, (int64_t)width);
	if (persist_step(p, PS_SET_SPAN) != 0)
		return (-1);
	/* Sorted still: no other row of the span is before it. */
	p->cold[i].start_ns = start;
	p->cold[i].width_ns = width;
	return (0);
}

/* A bucket on disk read in order a slice at a time, for a merge. */
struct persist_cursor {
	struct query_cold_row	 r;
	uint64_t		 at;	/* next entry to read */
	uint64_t		 end;	/* entries to take */
	struct store_entry	*buf;	/* QUERY_COLD_SLICE of them */
	size_t			 i, k;	/* buf[i, k) not taken yet */
	struct persist_pos	 pos;
};

/* The cursor's next entry: 0 and *e, 1 at its end, or -1 if unreadable. */
static int
persist_cursor_head(struct persist *p, struct persist_cursor *c,
    const struct store_entry **e)
{
	uint64_t	k;

	if (c->i == c->k) {
		if (c->at == c->end)
			return (1);
		k = c->end - c->at < QUERY_COLD_SLICE ? c->end - c->at :
		    QUERY_COLD_SLICE;
		if (persist_cold_entries_at(p, &c->r, c->at, c->buf,
		    (size_t)k, &c->pos) != 0)
			return (-1);
		c->at += k;
		c->i = 0;
		c->k = (size_t)k;
	}
	*e = &c->buf[c->i];
	return (0);
}

/* What a merge does with the entries it makes and takes. */
struct persist_merge {
	int			 undo;	/* unpin made, pin taken */
	int64_t			 row;	/* written: this row's slices */
	size_t			 per;	/* entries a slice */
	struct store_entry	*out;	/* the slice being made */
	struct store_entry	*head;	/* the row's own slice, kept */
	size_t			 nout, nhead;
	int64_t			 part;
	uint64_t		 n, bytes;
	struct store_entry	 last;	/* the last one made */
	int			 failed;	/* a write or pin failed */
	int			 bad;		/* the rows are out of order */
	uint64_t		 unpinned;	/* made, its pins failed: n */
};

/* A merged entry: pinned and written, or (undo) unpinned. */
static void
persist_merge_emit(struct persist *p, struct persist_merge *m,
    const struct store_entry *e)
{
	struct store_entry	*t;

	m->n++;
	if (m->undo) {
		if (m->n == m->unpinned)
			return;
		store_unpin(p->st, STORE_THREAD, e->thread);
		store_unpin(p->st, STORE_STACK, e->stack);
		return;
	}
	/* Every id a merged entry names is pinned by the entries it came
	 * from: a pin cannot fail here, short of a bug.  Rows out of order
	 * (damaged) would merge into one that cannot be read: refused. */
	if (store_pin(p->st, STORE_THREAD, e->thread) != 0) {
		m->unpinned = m->n;
		m->failed = 1;
		return;
	}
	if (store_pin(p->st, STORE_STACK, e->stack) != 0) {
		store_unpin(p->st, STORE_THREAD, e->thread);
		m->unpinned = m->n;
		m->failed = 1;
		return;
	}
	if (m->n > 1 && store_cmp_entry(&m->last, e) >= 0)
		m->bad = 1;
	m->last = *e;
	if (m->bad)
		return;
	m->out[m->nout++] = *e;
	if (m->nout < m->per)
		return;
	if (m->head != NULL && m->nhead == 0) {
		/* The first slice goes in the row, written last. */
		t = m->head;
		m->head = m->out;
		m->out = t;
		m->nhead = m->nout;
	} else if (persist_put_part(p, m->row, ++m->part, m->out, m->nout,
	    &m->bytes) != 0)
		m->failed = 1;
	m->nout = 0;
}

/* A taken entry: unpinned, or (undo) pinned again. */
static void
persist_merge_take(struct persist *p, const struct persist_merge *m,
    const struct store_entry *e)
{
	if (m->undo) {
		(void)store_pin(p->st, STORE_THREAD, e->thread);
		(void)store_pin(p->st, STORE_STACK, e->stack);
	} else {
		store_unpin(p->st, STORE_THREAD, e->thread);
		store_unpin(p->st, STORE_STACK, e->stack);
	}
}

/*
 * Merges two cursors' entries in the store's order, summing equal keys
 * (as store_merge does): 0, or -1 if one could not be read.
 */
static int
persist_merge_run(struct persist *p, struct persist_cursor *x,
    struct persist_cursor *y, struct persist_merge *m)
{
	const struct store_entry	*a, *b;
	struct store_entry		 e;
	int				 ra, rb, c;

	for (;;) {
		/* Nothing more is written once a write failed: SQLite may
		 * have rolled the transaction back, and would commit each. */
		if (!m->undo && (m->failed || m->bad))
			return (0);
		if ((ra = persist_cursor_head(p, x, &a)) < 0 ||
		    (rb = persist_cursor_head(p, y, &b)) < 0)
			return (-1);
		if (ra == 1 && rb == 1)
			return (0);
		c = ra == 1 ? 1 : rb == 1 ? -1 : store_cmp_entry(a, b);
		if (c <= 0) {
			e = *a;
			persist_merge_take(p, m, a);
			x->i++;
			if (c == 0) {
				e.count += b->count;
				e.weight_us += b->weight_us;
				persist_merge_take(p, m, b);
				y->i++;
			}
		} else {
			e = *b;
			persist_merge_take(p, m, b);
			y->i++;
		}
		persist_merge_emit(p, m, &e);
	}
}

/* Points a cursor at the first `end` entries of the bucket on disk c. */
static void
persist_cursor_set(struct persist_cursor *cur, const struct persist_cold *c,
    uint64_t end, struct store_entry *buf)
{
	persist_cold_row(c, &cur->r);
	cur->at = 0;
	cur->end = end;
	cur->buf = buf;
	cur->i = cur->k = 0;
	memset(&cur->pos, 0, sizeof cur->pos);
}

/*
 * Merges the buckets on disk at a < b into one row of [start, +width), a
 * slice at a time (what it holds: four slices), in one transaction that
 * writes it and deletes the two.  As entries are merged, what the merged
 * row names is pinned and what the two named unpinned; a failure rolls
 * back and merges again what was taken, undoing both.  0; -1 if a write
 * failed; -2 if the two cannot be merged (unreadable, out of order).
 */
static int
persist_rollup_merge(struct persist *p, size_t a, size_t b, uint64_t start,
    uint64_t width)
{
	struct persist_cursor	 x, y;
	struct persist_merge	 m;
	struct query_cold_row	 r;
	struct store_tally	*tx = NULL, *ty = NULL, *t = NULL;
	size_t			 ntx = 0, nty = 0, nt = 0, i;
	uint64_t		 samples, deleted = p->counts.rows_deleted, tb;
	int			 rc = -1, begun = 0, read;

	if (p->merge_buf == NULL && (p->merge_buf = malloc(4 *
	    QUERY_COLD_SLICE * sizeof *p->merge_buf)) == NULL)
		return (-1);
	persist_cold_row(&p->cold[a], &r);
	if (persist_cold_tallies(p, &r, &tx, &ntx) != 0)
		return (-2);
	persist_cold_row(&p->cold[b], &r);
	if (persist_cold_tallies(p, &r, &ty, &nty) != 0) {
		rc = -2;
		goto out;
	}
	if ((t = malloc((ntx + nty + 1) * sizeof *t)) == NULL)
		goto out;
	nt = store_merge_tallies(t, tx, ntx, ty, nty);
	memset(&m, 0, sizeof m);
	m.row = p->next_row;
	m.per = persist_per_part();
	if (m.per > QUERY_COLD_SLICE)
		m.per = QUERY_COLD_SLICE;
	m.out = p->merge_buf + 2 * QUERY_COLD_SLICE;
	m.head = p->merge_buf + 3 * QUERY_COLD_SLICE;
	persist_cursor_set(&x, &p->cold[a], p->cold[a].n, p->merge_buf);
	persist_cursor_set(&y, &p->cold[b], p->cold[b].n,
	    p->merge_buf + QUERY_COLD_SLICE);
	if (persist_step(p, PS_BEGIN) != 0)
		goto undo;
	begun = 1;
	if ((read = persist_merge_run(p, &x, &y, &m)) != 0 || m.bad ||
	    m.failed) {
		if (read != 0 || m.bad)
			rc = -2;
		goto undo;
	}
	if (m.nhead == 0) {
		/* One slice in all: it is the row's own. */
		m.head = m.out;
		m.nhead = m.nout;
		m.nout = 0;
	} else if (m.nout > 0 && persist_put_part(p, m.row, ++m.part, m.out,
	    m.nout, &m.bytes) != 0)
		goto undo;
	if (persist_put_head(p, m.row, start, width, m.n, m.head, m.nhead,
	    &m.bytes) != 0 || persist_put_tallies(p, m.row, t, nt) != 0 ||
	    persist_del_row(p, p->cold[a].row) != 0 ||
	    persist_del_row(p, p->cold[b].row) != 0 ||
	    persist_step(p, PS_COMMIT) != 0)
		goto undo;
	for (i = 0; i < nt; i++)
		(void)store_pin(p->st, STORE_INSTANCE, t[i].instance);
	for (i = 0; i < ntx; i++)
		store_unpin(p->st, STORE_INSTANCE, tx[i].instance);
	for (i = 0; i < nty; i++)
		store_unpin(p->st, STORE_INSTANCE, ty[i].instance);
	p->next_row++;
	p->counts.parts_written += (uint64_t)m.part;
	samples = p->cold[a].samples + p->cold[b].samples;
	memmove(&p->cold[b], &p->cold[b + 1], (p->ncold - b - 1) *
	    sizeof *p->cold);
	memmove(&p->cold[a], &p->cold[a + 1], (p->ncold - a - 2) *
	    sizeof *p->cold);
	p->ncold -= 2;
	p->counts.cold_samples -= samples;
	tb = nt * sizeof *t;
	/* Room for it: two rows just left the list. */
	(void)persist_cold_add(p, m.row, start, width, m.n, samples,
	    m.bytes + tb, 1);
	p->counts.disk_rollups++;
	rc = 0;
	goto out;
undo:
	if (begun && !sqlite3_get_autocommit(p->db))
		persist_step(p, PS_ROLLBACK);
	p->counts.rows_deleted = deleted;
	/* Its row id is not given again: a slice SQLite let through after
	 * rolling back by itself would join another bucket's. */
	p->next_row++;
	/* Merge again what was taken, pinning it back and unpinning what
	 * was made of it (the rows are as they were). */
	m.undo = 1;
	m.n = 0;
	persist_cursor_set(&x, &p->cold[a], x.at - (x.k - x.i), x.buf);
	persist_cursor_set(&y, &p->cold[b], y.at - (y.k - y.i), y.buf);
	if (persist_merge_run(p, &x, &y, &m) != 0) {
		/* Some ids are now pinned less than their rows name them:
		 * none is freed or given again from now on (memory, never a
		 * wrong name). */
		store_hold_ids(p->st, 1);
		log_warn("%s: a roll-up on disk failed and what it read "
		    "cannot be read again: definitions are no longer freed "
		    "until profd restarts", p->path);
	}
out:
	free(tx);
	free(ty);
	free(t);
	return (rc);
}

int
persist_rollup(struct persist *p, uint64_t now_ns, uint64_t budget_ms)
{
	uint64_t	start, width, t0;
	size_t		a, b;
	int		n = 0, rc;

	/* Not before the file is known sound, its rows all checked, and its
	 * schema raised (by a flush) to what a merged row is written in. */
	if (p == NULL || p->db == NULL || p->damaged || p->defer ||
	    p->qc_running || p->unchecked > 0 || p->schema_old ||
	    store_busy(p->st))
		return (0);
	t0 = persist_ms();
	if (t0 < p->rollup_retry_ms)
		return (0);
	do {
		if (persist_rollup_find(p, now_ns, &a, &b, &start, &width) !=
		    0)
			break;
		rc = a == b ? persist_rollup_widen(p, a, start, width) :
		    persist_rollup_merge(p, a, b, start, width);
		if (rc == -2) {
			/* Left as they are, for good: the rest goes on. */
			p->cold[a].stuck = p->cold[b].stuck = 1;
			p->counts.disk_rollup_failures++;
			continue;
		}
		if (rc != 0) {
			p->rollup_retry_ms = persist_ms() +
			    PERSIST_ROLLUP_RETRY_MS;
			p->counts.disk_rollup_failures++;
			break;
		}
		n++;
	} while (persist_ms() - t0 < budget_ms);
	return (n);
}

/* -- checking what a load left on disk ----------------------------------- */

static enum persist_rc	persist_slice_check(struct persist *,
			    const struct store_entry *, size_t,
			    const struct store_entry *, int *);
static enum persist_rc	persist_slice_pin(struct persist *,
			    const struct store_entry *, size_t);

/* Stops checking: every row is gone (a reset) or checked. */
static void
persist_check_forget(struct persist *p)
{
	free(p->check.t);
	memset(&p->check, 0, sizeof p->check);
	p->unchecked = 0;
	p->counts.cold_unchecked = 0;
	if (p->held) {
		store_hold_ids(p->st, -1);
		p->held = 0;
	}
}

/* The index of the row being checked, or of the next to check; -1 if
 * none is left. */
static ssize_t
persist_check_find(struct persist *p)
{
	size_t	i;

	if (p->check.row != 0) {
		if (p->check.at < p->ncold &&
		    p->cold[p->check.at].row == p->check.row)
			return ((ssize_t)p->check.at);
		for (i = 0; i < p->ncold; i++) {
			if (p->cold[i].row == p->check.row)
				return ((ssize_t)(p->check.at = i));
		}
		return (-1);
	}
	for (i = p->check.at; i < p->ncold; i++) {
		if (!p->cold[i].checked)
			return ((ssize_t)(p->check.at = i));
	}
	for (i = 0; i < p->check.at && i < p->ncold; i++) {
		if (!p->cold[i].checked)
			return ((ssize_t)(p->check.at = i));
	}
	return (-1);
}

/*
 * Leaves row cold[i] out: what its check pinned is unpinned (the entries
 * read back: how many, returned), and the row is deleted at the next flush
 * (kept in the file, unread, if there is no room to note it).  One log
 * line, for the first PERSIST_CHECK_LOGS.
 */
static uint64_t
persist_check_drop(struct persist *p, size_t i, const char *why)
{
	struct persist_cold	*c = &p->cold[i];
	int64_t			*v;
	uint64_t		 reread;
	size_t			 k, cap;

	if (p->check_dropped++ < PERSIST_CHECK_LOGS)
		log_warn("%s: bucket row %lld (%llu entries) is left out and "
		    "deleted: %s%s", p->path, (long long)c->row,
		    (unsigned long long)c->n, why,
		    p->check_dropped == PERSIST_CHECK_LOGS ? " (more are "
		    "counted, not logged)" : "");
	reread = p->check.from;
	(void)persist_cold_unpin_entries(p, c, p->check.from);
	for (k = 0; k < p->check.nt; k++)
		store_unpin(p->st, STORE_INSTANCE, p->check.t[k].instance);
	free(p->check.t);
	p->check.t = NULL;
	p->check.nt = 0;
	p->check.row = 0;
	p->check.from = 0;
	if (p->dels_cap < p->ndels + p->map_used + 1) {
		cap = p->dels_cap == 0 ? PERSIST_MAP_MIN : p->dels_cap * 2;
		if ((v = reallocarray(p->dels, cap, sizeof *v)) != NULL) {
			p->dels = v;
			p->dels_cap = cap;
		}
	}
	if (p->dels_cap >= p->ndels + p->map_used + 1) {
		p->dels[p->ndels++] = c->row;
		p->cold_pending += c->bytes;
	}
	memmove(&p->cold[i], &p->cold[i + 1],
	    (p->ncold - i - 1) * sizeof *p->cold);
	p->ncold--;
	p->counts.cold_buckets = p->ncold;
	p->counts.buckets_dropped++;
	p->unchecked--;
	return (reread);
}

/* Starts checking cold[i]: its tallies read, checked and pinned.  0, or
 * -1 with the row dropped. */
static int
persist_check_begin(struct persist *p, size_t i)
{
	struct query_cold_row	 r;
	const char		*why = NULL;
	size_t			 k, pinned = 0;

	persist_cold_row(&p->cold[i], &r);
	p->check.row = r.row;
	p->check.at = i;
	p->check.from = 0;
	p->check.samples = 0;
	if (persist_cold_tallies(p, &r, &p->check.t, &p->check.nt) != 0)
		why = "its tallies cannot be read";
	for (k = 0; why == NULL && k < p->check.nt; k++) {
		if ((p->check.t[k].samples == 0 &&
		    p->check.t[k].invalid == 0) || (k > 0 &&
		    store_cmp_tally(&p->check.t[k - 1], &p->check.t[k]) >= 0))
			why = "its tallies are damaged";
		else if (p->check.t[k].instance >=
		    p->id_limit[STORE_INSTANCE] || store_pin(p->st,
		    STORE_INSTANCE, p->check.t[k].instance) != 0)
			why = "it names a process the file lacks";
		else
			pinned++;
	}
	if (why == NULL)
		return (0);
	p->check.nt = pinned;		/* what the drop unpins */
	persist_check_drop(p, i, why);
	return (-1);
}

/*
 * Checks up to `budget` entries of the rows a load left on disk without
 * reading them (past PERSIST_LOAD_MS): each must hold together and name
 * only definitions the file has, and is pinned; one that does not is
 * dropped alone.  Nothing while a query reads.  1 when every row is
 * checked (the ids are then released), else 0.
 */
int
persist_check_step(struct persist *p, size_t budget)
{
	struct persist_cold	*c;
	struct query_cold_row	 r;
	const char		*why;
	ssize_t			 i;
	uint64_t		 k, j;
	int			 missing;

	if (p == NULL)
		return (1);
	while (p->unchecked > 0 && budget > 0 && !store_busy(p->st)) {
		if ((i = persist_check_find(p)) < 0) {
			p->unchecked = 0;
			break;
		}
		if (p->check.row == 0) {
			/* A row's start (its tallies read) costs as a few
			 * entries would. */
			budget -= budget < PERSIST_CHECK_ROW_COST ? budget :
			    PERSIST_CHECK_ROW_COST;
			if (persist_check_begin(p, (size_t)i) != 0)
				continue;
		}
		c = &p->cold[i];
		persist_cold_row(c, &r);
		k = c->n - p->check.from;
		if (k > QUERY_COLD_SLICE)
			k = QUERY_COLD_SLICE;
		if (k > budget)
			k = budget;
		if (k > 0) {
			why = NULL;
			missing = 0;
			if (persist_scratch(p, (size_t)k) != 0)
				break;		/* again later */
			if (persist_cold_entries(p, &r, p->check.from,
			    p->scratch, (size_t)k) != 0)
				why = "its entries cannot be read";
			else if (persist_slice_check(p, p->scratch, (size_t)k,
			    p->check.from > 0 ? &p->check.last : NULL,
			    &missing) != PERSIST_OK)
				why = "its entries are damaged";
			for (j = 0; why == NULL && !missing && j < k; j++)
				missing = persist_past_file(p, &p->scratch[j]);
			if (why == NULL && missing)
				why = "it names a definition the file lacks";
			if (why != NULL) {
				k = persist_check_drop(p, (size_t)i, why);
				budget -= budget < k ? budget : (size_t)k;
				continue;
			}
			p->pin_samples = 0;
			if (persist_slice_pin(p, p->scratch, (size_t)k) !=
			    PERSIST_OK) {
				/* Some of this slice stay pinned: memory,
				 * never a wrong name. */
				k = persist_check_drop(p, (size_t)i,
				    "no memory to pin what it names");
				budget -= budget < k ? budget : (size_t)k;
				continue;
			}
			p->check.samples += p->pin_samples;
			p->check.last = p->scratch[k - 1];
			p->check.from += k;
			budget -= (size_t)k;
		}
		if (p->check.from == c->n) {
			c->checked = 1;
			c->samples = p->check.samples;
			p->counts.cold_samples += c->samples;
			free(p->check.t);
			p->check.t = NULL;
			p->check.nt = 0;
			p->check.row = 0;
			p->check.from = 0;
			p->check.at = (size_t)i + 1;
			p->unchecked--;
		}
	}
	p->counts.cold_unchecked = p->unchecked;
	if (p->unchecked == 0 && p->held) {
		log_info("%s: checked the buckets left on disk at start in "
		    "%" PRIu64 " ms (%" PRIu64 " samples; %" PRIu64 " buckets "
		    "left out and deleted)", p->path,
		    persist_ms() - p->check_ms, p->counts.cold_samples,
		    p->check_dropped);
		persist_check_forget(p);
	}
	return (p->unchecked == 0);
}

/* -- hooks --------------------------------------------------------------- */

static void
persist_hook_put(void *arg, enum store_kind k, uint32_t id)
{
	persist_pend(arg, k, id, PERSIST_PUT);
}

static void
persist_hook_del(void *arg, enum store_kind k, uint32_t id)
{
	persist_pend(arg, k, id, PERSIST_DEL);
}

static void
persist_hook_bucket_del(void *arg, const struct store_bucket *b)
{
	struct persist	*p = arg;
	int64_t		 row;

	if ((row = persist_map_del(p, b)) != 0)
		p->dels[p->ndels++] = row;	/* room reserved at put */
}

/* Store hook: a bucket evicted for the memory cap stays on disk if its
 * row holds it all (written, unchanged since). */
static int
persist_hook_bucket_keep(void *arg, const struct store_bucket *b)
{
	struct persist	*p = arg;
	int64_t		 row;

	if (b->dirty || (row = persist_map_get(p, b)) == 0 ||
	    persist_cold_add(p, row, b->start_ns, b->width_ns, b->n,
	    b->samples, persist_map_bytes_of(p, b) + b->ntallies *
	    sizeof *b->tallies, 1) != 0)
		return (-1);
	persist_map_del(p, b);
	return (0);
}

/* Store hook: every sample is forgotten, the rows left on disk too. */
static void
persist_hook_reset(void *arg)
{
	struct persist	*p = arg;

	memset(&p->pos, 0, sizeof p->pos);
	p->dec_key = 0;
	p->reset_below = p->next_row;
	p->ncold = 0;
	p->counts.cold_buckets = p->counts.cold_samples = 0;
	persist_check_forget(p);
}

/* -- opening ------------------------------------------------------------- */

/* Runs SQL without results; the SQLite code. */
static int
persist_exec(struct persist *p, const char *sql)
{
	return (sqlite3_exec(p->db, sql, NULL, NULL, NULL));
}

/* Maps a SQLite error met while reading the file. */
static enum persist_rc
persist_rc_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_NOMEM:
		return (PERSIST_FAIL);
	default:
		return (PERSIST_BAD);
	}
}

/* Creates the tables in an empty file. */
static enum persist_rc
persist_create(struct persist *p)
{
	sqlite3_stmt	*s = NULL;
	size_t		 i;
	int		 rc;

	if ((rc = persist_exec(p, "BEGIN")) != SQLITE_OK)
		return (persist_rc_of(rc));
	for (i = 0; i < PERSIST_NSCHEMA; i++) {
		if ((rc = persist_exec(p, persist_schema[i].sql)) != SQLITE_OK)
			goto fail;
	}
	if ((rc = sqlite3_prepare_v2(p->db, "INSERT INTO meta VALUES(?1, ?2)",
	    -1, &s, NULL)) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(s, 1, PERSIST_MAGIC, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, PERSIST_SCHEMA);
	if ((rc = sqlite3_step(s)) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	if ((rc = persist_exec(p, "COMMIT")) != SQLITE_OK)
		goto fail;
	return (PERSIST_OK);
fail:
	sqlite3_finalize(s);
	persist_exec(p, "ROLLBACK");
	return (PERSIST_FAIL);
}

/* Checks the schema and the meta row; creates them in an empty file. */
static enum persist_rc
persist_check(struct persist *p, const char **why)
{
	sqlite3_stmt	*s = NULL;
	const char	*type, *name, *sql;
	char		*create;
	size_t		 i, seen = 0;
	int		 rc, found;

	*why = "not a profd store";
	if ((rc = sqlite3_prepare_v2(p->db,
	    "SELECT type, name, sql FROM sqlite_schema", -1, &s, NULL)) !=
	    SQLITE_OK)
		goto fail;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		type = (const char *)sqlite3_column_text(s, 0);
		name = (const char *)sqlite3_column_text(s, 1);
		sql = (const char *)sqlite3_column_text(s, 2);
		found = 0;
		for (i = 0; i < PERSIST_NSCHEMA; i++) {
			if (type != NULL && name != NULL && sql != NULL &&
			    strcmp(type, persist_schema[i].type) == 0 &&
			    strcmp(name, persist_schema[i].name) == 0 &&
			    strcmp(sql, persist_schema[i].sql) == 0)
				found = 1;
		}
		if (!found) {
			sqlite3_finalize(s);
			return (PERSIST_BAD);
		}
		seen++;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	s = NULL;
	if (seen == 0)
		return (persist_create(p));
	if (seen < PERSIST_FIRST_ADDED || seen > PERSIST_NSCHEMA)
		return (PERSIST_BAD);
	for (i = PERSIST_FIRST_ADDED; seen < PERSIST_NSCHEMA &&
	    i < PERSIST_NSCHEMA; i++) {
		/* Every row matched a table of ours: add what is missing
		 * (sqlite_schema keeps the text without IF NOT EXISTS). */
		if (asprintf(&create, "CREATE TABLE IF NOT EXISTS %s",
		    persist_schema[i].sql + strlen("CREATE TABLE ")) == -1)
			return (PERSIST_FAIL);
		rc = persist_exec(p, create);
		free(create);
		if (rc != SQLITE_OK)
			goto fail;
	}
	if ((rc = sqlite3_prepare_v2(p->db, "SELECT magic, version FROM meta",
	    -1, &s, NULL)) != SQLITE_OK)
		goto fail;
	if (sqlite3_step(s) != SQLITE_ROW || (name = (const char *)
	    sqlite3_column_text(s, 0)) == NULL ||
	    strcmp(name, PERSIST_MAGIC) != 0) {
		sqlite3_finalize(s);
		return (PERSIST_BAD);
	}
	if (sqlite3_column_int64(s, 1) < PERSIST_SCHEMA_OLDEST ||
	    sqlite3_column_int64(s, 1) > PERSIST_SCHEMA) {
		*why = "another schema version";
		sqlite3_finalize(s);
		return (PERSIST_BAD);
	}
	p->schema_old = sqlite3_column_int64(s, 1) < PERSIST_SCHEMA;
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return (rc == SQLITE_DONE ? PERSIST_OK : PERSIST_BAD);
fail:
	sqlite3_finalize(s);
	*why = sqlite3_errmsg(p->db);
	return (persist_rc_of(rc));
}

/*
 * Says whether the store's file and its WAL and shared-memory files are
 * each absent or a regular file: a symbolic link there (to another
 * application's database, say) is never followed, nor is anything else
 * opened or written in its place.  0, or -1 with *why set.
 */
static int
persist_regular(const struct persist *p, const char **why)
{
	static const char *const suffix[] = { "", "-wal", "-shm" };
	char		 path[PERSIST_PATH_MAX + PERSIST_SUFFIX_MAX];
	struct stat	 sb;
	size_t		 i;

	for (i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		snprintf(path, sizeof path, "%s%s", p->path, suffix[i]);
		if (lstat(path, &sb) != 0) {
			if (errno == ENOENT)
				continue;
			*why = "cannot be checked (lstat failed)";
			return (-1);
		}
		if (S_ISLNK(sb.st_mode)) {
			*why = i == 0 ? "is a symbolic link: profd does not "
			    "follow links in its state directory (remove it; "
			    "profd creates the file)" : "has a -wal or -shm "
			    "file that is a symbolic link: profd does not "
			    "follow links in its state directory (remove it)";
			return (-1);
		}
		if (!S_ISREG(sb.st_mode)) {
			*why = i == 0 ? "is not a regular file (remove it; "
			    "profd creates the file)" : "has a -wal or -shm "
			    "file that is not a regular file (remove it)";
			return (-1);
		}
	}
	return (0);
}

/* One integer of a pragma; -1 on error. */
static int64_t
persist_pragma(struct persist *p, const char *sql)
{
	sqlite3_stmt	*s = NULL;
	int64_t		 v = -1;

	if (sqlite3_prepare_v2(p->db, sql, -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return (v);
}

/*
 * A file an older profd made without auto_vacuum never shrinks: made
 * shrinkable now (a VACUUM) when it is small enough to do so quickly and
 * may be written yet (`vacuum`), else said once with the command that
 * does it.
 */
static void
persist_convert(struct persist *p, int vacuum)
{
	int64_t		pages, size, mode;
	uint64_t	t0;

	mode = persist_pragma(p, "PRAGMA auto_vacuum");
	p->incremental = mode == 2;
	if (mode != 0)
		return;
	pages = persist_pragma(p, "PRAGMA page_count");
	size = persist_pragma(p, "PRAGMA page_size");
	if (pages < 0 || size <= 0)
		return;
	if (!vacuum || (uint64_t)pages * (uint64_t)size > PERSIST_CONVERT_MAX) {
		log_warn("%s: made by an older profd, it never gives space "
		    "back; stop profd and run: sqlite3 %s 'PRAGMA "
		    "auto_vacuum=INCREMENTAL; VACUUM'", p->path, p->path);
		return;
	}
	t0 = persist_ms();
	if (persist_exec(p, "PRAGMA auto_vacuum=INCREMENTAL") == SQLITE_OK &&
	    persist_exec(p, "VACUUM") == SQLITE_OK) {
		p->incremental = 1;
		log_info("%s: made able to give space back (VACUUM, %" PRIu64
		    " ms)", p->path, persist_ms() - t0);
	} else
		log_warn("%s: cannot make it give space back (VACUUM: %s); it "
		    "keeps working as it is", p->path, sqlite3_errmsg(p->db));
}

/* Opens the file and checks it is a healthy store of this schema. */
static enum persist_rc
persist_db_open(struct persist *p, int whole, const char **why)
{
	sqlite3_stmt	*s = NULL;
	const char	*r;
	char		 sql[64];
	enum persist_rc	 r2;
	int		 rc;

	if (persist_regular(p, why) != 0)
		return (PERSIST_FAIL);
	*why = "cannot open";
	/* NOFOLLOW: a link made after the check is refused all the same. */
	rc = sqlite3_open_v2(p->path, &p->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
	    NULL);
	if (rc != SQLITE_OK)
		goto fail;
	/* A hostile file must not run code or grow rows without bound. */
	sqlite3_db_config(p->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(p->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_limit(p->db, SQLITE_LIMIT_LENGTH, PERSIST_MAX_ROW);
	/* A new file: pages deletes free can be given back (set before
	 * the WAL and any table; a no-op on a file that has tables). */
	if ((rc = persist_exec(p, "PRAGMA auto_vacuum=INCREMENTAL")) !=
	    SQLITE_OK ||
	    (rc = persist_exec(p, "PRAGMA journal_mode=WAL")) != SQLITE_OK ||
	    (rc = persist_exec(p, "PRAGMA synchronous=FULL")) != SQLITE_OK ||
	    (rc = persist_exec(p, "PRAGMA cell_size_check=ON")) != SQLITE_OK)
		goto fail;
	/* The WAL shrinks back to this after a checkpoint. */
	snprintf(sql, sizeof sql, "PRAGMA journal_size_limit=%d",
	    PERSIST_WAL_LIMIT);
	(void)persist_exec(p, sql);
	/* A big file is checked whole on a thread (persist_qc_start). */
	if (!whole) {
		if ((r2 = persist_check(p, why)) == PERSIST_OK)
			persist_convert(p, 0);
		return (r2);
	}
	if ((rc = sqlite3_prepare_v2(p->db, "PRAGMA quick_check(1)", -1, &s,
	    NULL)) != SQLITE_OK)
		goto fail;
	if ((rc = sqlite3_step(s)) != SQLITE_ROW)
		goto fail;
	r = (const char *)sqlite3_column_text(s, 0);
	if (r == NULL || strcmp(r, "ok") != 0) {
		sqlite3_finalize(s);
		*why = "damaged (quick_check failed)";
		return (PERSIST_BAD);
	}
	sqlite3_finalize(s);
	if ((r2 = persist_check(p, why)) == PERSIST_OK)
		persist_convert(p, 1);
	return (r2);
fail:
	sqlite3_finalize(s);
	if (p->db != NULL)
		*why = sqlite3_errmsg(p->db);
	return (rc == SQLITE_CANTOPEN && access(p->path, F_OK) == 0 ?
	    PERSIST_BAD : persist_rc_of(rc));
}

/* Sets what each commit waits for: with FULL, SQLite syncs the WAL at
 * every commit (a flush), so what was acknowledged survives a power cut;
 * with NORMAL it is written to the OS only (synced at checkpoints): a
 * power cut may lose the last commits, never the file. */
int
persist_set_sync(struct persist *p, enum persist_sync how)
{
	return (persist_exec(p, how == PERSIST_SYNC_NONE ?
	    "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL") ==
	    SQLITE_OK ? 0 : -1);
}

/* Closes the file. */
static void
persist_db_close(struct persist *p)
{
	int	i;

	for (i = 0; i < PS_COUNT; i++) {
		sqlite3_finalize(p->stmt[i]);
		p->stmt[i] = NULL;
	}
	sqlite3_close(p->db);
	p->db = NULL;
}

/* Renames a bad file aside with its WAL; says so in one line. */
static void
persist_set_aside(struct persist *p, const char *why)
{
	char		 bad[PERSIST_PATH_MAX], from[PERSIST_PATH_MAX];
	char		 to[PERSIST_PATH_MAX + PERSIST_SUFFIX_MAX];
	char		 reason[256];
	time_t		 t = time(NULL);
	int		 i;

	/* why may be SQLite's message, freed with the connection. */
	snprintf(reason, sizeof reason, "%s", why);
	why = reason;
	persist_db_close(p);
	snprintf(bad, sizeof bad, "%s.bad-%lld", p->path, (long long)t);
	for (i = 1; i < PERSIST_BAD_TRIES && access(bad, F_OK) == 0; i++)
		snprintf(bad, sizeof bad, "%s.bad-%lld.%d", p->path,
		    (long long)t, i);
	if (rename(p->path, bad) != 0) {
		log_warn("%s: %s, and cannot be moved aside (%s): removed; "
		    "starting with an empty store", p->path, why,
		    strerror(errno));
		unlink(p->path);
	} else {
		log_warn("%s: %s; moved aside to %s, starting with an empty "
		    "store (inspect or delete it; it is not read again)",
		    p->path, why, bad);
	}
	snprintf(from, sizeof from, "%s-wal", p->path);
	snprintf(to, sizeof to, "%s-wal", bad);
	if (rename(from, to) != 0)
		unlink(from);
	snprintf(from, sizeof from, "%s-shm", p->path);
	unlink(from);
	p->counts.set_aside++;
}

/* -- loading ------------------------------------------------------------- */

/* A column as a 32-bit id; 0 if out of range. */
static uint32_t
persist_col_id(sqlite3_stmt *s, int col)
{
	int64_t	v = sqlite3_column_int64(s, col);

	return (v > 0 && v <= UINT32_MAX ? (uint32_t)v : 0);
}

/* A column as a uint32; -1 if out of range. */
static int
persist_col_u32(sqlite3_stmt *s, int col, uint32_t *out)
{
	int64_t	v = sqlite3_column_int64(s, col);

	if (v < 0 || v > UINT32_MAX)
		return (-1);
	*out = (uint32_t)v;
	return (0);
}

/* Runs a loading query, calling fn on each row. */
static enum persist_rc
persist_load_rows(struct persist *p, const char *sql,
    enum persist_rc (*fn)(struct persist *, sqlite3_stmt *))
{
	sqlite3_stmt	*s = NULL;
	enum persist_rc	 r = PERSIST_OK;
	int		 rc;

	if ((rc = sqlite3_prepare_v2(p->db, sql, -1, &s, NULL)) != SQLITE_OK)
		return (persist_rc_of(rc));
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((r = fn(p, s)) != PERSIST_OK)
			break;
	}
	if (r == PERSIST_OK && rc != SQLITE_DONE)
		r = persist_rc_of(rc);
	sqlite3_finalize(s);
	return (r);
}

/* Loads a string row. */
static enum persist_rc
persist_load_string(struct persist *p, sqlite3_stmt *s)
{
	uint32_t	 id = persist_col_id(s, 0), len;
	const void	*text = sqlite3_column_blob(s, 1);
	int		 n = sqlite3_column_bytes(s, 1);
	const char	*have;

	if (id == 0 || n < 0 || n > PROTO_MAX_STRING || (n > 0 && text == NULL))
		return (PERSIST_BAD);
	if ((have = store_string_get(p->st, id, &len)) != NULL &&
	    (len != (uint32_t)n || (n > 0 && memcmp(have, text, n) != 0)))
		return (PERSIST_BAD);
	if (store_load_string(p->st, id, n > 0 ? text : "", n) != 0)
		return (PERSIST_NOFIT);
	return (PERSIST_OK);
}

/* Loads a function row. */
static enum persist_rc
persist_load_func(struct persist *p, sqlite3_stmt *s)
{
	uint32_t	id = persist_col_id(s, 0), name = persist_col_id(s, 1);
	uint32_t	file = persist_col_id(s, 2), line, a, b, c;

	if (id == 0 || persist_col_u32(s, 3, &line) != 0 ||
	    store_string_get(p->st, name, NULL) == NULL ||
	    store_string_get(p->st, file, NULL) == NULL)
		return (PERSIST_BAD);
	if (store_func_get(p->st, id, &a, &b, &c) == 0 &&
	    (a != name || b != file || c != line))
		return (PERSIST_BAD);
	if (store_load_func(p->st, id, name, file, line) != 0)
		return (PERSIST_NOFIT);
	return (PERSIST_OK);
}

/* Loads a frame row. */
static enum persist_rc
persist_load_frame(struct persist *p, sqlite3_stmt *s)
{
	uint32_t	id = persist_col_id(s, 0), func = persist_col_id(s, 1);
	uint32_t	line, a, b, c;

	if (id == 0 || persist_col_u32(s, 2, &line) != 0 ||
	    store_func_get(p->st, func, &a, &b, &c) != 0)
		return (PERSIST_BAD);
	if (store_frame_get(p->st, id, &a, &b) == 0 &&
	    (a != func || b != line))
		return (PERSIST_BAD);
	if (store_load_frame(p->st, id, func, line) != 0)
		return (PERSIST_NOFIT);
	return (PERSIST_OK);
}

/* Loads a stack row. */
static enum persist_rc
persist_load_stack(struct persist *p, sqlite3_stmt *s)
{
	uint32_t	 frames[PROTO_MAX_DEPTH + 1], id = persist_col_id(s, 0);
	uint32_t	 depth, i, a, b;
	const void	*blob = sqlite3_column_blob(s, 1);
	int		 n = sqlite3_column_bytes(s, 1);

	if (id == 0 || n < 0 || n % sizeof frames[0] != 0 ||
	    (size_t)n > sizeof frames || (n > 0 && blob == NULL) ||
	    store_stack_get(p->st, id, &depth) != NULL)
		return (PERSIST_BAD);
	depth = (uint32_t)n / sizeof frames[0];
	if (depth > 0)
		memcpy(frames, blob, n);
	for (i = 0; i < depth; i++) {
		if (store_frame_get(p->st, frames[i], &a, &b) != 0)
			return (PERSIST_BAD);
	}
	if (store_load_stack(p->st, id, frames, depth) != 0)
		return (PERSIST_NOFIT);
	return (PERSIST_OK);
}

/* A text column, NUL-terminated, at most PROTO_MAX_STRING; NULL if not. */
static const char *
persist_col_text(sqlite3_stmt *s, int col)
{
	const char	*t = (const char *)sqlite3_column_text(s, col);

	if (t == NULL)
		return ("");
	if (sqlite3_column_bytes(s, col) > PROTO_MAX_STRING)
		return (NULL);
	return (t);
}

/* Loads an instance row. */
static enum persist_rc
persist_load_instance(struct persist *p, sqlite3_stmt *s)
{
	struct store_instance	 in;
	char			*argv[PROTO_MAX_ARGV], *buf = NULL;
	const char		*blob;
	enum persist_rc		 r = PERSIST_BAD;
	int			 n, i, start;

	memset(&in, 0, sizeof in);
	in.id = persist_col_id(s, 0);
	if (in.id == 0 || store_instance_get(p->st, in.id) != NULL ||
	    persist_col_u32(s, 1, &in.pid) != 0 ||
	    persist_col_u32(s, 2, &in.ppid) != 0)
		return (PERSIST_BAD);
	in.start_ns = (uint64_t)sqlite3_column_int64(s, 3);
	in.attach_ns = (uint64_t)sqlite3_column_int64(s, 4);
	in.end_ns = (uint64_t)sqlite3_column_int64(s, 5);
	in.last_ns = (uint64_t)sqlite3_column_int64(s, 6);
	in.samples = (uint64_t)sqlite3_column_int64(s, 12);
	in.dropped = (uint64_t)sqlite3_column_int64(s, 13);
	/* Casts: store_load_instance copies the strings. */
	if ((in.host = (char *)persist_col_text(s, 7)) == NULL ||
	    (in.service = (char *)persist_col_text(s, 8)) == NULL ||
	    (in.python = (char *)persist_col_text(s, 9)) == NULL ||
	    (in.reader = (char *)persist_col_text(s, 10)) == NULL)
		return (PERSIST_BAD);
	blob = sqlite3_column_blob(s, 11);
	n = sqlite3_column_bytes(s, 11);
	if (n < 0 || n > PROTO_MAX_ARGV * (PROTO_MAX_STRING + 1) ||
	    (n > 0 && blob == NULL))
		return (PERSIST_BAD);
	if ((buf = malloc((size_t)n + 1)) == NULL)
		return (PERSIST_NOFIT);
	if (n > 0)
		memcpy(buf, blob, n);
	buf[n] = '\0';
	for (i = 0, start = 0; i < n; i++) {
		if (buf[i] != '\0')
			continue;
		if (in.argc == PROTO_MAX_ARGV)
			goto out;
		argv[in.argc++] = buf + start;
		start = i + 1;
	}
	if (start < n) {
		if (in.argc == PROTO_MAX_ARGV)
			goto out;
		argv[in.argc++] = buf + start;
	}
	in.argv = argv;
	r = store_load_instance(p->st, &in) == 0 ? PERSIST_OK : PERSIST_NOFIT;
out:
	free(buf);
	return (r);
}

/* Loads a thread row. */
static enum persist_rc
persist_load_thread(struct persist *p, sqlite3_stmt *s)
{
	struct store_thread	t;

	memset(&t, 0, sizeof t);
	t.id = persist_col_id(s, 0);
	t.instance = persist_col_id(s, 1);
	t.tid = (uint64_t)sqlite3_column_int64(s, 2);
	t.name = persist_col_id(s, 3);
	if (t.id == 0 || store_thread_get(p->st, t.id) != NULL ||
	    store_instance_get(p->st, t.instance) == NULL ||
	    store_string_get(p->st, t.name, NULL) == NULL)
		return (PERSIST_BAD);
	if (store_load_thread(p->st, &t) != 0)
		return (PERSIST_NOFIT);
	return (PERSIST_OK);
}

/* Makes the scratch array hold n entries. */
static int
persist_scratch(struct persist *p, size_t n)
{
	struct store_entry	*e;

	if (n <= p->scratch_cap)
		return (0);
	if ((e = realloc(p->scratch, n * sizeof *e)) == NULL)
		return (-1);
	p->scratch = e;
	p->scratch_cap = n;
	return (0);
}

/* Makes the coding buffer hold n bytes. */
static int
persist_enc(struct persist *p, size_t n)
{
	unsigned char	*v;

	if (n <= p->enc_cap)
		return (0);
	if ((v = realloc(p->enc, n)) == NULL)
		return (-1);
	p->enc = v;
	p->enc_cap = n;
	return (0);
}

/* The count of a blob of entries, from its first bytes: 0, or -1. */
static int
persist_blob_count(const void *blob, int bytes, uint64_t *n)
{
	int	compact;

	if (bytes < 0 || (bytes > 0 && blob == NULL) ||
	    persist_codec_count(blob, (size_t)bytes, n, &compact) != 0)
		return (-1);
	/* profd writes no more in a compact blob. */
	return (compact && *n > PERSIST_CODEC_BLOCK ? -1 : 0);
}

/* The entries a row or part of a bucket holds, per persist_max_row. */
static size_t
persist_per_part(void)
{
	size_t	per;

	per = (persist_max_row - PERSIST_CODEC_HEAD) / PERSIST_CODEC_ENTRY_MAX;
	if (per > PERSIST_CODEC_BLOCK)
		per = PERSIST_CODEC_BLOCK;
	return (per > 0 ? per : 1);
}

/* Finds the bucket store_load_bucket just linked (not yet mapped). */
static const struct store_bucket *
persist_loaded_bucket(struct persist *p, uint64_t start, uint64_t width)
{
	const struct store_bucket	*b;

	for (b = store_buckets(p->st); b != NULL; b = b->next) {
		if (b->start_ns == start && b->width_ns == width &&
		    persist_map_get(p, b) == 0)
			return (b);
	}
	return (NULL);
}

/*
 * A bucket row that names a definition the file does not have (left so by
 * an older profd's sweep): dropped alone, after the load, not the file.
 */
static enum persist_rc
persist_drop_row(struct persist *p, int64_t row)
{
	int64_t	*v;
	size_t	 cap;

	if (p->ndrops == p->drops_cap) {
		cap = p->drops_cap == 0 ? 64 : p->drops_cap * 2;
		if ((v = realloc(p->drops, cap * sizeof *v)) == NULL)
			return (PERSIST_NOFIT);
		p->drops = v;
		p->drops_cap = cap;
	}
	p->drops[p->ndrops++] = row;
	return (PERSIST_OK);
}

/* The tallies of a bucket row (column 5; NULL: none): 0 and *t, *n (and
 * *copy to free, if it had to be aligned), or PERSIST_BAD. */
static enum persist_rc
persist_tallies_of(sqlite3_stmt *s, const struct store_tally **t, size_t *n,
    struct store_tally **copy)
{
	const void	*blob;
	int		 bytes;

	*t = NULL;
	*n = 0;
	*copy = NULL;
	if (sqlite3_column_type(s, 5) == SQLITE_NULL)
		return (PERSIST_OK);
	blob = sqlite3_column_blob(s, 5);
	bytes = sqlite3_column_bytes(s, 5);
	if (bytes <= 0 || blob == NULL ||
	    (size_t)bytes % sizeof(struct store_tally) != 0)
		return (PERSIST_BAD);
	*n = (size_t)bytes / sizeof(struct store_tally);
	*t = blob;
	if ((uintptr_t)blob % _Alignof(struct store_tally) != 0) {
		if ((*copy = malloc((size_t)bytes)) == NULL)
			return (PERSIST_NOFIT);
		memcpy(*copy, blob, bytes);
		*t = *copy;
	}
	return (PERSIST_OK);
}

/* Pins what a slice of a bucket left on disk names: 0, or PERSIST_NOFIT. */
static enum persist_rc
persist_slice_pin(struct persist *p, const struct store_entry *e, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		if (store_pin(p->st, STORE_THREAD, e[i].thread) != 0 ||
		    store_pin(p->st, STORE_STACK, e[i].stack) != 0)
			return (PERSIST_NOFIT);
		p->pin_samples += e[i].count;
	}
	return (PERSIST_OK);
}

/* Checks a slice of a bucket's entries, in order after *prev (NULL: the
 * first slice); sets *missing if one names what the store lacks. */
static enum persist_rc
persist_slice_check(struct persist *p, const struct store_entry *e, size_t n,
    const struct store_entry *prev, int *missing)
{
	uint32_t	depth;
	size_t		i;

	for (i = 0; i < n; i++) {
		if (e[i].count == 0 || (i > 0 ?
		    store_cmp_entry(&e[i - 1], &e[i]) >= 0 :
		    prev != NULL && store_cmp_entry(prev, &e[0]) >= 0))
			return (PERSIST_BAD);
		if (store_thread_get(p->st, e[i].thread) == NULL ||
		    store_stack_get(p->st, e[i].stack, &depth) == NULL)
			*missing = 1;
	}
	return (PERSIST_OK);
}

/*
 * Reads the slices of bucket row `row` past its first `have` entries, up
 * to n in all: into to[have..n) when to is given, else checked and pinned
 * one slice at a time (*missing set if one names what the store lacks).
 * PERSIST_BAD unless they hold exactly n entries.  Adds their bytes to
 * *size.
 */
static enum persist_rc
persist_load_parts(struct persist *p, int64_t row, struct store_entry *to,
    size_t n, size_t have, int *missing, uint64_t *size)
{
	sqlite3_stmt		*s = p->stmt[PS_GET_PARTS];
	struct store_entry	 last, *slice;
	const void		*blob;
	enum persist_rc		 r = PERSIST_OK;
	uint64_t		 k;
	int			 bytes, rc, first = 1;

	sqlite3_bind_int64(s, 1, row);
	memset(&last, 0, sizeof last);
	while (r == PERSIST_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		blob = sqlite3_column_blob(s, 0);
		bytes = sqlite3_column_bytes(s, 0);
		if (bytes <= 0 || persist_blob_count(blob, bytes, &k) != 0 ||
		    k == 0 || k > n - have) {
			r = PERSIST_BAD;
			break;
		}
		*size += (uint64_t)bytes;
		if (to != NULL) {
			if (persist_codec_decode(blob, (size_t)bytes, to + have,
			    k) != 0)
				r = PERSIST_BAD;
			have += (size_t)k;
			continue;
		}
		/* Decoded for the check: the scratch holds one slice. */
		if (persist_scratch(p, (size_t)k) != 0) {
			r = PERSIST_NOFIT;
			break;
		}
		slice = p->scratch;
		if (persist_codec_decode(blob, (size_t)bytes, slice, k) != 0) {
			r = PERSIST_BAD;
			break;
		}
		if ((r = persist_slice_check(p, slice, (size_t)k, first ?
		    NULL : &last, missing)) == PERSIST_OK && !*missing)
			r = persist_slice_pin(p, slice, (size_t)k);
		last = slice[k - 1];
		first = 0;
		have += (size_t)k;
	}
	if (r == PERSIST_OK && (rc != SQLITE_DONE || have != n))
		r = PERSIST_BAD;
	sqlite3_reset(s);
	return (r);
}

/*
 * Loads a bucket row.  Rows are checked here first, so that a refusal by
 * the store can only mean its memory cap: from then on the rows stay on
 * disk and the definitions they name are pinned (store_pin), so that no
 * sweep frees or reuses an id they hold.  A row naming a definition the
 * file lacks is dropped alone; one that does not hold together is a
 * damaged file (PERSIST_BAD).
 */
static enum persist_rc
persist_load_bucket(struct persist *p, sqlite3_stmt *s)
{
	struct store_counts		 c;
	const struct store_bucket	*b;
	const struct store_entry	*e;
	const struct store_tally	*t;
	struct store_tally		*tcopy = NULL;
	const void			*blob;
	uint64_t			 start, width, first, size;
	int64_t				 row = sqlite3_column_int64(s, 0);
	int64_t				 n = sqlite3_column_int64(s, 3);
	size_t				 i, len, nt;
	int				 bytes, missing = 0, parts, fits;
	int				 pinned = 0, in_memory = 0;
	enum persist_rc			 r;

	p->pin_samples = 0;
	start = (uint64_t)sqlite3_column_int64(s, 1);
	width = (uint64_t)sqlite3_column_int64(s, 2);
	/* Out of time: this row and the older ones are taken unread
	 * (persist_load_rest) and checked while profd serves. */
	if (persist_ms() >= p->load_until) {
		p->load_row = row;
		return (PERSIST_LATE);
	}
	blob = sqlite3_column_blob(s, 4);
	bytes = sqlite3_column_bytes(s, 4);
	if (row <= 0 || row >= INT64_MAX / 65536 || width == 0 ||
	    start > UINT64_MAX - width || n < 0 ||
	    persist_blob_count(blob, bytes, &first) != 0 ||
	    first > (uint64_t)n || (uint64_t)n > PERSIST_ENTRIES_MAX)
		return (PERSIST_BAD);
	len = (size_t)n;
	size = (uint64_t)bytes;
	/* Past its first slice, a big bucket's entries are in bucket_parts:
	 * put together if it is to be loaded, else checked slice by slice. */
	parts = (uint64_t)n > first;
	store_get_counts(p->st, &c);
	fits = !p->pin_only && c.bytes + len * sizeof *p->scratch <=
	    store_get_config(p->st)->max_bytes;
	if (persist_scratch(p, parts && fits ? len : (size_t)first) != 0)
		return (PERSIST_NOFIT);
	if (persist_codec_decode(blob, (size_t)bytes, p->scratch, first) != 0)
		return (PERSIST_BAD);
	e = p->scratch;
	if (parts && fits) {
		if ((r = persist_load_parts(p, row, p->scratch, len,
		    (size_t)first, NULL, &size)) != PERSIST_OK)
			return (r);
		parts = 0;
	} else
		len = (size_t)first;
	if ((r = persist_slice_check(p, e, len, NULL, &missing)) != PERSIST_OK)
		return (r);
	/* Left on disk: the first slice pinned (the scratch is reused for
	 * the others), then the other slices, one at a time. */
	if (parts && !missing) {
		if ((r = persist_slice_pin(p, e, len)) != PERSIST_OK)
			return (persist_drop_row(p, row));
		pinned = 1;
		if ((r = persist_load_parts(p, row, NULL, (size_t)n, len,
		    &missing, &size)) != PERSIST_OK)
			return (r);
	}
	if ((r = persist_tallies_of(s, &t, &nt, &tcopy)) != PERSIST_OK)
		return (r);
	for (i = 0; i < nt; i++) {
		if ((t[i].samples == 0 && t[i].invalid == 0) ||
		    (i > 0 && store_cmp_tally(&t[i - 1], &t[i]) >= 0)) {
			free(tcopy);
			return (PERSIST_BAD);
		}
		if (store_instance_get(p->st, t[i].instance) == NULL)
			missing = 1;
	}
	if (missing) {
		free(tcopy);
		return (persist_drop_row(p, row));
	}
	if (!p->pin_only) {
		if (fits && !parts &&
		    store_load_bucket(p->st, start, width, e, len) == 0) {
			if (row >= p->next_row)
				p->next_row = row + 1;
			p->counts.buckets_loaded++;
			in_memory = 1;
			/* Unmapped, its row outlives it in memory; without its
			 * tallies, its tallies row stays: either way what the
			 * row names is pinned, as for a row left on disk. */
			if ((b = persist_loaded_bucket(p, start, width)) == NULL ||
			    persist_map_put(p, b, row) != 0 || (nt > 0 &&
			    store_load_tallies(p->st, b, t, nt) != 0))
				p->pin_only = 1;
			else {
				persist_map_bytes(p, b, size);
				free(tcopy);
				return (PERSIST_OK);
			}
		} else
			p->pin_only = 1;
	}
	/* Left on disk: what it names keeps its id (a big bucket's slices
	 * were pinned as they were checked). */
	r = pinned ? PERSIST_OK : persist_slice_pin(p, e, len);
	for (i = 0; i < nt && r == PERSIST_OK; i++)
		if (store_pin(p->st, STORE_INSTANCE, t[i].instance) != 0)
			r = PERSIST_NOFIT;
	free(tcopy);
	/* Queries read it from the file (unless it is in memory after all,
	 * only not mapped: its row is then pinned, never read). */
	if (r == PERSIST_OK && !in_memory && persist_cold_add(p, row, start,
	    width, (uint64_t)n, p->pin_samples, size + nt * sizeof *t, 1) != 0)
		r = PERSIST_NOFIT;
	/* Without every pin it cannot stay: dropped. */
	return (r == PERSIST_OK ? r : persist_drop_row(p, row));
}

/*
 * A row left unread by a load out of time: listed as a bucket on disk,
 * not checked yet (persist_check_step).  One whose columns cannot be right
 * is dropped alone.  Rows come newest first; those the load took (newer,
 * or as new with a higher row id) are skipped.
 */
static enum persist_rc
persist_load_meta(struct persist *p, sqlite3_stmt *s)
{
	int64_t		row = sqlite3_column_int64(s, 0);
	int64_t		n = sqlite3_column_int64(s, 3);
	int64_t		bytes = sqlite3_column_int64(s, 4);
	int64_t		tbytes = sqlite3_column_int64(s, 5);
	uint64_t	start, width;

	/* Taken by the load: every row before the one it stopped at. */
	if (p->load_skip) {
		if (row != p->load_row)
			return (PERSIST_OK);
		p->load_skip = 0;
	}
	start = (uint64_t)sqlite3_column_int64(s, 1);
	width = (uint64_t)sqlite3_column_int64(s, 2);
	if (row <= 0 || row >= INT64_MAX / 65536 || width == 0 ||
	    start > UINT64_MAX - width || n < 0 || bytes < 0 || tbytes < 0 ||
	    (uint64_t)tbytes % sizeof(struct store_tally) != 0 ||
	    (uint64_t)n > PERSIST_ENTRIES_MAX)
		return (persist_drop_row(p, row));
	if (row >= p->next_row)
		p->next_row = row + 1;
	if (persist_cold_add(p, row, start, width, (uint64_t)n, 0,
	    (uint64_t)bytes + (uint64_t)tbytes, 0) != 0)
		return (persist_drop_row(p, row));
	p->unchecked++;
	return (PERSIST_OK);
}

/* Lists the rows a load out of time did not take (persist_load_meta),
 * without reading their entries. */
static enum persist_rc
persist_load_rest(struct persist *p)
{
	char	sql[384];

	/* In the load's order, whatever the types a damaged file holds. */
	snprintf(sql, sizeof sql, "SELECT b.id, b.start_ns, b.width_ns, b.n, "
	    "length(b.entries) + ifnull((SELECT sum(length(entries)) FROM "
	    "bucket_parts WHERE id > b.id * 65536 AND id < (b.id + 1) * "
	    "65536), 0), ifnull(length(t.rows), 0) FROM buckets b LEFT "
	    "JOIN tallies t ON t.bucket = b.id WHERE b.start_ns + b.width_ns "
	    "> %" PRId64 " ORDER BY b.start_ns DESC, b.id DESC",
	    (int64_t)p->cut);
	p->load_skip = 1;
	return (persist_load_rows(p, sql, persist_load_meta));
}

/* Loads an instance's newest stored batch number. */
static enum persist_rc
persist_load_seq(struct persist *p, sqlite3_stmt *s)
{
	uint32_t	id = persist_col_id(s, 0);
	int64_t		seq = sqlite3_column_int64(s, 1);

	if (store_instance_get(p->st, id) == NULL || seq < 0)
		return (PERSIST_BAD);
	store_instance_set_seq(p->st, id, (uint64_t)seq, 1);
	return (PERSIST_OK);
}

/* Loads the definitions, in dependency order. */
static enum persist_rc
persist_load_defs(struct persist *p)
{
	static const struct {
		const char	*sql;
		enum persist_rc	(*fn)(struct persist *, sqlite3_stmt *);
	} t[] = {
		{ "SELECT id, text FROM strings ORDER BY id",
		    persist_load_string },
		{ "SELECT id, name, file, line FROM funcs ORDER BY id",
		    persist_load_func },
		{ "SELECT id, func, line FROM frames ORDER BY id",
		    persist_load_frame },
		{ "SELECT id, frames FROM stacks ORDER BY id",
		    persist_load_stack },
		{ "SELECT * FROM instances ORDER BY id",
		    persist_load_instance },
		{ "SELECT id, instance, tid, name FROM threads ORDER BY id",
		    persist_load_thread },
		{ "SELECT instance, seq FROM seqs", persist_load_seq },
	};
	enum persist_rc	r;
	size_t		i;

	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		if ((r = persist_load_rows(p, t[i].sql, t[i].fn)) != PERSIST_OK)
			return (r);
	}
	return (PERSIST_OK);
}

/* Deletes the rows persist_drop_row listed, with one log line. */
static enum persist_rc
persist_drop_rows(struct persist *p)
{
	sqlite3_stmt	*b = NULL, *t = NULL;
	size_t		 i;
	int		 rc;

	if ((rc = persist_exec(p, "BEGIN")) != SQLITE_OK)
		goto out;
	if ((rc = sqlite3_prepare_v2(p->db, "DELETE FROM buckets WHERE id = ?1",
	    -1, &b, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(p->db, "DELETE FROM tallies WHERE "
	    "bucket = ?1", -1, &t, NULL)) != SQLITE_OK)
		goto out;
	for (i = 0; i < p->ndrops; i++) {
		sqlite3_bind_int64(b, 1, p->drops[i]);
		sqlite3_bind_int64(t, 1, p->drops[i]);
		sqlite3_bind_int64(p->stmt[PS_DEL_PARTS], 1, p->drops[i]);
		if ((rc = sqlite3_step(b)) != SQLITE_DONE ||
		    (rc = sqlite3_step(t)) != SQLITE_DONE ||
		    (rc = sqlite3_step(p->stmt[PS_DEL_PARTS])) != SQLITE_DONE)
			goto out;
		sqlite3_reset(b);
		sqlite3_reset(t);
		sqlite3_reset(p->stmt[PS_DEL_PARTS]);
	}
	if ((rc = persist_exec(p, "COMMIT")) != SQLITE_OK)
		goto out;
	log_warn("%s: %zu buckets dropped: they name definitions the file does "
	    "not have (left so by an older profd); the rest is loaded",
	    p->path, p->ndrops);
	p->counts.rows_deleted += p->ndrops;
	p->counts.buckets_dropped += p->ndrops;
out:
	sqlite3_finalize(b);
	sqlite3_finalize(t);
	if (rc != SQLITE_OK)
		persist_exec(p, "ROLLBACK");
	free(p->drops);
	p->drops = NULL;
	p->ndrops = p->drops_cap = 0;
	return (rc == SQLITE_OK ? PERSIST_OK : persist_rc_of(rc));
}

/* Deletes the buckets that ended before p->cut (the retention at
 * open), with their tallies and slices. */
static enum persist_rc
persist_cut(struct persist *p)
{
	sqlite3_stmt	*s = NULL;
	int		 rc;

	if ((rc = sqlite3_prepare_v2(p->db, "DELETE FROM buckets WHERE "
	    "start_ns + width_ns <= ?1", -1, &s, NULL)) != SQLITE_OK)
		return (persist_rc_of(rc));
	sqlite3_bind_int64(s, 1, (int64_t)p->cut);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return (persist_rc_of(rc));
	p->counts.rows_deleted += sqlite3_changes(p->db);
	if ((rc = persist_exec(p, "DELETE FROM tallies WHERE bucket NOT IN "
	    "(SELECT id FROM buckets)")) != SQLITE_OK ||
	    (rc = persist_exec(p, "DELETE FROM bucket_parts WHERE id / 65536 "
	    "NOT IN (SELECT id FROM buckets)")) != SQLITE_OK)
		return (persist_rc_of(rc));
	return (PERSIST_OK);
}

/* Deletes buckets past the retention, then loads the newest that fit. */
static enum persist_rc
persist_load_buckets(struct persist *p, uint64_t now_ns)
{
	const struct store_config	*cfg = store_get_config(p->st);
	sqlite3_stmt			*s = NULL;
	char				 sql[256];
	uint64_t			 cut;
	int64_t				 total;
	enum persist_rc			 r;
	int				 rc, k;

	cut = now_ns > cfg->retention_ns ? now_ns - cfg->retention_ns : 0;
	/* A big file is written only once checked: what is past the
	 * retention is deleted then, and not loaded now. */
	p->cut = cut;
	if (p->defer)
		p->defer_cut = 1;
	else if ((r = persist_cut(p)) != PERSIST_OK)
		return (r);
	p->loading = 1;
	p->load_until = persist_ms() + persist_load_ms;
	snprintf(sql, sizeof sql, "SELECT b.id, b.start_ns, b.width_ns, b.n, "
	    "b.entries, t.rows FROM buckets b LEFT JOIN tallies t ON "
	    "t.bucket = b.id WHERE b.start_ns + b.width_ns > %" PRId64 " "
	    "ORDER BY b.start_ns DESC, b.id DESC", (int64_t)cut);
	r = persist_load_rows(p, sql, persist_load_bucket);
	if (r == PERSIST_LATE)
		r = persist_load_rest(p);
	p->loading = 0;
	if (p->ncold > 1)
		qsort(p->cold, p->ncold, sizeof *p->cold, persist_cold_cmp);
	p->counts.cold_unchecked = p->unchecked;
	if (r == PERSIST_OK && p->unchecked > 0 && !p->held) {
		store_hold_ids(p->st, 1);
		p->held = 1;
		for (k = 0; k < STORE_NKINDS; k++)
			p->id_limit[k] = store_id_limit(p->st, k);
		p->check.at = 0;
		p->check_ms = persist_ms();
		p->check_dropped = 0;
	}
	/* Short of memory for the list of drops: rows may be unpinned. */
	if (r != PERSIST_OK)
		return (r == PERSIST_NOFIT ? PERSIST_BAD : r);
	if (p->ndrops > 0 && !p->defer &&
	    (r = persist_drop_rows(p)) != PERSIST_OK)
		return (r);
	if ((rc = sqlite3_prepare_v2(p->db, "SELECT max(id), count(*) FROM "
	    "buckets", -1, &s, NULL)) != SQLITE_OK)
		return (persist_rc_of(rc));
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		sqlite3_finalize(s);
		return (persist_rc_of(rc));
	}
	if (sqlite3_column_int64(s, 0) >= p->next_row)
		p->next_row = sqlite3_column_int64(s, 0) + 1;
	total = sqlite3_column_int64(s, 1);
	sqlite3_finalize(s);
	p->counts.buckets_skipped = (uint64_t)total - p->counts.buckets_loaded;
	return (PERSIST_OK);
}

/* Prepares the statements flushes reuse. */
static int
persist_prepare(struct persist *p)
{
	int	i;

	for (i = 0; i < PS_COUNT; i++) {
		if (sqlite3_prepare_v3(p->db, persist_stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &p->stmt[i], NULL) != SQLITE_OK)
			return (-1);
	}
	return (0);
}

/*
 * Forgets a partial load: every sample, and every definition nothing
 * else holds.  The sweep keeps recent detached instances, so it runs as
 * of the end of time, and the clock is then put back.
 */
static void
persist_unload(struct persist *p, uint64_t now_ns)
{
	store_reset(p->st);
	persist_map_clear(p);
	p->next_row = 1;
	memset(&p->pos, 0, sizeof p->pos);
	p->dec_key = 0;
	p->counts.buckets_loaded = p->counts.buckets_skipped = 0;
	p->counts.buckets_dropped = 0;
	p->pin_only = 0;
	p->ncold = 0;
	p->cold_pending = 0;
	p->counts.cold_buckets = p->counts.cold_samples = 0;
	persist_check_forget(p);
	p->defer_cut = 0;
	free(p->drops);
	p->drops = NULL;
	p->ndrops = p->drops_cap = 0;
	store_tick(p->st, UINT64_MAX);
	store_sweep_begin(p->st);
	store_sweep_end(p->st);
	store_tick(p->st, now_ns);
}

/* The file's size with its WAL. */
static void
persist_size(struct persist *p)
{
	struct stat	sb;
	char		wal[PERSIST_PATH_MAX];

	p->counts.bytes = 0;
	if (stat(p->path, &sb) == 0)
		p->counts.bytes += (uint64_t)sb.st_size;
	snprintf(wal, sizeof wal, "%s-wal", p->path);
	if (stat(wal, &sb) == 0)
		p->counts.bytes += (uint64_t)sb.st_size;
}

/* Whether the file is marked damaged (by a check of a former run). */
static int
persist_marked(const struct persist *p)
{
	char		path[PERSIST_PATH_MAX + PERSIST_SUFFIX_MAX];
	struct stat	sb;

	snprintf(path, sizeof path, "%s" PERSIST_DAMAGED, p->path);
	return (lstat(path, &sb) == 0);
}

/* Marks the file damaged, or (mark 0) takes the mark away. */
static void
persist_mark(const struct persist *p, int mark)
{
	char	path[PERSIST_PATH_MAX + PERSIST_SUFFIX_MAX];
	int	fd;

	snprintf(path, sizeof path, "%s" PERSIST_DAMAGED, p->path);
	if (!mark) {
		(void)unlink(path);
		return;
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0600)) != -1)
		close(fd);
}

static void	persist_qc_end(struct persist *, int);

/* The thread of a big file's whole-file check, on its own connection. */
static void *
persist_qc_main(void *arg)
{
	struct persist	*p = arg;
	sqlite3_stmt	*s = NULL;
	const char	*r;
	int		 rc, state = PERSIST_QC_OK;

	if ((rc = sqlite3_prepare_v2(p->qc_db, "PRAGMA quick_check(1)", -1,
	    &s, NULL)) == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		r = (const char *)sqlite3_column_text(s, 0);
		if (r == NULL || strcmp(r, "ok") != 0) {
			state = PERSIST_QC_BAD;
			snprintf(p->qc_why, sizeof p->qc_why, "%s",
			    r != NULL ? r : "no answer");
		}
	} else if ((rc & 0xff) == SQLITE_INTERRUPT) {
		state = PERSIST_QC_STOPPED;
	} else {
		/* Damaged, or unreadable (I/O): as the check at open would. */
		state = PERSIST_QC_BAD;
		snprintf(p->qc_why, sizeof p->qc_why, "%s",
		    sqlite3_errmsg(p->qc_db));
	}
	sqlite3_finalize(s);
	for (r = p->qc_why; *r != '\0'; r++)	/* one log line */
		if (*r == '\n')
			p->qc_why[r - p->qc_why] = ' ';
	__atomic_store_n(&p->qc_state, state, __ATOMIC_RELEASE);
	return (NULL);
}

/* Starts the whole-file check of a big file on a thread; without one, it
 * runs now. */
static void
persist_qc_start(struct persist *p)
{
	sigset_t	all, old;
	int		started;

	p->qc_state = PERSIST_QC_RUNNING;
	if (sqlite3_open_v2(p->path, &p->qc_db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK) {
		/* No second connection: checked now, on the first. */
		sqlite3_close(p->qc_db);
		p->qc_db = p->db;
		(void)persist_qc_main(p);
		persist_qc_end(p, 0);
		return;
	}
	sqlite3_db_config(p->qc_db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(p->qc_db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	/* Signals are the loop's: the thread takes none. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	started = pthread_create(&p->qc, NULL, persist_qc_main, p) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (started)
		p->qc_running = 1;
	else {
		(void)persist_qc_main(p);
		persist_qc_end(p, 0);
	}
}

/* Ends the whole-file check (interrupted if `stop`), and acts on what it
 * found: a damaged file is written no more and marked, to be set aside at
 * the next start. */
static void
persist_qc_end(struct persist *p, int stop)
{
	int	state;

	if (p->qc_running) {
		if (stop)
			sqlite3_interrupt(p->qc_db);
		pthread_join(p->qc, NULL);
		p->qc_running = 0;
	}
	if (p->qc_db == NULL)
		return;
	if (p->qc_db != p->db)
		sqlite3_close(p->qc_db);
	p->qc_db = NULL;
	state = __atomic_load_n(&p->qc_state, __ATOMIC_ACQUIRE);
	if (state != PERSIST_QC_OK)
		snprintf(p->why, sizeof p->why, "%s", state == PERSIST_QC_BAD ?
		    "the file is damaged" : "the file's check was stopped");
	if (state == PERSIST_QC_BAD) {
		p->damaged = 1;
		persist_mark(p, 1);
		log_warn("%s: damaged (quick_check: %s): nothing more is "
		    "written to it, what profd holds stays in memory, and the "
		    "file is set aside at the next start", p->path, p->qc_why);
	} else if (state == PERSIST_QC_STOPPED) {
		p->damaged = 1;
		log_warn("%s: its check was stopped before the end: nothing "
		    "more is written to it", p->path);
	}
}

/* Opens the store's file and loads it. */
struct persist *
persist_open(const char *dir, struct store *st, uint64_t now_ns, char *err,
    size_t errlen)
{
	const char		*env;
	struct persist		*p = NULL;
	struct store_hooks	 hooks;
	struct stat		 sb;
	const char		*why;
	uint32_t		 before[STORE_NKINDS], id;
	uint64_t		 t0 = persist_ms();
	enum persist_rc		 r;
	int			 k, tries, fresh = 0, whole, marked;

	if (stat(dir, &sb) != 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return (NULL);
	}
	if (!S_ISDIR(sb.st_mode) || access(dir, W_OK | X_OK) != 0) {
		snprintf(err, errlen, "%s: %s", dir, !S_ISDIR(sb.st_mode) ?
		    strerror(ENOTDIR) : strerror(errno));
		return (NULL);
	}
	if (strlen(dir) + sizeof PERSIST_FILE + PERSIST_SUFFIX_MAX >
	    PERSIST_PATH_MAX) {
		snprintf(err, errlen, "%s: %s", dir, strerror(ENAMETOOLONG));
		return (NULL);
	}
	if ((p = calloc(1, sizeof *p)) == NULL ||
	    asprintf(&p->path, "%s/%s", dir, PERSIST_FILE) == -1) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		if (p != NULL)
			p->path = NULL;
		goto fail;
	}
	p->st = st;
	p->next_row = 1;
	persist_max_row = PERSIST_MAX_ROW;
	persist_load_ms = PERSIST_LOAD_MS;
	if ((env = getenv("PROFD_PERSIST_LOAD_MS")) != NULL &&
	    strtoull(env, NULL, 10) <= 3600000)
		persist_load_ms = strtoull(env, NULL, 10);
	if ((env = getenv("PROFD_PERSIST_MAX_ROW")) != NULL &&
	    strtoull(env, NULL, 10) >= 4096 &&
	    strtoull(env, NULL, 10) < PERSIST_MAX_ROW)
		persist_max_row = (size_t)strtoull(env, NULL, 10);
	if ((env = getenv("PROFD_PERSIST_SYNC_CHECK_MAX")) != NULL)
		persist_sync_check_max = strtoull(env, NULL, 10);
	else
		persist_sync_check_max = PERSIST_SYNC_CHECK_MAX;
	for (k = 0; k < STORE_NKINDS; k++)
		before[k] = store_id_limit(st, k);
	/* A big file is checked whole on a thread, unless a former check
	 * found it damaged. */
	marked = persist_marked(p);
	whole = marked || stat(p->path, &sb) != 0 ||
	    (uint64_t)sb.st_size <= persist_sync_check_max;

	for (tries = 0; tries < 3; tries++) {
		p->defer = !whole && !fresh;
		if ((r = persist_db_open(p, whole || fresh, &why)) ==
		    PERSIST_OK &&
		    persist_prepare(p) != 0) {
			r = persist_rc_of(sqlite3_errcode(p->db));
			why = sqlite3_errmsg(p->db);
		}
		if (r == PERSIST_OK) {
			if (fresh)
				break;
			why = "inconsistent (a row refers to a missing "
			    "definition)";
			if ((r = persist_load_defs(p)) == PERSIST_NOFIT)
				why = "larger than max_bytes (raise it, then "
				    "move the file back)";
			if (r == PERSIST_OK && (r = persist_load_buckets(p,
			    now_ns)) == PERSIST_OK)
				break;
			persist_unload(p, now_ns);
			if (r == PERSIST_NOFIT)
				r = PERSIST_BAD;
		}
		if (r != PERSIST_BAD || tries == 2) {
			snprintf(err, errlen, "%s: %s", p->path, why);
			goto fail;
		}
		persist_set_aside(p, why);
		fresh = 1;
	}

	/* What the store held before loading (or all, after a set-aside)
	 * is not on disk yet. */
	for (k = 0; k < STORE_NKINDS; k++) {
		if (fresh)
			before[k] = store_id_limit(st, k);
		for (id = 1; id < before[k]; id++) {
			if (persist_live(st, k, id))
				persist_pend(p, k, id, PERSIST_PUT);
		}
	}
	if (marked)
		persist_mark(p, 0);	/* checked whole, or set aside */
	if (!whole && !fresh)
		persist_qc_start(p);
	hooks.def_put = persist_hook_put;
	hooks.def_del = persist_hook_del;
	hooks.bucket_del = persist_hook_bucket_del;
	hooks.bucket_keep = persist_hook_bucket_keep;
	hooks.reset = persist_hook_reset;
	hooks.arg = p;
	store_set_hooks(st, &hooks);
	p->counts.load_ms = persist_ms() - t0;
	persist_size(p);
	log_info("%s: loaded %" PRIu64 " buckets (%" PRIu64 " left on disk "
	    "over max_bytes or past %" PRIu64 " ms of loading, %zu of them "
	    "checked while serving) in %" PRIu64 " ms", p->path,
	    p->counts.buckets_loaded, p->counts.buckets_skipped,
	    persist_load_ms, p->unchecked, p->counts.load_ms);
	return (p);
fail:
	if (p != NULL) {
		persist_db_close(p);
		free(p->drops);
		free(p->cold);
		free(p->path);
		free(p);
	}
	return (NULL);
}

/* -- flushing ------------------------------------------------------------ */

/* Runs a prepared statement once; 0, or -1. */
static int
persist_step(struct persist *p, enum persist_stmt i)
{
	int	rc;

	rc = sqlite3_step(p->stmt[i]);
	sqlite3_reset(p->stmt[i]);
	return (rc == SQLITE_DONE ? 0 : -1);
}

/* Writes an instance row. */
static int
persist_put_instance(struct persist *p, const struct store_instance *in)
{
	sqlite3_stmt	*s = p->stmt[PS_PUT_INSTANCE];
	char		*argv;
	size_t		 len = 0, n, i;

	for (i = 0; i < in->argc; i++)
		len += strlen(in->argv[i]) + 1;
	if ((argv = malloc(len + 1)) == NULL)
		return (-1);
	for (i = 0, len = 0; i < in->argc; i++) {
		n = strlen(in->argv[i]) + 1;
		memcpy(argv + len, in->argv[i], n);
		len += n;
	}
	sqlite3_bind_int64(s, 1, in->id);
	sqlite3_bind_int64(s, 2, in->pid);
	sqlite3_bind_int64(s, 3, in->ppid);
	sqlite3_bind_int64(s, 4, (int64_t)in->start_ns);
	sqlite3_bind_int64(s, 5, (int64_t)in->attach_ns);
	sqlite3_bind_int64(s, 6, (int64_t)in->end_ns);
	sqlite3_bind_int64(s, 7, (int64_t)in->last_ns);
	sqlite3_bind_text(s, 8, in->host, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 9, in->service, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 10, in->python, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 11, in->reader, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 12, argv, (int)len, free);
	sqlite3_bind_int64(s, 13, (int64_t)in->samples);
	sqlite3_bind_int64(s, 14, (int64_t)in->dropped);
	if (persist_step(p, PS_PUT_INSTANCE) != 0)
		return (-1);
	if (in->seq == 0)
		return (0);
	/* The newest batch stored, in the same transaction as its samples:
	 * a replayed batch the file has is then skipped (server-agent.c). */
	sqlite3_bind_int64(p->stmt[PS_PUT_SEQ], 1, in->id);
	sqlite3_bind_int64(p->stmt[PS_PUT_SEQ], 2, (int64_t)in->seq);
	return (persist_step(p, PS_PUT_SEQ));
}

/* Writes a live definition's row. */
static int
persist_put_def(struct persist *p, enum store_kind k, uint32_t id)
{
	const struct store_thread	*t;
	const uint32_t			*frames;
	const char			*text;
	sqlite3_stmt			*s = p->stmt[PS_PUT_STRING + k];
	uint32_t			 a, b, c;

	sqlite3_bind_int64(s, 1, id);
	switch (k) {
	case STORE_STRING:
		text = store_string_get(p->st, id, &a);
		sqlite3_bind_blob(s, 2, text, (int)a, SQLITE_STATIC);
		break;
	case STORE_FUNC:
		store_func_get(p->st, id, &a, &b, &c);
		sqlite3_bind_int64(s, 2, a);
		sqlite3_bind_int64(s, 3, b);
		sqlite3_bind_int64(s, 4, c);
		break;
	case STORE_FRAME:
		store_frame_get(p->st, id, &a, &b);
		sqlite3_bind_int64(s, 2, a);
		sqlite3_bind_int64(s, 3, b);
		break;
	case STORE_STACK:
		frames = store_stack_get(p->st, id, &a);
		sqlite3_bind_blob(s, 2, frames, (int)(a * sizeof *frames),
		    SQLITE_STATIC);
		break;
	case STORE_INSTANCE:
		return (persist_put_instance(p, store_instance_get(p->st, id)));
	default:
		t = store_thread_get(p->st, id);
		sqlite3_bind_int64(s, 2, t->instance);
		sqlite3_bind_int64(s, 3, (int64_t)t->tid);
		sqlite3_bind_int64(s, 4, t->name);
		break;
	}
	return (persist_step(p, PS_PUT_STRING + k));
}

/* Deletes a definition's row. */
static int
persist_del_def(struct persist *p, enum store_kind k, uint32_t id)
{
	sqlite3_bind_int64(p->stmt[PS_DEL_STRING + k], 1, id);
	if (persist_step(p, PS_DEL_STRING + k) != 0)
		return (-1);
	if (k != STORE_INSTANCE)
		return (0);
	sqlite3_bind_int64(p->stmt[PS_DEL_SEQ], 1, id);
	return (persist_step(p, PS_DEL_SEQ));
}

/* Writes the queued definitions (or all of them); rows written. */
static int
persist_flush_defs(struct persist *p, uint64_t *rows)
{
	static const char *clear[STORE_NKINDS] = {
		"DELETE FROM strings", "DELETE FROM funcs",
		"DELETE FROM frames", "DELETE FROM stacks",
		"DELETE FROM instances", "DELETE FROM threads",
	};
	struct persist_pending	*q;
	uint32_t		 id, lim;
	size_t			 i;
	int			 k;

	for (k = 0; k < STORE_NKINDS; k++) {
		q = &p->pending[k];
		if (p->resync_defs) {
			if (persist_exec(p, clear[k]) != SQLITE_OK)
				return (-1);
			if (k == STORE_INSTANCE &&
			    persist_exec(p, "DELETE FROM seqs") != SQLITE_OK)
				return (-1);
			lim = store_id_limit(p->st, k);
			for (id = 1; id < lim; id++) {
				if (!persist_live(p->st, k, id))
					continue;
				if (persist_put_def(p, k, id) != 0)
					return (-1);
				(*rows)++;
			}
			continue;
		}
		for (i = 0; i < q->n; i++) {
			id = q->ids[i];
			if (persist_live(p->st, k, id)) {
				if (persist_put_def(p, k, id) != 0)
					return (-1);
				(*rows)++;
			} else if (q->state[id] & PERSIST_DEL) {
				if (persist_del_def(p, k, id) != 0)
					return (-1);
				p->counts.rows_deleted++;
			}
		}
	}
	return (0);
}

/* Writes the instances changed since the last flush. */
static int
persist_flush_instances(struct persist *p, uint64_t *rows)
{
	const struct store_instance	*in;
	struct persist_pending		*q = &p->pending[STORE_INSTANCE];
	uint32_t			 id, lim;

	if (p->resync_defs)
		return (0);
	lim = store_id_limit(p->st, STORE_INSTANCE);
	for (id = 1; id < lim; id++) {
		if ((in = store_instance_get(p->st, id)) == NULL || !in->dirty)
			continue;
		if (id < q->state_len && q->state[id] != 0)
			continue;	/* written with the queue */
		if (persist_put_instance(p, in) != 0)
			return (-1);
		(*rows)++;
	}
	return (0);
}

/*
 * A bucket row is its head, which holds its count n (all its entries) and
 * its first slice, then its other slices, each a compact blob of its own,
 * in bucket_parts (a row is only ever rewritten with more: nothing to
 * delete), then its tallies.  Each writer adds the bytes it wrote to
 * *bytes.
 */
static int
persist_put_head(struct persist *p, int64_t row, uint64_t start,
    uint64_t width, uint64_t n, const struct store_entry *e, size_t k,
    uint64_t *bytes)
{
	sqlite3_stmt	*s = p->stmt[PS_PUT_BUCKET];
	size_t		 len = 0;

	if (k > 0) {
		if (persist_enc(p, persist_codec_bound(k)) != 0)
			return (-1);
		len = persist_codec_encode(e, k, p->enc);
	}
	*bytes += len;
	sqlite3_bind_int64(s, 1, row);
	sqlite3_bind_int64(s, 2, (int64_t)start);
	sqlite3_bind_int64(s, 3, (int64_t)width);
	sqlite3_bind_int64(s, 4, (int64_t)n);
	sqlite3_bind_blob(s, 5, k > 0 ? (const void *)p->enc : "", (int)len,
	    SQLITE_STATIC);
	return (persist_step(p, PS_PUT_BUCKET));
}

static int
persist_put_part(struct persist *p, int64_t row, int64_t part,
    const struct store_entry *e, size_t k, uint64_t *bytes)
{
	sqlite3_stmt	*s = p->stmt[PS_PUT_PART];
	size_t		 len;

	if (part > PERSIST_PARTS_MAX ||
	    persist_enc(p, persist_codec_bound(k)) != 0)
		return (-1);
	len = persist_codec_encode(e, k, p->enc);
	*bytes += len;
	sqlite3_bind_int64(s, 1, row * 65536 + part);
	sqlite3_bind_blob(s, 2, p->enc, (int)len, SQLITE_STATIC);
	return (persist_step(p, PS_PUT_PART));
}

/* A bucket never loses tallies, and a deleted bucket's go with it:
 * nothing to delete for one that has none. */
static int
persist_put_tallies(struct persist *p, int64_t row,
    const struct store_tally *t, size_t nt)
{
	sqlite3_stmt	*s = p->stmt[PS_PUT_TALLIES];

	if (nt == 0)
		return (0);
	if (nt * sizeof *t > PERSIST_MAX_ROW)
		return (-1);
	sqlite3_bind_int64(s, 1, row);
	sqlite3_bind_blob(s, 2, t, (int)(nt * sizeof *t), SQLITE_STATIC);
	return (persist_step(p, PS_PUT_TALLIES));
}

/* Writes a bucket row: n sorted entries and nt tallies; the bytes its
 * entries take in *bytes. */
static int
persist_put_row(struct persist *p, int64_t row, uint64_t start,
    uint64_t width, const struct store_entry *e, size_t n,
    const struct store_tally *t, size_t nt, uint64_t *bytes)
{
	size_t		 i, per, first;
	int64_t		 part;

	per = persist_per_part();
	first = n < per ? n : per;
	*bytes = 0;
	if (n > per * (PERSIST_PARTS_MAX + 1) ||
	    persist_put_head(p, row, start, width, n, e, first, bytes) != 0)
		return (-1);
	for (i = first, part = 1; i < n; i += per, part++) {
		if (persist_put_part(p, row, part, e + i, n - i < per ? n - i :
		    per, bytes) != 0)
			return (-1);
		p->counts.parts_written++;
	}
	return (persist_put_tallies(p, row, t, nt));
}

/* Deletes a bucket row, its slices and its tallies. */
static int
persist_del_row(struct persist *p, int64_t row)
{
	sqlite3_bind_int64(p->stmt[PS_DEL_BUCKET], 1, row);
	sqlite3_bind_int64(p->stmt[PS_DEL_TALLIES], 1, row);
	sqlite3_bind_int64(p->stmt[PS_DEL_PARTS], 1, row);
	if (persist_step(p, PS_DEL_BUCKET) != 0 ||
	    persist_step(p, PS_DEL_TALLIES) != 0 ||
	    persist_step(p, PS_DEL_PARTS) != 0)
		return (-1);
	p->counts.rows_deleted++;
	return (0);
}

/* Writes a bucket's row: its used entries, sorted. */
static int
persist_put_bucket(struct persist *p, const struct store_bucket *b)
{
	const struct store_entry	*e = b->entries;
	size_t				 i, n = 0;
	uint64_t			 bytes;
	int64_t				 row;

	if ((row = persist_map_get(p, b)) == 0) {
		row = p->next_row;
		if (persist_map_put(p, b, row) != 0)
			return (-1);
		p->next_row++;
	}
	if (b->sealed)
		n = b->n;
	else {
		if (persist_scratch(p, b->n) != 0)
			return (-1);
		for (i = 0; i < b->cap && n < b->n; i++) {
			if (b->entries[i].count != 0)
				p->scratch[n++] = b->entries[i];
		}
		qsort(p->scratch, n, sizeof *p->scratch, store_cmp_entry);
		e = p->scratch;
	}
	if (persist_put_row(p, row, b->start_ns, b->width_ns, e, n,
	    b->tallies, b->ntallies, &bytes) != 0)
		return (-1);
	persist_map_bytes(p, b, bytes);
	return (0);
}

/* Deletes the dropped buckets' rows and writes the changed ones. */
static int
persist_flush_buckets(struct persist *p, uint64_t *rows)
{
	struct store_bucket	*b;
	size_t			 i;

	/* A reset: every row written before it, loaded or not. */
	if (p->reset_below > 0) {
		sqlite3_bind_int64(p->stmt[PS_DEL_BUCKETS_BELOW], 1,
		    p->reset_below);
		sqlite3_bind_int64(p->stmt[PS_DEL_TALLIES_BELOW], 1,
		    p->reset_below);
		if (persist_step(p, PS_DEL_BUCKETS_BELOW) != 0)
			return (-1);
		p->counts.rows_deleted += (uint64_t)sqlite3_changes(p->db);
		sqlite3_bind_int64(p->stmt[PS_DEL_PARTS_BELOW], 1,
		    p->reset_below);
		if (persist_step(p, PS_DEL_TALLIES_BELOW) != 0 ||
		    persist_step(p, PS_DEL_PARTS_BELOW) != 0)
			return (-1);
	}
	for (i = 0; i < p->ndels; i++) {
		if (persist_del_row(p, p->dels[i]) != 0)
			return (-1);
	}
	for (b = store_buckets(p->st); b != NULL; b = b->next) {
		if (!b->dirty)
			continue;
		if (persist_put_bucket(p, b) != 0)
			return (-1);
		(*rows)++;
	}
	return (0);
}

/* Marks everything written clean (after the commit). */
static void
persist_flush_done(struct persist *p)
{
	struct store_instance	*in;
	struct store_bucket	*b;
	uint32_t		 id, lim;

	persist_pend_clear(p);
	p->resync_defs = 0;
	p->ndels = 0;
	p->cold_pending = 0;
	p->reset_below = 0;	/* committed */
	lim = store_id_limit(p->st, STORE_INSTANCE);
	for (id = 1; id < lim; id++) {
		/* The store hands out const; dirty is ours to clear. */
		if ((in = (struct store_instance *)store_instance_get(p->st,
		    id)) != NULL) {
			in->dirty = 0;
			in->seq_durable = in->seq;
			in->samples_durable = in->samples;
		}
	}
	for (b = store_buckets(p->st); b != NULL; b = b->next)
		b->dirty = 0;
}

/*
 * Gives pages that deletes freed back to the file system, at most
 * PERSIST_SHRINK_STEP a flush, and checkpoints them so that the file
 * itself shrinks: the file is as big as what it holds, not as the most
 * it ever held.
 */
static void
persist_shrink(struct persist *p)
{
	char	sql[64];

	if (!p->incremental ||
	    persist_pragma(p, "PRAGMA freelist_count") < PERSIST_SHRINK_MIN)
		return;
	snprintf(sql, sizeof sql, "PRAGMA incremental_vacuum(%d)",
	    PERSIST_SHRINK_STEP);
	if (persist_exec(p, sql) != SQLITE_OK ||
	    persist_exec(p, "PRAGMA wal_checkpoint(TRUNCATE)") != SQLITE_OK)
		return;
	p->counts.shrinks++;
}

/*
 * The writes a big file's open held until its check passed: the
 * retention's deletes, the rows the load dropped, the profiling state
 * saved meanwhile.  0, or -1 (tried again at the next flush).
 */
static int
persist_undefer(struct persist *p)
{
	size_t	i;

	if (p->defer_cut) {
		if (persist_cut(p) != PERSIST_OK) {
			persist_fail(p, "cannot delete what is past the "
			    "retention");
			return (-1);
		}
		p->defer_cut = 0;
	}
	if (p->ndrops > 0 && persist_drop_rows(p) != PERSIST_OK) {
		persist_fail(p, "cannot delete the buckets left out");
		return (-1);
	}
	p->defer = 0;
	if (p->defer_clear)
		(void)persist_profile_clear_pids(p);
	p->defer_clear = 0;
	for (i = 0; i < p->ndefer_pf; i++)
		(void)persist_profile_put(p, &p->defer_pf[i]);
	free(p->defer_pf);
	p->defer_pf = NULL;
	p->ndefer_pf = p->defer_pf_cap = 0;
	return (0);
}

/* Raises meta's version to this profd's, within the flush's transaction. */
static int
persist_schema_raise(struct persist *p)
{
	char	sql[64];

	snprintf(sql, sizeof sql, "UPDATE meta SET version = %d",
	    PERSIST_SCHEMA);
	return (persist_exec(p, sql) == SQLITE_OK ? 0 : -1);
}

/* Writes what changed since the last flush, in one transaction. */
int
persist_flush(struct persist *p)
{
	uint64_t	rows = 0, deleted = p->counts.rows_deleted;

	if (p == NULL || p->db == NULL)
		return (-1);
	if (p->qc_running) {
		if (__atomic_load_n(&p->qc_state, __ATOMIC_ACQUIRE) ==
		    PERSIST_QC_RUNNING)
			return (1);	/* not until the file is known sound */
		persist_qc_end(p, 0);
	}
	if (p->damaged)
		return (-1);
	if (p->defer && persist_undefer(p) != 0)
		return (-1);
	if (persist_step(p, PS_BEGIN) != 0)
		goto fail;
	/* An older version's file: what is written now, it cannot read. */
	if ((p->schema_old && persist_schema_raise(p) != 0) ||
	    persist_flush_defs(p, &rows) != 0 ||
	    persist_flush_instances(p, &rows) != 0 ||
	    persist_flush_buckets(p, &rows) != 0 ||
	    persist_step(p, PS_COMMIT) != 0) {
		persist_fail(p, "cannot write");
		persist_step(p, PS_ROLLBACK);
		p->counts.rows_deleted = deleted;
		return (-1);
	}
	persist_flush_done(p);
	p->schema_old = 0;
	p->counts.flushes++;
	p->counts.rows_written += rows;
	persist_shrink(p);
	persist_size(p);
	if (p->failing) {
		p->failing = 0;
		log_info("%s: writing again", p->path);
	}
	return (0);
fail:
	persist_fail(p, "cannot begin a transaction");
	return (-1);
}

/*
 * The last flush, while the agents are still connected: tried twice, and
 * when it fails, says exactly what is not on disk: the samples of
 * connected processes, whose agents keep every batch not acknowledged and
 * send it again to the next profd, and those of processes that are gone,
 * which are lost.  0, or -1.
 */
int
persist_final(struct persist *p)
{
	const struct store_instance	*in;
	uint64_t			 held = 0, lost = 0, n;
	uint32_t			 id, lim, nheld = 0, nlost = 0;

	if (p == NULL)
		return (-1);
	persist_qc_end(p, 0);		/* waits for the file's check */
	if (persist_flush(p) == 0 || persist_flush(p) == 0)
		return (0);
	lim = store_id_limit(p->st, STORE_INSTANCE);
	for (id = 1; id < lim; id++) {
		if ((in = store_instance_get(p->st, id)) == NULL ||
		    in->samples <= in->samples_durable)
			continue;
		n = in->samples - in->samples_durable;
		if (in->attached) {
			held += n;
			nheld++;
		} else {
			lost += n;
			nlost++;
		}
	}
	p->counts.lost_at_exit = lost;
	log_warn("%s: cannot write at exit (%s): %" PRIu64 " samples are not "
	    "on disk: %" PRIu64 " of %u connected processes, whose agents "
	    "keep them and send them again to the next profd, and %" PRIu64
	    " of %u processes that are gone: lost", p->path,
	    p->why, held + lost, held,
	    nheld, lost, nlost);
	return (-1);
}

/* Flushes and closes. */
void
persist_close(struct persist *p)
{
	int	k;

	if (p == NULL)
		return;
	persist_qc_end(p, 1);
	persist_flush(p);
	persist_check_forget(p);
	store_set_hooks(p->st, NULL);
	persist_db_close(p);
	for (k = 0; k < STORE_NKINDS; k++) {
		free(p->pending[k].ids);
		free(p->pending[k].state);
	}
	free(p->map);
	free(p->dels);
	free(p->drops);
	free(p->defer_pf);
	free(p->scratch);
	free(p->enc);
	free(p->dec);
	free(p->merge_buf);
	free(p->cold);
	free(p->path);
	free(p);
}

/* The counters. */
void
persist_get_counts(const struct persist *p, struct persist_counts *c)
{
	*c = p->counts;
}

/* -- profiling settings ---------------------------------------------------- */

/* Saves one setting (pid 0: the global one) at once, in its own
 * transaction; 0, or -1 (logged). */
int
persist_profile_put(struct persist *p, const struct persist_profile *pf)
{
	struct persist_profile	*v;
	sqlite3_stmt		*s;
	size_t			 i, cap;

	if (p == NULL || p->db == NULL || p->damaged)
		return (-1);
	if (p->defer) {
		/* The file is being checked: kept for the first write. */
		for (i = 0; i < p->ndefer_pf && p->defer_pf[i].pid != pf->pid;
		    i++)
			;
		if (i == p->ndefer_pf) {
			if (p->ndefer_pf == p->defer_pf_cap) {
				cap = p->defer_pf_cap == 0 ? 16 :
				    p->defer_pf_cap * 2;
				if ((v = reallocarray(p->defer_pf, cap,
				    sizeof *v)) == NULL)
					return (-1);
				p->defer_pf = v;
				p->defer_pf_cap = cap;
			}
			p->ndefer_pf++;
		}
		p->defer_pf[i] = *pf;
		return (0);
	}
	s = p->stmt[PS_PUT_PROFILE];
	sqlite3_bind_int64(s, 1, pf->pid);
	sqlite3_bind_int64(s, 2, pf->profiling ? 1 : 0);
	sqlite3_bind_int64(s, 3, pf->rate_hz);
	sqlite3_bind_int64(s, 4, pf->mode);
	sqlite3_bind_int64(s, 5, pf->reader);
	sqlite3_bind_int64(s, 6, pf->jitter_pct);
	if (persist_step(p, PS_PUT_PROFILE) != 0)
		goto fail;
	if (pf->max_overhead_bp == PROTO_OVERHEAD_UNSET) {
		sqlite3_bind_int64(p->stmt[PS_DEL_OVERHEAD], 1, pf->pid);
		if (persist_step(p, PS_DEL_OVERHEAD) != 0)
			goto fail;
	} else {
		s = p->stmt[PS_PUT_OVERHEAD];
		sqlite3_bind_int64(s, 1, pf->pid);
		sqlite3_bind_int64(s, 2, pf->max_overhead_bp);
		if (persist_step(p, PS_PUT_OVERHEAD) != 0)
			goto fail;
	}
	return (0);
fail:
	p->counts.failures++;
	log_warn("%s: cannot save the profiling state: %s", p->path,
	    sqlite3_errmsg(p->db));
	return (-1);
}

/* Forgets every per-pid setting; 0, or -1 (logged). */
int
persist_profile_clear_pids(struct persist *p)
{
	size_t	i, k;

	if (p == NULL || p->db == NULL || p->damaged)
		return (-1);
	if (p->defer) {
		for (i = 0, k = 0; i < p->ndefer_pf; i++)
			if (p->defer_pf[i].pid == 0)
				p->defer_pf[k++] = p->defer_pf[i];
		p->ndefer_pf = k;
		p->defer_clear = 1;
		return (0);
	}
	if (persist_step(p, PS_DEL_PID_PROFILES) != 0 ||
	    persist_step(p, PS_DEL_PID_OVERHEADS) != 0) {
		p->counts.failures++;
		log_warn("%s: cannot save the profiling state: %s", p->path,
		    sqlite3_errmsg(p->db));
		return (-1);
	}
	return (0);
}

/* Calls fn on every saved setting, the global one (pid 0) first, and
 * returns how many; a row out of range is skipped. */
int
persist_profile_load(struct persist *p,
    void (*fn)(void *, const struct persist_profile *), void *arg)
{
	struct persist_profile	 pf;
	sqlite3_stmt		*s = NULL;
	int			 n = 0;

	if (p == NULL || p->db == NULL)
		return (0);
	if (sqlite3_prepare_v2(p->db, "SELECT p.pid, profiling, rate_hz, "
	    "mode, reader, jitter_pct, o.max_overhead_bp FROM profiles p "
	    "LEFT JOIN overheads o ON o.pid = p.pid ORDER BY p.pid", -1, &s,
	    NULL) != SQLITE_OK)
		return (0);
	while (sqlite3_step(s) == SQLITE_ROW) {
		memset(&pf, 0, sizeof pf);
		if (persist_col_u32(s, 0, &pf.pid) != 0 ||
		    persist_col_u32(s, 2, &pf.rate_hz) != 0 ||
		    persist_col_u32(s, 3, &pf.mode) != 0 ||
		    persist_col_u32(s, 4, &pf.reader) != 0 ||
		    persist_col_u32(s, 5, &pf.jitter_pct) != 0 ||
		    pf.rate_hz < PROTO_RATE_MIN || pf.rate_hz > PROTO_RATE_MAX ||
		    pf.mode > PROTO_MODE_LAST || pf.reader > PROTO_READER_LAST ||
		    pf.jitter_pct > PROTO_JITTER_MAX)
			continue;
		pf.profiling = sqlite3_column_int64(s, 1) != 0;
		pf.max_overhead_bp = PROTO_OVERHEAD_UNSET;
		if (sqlite3_column_type(s, 6) != SQLITE_NULL &&
		    (persist_col_u32(s, 6, &pf.max_overhead_bp) != 0 ||
		    pf.max_overhead_bp > PROTO_OVERHEAD_MAX))
			continue;
		fn(arg, &pf);
		n++;
	}
	sqlite3_finalize(s);
	return (n);
}
