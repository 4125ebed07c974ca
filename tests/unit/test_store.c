/* test_store.c -- the profile store: interning, buckets, roll-ups, bounds,
 * sweeps and loaders. */

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "proto.h"
#include "store.h"

#define NS		1000000000ull
/* A time aligned to an hour, so every tier's buckets start on it. */
#define T0		(1700000000ull / 3600 * 3600 * NS)

static struct store	*st;

/* A store with the default tiers and the given memory cap. */
static struct store *
store_with(size_t max_bytes)
{
	struct store_config	cfg;
	struct store		*s;

	store_config_default(&cfg);
	if (max_bytes != 0)
		cfg.max_bytes = max_bytes;
	s = store_new(&cfg);
	cr_assert_not_null(s);
	store_tick(s, T0);
	return (s);
}

static void
setup(void)
{
	st = store_with(0);
}

static void
teardown(void)
{
	store_free(st);
}

TestSuite(store, .init = setup, .fini = teardown);

/* Interns a frame of function `name` in app.py at line `line`. */
static uint32_t
frame(const char *name, uint32_t line)
{
	uint32_t	n, f, fn;

	n = store_string(st, name, strlen(name));
	f = store_string(st, "app.py", 6);
	fn = store_func(st, n, f, 1);
	cr_assert_neq(fn, 0);
	return (store_frame(st, fn, line));
}

/* Interns the stack leaf <- main. */
static uint32_t
stack2(const char *leaf)
{
	uint32_t	fr[2];

	fr[0] = frame(leaf, 10);
	fr[1] = frame("main", 20);
	return (store_stack(st, fr, 2, 0));
}

/* Attaches an instance of pid on host "box". */
static uint32_t
instance(uint32_t pid, uint64_t start_ns)
{
	struct store_instance_info	info;
	const char *const		argv[] = { "python3", "app.py" };

	memset(&info, 0, sizeof info);
	info.pid = pid;
	info.ppid = 1;
	info.start_ns = start_ns;
	info.host = "box";
	info.host_len = 3;
	info.service = "web";
	info.service_len = 3;
	info.python = "3.11";
	info.python_len = 4;
	info.reader = "gil";
	info.reader_len = 3;
	info.argv = argv;
	info.argc = 2;
	return (store_instance_attach(st, &info, T0));
}

/* A thread named `name` of a new instance of pid. */
static uint32_t
thread(uint32_t pid, const char *name)
{
	uint32_t	in = instance(pid, 42);

	cr_assert_neq(in, 0);
	return (store_thread(st, in, pid * 10,
	    store_string(st, name, strlen(name))));
}

static struct store_counts
counts(void)
{
	struct store_counts	c;

	store_get_counts(st, &c);
	return (c);
}

/* Sum of the samples of every bucket (and checks each bucket's sum). */
static uint64_t
bucket_samples(uint64_t *weight)
{
	const struct store_bucket	*b;
	uint64_t			 n = 0, w = 0, bn;
	size_t				 i;

	for (b = store_buckets(st); b != NULL; b = b->next) {
		bn = 0;
		for (i = 0; i < b->cap; i++) {
			bn += b->entries[i].count;
			w += b->entries[i].weight_us;
		}
		cr_assert_eq(bn, b->samples);
		n += bn;
	}
	if (weight != NULL)
		*weight = w;
	return (n);
}

Test(store, interns_strings_once)
{
	uint32_t	a = store_string(st, "abc", 3);
	uint32_t	b = store_string(st, "abd", 3);
	uint32_t	e = store_string(st, "ab\0c", 4);
	uint32_t	len;

	cr_assert_neq(a, 0);
	cr_assert_neq(a, b);
	cr_assert_neq(e, 0);
	cr_assert_neq(e, a);
	cr_assert_eq(store_string(st, "abc", 3), a);
	cr_assert_str_eq(store_string_get(st, a, &len), "abc");
	cr_assert_eq(len, 3);
	store_string_get(st, e, &len);
	cr_assert_eq(len, 4);
	cr_assert_null(store_string_get(st, 0, NULL));
	cr_assert_null(store_string_get(st, 9999, NULL));
}

Test(store, refuses_an_oversized_string)
{
	static char	big[PROTO_MAX_STRING + 1];

	cr_assert_eq(store_string(st, big, sizeof big), 0);
	cr_assert_neq(store_string(st, big, PROTO_MAX_STRING), 0);
}

Test(store, interns_functions_frames_and_stacks_once)
{
	uint32_t	n = store_string(st, "f", 1), file = store_string(st,
			    "a.py", 4), fn, fr, fr2, sk, got[3], depth;
	const uint32_t	*frames;

	fn = store_func(st, n, file, 3);
	cr_assert_neq(fn, 0);
	cr_assert_eq(store_func(st, n, file, 3), fn);
	cr_assert_neq(store_func(st, n, file, 4), fn);
	cr_assert_eq(store_func_get(st, fn, &got[0], &got[1], &got[2]), 0);
	cr_assert_eq(got[0], n);
	cr_assert_eq(got[1], file);
	cr_assert_eq(got[2], 3);
	fr = store_frame(st, fn, 7);
	fr2 = store_frame(st, fn, 8);
	cr_assert_neq(fr, 0);
	cr_assert_neq(fr, fr2);
	cr_assert_eq(store_frame(st, fn, 7), fr);
	got[0] = fr;
	got[1] = fr2;
	sk = store_stack(st, got, 2, 0);
	cr_assert_neq(sk, 0);
	cr_assert_eq(store_stack(st, got, 2, 0), sk);
	cr_assert_neq(store_stack(st, got, 1, 0), sk);
	frames = store_stack_get(st, sk, &depth);
	cr_assert_eq(depth, 2);
	cr_assert_eq(frames[0], fr);
	cr_assert_eq(frames[1], fr2);
	cr_assert_eq(counts().stacks, 2);
}

