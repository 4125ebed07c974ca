/*
 * format-folded.c -- Brendan Gregg's folded stacks: one line per stack,
 * "root;...;leaf COUNT", as read by flamegraph.pl, inferno and speedscope.
 *
 * Frame labels are format_frame_label()'s, made safe for the format: ';'
 * (the separator) becomes ':', control characters become spaces.  With
 * root_pid each line starts with "pid N", or "SERVICE pid N" when the
 * service is known, so a fleet profile splits by service first; with
 * root_thread a "thread NAME (tid N)" frame follows.  A part that is not
 * known is "?".  Samples that render to the same line are one line, and
 * lines come heaviest first, then by text, so the output is deterministic.
 * Zero-weight samples say nothing and are left out; an empty stack is
 * "[unknown]", so the totals stay those of the profile.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"

#define FOLDED_LABEL_MAX	1024	/* one frame label, with its NUL */
#define FOLDED_EMPTY_STACK	"[unknown]"
#define FOLDED_LINE_START	256	/* first size of a line buffer */

struct folded_line {
	char		*text;
	size_t		 len;
	uint64_t	 weight;
};

/* A growing line being written. */
struct folded_buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 nframes;
};

/* Appends len bytes to a line; -1 when out of memory. */
static int
folded_buf_add(struct folded_buf *b, const char *s, size_t len)
{
	char	*n;
	size_t	 cap;

	if (b->len + len + 1 > b->cap) {
		cap = b->cap == 0 ? FOLDED_LINE_START : b->cap;
		while (cap < b->len + len + 1)
			cap *= 2;
		if ((n = realloc(b->data, cap)) == NULL)
			return (-1);
		b->data = n;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, len);
	b->len += len;
	b->data[b->len] = '\0';
	return (0);
}

/* Appends one frame, separator first unless it is the root, made safe. */
static int
folded_buf_add_frame(struct folded_buf *b, const char *s, size_t len)
{
	size_t	 start, i;
	char	*c;

	if (b->nframes++ != 0 && folded_buf_add(b, ";", 1) != 0)
		return (-1);
	start = b->len;
	if (folded_buf_add(b, s, len) != 0)
		return (-1);
	for (i = start; i < b->len; i++) {
		c = &b->data[i];
		if (*c == ';')
			*c = ':';
		else if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
	}
	return (0);
}

/* Appends the root frames the options ask for. */
static int
folded_add_roots(const struct profile *p, const struct format_opts *opts,
    const struct profile_sample *s, struct folded_buf *b)
{
	const struct profile_labels	*l = NULL;
	char				 label[FOLDED_LABEL_MAX];
	char				 num[32];
	int				 n;

	if (s->labels < p->nlabels)
		l = &p->labels[s->labels];
	if (opts->root_pid) {
		if (l != NULL && l->pid != 0)
			snprintf(num, sizeof num, "%" PRIu32, l->pid);
		else
			snprintf(num, sizeof num, "?");
		if (l != NULL && l->service[0] != '\0')
			n = snprintf(label, sizeof label, "%s pid %s",
			    l->service, num);
		else
			n = snprintf(label, sizeof label, "pid %s", num);
		if (n < 0)
			return (-1);
		if ((size_t)n >= sizeof label)
			n = sizeof label - 1;
		if (folded_buf_add_frame(b, label, n) != 0)
			return (-1);
	}
	if (opts->root_thread) {
		if (l != NULL && l->tid != 0)
			n = snprintf(label, sizeof label,
			    "thread %s (tid %" PRIu64 ")",
			    l->thread[0] != '\0' ? l->thread : "?", l->tid);
		else
			n = snprintf(label, sizeof label, "thread %s",
			    l != NULL && l->thread[0] != '\0' ? l->thread : "?");
		if (n < 0)
			return (-1);
		if ((size_t)n >= sizeof label)
			n = sizeof label - 1;
		if (folded_buf_add_frame(b, label, n) != 0)
			return (-1);
	}
	return (0);
}

/* Writes the text of a sample's line (without the count) into b. */
static int
folded_render(const struct profile *p, const struct format_opts *opts,
    const struct profile_sample *s, struct folded_buf *b)
{
	char		label[FOLDED_LABEL_MAX];
	size_t		len;
	uint32_t	i;

	b->len = 0;
	b->nframes = 0;
	if (folded_add_roots(p, opts, s, b) != 0)
		return (-1);
	if (s->depth == 0)
		return (folded_buf_add_frame(b, FOLDED_EMPTY_STACK,
		    strlen(FOLDED_EMPTY_STACK)));
	for (i = 0; i < s->depth; i++) {
		len = format_frame_label(p, s->frames[i], label, sizeof label);
		if (folded_buf_add_frame(b, label, len) != 0)
			return (-1);
	}
	return (0);
}

/* Orders lines by text. */
static int
folded_cmp_text(const void *a, const void *b)
{
	const struct folded_line	*x = a, *y = b;

	return (strcmp(x->text, y->text));
}

/* Orders lines heaviest first, then by text. */
static int
folded_cmp_weight(const void *a, const void *b)
{
	const struct folded_line	*x = a, *y = b;

	if (x->weight != y->weight)
		return (x->weight > y->weight ? -1 : 1);
	return (strcmp(x->text, y->text));
}

/* Encodes a profile as folded stacks. */
int
format_folded(const struct profile *p, const struct format_opts *opts,
    struct evbuffer *out)
{
	struct folded_line		*lines = NULL;
	struct folded_buf		 b = { NULL, 0, 0, 0 };
	const struct profile_sample	*s;
	uint64_t			 w;
	size_t				 n = 0, m, i;
	int				 ret = -1;

	if (p->nsamples > SIZE_MAX / sizeof *lines)
		goto fail;
	if (p->nsamples != 0 &&
	    (lines = calloc(p->nsamples, sizeof *lines)) == NULL)
		goto fail;
	for (i = 0; i < p->nsamples; i++) {
		s = &p->samples[i];
		w = opts->weight == FORMAT_WEIGHT_TIME ? s->weight_us :
		    s->count;
		if (w == 0)
			continue;
		if (folded_render(p, opts, s, &b) != 0)
			goto fail;
		if ((lines[n].text = strdup(b.data)) == NULL)
			goto fail;
		lines[n].len = b.len;
		lines[n++].weight = w;
	}

	/* Same text, one line: sort by text and sum the neighbours. */
	if (n != 0)
		qsort(lines, n, sizeof *lines, folded_cmp_text);
	for (i = 0, m = 0; i < n; i++) {
		if (m != 0 && strcmp(lines[m - 1].text, lines[i].text) == 0) {
			w = lines[m - 1].weight + lines[i].weight;
			lines[m - 1].weight = w < lines[i].weight ?
			    UINT64_MAX : w;
			free(lines[i].text);
			lines[i].text = NULL;
		} else if (m++ != i) {
			lines[m - 1] = lines[i];
			lines[i].text = NULL;
		}
	}
	n = m;
	if (n != 0)
		qsort(lines, n, sizeof *lines, folded_cmp_weight);

	for (i = 0; i < n; i++) {
		if (evbuffer_add(out, lines[i].text, lines[i].len) != 0 ||
		    evbuffer_add_printf(out, " %" PRIu64 "\n",
		    lines[i].weight) < 0)
			goto fail;
	}
	ret = 0;

fail:
	for (i = 0; i < n; i++)
		free(lines[i].text);
	free(lines);
	free(b.data);
	return (ret);
}
