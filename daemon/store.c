/*
 * store.c -- the profile store's time buckets and life cycle (see store.h;
 * the definitions are in store-defs.c).
 *
 * An open bucket is an open-addressing table of entries keyed by (thread,
 * stack, labels, flags); sealing sorts the used entries into a dense array.
 * Roll-ups merge sorted arrays.  A bucket's tallies (a few: one per process
 * and mode) are a sorted array from the start, merged alike.
 *
 * Memory: every allocation is charged to `bytes` (with a fixed allowance
 * for malloc's own overhead); the cap is enforced by evicting the oldest
 * buckets; a definition that finds no room evicts and has the caller
 * sweep (store_set_room_hook).
 */

#include <sys/random.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto.h"
#include "store-private.h"

static const size_t store_item_sizes[STORE_NKINDS] = {
	sizeof(struct store_string *),
	sizeof(struct store_func),
	sizeof(struct store_frame),
	sizeof(struct store_stack *),
	sizeof(struct store_instance *),
	sizeof(struct store_thread),
};

/* The memory counted against the cap: retired buckets go when their
 * queries have read them, and evicting one could not help. */
static size_t
store_live_bytes(const struct store *st)
{
	return (st->bytes - st->retired_bytes);
}

/* Reserves n bytes of the budget; -1 if over the cap.  A definition
 * makes room by evicting the oldest buckets. */
int
store_charge(struct store *st, size_t n, int def)
{
	n += STORE_MALLOC_OVERHEAD;
	while (store_live_bytes(st) + n > st->cfg.max_bytes) {
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
		if (store_live_bytes(st) + n > st->cfg.max_bytes &&
		    !store_has_sealed(st))
			return (-1);
	}
	st->bytes += n;
	if (def)
		st->def_bytes += n;
	return (0);
}

/* Gives n bytes back. */
void
store_uncharge(struct store *st, size_t n, int def)
{
	n += STORE_MALLOC_OVERHEAD;
	st->bytes -= n;
	if (def)
		st->def_bytes -= n;
}