Test(store, refuses_definitions_with_unknown_ids)
{
	uint32_t	s = store_string(st, "f", 1), fn, fr, bad[2];

	cr_assert_eq(store_func(st, 999, s, 1), 0);
	cr_assert_eq(store_func(st, s, 999, 1), 0);
	cr_assert_eq(store_func(st, 0, s, 1), 0);
	fn = store_func(st, s, s, 1);
	cr_assert_eq(store_frame(st, 999, 1), 0);
	fr = store_frame(st, fn, 1);
	bad[0] = fr;
	bad[1] = 999;
	cr_assert_eq(store_stack(st, bad, 2, 0), 0);
	bad[1] = 0;
	cr_assert_eq(store_stack(st, bad, 2, 0), 0);
	cr_assert_eq(store_thread(st, 999, 1, s), 0);
	cr_assert_eq(store_thread(st, instance(1, 1), 1, 999), 0);
	cr_assert_eq(store_func_get(st, 999, &s, &s, &s), -1);
	cr_assert_eq(store_frame_get(st, 999, &s, &s), -1);
	cr_assert_null(store_thread_get(st, 999));
	cr_assert_null(store_instance_get(st, 999));
}

Test(store, truncated_stack_gets_a_root_frame)
{
	uint32_t	fr = frame("leaf", 1), sk, depth, func, line, name, file;
	const uint32_t	*frames;
	static uint32_t	deep[PROTO_MAX_DEPTH + 1];
	size_t		i;

	sk = store_stack(st, &fr, 1, 1);
	cr_assert_neq(sk, 0);
	cr_assert_neq(sk, store_stack(st, &fr, 1, 0));
	frames = store_stack_get(st, sk, &depth);
	cr_assert_eq(depth, 2);
	cr_assert_eq(frames[0], fr);
	cr_assert_eq(store_frame_get(st, frames[1], &func, &line), 0);
	cr_assert_eq(store_func_get(st, func, &name, &file, &line), 0);
	cr_assert_str_eq(store_string_get(st, name, NULL),
	    PROTO_TRUNCATED_NAME);
	for (i = 0; i < PROTO_MAX_DEPTH + 1; i++)
		deep[i] = fr;
	cr_assert_neq(store_stack(st, deep, PROTO_MAX_DEPTH, 1), 0);
	cr_assert_eq(store_stack(st, deep, PROTO_MAX_DEPTH + 1, 0), 0);
}

Test(store, same_process_is_one_instance_and_a_reused_pid_another)
{
	uint32_t			a, b, c, d;
	const struct store_instance	*in;

	a = instance(100, 1000);
	b = instance(100, 1000);
	c = instance(100, 2000);
	d = instance(101, 1000);
	cr_assert_neq(a, 0);
	cr_assert_eq(a, b);
	cr_assert_neq(c, a);
	cr_assert_neq(d, a);
	cr_assert_neq(d, c);
	cr_assert_eq(counts().instances, 3);
	in = store_instance_get(st, a);
	cr_assert_eq(in->pid, 100);
	cr_assert_eq(in->start_ns, 1000);
	cr_assert_str_eq(in->host, "box");
	cr_assert_str_eq(in->service, "web");
	cr_assert_eq(in->argc, 2);
	cr_assert_str_eq(in->argv[1], "app.py");
	/* Attached twice (a and b): detached when both links are gone. */
	cr_assert_eq(in->attached, 2);
	store_instance_detach(st, a, T0 + 4);
	cr_assert_eq(in->attached, 1);
	cr_assert_eq(in->end_ns, 0);
	store_instance_detach(st, a, T0 + 5);
	cr_assert_eq(in->attached, 0);
	cr_assert_eq(in->end_ns, T0 + 5);
	store_instance_set_dropped(st, a, 17);
	cr_assert_eq(in->dropped, 17);
	cr_assert_eq(instance(100, 1000), a, "a reconnect is the same one");
	cr_assert_eq(in->attached, 1);
	cr_assert_eq(in->end_ns, 0);
}

Test(store, interns_threads_per_instance)
{
	uint32_t			in = instance(1, 1), in2 = instance(2, 1);
	uint32_t			name = store_string(st, "Main", 4);
	uint32_t			other = store_string(st, "w", 1);
	uint32_t			t;
	const struct store_thread	*tp;

	t = store_thread(st, in, 7, name);
	cr_assert_neq(t, 0);
	cr_assert_eq(store_thread(st, in, 7, name), t);
	cr_assert_neq(store_thread(st, in, 8, name), t);
	cr_assert_neq(store_thread(st, in, 7, other), t, "renamed");
	cr_assert_neq(store_thread(st, in2, 7, name), t);
	tp = store_thread_get(st, t);
	cr_assert_eq(tp->id, t);
	cr_assert_eq(tp->instance, in);
	cr_assert_eq(tp->tid, 7);
	cr_assert_eq(tp->name, name);
	cr_assert_eq(counts().threads, 4);
}

Test(store, files_samples_into_buckets_by_time)
{
	uint32_t			th = thread(1, "Main"), sk = stack2("a");
	const struct store_bucket	*b;
	const struct store_instance	*in;

	/* Just before the bucket at 80 s is past its grace. */
	store_tick(st, T0 + 99 * NS);
	cr_assert_eq(store_add(st, T0 + 80 * NS, th, sk, 0, 1, 10), 0);
	cr_assert_eq(store_add(st, T0 + 89999999999ull, th, sk, 0, 2, 20),
	    0);
	cr_assert_eq(store_add(st, T0 + 90 * NS, th, sk, 0, 4, 40), 0);
	cr_assert_eq(store_add(st, T0 + 95 * NS, th, sk, 1, 8, 80), 0);
	cr_assert_eq(store_add(st, T0 + 95 * NS, th, sk, 0, 0, 80), 0,
	    "no samples: nothing to do");
	b = store_buckets(st);
	cr_assert_not_null(b);
	cr_assert_eq(b->start_ns, T0 + 80 * NS);
	cr_assert_eq(b->width_ns, 10 * NS);
	cr_assert_eq(b->samples, 3);
	cr_assert_eq(b->n, 1);
	cr_assert_eq(b->sealed, 0);
	b = b->next;
	cr_assert_not_null(b);
	cr_assert_eq(b->start_ns, T0 + 90 * NS);
	cr_assert_eq(b->samples, 12);
	cr_assert_eq(b->n, 2, "flags split entries");
	cr_assert_null(b->next);
	cr_assert_eq(counts().samples_stored, 15);
	cr_assert_eq(counts().samples_late, 0);
	cr_assert_eq(counts().buckets, 2);
	cr_assert_eq(counts().entries, 3);
	in = store_instance_get(st, store_thread_get(st, th)->instance);
	cr_assert_eq(in->samples, 15);
	cr_assert_eq(in->last_ns, T0 + 95 * NS);
	cr_assert_eq(counts().oldest_ns, T0 + 80 * NS);
}

