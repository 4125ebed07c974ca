/*
 * store-defs.c -- the store's interned definitions (see store.h): strings,
 * functions, frames, stacks, process instances and threads, their
 * lookups, the sweep that frees what nothing uses, and loading them back.
 *
 * One vector per kind from id - 1 to the item (a pointer for
 * variable-sized items, the item itself for small fixed ones; a free item
 * is NULL / has a zero first field), an open-addressing index from a seeded
 * hash of the content to the id, and a stack of freed ids for reuse.  The
 * index is rebuilt after a sweep instead of supporting deletions.
 */

#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "store-private.h"

/* Hashes bytes with the store's seed. */
uint32_t
store_hash_bytes(const struct store *st, const void *p, size_t len)
{
	const unsigned char	*s = p;
	uint64_t		 h = st->seed ^ (len * 0x9e3779b97f4a7c15ull);
	uint64_t		 w;

	while (len >= 8) {
		memcpy(&w, s, 8);
		h = store_mix(h ^ w) * 0x9e3779b97f4a7c15ull;
		s += 8;
		len -= 8;
	}
	w = 0;
	memcpy(&w, s, len);
	return ((uint32_t)store_mix(h ^ w ^ 0x5bd1e995));
}

/* Hands out the id after the highest one; 0 when none is left. */
uint32_t
store_defs_grow(struct store *st, struct store_defs *d)
{
	uint32_t	cap;
	void		*items;

	if (d->len >= STORE_ID_MAX)
		return (0);
	if (d->len == d->cap) {
		cap = d->cap == 0 ? 64 : d->cap * 2;
		if (store_charge(st, (size_t)(cap - d->cap) * d->item_size,
		    1) != 0)
			return (0);
		if ((items = realloc(d->items, (size_t)cap * d->item_size)) ==
		    NULL) {
			store_uncharge(st, (size_t)(cap - d->cap) *
			    d->item_size, 1);
			return (0);
		}
		memset((char *)items + (size_t)d->cap * d->item_size, 0,
		    (size_t)(cap - d->cap) * d->item_size);
		d->items = items;
		d->cap = cap;
	}
	d->live++;
	return (++d->len);
}

/* Picks an id for a new item (a freed one first, unless the ids are held);
 * 0 when none is left. */
uint32_t
store_defs_alloc(struct store *st, struct store_defs *d)
{
	if (d->nfree > 0 && st->id_hold == 0) {
		d->live++;
		return (d->free_ids[--d->nfree]);
	}
	return (store_defs_grow(st, d));
}

/* Gives an id back (its slot must be cleared by the caller). */
int
store_defs_release(struct store *st, struct store_defs *d, uint32_t id)
{
	uint32_t	*v, cap;

	if (d->nfree == d->free_cap) {
		cap = d->free_cap == 0 ? 64 : d->free_cap * 2;
		if ((v = realloc(d->free_ids, cap * sizeof *v)) == NULL)
			return (-1);	/* the id is simply never reused */
		d->free_ids = v;
		d->free_cap = cap;
	}
	d->free_ids[d->nfree++] = id;
	d->live--;
	return (0);
}

/* Grows an index to hold one more id at a load of at most 3/4. */
int
store_index_reserve(struct store *st, struct store_index *ix)
{
	struct store_slot	*slots, *old = ix->slots;
	uint32_t		 n, i, j, oldn = ix->slots ? ix->mask + 1 : 0;

	if (ix->slots != NULL && (ix->used + 1) * 4 <= (ix->mask + 1) * 3)
		return (0);
	n = oldn == 0 ? STORE_INDEX_MIN : oldn * 2;
	if (store_charge(st, (size_t)n * sizeof *slots, 1) != 0)
		return (-1);
	if ((slots = calloc(n, sizeof *slots)) == NULL) {
		store_uncharge(st, (size_t)n * sizeof *slots, 1);
		return (-1);
	}
	for (i = 0; i < oldn; i++) {
		if (old[i].id == 0)
			continue;
		for (j = old[i].hash & (n - 1); slots[j].id != 0;
		    j = (j + 1) & (n - 1))
			;
		slots[j] = old[i];
	}
	if (old != NULL)
		store_uncharge(st, (size_t)oldn * sizeof *old, 1);
	free(old);
	ix->slots = slots;
	ix->mask = n - 1;
	return (0);
}

/* Adds an id under a hash (room reserved). */
void
store_index_add(struct store_index *ix, uint32_t id, uint32_t hash)
{
	uint32_t	j;

	for (j = hash & ix->mask; ix->slots[j].id != 0; j = (j + 1) & ix->mask)
		;
	ix->slots[j].id = id;
	ix->slots[j].hash = hash;
	ix->used++;
}

/* Empties an index, keeping its slots. */
void
store_index_clear(struct store_index *ix)
{
	if (ix->slots != NULL)
		memset(ix->slots, 0, ((size_t)ix->mask + 1) *
		    sizeof *ix->slots);
	ix->used = 0;
}

