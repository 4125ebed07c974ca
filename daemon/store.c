/*
 * store.c -- the interned profile (see store.h).
 *
 * Each kind lives in a uthash table keyed by its content, plus a vector from
 * id - 1 to the item, so both "intern this" and "what is id N" are O(1).
 * Every allocation is charged to `bytes` before it is made; the store never
 * grows past max_bytes.
 */

#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "proto.h"
#include "store.h"

/* Rough per-item cost of a hash entry and its bucket and vector slot. */
#define STORE_ITEM_OVERHEAD	(sizeof(UT_hash_handle) + 16 + sizeof(void *))

struct store_string {
	UT_hash_handle	 hh;
	uint32_t	 id;
	uint32_t	 len;
	char		 data[];	/* len bytes, then a NUL */
};

struct store_func_key {
	uint32_t	name;
	uint32_t	file;
	uint32_t	line;
};

struct store_func {
	UT_hash_handle		hh;
	struct store_func_key	key;
	uint32_t		id;
};

struct store_frame_key {
	uint32_t	func;
	uint32_t	line;
};

struct store_frame {
	UT_hash_handle		hh;
	struct store_frame_key	key;
	uint32_t		id;
};

struct store_stack {
	UT_hash_handle	 hh;
	uint32_t	 id;
	uint32_t	 depth;		/* frames, truncation root included */
	uint32_t	 leaf;		/* function of frames[0], or 0 */
	uint32_t	 nfuncs;	/* distinct functions */
	uint32_t	 data[];	/* depth frame ids (the key), then
					   nfuncs function ids */
};

struct store_entry {
	UT_hash_handle	 hh;
	uint64_t	 key;		/* pid << 32 | stack */
	uint64_t	 count;
	uint64_t	 weight_us;
};

/* A vector from id - 1 to item. */
struct store_vec {
	void	**items;
	size_t	  len;
	size_t	  cap;
};

struct store {
	size_t			 max_stacks;
	size_t			 max_bytes;
	size_t			 bytes;
	uint64_t		 overflow;
	uint64_t		 refused;

	struct store_string	*string_table;
	struct store_func	*func_table;
	struct store_frame	*frame_table;
	struct store_stack	*stack_table;
	struct store_entry	*entry_table;
	size_t			 nentries;

	struct store_vec	 strings;
	struct store_vec	 funcs;
	struct store_vec	 frames;
	struct store_vec	 stacks;

	uint32_t		 truncated_frame;	/* root of cut stacks */
};

/* Reserves n bytes of the budget; -1 if the store would be too big. */
static int
store_charge(struct store *st, size_t n)
{
	if (n > st->max_bytes || st->bytes > st->max_bytes - n)
		return (-1);
	st->bytes += n;
	return (0);
}

/* Makes room for one more item in a vector; -1 if full. */
static int
store_vec_reserve(struct store *st, struct store_vec *v)
{
	void	**items;
	size_t	  cap;

	if (v->len < v->cap)
		return (0);
	if (v->len >= PROTO_MAX_ID * 4u)
		return (-1);
	cap = v->cap == 0 ? 64 : v->cap * 2;
	items = realloc(v->items, cap * sizeof *items);
	if (items == NULL)
		return (-1);
	v->items = items;
	v->cap = cap;
	return (0);
}

/* Appends an item and returns its id. */
static uint32_t
store_vec_push(struct store_vec *v, void *item)
{
	v->items[v->len++] = item;
	return ((uint32_t)v->len);
}

/* Returns the item of an id, or NULL. */
static void *
store_vec_get(const struct store_vec *v, uint32_t id)
{
	if (id == 0 || id > v->len)
		return (NULL);
	return (v->items[id - 1]);
}

