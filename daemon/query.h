/*
 * query.h -- what every view asks of the store: the samples in a time
 * window that pass the filters (processes, services, thread names, on-CPU,
 * mode), merged by (stack, thread).  Views are computed from that merged
 * result: rows by function, line, file, thread, process or service; a call
 * tree; a diff of two results; and a struct profile for the encoders.
 */
#ifndef QUERY_H
#define QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "profile.h"

struct store;
struct store_entry;
struct store_tally;

#define QUERY_MODE_ANY	(-1)

/*
 * Buckets kept only on disk (evicted from memory for its cap, or left there
 * at a restart): a query lists those of its window when it begins and reads
 * their entries a slice at a time (QUERY_COLD_SLICE), as it reads a sealed
 * bucket in memory.  persist.c provides them.
 */
#define QUERY_COLD_SLICE	16384	/* entries read at once (512 KiB) */
struct query_cold_row {
	int64_t		row;		/* the source's key */
	uint64_t	start_ns;
	uint64_t	width_ns;
	uint64_t	n;		/* entries */
	int		unchecked;	/* the source's own use */
};
struct query_cold {
	void	*arg;
	/* The rows overlapping [since, until), oldest first, as a malloc'd
	 * array (NULL and 0: none): 0, or -1. */
	int	(*list)(void *, uint64_t since, uint64_t until,
		    struct query_cold_row **, size_t *);
	/* Entries [from, from + n) of a row, in the store's order: 0, or -1
	 * (the row is gone or damaged: left out of the result). */
	int	(*read)(void *, const struct query_cold_row *, uint64_t from,
		    struct store_entry *, size_t n);
	/* A row's tallies as a malloc'd array (NULL and 0: none): 0, or -1. */
	int	(*tallies)(void *, const struct query_cold_row *,
		    struct store_tally **, size_t *);
};

/* Sample flags as the store keeps them: the agent's PROTO_SAMPLE_* bits,
 * and the mode the sample was taken in (PROTO_MODE_* + 1; 0 unknown). */
#define QUERY_FLAGS_MODE_SHIFT	8
#define QUERY_FLAGS_MODE(f)	((int)((f) >> QUERY_FLAGS_MODE_SHIFT) - 1)

struct query {
	uint64_t		 since_ns;	/* 0: from the oldest */
	uint64_t		 until_ns;	/* 0: to now */
	const uint32_t		*pids;		/* any of; none: all */
	size_t			 npids;
	const char *const	*services;	/* any of */
	size_t			 nservices;
	const char *const	*threads;	/* name globs, any of */
	size_t			 nthreads;
	int			 oncpu;		/* only on-CPU samples */
	int			 mode;		/* QUERY_MODE_ANY or a mode */
	int			 by_thread;	/* keep threads apart in cells */
	const struct query_cold	*cold;		/* NULL: memory only */
};

/* Samples of one (stack, thread). */
struct query_cell {
	uint32_t	stack;
	uint32_t	thread;
	uint64_t	count;
	uint64_t	weight_us;
};

struct query_result {
	struct query_cell	*cells;		/* thread 0 unless by_thread */
	size_t			 ncells;
	struct query_cell	*owners;	/* per thread, stack 0 */
	size_t			 nowners;
	uint64_t		 count;
	uint64_t		 weight_us;
	uint64_t		 from_ns;	/* first bucket used */
	uint64_t		 to_ns;		/* end of the last one */
	size_t			 buckets;	/* buckets read */
	size_t			 cold;		/* of those, from disk */
	size_t			 cold_failed;	/* on disk, unreadable: left
						   out */
	uint64_t		 entries;	/* entries read */
	/* What the window's batches said of their stacks (store_tally), for
	 * the processes and mode asked (per process: whatever the thread and
	 * on-CPU filters, as a stack left out has neither): */
	uint64_t		 reported;	/* samples of batches that said */
	uint64_t		 invalid;	/* stacks they left out */
};

enum query_by {
	QUERY_BY_FUNCTION,
	QUERY_BY_LINE,
	QUERY_BY_FILE,
	QUERY_BY_THREAD,
	QUERY_BY_PROCESS,
	QUERY_BY_SERVICE,
};

/* One row of a view.  key: a function, frame, file string, thread or
 * instance id (for services: an instance of that service). */
struct query_row {
	uint32_t	key;
	uint64_t	self;
	uint64_t	total;
	uint64_t	self_us;
	uint64_t	total_us;
};

/* One node of a call tree, in pre-order; key is a function id. */
struct query_node {
	uint32_t	func;
	uint32_t	depth;		/* 0: a root */
	uint64_t	self;
	uint64_t	total;
	uint64_t	self_us;
	uint64_t	total_us;
};

/*
 * Runs a query in bounded steps, so the event loop can serve agents in
 * between: query_begin() reads the open buckets at once and lists the
 * sealed ones and those on disk (q->cold); each query_step() reads at most
 * `budget` entries of them
 * and returns 1 when the result is complete, 0 when more steps are needed,
 * -1 when out of memory.  Housekeeping may run between steps: the scan
 * holds each sealed bucket until it has read it (store_bucket_hold), and
 * a sweep meanwhile must keep what it summed (query_scan_mark, from the
 * store's sweep hook) and what finished results name (query_result_mark).
 * query_run() does all steps at once.
 */
struct query_scan;
struct query_scan *query_begin(struct store *, const struct query *);
int	query_step(struct query_scan *, size_t budget);
/* Moves the result out (after the last step) and frees the scan. */
int	query_end(struct query_scan *, struct query_result *);
void	query_scan_free(struct query_scan *);
void	query_scan_mark(const struct query_scan *);
void	query_result_mark(struct store *, const struct query_result *);
int	query_run(struct store *, const struct query *,
	    struct query_result *);
void	query_result_free(struct query_result *);
/* The share of the stacks of a result's window that were left out as
 * unreadable, in percent of those taken and left out; -1 when no agent
 * of the window said. */
double	query_invalid_pct(const struct query_result *);

/* Rows of a view, sorted by self then total (descending). */
int	query_rows(const struct store *, const struct query_result *,
	    enum query_by, struct query_row **, size_t *);
/* Call tree, children by total; nodes below min_permille of the whole or
 * deeper than max_depth (0: any) are left out. */
int	query_tree(const struct store *, const struct query_result *,
	    uint32_t max_depth, uint32_t min_permille, struct query_node **,
	    size_t *);
/* The profile of a result; labels: keep the thread of every sample.
 * query_profile() builds it at once; begin, then steps of at most
 * `budget` cells (1: done, 0: more, -1: out of memory), then end, build
 * it between the agents' I/O (the result kept through sweeps meanwhile:
 * query_result_mark). */
struct profile *query_profile(const struct store *,
	    const struct query_result *, int labels);
struct query_profiling;
struct query_profiling *query_profile_begin(const struct store *,
	    const struct query_result *, int labels);
int	query_profile_step(struct query_profiling *, size_t budget);
struct profile *query_profile_end(struct query_profiling *);
void	query_profile_abort(struct query_profiling *);

const char *query_by_name(enum query_by);
int	query_by_parse(const char *);

#endif
