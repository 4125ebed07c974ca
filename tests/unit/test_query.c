/* test_query.c -- filters, views, call trees and profiles over a store. */

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "profile.h"
#include "proto.h"
#include "query.h"
#include "store.h"

#define NS		1000000000ull
#define T0		(1700000000ull / 3600 * 3600 * NS)
#define CPU		((uint32_t)(PROTO_MODE_CPU + 1) << QUERY_FLAGS_MODE_SHIFT)
#define WALL		((uint32_t)(PROTO_MODE_WALL + 1) << QUERY_FLAGS_MODE_SHIFT)

static struct store	*st;
/* web pid 100: threads Main and worker-1; web pid 101: Main; db pid 200:
 * Main. */
static uint32_t		 web_main, web_worker, web2_main, db_main;
/* Stacks, leaf first: work <- handle <- main; rec <- rec <- main;
 * handle <- main. */
static uint32_t		 s_work, s_rec, s_handle;
static struct query	 q;
static struct query_result res;

/* The function of name in file. */
static uint32_t
func(const char *name, const char *file)
{
	return (store_func(st, store_string(st, name, strlen(name)),
	    store_string(st, file, strlen(file)), 1));
}

static uint32_t
frame(const char *name, const char *file, uint32_t line)
{
	return (store_frame(st, func(name, file), line));
}

static uint32_t
stack(const uint32_t *frames, uint32_t depth)
{
	uint32_t	id = store_stack(st, frames, depth, 0);

	cr_assert_neq(id, 0);
	return (id);
}

static uint32_t
instance(uint32_t pid, const char *service)
{
	struct store_instance_info	info;

	memset(&info, 0, sizeof info);
	info.pid = pid;
	info.start_ns = 1;
	info.host = "box";
	info.host_len = 3;
	info.service = service;
	info.service_len = (uint32_t)strlen(service);
	return (store_instance_attach(st, &info, T0));
}

static uint32_t
thread(uint32_t in, uint64_t tid, const char *name)
{
	return (store_thread(st, in, tid, store_string(st, name,
	    strlen(name))));
}

static void
setup(void)
{
	struct store_config	cfg;
	uint32_t		web, web2, db, f[3];

	store_config_default(&cfg);
	st = store_new(&cfg);
	cr_assert_not_null(st);
	store_tick(st, T0);
	web = instance(100, "web");
	web2 = instance(101, "web");
	db = instance(200, "db");
	web_main = thread(web, 1, "MainThread");
	web_worker = thread(web, 2, "worker-1");
	web2_main = thread(web2, 1, "MainThread");
	db_main = thread(db, 1, "MainThread");
	f[0] = frame("work", "lib.py", 30);
	f[1] = frame("handle", "app.py", 20);
	f[2] = frame("main", "app.py", 10);
	s_work = stack(f, 3);
	f[1] = frame("handle", "app.py", 21);
	s_handle = stack(&f[1], 2);
	f[0] = frame("rec", "lib.py", 40);
	f[1] = frame("rec", "lib.py", 41);
	s_rec = stack(f, 3);
	memset(&q, 0, sizeof q);
	q.mode = QUERY_MODE_ANY;
	memset(&res, 0, sizeof res);
}

static void
teardown(void)
{
	query_result_free(&res);
	store_free(st);
}

TestSuite(query, .init = setup, .fini = teardown);

/* The usual samples, all in the bucket at T0. */
static void
samples(void)
{
	cr_assert_eq(store_add(st, T0, web_main, s_work,
	    PROTO_SAMPLE_ONCPU | CPU, 5, 500), 0);
	cr_assert_eq(store_add(st, T0, web_worker, s_rec, WALL, 3, 300), 0);
	cr_assert_eq(store_add(st, T0, web2_main, s_handle,
	    PROTO_SAMPLE_ONCPU | CPU, 2, 200), 0);
	cr_assert_eq(store_add(st, T0, db_main, s_work, WALL, 7, 700), 0);
}

static uint64_t
run(void)
{
	query_result_free(&res);
	cr_assert_eq(query_run(st, &q, &res), 0);
	return (res.count);
}

/* The name of a function id. */
static const char *
fname(uint32_t fn)
{
	uint32_t	name, file, line;

	cr_assert_eq(store_func_get(st, fn, &name, &file, &line), 0);
	return (store_string_get(st, name, NULL));
}

