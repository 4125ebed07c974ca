/*
 * store.c -- the profile store (see store.h).
 *
 * Definitions: one vector per kind from id - 1 to the item (a pointer for
 * variable-sized items, the item itself for small fixed ones; a free item
 * is NULL / has a zero first field), an open-addressing index from a seeded
 * hash of the content to the id, and a stack of freed ids for reuse.  The
 * index is rebuilt after a sweep instead of supporting deletions.
 *
 * Buckets: an open bucket is an open-addressing table of entries keyed by
 * (thread, stack, labels, flags); sealing sorts the used entries into a
 * dense array.  Roll-ups merge sorted arrays.
 *
 * Memory: every allocation is charged to `bytes` (with a fixed allowance
 * for malloc's own overhead); the cap is enforced by evicting the oldest
 * buckets, then by refusing new definitions until a sweep frees some.
 */

#include <sys/random.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto.h"
#include "store.h"

#define STORE_MALLOC_OVERHEAD	16	/* bytes malloc adds per block */
#define STORE_INDEX_MIN		64	/* slots of a new index */
#define STORE_BUCKET_MIN	64	/* slots of a new open bucket */
#define STORE_FUTURE_NS		(5ull * 1000000000)	/* clock skew allowed */
#define STORE_ID_MAX		(PROTO_MAX_ID * 4u)	/* ids of one kind */

struct store_string {
	uint32_t	len;
	uint32_t	hash;
	char		data[];		/* len bytes, then a NUL */
};

struct store_func {
	uint32_t	name;		/* 0: free */
	uint32_t	file;
	uint32_t	line;
};

struct store_frame {
	uint32_t	func;		/* 0: free */
	uint32_t	line;
};

struct store_stack {
	uint32_t	depth;
	uint32_t	hash;
	uint32_t	frames[];	/* leaf first */
};

/* A slot of an index: the id (0: empty) and 32 bits of its hash. */
struct store_slot {
	uint32_t	id;
	uint32_t	hash;
};

struct store_index {
	struct store_slot	*slots;
	uint32_t		 mask;
	uint32_t		 used;
};

/* The ids of one kind. */
struct store_defs {
	void			*items;		/* vector, item_size each */
	size_t			 item_size;
	uint32_t		 len;		/* ids handed out: 1..len */
	uint32_t		 cap;
	uint32_t		 live;		/* ids in use */
	uint32_t		*free_ids;	/* freed ids, for reuse */
	uint32_t		 nfree, free_cap;
	struct store_index	 index;
	uint8_t			*marks;		/* during a sweep */
};

struct store {
	struct store_config	 cfg;
	struct store_hooks	 hooks;
	uint64_t		 seed;
	size_t			 bytes;
	size_t			 def_bytes;
	struct store_defs	 defs[STORE_NKINDS];
	struct store_bucket	*buckets;	/* oldest first */
	struct store_bucket	*last;		/* last one added to */
	size_t			 nbuckets;
	size_t			 nentries;
	uint64_t		 now_ns;	/* as of the last tick */
	uint32_t		 truncated_frame;
	uint32_t		 empty_string;
	int			 sweeping;
	int			 making_room;	/* in need_room */
	int			 readers;	/* queries reading buckets */
	void			(*need_room)(void *);
	void			*need_room_arg;
	struct store_counts	 counts;
};

static const size_t store_item_sizes[STORE_NKINDS] = {
	sizeof(struct store_string *),
	sizeof(struct store_func),
	sizeof(struct store_frame),
	sizeof(struct store_stack *),
	sizeof(struct store_instance *),
	sizeof(struct store_thread),
};

/* Mixes 64 bits (the murmur3 finalizer). */
static inline uint64_t
store_mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return (h);
}

/* Hashes bytes with the store's seed. */
static uint32_t
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

/* Hashes up to four words with the store's seed. */
static inline uint32_t
store_hash4(const struct store *st, uint64_t a, uint64_t b, uint64_t c,
    uint64_t d)
{
	uint64_t	h = st->seed;

	h = store_mix(h ^ a) + b;
	h = store_mix(h) ^ c;
	h = store_mix(h + d);
	return ((uint32_t)h);
}

