/*
 * intern.c -- the agent's interning tables: strings, functions, frames,
 * stacks and threads, each stored once under a dense internal index (from
 * 1) and found through an open-addressing index keyed by a precomputed hash.
 *
 * Wire ids are not the internal indices: an entry gets a wire id when it is
 * first written in an epoch (a connection, or the part of one after a
 * RESYNC_ACK), so every epoch numbers its definitions densely from 1 in
 * the order it receives them, and a new epoch simply redefines what it
 * needs.  Writes happen in
 * transactions: a batch whose definitions or samples do not fit is rolled
 * back, and so are the wire ids it handed out.
 *
 * Limits: when a table reaches its INTERN_MAX_* limit, the sampler clears
 * every table (intern_reset) and interns the tick again; wire ids keep
 * counting on the same connection, so nothing already sent is invalidated.
 *
 * Everything here but the thread-name table belongs to the sampler thread.
 */

#include <sys/types.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

struct intern_wire {
	uint32_t	id;
	uint32_t	epoch;		/* connection epoch it was sent in */
};

struct intern_slot {
	uint64_t	hash;
	uint32_t	idx;		/* 0: empty */
};

struct intern_index {
	struct intern_slot *slots;
	uint32_t	mask;
	uint32_t	used;
};

struct intern_string {
	uint64_t	hash;
	uint32_t	off;
	uint32_t	len;
	struct intern_wire w;
};

struct intern_func {
	uintptr_t	code;
	uint64_t	fingerprint;
	uint64_t	checked_tick;	/* fingerprint verified in this tick */
	uint32_t	name;
	uint32_t	file;
	int32_t		firstline;
	struct intern_wire w;
};

struct intern_loc {
	uint32_t	func;
	int32_t		loc;
	int32_t		line;
};

struct intern_frame {
	uint32_t	func;
	int32_t		line;
	struct intern_wire w;
};

struct intern_stackent {
	uint64_t	hash;
	uint32_t	off;		/* into stackwords */
	uint16_t	depth;
	uint8_t		truncated;
	struct intern_wire w;
};

struct intern_threadent {
	uint64_t	key;		/* native id, or ident | THREAD_IDENT */
	uint64_t	native_id;
	uint32_t	name;		/* string index */
	uint64_t	names_gen;
	struct intern_thread_state st;
	struct intern_wire w;
};

#define INTERN_THREAD_IDENT	(1ull << 63)

/* A growable array of fixed-size records, bounded. */
struct intern_vec {
	void		*data;
	uint32_t	 n;		/* used, index 0 reserved */
	uint32_t	 cap;
	uint32_t	 max;
	size_t		 size;
};

enum { W_STRING, W_FUNC, W_FRAME, W_STACK, W_THREAD, W_KINDS };

/* The tables.  Sampler thread only. */
static struct intern_vec	strings, funcs, locs, frames, stacks, threads;
static struct intern_index	strings_ix, funcs_ix, locs_ix, frames_ix,
				stacks_ix, threads_ix;
static char			*strbytes;
static uint32_t			 strbytes_len, strbytes_cap;
static uint32_t			*stackwords;
static uint32_t			 stackwords_len, stackwords_cap;
static uint64_t			 intern_tick_no = 1;

/* Wire state of the current connection.  Sampler thread only. */
static uint32_t			 wire_epoch = 1;
static uint32_t			 intern_gen = 1;	/* bumped by a reset */
static uint32_t			 wire_next[W_KINDS];
static uint32_t			 txn_next[W_KINDS];
static struct intern_wire	**txn_log;
static uint32_t			 txn_len, txn_cap;

/*
 * Thread names from Python.  A fixed table, overwritten when full; names
 * only label threads, so losing an old one is harmless.  Protected by
 * names_lock; names_gen is bumped (atomically) on every change.
 */
struct intern_name {
	uint64_t	native_id;
	uint64_t	ident;
	char		name[AGENT_NAME_MAX];
};
static pthread_mutex_t		 names_lock = PTHREAD_MUTEX_INITIALIZER;
static struct intern_name	 names[AGENT_NAME_SLOTS];
static uint64_t			 names_gen = 1;
/* threading ident -> native id, for Pythons whose thread states lack the
 * native id.  Same rules as names. */
struct intern_ident {
	uint64_t	ident;
	uint64_t	native_id;
};
static struct intern_ident	 idents[AGENT_NAME_SLOTS];

/* Mixes a 64-bit value into a well-spread hash. */
static uint64_t
intern_mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return (h);
}

