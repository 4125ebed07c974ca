/*
 * query.c -- the samples of a window and filters, merged by (stack,
 * thread), and the views computed from them (see query.h).
 *
 * A bucket counts when it overlaps the window: the time resolution of a
 * query is the width of the buckets it reads.  Filters on processes and
 * threads are decided once per thread id (a dense verdict array), so the
 * scan of the entries does one array lookup and one hash update each.
 */

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto.h"
#include "query.h"
#include "store.h"

#define QUERY_CELLS_MIN	1024	/* slots of the merge table */

enum {
	QUERY_UNDECIDED = 0,
	QUERY_PASS,
	QUERY_FAIL,
};

/* The merge table: open addressing on (stack, thread). */
struct query_table {
	struct query_cell	*cells;
	size_t			 cap;
	size_t			 n;
};

/*
 * Zeroed memory, written at once.  calloc's fresh pages map the shared zero
 * page, so an array read before it is written (a probe, a `+=`) faults
 * twice a page, the second time a copy-on-write that flushes the TLB of
 * every CPU running a thread of profd: an interrupt of the worker thread
 * per page, which cost the event loop more than the scans themselves.
 */
static void *
query_zalloc(size_t n, size_t size)
{
	void	*p;

	if (size != 0 && n > SIZE_MAX / size)
		return (NULL);
	if ((p = malloc(n * size > 0 ? n * size : 1)) != NULL)
		memset(p, 0, n * size);
	return (p);
}

/* Hashes a cell key. */
static inline size_t
query_hash(uint32_t stack, uint32_t thread)
{
	uint64_t	h = ((uint64_t)stack << 32 | thread) *
			    0x9e3779b97f4a7c15ull;

	return ((size_t)(h ^ (h >> 29)));
}

/* Puts a cell into a table of cap slots (a power of 2) without it. */
static void
query_table_put(struct query_cell *cells, size_t cap,
    const struct query_cell *c)
{
	size_t	j;

	for (j = query_hash(c->stack, c->thread) & (cap - 1);
	    cells[j].count != 0; j = (j + 1) & (cap - 1))
		;
	cells[j] = *c;
}

/* Doubles the merge table. */
static int
query_table_grow(struct query_table *t)
{
	struct query_cell	*c;
	size_t			 cap = t->cap == 0 ? QUERY_CELLS_MIN : t->cap * 2;
	size_t			 i;

	if ((c = query_zalloc(cap, sizeof *c)) == NULL)
		return (-1);
	for (i = 0; i < t->cap; i++)
		if (t->cells[i].count != 0)
			query_table_put(c, cap, &t->cells[i]);
	free(t->cells);
	t->cells = c;
	t->cap = cap;
	return (0);
}

/* Adds to a cell. */
static int
query_table_add(struct query_table *t, uint32_t stack, uint32_t thread,
    uint64_t count, uint64_t weight_us)
{
	struct query_cell	*c;
	size_t			 j;

	if ((t->n + 1) * 2 > t->cap && query_table_grow(t) != 0)
		return (-1);
	for (j = query_hash(stack, thread) & (t->cap - 1);; j = (j + 1) &
	    (t->cap - 1)) {
		c = &t->cells[j];
		if (c->count == 0) {
			c->stack = stack;
			c->thread = thread;
			t->n++;
			break;
		}
		if (c->stack == stack && c->thread == thread)
			break;
	}
	c->count += count;
	c->weight_us += weight_us;
	return (0);
}

/* Decides whether an instance passes the process filters. */
static int
query_instance_verdict(const struct query *q, const struct store_instance *in)
{
	size_t	i;

	if (q->npids > 0) {
		for (i = 0; i < q->npids && q->pids[i] != in->pid; i++)
			;
		if (i == q->npids)
			return (QUERY_FAIL);
	}
	if (q->nservices > 0) {
		for (i = 0; i < q->nservices &&
		    strcmp(q->services[i], in->service) != 0; i++)
			;
		if (i == q->nservices)
			return (QUERY_FAIL);
	}
	return (QUERY_PASS);
}

/* Decides whether a thread's samples pass the process and thread
 * filters. */
static int
query_thread_verdict(const struct store *st, const struct query *q,
    uint32_t thread)
{
	const struct store_thread	*t;
	const struct store_instance	*in;
	const char			*name;
	size_t				 i;

	if ((t = store_thread_get(st, thread)) == NULL ||
	    (in = store_instance_get(st, t->instance)) == NULL ||
	    query_instance_verdict(q, in) != QUERY_PASS)
		return (QUERY_FAIL);
	if (q->nthreads > 0) {
		if ((name = store_string_get(st, t->name, NULL)) == NULL)
			name = "";
		for (i = 0; i < q->nthreads &&
		    fnmatch(q->threads[i], name, 0) != 0; i++)
			;
		if (i == q->nthreads)
			return (QUERY_FAIL);
	}
	return (QUERY_PASS);
}