static int	store_evict_one(struct store *, const struct store_bucket *);
static int	store_evict_sealed(struct store *);
static int	store_has_sealed(const struct store *);

/* store_charge's third argument: bucket memory, a definition (may evict
 * old buckets), a definition being loaded (never evicts). */
#define STORE_CHARGE_LOAD	2

/* Reserves n bytes of the budget; -1 if over the cap.  A definition
 * makes room by evicting the oldest buckets. */
static int
store_charge(struct store *st, size_t n, int def)
{
	n += STORE_MALLOC_OVERHEAD;
	/* While a query reads the buckets nothing may go: overshoot. */
	while (st->readers == 0 && st->bytes + n > st->cfg.max_bytes) {
		if (def != 1 || st->sweeping || st->making_room)
			return (-1);
		/* Buckets hold definitions: evicting one frees them only
		 * once swept, so sweep after each. */
		if (store_evict_sealed(st) != 0 &&
		    st->need_room == NULL)
			return (-1);
		if (st->need_room == NULL)
			continue;
		st->making_room = 1;
		st->need_room(st->need_room_arg);
		st->making_room = 0;
		if (st->bytes + n > st->cfg.max_bytes &&
		    !store_has_sealed(st))
			return (-1);
	}
	st->bytes += n;
	if (def)
		st->def_bytes += n;
	return (0);
}

/* Gives n bytes back. */
static void
store_uncharge(struct store *st, size_t n, int def)
{
	n += STORE_MALLOC_OVERHEAD;
	st->bytes -= n;
	if (def)
		st->def_bytes -= n;
}