/* Hashes bytes. */
static uint64_t
intern_hash_bytes(const void *p, size_t len, uint64_t seed)
{
	const unsigned char	*s = p;
	uint64_t		 h = seed ^ (len * 0x9e3779b97f4a7c15ull), w;

	/* A multiply and a rotation a word; the final mix spreads it all. */
	while (len >= 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
		h = (h << 29) | (h >> 35);
		s += 8;
		len -= 8;
	}
	w = 0;
	memcpy(&w, s, len);
	return (intern_mix(h ^ w));
}

/* Makes room for one more record; its index, or 0 if at the limit. */
static uint32_t
intern_vec_add(struct intern_vec *v)
{
	uint32_t	 cap;
	void		*p;

	if (v->n + 1 > v->max)
		return (0);
	if (v->n + 1 >= v->cap) {
		cap = v->cap ? v->cap * 2 : 256;
		if (cap > v->max + 1)
			cap = v->max + 1;
		if ((p = realloc(v->data, (size_t)cap * v->size)) == NULL)
			return (0);
		v->data = p;
		v->cap = cap;
	}
	v->n++;
	memset((char *)v->data + (size_t)v->n * v->size, 0, v->size);
	return (v->n);
}

#define VEC_AT(v, type, i)	(&((type *)(v).data)[i])

/* Inserts idx under hash, growing the index at half load; 0 or -1. */
static int
intern_index_put(struct intern_index *ix, uint64_t hash, uint32_t idx)
{
	struct intern_slot	*old = ix->slots, *s;
	uint32_t		 oldcap = ix->slots ? ix->mask + 1 : 0, cap, i;

	if (ix->slots == NULL || (ix->used + 1) * 2 > ix->mask + 1) {
		cap = oldcap ? oldcap * 2 : 1024;
		if ((ix->slots = calloc(cap, sizeof *ix->slots)) == NULL) {
			ix->slots = old;
			return (-1);
		}
		ix->mask = cap - 1;
		for (i = 0; i < oldcap; i++) {
			if (old[i].idx == 0)
				continue;
			s = &ix->slots[old[i].hash & ix->mask];
			while (s->idx != 0)
				s = &ix->slots[(s - ix->slots + 1) & ix->mask];
			*s = old[i];
		}
		free(old);
	}
	s = &ix->slots[hash & ix->mask];
	while (s->idx != 0)
		s = &ix->slots[(s - ix->slots + 1) & ix->mask];
	s->hash = hash;
	s->idx = idx;
	ix->used++;
	return (0);
}

/* First slot to look at for hash (NULL if the index is empty). */
static struct intern_slot *
intern_index_first(struct intern_index *ix, uint64_t hash)
{
	if (ix->slots == NULL)
		return (NULL);
	return (&ix->slots[hash & ix->mask]);
}

/* Next slot in the probe sequence. */
static struct intern_slot *
intern_index_next(struct intern_index *ix, struct intern_slot *s)
{
	return (&ix->slots[(s - ix->slots + 1) & ix->mask]);
}

/* Empties an index, keeping its memory. */
static void
intern_index_clear(struct intern_index *ix)
{
	if (ix->slots != NULL)
		memset(ix->slots, 0, ((size_t)ix->mask + 1) * sizeof *ix->slots);
	ix->used = 0;
}

/* Frees an index. */
static void
intern_index_free(struct intern_index *ix)
{
	free(ix->slots);
	memset(ix, 0, sizeof *ix);
}

/* Sets up one vector. */
static void
intern_vec_init(struct intern_vec *v, size_t size, uint32_t max)
{
	memset(v, 0, sizeof *v);
	v->size = size;
	v->max = max;
}

/* Allocates nothing yet: tables grow on first use. */
int
intern_init(void)
{
	intern_vec_init(&strings, sizeof(struct intern_string),
	    INTERN_MAX_STRINGS);
	intern_vec_init(&funcs, sizeof(struct intern_func), INTERN_MAX_FUNCS);
	intern_vec_init(&locs, sizeof(struct intern_loc), INTERN_MAX_LOCS);
	intern_vec_init(&frames, sizeof(struct intern_frame),
	    INTERN_MAX_FRAMES);
	intern_vec_init(&stacks, sizeof(struct intern_stackent),
	    INTERN_MAX_STACKS);
	intern_vec_init(&threads, sizeof(struct intern_threadent),
	    INTERN_MAX_THREADS);
	intern_new_epoch();
	return (0);
}