/* Interns a string. */
uint32_t
store_string(struct store *st, const char *str, size_t len)
{
	struct store_defs	*d = &st->defs[STORE_STRING];
	struct store_string	*s;
	uint32_t		 h, j, id;

	if (len > PROTO_MAX_STRING)
		return (0);
	h = store_hash_bytes(st, str, len);
	if (d->index.slots != NULL) {
		for (j = h & d->index.mask; d->index.slots[j].id != 0;
		    j = (j + 1) & d->index.mask) {
			if (d->index.slots[j].hash != h)
				continue;
			s = store_defs_ptr(d, d->index.slots[j].id);
			if (s->len == len && memcmp(s->data, str, len) == 0)
				return (d->index.slots[j].id);
		}
	}
	if (store_index_reserve(st, &d->index) != 0)
		goto fail;
	if (store_charge(st, sizeof *s + len + 1, 1) != 0)
		goto fail;
	if ((s = malloc(sizeof *s + len + 1)) == NULL) {
		store_uncharge(st, sizeof *s + len + 1, 1);
		goto fail;
	}
	if ((id = store_defs_alloc(st, d)) == 0) {
		store_uncharge(st, sizeof *s + len + 1, 1);
		free(s);
		goto fail;
	}
	s->len = (uint32_t)len;
	s->hash = h;
	memcpy(s->data, str, len);
	s->data[len] = '\0';
	*(struct store_string **)store_defs_slot(d, id) = s;
	store_index_add(&d->index, id, h);
	if (st->hooks.def_put != NULL)
		st->hooks.def_put(st->hooks.arg, STORE_STRING, id);
	return (id);
fail:
	st->counts.refused++;
	return (0);
}

/* Interns a function. */
uint32_t
store_func(struct store *st, uint32_t name, uint32_t file, uint32_t line)
{
	struct store_defs	*d = &st->defs[STORE_FUNC];
	struct store_func	*f;
	uint32_t		 h, j, id;

	if (!store_defs_live(st, STORE_STRING, name) ||
	    !store_defs_live(st, STORE_STRING, file))
		return (0);
	h = store_hash4(st, name, file, line, 1);
	if (d->index.slots != NULL) {
		for (j = h & d->index.mask; d->index.slots[j].id != 0;
		    j = (j + 1) & d->index.mask) {
			if (d->index.slots[j].hash != h)
				continue;
			f = store_defs_slot(d, d->index.slots[j].id);
			if (f->name == name && f->file == file &&
			    f->line == line)
				return (d->index.slots[j].id);
		}
	}
	if (store_index_reserve(st, &d->index) != 0 ||
	    (id = store_defs_alloc(st, d)) == 0) {
		st->counts.refused++;
		return (0);
	}
	f = store_defs_slot(d, id);
	f->name = name;
	f->file = file;
	f->line = line;
	store_index_add(&d->index, id, h);
	if (st->hooks.def_put != NULL)
		st->hooks.def_put(st->hooks.arg, STORE_FUNC, id);
	return (id);
}

/* Interns a frame. */
uint32_t
store_frame(struct store *st, uint32_t func, uint32_t line)
{
	struct store_defs	*d = &st->defs[STORE_FRAME];
	struct store_frame	*fr;
	uint32_t		 h, j, id;

	if (!store_defs_live(st, STORE_FUNC, func))
		return (0);
	h = store_hash4(st, func, line, 2, 2);
	if (d->index.slots != NULL) {
		for (j = h & d->index.mask; d->index.slots[j].id != 0;
		    j = (j + 1) & d->index.mask) {
			if (d->index.slots[j].hash != h)
				continue;
			fr = store_defs_slot(d, d->index.slots[j].id);
			if (fr->func == func && fr->line == line)
				return (d->index.slots[j].id);
		}
	}
	if (store_index_reserve(st, &d->index) != 0 ||
	    (id = store_defs_alloc(st, d)) == 0) {
		st->counts.refused++;
		return (0);
	}
	fr = store_defs_slot(d, id);
	fr->func = func;
	fr->line = line;
	store_index_add(&d->index, id, h);
	if (st->hooks.def_put != NULL)
		st->hooks.def_put(st->hooks.arg, STORE_FRAME, id);
	return (id);
}

