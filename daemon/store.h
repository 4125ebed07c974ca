/*
 * store.h -- the interned profile: strings, functions, frames and stacks,
 * each stored once under a global id (dense, from 1; 0 is never an id), and
 * sample counts per (process, stack).
 *
 * The store is bounded: past max_stacks distinct stacks or max_bytes of
 * memory it refuses new definitions (returns id 0) and drops the samples
 * that would need them, counting them in `overflow`.  Interned definitions
 * live as long as the store, since agent connections keep ids of them;
 * store_reset forgets only the samples.
 */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;

struct store_counts {
	uint64_t	overflow;	/* samples dropped: store full */
	uint64_t	refused;	/* definitions refused: store full */
	size_t		strings;
	size_t		funcs;
	size_t		frames;
	size_t		stacks;
	size_t		entries;	/* (pid, stack) counters */
	size_t		bytes;		/* memory charged to the store */
};

struct store	*store_new(size_t max_stacks, size_t max_bytes);
void		 store_free(struct store *);

/* Interning: each returns the global id, or 0 when the store is full or an
 * id given is not one of the store's. */
uint32_t	 store_string(struct store *, const char *, size_t);
uint32_t	 store_func(struct store *, uint32_t name, uint32_t file,
		     uint32_t line);
uint32_t	 store_frame(struct store *, uint32_t func, uint32_t line);
/* Frames leaf first.  A truncated stack gets a "[truncated]" root frame. */
uint32_t	 store_stack(struct store *, const uint32_t *frames,
		     uint32_t depth, int truncated);

/* Adds count samples of summed weight to (pid, stack); stack 0 (refused)
 * or a full store counts them as overflow.  0, or -1 if dropped. */
int		 store_add(struct store *, uint32_t pid, uint32_t stack,
		     uint64_t count, uint64_t weight_us);
/* Forgets every sample; definitions stay. */
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

/* Aggregates over a set of processes (npids == 0: every process). */
struct store_func_row {
	uint32_t	func;
	uint64_t	self;		/* samples with it as the leaf */
	uint64_t	total;		/* samples with it anywhere, once */
	uint64_t	self_us;
	uint64_t	total_us;
};
struct store_proc_row {
	uint32_t	pid;
	uint64_t	samples;
	uint64_t	weight_us;
};
struct store_stack_row {
	uint32_t	stack;
	uint64_t	count;
	uint64_t	weight_us;
};
struct store_result {
	uint64_t		 samples;
	uint64_t		 weight_us;
	struct store_proc_row	*procs;		/* by pid */
	size_t			 nprocs;
	struct store_func_row	*funcs;		/* self desc, total desc */
	size_t			 nfuncs;
	struct store_stack_row	*stacks;	/* count desc; if asked */
	size_t			 nstacks;
};

int		 store_query(const struct store *, const uint32_t *pids,
		     size_t npids, int want_stacks, struct store_result *);
void		 store_result_free(struct store_result *);

#endif
