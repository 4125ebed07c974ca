/*
 * format.h -- the output encoders: one file per format (format-<name>.c),
 * each turning one struct profile into the bytes of its format.  Every view
 * of profctl that prints stacks, and later the web view and the push to a
 * fleet backend, goes through these.
 */
#ifndef FORMAT_H
#define FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "profile.h"

/* What a stack format's counts are. */
enum format_weight {
	FORMAT_WEIGHT_SAMPLES = 0,	/* sample counts */
	FORMAT_WEIGHT_TIME = 1,		/* time weights (microseconds) */
};

struct format_opts {
	enum format_weight	 weight;
	int			 root_pid;	/* folded: "pid N" root frame */
	int			 root_thread;	/* folded: thread root frame */
};

/* Each appends the whole encoded profile to out: 0, or -1 (out of memory
 * or a profile it cannot encode). */
int	format_folded(const struct profile *, const struct format_opts *,
	    struct evbuffer *);
int	format_speedscope(const struct profile *, const struct format_opts *,
	    struct evbuffer *);
int	format_pprof(const struct profile *, const struct format_opts *,
	    struct evbuffer *);
int	format_svg(const struct profile *, const struct format_opts *,
	    struct evbuffer *);

/*
 * The label of a frame in every stack format: "name (file:line)", or
 * "name (file)" when the line is 0, or "name" when the file is "".  Written
 * into buf (always NUL-terminated, cut to fit); returns its length.
 */
size_t	format_frame_label(const struct profile *, uint32_t frame, char *buf,
	    size_t len);

/* Looks a format up by name: its encoder, or NULL. */
typedef int (*format_fn)(const struct profile *, const struct format_opts *,
	    struct evbuffer *);
format_fn format_find(const char *name);

#endif
