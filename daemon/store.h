/*
 * store.h -- the profile store: every sample profd keeps, aggregated in
 * time buckets, and the definitions those samples refer to.
 *
 * Definitions (strings, functions, frames, stacks, process instances,
 * threads) are interned under global ids, dense from 1 (0 is never an id).
 * An id freed by the sweep may be handed out again later.
 *
 * Samples are counted per (bucket, thread, stack, labels, flags): a thread
 * id names its process instance, so a bucket entry carries every dimension
 * of a sample.  The newest buckets are open (hash tables, mutable); a
 * bucket older than its width plus a grace period is sealed into a dense
 * sorted array and never changes again, except by a roll-up that merges
 * whole buckets into one coarser bucket (10 s -> 1 min -> 1 h by default).
 *
 * A bucket also keeps, per process instance and mode, what the batches of
 * its time said of their stacks (protocol version 5 agents): how many
 * samples they held and how many stacks they left out as torn or
 * unreadable, so that a query can say which share of its window is
 * missing.  Agents that do not say leave nothing there: unknown, not 0.
 *
 * Bounds: buckets older than the retention go; past max_bytes the oldest
 * buckets go first, to disk only when the bucket_keep hook keeps them.  Definitions that no bucket and no live connection uses
 * are reclaimed by store_sweep().  Every drop is counted.
 */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_TIERS_MAX	4

/* One aggregated counter of a bucket (32 bytes, stored as is on disk). */
struct store_entry {
	uint32_t	thread;		/* thread id (names the instance) */
	uint32_t	stack;		/* stack id */
	uint32_t	labels;		/* label set id; 0: none (reserved) */
	uint32_t	flags;		/* PROTO_SAMPLE_*, mode (query.h) */
	uint64_t	count;		/* samples; 0 marks a free hash slot */
	uint64_t	weight_us;	/* summed time weight */
};

/* What a process's batches said of a bucket's time (24 bytes, stored as
 * is on disk); a bucket keeps them sorted by (instance, flags). */
struct store_tally {
	uint32_t	instance;
	uint32_t	flags;		/* the mode, as entries keep it */
	uint64_t	samples;	/* samples of the batches that said */
	uint64_t	invalid;	/* stacks they left out */
};

/* A time bucket.  Open: entries is a hash table of cap slots (free ones
 * have count 0).  Sealed: entries holds n entries sorted, cap == n. */
struct store_bucket {
	uint64_t		 start_ns;	/* CLOCK_REALTIME, aligned */
	uint64_t		 width_ns;
	int			 sealed;
	int			 dirty;		/* changed since persisted */
	struct store_entry	*entries;
	size_t			 n;		/* used entries */
	size_t			 cap;		/* slots */
	uint64_t		 samples;	/* sum of counts */
	struct store_tally	*tallies;	/* sorted */
	size_t			 ntallies;
	int			 holds;		/* queries yet to read it */
	int			 retired;	/* gone from the store, kept
						   for its holds */
	struct store_bucket	*prev, *next;	/* oldest first */
};

/* A process instance: (host, pid, start time). */
struct store_instance {
	uint32_t	 id;
	uint32_t	 pid;
	uint32_t	 ppid;
	uint64_t	 start_ns;	/* process start, CLOCK_REALTIME */
	uint64_t	 attach_ns;	/* first attached */
	uint64_t	 end_ns;	/* last detached; 0 while attached */
	uint64_t	 last_ns;	/* newest sample */
	char		*host;
	char		*service;
	char		*python;
	char		*reader;
	char		**argv;
	uint32_t	 argc;
	uint64_t	 samples;	/* received */
	uint64_t	 samples_durable; /* of that, on disk (persist.c) */
	uint64_t	 dropped;	/* the agent's own drop counter */
	uint64_t	 seq;		/* newest batch number stored */
	uint64_t	 seq_durable;	/* of that, on disk (persist.c) */
	int		 attached;	/* connections open to it */
	int		 dirty;		/* changed since persisted */
};

/* What a hello says of a process; strings need not be NUL-terminated. */
struct store_instance_info {
	uint32_t		 pid;
	uint32_t		 ppid;
	uint64_t		 start_ns;
	const char		*host;		uint32_t host_len;
	const char		*service;	uint32_t service_len;
	const char		*python;	uint32_t python_len;
	const char		*reader;	uint32_t reader_len;
	const char *const	*argv;		/* NUL-terminated strings */
	uint32_t		 argc;
};

struct store_thread {
	uint32_t	id;
	uint32_t	instance;
	uint64_t	tid;		/* native thread id */
	uint32_t	name;		/* string id */
};

/* Roll-up tiers: buckets younger than `until_ns` have width `width_ns`. */
struct store_tier {
	uint64_t	width_ns;
	uint64_t	until_ns;	/* age; UINT64_MAX for the last tier */
};