/* A scan in progress. */
struct query_scan {
	struct store			 *st;
	struct query			  q;
	uint8_t				 *verdict;	/* per thread */
	uint32_t			  nthreads;
	uint32_t			  nstacks;
	/* Dense sums per stack (unless by_thread) and per thread. */
	uint64_t			 *stack_count, *stack_us;
	uint64_t			 *thread_count, *thread_us;
	struct query_table		  t;		/* by_thread cells */
	/* The table's next size, zeroed and filled a slice a step (so that
	 * no step rehashes a big table whole); no entry is read meanwhile. */
	struct query_cell		 *grow;
	size_t				  grow_cap, grow_zeroed, grow_moved;
	const struct store_bucket	**sealed;	/* held until read */
	size_t				  nsealed, next;
	size_t				  entry;	/* in sealed[next] */
	struct query_cold_row		 *cold;		/* on disk, to read */
	size_t				  ncold, cnext;
	uint64_t			  centry;	/* in cold[cnext] */
	struct store_entry		 *slice;	/* QUERY_COLD_SLICE */
	uint64_t			  until;
	int				  overlap;	/* query_in_window */
	struct query_result		  res;
	int				  failed;
};

/*
 * Whether a bucket is in the query's window: its middle is, so that two
 * windows side by side never both read the bucket on their boundary; or,
 * for a window that holds no bucket's middle (narrower than the buckets
 * it falls in: sc->overlap), it overlaps the window.
 */
static int
query_in_window(const struct query_scan *sc, uint64_t start, uint64_t width)
{
	uint64_t	mid = start + width / 2;

	if (sc->overlap)
		return (start + width > sc->q.since_ns && start < sc->until);
	return (mid >= sc->q.since_ns && mid < sc->until);
}

static int
query_overlaps(const struct query_scan *sc, const struct store_bucket *b)
{
	return (query_in_window(sc, b->start_ns, b->width_ns));
}

/* Notes a bucket as read, and what its batches said of their stacks
 * (a few tallies: read whole here). */
static void
query_note_bucket(struct query_scan *sc, uint64_t start_ns, uint64_t width_ns,
    const struct store_tally *tallies, size_t ntallies)
{
	struct query_result		*res = &sc->res;
	const struct store_tally	*t;
	const struct store_instance	*in;
	size_t				 i;

	if (res->buckets == 0 || start_ns < res->from_ns)
		res->from_ns = start_ns;
	if (start_ns + width_ns > res->to_ns)
		res->to_ns = start_ns + width_ns;
	res->buckets++;
	for (i = 0; i < ntallies; i++) {
		t = &tallies[i];
		if (sc->q.mode != QUERY_MODE_ANY &&
		    QUERY_FLAGS_MODE(t->flags) != sc->q.mode)
			continue;
		if ((in = store_instance_get(sc->st, t->instance)) == NULL ||
		    query_instance_verdict(&sc->q, in) != QUERY_PASS)
			continue;
		res->reported += t->samples;
		res->invalid += t->invalid;
	}
}

/* Reads entries [from, to) of a bucket's. */
static int
query_read(struct query_scan *sc, const struct store_entry *entries,
    size_t from, size_t to)
{
	const struct store_entry	*e;
	size_t				 i;
	uint32_t			 last_thread = 0;
	int				 pass = 0;

	for (i = from; i < to; i++) {
		e = &entries[i];
		if (e->count == 0)
			continue;
		sc->res.entries++;
		if (sc->q.oncpu && !(e->flags & PROTO_SAMPLE_ONCPU))
			continue;
		if (sc->q.mode != QUERY_MODE_ANY &&
		    QUERY_FLAGS_MODE(e->flags) != sc->q.mode)
			continue;
		/* Sealed entries are sorted by thread: one verdict a run. */
		if (e->thread != last_thread || i == from) {
			last_thread = e->thread;
			if (e->thread >= sc->nthreads) {
				pass = 0;
				continue;
			}
			if (sc->verdict[e->thread] == QUERY_UNDECIDED)
				sc->verdict[e->thread] = (uint8_t)
				    query_thread_verdict(sc->st, &sc->q,
				    e->thread);
			pass = sc->verdict[e->thread] == QUERY_PASS;
		}
		if (!pass || e->stack >= sc->nstacks)
			continue;
		if (sc->q.by_thread) {
			if (query_table_add(&sc->t, e->stack, e->thread,
			    e->count, e->weight_us) != 0)
				return (-1);
		} else {
			sc->stack_count[e->stack] += e->count;
			sc->stack_us[e->stack] += e->weight_us;
		}
		sc->thread_count[e->thread] += e->count;
		sc->thread_us[e->thread] += e->weight_us;
		sc->res.count += e->count;
		sc->res.weight_us += e->weight_us;
	}
	return (0);
}

/* Frees a scan. */
void
query_scan_free(struct query_scan *sc)
{
	if (sc == NULL)
		return;
	free(sc->verdict);
	free(sc->stack_count);
	free(sc->stack_us);
	free(sc->thread_count);
	free(sc->thread_us);
	free(sc->t.cells);
	free(sc->grow);
	for (; sc->next < sc->nsealed; sc->next++)
		store_bucket_release(sc->st, sc->sealed[sc->next]);
	free(sc->sealed);
	free(sc->cold);
	free(sc->slice);
	query_result_free(&sc->res);
	free(sc);
}

/* Starts a scan: reads the open buckets, lists and holds the sealed
 * ones. */