/* Interns a stack of frame ids, leaf first, given its full key. */
static uint32_t
store_stack_key(struct store *st, const uint32_t *key, uint32_t n)
{
	struct store_defs	*d = &st->defs[STORE_STACK];
	struct store_stack	*sk;
	size_t			 keylen = n * sizeof key[0];
	uint32_t		 h, j, id;

	h = store_hash_bytes(st, key, keylen);
	if (d->index.slots != NULL) {
		for (j = h & d->index.mask; d->index.slots[j].id != 0;
		    j = (j + 1) & d->index.mask) {
			if (d->index.slots[j].hash != h)
				continue;
			sk = store_defs_ptr(d, d->index.slots[j].id);
			if (sk->depth == n &&
			    memcmp(sk->frames, key, keylen) == 0)
				return (d->index.slots[j].id);
		}
	}
	if (store_index_reserve(st, &d->index) != 0)
		goto fail;
	if (store_charge(st, sizeof *sk + keylen, 1) != 0)
		goto fail;
	if ((sk = malloc(sizeof *sk + keylen)) == NULL) {
		store_uncharge(st, sizeof *sk + keylen, 1);
		goto fail;
	}
	if ((id = store_defs_alloc(st, d)) == 0) {
		store_uncharge(st, sizeof *sk + keylen, 1);
		free(sk);
		goto fail;
	}
	sk->depth = n;
	sk->hash = h;
	memcpy(sk->frames, key, keylen);
	*(struct store_stack **)store_defs_slot(d, id) = sk;
	store_index_add(&d->index, id, h);
	if (st->hooks.def_put != NULL)
		st->hooks.def_put(st->hooks.arg, STORE_STACK, id);
	return (id);
fail:
	st->counts.refused++;
	return (0);
}

/* Interns a stack: frames leaf first. */
uint32_t
store_stack(struct store *st, const uint32_t *frames, uint32_t depth,
    int truncated)
{
	uint32_t	key[PROTO_MAX_DEPTH + 1], i, n;

	if (depth > PROTO_MAX_DEPTH)
		return (0);
	for (i = 0; i < depth; i++) {
		if (!store_defs_live(st, STORE_FRAME, frames[i]))
			return (0);
		key[i] = frames[i];
	}
	n = depth;
	if (truncated) {
		if (st->truncated_frame == 0 ||
		    !store_defs_live(st, STORE_FRAME, st->truncated_frame))
			return (0);
		key[n++] = st->truncated_frame;
	}
	return (store_stack_key(st, key, n));
}

/* Copies a string of known length into a new NUL-terminated one. */
static char *
store_strndup(const char *s, size_t len)
{
	char	*d;

	if (s == NULL)
		len = 0;
	if ((d = malloc(len + 1)) == NULL)
		return (NULL);
	if (len > 0)
		memcpy(d, s, len);
	d[len] = '\0';
	return (d);
}

/* The bytes an instance holds. */
static size_t
store_instance_size(const struct store_instance *in)
{
	size_t		n = sizeof *in + STORE_MALLOC_OVERHEAD;
	uint32_t	i;

	n += strlen(in->host) + strlen(in->service) + strlen(in->python) +
	    strlen(in->reader) + 4 + 4 * STORE_MALLOC_OVERHEAD;
	n += (size_t)in->argc * sizeof *in->argv + STORE_MALLOC_OVERHEAD;
	for (i = 0; i < in->argc; i++)
		n += strlen(in->argv[i]) + 1 + STORE_MALLOC_OVERHEAD;
	return (n);
}

/* Frees an instance record. */
void
store_instance_free(struct store_instance *in)
{
	uint32_t	i;

	if (in == NULL)
		return;
	free(in->host);
	free(in->service);
	free(in->python);
	free(in->reader);
	for (i = 0; i < in->argc; i++)
		free(in->argv[i]);
	free(in->argv);
	free(in);
}

/* Hashes an instance's identity. */
static uint32_t
store_instance_hash(const struct store *st, const char *host, size_t len,
    uint32_t pid, uint64_t start_ns)
{
	return (store_hash4(st, pid, start_ns, store_hash_bytes(st, host, len),
	    3));
}

/* Sets the descriptive fields of an instance from a hello's info. */
static int
store_instance_fill(struct store_instance *in,
    const struct store_instance_info *info)
{
	uint32_t	i;

	in->pid = info->pid;
	in->ppid = info->ppid;
	in->start_ns = info->start_ns;
	if ((in->host = store_strndup(info->host, info->host_len)) == NULL ||
	    (in->service = store_strndup(info->service,
	    info->service_len)) == NULL ||
	    (in->python = store_strndup(info->python,
	    info->python_len)) == NULL ||
	    (in->reader = store_strndup(info->reader,
	    info->reader_len)) == NULL)
		return (-1);
	if (info->argc > 0) {
		if ((in->argv = calloc(info->argc, sizeof *in->argv)) == NULL)
			return (-1);
		for (i = 0; i < info->argc; i++) {
			in->argv[i] = store_strndup(info->argv[i],
			    strlen(info->argv[i]));
			if (in->argv[i] == NULL)
				return (-1);
			in->argc = i + 1;
		}
	}
	return (0);
}