/* The row of key in rows, or NULL. */
static const struct query_row *
row(const struct query_row *rows, size_t n, uint32_t key)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		if (rows[i].key == key)
			return (&rows[i]);
	}
	return (NULL);
}

Test(query, empty_store_gives_empty_results)
{
	struct query_row	*rows;
	struct query_node	*nodes;
	struct profile		*p;
	size_t			 n;

	cr_assert_eq(run(), 0);
	cr_assert_eq(res.ncells, 0);
	cr_assert_eq(res.buckets, 0);
	cr_assert_eq(query_rows(st, &res, QUERY_BY_FUNCTION, &rows, &n), 0);
	cr_assert_eq(n, 0);
	free(rows);
	cr_assert_eq(query_tree(st, &res, 0, 0, &nodes, &n), 0);
	cr_assert_eq(n, 0);
	free(nodes);
	p = query_profile(st, &res, 1);
	cr_assert_not_null(p);
	cr_assert_eq(p->nsamples, 0);
	cr_assert_eq(p->count, 0);
	profile_free(p);
}

Test(query, merges_cells_by_stack_and_thread)
{
	samples();
	store_tick(st, T0 + 20 * NS);
	cr_assert_eq(store_add(st, T0 + 20 * NS, web_main, s_work, 0, 1, 10),
	    0);
	q.by_thread = 1;
	cr_assert_eq(run(), 18);
	cr_assert_eq(res.weight_us, 1710);
	cr_assert_eq(res.ncells, 4, "flags and buckets merged away");
	cr_assert_eq(res.buckets, 2);
	cr_assert_eq(res.from_ns, T0);
	cr_assert_eq(res.to_ns, T0 + 30 * NS);
}

Test(query, filters_by_window)
{
	store_add(st, T0, web_main, s_work, 0, 1, 1);
	store_tick(st, T0 + 60 * NS);
	store_add(st, T0 + 60 * NS, web_main, s_work, 0, 2, 1);
	q.since_ns = T0 + 60 * NS;
	cr_assert_eq(run(), 2);
	q.since_ns = T0 + 5 * NS;
	cr_assert_eq(run(), 3, "a bucket counts when it overlaps");
	q.since_ns = 0;
	q.until_ns = T0 + 60 * NS;
	cr_assert_eq(run(), 1);
	q.since_ns = T0 + 10 * NS;
	cr_assert_eq(run(), 0);
}

Test(query, filters_by_pid_and_service)
{
	uint32_t		pids[] = { 101, 200 };
	const char *const	svc[] = { "web" };

	samples();
	q.pids = pids;
	q.npids = 1;
	cr_assert_eq(run(), 2);
	q.npids = 2;
	cr_assert_eq(run(), 9);
	q.npids = 0;
	q.services = svc;
	q.nservices = 1;
	cr_assert_eq(run(), 10);
	q.pids = pids;
	q.npids = 1;
	cr_assert_eq(run(), 2, "filters combine");
}

Test(query, filters_by_thread_name_globs)
{
	const char *const	g1[] = { "worker-*" };
	const char *const	g2[] = { "Main*", "nothing" };
	const char *const	g3[] = { "Main" };

	samples();
	q.threads = g1;
	q.nthreads = 1;
	cr_assert_eq(run(), 3);
	q.threads = g2;
	q.nthreads = 2;
	cr_assert_eq(run(), 14);
	q.threads = g3;
	q.nthreads = 1;
	cr_assert_eq(run(), 0, "a glob matches the whole name");
}

Test(query, filters_on_cpu_samples)
{
	samples();
	q.oncpu = 1;
	cr_assert_eq(run(), 7);
}

Test(query, filters_by_mode)
{
	samples();
	q.mode = PROTO_MODE_CPU;
	cr_assert_eq(run(), 7);
	q.mode = PROTO_MODE_WALL;
	cr_assert_eq(run(), 10);
	q.mode = PROTO_MODE_GIL;
	cr_assert_eq(run(), 0);
}

