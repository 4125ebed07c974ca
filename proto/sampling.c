/* sampling.c -- the published sampling settings (see sampling.h). */

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"
#include "rundir.h"
#include "sampling.h"

#define SAMPLING_PATH_MAX	4096

/* The keys of version 1, in their order. */
enum {
	SAMPLING_KEY_MAGIC,
	SAMPLING_KEY_PROFILING,
	SAMPLING_KEY_RATE,
	SAMPLING_KEY_MODE,
	SAMPLING_KEY_READER,
	SAMPLING_KEY_JITTER,
	SAMPLING_KEY_OVERHEAD,
	SAMPLING_NKEYS
};
static const char *const sampling_keys[SAMPLING_NKEYS] = {
	SAMPLING_MAGIC, "profiling", "rate_hz", "mode", "reader",
	"jitter_pct", "max_overhead_bp"
};

/* Writes the file's text. */
int
sampling_format(const struct sampling *s, char *buf, size_t len)
{
	char	overhead[16];
	int	n;

	if (s->rate_hz < PROTO_RATE_MIN || s->rate_hz > PROTO_RATE_MAX ||
	    s->mode > PROTO_MODE_LAST || s->reader > PROTO_READER_LAST ||
	    s->jitter_pct > PROTO_JITTER_MAX ||
	    (s->max_overhead_bp != PROTO_OVERHEAD_UNSET &&
	    s->max_overhead_bp > PROTO_OVERHEAD_MAX))
		return (-1);
	if (s->max_overhead_bp == PROTO_OVERHEAD_UNSET)
		snprintf(overhead, sizeof overhead, "none");
	else
		snprintf(overhead, sizeof overhead, "%u", s->max_overhead_bp);
	n = snprintf(buf, len, "%s %d\n%s %s\n%s %u\n%s %s\n%s %s\n%s %u\n"
	    "%s %s\n",
	    sampling_keys[SAMPLING_KEY_MAGIC], SAMPLING_VERSION,
	    sampling_keys[SAMPLING_KEY_PROFILING], s->profiling ? "on" : "off",
	    sampling_keys[SAMPLING_KEY_RATE], s->rate_hz,
	    sampling_keys[SAMPLING_KEY_MODE], proto_mode_name(s->mode),
	    sampling_keys[SAMPLING_KEY_READER], proto_reader_name(s->reader),
	    sampling_keys[SAMPLING_KEY_JITTER], s->jitter_pct,
	    sampling_keys[SAMPLING_KEY_OVERHEAD], overhead);
	if (n < 0 || (size_t)n >= len)
		return (-1);
	return (n);
}

/* A decimal of at most five digits, no sign, no leading zero, within
 * max; -1 if not. */
static int
sampling_uint(const char *v, size_t len, uint32_t max, uint32_t *out)
{
	uint32_t	n = 0;
	size_t		i;

	if (len == 0 || len > 5 || (len > 1 && v[0] == '0'))
		return (-1);
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return (-1);
		n = n * 10 + (uint32_t)(v[i] - '0');
	}
	if (n > max)
		return (-1);
	*out = n;
	return (0);
}

/* Whether v[0..len) is the string s. */
static int
sampling_is(const char *v, size_t len, const char *s)
{
	return (strlen(s) == len && memcmp(v, s, len) == 0);
}

/* Parses one known line's value into s; -1 if it is not a valid one. */
static int
sampling_value(int key, const char *v, size_t len, struct sampling *s)
{
	char		name[16];
	uint32_t	version;
	int		r;

	switch (key) {
	case SAMPLING_KEY_MAGIC:
		return (sampling_uint(v, len, 99999, &version) != 0 ||
		    version != SAMPLING_VERSION ? -1 : 0);
	case SAMPLING_KEY_PROFILING:
		if (sampling_is(v, len, "on"))
			s->profiling = 1;
		else if (sampling_is(v, len, "off"))
			s->profiling = 0;
		else
			return (-1);
		return (0);
	case SAMPLING_KEY_RATE:
		return (sampling_uint(v, len, PROTO_RATE_MAX, &s->rate_hz) != 0 ||
		    s->rate_hz < PROTO_RATE_MIN ? -1 : 0);
	case SAMPLING_KEY_MODE:
	case SAMPLING_KEY_READER:
		if (len >= sizeof name)
			return (-1);
		memcpy(name, v, len);
		name[len] = '\0';
		if (key == SAMPLING_KEY_MODE) {
			if ((r = proto_mode_parse(name)) < 0)
				return (-1);
			s->mode = (uint32_t)r;
		} else {
			if ((r = proto_reader_parse(name)) < 0)
				return (-1);
			s->reader = (uint32_t)r;
		}
		return (0);
	case SAMPLING_KEY_JITTER:
		return (sampling_uint(v, len, PROTO_JITTER_MAX,
		    &s->jitter_pct));
	case SAMPLING_KEY_OVERHEAD:
		if (sampling_is(v, len, "none")) {
			s->max_overhead_bp = PROTO_OVERHEAD_UNSET;
			return (0);
		}
		return (sampling_uint(v, len, PROTO_OVERHEAD_MAX,
		    &s->max_overhead_bp));
	}
	return (-1);
}