/* Creates an empty store. */
struct store *
store_new(size_t max_stacks, size_t max_bytes)
{
	struct store	*st;
	uint32_t	 name, empty, func;

	if ((st = calloc(1, sizeof *st)) == NULL)
		return (NULL);
	st->max_stacks = max_stacks;
	st->max_bytes = max_bytes;
	st->bytes = sizeof *st;

	name = store_string(st, PROTO_TRUNCATED_NAME,
	    strlen(PROTO_TRUNCATED_NAME));
	empty = store_string(st, "", 0);
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
	struct store_string	*s, *s1;
	struct store_func	*f, *f1;
	struct store_frame	*fr, *fr1;
	struct store_stack	*sk, *sk1;

	if (st == NULL)
		return;
	store_reset(st);
	HASH_ITER(hh, st->string_table, s, s1) {
		HASH_DEL(st->string_table, s);
		free(s);
	}
	HASH_ITER(hh, st->func_table, f, f1) {
		HASH_DEL(st->func_table, f);
		free(f);
	}
	HASH_ITER(hh, st->frame_table, fr, fr1) {
		HASH_DEL(st->frame_table, fr);
		free(fr);
	}
	HASH_ITER(hh, st->stack_table, sk, sk1) {
		HASH_DEL(st->stack_table, sk);
		free(sk);
	}
	free(st->strings.items);
	free(st->funcs.items);
	free(st->frames.items);
	free(st->stacks.items);
	free(st);
}

/* Interns a string. */
uint32_t
store_string(struct store *st, const char *str, size_t len)
{
	struct store_string	*s;
	size_t			 size;

	if (len > PROTO_MAX_STRING)
		return (0);
	HASH_FIND(hh, st->string_table, str, len, s);
	if (s != NULL)
		return (s->id);

	size = sizeof *s + len + 1;
	if (store_charge(st, size + STORE_ITEM_OVERHEAD) != 0)
		goto fail;
	if (store_vec_reserve(st, &st->strings) != 0 ||
	    (s = malloc(size)) == NULL) {
		st->bytes -= size + STORE_ITEM_OVERHEAD;
		goto fail;
	}
	s->len = (uint32_t)len;
	memcpy(s->data, str, len);
	s->data[len] = '\0';
	s->id = store_vec_push(&st->strings, s);
	HASH_ADD_KEYPTR(hh, st->string_table, s->data, s->len, s);
	return (s->id);

fail:
	st->refused++;
	return (0);
}

/* Interns a function: name and file are string ids. */
uint32_t
store_func(struct store *st, uint32_t name, uint32_t file, uint32_t line)
{
	struct store_func	*f;
	struct store_func_key	 key;

	if (store_vec_get(&st->strings, name) == NULL ||
	    store_vec_get(&st->strings, file) == NULL)
		return (0);
	memset(&key, 0, sizeof key);
	key.name = name;
	key.file = file;
	key.line = line;
	HASH_FIND(hh, st->func_table, &key, sizeof key, f);
	if (f != NULL)
		return (f->id);

	if (store_charge(st, sizeof *f + STORE_ITEM_OVERHEAD) != 0)
		goto fail;
	if (store_vec_reserve(st, &st->funcs) != 0 ||
	    (f = malloc(sizeof *f)) == NULL) {
		st->bytes -= sizeof *f + STORE_ITEM_OVERHEAD;
		goto fail;
	}
	memset(f, 0, sizeof *f);
	f->key = key;
	f->id = store_vec_push(&st->funcs, f);
	HASH_ADD(hh, st->func_table, key, sizeof key, f);
	return (f->id);

fail:
	st->refused++;
	return (0);
}

/* Interns a frame: a function id and the line being run. */
uint32_t
store_frame(struct store *st, uint32_t func, uint32_t line)
{
	struct store_frame	*fr;
	struct store_frame_key	 key;

	if (store_vec_get(&st->funcs, func) == NULL)
		return (0);
	memset(&key, 0, sizeof key);
	key.func = func;
	key.line = line;
	HASH_FIND(hh, st->frame_table, &key, sizeof key, fr);
	if (fr != NULL)
		return (fr->id);

	if (store_charge(st, sizeof *fr + STORE_ITEM_OVERHEAD) != 0)
		goto fail;
	if (store_vec_reserve(st, &st->frames) != 0 ||
	    (fr = malloc(sizeof *fr)) == NULL) {
		st->bytes -= sizeof *fr + STORE_ITEM_OVERHEAD;
		goto fail;
	}
	memset(fr, 0, sizeof *fr);
	fr->key = key;
	fr->id = store_vec_push(&st->frames, fr);
	HASH_ADD(hh, st->frame_table, key, sizeof key, fr);
	return (fr->id);

fail:
	st->refused++;
	return (0);
}