Test(query, rows_by_function_count_recursion_once)
{
	struct query_row	*rows;
	const struct query_row	*r;
	size_t			 n;

	samples();
	run();
	cr_assert_eq(query_rows(st, &res, QUERY_BY_FUNCTION, &rows, &n), 0);
	cr_assert_eq(n, 4);
	/* Sorted by self: work 12, rec 3, handle 2, main 0. */
	cr_assert_str_eq(fname(rows[0].key), "work");
	cr_assert_eq(rows[0].self, 12);
	cr_assert_eq(rows[0].total, 12);
	cr_assert_eq(rows[0].self_us, 1200);
	cr_assert_str_eq(fname(rows[1].key), "rec");
	cr_assert_eq(rows[1].self, 3);
	cr_assert_eq(rows[1].total, 3, "recursion counted once");
	cr_assert_eq(rows[1].total_us, 300);
	r = row(rows, n, func("handle", "app.py"));
	cr_assert_not_null(r);
	cr_assert_eq(r->self, 2);
	cr_assert_eq(r->total, 14);
	r = row(rows, n, func("main", "app.py"));
	cr_assert_eq(r->self, 0);
	cr_assert_eq(r->total, 17);
	cr_assert_eq(r->total_us, 1700);
	free(rows);
}

Test(query, rows_by_line_and_file)
{
	struct query_row	*rows;
	const struct query_row	*r;
	size_t			 n;

	samples();
	run();
	cr_assert_eq(query_rows(st, &res, QUERY_BY_LINE, &rows, &n), 0);
	/* work:30 handle:20 handle:21 main:10 rec:40 rec:41 */
	cr_assert_eq(n, 6);
	r = row(rows, n, frame("handle", "app.py", 20));
	cr_assert_eq(r->total, 12);
	cr_assert_eq(r->self, 0);
	r = row(rows, n, frame("handle", "app.py", 21));
	cr_assert_eq(r->total, 2);
	cr_assert_eq(r->self, 2);
	r = row(rows, n, frame("rec", "lib.py", 41));
	cr_assert_eq(r->total, 3);
	cr_assert_eq(r->self, 0);
	free(rows);
	cr_assert_eq(query_rows(st, &res, QUERY_BY_FILE, &rows, &n), 0);
	cr_assert_eq(n, 2);
	r = row(rows, n, store_string(st, "lib.py", 6));
	cr_assert_eq(r->self, 15);
	cr_assert_eq(r->total, 15, "two frames in lib.py count once");
	r = row(rows, n, store_string(st, "app.py", 6));
	cr_assert_eq(r->self, 2);
	cr_assert_eq(r->total, 17);
	free(rows);
}

Test(query, rows_by_thread_process_and_service)
{
	struct query_row	*rows;
	const struct store_instance *in;
	size_t			 n;

	samples();
	run();
	cr_assert_eq(query_rows(st, &res, QUERY_BY_THREAD, &rows, &n), 0);
	cr_assert_eq(n, 4);
	cr_assert_eq(rows[0].key, db_main);
	cr_assert_eq(rows[0].self, 7);
	cr_assert_eq(row(rows, n, web_worker)->total, 3);
	free(rows);
	cr_assert_eq(query_rows(st, &res, QUERY_BY_PROCESS, &rows, &n), 0);
	cr_assert_eq(n, 3);
	cr_assert_eq(store_instance_get(st, rows[0].key)->pid, 100);
	cr_assert_eq(rows[0].self, 8);
	cr_assert_eq(store_instance_get(st, rows[1].key)->pid, 200);
	cr_assert_eq(store_instance_get(st, rows[2].key)->pid, 101);
	free(rows);
	cr_assert_eq(query_rows(st, &res, QUERY_BY_SERVICE, &rows, &n), 0);
	cr_assert_eq(n, 2);
	in = store_instance_get(st, rows[0].key);
	cr_assert_str_eq(in->service, "web");
	cr_assert_eq(rows[0].self, 10);
	cr_assert_eq(rows[0].total_us, 1000);
	cr_assert_str_eq(store_instance_get(st, rows[1].key)->service, "db");
	cr_assert_eq(rows[1].self, 7);
	free(rows);
}

