/*
 * profile.h -- one query's result: the samples that matched its filters,
 * merged by stack and by the label dimensions the query kept, with every
 * definition they use copied out of the store.  It is the one input of
 * every output encoder (format-*.c), so an encoder never touches the store
 * and a profile can be built, encoded and freed on any thread.
 *
 * Indexes are dense from 0.  Strings are NUL-terminated and owned by the
 * profile (its arena), never NULL (the empty string when unknown).
 */
#ifndef PROFILE_H
#define PROFILE_H

#include <stddef.h>
#include <stdint.h>

#define PROFILE_NO_LABELS	UINT32_MAX	/* a sample without labels */

/* What the time weights measure. */
enum profile_weight {
	PROFILE_WEIGHT_WALL = 0,	/* wall-clock time */
	PROFILE_WEIGHT_CPU = 1,		/* CPU time */
	PROFILE_WEIGHT_ONCPU = 2,	/* wall time of on-CPU samples */
};

struct profile_func {
	const char	*name;		/* qualified name, "?" if unknown */
	const char	*file;		/* path, "" if unknown */
	uint32_t	 line;		/* first line, 0 if unknown */
};

struct profile_frame {
	uint32_t	func;		/* index into funcs */
	uint32_t	line;		/* line being run, 0 if unknown */
};

/* Who a sample belongs to; samples share one entry per distinct set. */
struct profile_labels {
	uint32_t	 pid;
	uint64_t	 tid;		/* native thread id, 0 if unknown */
	const char	*thread;	/* thread name */
	const char	*service;
	const char	*host;
};

struct profile_sample {
	const uint32_t	*frames;	/* frame indexes, ROOT FIRST */
	uint32_t	 depth;
	uint32_t	 labels;	/* index into labels, or
					   PROFILE_NO_LABELS */
	uint64_t	 count;		/* samples */
	uint64_t	 weight_us;	/* summed time weight, microseconds */
};

struct profile {
	enum profile_weight	 weight;
	uint32_t		 rate_hz;	/* asked rate, 0 if unknown */
	uint64_t		 start_ns;	/* window, CLOCK_REALTIME */
	uint64_t		 end_ns;
	uint64_t		 count;		/* sum over samples */
	uint64_t		 weight_us;	/* sum over samples */
	const char		*title;		/* for viewers; never NULL */
	const char		*warning;	/* a line for viewers on what
						   the samples lack, or "" */

	struct profile_func	*funcs;
	size_t			 nfuncs;
	struct profile_frame	*frames;
	size_t			 nframes;
	struct profile_labels	*labels;
	size_t			 nlabels;
	struct profile_sample	*samples;
	size_t			 nsamples;

	/* Private: growth and the arena. */
	size_t			 funcs_cap, frames_cap, labels_cap;
	size_t			 samples_cap;
	struct profile_chunk	*arena;
};

struct profile	*profile_new(void);
void		 profile_free(struct profile *);

/*
 * Builders: each copies what it is given and returns the new index, or
 * UINT32_MAX on out of memory.  Nothing is deduplicated: callers map their
 * own ids to indexes.
 */
uint32_t	 profile_add_func(struct profile *, const char *name,
		     size_t name_len, const char *file, size_t file_len,
		     uint32_t line);
uint32_t	 profile_add_frame(struct profile *, uint32_t func,
		     uint32_t line);
uint32_t	 profile_add_labels(struct profile *,
		     const struct profile_labels *);
/* frames: `depth` frame indexes, root first.  Adds to the totals. */
uint32_t	 profile_add_sample(struct profile *, const uint32_t *frames,
		     uint32_t depth, uint32_t labels, uint64_t count,
		     uint64_t weight_us);
/* Copies a string into the arena; NULL on out of memory. */
const char	*profile_strdup(struct profile *, const char *, size_t);
/* Sets the title (copied). */
int		 profile_set_title(struct profile *, const char *);
/* Sets the warning (copied). */
int		 profile_set_warning(struct profile *, const char *);

/* Sorts samples by count descending and keeps the first n (n > 0). */
void		 profile_keep_top(struct profile *, size_t n);

#endif