struct query_scan *
query_begin(struct store *st, const struct query *q)
{
	struct query_scan		*sc;
	const struct store_bucket	*b;
	size_t				 n = 0, i;

	if ((sc = calloc(1, sizeof *sc)) == NULL)
		return (NULL);
	sc->st = st;
	sc->q = *q;
	sc->until = q->until_ns ? q->until_ns : UINT64_MAX;
	sc->nthreads = store_id_limit(st, STORE_THREAD);
	sc->nstacks = store_id_limit(st, STORE_STACK);
	if ((sc->verdict = query_zalloc(sc->nthreads, 1)) == NULL ||
	    (sc->thread_count = query_zalloc(sc->nthreads, 8)) == NULL ||
	    (sc->thread_us = query_zalloc(sc->nthreads, 8)) == NULL)
		goto fail;
	if (!q->by_thread &&
	    ((sc->stack_count = query_zalloc(sc->nstacks, 8)) == NULL ||
	    (sc->stack_us = query_zalloc(sc->nstacks, 8)) == NULL))
		goto fail;
	if (q->cold != NULL && q->cold->list(q->cold->arg, q->since_ns,
	    sc->until, &sc->cold, &sc->ncold) != 0)
		goto fail;
	/* Buckets by their middle, unless no middle is in the window. */
	for (b = store_buckets(st); b != NULL; b = b->next)
		n += query_overlaps(sc, b);
	for (i = 0; i < sc->ncold; i++)
		n += query_in_window(sc, sc->cold[i].start_ns,
		    sc->cold[i].width_ns);
	sc->overlap = n == 0;
	for (i = 0, n = 0; i < sc->ncold; i++)
		if (query_in_window(sc, sc->cold[i].start_ns,
		    sc->cold[i].width_ns))
			sc->cold[n++] = sc->cold[i];
	sc->ncold = n;
	n = 0;
	for (b = store_buckets(st); b != NULL; b = b->next)
		n += b->sealed && query_overlaps(sc, b);
	if (n > 0 && (sc->sealed = calloc(n, sizeof *sc->sealed)) == NULL)
		goto fail;
	for (b = store_buckets(st); b != NULL; b = b->next) {
		if (!query_overlaps(sc, b))
			continue;
		query_note_bucket(sc, b->start_ns, b->width_ns, b->tallies,
		    b->ntallies);
		if (b->sealed) {
			store_bucket_hold(st, b);
			sc->sealed[sc->nsealed++] = b;
		} else if (query_read(sc, b->entries, 0, b->cap) != 0)
			goto fail;
	}
	if (sc->ncold > 0 && (sc->slice = malloc(QUERY_COLD_SLICE *
	    sizeof *sc->slice)) == NULL)
		goto fail;
	return (sc);
fail:
	query_scan_free(sc);
	return (NULL);
}

/* Reads a slice of the next bucket on disk (its tallies first): 0, or -1
 * out of memory.  One that cannot be read is left out, and counted. */
static int
query_step_cold(struct query_scan *sc, size_t *budget)
{
	const struct query_cold		*cold = sc->q.cold;
	const struct query_cold_row	*r = &sc->cold[sc->cnext];
	struct store_tally		*t = NULL;
	size_t				 nt = 0, take;

	if (sc->centry == 0) {
		if (cold->tallies(cold->arg, r, &t, &nt) != 0) {
			sc->res.cold_failed++;
			sc->cnext++;
			return (0);
		}
		query_note_bucket(sc, r->start_ns, r->width_ns, t, nt);
		sc->res.cold++;
		free(t);
	}
	take = r->n - sc->centry < QUERY_COLD_SLICE ?
	    (size_t)(r->n - sc->centry) : QUERY_COLD_SLICE;
	if (take > *budget)
		take = *budget;
	if (take > 0 && cold->read(cold->arg, r, sc->centry, sc->slice,
	    take) != 0) {
		/* What was read of it stays: it is counted as failed. */
		sc->res.cold_failed++;
		sc->cnext++;
		sc->centry = 0;
		return (0);
	}
	if (query_read(sc, sc->slice, 0, take) != 0)
		return (-1);
	sc->centry += take;
	*budget -= take;
	if (take == 0 || sc->centry >= r->n) {
		sc->cnext++;
		sc->centry = 0;
	}
	return (0);
}

/* Goes on growing the cell table, a slot of budget each slot zeroed or
 * moved: 1 when the bigger table is in place, 0 when budget ran out. */
static int
query_grow_step(struct query_scan *sc, size_t *budget)
{
	struct query_cell	*c;
	size_t			 k;

	while (sc->grow_zeroed < sc->grow_cap && *budget > 0) {
		k = sc->grow_cap - sc->grow_zeroed;
		if (k > *budget)
			k = *budget;
		memset(sc->grow + sc->grow_zeroed, 0, k * sizeof *sc->grow);
		sc->grow_zeroed += k;
		*budget -= k;
	}
	for (; sc->grow_moved < sc->t.cap && *budget > 0; (*budget)--) {
		c = &sc->t.cells[sc->grow_moved++];
		if (c->count != 0)
			query_table_put(sc->grow, sc->grow_cap, c);
	}
	if (sc->grow_zeroed < sc->grow_cap || sc->grow_moved < sc->t.cap)
		return (0);
	free(sc->t.cells);
	sc->t.cells = sc->grow;
	sc->t.cap = sc->grow_cap;
	sc->grow = NULL;
	sc->grow_cap = sc->grow_zeroed = sc->grow_moved = 0;
	return (1);
}

/* Whether the cell table has room for `take` more entries' cells: 1, or 0
 * with its growth started (query_grow_step), -1 out of memory. */