Test(query, tree_is_pre_order_heaviest_first)
{
	struct query_node	*t;
	size_t			 n;

	samples();
	run();
	cr_assert_eq(query_tree(st, &res, 0, 0, &t, &n), 0);
	/* main 17 > handle 14 > work 12; > rec 3 > rec 3. */
	cr_assert_eq(n, 5);
	cr_assert_str_eq(fname(t[0].func), "main");
	cr_assert_eq(t[0].depth, 0);
	cr_assert_eq(t[0].total, 17);
	cr_assert_eq(t[0].self, 0);
	cr_assert_str_eq(fname(t[1].func), "handle");
	cr_assert_eq(t[1].depth, 1);
	cr_assert_eq(t[1].total, 14);
	cr_assert_eq(t[1].self, 2, "both lines of handle are one node");
	cr_assert_str_eq(fname(t[2].func), "work");
	cr_assert_eq(t[2].depth, 2);
	cr_assert_eq(t[2].self, 12);
	cr_assert_eq(t[2].self_us, 1200);
	cr_assert_str_eq(fname(t[3].func), "rec");
	cr_assert_eq(t[3].depth, 1);
	cr_assert_eq(t[3].self, 0);
	cr_assert_eq(t[4].depth, 2);
	cr_assert_eq(t[4].self, 3);
	free(t);
}

Test(query, tree_cuts_by_depth_and_share)
{
	struct query_node	*t;
	size_t			 n;

	samples();
	run();
	cr_assert_eq(query_tree(st, &res, 2, 0, &t, &n), 0);
	cr_assert_eq(n, 3, "main, handle, rec");
	free(t);
	/* 3 of 17 samples is 176 permille: rec goes at 200. */
	cr_assert_eq(query_tree(st, &res, 0, 176, &t, &n), 0);
	cr_assert_eq(n, 5);
	free(t);
	cr_assert_eq(query_tree(st, &res, 0, 200, &t, &n), 0);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(fname(t[2].func), "work");
	free(t);
}

Test(query, tree_of_many_children)
{
	struct query_node	*t;
	uint32_t		 f[2], i;
	char			 name[16];
	size_t			 n;

	f[1] = frame("root", "a.py", 1);
	for (i = 0; i < 600; i++) {
		snprintf(name, sizeof name, "child%u", i);
		f[0] = frame(name, "a.py", 2);
		cr_assert_eq(store_add(st, T0, web_main, stack(f, 2), 0,
		    1 + i, 1), 0);
	}
	run();
	cr_assert_eq(query_tree(st, &res, 0, 0, &t, &n), 0);
	cr_assert_eq(n, 601);
	cr_assert_str_eq(fname(t[0].func), "root");
	cr_assert_eq(t[0].total, 600 * 601 / 2);
	cr_assert_str_eq(fname(t[1].func), "child599");
	cr_assert_eq(t[1].total, 600);
	cr_assert_eq(t[600].total, 1);
	free(t);
}

/* The name of a profile frame's function. */
static const char *
pname(const struct profile *p, uint32_t frame_ix)
{
	return (p->funcs[p->frames[frame_ix].func].name);
}

Test(query, profile_has_root_first_frames_and_labels)
{
	struct profile			*p;
	const struct profile_sample	*s;
	const struct profile_labels	*l;
	size_t				 i, found = 0;

	samples();
	q.by_thread = 1;
	run();
	p = query_profile(st, &res, 1);
	cr_assert_not_null(p);
	cr_assert_eq(p->nsamples, 4);
	cr_assert_eq(p->count, 17);
	cr_assert_eq(p->weight_us, 1700);
	cr_assert_eq(p->start_ns, T0);
	for (i = 0; i < p->nsamples; i++) {
		s = &p->samples[i];
		cr_assert_str_eq(pname(p, s->frames[0]), "main");
		cr_assert_neq(s->labels, PROFILE_NO_LABELS);
		l = &p->labels[s->labels];
		if (s->count == 7) {
			cr_assert_eq(s->depth, 3);
			cr_assert_str_eq(pname(p, s->frames[1]), "handle");
			cr_assert_str_eq(pname(p, s->frames[2]), "work");
			cr_assert_eq(p->frames[s->frames[2]].line, 30);
			cr_assert_str_eq(p->funcs[p->frames[s->frames[2]].func]
			    .file, "lib.py");
			cr_assert_eq(l->pid, 200);
			cr_assert_str_eq(l->service, "db");
			cr_assert_str_eq(l->thread, "MainThread");
			cr_assert_str_eq(l->host, "box");
			found++;
		}
		if (s->count == 3) {
			cr_assert_str_eq(l->thread, "worker-1");
			cr_assert_eq(l->tid, 2);
			found++;
		}
	}
	cr_assert_eq(found, 2);
	profile_free(p);
}

