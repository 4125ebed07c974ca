/*
 * sampling.h -- the sampling settings profd publishes in its runtime
 * directory, so that an agent samples from its first millisecond with what
 * profd last asked instead of waiting for its first CONFIG.
 *
 * profd rewrites the file (RUNDIR_SAMPLING) at start and whenever its
 * global setting changes: written to a temporary file in the same
 * directory, then renamed over the old one, so a reader sees one whole
 * version or the other.  It stays when profd stops: it is then the last
 * known setting.  An agent reads it once, when it attaches, before its
 * first connection; the first CONFIG then decides (agent/conn.c).
 *
 * The format is text, one "key value" line each, in this order:
 *
 *	profd-sampling 1
 *	profiling on|off
 *	rate_hz 1..10000
 *	mode wall|cpu|gil
 *	reader default|gil|direct
 *	jitter_pct 0..50
 *	max_overhead_bp none|0..10000
 *
 * A newer profd may add lines after these (a reader skips them); a change
 * to the meaning of a line above takes a new version in the first line,
 * and a reader ignores a file of a version it does not know.
 *
 * The file is trusted as little as a frame off the wire: its directory may
 * belong to another user.  A reader takes it only if it is a regular file,
 * not a symbolic link, owned by root or by the directory's owner, not
 * writable by group or others, at most SAMPLING_MAX_BYTES long, and every
 * line is exactly as above.  The worst a file that passes can do is make
 * an agent sample at some rate until its CONFIG comes.
 */
#ifndef SAMPLING_H
#define SAMPLING_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#define SAMPLING_MAGIC		"profd-sampling"
#define SAMPLING_VERSION	1
#define SAMPLING_MAX_BYTES	512	/* of the whole file */
#define SAMPLING_MAX_LINE	64	/* bytes of one line, without '\n' */

/* What profd asks of every agent (its global setting). */
struct sampling {
	int		profiling;
	uint32_t	rate_hz;
	uint32_t	mode;		/* enum proto_mode */
	uint32_t	reader;		/* enum proto_reader */
	uint32_t	jitter_pct;
	uint32_t	max_overhead_bp;	/* or PROTO_OVERHEAD_UNSET */
};

/* Writes the file's text into buf: its length, or -1 if it does not fit
 * or a value is out of range. */
int	sampling_format(const struct sampling *, char *buf, size_t len);
/* Parses the file's text: 0, or -1 with *why set to a short reason. */
int	sampling_parse(const char *buf, size_t len, struct sampling *,
	    const char **why);
/*
 * Publishes the settings in dir, atomically, with the given mode (and
 * group, unless (gid_t)-1): 0, or -1 with err set.
 */
int	sampling_write(const char *dir, const struct sampling *, mode_t mode,
	    gid_t gid, char *err, size_t errlen);
/*
 * Reads and checks the file in dir: 0, or -1 with err set (errno ENOENT
 * when there is no file: profd never published one there).
 */
int	sampling_read(const char *dir, struct sampling *, char *err,
	    size_t errlen);

#endif