Test(store, counts_late_samples_and_keeps_them)
{
	uint32_t	th = thread(1, "Main"), sk = stack2("a");
	uint64_t	w;

	store_tick(st, T0 + 1000 * NS);
	cr_assert_eq(store_add(st, T0 + 500 * NS, th, sk, 0, 3, 30), 0);
	cr_assert_eq(counts().samples_late, 3);
	cr_assert_eq(counts().samples_stored, 3);
	cr_assert_eq(bucket_samples(&w), 3);
	cr_assert_eq(w, 30);
}

Test(store, clamps_samples_from_the_future_to_now)
{
	uint32_t	th = thread(1, "Main"), sk = stack2("a");

	store_tick(st, T0 + 100 * NS);
	cr_assert_eq(store_add(st, T0 + 3600 * NS, th, sk, 0, 1, 1), 0);
	cr_assert_eq(store_buckets(st)->start_ns, T0 + 100 * NS);
	/* Within the skew allowed: kept at its own time. */
	cr_assert_eq(store_add(st, T0 + 104 * NS, th, sk, 0, 1, 1), 0);
	cr_assert_eq(counts().buckets, 1);
}

Test(store, refuses_samples_past_the_retention)
{
	const struct store_config	*cfg = store_get_config(st);
	uint32_t			th = thread(1, "Main");
	uint32_t			sk = stack2("a");
	uint64_t			now = T0 + cfg->retention_ns;

	store_tick(st, now);
	cr_assert_eq(store_add(st, T0 - 10 * NS, th, sk, 0, 5, 1), -1);
	cr_assert_eq(counts().expired_samples, 5);
	cr_assert_eq(counts().samples_stored, 0);
	cr_assert_eq(counts().buckets, 0);
}

Test(store, drops_samples_of_unknown_stacks_or_threads)
{
	uint32_t	th = thread(1, "Main"), sk = stack2("a");

	cr_assert_eq(store_add(st, T0, th, 999, 0, 2, 1), -1);
	cr_assert_eq(store_add(st, T0, 999, sk, 0, 3, 1), -1);
	cr_assert_eq(store_add(st, T0, 0, 0, 0, 1, 1), -1);
	cr_assert_eq(counts().samples_dropped, 6);
	cr_assert_eq(counts().buckets, 0);
}

/* Checks that no two buckets cover the same time. */
static void
no_twin_buckets(void)
{
	const struct store_bucket	*b;

	for (b = store_buckets(st); b != NULL && b->next != NULL; b = b->next)
		cr_assert_leq(b->start_ns + b->width_ns, b->next->start_ns,
		    "buckets at %llu (%llu s) and %llu (%llu s) overlap",
		    (unsigned long long)b->start_ns,
		    (unsigned long long)(b->width_ns / NS),
		    (unsigned long long)b->next->start_ns,
		    (unsigned long long)(b->next->width_ns / NS));
}

Test(store, tick_seals_buckets_past_their_grace_sorted)
{
	const struct store_config	*cfg = store_get_config(st);
	const struct store_bucket	*b;
	uint32_t			 th[3], sk[4];
	char				 name[8];
	size_t				 i, j;
	uint64_t			 w;

	for (i = 0; i < 3; i++) {
		snprintf(name, sizeof name, "t%zu", i);
		th[i] = thread(1 + (uint32_t)i, name);
	}
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof name, "f%zu", i);
		sk[i] = stack2(name);
	}
	/* Many entries, added in a scrambled order, some twice. */
	for (i = 0; i < 100; i++) {
		j = (i * 7) % 12;
		cr_assert_eq(store_add(st, T0 + (i % 10) * NS, th[j % 3],
		    sk[j / 3], (uint32_t)(i / 12 % 2), 1, i), 0);
	}
	store_tick(st, T0 + cfg->tiers[0].width_ns + cfg->grace_ns - 1);
	cr_assert_eq(store_buckets(st)->sealed, 0);
	store_tick(st, T0 + cfg->tiers[0].width_ns + cfg->grace_ns);
	b = store_buckets(st);
	cr_assert_eq(b->sealed, 1);
	cr_assert_eq(b->cap, b->n);
	cr_assert_eq(b->n, 24);
	cr_assert_eq(counts().entries, 24);
	cr_assert_eq(b->samples, 100);
	for (i = 1; i < b->n; i++) {
		const struct store_entry *x = &b->entries[i - 1];
		const struct store_entry *y = &b->entries[i];

		cr_assert(x->thread < y->thread || (x->thread == y->thread &&
		    (x->stack < y->stack || (x->stack == y->stack &&
		    (x->labels < y->labels || (x->labels == y->labels &&
		    x->flags < y->flags))))), "entry %zu out of order", i);
	}
	cr_assert_eq(bucket_samples(&w), 100);
	cr_assert_eq(w, 99 * 100 / 2);
	/* A sample for a sealed bucket's time is late: kept and counted,
	 * and the sealed bucket is never doubled. */
	cr_assert_eq(store_add(st, T0 + 1 * NS, th[0], sk[0], 0, 1, 1), 0);
	cr_assert_eq(bucket_samples(NULL), 101);
	cr_assert_eq(counts().samples_late, 1);
	/* Back-filled at its time; the next tick merges it into its twin. */
	store_tick(st, T0 + cfg->tiers[0].width_ns + cfg->grace_ns);
	cr_assert_eq(bucket_samples(NULL), 101);
	no_twin_buckets();
}

/* Adds samples to six 10 s buckets of one minute; 2 keys in each.
 * The clock follows the samples, so none is late. */
static void
fill_minute(uint64_t minute, uint32_t th, uint32_t sk1, uint32_t sk2)
{
	uint64_t	i;

	for (i = 0; i < 6; i++) {
		store_tick(st, minute + i * 10 * NS + 2 * NS);
		cr_assert_eq(store_add(st, minute + i * 10 * NS + NS, th, sk1,
		    0, i + 1, 1000 * (i + 1)), 0);
		cr_assert_eq(store_add(st, minute + i * 10 * NS + 2 * NS, th,
		    sk2, 1, 2, 7), 0);
	}
}