/* Finds or creates the instance of a hello. */
uint32_t
store_instance_attach(struct store *st, const struct store_instance_info *info,
    uint64_t now_ns)
{
	struct store_defs	*d = &st->defs[STORE_INSTANCE];
	struct store_instance	*in;
	size_t			 charged;
	uint32_t		 h, j, id;

	h = store_instance_hash(st, info->host ? info->host : "",
	    info->host ? info->host_len : 0, info->pid, info->start_ns);
	if (d->index.slots != NULL) {
		for (j = h & d->index.mask; d->index.slots[j].id != 0;
		    j = (j + 1) & d->index.mask) {
			if (d->index.slots[j].hash != h)
				continue;
			in = store_defs_ptr(d, d->index.slots[j].id);
			if (in->pid == info->pid &&
			    in->start_ns == info->start_ns &&
			    strlen(in->host) == info->host_len &&
			    memcmp(in->host, info->host, info->host_len) == 0) {
				in->attached++;
				in->end_ns = 0;
				in->dirty = 1;
				return (in->id);
			}
		}
	}
	if (store_index_reserve(st, &d->index) != 0)
		goto fail;
	if ((in = calloc(1, sizeof *in)) == NULL)
		goto fail;
	if (store_instance_fill(in, info) != 0) {
		store_instance_free(in);
		goto fail;
	}
	charged = store_instance_size(in) - STORE_MALLOC_OVERHEAD;
	if (store_charge(st, charged, 1) != 0) {
		store_instance_free(in);
		goto fail;
	}
	if ((id = store_defs_alloc(st, d)) == 0) {
		store_uncharge(st, charged, 1);
		store_instance_free(in);
		goto fail;
	}
	in->id = id;
	in->attach_ns = now_ns;
	in->attached = 1;
	in->dirty = 1;
	*(struct store_instance **)store_defs_slot(d, id) = in;
	store_index_add(&d->index, id, h);
	if (st->hooks.def_put != NULL)
		st->hooks.def_put(st->hooks.arg, STORE_INSTANCE, id);
	return (id);
fail:
	st->counts.refused++;
	return (0);
}

/* Marks an instance detached. */
void
store_instance_detach(struct store *st, uint32_t id, uint64_t now_ns)
{
	struct store_instance	*in;

	if ((in = store_defs_ptr(&st->defs[STORE_INSTANCE], id)) == NULL)
		return;
	/* A reconnect may attach again before the old link is freed. */
	if (in->attached > 0 && --in->attached > 0)
		return;
	in->end_ns = now_ns;
	in->dirty = 1;
}

/* Records the agent's own count of dropped samples. */
void
store_instance_set_dropped(struct store *st, uint32_t id, uint64_t dropped)
{
	struct store_instance	*in;

	if ((in = store_defs_ptr(&st->defs[STORE_INSTANCE], id)) == NULL ||
	    in->dropped == dropped)
		return;
	in->dropped = dropped;
	in->dirty = 1;
}

/* Records the newest batch number stored of an instance. */
void
store_instance_set_seq(struct store *st, uint32_t id, uint64_t seq,
    int durable)
{
	struct store_instance	*in;

	if ((in = store_defs_ptr(&st->defs[STORE_INSTANCE], id)) == NULL ||
	    in->seq == seq)
		return;
	in->seq = seq;
	if (durable)
		in->seq_durable = seq;
	else
		in->dirty = 1;
}

/* Interns a thread of an instance. */
uint32_t
store_thread(struct store *st, uint32_t instance, uint64_t tid, uint32_t name)
{
	struct store_defs	*d = &st->defs[STORE_THREAD];
	struct store_thread	*t;
	uint32_t		 h, j, id;

	if (store_defs_ptr(&st->defs[STORE_INSTANCE], instance) == NULL ||
	    !store_defs_live(st, STORE_STRING, name))
		return (0);
	h = store_hash4(st, instance, tid, name, 4);
	if (d->index.slots != NULL) {
		for (j = h & d->index.mask; d->index.slots[j].id != 0;
		    j = (j + 1) & d->index.mask) {
			if (d->index.slots[j].hash != h)
				continue;
			t = store_defs_slot(d, d->index.slots[j].id);
			if (t->instance == instance && t->tid == tid &&
			    t->name == name)
				return (d->index.slots[j].id);
		}
	}
	if (store_index_reserve(st, &d->index) != 0 ||
	    (id = store_defs_alloc(st, d)) == 0) {
		st->counts.refused++;
		return (0);
	}
	t = store_defs_slot(d, id);
	t->id = id;
	t->instance = instance;
	t->tid = tid;
	t->name = name;
	store_index_add(&d->index, id, h);
	if (st->hooks.def_put != NULL)
		st->hooks.def_put(st->hooks.arg, STORE_THREAD, id);
	return (id);
}

/* Marks an id and what it refers to. */
void
store_mark(struct store *st, enum store_kind k, uint32_t id)
{
	struct store_defs	*d = &st->defs[k];
	struct store_stack	*sk;
	struct store_func	*f;
	struct store_frame	*fr;
	struct store_thread	*t;
	uint32_t		 i;

	if (!st->sweeping || id == 0 || id > d->len || d->marks == NULL ||
	    d->marks[id - 1])
		return;
	if (!store_defs_live(st, k, id))
		return;
	d->marks[id - 1] = 1;
	switch (k) {
	case STORE_FUNC:
		f = store_defs_slot(d, id);
		store_mark(st, STORE_STRING, f->name);
		store_mark(st, STORE_STRING, f->file);
		break;
	case STORE_FRAME:
		fr = store_defs_slot(d, id);
		store_mark(st, STORE_FUNC, fr->func);
		break;
	case STORE_STACK:
		sk = store_defs_ptr(d, id);
		for (i = 0; i < sk->depth; i++)
			store_mark(st, STORE_FRAME, sk->frames[i]);
		break;
	case STORE_THREAD:
		t = store_defs_slot(d, id);
		store_mark(st, STORE_STRING, t->name);
		store_mark(st, STORE_INSTANCE, t->instance);
		break;
	default:
		break;
	}
}