/* Frees every table. */
void
intern_free(void)
{
	struct intern_vec	*v[] = { &strings, &funcs, &locs, &frames,
				    &stacks, &threads };
	struct intern_index	*ix[] = { &strings_ix, &funcs_ix, &locs_ix,
				    &frames_ix, &stacks_ix, &threads_ix };
	size_t			 i;

	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		free(v[i]->data);
		intern_vec_init(v[i], v[i]->size, v[i]->max);
		intern_index_free(ix[i]);
	}
	free(strbytes);
	strbytes = NULL;
	strbytes_len = strbytes_cap = 0;
	free(stackwords);
	stackwords = NULL;
	stackwords_len = stackwords_cap = 0;
	free(txn_log);
	txn_log = NULL;
	txn_len = txn_cap = 0;
}

/* Clears every table; the reader forgets the code objects it pinned. */
void
intern_reset(const struct reader *r)
{
	struct intern_vec	*v[] = { &strings, &funcs, &locs, &frames,
				    &stacks, &threads };
	struct intern_index	*ix[] = { &strings_ix, &funcs_ix, &locs_ix,
				    &frames_ix, &stacks_ix, &threads_ix };
	size_t			 i;

	if (r != NULL && r->forget != NULL && funcs_ix.slots != NULL) {
		for (i = 0; i <= funcs_ix.mask; i++) {
			if (funcs_ix.slots[i].idx != 0)
				r->forget(VEC_AT(funcs, struct intern_func,
				    funcs_ix.slots[i].idx)->code);
		}
	}
	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		v[i]->n = 0;
		intern_index_clear(ix[i]);
	}
	strbytes_len = 0;
	stackwords_len = 0;
	intern_gen++;
}

/* The tables' generation: indices of an older one mean nothing now. */
uint32_t
intern_generation(void)
{
	return (intern_gen);
}

/* Starts a tick: fingerprints get checked again. */
void
intern_tick(void)
{
	intern_tick_no++;
}

/* Interns a string; its index, or 0 (*full set if a table is full). */
static uint32_t
intern_string(const char *s, size_t len, int *full)
{
	struct intern_slot	*sl;
	struct intern_string	*e;
	uint64_t		 h;
	uint32_t		 idx, cap;
	char			*p;

	if (len > PROTO_MAX_STRING - 1)
		len = PROTO_MAX_STRING - 1;
	h = intern_hash_bytes(s, len, 0x5157);
	for (sl = intern_index_first(&strings_ix, h); sl != NULL &&
	    sl->idx != 0; sl = intern_index_next(&strings_ix, sl)) {
		e = VEC_AT(strings, struct intern_string, sl->idx);
		if (sl->hash == h && e->len == len &&
		    memcmp(strbytes + e->off, s, len) == 0)
			return (sl->idx);
	}
	if ((uint64_t)strbytes_len + len > INTERN_MAX_STRBYTES)
		goto full;
	if (strbytes_len + len > strbytes_cap) {
		cap = strbytes_cap ? strbytes_cap : 65536;
		while (cap < strbytes_len + len)
			cap *= 2;
		if ((p = realloc(strbytes, cap)) == NULL)
			goto full;
		strbytes = p;
		strbytes_cap = cap;
	}
	if ((idx = intern_vec_add(&strings)) == 0)
		goto full;
	e = VEC_AT(strings, struct intern_string, idx);
	e->hash = h;
	e->off = strbytes_len;
	e->len = (uint32_t)len;
	memcpy(strbytes + strbytes_len, s, len);
	strbytes_len += (uint32_t)len;
	if (intern_index_put(&strings_ix, h, idx) != 0) {
		strings.n--;
		goto full;
	}
	return (idx);
full:
	*full = 1;
	return (0);
}

/* Defines a function for code; its index or 0. */
static uint32_t
intern_func_new(const struct reader *r, uintptr_t code, uint64_t fp,
    int *full)
{
	struct reader_code	 rc;
	struct intern_func	*f;
	uint32_t		 name, file, idx;

	if (r->code(code, &rc) != 0)
		return (0);
	rc.qualname[sizeof rc.qualname - 1] = '\0';
	rc.filename[sizeof rc.filename - 1] = '\0';
	if ((name = intern_string(rc.qualname, strlen(rc.qualname),
	    full)) == 0)
		return (0);
	if ((file = intern_string(rc.filename, strlen(rc.filename),
	    full)) == 0)
		return (0);
	if ((idx = intern_vec_add(&funcs)) == 0) {
		*full = 1;
		return (0);
	}
	f = VEC_AT(funcs, struct intern_func, idx);
	f->code = code;
	f->fingerprint = fp;
	f->checked_tick = intern_tick_no;
	f->name = name;
	f->file = file;
	f->firstline = rc.firstline < 0 ? 0 : rc.firstline;
	return (idx);
}