Test(store, rolls_ten_second_buckets_up_into_minutes)
{
	const struct store_config	*cfg = store_get_config(st);
	const struct store_bucket	*b;
	uint32_t			 th = thread(1, "Main");
	uint32_t			 s1 = stack2("a"), s2 = stack2("b");
	uint64_t			 w, now;

	fill_minute(T0, th, s1, s2);
	fill_minute(T0 + 60 * NS, th, s1, s2);
	store_tick(st, T0 + 200 * NS);
	cr_assert_eq(counts().samples_late, 0);
	cr_assert_eq(counts().buckets, 12);
	cr_assert_eq(bucket_samples(&w), 2 * (21 + 12));
	/* Both minutes older than the first tier, step by step. */
	for (now = T0 + 200 * NS; now <= T0 + cfg->tiers[0].until_ns +
	    130 * NS; now += 10 * NS)
		store_tick(st, now);
	cr_assert_eq(counts().buckets, 2);
	cr_assert_geq(counts().rollups, 2);
	for (b = store_buckets(st); b != NULL; b = b->next) {
		cr_assert_eq(b->width_ns, 60 * NS);
		cr_assert_eq(b->sealed, 1);
		cr_assert_eq(b->n, 2);
		cr_assert_eq(b->samples, 21 + 12);
		cr_assert_eq(b->entries[0].stack < b->entries[1].stack ?
		    b->entries[0].count : b->entries[1].count,
		    s1 < s2 ? 21 : 12);
	}
	cr_assert_eq(store_buckets(st)->start_ns, T0);
	cr_assert_eq(store_buckets(st)->next->start_ns, T0 + 60 * NS);
	cr_assert_eq(bucket_samples(&w), 2 * (21 + 12));
	cr_assert_eq(w, 2 * (21000 + 6 * 7));
	cr_assert_eq(counts().entries, 4);
	cr_assert_eq(counts().samples_stored, 2 * (21 + 12));
	/* A day later: one hour bucket. */
	store_tick(st, T0 + cfg->tiers[1].until_ns + 3600 * NS);
	cr_assert_eq(counts().buckets, 1);
	cr_assert_eq(store_buckets(st)->width_ns, 3600 * NS);
	cr_assert_eq(bucket_samples(&w), 2 * (21 + 12));
	cr_assert_eq(w, 2 * (21000 + 6 * 7));
}

Test(store, late_sample_for_a_rolled_up_minute_joins_an_open_bucket)
{
	const struct store_config	*cfg = store_get_config(st);
	uint32_t			 th = thread(1, "Main");
	uint32_t			 s1 = stack2("a"), s2 = stack2("b");
	uint64_t			 now = T0 + cfg->tiers[0].until_ns +
					     60 * NS;

	fill_minute(T0, th, s1, s2);
	store_tick(st, now);
	cr_assert_eq(counts().buckets, 1);
	/* "samples_late: charged to the oldest open" bucket, so a late
	 * sample never makes a second bucket for a time already rolled up
	 * (one minute would otherwise hold many 1-min buckets). */
	cr_assert_eq(store_add(st, T0 + 5 * NS, th, s1, 0, 1, 1), 0);
	cr_assert_eq(counts().samples_late, 1);
	store_tick(st, now + 60 * NS);
	store_tick(st, now + 120 * NS);
	cr_assert_eq(bucket_samples(NULL), 34);
	no_twin_buckets();
}

Test(store, expires_buckets_by_age)
{
	const struct store_config	*cfg = store_get_config(st);
	uint32_t			 th = thread(1, "Main");
	uint32_t			 sk = stack2("a");

	cr_assert_eq(store_add(st, T0, th, sk, 0, 3, 1), 0);
	store_tick(st, T0 + 90 * NS);
	cr_assert_eq(store_add(st, T0 + 90 * NS, th, sk, 0, 4, 1), 0);
	store_tick(st, T0 + cfg->retention_ns + 50 * NS);
	cr_assert_eq(counts().expired_samples, 3);
	cr_assert_eq(bucket_samples(NULL), 4);
	/* The rest was rolled up into its hour: it goes with the hour. */
	store_tick(st, T0 + cfg->retention_ns + 200 * NS);
	cr_assert_eq(counts().expired_samples, 3);
	store_tick(st, T0 + cfg->retention_ns + 3600 * NS);
	cr_assert_eq(counts().expired_samples, 7);
	cr_assert_eq(counts().buckets, 0);
	cr_assert_eq(counts().entries, 0);
}

/* A new store capped at max bytes, with 200 stacks f0..f199 in sk: the
 * thread "Main" of pid 1. */
static uint32_t
capped(size_t max, uint32_t *sk)
{
	char		name[16];
	uint64_t	i;

	store_free(st);
	st = store_with(max);
	for (i = 0; i < 200; i++) {
		snprintf(name, sizeof name, "f%llu", (unsigned long long)i);
		sk[i] = stack2(name);
	}
	return (thread(1, "Main"));
}

Test(store, evicts_the_oldest_buckets_past_max_bytes)
{
	const struct store_bucket	*b;
	struct store_counts		 c;
	uint32_t			 th, sk[200];
	uint64_t			 i, k, stored, prev;
	size_t				 max = 96u << 10;

	th = capped(max, sk);
	for (k = 0; k < 40; k++) {
		store_tick(st, T0 + k * 10 * NS);
		for (i = 0; i < 200; i++)
			store_add(st, T0 + k * 10 * NS, th, sk[i], 0, 1, 1);
		cr_assert_leq(counts().bytes, max);
	}
	store_tick(st, T0 + 40 * 10 * NS + 20 * NS);
	c = counts();
	cr_assert_gt(c.evicted_buckets, 0);
	cr_assert_leq(c.bytes, max);
	cr_assert_eq(c.evicted_samples + c.samples_dropped + bucket_samples(NULL),
	    40 * 200);
	stored = c.samples_stored;
	cr_assert_eq(stored, c.evicted_samples + bucket_samples(NULL));
	/* What is left is the newest: the last bucket and those before it
	 * back to the first kept, none missing in between. */
	prev = 0;
	for (b = store_buckets(st); b != NULL; b = b->next) {
		if (prev != 0)
			cr_assert_eq(b->start_ns, prev + 10 * NS);
		prev = b->start_ns;
	}
	cr_assert_eq(prev, T0 + 39 * 10 * NS);
	cr_assert_eq(c.oldest_ns, T0 + (40 - c.buckets) * 10 * NS);
}