/* Returns the function of a frame id known to be valid. */
static uint32_t
store_frame_func(const struct store *st, uint32_t frame)
{
	const struct store_frame *fr = st->frames.items[frame - 1];

	return (fr->key.func);
}

/* Interns a stack of frame ids, leaf first. */
uint32_t
store_stack(struct store *st, const uint32_t *frames, uint32_t depth,
    int truncated)
{
	struct store_stack	*sk;
	uint32_t		 key[PROTO_MAX_DEPTH + 1], func, i, j, n;
	size_t			 keylen, size;

	if (depth > PROTO_MAX_DEPTH)
		return (0);
	for (i = 0; i < depth; i++) {
		if (store_vec_get(&st->frames, frames[i]) == NULL)
			return (0);
		key[i] = frames[i];
	}
	n = depth;
	if (truncated)
		key[n++] = st->truncated_frame;
	keylen = n * sizeof key[0];
	HASH_FIND(hh, st->stack_table, key, keylen, sk);
	if (sk != NULL)
		return (sk->id);

	if (st->stacks.len >= st->max_stacks)
		goto fail;
	size = sizeof *sk + 2 * keylen;
	if (store_charge(st, size + STORE_ITEM_OVERHEAD) != 0)
		goto fail;
	if (store_vec_reserve(st, &st->stacks) != 0 ||
	    (sk = malloc(size)) == NULL) {
		st->bytes -= size + STORE_ITEM_OVERHEAD;
		goto fail;
	}
	memset(sk, 0, sizeof *sk);
	sk->depth = n;
	memcpy(sk->data, key, keylen);
	sk->leaf = n > 0 ? store_frame_func(st, key[0]) : 0;

	/* Distinct functions, so recursion counts once in "total". */
	for (i = 0; i < n; i++) {
		func = store_frame_func(st, key[i]);
		for (j = 0; j < sk->nfuncs; j++) {
			if (sk->data[n + j] == func)
				break;
		}
		if (j == sk->nfuncs)
			sk->data[n + sk->nfuncs++] = func;
	}
	sk->id = store_vec_push(&st->stacks, sk);
	HASH_ADD_KEYPTR(hh, st->stack_table, sk->data, keylen, sk);
	return (sk->id);

fail:
	st->refused++;
	return (0);
}

/* Adds samples to the counter of (pid, stack). */
int
store_add(struct store *st, uint32_t pid, uint32_t stack, uint64_t count,
    uint64_t weight_us)
{
	struct store_entry	*e;
	uint64_t		 key;

	if (store_vec_get(&st->stacks, stack) == NULL)
		goto overflow;
	key = (uint64_t)pid << 32 | stack;
	HASH_FIND(hh, st->entry_table, &key, sizeof key, e);
	if (e == NULL) {
		if (store_charge(st, sizeof *e + STORE_ITEM_OVERHEAD) != 0)
			goto overflow;
		if ((e = calloc(1, sizeof *e)) == NULL) {
			st->bytes -= sizeof *e + STORE_ITEM_OVERHEAD;
			goto overflow;
		}
		e->key = key;
		HASH_ADD(hh, st->entry_table, key, sizeof key, e);
		st->nentries++;
	}
	e->count += count;
	e->weight_us += weight_us;
	return (0);

overflow:
	st->overflow += count;
	return (-1);
}

/* Forgets every sample. */
void
store_reset(struct store *st)
{
	struct store_entry	*e, *e1;

	HASH_ITER(hh, st->entry_table, e, e1) {
		HASH_DEL(st->entry_table, e);
		free(e);
		st->bytes -= sizeof *e + STORE_ITEM_OVERHEAD;
	}
	st->nentries = 0;
}

