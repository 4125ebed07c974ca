/*
 * profile.c -- a query's result (see profile.h): growable arrays and an
 * arena for the strings, freed all at once.
 */

#include <stdlib.h>
#include <string.h>

#include "profile.h"

#define PROFILE_CHUNK_SIZE	(64u << 10)	/* arena chunk */

struct profile_chunk {
	struct profile_chunk	*next;
	size_t			 used;
	size_t			 size;
	char			 data[];
};

/* Creates an empty profile. */
struct profile *
profile_new(void)
{
	struct profile	*p;

	if ((p = calloc(1, sizeof *p)) == NULL)
		return (NULL);
	p->title = "";
	p->warning = "";
	return (p);
}

/* Frees a profile and everything it owns. */
void
profile_free(struct profile *p)
{
	struct profile_chunk	*c, *c1;

	if (p == NULL)
		return;
	for (c = p->arena; c != NULL; c = c1) {
		c1 = c->next;
		free(c);
	}
	free(p->funcs);
	free(p->frames);
	free(p->labels);
	free(p->samples);
	free(p);
}

/* Allocates n bytes from the arena, aligned for any scalar. */
static void *
profile_alloc(struct profile *p, size_t n)
{
	struct profile_chunk	*c = p->arena;
	size_t			 size;
	void			*ret;

	n = (n + 7) & ~(size_t)7;
	if (c == NULL || c->size - c->used < n) {
		size = n > PROFILE_CHUNK_SIZE ? n : PROFILE_CHUNK_SIZE;
		if ((c = malloc(sizeof *c + size)) == NULL)
			return (NULL);
		c->used = 0;
		c->size = size;
		c->next = p->arena;
		p->arena = c;
	}
	ret = c->data + c->used;
	c->used += n;
	return (ret);
}

/* Copies a string into the arena. */
const char *
profile_strdup(struct profile *p, const char *s, size_t len)
{
	char	*d;

	if (len == 0)
		return ("");
	if ((d = profile_alloc(p, len + 1)) == NULL)
		return (NULL);
	memcpy(d, s, len);
	d[len] = '\0';
	return (d);
}

/* Sets the title. */
int
profile_set_title(struct profile *p, const char *title)
{
	const char	*t = profile_strdup(p, title, strlen(title));

	if (t == NULL)
		return (-1);
	p->title = t;
	return (0);
}

/* Sets the warning. */
int
profile_set_warning(struct profile *p, const char *warning)
{
	const char	*w = profile_strdup(p, warning, strlen(warning));

	if (w == NULL)
		return (-1);
	p->warning = w;
	return (0);
}

/* Makes room for one more element of an array; -1 when out of memory. */
static int
profile_grow(void **items, size_t *cap, size_t len, size_t size)
{
	void	*n;
	size_t	 c;

	if (len < *cap)
		return (0);
	c = *cap == 0 ? 64 : *cap * 2;
	if ((n = realloc(*items, c * size)) == NULL)
		return (-1);
	*items = n;
	*cap = c;
	return (0);
}

/* Adds a function. */
uint32_t
profile_add_func(struct profile *p, const char *name, size_t name_len,
    const char *file, size_t file_len, uint32_t line)
{
	struct profile_func	*f;

	if (p->nfuncs >= UINT32_MAX - 1 || profile_grow((void **)&p->funcs,
	    &p->funcs_cap, p->nfuncs, sizeof *p->funcs) != 0)
		return (UINT32_MAX);
	f = &p->funcs[p->nfuncs];
	if (name_len == 0) {
		name = "?";
		name_len = 1;
	}
	if ((f->name = profile_strdup(p, name, name_len)) == NULL ||
	    (f->file = profile_strdup(p, file, file_len)) == NULL)
		return (UINT32_MAX);
	f->line = line;
	return ((uint32_t)p->nfuncs++);
}

/* Adds a frame. */
uint32_t
profile_add_frame(struct profile *p, uint32_t func, uint32_t line)
{
	if (func >= p->nfuncs || p->nframes >= UINT32_MAX - 1 ||
	    profile_grow((void **)&p->frames, &p->frames_cap, p->nframes,
	    sizeof *p->frames) != 0)
		return (UINT32_MAX);
	p->frames[p->nframes].func = func;
	p->frames[p->nframes].line = line;
	return ((uint32_t)p->nframes++);
}

/* Adds a label set. */
uint32_t
profile_add_labels(struct profile *p, const struct profile_labels *l)
{
	struct profile_labels	*d;

	if (p->nlabels >= UINT32_MAX - 1 || profile_grow((void **)&p->labels,
	    &p->labels_cap, p->nlabels, sizeof *p->labels) != 0)
		return (UINT32_MAX);
	d = &p->labels[p->nlabels];
	*d = *l;
	if ((d->thread = profile_strdup(p, l->thread != NULL ? l->thread : "",
	    l->thread != NULL ? strlen(l->thread) : 0)) == NULL ||
	    (d->service = profile_strdup(p, l->service != NULL ? l->service :
	    "", l->service != NULL ? strlen(l->service) : 0)) == NULL ||
	    (d->host = profile_strdup(p, l->host != NULL ? l->host : "",
	    l->host != NULL ? strlen(l->host) : 0)) == NULL)
		return (UINT32_MAX);
	return ((uint32_t)p->nlabels++);
}

/* Adds a sample: frames root first. */
uint32_t
profile_add_sample(struct profile *p, const uint32_t *frames, uint32_t depth,
    uint32_t labels, uint64_t count, uint64_t weight_us)
{
	struct profile_sample	*s;
	uint32_t		*f = NULL;

	if (p->nsamples >= UINT32_MAX - 1 || profile_grow((void **)&p->samples,
	    &p->samples_cap, p->nsamples, sizeof *p->samples) != 0)
		return (UINT32_MAX);
	if (depth > 0) {
		if ((f = profile_alloc(p, depth * sizeof *f)) == NULL)
			return (UINT32_MAX);
		memcpy(f, frames, depth * sizeof *f);
	}
	s = &p->samples[p->nsamples];
	s->frames = f;
	s->depth = depth;
	s->labels = labels;
	s->count = count;
	s->weight_us = weight_us;
	p->count += count;
	p->weight_us += weight_us;
	return ((uint32_t)p->nsamples++);
}

/* Orders samples by count descending. */
static int
profile_cmp_count(const void *a, const void *b)
{
	const struct profile_sample *x = a, *y = b;

	if (x->count != y->count)
		return (x->count > y->count ? -1 : 1);
	return (0);
}

/* Keeps the n heaviest samples; the totals stay those of the whole. */
void
profile_keep_top(struct profile *p, size_t n)
{
	if (n == 0 || n >= p->nsamples)
		return;
	qsort(p->samples, p->nsamples, sizeof *p->samples, profile_cmp_count);
	p->nsamples = n;
}