Test(store, sweep_keeps_what_buckets_and_marks_use)
{
	uint32_t	th = thread(1, "Main"), used = stack2("used");
	uint32_t	marked = stack2("marked"), lost = stack2("lost");
	uint32_t	lost_name = store_string(st, "orphan", 6);
	uint32_t	lost_str = store_string(st, "lost", 4);
	uint32_t	depth, reused;
	struct store_counts c0, c1;

	cr_assert_eq(store_add(st, T0, th, used, 0, 1, 1), 0);
	c0 = counts();
	store_sweep_begin(st);
	store_mark(st, STORE_STACK, marked);
	cr_assert_eq(store_sweep_end(st), 5, "stack, frame, func, string "
	    "of 'lost' and the orphan string");
	c1 = counts();
	cr_assert_eq(c1.sweeps, 1);
	cr_assert_eq(c1.reclaimed, 5);
	cr_assert_eq(c1.stacks, c0.stacks - 1);
	cr_assert_lt(c1.bytes, c0.bytes);
	cr_assert_not_null(store_stack_get(st, used, &depth));
	cr_assert_not_null(store_stack_get(st, marked, &depth));
	cr_assert_null(store_stack_get(st, lost, &depth));
	cr_assert_null(store_string_get(st, lost_name, NULL));
	cr_assert_not_null(store_thread_get(st, th));
	/* The freed ids are handed out again, and lookups still work. */
	reused = store_string(st, "new", 3);
	cr_assert(reused == lost_name || reused == lost_str, "id %u", reused);
	cr_assert_eq(store_id_limit(st, STORE_STRING), c0.strings + 1);
	cr_assert_eq(stack2("used"), used);
	cr_assert_eq(stack2("marked"), marked);
	cr_assert_eq(store_string(st, "Main", 4),
	    store_thread_get(st, th)->name);
}

Test(store, sweep_frees_detached_instances_nothing_uses)
{
	const struct store_config	*cfg = store_get_config(st);
	uint32_t			 a = instance(1, 1), b = instance(2, 1);

	store_instance_detach(st, a, T0);
	store_tick(st, T0 + cfg->retention_ns + NS);
	store_sweep_begin(st);
	store_sweep_end(st);
	cr_assert_null(store_instance_get(st, a));
	cr_assert_not_null(store_instance_get(st, b), "still attached");
	cr_assert_eq(counts().instances, 1);
}

Test(store, sweep_keeps_only_the_last_departed_that_no_sample_names)
{
	const struct store_config	*cfg = store_get_config(st);
	uint32_t			 ids[1000], sk = stack2("a"), th, i;
	size_t				 before;

	/* One departed process with samples, then a storm of short-lived
	 * ones without. */
	th = thread(5000, "MainThread");
	cr_assert_eq(store_add(st, T0, th, sk, 0, 1, 1), 0);
	store_instance_detach(st, store_thread_get(st, th)->instance, T0);
	before = counts().def_bytes;
	for (i = 0; i < 1000; i++) {
		cr_assert_neq(ids[i] = instance(10000 + i, 1), 0);
		store_instance_detach(st, ids[i], T0 + 1 + i);
	}
	store_sweep_begin(st);
	store_sweep_end(st);
	cr_assert_eq(counts().instances, cfg->max_gone + 1);
	cr_assert_not_null(store_instance_get(st,
	    store_thread_get(st, th)->instance), "the one samples name");
	cr_assert_not_null(store_instance_get(st, ids[999]), "the last");
	cr_assert_null(store_instance_get(st, ids[999 - cfg->max_gone]));
	cr_assert_lt(counts().def_bytes, before + (cfg->max_gone + 16) * 1024);
}

Test(store, thread_churn_keeps_memory_flat)
{
	uint32_t	in = instance(1, 1), sk = stack2("a"), th, round;
	char		name[32];
	size_t		bytes_at_10 = 0;

	for (round = 0; round < 300; round++) {
		snprintf(name, sizeof name, "worker-%04u", round);
		th = store_thread(st, in, 1000 + round,
		    store_string(st, name, strlen(name)));
		cr_assert_neq(th, 0);
		store_tick(st, T0 + round * NS);
		cr_assert_eq(store_add(st, T0 + round * NS, th, sk, 0, 1, 1),
		    0);
		store_reset(st);
		store_sweep_begin(st);
		store_mark(st, STORE_STACK, sk);
		store_sweep_end(st);
		if (round == 10)
			bytes_at_10 = counts().bytes;
	}
	cr_assert_eq(counts().bytes, bytes_at_10);
	cr_assert_eq(counts().threads, 0);
	cr_assert_lt(store_id_limit(st, STORE_THREAD), 10);
}

Test(store, reset_forgets_samples_and_keeps_definitions)
{
	uint32_t		th = thread(1, "Main"), sk = stack2("a");
	struct store_counts	c0, c1;

	c0 = counts();
	store_add(st, T0, th, sk, 0, 3, 1);
	store_add(st, T0 + 20 * NS, th, sk, 0, 3, 1);
	store_reset(st);
	c1 = counts();
	cr_assert_eq(c1.buckets, 0);
	cr_assert_eq(c1.entries, 0);
	cr_assert_null(store_buckets(st));
	cr_assert_eq(c1.bytes, c0.bytes);
	cr_assert_eq(c1.stacks, 1);
	cr_assert_not_null(store_thread_get(st, th));
}

/* Copies every definition and bucket of `src` into `st` by id. */
static void
copy_store(struct store *src)
{
	const struct store_bucket	*b;
	const struct store_instance	*in;
	const struct store_thread	*t;
	const uint32_t			*frames;
	const char			*s;
	uint32_t			 id, len, a, b2, c;

	for (id = 1; id < store_id_limit(src, STORE_STRING); id++) {
		if ((s = store_string_get(src, id, &len)) != NULL)
			cr_assert_eq(store_load_string(st, id, s, len), 0,
			    "string %u", id);
	}
	for (id = 1; id < store_id_limit(src, STORE_FUNC); id++) {
		if (store_func_get(src, id, &a, &b2, &c) == 0)
			cr_assert_eq(store_load_func(st, id, a, b2, c), 0,
			    "func %u", id);
	}
	for (id = 1; id < store_id_limit(src, STORE_FRAME); id++) {
		if (store_frame_get(src, id, &a, &c) == 0)
			cr_assert_eq(store_load_frame(st, id, a, c), 0,
			    "frame %u", id);
	}
	for (id = 1; id < store_id_limit(src, STORE_STACK); id++) {
		if ((frames = store_stack_get(src, id, &len)) != NULL)
			cr_assert_eq(store_load_stack(st, id, frames, len), 0,
			    "stack %u", id);
	}
	for (id = 1; id < store_id_limit(src, STORE_INSTANCE); id++) {
		if ((in = store_instance_get(src, id)) != NULL)
			cr_assert_eq(store_load_instance(st, in), 0);
	}
	for (id = 1; id < store_id_limit(src, STORE_THREAD); id++) {
		if ((t = store_thread_get(src, id)) != NULL)
			cr_assert_eq(store_load_thread(st, t), 0);
	}
	for (b = store_buckets(src); b != NULL; b = b->next) {
		cr_assert(b->sealed);
		cr_assert_eq(store_load_bucket(st, b->start_ns, b->width_ns,
		    b->entries, b->n), 0);
	}
}