/* Marks what a bucket names. */
static void
store_mark_bucket(struct store *st, const struct store_bucket *b)
{
	size_t	i;

	for (i = 0; i < b->cap; i++) {
		if (b->entries[i].count == 0)
			continue;
		store_mark(st, STORE_THREAD, b->entries[i].thread);
		store_mark(st, STORE_STACK, b->entries[i].stack);
	}
	for (i = 0; i < b->ntallies; i++)
		store_mark(st, STORE_INSTANCE, b->tallies[i].instance);
}

/* Whether an id is marked. */
int
store_marked(const struct store *st, enum store_kind k, uint32_t id)
{
	const struct store_defs	*d = &st->defs[k];

	if (!st->sweeping || id == 0 || id > d->len || d->marks == NULL)
		return (1);
	return (d->marks[id - 1]);
}

/* An instance that left, by when. */
struct store_gone {
	uint64_t	end_ns;
	uint32_t	id;
};

/* Newest first. */
static int
store_gone_cmp(const void *a, const void *b)
{
	const struct store_gone	*x = a, *y = b;

	return (x->end_ns < y->end_ns ? 1 : x->end_ns > y->end_ns ? -1 : 0);
}

/*
 * Marks the attached instances, and of those that left within the
 * retention and that no sample names (not marked yet), the max_gone that
 * left last: a storm of short-lived processes must not fill the store with
 * records that evict samples.  Short of memory to choose, all are kept.
 */
static void
store_sweep_gone(struct store *st, uint64_t cut)
{
	struct store_defs	*d = &st->defs[STORE_INSTANCE];
	struct store_instance	*in;
	struct store_gone	*g;
	size_t			 n = 0, i;

	g = malloc(((size_t)d->len + 1) * sizeof *g);
	for (i = 1; i <= d->len; i++) {
		in = store_defs_ptr(d, (uint32_t)i);
		if (in == NULL)
			continue;
		if (in->attached || (in->end_ns >= cut && g == NULL))
			store_mark(st, STORE_INSTANCE, (uint32_t)i);
		else if (in->end_ns >= cut && !d->marks[i - 1]) {
			g[n].end_ns = in->end_ns;
			g[n++].id = (uint32_t)i;
		}
	}
	if (g == NULL)
		return;
	qsort(g, n, sizeof *g, store_gone_cmp);
	for (i = 0; i < n && i < st->cfg.max_gone; i++)
		store_mark(st, STORE_INSTANCE, g[i].id);
	free(g);
}

/* Clears the marks and marks what the buckets and the store itself use. */
void
store_sweep_begin(struct store *st)
{
	struct store_bucket	*b;
	uint64_t		 cut;
	size_t			 i;
	int			 k;

	if (st->id_hold > 0)
		return;		/* a load still checks what the disk names */
	for (k = 0; k < STORE_NKINDS; k++) {
		free(st->defs[k].marks);
		st->defs[k].marks = calloc(st->defs[k].len + 1, 1);
	}
	for (k = 0; k < STORE_NKINDS; k++) {
		if (st->defs[k].marks == NULL) {
			/* Without every mark nothing can be freed safely. */
			for (k = 0; k < STORE_NKINDS; k++) {
				free(st->defs[k].marks);
				st->defs[k].marks = NULL;
			}
			return;
		}
	}
	st->sweeping = 1;
	for (b = st->buckets; b != NULL; b = b->next)
		store_mark_bucket(st, b);
	/* Buckets gone from the store that queries have yet to read, and
	 * what those queries summed so far. */
	for (b = st->retired; b != NULL; b = b->next)
		store_mark_bucket(st, b);
	if (st->sweep_hook != NULL)
		st->sweep_hook(st->sweep_hook_arg);
	/* What the buckets left on disk name. */
	for (k = 0; k < STORE_NKINDS; k++) {
		for (i = 0; i < st->defs[k].npins; i++)
			if (st->defs[k].pins[i] != 0)
				store_mark(st, k, (uint32_t)i + 1);
	}
	/* Attached processes, and the max_gone that left last of those no
	 * sample names (their batch numbers skip a replay). */
	cut = st->now_ns > st->cfg.retention_ns ?
	    st->now_ns - st->cfg.retention_ns : 0;
	store_sweep_gone(st, cut);
	store_mark(st, STORE_FRAME, st->truncated_frame);
	store_mark(st, STORE_STRING, st->empty_string);
}