struct store_config {
	struct store_tier	 tiers[STORE_TIERS_MAX];
	int			 ntiers;
	uint64_t		 retention_ns;	/* oldest data kept */
	uint64_t		 grace_ns;	/* late samples accepted */
	size_t			 max_bytes;	/* the store's memory */
	size_t			 max_gone;	/* departed processes no
						   sample names, kept */
};

/* Counters of the store (see stats.h for their descriptions). */
struct store_counts {
	uint64_t	samples_stored;
	uint64_t	samples_late;		/* back-filled at their time */
	uint64_t	samples_dropped;	/* unknown stack or no memory */
	uint64_t	expired_samples;	/* past the retention */
	uint64_t	evicted_samples;	/* past max_bytes */
	uint64_t	evicted_buckets;
	uint64_t	spilled_samples;	/* past max_bytes, kept on disk */
	uint64_t	spilled_buckets;
	uint64_t	rollups;
	uint64_t	reclaimed;		/* definitions freed */
	uint64_t	sweeps;
	uint64_t	refused;		/* definitions refused */
	size_t		strings, funcs, frames, stacks, instances, threads;
	size_t		buckets;
	size_t		entries;
	size_t		bytes;			/* memory charged */
	size_t		retired_bytes;		/* of that, retired buckets
						   held by queries */
	size_t		retired_buckets;
	size_t		def_bytes;		/* of that, definitions */
	uint64_t	oldest_ns;		/* oldest bucket's start */
};

/* Kinds of definition, for marking and for the persistence layer. */
enum store_kind {
	STORE_STRING,
	STORE_FUNC,
	STORE_FRAME,
	STORE_STACK,
	STORE_INSTANCE,
	STORE_THREAD,
	STORE_NKINDS
};

struct store;

/* Called for every definition and bucket changed (persistence). */
struct store_hooks {
	void	(*def_put)(void *, enum store_kind, uint32_t id);
	void	(*def_del)(void *, enum store_kind, uint32_t id);
	void	(*bucket_del)(void *, const struct store_bucket *);
	/* A bucket evicted for max_bytes (written, unchanged since), what
	 * it names pinned first (store_pin): 0 if its row stays on disk (to
	 * be read from there; the persistence layer unpins it when the row
	 * goes), else -1: unpinned, and bucket_del follows. */
	int	(*bucket_keep)(void *, const struct store_bucket *);
	void	(*reset)(void *);	/* store_reset: every sample goes */
	void	*arg;
};

void		 store_config_default(struct store_config *);
struct store	*store_new(const struct store_config *);
void		 store_free(struct store *);
const struct store_config *store_get_config(const struct store *);
void		 store_set_hooks(struct store *, const struct store_hooks *);
/* Called when a definition finds no room even after evicting a bucket:
 * sweep now (store_sweep_begin ... store_sweep_end). */
void		 store_set_room_hook(struct store *, void (*)(void *), void *);

/* Interning: each returns the id, or 0 when out of memory or an id given
 * is unknown. */
uint32_t	 store_string(struct store *, const char *, size_t);
uint32_t	 store_func(struct store *, uint32_t name, uint32_t file,
		     uint32_t line);
uint32_t	 store_frame(struct store *, uint32_t func, uint32_t line);
/* Frames leaf first.  A truncated stack gets a "[truncated]" root frame. */
uint32_t	 store_stack(struct store *, const uint32_t *frames,
		     uint32_t depth, int truncated);
/* Finds the instance (host, pid, start) or creates it; marks it attached
 * and refreshes what the hello says. */
uint32_t	 store_instance_attach(struct store *,
		     const struct store_instance_info *, uint64_t now_ns);
void		 store_instance_detach(struct store *, uint32_t,
		     uint64_t now_ns);
/* Records the agent's own count of dropped samples. */
void		 store_instance_set_dropped(struct store *, uint32_t,
		     uint64_t dropped);
/* Records the newest batch number stored (PROTO_BATCH); durable: as
 * loaded from disk. */
void		 store_instance_set_seq(struct store *, uint32_t,
		     uint64_t seq, int durable);
uint32_t	 store_thread(struct store *, uint32_t instance, uint64_t tid,
		     uint32_t name);

/* Adds samples at time t_ns.  0, or -1 when they were dropped. */
int		 store_add(struct store *, uint64_t t_ns, uint32_t thread,
		     uint32_t stack, uint32_t flags, uint64_t count,
		     uint64_t weight_us);
/* Adds to what an instance's batches said of the bucket of time t_ns:
 * samples they held and stacks they left out.  0, or -1 (dropped). */
int		 store_add_tally(struct store *, uint64_t t_ns,
		     uint32_t instance, uint32_t flags, uint64_t samples,
		     uint64_t invalid);

/*
 * Housekeeping, every second or so: seals buckets past their grace, rolls
 * sealed ones up into their tier, drops what is past the retention or over
 * max_bytes.  Sealing and roll-ups call no hook: a bucket is persisted
 * by the caller (it is dirty); drops call bucket_del.
 */
void		 store_tick(struct store *, uint64_t now_ns);