static int
query_room(struct query_scan *sc, size_t take)
{
	size_t	cap;

	if (!sc->q.by_thread || sc->grow != NULL ||
	    (sc->t.n + take) * 2 <= sc->t.cap)
		return (sc->grow == NULL);
	cap = sc->t.cap != 0 ? sc->t.cap : QUERY_CELLS_MIN;
	while ((sc->t.n + take) * 2 > cap) {
		if (cap > SIZE_MAX / 2 / sizeof *sc->grow)
			return (-1);
		cap *= 2;
	}
	/* Not zeroed here: query_grow_step writes it before any read (a
	 * read first maps the zero page: query_zalloc). */
	if ((sc->grow = malloc(cap * sizeof *sc->grow)) == NULL)
		return (-1);
	sc->grow_cap = cap;
	return (0);
}

/* Room for `take` entries' cells: 1 at once, 2 once grown (budget spent
 * on it), 0 when budget ran out growing, -1 out of memory (failed). */
static int
query_make_room(struct query_scan *sc, size_t take, size_t *budget)
{
	int	room, grew = 0;

	while ((room = query_room(sc, take)) == 0) {
		if (query_grow_step(sc, budget) == 0)
			return (0);
		grew = 1;
	}
	if (room < 0) {
		sc->failed = 1;
		return (-1);
	}
	return (grew ? 2 : 1);
}

/* Reads up to budget entries of the sealed buckets, then of those on
 * disk; the cell table grows between them. */
int
query_step(struct query_scan *sc, size_t budget)
{
	const struct store_bucket	*b;
	size_t				 take;
	int				 room;

	if (sc->failed)
		return (-1);
	while (sc->next < sc->nsealed && budget > 0) {
		b = sc->sealed[sc->next];
		take = b->n - sc->entry;
		if (take > budget)
			take = budget;
		if ((room = query_make_room(sc, take, &budget)) != 1) {
			if (room <= 0)
				return (room);
			continue;	/* grown: budget changed */
		}
		if (query_read(sc, b->entries, sc->entry, sc->entry + take) !=
		    0) {
			sc->failed = 1;
			return (-1);
		}
		sc->entry += take;
		budget -= take;
		if (sc->entry == b->n) {
			store_bucket_release(sc->st, b);
			sc->next++;
			sc->entry = 0;
		}
	}
	while (sc->next == sc->nsealed && sc->cnext < sc->ncold &&
	    budget > 0) {
		take = budget < QUERY_COLD_SLICE ? budget : QUERY_COLD_SLICE;
		if ((room = query_make_room(sc, take, &budget)) != 1) {
			if (room <= 0)
				return (room);
			continue;	/* grown: budget changed */
		}
		if (query_step_cold(sc, &budget) != 0) {
			sc->failed = 1;
			return (-1);
		}
	}
	return (sc->next == sc->nsealed && sc->cnext == sc->ncold);
}

/* Collects the sums into cells. */
int
query_end(struct query_scan *sc, struct query_result *res)
{
	struct query_cell	*c;
	size_t			 i, n;

	if (sc->failed || sc->next < sc->nsealed || sc->cnext < sc->ncold)
		goto fail;
	if (sc->q.by_thread) {
		for (i = 0, n = 0; i < sc->t.cap; i++) {
			if (sc->t.cells[i].count != 0)
				sc->t.cells[n++] = sc->t.cells[i];
		}
		sc->res.cells = sc->t.cells;
		sc->res.ncells = n;
		sc->t.cells = NULL;
	} else {
		for (i = 1, n = 0; i < sc->nstacks; i++)
			n += sc->stack_count[i] != 0;
		if ((c = calloc(n + 1, sizeof *c)) == NULL)
			goto fail;
		for (i = 1, n = 0; i < sc->nstacks; i++) {
			if (sc->stack_count[i] == 0)
				continue;
			c[n].stack = (uint32_t)i;
			c[n].count = sc->stack_count[i];
			c[n++].weight_us = sc->stack_us[i];
		}
		sc->res.cells = c;
		sc->res.ncells = n;
	}
	for (i = 1, n = 0; i < sc->nthreads; i++)
		n += sc->thread_count[i] != 0;
	if ((c = calloc(n + 1, sizeof *c)) == NULL)
		goto fail;
	for (i = 1, n = 0; i < sc->nthreads; i++) {
		if (sc->thread_count[i] == 0)
			continue;
		c[n].thread = (uint32_t)i;
		c[n].count = sc->thread_count[i];
		c[n++].weight_us = sc->thread_us[i];
	}
	sc->res.owners = c;
	sc->res.nowners = n;
	*res = sc->res;
	memset(&sc->res, 0, sizeof sc->res);
	query_scan_free(sc);
	return (0);
fail:
	query_scan_free(sc);
	memset(res, 0, sizeof *res);
	return (-1);
}

/* Marks what a scan has summed so far (during a sweep: store_mark);
 * what it has yet to read, its held buckets and the store's pins name. */