/*
 * Interns the function of a code address.  The address is checked against
 * the reader's fingerprint once per tick: a freed code object's memory
 * reused by another one gets a new function, the old one stays for the
 * stacks that name it.
 */
static uint32_t
intern_func(const struct reader *r, uintptr_t code, int *full)
{
	struct intern_slot	*sl;
	struct intern_func	*f;
	uint64_t		 h = intern_mix(code), fp;
	uint32_t		 idx;

	for (sl = intern_index_first(&funcs_ix, h); sl != NULL &&
	    sl->idx != 0; sl = intern_index_next(&funcs_ix, sl)) {
		f = VEC_AT(funcs, struct intern_func, sl->idx);
		if (f->code != code)
			continue;
		if (f->checked_tick == intern_tick_no || r->fingerprint == NULL)
			return (sl->idx);
		if ((fp = r->fingerprint(code)) == 0)
			return (0);
		if (fp == f->fingerprint) {
			f->checked_tick = intern_tick_no;
			return (sl->idx);
		}
		if ((idx = intern_func_new(r, code, fp, full)) == 0)
			return (0);
		sl->idx = idx;
		return (idx);
	}
	fp = r->fingerprint != NULL ? r->fingerprint(code) : 1;
	if (fp == 0)
		return (0);
	if ((idx = intern_func_new(r, code, fp, full)) == 0)
		return (0);
	if (intern_index_put(&funcs_ix, h, idx) != 0) {
		funcs.n--;
		*full = 1;
		return (0);
	}
	return (idx);
}

/* Maps a location of a function to a line, asking the reader once. */
static int
intern_line(const struct reader *r, uint32_t func, uintptr_t code,
    int32_t loc, int32_t *line, int *full)
{
	struct intern_slot	*sl;
	struct intern_loc	*l;
	uint64_t		 h;
	uint32_t		 idx;

	if (r->loc == READER_LOC_LINE) {
		*line = loc;
		return (0);
	}
	h = intern_mix(((uint64_t)func << 32) ^ (uint32_t)loc);
	for (sl = intern_index_first(&locs_ix, h); sl != NULL &&
	    sl->idx != 0; sl = intern_index_next(&locs_ix, sl)) {
		l = VEC_AT(locs, struct intern_loc, sl->idx);
		if (l->func == func && l->loc == loc) {
			*line = l->line;
			return (0);
		}
	}
	if ((idx = intern_vec_add(&locs)) == 0) {
		*full = 1;
		return (-1);
	}
	l = VEC_AT(locs, struct intern_loc, idx);
	l->func = func;
	l->loc = loc;
	l->line = r->line != NULL ? r->line(code, loc) : loc;
	if (l->line < 0)
		l->line = 0;
	if (intern_index_put(&locs_ix, h, idx) != 0) {
		locs.n--;
		*full = 1;
		return (-1);
	}
	*line = l->line;
	return (0);
}

/* Interns a (function, line) frame. */
static uint32_t
intern_frame(uint32_t func, int32_t line, int *full)
{
	struct intern_slot	*sl;
	struct intern_frame	*fr;
	uint64_t		 h;
	uint32_t		 idx;

	if (line < 0)
		line = 0;
	h = intern_mix(((uint64_t)func << 32) ^ (uint32_t)line ^ 0xf7a3e);
	for (sl = intern_index_first(&frames_ix, h); sl != NULL &&
	    sl->idx != 0; sl = intern_index_next(&frames_ix, sl)) {
		fr = VEC_AT(frames, struct intern_frame, sl->idx);
		if (fr->func == func && fr->line == line)
			return (sl->idx);
	}
	if ((idx = intern_vec_add(&frames)) == 0)
		goto full;
	fr = VEC_AT(frames, struct intern_frame, idx);
	fr->func = func;
	fr->line = line;
	if (intern_index_put(&frames_ix, h, idx) != 0) {
		frames.n--;
		goto full;
	}
	return (idx);
full:
	*full = 1;
	return (0);
}