/* Keeps a definition through every sweep while a bucket only on disk
 * names it (see store.h): a count per id, charged to the store's bytes
 * but never refused for the cap, as it is a small fraction of the
 * definitions it keeps (already counted). */
int
store_pin(struct store *st, enum store_kind k, uint32_t id)
{
	struct store_defs	*d = &st->defs[k];
	uint32_t		*v, n;

	if (id == 0 || id > d->len || !store_defs_live(st, k, id))
		return (-1);
	if (id > d->npins) {
		n = d->npins == 0 ? 64 : d->npins;
		while (n < id)
			n *= 2;
		if ((v = reallocarray(d->pins, n, sizeof *v)) == NULL)
			return (-1);
		memset(v + d->npins, 0, (size_t)(n - d->npins) * sizeof *v);
		st->bytes += (size_t)(n - d->npins) * sizeof *v;
		st->def_bytes += (size_t)(n - d->npins) * sizeof *v;
		d->pins = v;
		d->npins = n;
	}
	if (d->pins[id - 1] != UINT32_MAX)
		d->pins[id - 1]++;
	return (0);
}

/* Undoes one store_pin: the bucket on disk that named it is gone. */
void
store_unpin(struct store *st, enum store_kind k, uint32_t id)
{
	struct store_defs	*d = &st->defs[k];

	if (id == 0 || id > d->npins || d->pins[id - 1] == 0 ||
	    d->pins[id - 1] == UINT32_MAX)
		return;
	d->pins[id - 1]--;
}

/* Frees one unmarked definition. */
static void
store_sweep_one(struct store *st, enum store_kind k, uint32_t id)
{
	struct store_defs	*d = &st->defs[k];
	void			**pp;
	struct store_string	*s;
	struct store_stack	*sk;
	struct store_instance	*in;

	switch (k) {
	case STORE_STRING:
		pp = store_defs_slot(d, id);
		s = *pp;
		store_uncharge(st, sizeof *s + s->len + 1, 1);
		free(s);
		*pp = NULL;
		break;
	case STORE_STACK:
		pp = store_defs_slot(d, id);
		sk = *pp;
		store_uncharge(st, sizeof *sk + sk->depth * sizeof(uint32_t),
		    1);
		free(sk);
		*pp = NULL;
		break;
	case STORE_INSTANCE:
		pp = store_defs_slot(d, id);
		in = *pp;
		store_uncharge(st, store_instance_size(in) -
		    STORE_MALLOC_OVERHEAD, 1);
		store_instance_free(in);
		*pp = NULL;
		break;
	default:
		memset(store_defs_slot(d, id), 0, d->item_size);
		break;
	}
	store_defs_release(st, d, id);
	if (st->hooks.def_del != NULL)
		st->hooks.def_del(st->hooks.arg, k, id);
}

/* Rebuilds a kind's index from its live items. */
static void
store_reindex(struct store *st, enum store_kind k)
{
	struct store_defs	*d = &st->defs[k];
	struct store_string	*s;
	struct store_func	*f;
	struct store_frame	*fr;
	struct store_stack	*sk;
	struct store_instance	*in;
	struct store_thread	*t;
	uint32_t		 id, h;

	store_index_clear(&d->index);
	for (id = 1; id <= d->len; id++) {
		if (!store_defs_live(st, k, id))
			continue;
		switch (k) {
		case STORE_STRING:
			s = store_defs_ptr(d, id);
			h = s->hash;
			break;
		case STORE_FUNC:
			f = store_defs_slot(d, id);
			h = store_hash4(st, f->name, f->file, f->line, 1);
			break;
		case STORE_FRAME:
			fr = store_defs_slot(d, id);
			h = store_hash4(st, fr->func, fr->line, 2, 2);
			break;
		case STORE_STACK:
			sk = store_defs_ptr(d, id);
			h = sk->hash;
			break;
		case STORE_INSTANCE:
			in = store_defs_ptr(d, id);
			h = store_instance_hash(st, in->host, strlen(in->host),
			    in->pid, in->start_ns);
			break;
		default:
			t = store_defs_slot(d, id);
			h = store_hash4(st, t->instance, t->tid, t->name, 4);
			break;
		}
		store_index_add(&d->index, id, h);
	}
}

/* Frees every unmarked definition. */
size_t
store_sweep_end(struct store *st)
{
	struct store_defs	*d;
	size_t			 freed = 0, before;
	uint32_t		 id;
	int			 k;

	if (!st->sweeping)
		return (0);
	/* Children before parents is not needed: marks are final. */
	for (k = 0; k < STORE_NKINDS; k++) {
		d = &st->defs[k];
		if (d->marks == NULL)
			continue;	/* no memory to mark: keep all */
		before = freed;
		for (id = 1; id <= d->len; id++) {
			if (d->marks[id - 1] || !store_defs_live(st, k, id))
				continue;
			store_sweep_one(st, (enum store_kind)k, id);
			freed++;
		}
		if (freed != before)
			store_reindex(st, (enum store_kind)k);
	}
	for (k = 0; k < STORE_NKINDS; k++) {
		free(st->defs[k].marks);
		st->defs[k].marks = NULL;
	}
	st->sweeping = 0;
	st->counts.sweeps++;
	st->counts.reclaimed += freed;
	return (freed);
}