void
query_scan_mark(const struct query_scan *sc)
{
	size_t	i;

	for (i = 1; i < sc->nthreads; i++)
		if (sc->thread_count[i] != 0)
			store_mark(sc->st, STORE_THREAD, (uint32_t)i);
	for (i = 1; sc->stack_count != NULL && i < sc->nstacks; i++)
		if (sc->stack_count[i] != 0)
			store_mark(sc->st, STORE_STACK, (uint32_t)i);
	for (i = 0; i < sc->t.cap; i++)
		if (sc->t.cells[i].count != 0) {
			store_mark(sc->st, STORE_STACK, sc->t.cells[i].stack);
			store_mark(sc->st, STORE_THREAD,
			    sc->t.cells[i].thread);
		}
}

/* Marks what a result names (during a sweep). */
void
query_result_mark(struct store *st, const struct query_result *res)
{
	size_t	i;

	for (i = 0; i < res->ncells; i++) {
		store_mark(st, STORE_STACK, res->cells[i].stack);
		store_mark(st, STORE_THREAD, res->cells[i].thread);
	}
	for (i = 0; i < res->nowners; i++)
		store_mark(st, STORE_THREAD, res->owners[i].thread);
}

/* Runs a whole query at once. */
int
query_run(struct store *st, const struct query *q,
    struct query_result *res)
{
	struct query_scan	*sc;
	int			 rc;

	memset(res, 0, sizeof *res);
	if ((sc = query_begin(st, q)) == NULL)
		return (-1);
	while ((rc = query_step(sc, SIZE_MAX)) == 0)
		;
	if (rc < 0) {
		query_scan_free(sc);
		return (-1);
	}
	return (query_end(sc, res));
}

/* Frees a result. */
void
query_result_free(struct query_result *res)
{
	free(res->cells);
	free(res->owners);
	memset(res, 0, sizeof *res);
}

/* The share of the window's stacks left out, in percent. */
double
query_invalid_pct(const struct query_result *res)
{
	uint64_t	whole = res->reported + res->invalid;

	if (whole == 0)
		return (-1);
	return (100.0 * (double)res->invalid / (double)whole);
}

/* Orders rows by self, total, key. */
static int
query_cmp_row(const void *a, const void *b)
{
	const struct query_row *x = a, *y = b;

	if (x->self != y->self)
		return (x->self > y->self ? -1 : 1);
	if (x->total != y->total)
		return (x->total > y->total ? -1 : 1);
	return (x->key < y->key ? -1 : x->key > y->key);
}

/* The key a frame contributes to a view of functions, lines or files. */
static uint32_t
query_frame_key(const struct store *st, uint32_t frame, enum query_by by)
{
	uint32_t	func, line, name, file, fline;

	if (by == QUERY_BY_LINE)
		return (frame);
	if (store_frame_get(st, frame, &func, &line) != 0)
		return (0);
	if (by == QUERY_BY_FUNCTION)
		return (func);
	if (store_func_get(st, func, &name, &file, &fline) != 0)
		return (0);
	return (file);
}

/* The key of a cell in a view of threads, processes or services. */
static uint32_t
query_owner_key(const struct store *st, uint32_t thread, enum query_by by,
    uint32_t *service_of, uint32_t ninst)
{
	const struct store_thread	*t;
	const struct store_instance	*in, *other;
	uint32_t			 i;

	if (by == QUERY_BY_THREAD)
		return (thread);
	if ((t = store_thread_get(st, thread)) == NULL)
		return (0);
	if (by == QUERY_BY_PROCESS)
		return (t->instance);
	/* Services: the first instance with the same service name. */
	if (t->instance >= ninst)
		return (0);
	if (service_of[t->instance] != 0)
		return (service_of[t->instance]);
	in = store_instance_get(st, t->instance);
	for (i = 1; i < ninst && in != NULL; i++) {
		if (service_of[i] != i)
			continue;
		other = store_instance_get(st, i);
		if (other != NULL && strcmp(other->service, in->service) == 0)
			return (service_of[t->instance] = i);
	}
	return (service_of[t->instance] = t->instance);
}

/* Rows of a view. */
int
query_rows(const struct store *st, const struct query_result *res,
    enum query_by by, struct query_row **rows_out, size_t *nrows)
{
	struct query_row	*rows = NULL;
	uint32_t		*stamp = NULL, *service_of = NULL;
	const uint32_t		*frames;
	uint32_t		 limit, ninst, depth, key, i;
	size_t			 c, n;
	const struct query_cell	*cell;

	*rows_out = NULL;
	*nrows = 0;
	switch (by) {
	case QUERY_BY_FUNCTION:
		limit = store_id_limit(st, STORE_FUNC);
		break;
	case QUERY_BY_LINE:
		limit = store_id_limit(st, STORE_FRAME);
		break;
	case QUERY_BY_FILE:
		limit = store_id_limit(st, STORE_STRING);
		break;
	case QUERY_BY_THREAD:
		limit = store_id_limit(st, STORE_THREAD);
		break;
	default:
		limit = store_id_limit(st, STORE_INSTANCE);
		break;
	}
	ninst = store_id_limit(st, STORE_INSTANCE);
	if ((rows = query_zalloc(limit, sizeof *rows)) == NULL ||
	    (stamp = query_zalloc(limit, sizeof *stamp)) == NULL ||
	    (service_of = query_zalloc(ninst, sizeof *service_of)) == NULL)
		goto fail;