/* Wall clock now. */
uint64_t
store_realtime(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

/* Hashes an entry's key. */
static inline uint32_t
store_entry_hash(const struct store *st, uint32_t thread, uint32_t stack,
    uint32_t labels, uint32_t flags)
{
	return (store_hash4(st, thread, stack, (uint64_t)labels << 32 | flags,
	    5));
}

/* The memory a bucket is charged for. */
static size_t
store_bucket_bytes(const struct store_bucket *b)
{
	size_t	n = sizeof *b + b->cap * sizeof *b->entries +
		    STORE_MALLOC_OVERHEAD;

	if (b->ntallies > 0)
		n += b->ntallies * sizeof *b->tallies + STORE_MALLOC_OVERHEAD;
	return (n);
}

/* Frees a bucket, giving its memory back. */
static void
store_bucket_free(struct store *st, struct store_bucket *b)
{
	st->bytes -= store_bucket_bytes(b);
	if (b->retired) {
		st->retired_bytes -= store_bucket_bytes(b);
		st->nretired--;
		if (b->prev != NULL)
			b->prev->next = b->next;
		else
			st->retired = b->next;
		if (b->next != NULL)
			b->next->prev = b->prev;
	} else
		st->nentries -= b->n;
	free(b->entries);
	free(b->tallies);
	free(b);
}

/* A bucket left the store (unlinked, hooks told): freed, or kept among
 * the retired until the queries that hold it have read it. */
static void
store_bucket_gone(struct store *st, struct store_bucket *b)
{
	if (b->holds == 0) {
		store_bucket_free(st, b);
		return;
	}
	st->nentries -= b->n;
	b->retired = 1;
	st->retired_bytes += store_bucket_bytes(b);
	st->nretired++;
	b->prev = NULL;
	b->next = st->retired;
	if (st->retired != NULL)
		st->retired->prev = b;
	st->retired = b;
}

/* A query will read a sealed bucket: it stays in memory until released. */
void
store_bucket_hold(struct store *st, const struct store_bucket *b)
{
	(void)st;
	((struct store_bucket *)b)->holds++;
}

/* A query has read a bucket (or ends): a retired one no query holds any
 * more is freed. */
void
store_bucket_release(struct store *st, const struct store_bucket *cb)
{
	struct store_bucket	*b = (struct store_bucket *)cb;

	if (--b->holds == 0 && b->retired)
		store_bucket_free(st, b);
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
	store_bucket_gone(st, b);
}

/* Undoes store_bucket_pin for the first `n` entries (all: SIZE_MAX) and,
 * with tallies, for the tallies. */
static void
store_bucket_unpin(struct store *st, const struct store_bucket *b, size_t n,
    int tallies)
{
	size_t	i;

	for (i = 0; i < b->cap && i < n; i++) {
		if (b->entries[i].count == 0)
			continue;
		store_unpin(st, STORE_THREAD, b->entries[i].thread);
		store_unpin(st, STORE_STACK, b->entries[i].stack);
	}
	for (i = 0; tallies && i < b->ntallies; i++)
		store_unpin(st, STORE_INSTANCE, b->tallies[i].instance);
}

/* Pins what a bucket to keep on disk names (store_pin): 0, or -1 short of
 * memory for a count, with nothing left pinned by this call. */
static int
store_bucket_pin(struct store *st, const struct store_bucket *b)
{
	size_t	i, t;

	for (i = 0; i < b->cap; i++) {
		if (b->entries[i].count == 0)
			continue;
		if (store_pin(st, STORE_THREAD, b->entries[i].thread) != 0)
			goto undo;
		if (store_pin(st, STORE_STACK, b->entries[i].stack) != 0) {
			store_unpin(st, STORE_THREAD, b->entries[i].thread);
			goto undo;
		}
	}
	for (t = 0; t < b->ntallies; t++) {
		if (store_pin(st, STORE_INSTANCE, b->tallies[t].instance) !=
		    0) {
			while (t-- > 0)
				store_unpin(st, STORE_INSTANCE,
				    b->tallies[t].instance);
			store_bucket_unpin(st, b, SIZE_MAX, 0);
			return (-1);
		}
	}
	return (0);
undo:
	store_bucket_unpin(st, b, i, 0);
	return (-1);
}

/*
 * Evicts the oldest sealed bucket to make room (with a bucket_keep hook,
 * the oldest written one first: it stays on disk); when none is sealed, seals
 * the oldest open one that holds samples and evicts that (the cap cannot
 * even hold the newest buckets).  -1 if there is nothing to evict.
 */
int
store_evict_one(struct store *st, const struct store_bucket *keep)
{
	struct store_bucket	*b;

	/* One on disk already can stay there: the oldest such first. */
	b = NULL;
	if (st->hooks.bucket_keep != NULL)
		for (b = st->buckets; b != NULL && (!b->sealed || b->dirty);
		    b = b->next)
			;
	if (b == NULL)
		for (b = st->buckets; b != NULL && !b->sealed; b = b->next)
			;
	if (b == NULL) {
		for (b = st->buckets; b != NULL && (b->n == 0 || b == keep);
		    b = b->next)
			;
		if (b == NULL)
			return (-1);
	}
	/* Kept on disk: what it names keeps its id for as long (a bucket
	 * not written since it changed cannot be kept). */
	if (st->hooks.bucket_keep != NULL && !b->dirty &&
	    store_bucket_pin(st, b) == 0) {
		if (st->hooks.bucket_keep(st->hooks.arg, b) != 0) {
			store_bucket_unpin(st, b, SIZE_MAX, 1);
			goto drop;
		}
		st->counts.spilled_samples += b->samples;
		st->counts.spilled_buckets++;
		store_bucket_unlink(st, b);
		store_bucket_gone(st, b);
		return (0);
	}
drop:
	st->counts.evicted_samples += b->samples;
	st->counts.evicted_buckets++;
	store_bucket_drop(st, b);
	return (0);
}

/* Whether any bucket is sealed. */
int
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
int
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
		if (store_evict_one(st, keep) != 0)
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

/* Orders tallies by key. */
int
store_cmp_tally(const void *a, const void *b)
{
	const struct store_tally *x = a, *y = b;

	if (x->instance != y->instance)
		return (x->instance < y->instance ? -1 : 1);
	if (x->flags != y->flags)
		return (x->flags < y->flags ? -1 : 1);
	return (0);
}

/* Adds to an open bucket's tally of (instance, flags), kept sorted. */
static int
store_bucket_tally(struct store *st, struct store_bucket *b,
    const struct store_tally *add)
{
	struct store_tally	*t;
	size_t			 lo = 0, hi = b->ntallies, mid, n = b->ntallies;
	int			 c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = store_cmp_tally(&b->tallies[mid], add)) == 0) {
			b->tallies[mid].samples += add->samples;
			b->tallies[mid].invalid += add->invalid;
			b->dirty = 1;
			return (0);
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (store_charge_bucket(st, (n + 1) * sizeof *t, b) != 0)
		return (-1);
	if ((t = realloc(b->tallies, (n + 1) * sizeof *t)) == NULL) {
		store_uncharge(st, (n + 1) * sizeof *t, 0);
		return (-1);
	}
	if (n > 0)
		store_uncharge(st, n * sizeof *t, 0);
	memmove(t + lo + 1, t + lo, (n - lo) * sizeof *t);
	t[lo] = *add;
	b->tallies = t;
	b->ntallies = n + 1;
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

/* The width of the tier a bucket of a given age belongs to. */
uint64_t
store_tier_width(const struct store *st, uint64_t age_ns)
{
	return (store_tier_for(st, age_ns)->width_ns);
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

/* Adds to what an instance's batches said of a bucket's stacks. */
int
store_add_tally(struct store *st, uint64_t t_ns, uint32_t instance,
    uint32_t flags, uint64_t samples, uint64_t invalid)
{
	struct store_bucket	*b;
	struct store_tally	 add;
	uint64_t		 now = st->now_ns;

	if (samples == 0 && invalid == 0)
		return (0);
	if (store_defs_ptr(&st->defs[STORE_INSTANCE], instance) == NULL)
		return (-1);
	if (now == 0)
		now = store_realtime();
	if (t_ns > now + STORE_FUTURE_NS)
		t_ns = now;
	if (now > st->cfg.retention_ns && t_ns < now - st->cfg.retention_ns)
		return (-1);
	if ((b = store_bucket_for(st, t_ns)) == NULL)
		return (-1);
	add.instance = instance;
	add.flags = flags;
	add.samples = samples;
	add.invalid = invalid;
	return (store_bucket_tally(st, b, &add));
}

/* Orders entries by key. */
int
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

/* Merges sorted entries a and b into out (room for na + nb), summing
 * equal keys; returns how many. */
size_t
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

/* Merges sorted tallies a and b into out, summing equal keys. */
size_t
store_merge_tallies(struct store_tally *out, const struct store_tally *a,
    size_t na, const struct store_tally *b, size_t nb)
{
	size_t	i = 0, j = 0, n = 0;
	int	c;

	while (i < na || j < nb) {
		if (i == na)
			c = 1;
		else if (j == nb)
			c = -1;
		else
			c = store_cmp_tally(&a[i], &b[j]);
		if (c < 0)
			out[n++] = a[i++];
		else if (c > 0)
			out[n++] = b[j++];
		else {
			out[n] = a[i++];
			out[n].samples += b[j].samples;
			out[n++].invalid += b[j++].invalid;
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
	struct store_tally	*tacc = NULL, *ttmp;
	size_t			 n = 0, cap = 0, m, nt = 0;
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
			free(tacc);
			return (-1);
		}
		n = store_merge(tmp, acc, n, b->entries, b->n);
		free(acc);
		acc = tmp;
		cap = m;
		if (b->ntallies > 0) {
			if ((ttmp = malloc((nt + b->ntallies) *
			    sizeof *ttmp)) == NULL) {
				free(acc);
				free(tacc);
				return (-1);
			}
			nt = store_merge_tallies(ttmp, tacc, nt, b->tallies,
			    b->ntallies);
			free(tacc);
			tacc = ttmp;
		}
		samples += b->samples;
		k++;
	}
	if (k < 2 && first->width_ns == width) {
		free(acc);
		free(tacc);
		return (0);
	}
	(void)cap;
	/* Never an evicting allocation here: it could free an input. */
	if ((nb = calloc(1, sizeof *nb)) == NULL) {
		free(acc);
		free(tacc);
		return (-1);
	}
	if (n > 0 && (tmp = realloc(acc, n * sizeof *tmp)) != NULL)
		acc = tmp;
	if (nt > 0 && (ttmp = realloc(tacc, nt * sizeof *ttmp)) != NULL)
		tacc = ttmp;
	nb->start_ns = start;
	nb->width_ns = width;
	nb->entries = acc;
	nb->n = nb->cap = n;
	nb->tallies = tacc;
	nb->ntallies = nt;
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
	if (nt > 0)
		st->bytes += nt * sizeof *tacc + STORE_MALLOC_OVERHEAD;
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
	while (store_live_bytes(st) > st->cfg.max_bytes &&
	    store_evict_one(st, NULL) == 0)
		;
}

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
	c->max_gone = 256;
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
	int			 k, i;

	if (st == NULL)
		return;
	for (i = 0; i < 2; i++) {
		for (b = i == 0 ? st->buckets : st->retired; b != NULL;
		    b = b1) {
			b1 = b->next;
			free(b->entries);
			free(b->tallies);
			free(b);
		}
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
		free(d->pins);
	}
	free(st);
}

/* The configuration in effect. */
const struct store_config *
store_get_config(const struct store *st)
{
	return (&st->cfg);
}

/* Sets the hook that marks what running queries use, during a sweep. */
void
store_set_sweep_hook(struct store *st, void (*fn)(void *), void *arg)
{
	st->sweep_hook = fn;
	st->sweep_hook_arg = arg;
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

/* Counts a running query (store.h). */
void
store_readers(struct store *st, int delta)
{
	st->readers += delta;
}

/* Holds or releases the ids (store.h). */
void
store_hold_ids(struct store *st, int delta)
{
	st->id_hold += delta;
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
	struct store_defs	*d;
	size_t			 n;
	int			 k;

	if (st->readers > 0)
		return;
	while (st->buckets != NULL)
		store_bucket_drop(st, st->buckets);
	for (k = 0; k < STORE_NKINDS; k++) {
		d = &st->defs[k];
		n = (size_t)d->npins * sizeof *d->pins;
		st->bytes -= n;
		st->def_bytes -= n;
		free(d->pins);
		d->pins = NULL;
		d->npins = 0;
	}
	if (st->hooks.reset != NULL)
		st->hooks.reset(st->hooks.arg);
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
	c->retired_bytes = st->retired_bytes;
	c->retired_buckets = st->nretired;
	c->def_bytes = st->def_bytes;
	c->oldest_ns = st->buckets != NULL ? st->buckets->start_ns : 0;
}

struct store_bucket *
store_buckets(const struct store *st)
{
	return (st->buckets);
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

int
store_load_tallies(struct store *st, const struct store_bucket *loaded,
    const struct store_tally *t, size_t n)
{
	struct store_bucket	*b;
	size_t			 i;

	for (b = st->buckets; b != NULL && b != loaded; b = b->next)
		;
	if (b == NULL || b->ntallies != 0)
		return (-1);
	for (i = 0; i < n; i++) {
		if ((t[i].samples == 0 && t[i].invalid == 0) ||
		    store_defs_ptr(&st->defs[STORE_INSTANCE],
		    t[i].instance) == NULL)
			return (-1);
		if (i > 0 && store_cmp_tally(&t[i - 1], &t[i]) >= 0)
			return (-1);
	}
	if (n == 0)
		return (0);
	/* Loading never evicts. */
	if (store_charge(st, n * sizeof *t, 0) != 0)
		return (-1);
	if ((b->tallies = malloc(n * sizeof *t)) == NULL) {
		store_uncharge(st, n * sizeof *t, 0);
		return (-1);
	}
	memcpy(b->tallies, t, n * sizeof *t);
	b->ntallies = n;
	return (0);
}