/* Interns frame i of a captured stack: its frame index, or 0. */
static uint32_t
intern_frame_of(const struct reader *r, const struct reader_thread *t,
    uint32_t i, int *full)
{
	uint32_t	func;
	int32_t		line;

	if ((func = intern_func(r, t->frames[i].code, full)) == 0)
		return (0);
	if (intern_line(r, func, t->frames[i].code, t->frames[i].loc, &line,
	    full) != 0)
		return (0);
	return (intern_frame(func, line, full));
}

static uint32_t	intern_stack_ids(const uint32_t *, uint32_t, int, int *);

/* Interns a captured stack. */
uint32_t
intern_stack(const struct reader *r, const struct reader_thread *t,
    int *full)
{
	uint32_t	ids[PROTO_MAX_DEPTH], depth, i;

	depth = t->depth > PROTO_MAX_DEPTH ? PROTO_MAX_DEPTH : t->depth;
	if (depth == 0)
		return (0);
	for (i = 0; i < depth; i++) {
		if ((ids[i] = intern_frame_of(r, t, i, full)) == 0)
			return (0);
	}
	return (intern_stack_ids(ids, depth, t->truncated != 0, full));
}

/*
 * The stacks intern_stack_leaf made lately, by the stack whose callers they
 * share and their leaf: a thread whose leaf moves among a few lines under
 * the same callers finds its stack here without hashing it.  An entry is
 * only a hint: the stack it names is compared with what it must be.
 */
#define INTERN_LEAF_SLOTS	256	/* 2^n */
static struct {
	uint32_t	like, leaf, idx;
} intern_leaves[INTERN_LEAF_SLOTS];

/*
 * Interns a captured stack whose frames but the leaf are those of stack
 * `like` (the caller knows: the same code and locations as when `like` was
 * interned, in this generation): only the leaf is looked up.
 */
uint32_t
intern_stack_leaf(const struct reader *r, const struct reader_thread *t,
    uint32_t like, int *full)
{
	uint32_t		 ids[PROTO_MAX_DEPTH], depth, idx, slot;
	struct intern_stackent	*e, *o;

	depth = t->depth > PROTO_MAX_DEPTH ? PROTO_MAX_DEPTH : t->depth;
	if (like == 0 || like > stacks.n)
		return (intern_stack(r, t, full));
	e = VEC_AT(stacks, struct intern_stackent, like);
	if (depth == 0 || e->depth != depth ||
	    e->truncated != (t->truncated != 0))
		return (intern_stack(r, t, full));
	if ((ids[0] = intern_frame_of(r, t, 0, full)) == 0)
		return (0);
	slot = (uint32_t)(intern_mix(((uint64_t)like << 32) | ids[0]) &
	    (INTERN_LEAF_SLOTS - 1));
	idx = intern_leaves[slot].idx;
	if (intern_leaves[slot].like == like &&
	    intern_leaves[slot].leaf == ids[0] && idx != 0 && idx <= stacks.n) {
		o = VEC_AT(stacks, struct intern_stackent, idx);
		if (o->depth == depth && o->truncated == e->truncated &&
		    stackwords[o->off] == ids[0] &&
		    memcmp(stackwords + o->off + 1, stackwords + e->off + 1,
		    (depth - 1) * sizeof ids[0]) == 0)
			return (idx);
	}
	memcpy(ids + 1, stackwords + e->off + 1, (depth - 1) * sizeof ids[0]);
	if ((idx = intern_stack_ids(ids, depth, t->truncated != 0, full)) != 0) {
		intern_leaves[slot].like = like;
		intern_leaves[slot].leaf = ids[0];
		intern_leaves[slot].idx = idx;
	}
	return (idx);
}