Test(store, loaders_round_trip_a_store, .timeout = 10)
{
	struct store		*src = st, *dst;
	struct store_counts	 a, b;
	uint32_t		 th, sk, t2, s2, id, fr;
	uint64_t		 w1, w2;

	/* Leave holes in the ids, as sweeps do. */
	store_string(st, "hole", 4);
	th = thread(7, "Main");
	sk = stack2("a");
	fr = frame("deep", 3);
	store_add(st, T0, th, sk, 1, 5, 50);
	store_tick(st, T0 + 30 * NS);
	store_add(st, T0 + 30 * NS, th, sk, 0, 2, 20);
	store_tick(st, T0 + 100 * NS);
	store_sweep_begin(st);
	store_mark(st, STORE_FRAME, fr);
	store_sweep_end(st);
	store_get_counts(src, &a);
	bucket_samples(&w1);

	dst = store_with(0);
	st = dst;
	copy_store(src);
	store_get_counts(dst, &b);
	cr_assert_eq(b.strings, a.strings);
	cr_assert_eq(b.funcs, a.funcs);
	cr_assert_eq(b.frames, a.frames);
	cr_assert_eq(b.stacks, a.stacks);
	cr_assert_eq(b.instances, a.instances);
	cr_assert_eq(b.threads, a.threads);
	cr_assert_eq(b.buckets, a.buckets);
	cr_assert_eq(b.entries, a.entries);
	cr_assert_eq(bucket_samples(&w2), 7);
	cr_assert_eq(w2, w1);
	cr_assert_eq(store_instance_get(dst, store_thread_get(dst,
	    th)->instance)->attached, 0, "nothing is connected after a load");
	/* Loaded definitions are interned: the same content, the same id. */
	cr_assert_eq(stack2("a"), sk);
	t2 = store_thread(st, store_thread_get(dst, th)->instance, 70,
	    store_string(st, "Main", 4));
	cr_assert_eq(t2, th);
	/* And new ones get ids that do not collide. */
	s2 = store_string(st, "brand new", 9);
	cr_assert_str_eq(store_string_get(dst, s2, NULL), "brand new");
	for (id = 1; id < store_id_limit(src, STORE_STRING); id++) {
		if (store_string_get(src, id, NULL) != NULL)
			cr_assert_str_eq(store_string_get(dst, id, NULL),
			    store_string_get(src, id, NULL));
	}
	store_free(src);
}

Test(store, loaders_refuse_inconsistent_ids, .timeout = 10)
{
	struct store_entry	e[2];
	struct store_thread	t;
	struct store_instance	in;
	uint32_t		fr[1] = { 999 };
	char			*argv[1] = { "x" };

	cr_assert_eq(store_load_string(st, 0, "a", 1), -1);
	cr_assert_eq(store_load_string(st, 10, "a", 1), 0);
	cr_assert_eq(store_load_string(st, 10, "a", 1), 0, "the same again");
	cr_assert_eq(store_load_string(st, 10, "b", 1), -1, "taken");
	cr_assert_eq(store_load_string(st, 1, "not the built-in", 16), -1);
	cr_assert_eq(store_load_string(st, 5, "c", 1), 0, "below len");
	cr_assert_eq(store_load_func(st, 3, 999, 10, 1), -1);
	cr_assert_eq(store_load_func(st, 3, 10, 10, 1), 0);
	cr_assert_eq(store_load_func(st, 3, 10, 5, 1), -1);
	cr_assert_eq(store_load_frame(st, 3, 999, 1), -1);
	cr_assert_eq(store_load_frame(st, 3, 3, 1), 0);
	cr_assert_eq(store_load_stack(st, 4, fr, 1), -1);
	fr[0] = 3;
	cr_assert_eq(store_load_stack(st, 4, fr, 1), 0);
	cr_assert_eq(store_load_stack(st, 4, fr, 1), -1);
	memset(&in, 0, sizeof in);
	in.pid = 5;
	in.host = "h";
	in.argv = argv;
	in.argc = 1;
	cr_assert_eq(store_load_instance(st, &in), -1, "id 0");
	in.id = 2;
	cr_assert_eq(store_load_instance(st, &in), 0);
	cr_assert_eq(store_load_instance(st, &in), -1);
	memset(&t, 0, sizeof t);
	t.id = 3;
	t.instance = 9;
	t.name = 10;
	cr_assert_eq(store_load_thread(st, &t), -1);
	t.instance = 2;
	t.name = 999;
	cr_assert_eq(store_load_thread(st, &t), -1);
	t.name = 10;
	cr_assert_eq(store_load_thread(st, &t), 0);
	memset(e, 0, sizeof e);
	e[0].thread = 3;
	e[0].stack = 4;
	e[0].count = 1;
	e[1] = e[0];
	cr_assert_eq(store_load_bucket(st, T0, 10 * NS, e, 2), -1,
	    "not sorted");
	e[1].flags = 1;
	cr_assert_eq(store_load_bucket(st, T0, 0, e, 2), -1, "no width");
	e[1].count = 0;
	cr_assert_eq(store_load_bucket(st, T0, 10 * NS, e, 2), -1, "count 0");
	e[1].count = 1;
	e[1].stack = 999;
	cr_assert_eq(store_load_bucket(st, T0, 10 * NS, e, 2), -1);
	e[1].stack = 4;
	e[1].thread = 999;
	cr_assert_eq(store_load_bucket(st, T0, 10 * NS, e, 2), -1);
	e[1].thread = 3;
	cr_assert_eq(store_load_bucket(st, T0, 10 * NS, e, 2), 0);
	cr_assert_eq(counts().buckets, 1);
	cr_assert_eq(bucket_samples(NULL), 2);
}