const char *
store_string_get(const struct store *st, uint32_t id, uint32_t *len)
{
	const struct store_string *s = store_defs_ptr(&st->defs[STORE_STRING],
	    id);

	if (s == NULL)
		return (NULL);
	if (len != NULL)
		*len = s->len;
	return (s->data);
}

int
store_func_get(const struct store *st, uint32_t id, uint32_t *name,
    uint32_t *file, uint32_t *line)
{
	const struct store_func	*f;

	if (!store_defs_used(&st->defs[STORE_FUNC], id))
		return (-1);
	f = store_defs_slot(&st->defs[STORE_FUNC], id);
	*name = f->name;
	*file = f->file;
	*line = f->line;
	return (0);
}

int
store_frame_get(const struct store *st, uint32_t id, uint32_t *func,
    uint32_t *line)
{
	const struct store_frame	*fr;

	if (!store_defs_used(&st->defs[STORE_FRAME], id))
		return (-1);
	fr = store_defs_slot(&st->defs[STORE_FRAME], id);
	*func = fr->func;
	*line = fr->line;
	return (0);
}

const uint32_t *
store_stack_get(const struct store *st, uint32_t id, uint32_t *depth)
{
	const struct store_stack *sk = store_defs_ptr(&st->defs[STORE_STACK],
	    id);

	if (sk == NULL)
		return (NULL);
	*depth = sk->depth;
	return (sk->frames);
}

const struct store_instance *
store_instance_get(const struct store *st, uint32_t id)
{
	return (store_defs_ptr(&st->defs[STORE_INSTANCE], id));
}

const struct store_thread *
store_thread_get(const struct store *st, uint32_t id)
{
	if (!store_defs_used(&st->defs[STORE_THREAD], id))
		return (NULL);
	return (store_defs_slot(&st->defs[STORE_THREAD], id));
}

uint32_t
store_id_limit(const struct store *st, enum store_kind k)
{
	return (st->defs[k].len + 1);
}

/* Makes id the next or a free id of a kind, for loading. */
static int
store_load_id(struct store *st, enum store_kind k, uint32_t id)
{
	struct store_defs	*d = &st->defs[k];
	uint32_t		 got, i;

	if (id == 0 || id > STORE_ID_MAX || store_defs_live(st, k, id))
		return (-1);
	while (d->len < id) {
		if ((got = store_defs_grow(st, d)) == 0)
			return (-1);
		if (got != id && store_defs_release(st, d, got) != 0)
			return (-1);
		if (got == id)
			goto out;
	}
	/* id is below len: take it out of the free list. */
	for (i = 0; i < d->nfree; i++) {
		if (d->free_ids[i] == id) {
			d->free_ids[i] = d->free_ids[--d->nfree];
			d->live++;
			goto out;
		}
	}
	return (-1);
out:
	return (store_index_reserve(st, &d->index));
}

int
store_load_string(struct store *st, uint32_t id, const char *str, size_t len)
{
	struct store_defs	*d = &st->defs[STORE_STRING];
	struct store_string	*s;

	if (len > PROTO_MAX_STRING)
		return (-1);
	/* The store's own strings may already be there under this id. */
	if ((s = store_defs_ptr(d, id)) != NULL)
		return (s->len == len && memcmp(s->data, str, len) == 0 ?
		    0 : -1);
	if (store_charge(st, sizeof *s + len + 1, STORE_CHARGE_LOAD) != 0)
		return (-1);
	if ((s = malloc(sizeof *s + len + 1)) == NULL ||
	    store_load_id(st, STORE_STRING, id) != 0) {
		free(s);
		store_uncharge(st, sizeof *s + len + 1, 1);
		return (-1);
	}
	s->len = (uint32_t)len;
	s->hash = store_hash_bytes(st, str, len);
	memcpy(s->data, str, len);
	s->data[len] = '\0';
	*(struct store_string **)store_defs_slot(d, id) = s;
	store_index_add(&d->index, id, s->hash);
	return (0);
}

int
store_load_func(struct store *st, uint32_t id, uint32_t name, uint32_t file,
    uint32_t line)
{
	struct store_func	*f;

	if (store_defs_used(&st->defs[STORE_FUNC], id)) {
		f = store_defs_slot(&st->defs[STORE_FUNC], id);
		return (f->name == name && f->file == file &&
		    f->line == line ? 0 : -1);
	}
	if (!store_defs_live(st, STORE_STRING, name) ||
	    !store_defs_live(st, STORE_STRING, file) ||
	    store_load_id(st, STORE_FUNC, id) != 0)
		return (-1);
	f = store_defs_slot(&st->defs[STORE_FUNC], id);
	f->name = name;
	f->file = file;
	f->line = line;
	store_index_add(&st->defs[STORE_FUNC].index, id,
	    store_hash4(st, name, file, line, 1));
	return (0);
}