/* Fills in the store's sizes and counters. */
void
store_get_counts(const struct store *st, struct store_counts *c)
{
	c->overflow = st->overflow;
	c->refused = st->refused;
	c->strings = st->strings.len;
	c->funcs = st->funcs.len;
	c->frames = st->frames.len;
	c->stacks = st->stacks.len;
	c->entries = st->nentries;
	c->bytes = st->bytes;
}

/* Returns a string and its length. */
const char *
store_string_get(const struct store *st, uint32_t id, uint32_t *len)
{
	const struct store_string *s = store_vec_get(&st->strings, id);

	if (s == NULL)
		return (NULL);
	if (len != NULL)
		*len = s->len;
	return (s->data);
}

/* Returns a function's name and file string ids and first line. */
int
store_func_get(const struct store *st, uint32_t id, uint32_t *name,
    uint32_t *file, uint32_t *line)
{
	const struct store_func *f = store_vec_get(&st->funcs, id);

	if (f == NULL)
		return (-1);
	*name = f->key.name;
	*file = f->key.file;
	*line = f->key.line;
	return (0);
}

/* Returns a frame's function and line. */
int
store_frame_get(const struct store *st, uint32_t id, uint32_t *func,
    uint32_t *line)
{
	const struct store_frame *fr = store_vec_get(&st->frames, id);

	if (fr == NULL)
		return (-1);
	*func = fr->key.func;
	*line = fr->key.line;
	return (0);
}

/* Returns a stack's frame ids, leaf first. */
const uint32_t *
store_stack_get(const struct store *st, uint32_t id, uint32_t *depth)
{
	const struct store_stack *sk = store_vec_get(&st->stacks, id);

	if (sk == NULL)
		return (NULL);
	*depth = sk->depth;
	return (sk->data);
}

/* Orders uint32s. */
static int
store_cmp_u32(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x < y ? -1 : x > y);
}

/* Orders function rows: self desc, total desc, id. */
static int
store_cmp_func(const void *a, const void *b)
{
	const struct store_func_row *x = a, *y = b;

	if (x->self != y->self)
		return (x->self > y->self ? -1 : 1);
	if (x->total != y->total)
		return (x->total > y->total ? -1 : 1);
	return (x->func < y->func ? -1 : x->func > y->func);
}

/* Orders stack rows: count desc, id. */
static int
store_cmp_stack(const void *a, const void *b)
{
	const struct store_stack_row *x = a, *y = b;

	if (x->count != y->count)
		return (x->count > y->count ? -1 : 1);
	return (x->stack < y->stack ? -1 : x->stack > y->stack);
}

/* Orders process rows by pid. */
static int
store_cmp_proc(const void *a, const void *b)
{
	const struct store_proc_row *x = a, *y = b;

	return (x->pid < y->pid ? -1 : x->pid > y->pid);
}

/* A pid's row in a query result, while the query runs. */
struct store_proc_index {
	UT_hash_handle	hh;
	uint32_t	pid;
	size_t		row;
};

/* Finds or adds the row of a pid. */
static struct store_proc_row *
store_proc_row(struct store_result *res, size_t *cap,
    struct store_proc_index **index, uint32_t pid)
{
	struct store_proc_index	*pi;
	struct store_proc_row	*rows;

	HASH_FIND(hh, *index, &pid, sizeof pid, pi);
	if (pi != NULL)
		return (&res->procs[pi->row]);
	if (res->nprocs == *cap) {
		*cap = *cap == 0 ? 16 : *cap * 2;
		rows = realloc(res->procs, *cap * sizeof *rows);
		if (rows == NULL)
			return (NULL);
		res->procs = rows;
	}
	if ((pi = calloc(1, sizeof *pi)) == NULL)
		return (NULL);
	pi->pid = pid;
	pi->row = res->nprocs;
	HASH_ADD(hh, *index, pid, sizeof pid, pi);
	memset(&res->procs[res->nprocs], 0, sizeof res->procs[0]);
	res->procs[res->nprocs].pid = pid;
	return (&res->procs[res->nprocs++]);
}