/* Sums the tallies of instance in every bucket, checking their order. */
static void
tally_sums(uint32_t in, uint64_t *samples, uint64_t *invalid)
{
	const struct store_bucket	*b;
	size_t				 i;

	*samples = *invalid = 0;
	for (b = store_buckets(st); b != NULL; b = b->next) {
		for (i = 0; i < b->ntallies; i++) {
			if (i > 0)
				cr_assert_lt(store_cmp_tally(&b->tallies[i - 1],
				    &b->tallies[i]), 0, "tallies out of order");
			if (b->tallies[i].instance != in)
				continue;
			*samples += b->tallies[i].samples;
			*invalid += b->tallies[i].invalid;
		}
	}
}

Test(store, tallies_what_batches_said_per_bucket_instance_and_mode)
{
	const struct store_bucket	*b;
	uint32_t			 a = instance(1, 1), c = instance(2, 1);
	uint64_t			 s, inv;

	/* Keys added out of order land sorted; equal keys add up. */
	cr_assert_eq(store_add_tally(st, T0 + NS, c, 1, 90, 10), 0);
	cr_assert_eq(store_add_tally(st, T0 + 2 * NS, a, 2, 50, 0), 0);
	cr_assert_eq(store_add_tally(st, T0 + 3 * NS, a, 1, 40, 3), 0);
	cr_assert_eq(store_add_tally(st, T0 + 4 * NS, a, 1, 60, 4), 0);
	cr_assert_eq(store_add_tally(st, T0 + 5 * NS, a, 1, 0, 0), 0,
	    "nothing said: nothing kept");
	b = store_buckets(st);
	cr_assert_eq(b->ntallies, 3);
	cr_assert_eq(b->tallies[0].instance, a);
	cr_assert_eq(b->tallies[0].flags, 1);
	cr_assert_eq(b->tallies[0].samples, 100);
	cr_assert_eq(b->tallies[0].invalid, 7);
	cr_assert_eq(b->tallies[1].flags, 2);
	cr_assert_eq(b->tallies[2].instance, c);
	cr_assert_eq(b->samples, 0, "tallies are not samples");
	/* Another bucket's time: its own tally. */
	store_tick(st, T0 + 16 * NS);
	cr_assert_eq(store_add_tally(st, T0 + 15 * NS, a, 1, 5, 5), 0);
	cr_assert_eq(counts().buckets, 2);
	tally_sums(a, &s, &inv);
	cr_assert_eq(s, 155);
	cr_assert_eq(inv, 12);
	/* Unknown instance, or past the retention: refused. */
	cr_assert_eq(store_add_tally(st, T0, 999, 1, 1, 1), -1);
	cr_assert_eq(store_add_tally(st, T0 - store_get_config(st)->
	    retention_ns - NS, a, 1, 1, 1), -1);
}

Test(store, tallies_survive_sealing_and_roll_ups)
{
	const struct store_config	*cfg = store_get_config(st);
	uint32_t			 a = instance(1, 1), c = instance(2, 1);
	uint32_t			 th = thread(3, "Main"), sk = stack2("x");
	uint64_t			 now, i, s, inv;
	size_t				 bytes0 = counts().bytes;

	/* Six 10 s buckets of one minute, a sample and two tallies each. */
	for (i = 0; i < 6; i++) {
		store_tick(st, T0 + i * 10 * NS + 2 * NS);
		cr_assert_eq(store_add(st, T0 + i * 10 * NS + NS, th, sk, 0, 1,
		    1), 0);
		cr_assert_eq(store_add_tally(st, T0 + i * 10 * NS + NS, a, 1,
		    10, i), 0);
		cr_assert_eq(store_add_tally(st, T0 + i * 10 * NS + NS, c, 1,
		    20, 1), 0);
	}
	for (now = T0 + 100 * NS; now <= T0 + cfg->tiers[0].until_ns +
	    130 * NS; now += 10 * NS)
		store_tick(st, now);
	cr_assert_eq(counts().buckets, 1);
	cr_assert_eq(store_buckets(st)->width_ns, 60 * NS);
	cr_assert_eq(store_buckets(st)->ntallies, 2);
	tally_sums(a, &s, &inv);
	cr_assert_eq(s, 60);
	cr_assert_eq(inv, 0 + 1 + 2 + 3 + 4 + 5);
	tally_sums(c, &s, &inv);
	cr_assert_eq(s, 120);
	cr_assert_eq(inv, 6);
	/* A late tally for the rolled-up minute joins it at the next tick. */
	cr_assert_eq(store_add_tally(st, T0 + 5 * NS, a, 1, 1, 1), 0);
	store_tick(st, now + 60 * NS);
	store_tick(st, now + 120 * NS);
	no_twin_buckets();
	tally_sums(a, &s, &inv);
	cr_assert_eq(s, 61);
	cr_assert_eq(inv, 16);
	/* Every byte charged for them is given back with their buckets. */
	store_reset(st);
	cr_assert_eq(counts().bytes, bytes0);
}

Test(store, sweep_keeps_the_instances_tallies_use)
{
	const struct store_config	*cfg = store_get_config(st);
	uint32_t			 a = instance(1, 1), b = instance(2, 1);
	uint64_t			 now = T0 + cfg->retention_ns + 60 * NS;

	/* Both gone longer than the retention; a bucket of now still says
	 * what a's batches said. */
	store_instance_detach(st, a, T0);
	store_instance_detach(st, b, T0);
	store_tick(st, now);
	cr_assert_eq(store_add_tally(st, now, a, 1, 10, 1), 0);
	store_sweep_begin(st);
	store_sweep_end(st);
	cr_assert_not_null(store_instance_get(st, a));
	cr_assert_null(store_instance_get(st, b));
}