/* Interns a stack of frame indices, leaf first. */
static uint32_t
intern_stack_ids(const uint32_t *ids, uint32_t depth, int truncated,
    int *full)
{
	uint32_t		 idx, cap;
	struct intern_slot	*sl;
	struct intern_stackent	*e;
	uint64_t		 h;
	uint32_t		*p;

	h = intern_hash_bytes(ids, depth * sizeof ids[0],
	    truncated ? 0x7275 : 0x5354);
	for (sl = intern_index_first(&stacks_ix, h); sl != NULL &&
	    sl->idx != 0; sl = intern_index_next(&stacks_ix, sl)) {
		e = VEC_AT(stacks, struct intern_stackent, sl->idx);
		if (sl->hash == h && e->depth == depth &&
		    e->truncated == truncated &&
		    memcmp(stackwords + e->off, ids, depth * sizeof ids[0]) == 0)
			return (sl->idx);
	}
	if ((uint64_t)stackwords_len + depth > INTERN_MAX_STACKWORDS)
		goto full;
	if (stackwords_len + depth > stackwords_cap) {
		cap = stackwords_cap ? stackwords_cap : 65536;
		while (cap < stackwords_len + depth)
			cap *= 2;
		if ((p = realloc(stackwords, (size_t)cap * sizeof *p)) == NULL)
			goto full;
		stackwords = p;
		stackwords_cap = cap;
	}
	if ((idx = intern_vec_add(&stacks)) == 0)
		goto full;
	e = VEC_AT(stacks, struct intern_stackent, idx);
	e->hash = h;
	e->off = stackwords_len;
	e->depth = (uint16_t)depth;
	e->truncated = truncated != 0;
	memcpy(stackwords + stackwords_len, ids, depth * sizeof ids[0]);
	stackwords_len += depth;
	if (intern_index_put(&stacks_ix, h, idx) != 0) {
		stacks.n--;
		goto full;
	}
	return (idx);
full:
	*full = 1;
	return (0);
}

/* Looks a thread's name up; copies it into buf, or returns -1. */
static int
intern_name_find(uint64_t native_id, uint64_t ident, char *buf, size_t len)
{
	size_t	 i, start;
	int	 found = -1;

	start = (size_t)intern_mix(native_id ? native_id : ident) %
	    AGENT_NAME_SLOTS;
	pthread_mutex_lock(&names_lock);
	for (i = 0; i < AGENT_NAME_SLOTS; i++) {
		struct intern_name *n = &names[(start + i) % AGENT_NAME_SLOTS];

		if (n->native_id == 0 && n->ident == 0)
			break;
		if ((native_id != 0 && n->native_id == native_id) ||
		    (native_id == 0 && ident != 0 && n->ident == ident)) {
			snprintf(buf, len, "%s", n->name);
			found = 0;
			break;
		}
	}
	pthread_mutex_unlock(&names_lock);
	return (found);
}

/* Records a thread's name (from threading), replacing an older one. */
void
intern_set_thread_name(uint64_t native_id, uint64_t ident, const char *name,
    size_t len)
{
	struct intern_name	*n, *slot = NULL;
	size_t			 i, start;

	if (native_id == 0 && ident == 0)
		return;
	if (len >= AGENT_NAME_MAX)
		len = AGENT_NAME_MAX - 1;
	/* Names are filed under the native id: both lookups start there. */
	start = (size_t)intern_mix(native_id ? native_id : ident) %
	    AGENT_NAME_SLOTS;
	pthread_mutex_lock(&names_lock);
	for (i = 0; i < AGENT_NAME_SLOTS; i++) {
		n = &names[(start + i) % AGENT_NAME_SLOTS];
		if ((n->native_id == 0 && n->ident == 0) ||
		    (native_id != 0 && n->native_id == native_id) ||
		    (native_id == 0 && n->ident == ident)) {
			slot = n;
			break;
		}
	}
	if (slot == NULL)
		slot = &names[start];	/* full: overwrite the home slot */
	slot->native_id = native_id;
	slot->ident = ident;
	memcpy(slot->name, name, len);
	slot->name[len] = '\0';
	if (ident != 0 && native_id != 0) {
		struct intern_ident *id = NULL;

		start = (size_t)intern_mix(ident) % AGENT_NAME_SLOTS;
		for (i = 0; i < AGENT_NAME_SLOTS; i++) {
			id = &idents[(start + i) % AGENT_NAME_SLOTS];
			if (id->ident == 0 || id->ident == ident)
				break;
		}
		if (i == AGENT_NAME_SLOTS)
			id = &idents[start];
		id->ident = ident;
		id->native_id = native_id;
	}
	__atomic_add_fetch(&names_gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&names_lock);
}

/* The native id recorded for a threading ident (3.9/3.10 gil reader). */
uint64_t
intern_native_of_ident(uint64_t ident)
{
	uint64_t	 native = 0;
	size_t		 i, start;

	if (ident == 0)
		return (0);
	start = (size_t)intern_mix(ident) % AGENT_NAME_SLOTS;
	pthread_mutex_lock(&names_lock);
	for (i = 0; i < AGENT_NAME_SLOTS; i++) {
		struct intern_ident *n = &idents[(start + i) % AGENT_NAME_SLOTS];

		if (n->ident == 0)
			break;
		if (n->ident == ident) {
			native = n->native_id;
			break;
		}
	}
	pthread_mutex_unlock(&names_lock);
	return (native);
}