Test(query, profile_without_labels_merges_threads)
{
	struct profile	*p;
	size_t		 i;

	samples();
	run();
	p = query_profile(st, &res, 0);
	cr_assert_not_null(p);
	cr_assert_eq(p->nsamples, 3, "work merged over two threads");
	cr_assert_eq(p->count, 17);
	for (i = 0; i < p->nsamples; i++) {
		cr_assert_eq(p->samples[i].labels, PROFILE_NO_LABELS);
		if (p->samples[i].depth == 3 &&
		    strcmp(pname(p, p->samples[i].frames[2]), "work") == 0)
			cr_assert_eq(p->samples[i].count, 12);
	}
	profile_free(p);
}

Test(query, names_views)
{
	int	by;

	for (by = QUERY_BY_FUNCTION; by <= QUERY_BY_SERVICE; by++)
		cr_assert_eq(query_by_parse(query_by_name(by)), by);
	cr_assert_eq(query_by_parse("functions"), -1);
	cr_assert_eq(query_by_parse(""), -1);
}

/* The instance of a thread. */
static uint32_t
instance_of(uint32_t thread)
{
	return (store_thread_get(st, thread)->instance);
}

Test(query, sums_what_the_windows_batches_said_of_their_stacks)
{
	uint32_t	web = instance_of(web_main), db = instance_of(db_main);

	samples();
	/* web: 7 of 100 stacks left out at T0 (cpu), db: none at T0 and 30
	 * of 60 a minute later (wall); web2 never said. */
	cr_assert_eq(store_add_tally(st, T0, web, CPU, 93, 7), 0);
	cr_assert_eq(store_add_tally(st, T0, db, WALL, 7, 0), 0);
	store_tick(st, T0 + 60 * NS);
	cr_assert_eq(store_add_tally(st, T0 + 60 * NS, db, WALL, 30, 30), 0);
	run();
	cr_assert_eq(res.reported, 130);
	cr_assert_eq(res.invalid, 37);
	cr_assert_float_eq(query_invalid_pct(&res), 100.0 * 37 / 167, 1e-9);
	/* The window: the first bucket only. */
	q.until_ns = T0 + 10 * NS;
	run();
	cr_assert_eq(res.invalid, 7);
	cr_assert_eq(res.reported, 100);
	cr_assert_float_eq(query_invalid_pct(&res), 100.0 * 7 / 107, 1e-9);
	/* Processes and services filter them; threads and on-CPU do not (a
	 * stack left out has neither); modes do. */
	q.until_ns = 0;
	q.pids = (const uint32_t []){ 200 };
	q.npids = 1;
	run();
	cr_assert_eq(res.invalid, 30);
	cr_assert_eq(res.reported, 37);
	q.npids = 0;
	q.services = (const char *const []){ "web" };
	q.nservices = 1;
	q.threads = (const char *const []){ "worker-*" };
	q.nthreads = 1;
	q.oncpu = 1;
	run();
	cr_assert_eq(res.invalid, 7);
	cr_assert_eq(res.reported, 93);
	q.nservices = 0;
	q.nthreads = 0;
	q.oncpu = 0;
	q.mode = PROTO_MODE_WALL;
	run();
	cr_assert_eq(res.invalid, 30);
	/* Only web2, which never said: unknown. */
	q.mode = QUERY_MODE_ANY;
	q.pids = (const uint32_t []){ 101 };
	q.npids = 1;
	cr_assert_eq(run(), 2);
	cr_assert_eq(res.reported + res.invalid, 0);
	cr_assert_eq(query_invalid_pct(&res), -1);
}

static struct query_scan	*marked_scan;

static struct store_counts
counts_of(const struct store *s)
{
	struct store_counts	c;

	store_get_counts(s, &c);
	return (c);
}

/* The function name of a stack's leaf. */
static const char *
leaf_name(uint32_t sk)
{
	const uint32_t	*frames;
	uint32_t	 depth, fn, line;

	cr_assert_not_null(frames = store_stack_get(st, sk, &depth));
	cr_assert_eq(store_frame_get(st, frames[0], &fn, &line), 0);
	return (fname(fn));
}