	for (c = 0; c < res->nowners && (by == QUERY_BY_THREAD ||
	    by == QUERY_BY_PROCESS || by == QUERY_BY_SERVICE); c++) {
		cell = &res->owners[c];
		key = query_owner_key(st, cell->thread, by, service_of, ninst);
		if (key == 0 || key >= limit)
			continue;
		rows[key].self += cell->count;
		rows[key].total += cell->count;
		rows[key].self_us += cell->weight_us;
		rows[key].total_us += cell->weight_us;
	}
	for (c = 0; c < res->ncells; c++) {
		cell = &res->cells[c];
		if (by == QUERY_BY_THREAD || by == QUERY_BY_PROCESS ||
		    by == QUERY_BY_SERVICE)
			break;
		if ((frames = store_stack_get(st, cell->stack, &depth)) ==
		    NULL)
			continue;
		/* Leaf first: frames[0] is what was running. */
		for (i = 0; i < depth; i++) {
			key = query_frame_key(st, frames[i], by);
			if (key == 0 || key >= limit)
				continue;
			if (i == 0) {
				rows[key].self += cell->count;
				rows[key].self_us += cell->weight_us;
			}
			/* Recursion counts once per sample. */
			if (stamp[key] == c + 1)
				continue;
			stamp[key] = (uint32_t)(c + 1);
			rows[key].total += cell->count;
			rows[key].total_us += cell->weight_us;
		}
	}
	for (n = 0, i = 1; i < limit; i++) {
		if (rows[i].total == 0)
			continue;
		rows[n] = rows[i];
		rows[n++].key = i;
	}
	qsort(rows, n, sizeof *rows, query_cmp_row);
	free(stamp);
	free(service_of);
	*rows_out = rows;
	*nrows = n;
	return (0);
fail:
	free(rows);
	free(stamp);
	free(service_of);
	return (-1);
}

/* A call tree under construction: children in a linked list. */
struct query_tnode {
	uint32_t	func;
	uint32_t	first_child;	/* index + 1, 0: none */
	uint32_t	next_sibling;
	uint64_t	self, total, self_us, total_us;
};

struct query_tbuild {
	struct query_tnode	*nodes;
	size_t			 n, cap;
};

/*
 * Finds or adds the child of parent (index + 1; 0 for roots, whose list
 * is *roots) for func.  The head is found again after growing: it may
 * live in the nodes array that realloc moves.
 */
static uint32_t
query_tree_child(struct query_tbuild *tb, uint32_t *roots, uint32_t parent,
    uint32_t func)
{
	struct query_tnode	*nodes;
	uint32_t		*head, i;
	size_t			 cap;

	head = parent == 0 ? roots : &tb->nodes[parent - 1].first_child;
	for (i = *head; i != 0; i = tb->nodes[i - 1].next_sibling) {
		if (tb->nodes[i - 1].func == func)
			return (i);
	}
	if (tb->n == tb->cap) {
		cap = tb->cap == 0 ? 256 : tb->cap * 2;
		if ((nodes = realloc(tb->nodes, cap * sizeof *nodes)) == NULL)
			return (0);
		tb->nodes = nodes;
		tb->cap = cap;
		head = parent == 0 ? roots : &tb->nodes[parent - 1].first_child;
	}
	memset(&tb->nodes[tb->n], 0, sizeof tb->nodes[0]);
	tb->nodes[tb->n].func = func;
	tb->nodes[tb->n].next_sibling = *head;
	*head = (uint32_t)++tb->n;
	return (*head);
}

struct query_tout {
	struct query_node	*out;
	size_t			 n, cap;
	uint64_t		 min;
	uint32_t		 max_depth;
	const struct query_tbuild *tb;
};

/* Orders child indexes by total descending. */
static const struct query_tbuild *query_sort_tb;
static int
query_cmp_child(const void *a, const void *b)
{
	const struct query_tnode *x = &query_sort_tb->nodes[*(const uint32_t *)
	    a - 1], *y = &query_sort_tb->nodes[*(const uint32_t *)b - 1];

	if (x->total != y->total)
		return (x->total > y->total ? -1 : 1);
	return (x->func < y->func ? -1 : x->func > y->func);
}

/* Emits the children of a list in pre-order, heaviest first. */
static int
query_tree_emit(struct query_tout *to, uint32_t head, uint32_t depth)
{
	const struct query_tnode	*nd;
	struct query_node		*out;
	uint32_t			*kids, i, n = 0;
	size_t				 cap;

	if (to->max_depth != 0 && depth >= to->max_depth)
		return (0);
	for (i = head; i != 0; i = to->tb->nodes[i - 1].next_sibling)
		n++;
	if (n == 0)
		return (0);
	if ((kids = malloc(n * sizeof *kids)) == NULL)
		return (-1);
	for (n = 0, i = head; i != 0; i = to->tb->nodes[i - 1].next_sibling)
		kids[n++] = i;
	query_sort_tb = to->tb;
	qsort(kids, n, sizeof *kids, query_cmp_child);
	for (i = 0; i < n; i++) {
		nd = &to->tb->nodes[kids[i] - 1];
		if (nd->total < to->min)
			break;
		if (to->n == to->cap) {
			cap = to->cap == 0 ? 256 : to->cap * 2;
			if ((out = realloc(to->out, cap * sizeof *out)) ==
			    NULL)
				goto fail;
			to->out = out;
			to->cap = cap;
		}
		out = &to->out[to->n++];
		out->func = nd->func;
		out->depth = depth;
		out->self = nd->self;
		out->total = nd->total;
		out->self_us = nd->self_us;
		out->total_us = nd->total_us;
		if (query_tree_emit(to, nd->first_child, depth + 1) != 0)
			goto fail;
	}
	free(kids);
	return (0);
fail:
	free(kids);
	return (-1);
}