/* Forgets every thread name. */
void
intern_names_clear(void)
{
	pthread_mutex_lock(&names_lock);
	memset(names, 0, sizeof names);
	memset(idents, 0, sizeof idents);
	__atomic_add_fetch(&names_gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&names_lock);
}

/* Resolves the name string of a thread. */
static uint32_t
intern_thread_name(uint64_t native_id, uint64_t ident, int *full)
{
	char	buf[AGENT_NAME_MAX];

	if (intern_name_find(native_id, ident, buf, sizeof buf) != 0) {
		if (native_id != 0 && native_id == (uint64_t)getpid())
			snprintf(buf, sizeof buf, "MainThread");
		else
			snprintf(buf, sizeof buf, "Thread-%" PRIu64,
			    native_id ? native_id : ident);
	}
	return (intern_string(buf, strlen(buf), full));
}

/* Interns a thread; a renamed thread gets a new entry (new wire id) that
 * carries its sampling state over. */
uint32_t
intern_thread(uint64_t native_id, uint64_t ident, int *full)
{
	struct intern_slot	*sl;
	struct intern_threadent	*e, *old = NULL;
	uint64_t		 key, h, gen;
	uint32_t		 idx, name;

	gen = __atomic_load_n(&names_gen, __ATOMIC_ACQUIRE);
	key = native_id ? native_id : (ident | INTERN_THREAD_IDENT);
	h = intern_mix(key ^ 0x7448);
	for (sl = intern_index_first(&threads_ix, h); sl != NULL &&
	    sl->idx != 0; sl = intern_index_next(&threads_ix, sl)) {
		e = VEC_AT(threads, struct intern_threadent, sl->idx);
		if (e->key != key)
			continue;
		if (e->names_gen == gen)
			return (sl->idx);
		if ((name = intern_thread_name(native_id, ident, full)) == 0)
			return (0);
		if (name == e->name) {
			e->names_gen = gen;
			return (sl->idx);
		}
		old = e;
		break;
	}
	if ((name = intern_thread_name(native_id, ident, full)) == 0)
		return (0);
	if ((idx = intern_vec_add(&threads)) == 0) {
		*full = 1;
		return (0);
	}
	e = VEC_AT(threads, struct intern_threadent, idx);
	if (old != NULL) {
		/* intern_vec_add may have moved the records. */
		old = VEC_AT(threads, struct intern_threadent, sl->idx);
		e->st = old->st;
		sl->idx = idx;
	}
	e->key = key;
	e->native_id = native_id;
	e->name = name;
	e->names_gen = gen;
	if (old == NULL && intern_index_put(&threads_ix, h, idx) != 0) {
		threads.n--;
		*full = 1;
		return (0);
	}
	return (idx);
}

/* The sampling state of a thread entry. */
struct intern_thread_state *
intern_thread_state(uint32_t thread)
{
	return (&VEC_AT(threads, struct intern_threadent, thread)->st);
}

/* Starts a new connection epoch. */
void
intern_new_epoch(void)
{
	int	i;

	wire_epoch++;
	if (wire_epoch == 0)
		wire_epoch = 1;
	for (i = 0; i < W_KINDS; i++)
		wire_next[i] = 1;
	txn_len = 0;
}

/* Whether wire ids of this connection got near the protocol's limit. */
int
intern_wire_exhausted(void)
{
	int	i;

	for (i = 0; i < W_KINDS; i++) {
		if (wire_next[i] > INTERN_WIRE_ID_LIMIT)
			return (1);
	}
	return (0);
}

/* Starts a transaction. */
void
intern_txn_begin(void)
{
	memcpy(txn_next, wire_next, sizeof txn_next);
	txn_len = 0;
}

/* Keeps what the transaction defined. */
void
intern_txn_commit(void)
{
	txn_len = 0;
}

/* Un-defines what the transaction defined and takes its wire ids back. */
void
intern_txn_abort(void)
{
	uint32_t	i;

	for (i = 0; i < txn_len; i++)
		txn_log[i]->epoch = 0;
	txn_len = 0;
	memcpy(wire_next, txn_next, sizeof wire_next);
}

/* Gives an entry its wire id on this connection; -1 if out of memory. */
static int
intern_wire_assign(struct intern_wire *w, int kind)
{
	struct intern_wire	**p;
	uint32_t		 cap;

	if (txn_len == txn_cap) {
		cap = txn_cap ? txn_cap * 2 : 1024;
		if ((p = realloc(txn_log, cap * sizeof *p)) == NULL)
			return (-1);
		txn_log = p;
		txn_cap = cap;
	}
	txn_log[txn_len++] = w;
	w->id = wire_next[kind]++;
	w->epoch = wire_epoch;
	return (0);
}

