/*
 * format-speedscope.c -- speedscope's own file format
 * (https://www.speedscope.app/file-format-schema.json): the frames once in
 * shared.frames, one per profile frame and at the same index, then one
 * "sampled" profile per label set (one per thread, as py-spy gives, which
 * speedscope offers in its profile selector), heaviest first, and one for
 * the samples without labels.  The root_pid and root_thread options are
 * for folded stacks only; here the threads are the profiles.
 *
 * Every string is escaped for JSON and invalid UTF-8 becomes U+FFFD, so
 * the file is valid JSON whatever the names.  Zero-weight samples are left
 * out (speedscope ignores them); an empty profile gives one profile without
 * samples, since speedscope cannot open a file without one.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"

#define SPEEDSCOPE_SCHEMA \
	"https://www.speedscope.app/file-format-schema.json"
#define SPEEDSCOPE_EXPORTER	"profd"
#define SPEEDSCOPE_NAME_MAX	1024	/* a profile's name, with its NUL */
#define SPEEDSCOPE_UNKNOWN	"?"	/* a frame index out of range */

/* The samples of one profile of the file. */
struct speedscope_group {
	uint32_t	labels;		/* index, or p->nlabels for none */
	uint64_t	weight;
	size_t		nsamples;
};

/* Decodes one UTF-8 sequence at s (n bytes left): its length, 0 if bad. */
static size_t
speedscope_utf8_len(const unsigned char *s, size_t n)
{
	uint32_t	c;
	size_t		len, i;

	if (s[0] < 0x80)
		return (1);
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		c = s[0] & 0x07;
	} else
		return (0);
	if (len > n)
		return (0);
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return (0);
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return (0);
	return (len);
}

/* Appends s as a JSON string, quoted, escaped, bad UTF-8 as U+FFFD. */
static int
speedscope_json_string(struct evbuffer *out, const char *s)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 n = strlen(s), i = 0, run, len;
	const char		*esc;
	char			 hex[8];

	if (evbuffer_add(out, "\"", 1) != 0)
		return (-1);
	while (i < n) {
		for (run = i; run < n && u[run] >= 0x20 && u[run] < 0x80 &&
		    u[run] != '"' && u[run] != '\\'; run++)
			/* nothing */;
		if (run > i && evbuffer_add(out, s + i, run - i) != 0)
			return (-1);
		if ((i = run) == n)
			break;
		esc = NULL;
		switch (u[i]) {
		case '"':
			esc = "\\\"";
			break;
		case '\\':
			esc = "\\\\";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		case '\t':
			esc = "\\t";
			break;
		}
		if (esc != NULL) {
			if (evbuffer_add(out, esc, 2) != 0)
				return (-1);
			i++;
		} else if (u[i] < 0x20) {
			snprintf(hex, sizeof hex, "\\u%04x", u[i]);
			if (evbuffer_add(out, hex, 6) != 0)
				return (-1);
			i++;
		} else if ((len = speedscope_utf8_len(u + i, n - i)) != 0) {
			if (evbuffer_add(out, s + i, len) != 0)
				return (-1);
			i += len;
		} else {
			if (evbuffer_add(out, "\\ufffd", 6) != 0)
				return (-1);
			i++;
		}
	}
	return (evbuffer_add(out, "\"", 1));
}

/* The weight of a sample in the unit asked for. */
static uint64_t
speedscope_weight(const struct format_opts *opts,
    const struct profile_sample *s)
{
	return (opts->weight == FORMAT_WEIGHT_TIME ? s->weight_us : s->count);
}

/* The group index of a sample: its label set, or nlabels for none. */
static uint32_t
speedscope_group_of(const struct profile *p, const struct profile_sample *s)
{
	return (s->labels < p->nlabels ? s->labels : (uint32_t)p->nlabels);
}

/* Orders groups heaviest first, then by label set. */
static int
speedscope_cmp_group(const void *a, const void *b)
{
	const struct speedscope_group	*x = a, *y = b;

	if (x->weight != y->weight)
		return (x->weight > y->weight ? -1 : 1);
	if (x->labels != y->labels)
		return (x->labels < y->labels ? -1 : 1);
	return (0);
}