/* The call tree of a result, by function, roots first. */
int
query_tree(const struct store *st, const struct query_result *res,
    uint32_t max_depth, uint32_t min_permille, struct query_node **nodes,
    size_t *nnodes)
{
	struct query_tbuild	 tb = { NULL, 0, 0 };
	struct query_tout	 to;
	const uint32_t		*frames;
	uint32_t		 roots = 0, parent, depth, func, line, node = 0;
	uint32_t		 i;
	size_t			 c;

	*nodes = NULL;
	*nnodes = 0;
	for (c = 0; c < res->ncells; c++) {
		if ((frames = store_stack_get(st, res->cells[c].stack,
		    &depth)) == NULL)
			continue;
		parent = 0;
		for (i = depth; i > 0; i--) {
			if (store_frame_get(st, frames[i - 1], &func,
			    &line) != 0)
				func = 0;
			if ((node = query_tree_child(&tb, &roots, parent,
			    func)) == 0)
				goto fail;
			tb.nodes[node - 1].total += res->cells[c].count;
			tb.nodes[node - 1].total_us += res->cells[c].weight_us;
			parent = node;
		}
		if (depth > 0) {
			tb.nodes[node - 1].self += res->cells[c].count;
			tb.nodes[node - 1].self_us += res->cells[c].weight_us;
		}
	}
	memset(&to, 0, sizeof to);
	to.tb = &tb;
	to.max_depth = max_depth;
	to.min = (res->count * min_permille + 999) / 1000;
	if (to.min == 0)
		to.min = 1;
	if (query_tree_emit(&to, roots, 0) != 0) {
		free(to.out);
		goto fail;
	}
	free(tb.nodes);
	*nodes = to.out;
	*nnodes = to.n;
	return (0);
fail:
	free(tb.nodes);
	return (-1);
}

/* Maps store ids of one kind to profile indexes, adding on first use. */
struct query_map {
	uint32_t	*idx;		/* store id -> index + 1 */
	uint32_t	 limit;
};

/* The profile index of a store function. */
static uint32_t
query_profile_func(const struct store *st, struct profile *p,
    struct query_map *m, uint32_t func)
{
	const char	*name, *file;
	uint32_t	 nsid, fsid, line, nlen = 0, flen = 0, ix;

	if (func >= m->limit)
		return (UINT32_MAX);
	if (m->idx[func] != 0)
		return (m->idx[func] - 1);
	if (store_func_get(st, func, &nsid, &fsid, &line) != 0)
		return (UINT32_MAX);
	if ((name = store_string_get(st, nsid, &nlen)) == NULL)
		name = "";
	if ((file = store_string_get(st, fsid, &flen)) == NULL)
		file = "";
	ix = profile_add_func(p, name, nlen, file, flen, line);
	if (ix != UINT32_MAX)
		m->idx[func] = ix + 1;
	return (ix);
}

/* The profile index of a store frame. */
static uint32_t
query_profile_frame(const struct store *st, struct profile *p,
    struct query_map *fm, struct query_map *fnm, uint32_t frame)
{
	uint32_t	func, line, fi, ix;

	if (frame >= fm->limit)
		return (UINT32_MAX);
	if (fm->idx[frame] != 0)
		return (fm->idx[frame] - 1);
	if (store_frame_get(st, frame, &func, &line) != 0 ||
	    (fi = query_profile_func(st, p, fnm, func)) == UINT32_MAX)
		return (UINT32_MAX);
	ix = profile_add_frame(p, fi, line);
	if (ix != UINT32_MAX)
		fm->idx[frame] = ix + 1;
	return (ix);
}

/* The profile labels of a store thread: 0 with *out set (maybe to
 * PROFILE_NO_LABELS), or -1 when out of memory. */
static int
query_profile_labels(const struct store *st, struct profile *p,
    struct query_map *tm, uint32_t thread, uint32_t *out)
{
	const struct store_thread	*t;
	const struct store_instance	*in;
	struct profile_labels		 l;
	uint32_t			 ix;

	*out = PROFILE_NO_LABELS;
	if (thread >= tm->limit)
		return (0);
	if (tm->idx[thread] != 0) {
		*out = tm->idx[thread] - 1;
		return (0);
	}
	if ((t = store_thread_get(st, thread)) == NULL ||
	    (in = store_instance_get(st, t->instance)) == NULL)
		return (0);
	memset(&l, 0, sizeof l);
	l.pid = in->pid;
	l.tid = t->tid;
	l.thread = store_string_get(st, t->name, NULL);
	l.service = in->service;
	l.host = in->host;
	ix = profile_add_labels(p, &l);
	if (ix == UINT32_MAX)
		return (-1);
	tm->idx[thread] = ix + 1;
	*out = ix;
	return (0);
}

/* A profile being built from a result, a slice of its cells a step. */
struct query_profiling {
	const struct store	*st;
	struct profile		*p;
	struct query_map	 fm, fnm, tm;
	struct query_table	 t;		/* threads merged away */
	const struct query_cell	*cells;
	size_t			 ncells, next;
	int			 labels;
	int			 merging;	/* threads away, into t */
};