/* The sweep hook profd sets: what the running scan summed stays. */
static void
mark_scan(void *arg)
{
	(void)arg;
	if (marked_scan != NULL)
		query_scan_mark(marked_scan);
}

static void
sweep(void)
{
	store_sweep_begin(st);
	store_sweep_end(st);
}

Test(query, a_scan_reads_what_it_began_with_while_housekeeping_runs)
{
	const struct store_config	*cfg = store_get_config(st);
	struct store_counts		 c;
	uint32_t			 f[2], s_sealed, s_open, s_lost, depth;
	size_t				 i;
	uint64_t			 k;
	int				 rc;

	f[0] = frame("sealed_only", "old.py", 1);
	f[1] = frame("main", "app.py", 10);
	s_sealed = stack(f, 2);
	f[0] = frame("open_only", "old.py", 2);
	s_open = stack(f, 2);
	f[0] = frame("lost", "old.py", 3);
	s_lost = stack(f, 2);
	for (k = 0; k < 3; k++) {
		store_tick(st, T0 + k * 10 * NS);
		cr_assert_eq(store_add(st, T0 + k * 10 * NS, web_main,
		    s_sealed, WALL, 2, 20), 0);
	}
	store_tick(st, T0 + 40 * NS);
	cr_assert_eq(store_add(st, T0 + 40 * NS, db_main, s_open, WALL, 5,
	    50), 0);
	store_set_sweep_hook(st, mark_scan, NULL);
	cr_assert_not_null(marked_scan = query_begin(st, &q));
	cr_assert_eq(query_step(marked_scan, 1), 0, "more to read");
	/* Everything expires and is swept while the scan is half done. */
	store_tick(st, T0 + cfg->retention_ns + 7200 * NS);
	sweep();
	c = counts_of(st);
	cr_assert_eq(c.buckets, 0);
	cr_assert_gt(c.retired_buckets, 0);
	cr_assert_not_null(store_stack_get(st, s_sealed, &depth));
	cr_assert_not_null(store_stack_get(st, s_open, &depth));
	cr_assert_null(store_stack_get(st, s_lost, &depth), "nothing held it");
	while ((rc = query_step(marked_scan, 1)) == 0)
		;
	cr_assert_eq(rc, 1);
	cr_assert_eq(query_end(marked_scan, &res), 0);
	marked_scan = NULL;
	c = counts_of(st);
	cr_assert_eq(c.retired_buckets, 0, "each freed once read");
	cr_assert_eq(c.retired_bytes, 0);
	cr_assert_eq(res.count, 11);
	cr_assert_eq(res.ncells, 2);
	for (i = 0; i < res.ncells; i++) {
		if (res.cells[i].stack == s_sealed)
			cr_assert_eq(res.cells[i].count, 6);
		else
			cr_assert_eq(res.cells[i].stack, s_open);
	}
	/* A finished result keeps what it names through a sweep too. */
	store_sweep_begin(st);
	query_result_mark(st, &res);
	store_sweep_end(st);
	cr_assert_str_eq(leaf_name(s_sealed), "sealed_only");
	cr_assert_str_eq(leaf_name(s_open), "open_only");
	query_result_free(&res);
	sweep();
	cr_assert_null(store_stack_get(st, s_sealed, &depth));
}

Test(query, a_scan_freed_early_lets_go_of_what_it_held)
{
	const struct store_config	*cfg = store_get_config(st);
	struct query_scan		*sc;
	uint64_t			 k;

	for (k = 0; k < 3; k++) {
		store_tick(st, T0 + k * 10 * NS);
		samples();
	}
	store_tick(st, T0 + 60 * NS);
	cr_assert_not_null(sc = query_begin(st, &q));
	store_tick(st, T0 + cfg->retention_ns + 7200 * NS);
	cr_assert_gt(counts_of(st).retired_buckets, 0);
	query_scan_free(sc);
	cr_assert_eq(counts_of(st).retired_buckets, 0);
	cr_assert_eq(counts_of(st).retired_bytes, 0);
}