Test(store, loads_tallies_only_consistent_ones)
{
	struct store_entry	 e;
	struct store_tally	 t[2];
	uint32_t		 a = instance(1, 1), c = instance(2, 1);
	uint32_t		 th = thread(3, "Main"), sk = stack2("x");

	memset(&e, 0, sizeof e);
	e.thread = th;
	e.stack = sk;
	e.count = 1;
	cr_assert_eq(store_load_bucket(st, T0 - 600 * NS, 10 * NS, &e, 1), 0);
	memset(t, 0, sizeof t);
	t[0].instance = c;
	t[0].samples = 5;
	t[1].instance = a;
	t[1].invalid = 1;
	cr_assert_eq(store_load_tallies(st, store_buckets(st), t, 2), -1,
	    "out of order");
	t[0].instance = a;
	t[1].instance = a;
	cr_assert_eq(store_load_tallies(st, store_buckets(st), t, 2), -1,
	    "twice the same key");
	t[1].instance = 999;
	cr_assert_eq(store_load_tallies(st, store_buckets(st), t, 2), -1,
	    "unknown instance");
	t[1].instance = c;
	t[1].invalid = 0;
	cr_assert_eq(store_load_tallies(st, store_buckets(st), t, 2), -1,
	    "an empty tally");
	t[1].invalid = 2;
	cr_assert_eq(store_load_tallies(st, (const struct store_bucket *)&e,
	    t, 2), -1, "not a bucket of the store");
	cr_assert_eq(store_load_tallies(st, store_buckets(st), t, 2), 0);
	cr_assert_eq(store_buckets(st)->ntallies, 2);
	cr_assert_eq(store_load_tallies(st, store_buckets(st), t, 2), -1,
	    "a bucket loaded twice");
}

/* The first sealed bucket. */
static const struct store_bucket *
first_sealed(void)
{
	const struct store_bucket	*b;

	for (b = store_buckets(st); b != NULL && !b->sealed; b = b->next)
		;
	cr_assert_not_null(b);
	return (b);
}

Test(store, a_held_bucket_that_expires_stays_readable_until_released)
{
	const struct store_config	*cfg = store_get_config(st);
	const struct store_bucket	*b;
	struct store_counts		 c;
	uint32_t			 th = thread(1, "Main");
	uint32_t			 sk = stack2("held");
	uint32_t			 depth;
	size_t				 bytes;

	cr_assert_eq(store_add(st, T0, th, sk, 0, 3, 30), 0);
	store_tick(st, T0 + 30 * NS);
	b = first_sealed();
	store_bucket_hold(st, b);
	bytes = counts().bytes;
	/* Housekeeping runs while the bucket is held: it expires. */
	store_tick(st, T0 + cfg->retention_ns + 3600 * NS);
	c = counts();
	cr_assert_eq(c.expired_samples, 3);
	cr_assert_eq(c.buckets, 0);
	cr_assert_eq(c.entries, 0);
	cr_assert_eq(c.retired_buckets, 1);
	cr_assert_gt(c.retired_bytes, 0);
	cr_assert_eq(c.bytes, bytes, "still in memory, still counted");
	cr_assert_null(store_buckets(st));
	/* Its entries are still there, and a sweep keeps what they name. */
	cr_assert_eq(b->n, 1);
	cr_assert_eq(b->entries[0].stack, sk);
	cr_assert_eq(b->entries[0].count, 3);
	store_sweep_begin(st);
	store_sweep_end(st);
	cr_assert_not_null(store_stack_get(st, sk, &depth));
	cr_assert_not_null(store_thread_get(st, th));
	/* Released: freed, and the next sweep frees what it named. */
	store_bucket_release(st, b);
	c = counts();
	cr_assert_eq(c.retired_buckets, 0);
	cr_assert_eq(c.retired_bytes, 0);
	cr_assert_lt(c.bytes, bytes);
	store_sweep_begin(st);
	store_sweep_end(st);
	cr_assert_null(store_stack_get(st, sk, &depth));
}

Test(store, a_held_bucket_rolled_up_leaves_one_merged_bucket_counted_once)
{
	const struct store_bucket	*b;
	struct store_counts		 c;
	uint32_t			 th = thread(1, "Main");
	uint32_t			 sk = stack2("a");
	uint64_t			 k;

	for (k = 0; k < 6; k++) {
		store_tick(st, T0 + k * 10 * NS);
		cr_assert_eq(store_add(st, T0 + k * 10 * NS, th, sk, 0, 1, 1),
		    0);
	}
	store_tick(st, T0 + 80 * NS);
	b = first_sealed();
	store_bucket_hold(st, b);
	/* An hour later the minute rolls up: the held 10 s bucket is
	 * retired, not freed, and not counted twice. */
	store_tick(st, T0 + 3700 * NS);
	c = counts();
	cr_assert_gt(c.rollups, 0);
	cr_assert_eq(c.retired_buckets, 1);
	cr_assert_eq(bucket_samples(NULL), 6);
	cr_assert_eq(b->samples, 1);
	store_bucket_release(st, b);
	cr_assert_eq(counts().retired_buckets, 0);
	cr_assert_eq(bucket_samples(NULL), 6);
}

Test(store, held_buckets_are_evicted_for_the_cap_and_freed_when_released)
{
	const struct store_bucket	*held[64];
	const struct store_bucket	*b;
	struct store_counts		 c;
	uint32_t			 th, sk[200];
	uint64_t			 i, k;
	size_t				 nheld = 0, max = 96u << 10;

	th = capped(max, sk);
	for (k = 0; k < 40; k++) {
		store_tick(st, T0 + k * 10 * NS);
		/* A query holds every sealed bucket as it appears. */
		for (b = store_buckets(st); b != NULL; b = b->next)
			if (b->sealed && b->holds == 0 && nheld < 64) {
				store_bucket_hold(st, b);
				held[nheld++] = b;
			}
		for (i = 0; i < 200; i++)
			store_add(st, T0 + k * 10 * NS, th, sk[i], 0, 1, 1);
		c = counts();
		cr_assert_leq(c.bytes - c.retired_bytes, max);
	}
	c = counts();
	cr_assert_gt(c.evicted_buckets, 0, "housekeeping did not wait");
	cr_assert_gt(c.retired_buckets, 0);
	cr_assert_eq(c.samples_dropped, 0);
	for (i = 0; i < nheld; i++)
		store_bucket_release(st, held[i]);
	c = counts();
	cr_assert_eq(c.retired_buckets, 0);
	cr_assert_eq(c.retired_bytes, 0);
	cr_assert_leq(c.bytes, max);
	cr_assert_eq(c.evicted_samples + bucket_samples(NULL), 40 * 200);
}