/* Frees a profile being built. */
void
query_profile_abort(struct query_profiling *qp)
{
	if (qp == NULL)
		return;
	free(qp->t.cells);
	free(qp->fm.idx);
	free(qp->fnm.idx);
	free(qp->tm.idx);
	profile_free(qp->p);
	free(qp);
}

/* Starts building the profile of a result for the encoders. */
struct query_profiling *
query_profile_begin(const struct store *st, const struct query_result *res,
    int labels)
{
	struct query_profiling	*qp;
	size_t			 c;

	if ((qp = calloc(1, sizeof *qp)) == NULL)
		return (NULL);
	qp->st = st;
	qp->labels = labels;
	qp->cells = res->cells;
	qp->ncells = res->ncells;
	if ((qp->p = profile_new()) == NULL)
		goto fail;
	qp->p->start_ns = res->from_ns;
	qp->p->end_ns = res->to_ns;
	qp->fm.limit = store_id_limit(st, STORE_FRAME);
	qp->fnm.limit = store_id_limit(st, STORE_FUNC);
	qp->tm.limit = store_id_limit(st, STORE_THREAD);
	if ((qp->fm.idx = query_zalloc(qp->fm.limit, sizeof *qp->fm.idx)) ==
	    NULL || (qp->fnm.idx = query_zalloc(qp->fnm.limit,
	    sizeof *qp->fnm.idx)) == NULL || (qp->tm.idx =
	    query_zalloc(qp->tm.limit, sizeof *qp->tm.idx)) == NULL)
		goto fail;
	/* Threads to merge away: a result summed per thread. */
	for (c = 0; !labels && c < res->ncells && !qp->merging; c++)
		qp->merging = res->cells[c].thread != 0;
	return (qp);
fail:
	query_profile_abort(qp);
	return (NULL);
}

/*
 * Adds up to budget cells to the profile: 1 when all are in, 0 when more
 * steps are needed, -1 when out of memory.  Between steps the result must
 * keep what it names through sweeps (query_result_mark).
 */
int
query_profile_step(struct query_profiling *qp, size_t budget)
{
	const struct store	*st = qp->st;
	const struct query_cell	*cell;
	uint32_t		 buf[PROTO_MAX_DEPTH + 1];
	const uint32_t		*frames;
	uint32_t		 depth, i, lab;
	size_t			 merge;

	/* Without labels, threads are merged away first: one sample per
	 * stack (a cell merged costs a 16th of one copied). */
	merge = budget > SIZE_MAX / 16 ? SIZE_MAX : budget * 16;
	for (; qp->merging && qp->next < qp->ncells && merge > 0;
	    qp->next++, merge--) {
		cell = &qp->cells[qp->next];
		if (query_table_add(&qp->t, cell->stack, 0, cell->count,
		    cell->weight_us) != 0)
			return (-1);
	}
	if (qp->merging) {
		if (qp->next < qp->ncells)
			return (0);
		qp->merging = 0;
		qp->cells = qp->t.cells;
		qp->ncells = qp->t.cap;
		qp->next = 0;
	}
	for (; qp->next < qp->ncells && budget > 0; qp->next++) {
		cell = &qp->cells[qp->next];
		if (cell->count == 0)
			continue;
		budget--;
		if ((frames = store_stack_get(st, cell->stack, &depth)) ==
		    NULL || depth > PROTO_MAX_DEPTH + 1)
			continue;
		for (i = 0; i < depth; i++) {
			buf[depth - 1 - i] = query_profile_frame(st, qp->p,
			    &qp->fm, &qp->fnm, frames[i]);
			if (buf[depth - 1 - i] == UINT32_MAX)
				return (-1);
		}
		lab = PROFILE_NO_LABELS;
		if (qp->labels && query_profile_labels(st, qp->p, &qp->tm,
		    cell->thread, &lab) != 0)
			return (-1);
		if (profile_add_sample(qp->p, buf, depth, lab, cell->count,
		    cell->weight_us) == UINT32_MAX)
			return (-1);
	}
	return (qp->next == qp->ncells);
}

/* The profile built (after the last step); frees the rest. */
struct profile *
query_profile_end(struct query_profiling *qp)
{
	struct profile	*p = qp->p;

	qp->p = NULL;
	query_profile_abort(qp);
	return (p);
}

/* Builds the profile of a result for the encoders, at once. */
struct profile *
query_profile(const struct store *st, const struct query_result *res,
    int labels)
{
	struct query_profiling	*qp;

	if ((qp = query_profile_begin(st, res, labels)) == NULL)
		return (NULL);
	if (query_profile_step(qp, SIZE_MAX) != 1) {
		query_profile_abort(qp);
		return (NULL);
	}
	return (query_profile_end(qp));
}

static const char *const query_by_names[] = {
	"function", "line", "file", "thread", "process", "service"
};

/* The name of a view. */
const char *
query_by_name(enum query_by by)
{
	if ((size_t)by >= sizeof query_by_names / sizeof query_by_names[0])
		return ("?");
	return (query_by_names[by]);
}

/* Parses a view name; -1 when unknown. */
int
query_by_parse(const char *s)
{
	size_t	i;

	for (i = 0; i < sizeof query_by_names / sizeof query_by_names[0];
	    i++) {
		if (strcmp(s, query_by_names[i]) == 0)
			return ((int)i);
	}
	return (-1);
}