int
store_load_frame(struct store *st, uint32_t id, uint32_t func, uint32_t line)
{
	struct store_frame	*fr;

	if (store_defs_used(&st->defs[STORE_FRAME], id)) {
		fr = store_defs_slot(&st->defs[STORE_FRAME], id);
		return (fr->func == func && fr->line == line ? 0 : -1);
	}
	if (!store_defs_live(st, STORE_FUNC, func) ||
	    store_load_id(st, STORE_FRAME, id) != 0)
		return (-1);
	fr = store_defs_slot(&st->defs[STORE_FRAME], id);
	fr->func = func;
	fr->line = line;
	store_index_add(&st->defs[STORE_FRAME].index, id,
	    store_hash4(st, func, line, 2, 2));
	return (0);
}

int
store_load_stack(struct store *st, uint32_t id, const uint32_t *frames,
    uint32_t depth)
{
	struct store_stack	*sk;
	size_t			 keylen = depth * sizeof *frames;
	uint32_t		 i;

	if (depth > PROTO_MAX_DEPTH + 1 ||
	    store_defs_ptr(&st->defs[STORE_STACK], id) != NULL)
		return (-1);
	for (i = 0; i < depth; i++) {
		if (!store_defs_live(st, STORE_FRAME, frames[i]))
			return (-1);
	}
	if (store_charge(st, sizeof *sk + keylen, STORE_CHARGE_LOAD) != 0)
		return (-1);
	if ((sk = malloc(sizeof *sk + keylen)) == NULL ||
	    store_load_id(st, STORE_STACK, id) != 0) {
		free(sk);
		store_uncharge(st, sizeof *sk + keylen, 1);
		return (-1);
	}
	sk->depth = depth;
	memcpy(sk->frames, frames, keylen);
	sk->hash = store_hash_bytes(st, frames, keylen);
	*(struct store_stack **)store_defs_slot(&st->defs[STORE_STACK], id) =
	    sk;
	store_index_add(&st->defs[STORE_STACK].index, id, sk->hash);
	return (0);
}

int
store_load_instance(struct store *st, const struct store_instance *src)
{
	struct store_instance_info	 info;
	struct store_instance		*in;
	size_t				 charged;

	if (src->id == 0 || src->host == NULL)
		return (-1);
	memset(&info, 0, sizeof info);
	info.pid = src->pid;
	info.ppid = src->ppid;
	info.start_ns = src->start_ns;
	info.host = src->host;
	info.host_len = (uint32_t)strlen(src->host);
	info.service = src->service;
	info.service_len = src->service ? (uint32_t)strlen(src->service) : 0;
	info.python = src->python;
	info.python_len = src->python ? (uint32_t)strlen(src->python) : 0;
	info.reader = src->reader;
	info.reader_len = src->reader ? (uint32_t)strlen(src->reader) : 0;
	info.argv = (const char *const *)src->argv;
	info.argc = src->argc;
	if ((in = calloc(1, sizeof *in)) == NULL)
		return (-1);
	if (store_instance_fill(in, &info) != 0)
		goto fail;
	charged = store_instance_size(in) - STORE_MALLOC_OVERHEAD;
	if (store_charge(st, charged, STORE_CHARGE_LOAD) != 0)
		goto fail;
	if (store_load_id(st, STORE_INSTANCE, src->id) != 0) {
		store_uncharge(st, charged, 1);
		goto fail;
	}
	in->id = src->id;
	in->attach_ns = src->attach_ns;
	in->end_ns = src->end_ns;
	in->last_ns = src->last_ns;
	in->samples = src->samples;
	in->samples_durable = src->samples;
	in->dropped = src->dropped;
	/* Whatever it was when saved, nothing is connected now. */
	in->attached = 0;
	if (in->end_ns == 0)
		in->end_ns = in->last_ns != 0 ? in->last_ns : in->attach_ns;
	*(struct store_instance **)store_defs_slot(&st->defs[STORE_INSTANCE],
	    in->id) = in;
	store_index_add(&st->defs[STORE_INSTANCE].index, in->id,
	    store_instance_hash(st, in->host, strlen(in->host), in->pid,
	    in->start_ns));
	return (0);
fail:
	store_instance_free(in);
	return (-1);
}

int
store_load_thread(struct store *st, const struct store_thread *src)
{
	struct store_thread	*t;

	if (store_defs_ptr(&st->defs[STORE_INSTANCE], src->instance) == NULL ||
	    !store_defs_live(st, STORE_STRING, src->name) ||
	    store_load_id(st, STORE_THREAD, src->id) != 0)
		return (-1);
	t = store_defs_slot(&st->defs[STORE_THREAD], src->id);
	*t = *src;
	store_index_add(&st->defs[STORE_THREAD].index, src->id,
	    store_hash4(st, t->instance, t->tid, t->name, 4));
	return (0);
}