/* Defines a string on the wire if needed; its wire id or 0. */
static uint32_t
intern_emit_string(struct proto_sink *sink, uint32_t idx)
{
	struct intern_string	*s = VEC_AT(strings, struct intern_string, idx);

	if (s->w.epoch == wire_epoch)
		return (s->w.id);
	if (intern_wire_assign(&s->w, W_STRING) != 0 ||
	    proto_send_string(sink, s->w.id, strbytes + s->off, s->len) != 0)
		return (0);
	return (s->w.id);
}

/* Defines a function (and its strings) if needed. */
static uint32_t
intern_emit_func(struct proto_sink *sink, uint32_t idx)
{
	struct intern_func	*f = VEC_AT(funcs, struct intern_func, idx);
	uint32_t		 name, file;

	if (f->w.epoch == wire_epoch)
		return (f->w.id);
	if ((name = intern_emit_string(sink, f->name)) == 0 ||
	    (file = intern_emit_string(sink, f->file)) == 0)
		return (0);
	if (intern_wire_assign(&f->w, W_FUNC) != 0 ||
	    proto_send_func(sink, f->w.id, name, file,
	    (uint32_t)f->firstline) != 0)
		return (0);
	return (f->w.id);
}

/* Defines a frame (and its function) if needed. */
static uint32_t
intern_emit_frame(struct proto_sink *sink, uint32_t idx)
{
	struct intern_frame	*fr = VEC_AT(frames, struct intern_frame, idx);
	uint32_t		 func;

	if (fr->w.epoch == wire_epoch)
		return (fr->w.id);
	if ((func = intern_emit_func(sink, fr->func)) == 0)
		return (0);
	if (intern_wire_assign(&fr->w, W_FRAME) != 0 ||
	    proto_send_frame(sink, fr->w.id, func, (uint32_t)fr->line) != 0)
		return (0);
	return (fr->w.id);
}

/* Defines a stack (and its frames) if needed. */
static uint32_t
intern_emit_stack(struct proto_sink *sink, uint32_t idx)
{
	struct intern_stackent	*e = VEC_AT(stacks, struct intern_stackent,
				    idx);
	uint32_t		 ids[PROTO_MAX_DEPTH], i;

	if (e->w.epoch == wire_epoch)
		return (e->w.id);
	for (i = 0; i < e->depth; i++) {
		if ((ids[i] = intern_emit_frame(sink,
		    stackwords[e->off + i])) == 0)
			return (0);
	}
	if (intern_wire_assign(&e->w, W_STACK) != 0 ||
	    proto_send_stack(sink, e->w.id, e->truncated, ids, e->depth) != 0)
		return (0);
	return (e->w.id);
}

/* Defines a thread (and its name) if needed. */
static uint32_t
intern_emit_thread(struct proto_sink *sink, uint32_t idx)
{
	struct intern_threadent	*e = VEC_AT(threads, struct intern_threadent,
				    idx);
	uint32_t		 name;

	if (e->w.epoch == wire_epoch)
		return (e->w.id);
	if ((name = intern_emit_string(sink, e->name)) == 0)
		return (0);
	if (intern_wire_assign(&e->w, W_THREAD) != 0 ||
	    proto_send_thread(sink, e->w.id, e->native_id, name) != 0)
		return (0);
	return (e->w.id);
}

/* Writes what a sample needs and fills its wire form. */
int
intern_emit(struct proto_sink *sink, const struct intern_sample *s,
    struct proto_sample *out)
{
	if ((out->stack = intern_emit_stack(sink, s->stack)) == 0 ||
	    (out->thread = intern_emit_thread(sink, s->thread)) == 0)
		return (-1);
	out->weight_us = s->weight_us;
	out->flags = s->flags;
	return (0);
}

/* In a fork child: the names lock may have been held by a parent thread
 * that does not exist here. */
void
intern_fork_child(void)
{
	pthread_mutex_t	fresh = PTHREAD_MUTEX_INITIALIZER;

	/* Names of the parent's threads stay: their tids are not ours, and
	 * a thread that reuses one registers its own name when it starts. */
	memcpy(&names_lock, &fresh, sizeof fresh);
	names_gen++;
	txn_len = 0;
}