/* Parses the file's text, every byte checked. */
int
sampling_parse(const char *buf, size_t len, struct sampling *out,
    const char **why)
{
	struct sampling	 s;
	const char	*p = buf, *end = buf + len, *nl, *sp, *c;
	size_t		 klen;
	int		 line = 0;

	memset(&s, 0, sizeof s);
	*why = "too long";
	if (len > SAMPLING_MAX_BYTES)
		return (-1);
	while (p < end) {
		*why = "a line without its newline";
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			return (-1);
		*why = "a line too long";
		if (nl - p > SAMPLING_MAX_LINE)
			return (-1);
		/* Only lower-case letters, digits, '_', '-' and one space. */
		sp = NULL;
		for (c = p; c < nl; c++) {
			if (*c == ' ' && sp == NULL)
				sp = c;
			else if (!((*c >= 'a' && *c <= 'z') ||
			    (*c >= '0' && *c <= '9') || *c == '_' ||
			    *c == '-')) {
				*why = "a line that is not 'key value'";
				return (-1);
			}
		}
		*why = "a line that is not 'key value'";
		if (sp == NULL || sp == p || sp + 1 == nl)
			return (-1);
		klen = (size_t)(sp - p);
		if (line < SAMPLING_NKEYS) {
			*why = line == 0 ? "not a profd sampling file" :
			    "a line out of order";
			if (!sampling_is(p, klen, sampling_keys[line]))
				return (-1);
			*why = line == 0 ? "a version this agent does not know" :
			    "a value out of range";
			if (sampling_value(line, sp + 1, (size_t)(nl - sp - 1),
			    &s) != 0)
				return (-1);
		}
		line++;
		p = nl + 1;
	}
	*why = "lines missing";
	if (line < SAMPLING_NKEYS)
		return (-1);
	*out = s;
	*why = NULL;
	return (0);
}

/* Publishes the settings in dir: a temporary file renamed over the old. */
int
sampling_write(const char *dir, const struct sampling *s, mode_t mode,
    gid_t gid, char *err, size_t errlen)
{
	char	text[SAMPLING_MAX_BYTES], path[SAMPLING_PATH_MAX];
	char	tmp[SAMPLING_PATH_MAX];
	ssize_t	w;
	size_t	off = 0;
	int	n, fd = -1, saved;

	if ((n = sampling_format(s, text, sizeof text)) < 0) {
		snprintf(err, errlen, "settings out of range");
		errno = EINVAL;
		return (-1);
	}
	if (snprintf(path, sizeof path, "%s/%s", dir, RUNDIR_SAMPLING) >=
	    (int)sizeof path || snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX",
	    dir, RUNDIR_SAMPLING) >= (int)sizeof tmp) {
		snprintf(err, errlen, "%s: %s", dir, strerror(ENAMETOOLONG));
		errno = ENAMETOOLONG;
		return (-1);
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		saved = errno;
		snprintf(err, errlen, "cannot create %s: %s", tmp,
		    strerror(saved));
		errno = saved;
		return (-1);
	}
	if (fchmod(fd, mode) != 0 ||
	    (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) != 0))
		goto fail;
	while (off < (size_t)n) {
		if ((w = write(fd, text + off, (size_t)n - off)) < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += (size_t)w;
	}
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto fail;
	return (0);
fail:
	saved = errno;
	snprintf(err, errlen, "cannot write %s: %s", path, strerror(saved));
	if (fd != -1)
		close(fd);
	unlink(tmp);
	errno = saved;
	return (-1);
}

/* Reads the file in dir, if it passes every check of sampling.h. */
int
sampling_read(const char *dir, struct sampling *s, char *err, size_t errlen)
{
	struct stat	 dsb, sb;
	char		 path[SAMPLING_PATH_MAX], buf[SAMPLING_MAX_BYTES + 1];
	const char	*why;
	ssize_t		 r;
	size_t		 len = 0;
	int		 fd, saved;

	if (snprintf(path, sizeof path, "%s/%s", dir, RUNDIR_SAMPLING) >=
	    (int)sizeof path) {
		snprintf(err, errlen, "%s: %s", dir, strerror(ENAMETOOLONG));
		errno = ENAMETOOLONG;
		return (-1);
	}
	if (stat(dir, &dsb) != 0) {
		saved = errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(saved));
		errno = saved;
		return (-1);
	}
	/* Not through a link, and never waiting on a FIFO. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
	    O_CLOEXEC);
	if (fd == -1) {
		saved = errno;
		snprintf(err, errlen, "%s: %s", path, saved == ELOOP ?
		    "a symbolic link" : strerror(saved));
		errno = saved;
		return (-1);
	}
	if (fstat(fd, &sb) != 0) {
		saved = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(saved));
		goto fail;
	}
	saved = EPERM;
	if (!S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if (sb.st_uid != 0 && sb.st_uid != dsb.st_uid) {
		snprintf(err, errlen, "%s: owned by uid %u, not by root or the "
		    "directory's owner", path, (unsigned)sb.st_uid);
		goto fail;
	}
	if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, errlen, "%s: writable by group or others", path);
		goto fail;
	}
	saved = EINVAL;
	if (sb.st_size > SAMPLING_MAX_BYTES) {
		snprintf(err, errlen, "%s: over %d bytes", path,
		    SAMPLING_MAX_BYTES);
		goto fail;
	}
	while (len < sizeof buf) {
		if ((r = read(fd, buf + len, sizeof buf - len)) < 0) {
			if (errno == EINTR)
				continue;
			saved = errno;
			snprintf(err, errlen, "%s: %s", path, strerror(saved));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (sampling_parse(buf, len, s, &why) != 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		errno = EINVAL;
		return (-1);
	}
	return (0);
fail:
	close(fd);
	errno = saved;
	return (-1);
}