/*
 * Reclaiming: store_sweep_begin() clears every mark and marks what the
 * buckets use; the caller marks what live connections use with
 * store_mark(); store_sweep_end() frees every unmarked definition (calling
 * def_del) and returns how many were freed.
 */
void		 store_sweep_begin(struct store *);
void		 store_mark(struct store *, enum store_kind, uint32_t id);
/* Whether an id is marked (during a sweep). */
int		 store_marked(const struct store *, enum store_kind,
		     uint32_t id);
size_t		 store_sweep_end(struct store *);

/*
 * A query starts (+1) or ends (-1): while any runs, store_reset waits
 * (store_busy).  Housekeeping does not: a query holds the sealed buckets
 * it has yet to read (store_bucket_hold), and a bucket dropped, rolled up
 * or evicted meanwhile leaves the store but stays in memory, its memory
 * still counted in bytes (retired_bytes) but not against max_bytes, until
 * the last hold is let go.  A sweep marks what retired buckets name and
 * calls the sweep hook, where the caller marks what running queries have
 * summed so far (store_mark).
 */
void		 store_readers(struct store *, int delta);
int		 store_busy(const struct store *);
void		 store_bucket_hold(struct store *, const struct store_bucket *);
void		 store_bucket_release(struct store *,
		     const struct store_bucket *);
void		 store_set_sweep_hook(struct store *, void (*)(void *),
		     void *);
/* Held (+1) until released (-1): no sweep frees a definition and no freed
 * id is given to a new one.  While a load is still checking the buckets
 * it left on disk, an id they name that the file lacks must not come back
 * meaning something else. */
void		 store_hold_ids(struct store *, int delta);
/* Forgets every sample, those left on disk too (the reset hook), and
 * every pin (definitions go at the next sweep).  Not while busy. */
void		 store_reset(struct store *);
void		 store_get_counts(const struct store *, struct store_counts *);

/* Lookups: NULL / -1 for an unknown id. */
const char	*store_string_get(const struct store *, uint32_t,
		     uint32_t *len);
int		 store_func_get(const struct store *, uint32_t,
		     uint32_t *name, uint32_t *file, uint32_t *line);
int		 store_frame_get(const struct store *, uint32_t,
		     uint32_t *func, uint32_t *line);
/* Frame ids leaf first, including the truncation root frame if any. */
const uint32_t	*store_stack_get(const struct store *, uint32_t,
		     uint32_t *depth);
const struct store_instance *store_instance_get(const struct store *,
		     uint32_t);
const struct store_thread *store_thread_get(const struct store *, uint32_t);
/* Upper bound of the ids of a kind (for dense per-id arrays). */
uint32_t	 store_id_limit(const struct store *, enum store_kind);

/* Orders entries as a sealed bucket keeps them (a qsort comparator). */
int		 store_cmp_entry(const void *, const void *);
/* Orders tallies as a bucket keeps them. */
int		 store_cmp_tally(const void *, const void *);
size_t		 store_merge(struct store_entry *, const struct store_entry *,
		    size_t, const struct store_entry *, size_t);
size_t		 store_merge_tallies(struct store_tally *,
		    const struct store_tally *, size_t,
		    const struct store_tally *, size_t);
/* The bucket width of the tier for an age. */
uint64_t	 store_tier_width(const struct store *, uint64_t);

/* Buckets, oldest first. */
struct store_bucket *store_buckets(const struct store *);

/*
 * Loading (persistence): puts a definition under a given id, or a sealed
 * bucket, as they were saved.  -1 when out of memory or inconsistent.
 */
int		 store_load_string(struct store *, uint32_t id, const char *,
		     size_t);
int		 store_load_func(struct store *, uint32_t id, uint32_t name,
		     uint32_t file, uint32_t line);
int		 store_load_frame(struct store *, uint32_t id, uint32_t func,
		     uint32_t line);
int		 store_load_stack(struct store *, uint32_t id,
		     const uint32_t *frames, uint32_t depth);
int		 store_load_instance(struct store *,
		     const struct store_instance *);
int		 store_load_thread(struct store *, const struct store_thread *);
int		 store_load_bucket(struct store *, uint64_t start_ns,
		     uint64_t width_ns, const struct store_entry *, size_t n);
/* Gives a loaded bucket (one of store_buckets) its saved tallies. */
int		 store_load_tallies(struct store *, const struct store_bucket *,
		     const struct store_tally *, size_t n);
/*
 * Keeps a definition, and what it names, through every sweep while a
 * bucket kept only on disk names it: once per entry (or tally) naming it,
 * undone by store_unpin when that bucket is deleted, all undone by
 * store_reset.  Otherwise a later load, or a query reading the bucket,
 * would find the id gone or reused.  -1 when out of memory or the id is
 * not live.
 */
int		 store_pin(struct store *, enum store_kind, uint32_t id);
void		 store_unpin(struct store *, enum store_kind, uint32_t id);

#endif