Test(query, a_profile_copied_in_steps_across_a_sweep_is_the_whole_profile)
{
	const struct store_config	*cfg = store_get_config(st);
	struct query_profiling		*qp;
	struct profile			*p, *whole;
	size_t				 i, steps = 0;
	int				 rc;

	samples();
	q.by_thread = 1;
	run();
	cr_assert_not_null(whole = query_profile(st, &res, 1));
	cr_assert_not_null(qp = query_profile_begin(st, &res, 1));
	cr_assert_eq(query_profile_step(qp, 1), 0);
	/* The samples expire and a sweep runs between two steps: the
	 * result keeps what it names. */
	store_tick(st, T0 + cfg->retention_ns + 7200 * NS);
	store_sweep_begin(st);
	query_result_mark(st, &res);
	store_sweep_end(st);
	while ((rc = query_profile_step(qp, 1)) == 0)
		steps++;
	cr_assert_eq(rc, 1);
	cr_assert_eq(steps, 2, "one cell a step: 4 cells, 4 steps");
	cr_assert_not_null(p = query_profile_end(qp));
	cr_assert_eq(p->nsamples, whole->nsamples);
	cr_assert_eq(p->count, whole->count);
	cr_assert_eq(p->weight_us, whole->weight_us);
	cr_assert_eq(p->nframes, whole->nframes);
	cr_assert_eq(p->nlabels, whole->nlabels);
	for (i = 0; i < p->nsamples; i++) {
		cr_assert_eq(p->samples[i].count, whole->samples[i].count);
		cr_assert_eq(p->samples[i].depth, whole->samples[i].depth);
		cr_assert_str_eq(pname(p, p->samples[i].frames[
		    p->samples[i].depth - 1]), pname(whole,
		    whole->samples[i].frames[whole->samples[i].depth - 1]));
	}
	profile_free(p);
	profile_free(whole);
	/* Abandoned half way: nothing leaks (ASan, valgrind). */
	cr_assert_not_null(qp = query_profile_begin(st, &res, 0));
	cr_assert_eq(query_profile_step(qp, 1), 0);
	query_profile_abort(qp);
}

Test(query, a_cell_table_grown_a_slice_a_step_sums_as_one_grown_at_once)
{
	struct query_result	 whole;
	struct query_scan	*sc;
	uint32_t		 f[2], sk[60], th[50];
	char			 name[16];
	size_t			 i, j, steps = 0;
	int			 rc;

	for (i = 0; i < 60; i++) {
		snprintf(name, sizeof name, "f%zu", i);
		f[0] = frame(name, "many.py", 1);
		f[1] = frame("main", "app.py", 10);
		sk[i] = stack(f, 2);
	}
	for (i = 0; i < 50; i++) {
		snprintf(name, sizeof name, "t%zu", i);
		th[i] = thread(instance(300, "many"), 1000 + i, name);
	}
	/* 3,000 cells in a sealed bucket: the table grows several times. */
	for (i = 0; i < 60; i++)
		for (j = 0; j < 50; j++)
			cr_assert_eq(store_add(st, T0, th[j], sk[i], WALL,
			    i + 1, j + 1), 0);
	store_tick(st, T0 + 60 * NS);
	q.by_thread = 1;
	memset(&whole, 0, sizeof whole);
	cr_assert_eq(query_run(st, &q, &whole), 0);
	cr_assert_eq(whole.ncells, 3000);
	cr_assert_not_null(sc = query_begin(st, &q));
	while ((rc = query_step(sc, 7)) == 0)
		steps++;
	cr_assert_eq(rc, 1);
	cr_assert_gt(steps, 3000 / 7, "grown between steps, a slice each");
	cr_assert_eq(query_end(sc, &res), 0);
	cr_assert_eq(res.ncells, whole.ncells);
	cr_assert_eq(res.count, whole.count);
	cr_assert_eq(res.weight_us, whole.weight_us);
	for (i = 0; i < res.ncells; i++) {
		for (j = 0; j < whole.ncells; j++)
			if (whole.cells[j].stack == res.cells[i].stack &&
			    whole.cells[j].thread == res.cells[i].thread)
				break;
		cr_assert_lt(j, whole.ncells);
		cr_assert_eq(res.cells[i].count, whole.cells[j].count);
		cr_assert_eq(res.cells[i].weight_us, whole.cells[j].weight_us);
	}
	query_result_free(&whole);
	/* Freed half way through a growth: nothing leaks. */
	cr_assert_not_null(sc = query_begin(st, &q));
	cr_assert_eq(query_step(sc, 1500), 0);
	cr_assert_eq(query_step(sc, 1500), 0);
	query_scan_free(sc);
}