/* Wall clock now. */
static uint64_t
store_realtime(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

/* -- definitions: vectors and indexes ------------------------------------ */

/* The address of an id's item slot. */
static inline void *
store_defs_slot(const struct store_defs *d, uint32_t id)
{
	return ((char *)d->items + (size_t)(id - 1) * d->item_size);
}

/* The pointer stored in a pointer kind's slot, or NULL. */
static inline void *
store_defs_ptr(const struct store_defs *d, uint32_t id)
{
	if (id == 0 || id > d->len)
		return (NULL);
	return (*(void **)store_defs_slot(d, id));
}

/* Whether an id of a fixed kind is in use (its first word non-zero). */
static inline int
store_defs_used(const struct store_defs *d, uint32_t id)
{
	uint32_t	first;

	if (id == 0 || id > d->len)
		return (0);
	memcpy(&first, store_defs_slot(d, id), sizeof first);
	return (first != 0);
}

/* Whether an id of any kind is in use. */
static int
store_defs_live(const struct store *st, enum store_kind k, uint32_t id)
{
	switch (k) {
	case STORE_STRING:
	case STORE_STACK:
	case STORE_INSTANCE:
		return (store_defs_ptr(&st->defs[k], id) != NULL);
	default:
		return (store_defs_used(&st->defs[k], id));
	}
}

/* Hands out the id after the highest one; 0 when none is left. */
static uint32_t
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

/* Picks an id for a new item (a freed one first); 0 when none is left. */
static uint32_t
store_defs_alloc(struct store *st, struct store_defs *d)
{
	if (d->nfree > 0) {
		d->live++;
		return (d->free_ids[--d->nfree]);
	}
	return (store_defs_grow(st, d));
}

/* Gives an id back (its slot must be cleared by the caller). */
static int
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
static int
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
static void
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
static void
store_index_clear(struct store_index *ix)
{
	if (ix->slots != NULL)
		memset(ix->slots, 0, ((size_t)ix->mask + 1) *
		    sizeof *ix->slots);
	ix->used = 0;
}

/* -- interning ----------------------------------------------------------- */

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
static void
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
				in->attached = 1;
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
	in->attached = 0;
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

/* -- buckets ------------------------------------------------------------- */

/* Hashes an entry's key. */
static inline uint32_t
store_entry_hash(const struct store *st, uint32_t thread, uint32_t stack,
    uint32_t labels, uint32_t flags)
{
	return (store_hash4(st, thread, stack, (uint64_t)labels << 32 | flags,
	    5));
}

/* Frees a bucket, giving its memory back. */
static void
store_bucket_free(struct store *st, struct store_bucket *b)
{
	store_uncharge(st, sizeof *b + b->cap * sizeof *b->entries, 0);
	st->nentries -= b->n;
	free(b->entries);
	free(b);
}

/* Unlinks a bucket from the list. */
static void
store_bucket_unlink(struct store *st, struct store_bucket *b)
{
	if (b->prev != NULL)
		b->prev->next = b->next;
	else
		st->buckets = b->next;
	if (b->next != NULL)
		b->next->prev = b->prev;
	if (st->last == b)
		st->last = NULL;
	st->nbuckets--;
}

/* Links a bucket into the list, ordered by start (after equal ones). */
static void
store_bucket_link(struct store *st, struct store_bucket *b)
{
	struct store_bucket	*at = NULL, *x;

	/* Most buckets are newest: search from the end. */
	for (x = st->buckets; x != NULL && x->next != NULL; x = x->next)
		;
	for (; x != NULL; x = x->prev) {
		if (x->start_ns <= b->start_ns) {
			at = x;
			break;
		}
	}
	if (at == NULL) {
		b->prev = NULL;
		b->next = st->buckets;
		if (st->buckets != NULL)
			st->buckets->prev = b;
		st->buckets = b;
	} else {
		b->prev = at;
		b->next = at->next;
		if (at->next != NULL)
			at->next->prev = b;
		at->next = b;
	}
	st->nbuckets++;
}

/* Drops a bucket: unlinks, tells the hooks, frees. */
static void
store_bucket_drop(struct store *st, struct store_bucket *b)
{
	store_bucket_unlink(st, b);
	if (st->hooks.bucket_del != NULL)
		st->hooks.bucket_del(st->hooks.arg, b);
	store_bucket_free(st, b);
}

/*
 * Evicts the oldest sealed bucket to make room; when none is sealed, seals
 * the oldest open one that holds samples and evicts that (the cap cannot
 * even hold the newest buckets).  -1 if there is nothing to evict.
 */
static int
store_evict_one(struct store *st, const struct store_bucket *keep)
{
	struct store_bucket	*b;

	for (b = st->buckets; b != NULL && !b->sealed; b = b->next)
		;
	if (b == NULL) {
		for (b = st->buckets; b != NULL && (b->n == 0 || b == keep);
		    b = b->next)
			;
		if (b == NULL)
			return (-1);
	}
	st->counts.evicted_samples += b->samples;
	st->counts.evicted_buckets++;
	store_bucket_drop(st, b);
	return (0);
}

/* Whether any bucket is sealed. */
static int
store_has_sealed(const struct store *st)
{
	const struct store_bucket	*b;

	for (b = st->buckets; b != NULL; b = b->next) {
		if (b->sealed)
			return (1);
	}
	return (0);
}

/* Evicts the oldest sealed bucket; -1 if none is sealed. */
static int
store_evict_sealed(struct store *st)
{
	if (!store_has_sealed(st))
		return (-1);
	return (store_evict_one(st, NULL));
}

/* Charges bucket memory, evicting old buckets (never `keep`) when over
 * the cap. */
static int
store_charge_bucket(struct store *st, size_t n,
    const struct store_bucket *keep)
{
	while (store_charge(st, n, 0) != 0) {
		if (st->readers > 0 || store_evict_one(st, keep) != 0)
			return (-1);
	}
	return (0);
}

/* Creates an empty open bucket. */
static struct store_bucket *
store_bucket_new(struct store *st, uint64_t start_ns, uint64_t width_ns,
    size_t slots)
{
	struct store_bucket	*b;

	if (store_charge_bucket(st, sizeof *b + slots * sizeof *b->entries,
	    NULL) != 0)
		return (NULL);
	if ((b = calloc(1, sizeof *b)) == NULL ||
	    (slots > 0 && (b->entries = calloc(slots, sizeof *b->entries)) ==
	    NULL)) {
		free(b);
		store_uncharge(st, sizeof *b + slots * sizeof *b->entries, 0);
		return (NULL);
	}
	b->start_ns = start_ns;
	b->width_ns = width_ns;
	b->cap = slots;
	b->dirty = 1;
	return (b);
}

/* Doubles an open bucket's table. */
static int
store_bucket_grow(struct store *st, struct store_bucket *b)
{
	struct store_entry	*e, *old = b->entries;
	size_t			 n = b->cap * 2, i, j;

	if (store_charge_bucket(st, n * sizeof *e, b) != 0)
		return (-1);
	if ((e = calloc(n, sizeof *e)) == NULL) {
		store_uncharge(st, n * sizeof *e, 0);
		return (-1);
	}
	for (i = 0; i < b->cap; i++) {
		if (old[i].count == 0)
			continue;
		for (j = store_entry_hash(st, old[i].thread, old[i].stack,
		    old[i].labels, old[i].flags) & (n - 1); e[j].count != 0;
		    j = (j + 1) & (n - 1))
			;
		e[j] = old[i];
	}
	store_uncharge(st, b->cap * sizeof *e, 0);
	free(old);
	b->entries = e;
	b->cap = n;
	return (0);
}

/* Adds to an open bucket's entry. */
static int
store_bucket_add(struct store *st, struct store_bucket *b, uint32_t thread,
    uint32_t stack, uint32_t flags, uint64_t count, uint64_t weight_us)
{
	struct store_entry	*e;
	size_t			 mask, j;
	uint32_t		 h = store_entry_hash(st, thread, stack, 0,
				     flags);

	for (;;) {
		mask = b->cap - 1;
		for (j = h & mask; b->entries[j].count != 0; j = (j + 1) & mask) {
			e = &b->entries[j];
			if (e->thread == thread && e->stack == stack &&
			    e->flags == flags && e->labels == 0)
				goto found;
		}
		if ((b->n + 1) * 4 <= b->cap * 3)
			break;
		if (store_bucket_grow(st, b) != 0)
			return (-1);
	}
	e = &b->entries[j];
	e->thread = thread;
	e->stack = stack;
	e->labels = 0;
	e->flags = flags;
	b->n++;
	st->nentries++;
found:
	e->count += count;
	e->weight_us += weight_us;
	b->samples += count;
	b->dirty = 1;
	return (0);
}

/* The tier a bucket of a given age belongs to. */
static const struct store_tier *
store_tier_for(const struct store *st, uint64_t age_ns)
{
	int	i;

	for (i = 0; i < st->cfg.ntiers - 1; i++) {
		if (age_ns < st->cfg.tiers[i].until_ns)
			return (&st->cfg.tiers[i]);
	}
	return (&st->cfg.tiers[st->cfg.ntiers - 1]);
}

/* Finds or creates the open finest-width bucket holding time t. */
static struct store_bucket *
store_bucket_for(struct store *st, uint64_t t)
{
	struct store_bucket	*b;
	uint64_t		 w = st->cfg.tiers[0].width_ns, start;

	start = t - t % w;
	b = st->last;
	if (b != NULL && !b->sealed && b->start_ns == start &&
	    b->width_ns == w)
		return (b);
	/* Open buckets are few and at the end, except for back-fills. */
	for (b = st->buckets; b != NULL && b->next != NULL; b = b->next)
		;
	for (; b != NULL; b = b->prev) {
		if (!b->sealed && b->start_ns == start && b->width_ns == w)
			return (st->last = b);
	}
	if ((b = store_bucket_new(st, start, w, STORE_BUCKET_MIN)) == NULL)
		return (NULL);
	store_bucket_link(st, b);
	return (st->last = b);
}

/* Adds samples at a time. */
int
store_add(struct store *st, uint64_t t_ns, uint32_t thread, uint32_t stack,
    uint32_t flags, uint64_t count, uint64_t weight_us)
{
	struct store_bucket	*b;
	struct store_thread	*t;
	struct store_instance	*in;
	uint64_t		 now = st->now_ns;

	if (count == 0)
		return (0);
	if (store_defs_ptr(&st->defs[STORE_STACK], stack) == NULL ||
	    !store_defs_used(&st->defs[STORE_THREAD], thread))
		goto drop;
	if (now == 0)
		now = store_realtime();
	if (t_ns > now + STORE_FUTURE_NS)
		t_ns = now;
	if (now > st->cfg.retention_ns && t_ns < now - st->cfg.retention_ns) {
		st->counts.expired_samples += count;
		return (-1);
	}
	/* Late: its time's bucket is (or would be) sealed already.  It is
	 * back-filled at its own time; the tick merges the twins. */
	if (t_ns - t_ns % st->cfg.tiers[0].width_ns +
	    st->cfg.tiers[0].width_ns + st->cfg.grace_ns <= now)
		st->counts.samples_late += count;
	if ((b = store_bucket_for(st, t_ns)) == NULL ||
	    store_bucket_add(st, b, thread, stack, flags,
	    count, weight_us) != 0)
		goto drop;
	b->dirty = 1;
	t = store_defs_slot(&st->defs[STORE_THREAD], thread);
	if ((in = store_defs_ptr(&st->defs[STORE_INSTANCE],
	    t->instance)) != NULL) {
		in->samples += count;
		if (t_ns > in->last_ns)
			in->last_ns = t_ns;
		in->dirty = 1;
	}
	st->counts.samples_stored += count;
	return (0);
drop:
	st->counts.samples_dropped += count;
	return (-1);
}

/* Orders entries by key. */
static int
store_cmp_entry(const void *a, const void *b)
{
	const struct store_entry *x = a, *y = b;

	if (x->thread != y->thread)
		return (x->thread < y->thread ? -1 : 1);
	if (x->stack != y->stack)
		return (x->stack < y->stack ? -1 : 1);
	if (x->labels != y->labels)
		return (x->labels < y->labels ? -1 : 1);
	if (x->flags != y->flags)
		return (x->flags < y->flags ? -1 : 1);
	return (0);
}

/* Seals an open bucket: its used entries, sorted, in a dense array. */
static void
store_bucket_seal(struct store *st, struct store_bucket *b)
{
	struct store_entry	*e;
	size_t			 i, n = 0;

	for (i = 0; i < b->cap; i++) {
		if (b->entries[i].count != 0)
			b->entries[n++] = b->entries[i];
	}
	qsort(b->entries, n, sizeof *b->entries, store_cmp_entry);
	if (n > 0 && (e = realloc(b->entries, n * sizeof *e)) != NULL)
		b->entries = e;
	else if (n == 0) {
		free(b->entries);
		b->entries = NULL;
	}
	/* A bucket is charged sizeof *b + cap entries + one overhead. */
	st->bytes -= (b->cap - n) * sizeof *b->entries;
	b->cap = n;
	b->sealed = 1;
	b->dirty = 1;
	if (st->last == b)
		st->last = NULL;
}

/* Merges sorted entries src into sorted dst[0..*n), capacity enough. */
static size_t
store_merge(struct store_entry *out, const struct store_entry *a, size_t na,
    const struct store_entry *b, size_t nb)
{
	size_t	i = 0, j = 0, n = 0;
	int	c;

	while (i < na || j < nb) {
		if (i == na)
			c = 1;
		else if (j == nb)
			c = -1;
		else
			c = store_cmp_entry(&a[i], &b[j]);
		if (c < 0)
			out[n++] = a[i++];
		else if (c > 0)
			out[n++] = b[j++];
		else {
			out[n] = a[i++];
			out[n].count += b[j].count;
			out[n++].weight_us += b[j++].weight_us;
		}
	}
	return (n);
}

/*
 * Rolls the sealed buckets inside [start, start + width) up into one
 * bucket of that width.  Returns 0, or -1 when memory ran out (then
 * nothing changed).
 */
static int
store_rollup(struct store *st, struct store_bucket *first, uint64_t start,
    uint64_t width)
{
	struct store_bucket	*b, *b1, *nb;
	struct store_entry	*acc = NULL, *tmp;
	size_t			 n = 0, cap = 0, m;
	uint64_t		 samples = 0;
	int			 k = 0;

	/* A back-filled bucket may land after a coarser one of its window:
	 * start from the first bucket of the window. */
	while (first->prev != NULL && first->prev->start_ns >= start)
		first = first->prev;
	for (b = first; b != NULL && b->start_ns < start + width;
	    b = b->next) {
		if (!b->sealed || b->start_ns < start || b->width_ns > width)
			continue;
		m = n + b->n;
		if ((tmp = malloc((m > 0 ? m : 1) * sizeof *tmp)) == NULL) {
			free(acc);
			return (-1);
		}
		n = store_merge(tmp, acc, n, b->entries, b->n);
		free(acc);
		acc = tmp;
		cap = m;
		samples += b->samples;
		k++;
	}
	if (k < 2 && first->width_ns == width) {
		free(acc);
		return (0);
	}
	(void)cap;
	/* Never an evicting allocation here: it could free an input. */
	if ((nb = calloc(1, sizeof *nb)) == NULL) {
		free(acc);
		return (-1);
	}
	if (n > 0 && (tmp = realloc(acc, n * sizeof *tmp)) != NULL)
		acc = tmp;
	nb->start_ns = start;
	nb->width_ns = width;
	nb->entries = acc;
	nb->n = nb->cap = n;
	nb->samples = samples;
	nb->sealed = 1;
	nb->dirty = 1;
	for (b = first; b != NULL && b->start_ns < start + width; b = b1) {
		b1 = b->next;
		if (!b->sealed || b->start_ns < start || b->width_ns > width)
			continue;
		store_bucket_drop(st, b);
	}
	/* Smaller than its inputs: charged after they are gone. */
	st->bytes += sizeof *nb + n * sizeof *acc + STORE_MALLOC_OVERHEAD;
	st->nentries += n;
	store_bucket_link(st, nb);
	st->counts.rollups++;
	return (0);
}

/* Seals, rolls up and expires buckets. */
void
store_tick(struct store *st, uint64_t now)
{
	struct store_bucket		*b, *b1;
	const struct store_tier		*tier;
	uint64_t			 cut, start;

	st->now_ns = now;
	if (st->readers > 0)
		return;		/* a query reads the buckets */
	/* Expire by age. */
	cut = now > st->cfg.retention_ns ? now - st->cfg.retention_ns : 0;
	for (b = st->buckets; b != NULL; b = b1) {
		b1 = b->next;
		if (b->start_ns + b->width_ns > cut)
			break;
		st->counts.expired_samples += b->samples;
		store_bucket_drop(st, b);
	}
	/* Seal what is past its grace; a back-filled bucket joins its
	 * sealed twin. */
	for (b = st->buckets; b != NULL; b = b1) {
		b1 = b->next;
		if (b->sealed || b->start_ns + b->width_ns + st->cfg.grace_ns >
		    now)
			continue;
		store_bucket_seal(st, b);
		start = b->start_ns;
		if ((b->prev != NULL && b->prev->sealed &&
		    b->prev->start_ns == b->start_ns &&
		    b->prev->width_ns == b->width_ns) ||
		    (b1 != NULL && b1->sealed && b1->start_ns == b->start_ns &&
		    b1->width_ns == b->width_ns)) {
			if (store_rollup(st, b, start, b->width_ns) != 0)
				continue;
			/* b is gone: go on after the merged one. */
			for (b1 = st->buckets; b1 != NULL &&
			    b1->start_ns <= start; b1 = b1->next)
				;
		}
	}
	/* Roll up sealed buckets finer than their age's tier. */
	for (b = st->buckets; b != NULL; b = b1) {
		b1 = b->next;
		if (!b->sealed || now < b->start_ns)
			continue;
		tier = store_tier_for(st, now - b->start_ns);
		if (b->width_ns >= tier->width_ns)
			continue;
		start = b->start_ns - b->start_ns % tier->width_ns;
		if (store_rollup(st, b, start, tier->width_ns) != 0)
			break;
		/* The list changed: restart from the merged bucket's
		 * successor. */
		for (b1 = st->buckets; b1 != NULL &&
		    b1->start_ns < start + tier->width_ns; b1 = b1->next)
			;
	}
	/* Enforce the cap. */
	while (st->bytes > st->cfg.max_bytes && store_evict_one(st, NULL) == 0)
		;
}

/* -- sweeping ------------------------------------------------------------ */

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

/* Whether an id is marked. */
int
store_marked(const struct store *st, enum store_kind k, uint32_t id)
{
	const struct store_defs	*d = &st->defs[k];

	if (!st->sweeping || id == 0 || id > d->len || d->marks == NULL)
		return (1);
	return (d->marks[id - 1]);
}

/* Clears the marks and marks what the buckets and the store itself use. */
void
store_sweep_begin(struct store *st)
{
	struct store_bucket	*b;
	struct store_instance	*in;
	uint64_t		 cut;
	size_t			 i;
	int			 k;

	if (st->readers > 0)
		return;		/* a query uses the definitions */
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
	for (b = st->buckets; b != NULL; b = b->next) {
		for (i = 0; i < b->cap; i++) {
			if (b->entries[i].count == 0)
				continue;
			store_mark(st, STORE_THREAD, b->entries[i].thread);
			store_mark(st, STORE_STACK, b->entries[i].stack);
		}
	}
	cut = st->now_ns > st->cfg.retention_ns ?
	    st->now_ns - st->cfg.retention_ns : 0;
	for (i = 1; i <= st->defs[STORE_INSTANCE].len; i++) {
		in = store_defs_ptr(&st->defs[STORE_INSTANCE], (uint32_t)i);
		if (in != NULL && (in->attached || in->end_ns >= cut))
			store_mark(st, STORE_INSTANCE, (uint32_t)i);
	}
	store_mark(st, STORE_FRAME, st->truncated_frame);
	store_mark(st, STORE_STRING, st->empty_string);
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

/* -- life cycle ---------------------------------------------------------- */

/* The default configuration (settings.h has the same values). */
void
store_config_default(struct store_config *c)
{
	memset(c, 0, sizeof *c);
	c->tiers[0].width_ns = 10ull * 1000000000;
	c->tiers[0].until_ns = 3600ull * 1000000000;
	c->tiers[1].width_ns = 60ull * 1000000000;
	c->tiers[1].until_ns = 86400ull * 1000000000;
	c->tiers[2].width_ns = 3600ull * 1000000000;
	c->tiers[2].until_ns = UINT64_MAX;
	c->ntiers = 3;
	c->retention_ns = 7ull * 86400 * 1000000000;
	c->grace_ns = 10ull * 1000000000;
	c->max_bytes = (size_t)512 << 20;
}

/* Creates an empty store. */
struct store *
store_new(const struct store_config *cfg)
{
	struct store	*st;
	uint32_t	 name, empty, func;
	int		 k;

	if ((st = calloc(1, sizeof *st)) == NULL)
		return (NULL);
	st->cfg = *cfg;
	if (st->cfg.ntiers < 1 || st->cfg.ntiers > STORE_TIERS_MAX)
		store_config_default(&st->cfg);
	for (k = 0; k < STORE_NKINDS; k++)
		st->defs[k].item_size = store_item_sizes[k];
	if (getrandom(&st->seed, sizeof st->seed, GRND_NONBLOCK) !=
	    sizeof st->seed)
		st->seed = (uint64_t)store_realtime() ^ (uintptr_t)st;
	st->bytes = sizeof *st;

	name = store_string(st, PROTO_TRUNCATED_NAME,
	    strlen(PROTO_TRUNCATED_NAME));
	empty = store_string(st, "", 0);
	st->empty_string = empty;
	func = store_func(st, name, empty, 0);
	st->truncated_frame = store_frame(st, func, 0);
	if (st->truncated_frame == 0) {
		store_free(st);
		return (NULL);
	}
	return (st);
}

/* Frees the store and everything in it. */
void
store_free(struct store *st)
{
	struct store_bucket	*b, *b1;
	struct store_defs	*d;
	uint32_t		 id;
	int			 k;

	if (st == NULL)
		return;
	for (b = st->buckets; b != NULL; b = b1) {
		b1 = b->next;
		free(b->entries);
		free(b);
	}
	for (k = 0; k < STORE_NKINDS; k++) {
		d = &st->defs[k];
		if (k == STORE_STRING || k == STORE_STACK) {
			for (id = 1; id <= d->len; id++)
				free(store_defs_ptr(d, id));
		} else if (k == STORE_INSTANCE) {
			for (id = 1; id <= d->len; id++)
				store_instance_free(store_defs_ptr(d, id));
		}
		free(d->items);
		free(d->free_ids);
		free(d->index.slots);
		free(d->marks);
	}
	free(st);
}

/* The configuration in effect. */
const struct store_config *
store_get_config(const struct store *st)
{
	return (&st->cfg);
}

/* Sets the hook that sweeps when definitions find no room. */
void
store_set_room_hook(struct store *st, void (*fn)(void *), void *arg)
{
	st->need_room = fn;
	st->need_room_arg = arg;
}

/* Sets the persistence hooks. */
void
store_set_hooks(struct store *st, const struct store_hooks *h)
{
	if (h == NULL)
		memset(&st->hooks, 0, sizeof st->hooks);
	else
		st->hooks = *h;
}

/* Counts a query that reads the buckets: nothing is dropped, sealed,
 * rolled up or swept until it is done. */
void
store_readers(struct store *st, int delta)
{
	st->readers += delta;
}

/* Whether a query is reading. */
int
store_busy(const struct store *st)
{
	return (st->readers > 0);
}

/* Forgets every sample. */
void
store_reset(struct store *st)
{
	while (st->buckets != NULL)
		store_bucket_drop(st, st->buckets);
}

/* Fills in the counters and sizes. */
void
store_get_counts(const struct store *st, struct store_counts *c)
{
	*c = st->counts;
	c->strings = st->defs[STORE_STRING].live;
	c->funcs = st->defs[STORE_FUNC].live;
	c->frames = st->defs[STORE_FRAME].live;
	c->stacks = st->defs[STORE_STACK].live;
	c->instances = st->defs[STORE_INSTANCE].live;
	c->threads = st->defs[STORE_THREAD].live;
	c->buckets = st->nbuckets;
	c->entries = st->nentries;
	c->bytes = st->bytes;
	c->def_bytes = st->def_bytes;
	c->oldest_ns = st->buckets != NULL ? st->buckets->start_ns : 0;
}

/* -- lookups ------------------------------------------------------------- */

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

struct store_bucket *
store_buckets(const struct store *st)
{
	return (st->buckets);
}

/* -- loading ------------------------------------------------------------- */

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

int
store_load_bucket(struct store *st, uint64_t start_ns, uint64_t width_ns,
    const struct store_entry *entries, size_t n)
{
	struct store_bucket	*b;
	size_t			 i;

	if (width_ns == 0)
		return (-1);
	for (i = 0; i < n; i++) {
		if (entries[i].count == 0 ||
		    !store_defs_used(&st->defs[STORE_THREAD],
		    entries[i].thread) ||
		    store_defs_ptr(&st->defs[STORE_STACK],
		    entries[i].stack) == NULL)
			return (-1);
		if (i > 0 && store_cmp_entry(&entries[i - 1], &entries[i]) >= 0)
			return (-1);
	}
	/* Loading never evicts: what does not fit stays on disk only. */
	if (store_charge(st, sizeof *b + n * sizeof *entries, 0) != 0)
		return (-1);
	if ((b = calloc(1, sizeof *b)) == NULL ||
	    (n > 0 && (b->entries = malloc(n * sizeof *entries)) == NULL)) {
		free(b);
		store_uncharge(st, sizeof *b + n * sizeof *entries, 0);
		return (-1);
	}
	if (n > 0)
		memcpy(b->entries, entries, n * sizeof *entries);
	b->start_ns = start_ns;
	b->width_ns = width_ns;
	b->n = b->cap = n;
	b->sealed = 1;
	for (i = 0; i < n; i++)
		b->samples += entries[i].count;
	st->nentries += n;
	store_bucket_link(st, b);
	return (0);
}