/* Frees the pid index of a query. */
static void
store_proc_index_free(struct store_proc_index **index)
{
	struct store_proc_index	*pi, *pi1;

	HASH_ITER(hh, *index, pi, pi1) {
		HASH_DEL(*index, pi);
		free(pi);
	}
}

/*
 * Aggregates the samples of the given pids (all when npids is 0): totals,
 * per process, per function and optionally per stack.
 */
int
store_query(const struct store *st, const uint32_t *pids, size_t npids,
    int want_stacks, struct store_result *res)
{
	const struct store_entry	*e, *e1;
	const struct store_stack	*sk;
	struct store_func_row		*frows = NULL;
	struct store_stack_row		*srows = NULL;
	struct store_proc_row		*prow;
	uint32_t			*sorted = NULL, pid, stack, i;
	struct store_proc_index		*index = NULL;
	size_t				 n, pcap = 0;

	memset(res, 0, sizeof *res);
	if (npids > 0) {
		if ((sorted = malloc(npids * sizeof *sorted)) == NULL)
			goto fail;
		memcpy(sorted, pids, npids * sizeof *sorted);
		qsort(sorted, npids, sizeof *sorted, store_cmp_u32);
	}
	if ((frows = calloc(st->funcs.len + 1, sizeof *frows)) == NULL)
		goto fail;
	if (want_stacks &&
	    (srows = calloc(st->stacks.len + 1, sizeof *srows)) == NULL)
		goto fail;

	HASH_ITER(hh, st->entry_table, e, e1) {
		pid = (uint32_t)(e->key >> 32);
		stack = (uint32_t)e->key;
		if (sorted != NULL && bsearch(&pid, sorted, npids,
		    sizeof *sorted, store_cmp_u32) == NULL)
			continue;
		sk = st->stacks.items[stack - 1];
		res->samples += e->count;
		res->weight_us += e->weight_us;
		if ((prow = store_proc_row(res, &pcap, &index, pid)) == NULL)
			goto fail;
		prow->samples += e->count;
		prow->weight_us += e->weight_us;
		if (sk->leaf != 0) {
			frows[sk->leaf].self += e->count;
			frows[sk->leaf].self_us += e->weight_us;
		}
		for (i = 0; i < sk->nfuncs; i++) {
			frows[sk->data[sk->depth + i]].total += e->count;
			frows[sk->data[sk->depth + i]].total_us += e->weight_us;
		}
		if (srows != NULL) {
			srows[stack].count += e->count;
			srows[stack].weight_us += e->weight_us;
		}
	}

	/* Compact the rows in place: row n <= id, so nothing is lost. */
	for (n = 0, i = 1; i <= st->funcs.len; i++) {
		if (frows[i].total == 0)
			continue;
		frows[n] = frows[i];
		frows[n++].func = i;
	}
	qsort(frows, n, sizeof *frows, store_cmp_func);
	res->funcs = frows;
	res->nfuncs = n;
	frows = NULL;

	if (srows != NULL) {
		for (n = 0, i = 1; i <= st->stacks.len; i++) {
			if (srows[i].count == 0)
				continue;
			srows[n] = srows[i];
			srows[n++].stack = i;
		}
		qsort(srows, n, sizeof *srows, store_cmp_stack);
		res->stacks = srows;
		res->nstacks = n;
		srows = NULL;
	}
	if (res->nprocs > 0)
		qsort(res->procs, res->nprocs, sizeof *res->procs,
		    store_cmp_proc);
	store_proc_index_free(&index);
	free(sorted);
	return (0);

fail:
	store_proc_index_free(&index);
	free(sorted);
	free(frows);
	free(srows);
	store_result_free(res);
	return (-1);
}

/* Frees what store_query allocated. */
void
store_result_free(struct store_result *res)
{
	free(res->procs);
	free(res->funcs);
	free(res->stacks);
	memset(res, 0, sizeof *res);
}