/* Appends to the string in buf at *off, cut to fit. */
static void __attribute__((format(printf, 4, 5)))
speedscope_cat(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (*off >= len - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off += (size_t)n < len - *off ? (size_t)n : len - 1 - *off;
}

/*
 * Writes the name of a group's profile: "TITLE: THREAD (tid T, pid P,
 * service S, host H)", each part only when known.
 */
static void
speedscope_name(const struct profile *p, uint32_t labels, char *buf,
    size_t len)
{
	const struct profile_labels	*l;
	const char			*title = p->title, *sep = " (";
	size_t				 off = 0;

	buf[0] = '\0';
	if (labels >= p->nlabels) {
		speedscope_cat(buf, len, &off, "%s", title[0] != '\0' ? title :
		    "profile");
		return;
	}
	l = &p->labels[labels];
	speedscope_cat(buf, len, &off, "%s%s%s", title, title[0] != '\0' ?
	    ": " : "", l->thread[0] != '\0' ? l->thread : "thread");
	if (l->tid != 0) {
		speedscope_cat(buf, len, &off, "%stid %" PRIu64, sep, l->tid);
		sep = ", ";
	}
	if (l->pid != 0) {
		speedscope_cat(buf, len, &off, "%spid %" PRIu32, sep, l->pid);
		sep = ", ";
	}
	if (l->service[0] != '\0') {
		speedscope_cat(buf, len, &off, "%sservice %s", sep, l->service);
		sep = ", ";
	}
	if (l->host[0] != '\0') {
		speedscope_cat(buf, len, &off, "%shost %s", sep, l->host);
		sep = ", ";
	}
	if (sep[0] == ',')
		speedscope_cat(buf, len, &off, ")");
}

/* Appends shared.frames: one per profile frame, then SPEEDSCOPE_UNKNOWN. */
static int
speedscope_frames(const struct profile *p, struct evbuffer *out)
{
	const struct profile_func	*fn;
	const struct profile_frame	*fr;
	size_t				 i;

	if (evbuffer_add_printf(out, "\"shared\":{\"frames\":[") < 0)
		return (-1);
	for (i = 0; i < p->nframes; i++) {
		fr = &p->frames[i];
		fn = fr->func < p->nfuncs ? &p->funcs[fr->func] : NULL;
		if (evbuffer_add_printf(out, "%s{\"name\":", i != 0 ? "," : "")
		    < 0 || speedscope_json_string(out, fn != NULL ? fn->name :
		    SPEEDSCOPE_UNKNOWN) != 0)
			return (-1);
		if (fn != NULL && fn->file[0] != '\0' &&
		    (evbuffer_add_printf(out, ",\"file\":") < 0 ||
		    speedscope_json_string(out, fn->file) != 0))
			return (-1);
		if (fr->line != 0 && evbuffer_add_printf(out,
		    ",\"line\":%" PRIu32, fr->line) < 0)
			return (-1);
		if (evbuffer_add(out, "}", 1) != 0)
			return (-1);
	}
	if (evbuffer_add_printf(out, "%s{\"name\":\"%s\"}]},", i != 0 ? "," :
	    "", SPEEDSCOPE_UNKNOWN) < 0)
		return (-1);
	return (0);
}

/* Appends one sampled profile: the samples order[0..n), all of one group. */
static int
speedscope_profile(const struct profile *p, const struct format_opts *opts,
    const struct speedscope_group *g, const uint32_t *order, size_t n,
    struct evbuffer *out)
{
	const struct profile_sample	*s;
	char				 name[SPEEDSCOPE_NAME_MAX];
	uint32_t			 f;
	size_t				 i, j;

	speedscope_name(p, g->labels, name, sizeof name);
	if (evbuffer_add_printf(out, "{\"type\":\"sampled\",\"name\":") < 0 ||
	    speedscope_json_string(out, name) != 0 ||
	    evbuffer_add_printf(out, ",\"unit\":\"%s\",\"startValue\":0,"
	    "\"endValue\":%" PRIu64 ",\"samples\":[",
	    opts->weight == FORMAT_WEIGHT_TIME ? "microseconds" : "none",
	    g->weight) < 0)
		return (-1);
	for (i = 0; i < n; i++) {
		s = &p->samples[order[i]];
		if (evbuffer_add_printf(out, "%s[", i != 0 ? "," : "") < 0)
			return (-1);
		for (j = 0; j < s->depth; j++) {
			f = s->frames[j];
			if (f >= p->nframes)
				f = (uint32_t)p->nframes;
			if (evbuffer_add_printf(out, "%s%" PRIu32,
			    j != 0 ? "," : "", f) < 0)
				return (-1);
		}
		if (evbuffer_add(out, "]", 1) != 0)
			return (-1);
	}
	if (evbuffer_add_printf(out, "],\"weights\":[") < 0)
		return (-1);
	for (i = 0; i < n; i++) {
		if (evbuffer_add_printf(out, "%s%" PRIu64, i != 0 ? "," : "",
		    speedscope_weight(opts, &p->samples[order[i]])) < 0)
			return (-1);
	}
	return (evbuffer_add(out, "]}", 2));
}

/* Encodes a profile as a speedscope file. */
int
format_speedscope(const struct profile *p, const struct format_opts *opts,
    struct evbuffer *out)
{
	struct speedscope_group		*groups = NULL, empty;
	uint32_t			*rank = NULL, *order = NULL;
	size_t				*next = NULL;
	const struct profile_sample	*s;
	size_t				 ngroups = p->nlabels + 1, i, used, at;
	uint64_t			 w;
	uint32_t			 gi;
	int				 ret = -1;
	char				 name[SPEEDSCOPE_NAME_MAX];

	/* The file's name, as the app shows it: the title, then the
	 * warning, if any. */
	snprintf(name, sizeof name, "%s%s%s%s", p->title[0] != '\0' ?
	    p->title : "profile", p->warning[0] != '\0' ? " (" : "",
	    p->warning, p->warning[0] != '\0' ? ")" : "");
	if (p->nlabels >= UINT32_MAX ||
	    (groups = calloc(ngroups, sizeof *groups)) == NULL ||
	    (rank = calloc(ngroups, sizeof *rank)) == NULL ||
	    (next = calloc(ngroups, sizeof *next)) == NULL ||
	    (order = calloc(p->nsamples + 1, sizeof *order)) == NULL)
		goto fail;
	for (i = 0; i < ngroups; i++)
		groups[i].labels = (uint32_t)i;
	for (i = 0; i < p->nsamples; i++) {
		s = &p->samples[i];
		if ((w = speedscope_weight(opts, s)) == 0)
			continue;
		gi = speedscope_group_of(p, s);
		groups[gi].weight += w;
		groups[gi].nsamples++;
	}

	/*
	 * Heaviest group first; then each sample goes to its group's slice
	 * of order, in the profile's order, by a counting sort.
	 */
	qsort(groups, ngroups, sizeof *groups, speedscope_cmp_group);
	for (used = 0, at = 0; used < ngroups && groups[used].nsamples != 0;
	    used++) {
		rank[groups[used].labels] = (uint32_t)used;
		next[used] = at;
		at += groups[used].nsamples;
	}
	for (i = 0; i < p->nsamples; i++) {
		s = &p->samples[i];
		if (speedscope_weight(opts, s) == 0)
			continue;
		gi = rank[speedscope_group_of(p, s)];
		order[next[gi]++] = (uint32_t)i;
	}

	if (evbuffer_add_printf(out, "{\"$schema\":\"%s\",",
	    SPEEDSCOPE_SCHEMA) < 0 ||
	    evbuffer_add_printf(out, "\"exporter\":\"%s\",\"name\":",
	    SPEEDSCOPE_EXPORTER) < 0 ||
	    speedscope_json_string(out, name) != 0 ||
	    evbuffer_add_printf(out, ",\"activeProfileIndex\":0,") < 0 ||
	    speedscope_frames(p, out) != 0 ||
	    evbuffer_add_printf(out, "\"profiles\":[") < 0)
		goto fail;
	if (used == 0) {
		empty.labels = (uint32_t)p->nlabels;
		empty.weight = 0;
		empty.nsamples = 0;
		if (speedscope_profile(p, opts, &empty, order, 0, out) != 0)
			goto fail;
	}
	for (i = 0, at = 0; i < used; i++) {
		if ((i != 0 && evbuffer_add(out, ",", 1) != 0) ||
		    speedscope_profile(p, opts, &groups[i], order + at,
		    groups[i].nsamples, out) != 0)
			goto fail;
		at += groups[i].nsamples;
	}
	if (evbuffer_add_printf(out, "]}\n") < 0)
		goto fail;
	ret = 0;

fail:
	free(order);
	free(next);
	free(rank);
	free(groups);
	return (ret);
}
