/* test_store.c -- the interned profile store. */

#include <string.h>

#include <criterion/criterion.h>

#include "proto.h"
#include "store.h"

static struct store *st;

static void
setup(void)
{
	st = store_new(1000, 64u << 20);
	cr_assert_not_null(st);
}

static void
teardown(void)
{
	store_free(st);
}

TestSuite(store, .init = setup, .fini = teardown);

/* Interns a frame of function `name` at line `line`. */
static uint32_t
frame(const char *name, uint32_t line)
{
	uint32_t	n, f, fn;

	n = store_string(st, name, strlen(name));
	f = store_string(st, "app.py", 6);
	fn = store_func(st, n, f, 1);
	return (store_frame(st, fn, line));
}

/* Finds the row of a function by name in a result. */
static const struct store_func_row *
find_func(const struct store_result *res, const char *name)
{
	uint32_t	n, f, line, len;
	const char	*s;
	size_t		i;

	for (i = 0; i < res->nfuncs; i++) {
		store_func_get(st, res->funcs[i].func, &n, &f, &line);
		s = store_string_get(st, n, &len);
		if (len == strlen(name) && memcmp(s, name, len) == 0)
			return (&res->funcs[i]);
	}
	return (NULL);
}

Test(store, interns_strings_once)
{
	uint32_t	a = store_string(st, "abc", 3);
	uint32_t	b = store_string(st, "abd", 3);
	uint32_t	len;

	cr_assert_neq(a, 0);
	cr_assert_neq(a, b);
	cr_assert_eq(store_string(st, "abc", 3), a);
	cr_assert_str_eq(store_string_get(st, a, &len), "abc");
	cr_assert_eq(len, 3);
}

Test(store, merges_same_stack)
{
	uint32_t	fr[2], s1, s2;
	struct store_result res;

	fr[0] = frame("leaf", 10);
	fr[1] = frame("main", 20);
	s1 = store_stack(st, fr, 2, 0);
	fr[0] = frame("leaf", 10);
	fr[1] = frame("main", 20);
	s2 = store_stack(st, fr, 2, 0);
	cr_assert_neq(s1, 0);
	cr_assert_eq(s1, s2);

	cr_assert_eq(store_add(st, 100, s1, 1, 10), 0);
	cr_assert_eq(store_add(st, 100, s2, 2, 20), 0);
	cr_assert_eq(store_add(st, 200, s1, 3, 30), 0);
	cr_assert_eq(store_query(st, NULL, 0, 1, &res), 0);
	cr_assert_eq(res.samples, 6);
	cr_assert_eq(res.weight_us, 60);
	cr_assert_eq(res.nstacks, 1);
	cr_assert_eq(res.stacks[0].count, 6);
	cr_assert_eq(res.nprocs, 2);
	cr_assert_eq(res.procs[0].pid, 100);
	cr_assert_eq(res.procs[0].samples, 3);
	cr_assert_eq(res.procs[1].pid, 200);
	cr_assert_eq(res.procs[1].samples, 3);
	store_result_free(&res);
}

Test(store, same_function_different_line_is_one_function)
{
	uint32_t	fr[1], s1, s2;
	struct store_result res;

	fr[0] = frame("f", 10);
	s1 = store_stack(st, fr, 1, 0);
	fr[0] = frame("f", 11);
	s2 = store_stack(st, fr, 1, 0);
	cr_assert_neq(s1, s2);
	store_add(st, 1, s1, 1, 0);
	store_add(st, 1, s2, 1, 0);
	cr_assert_eq(store_query(st, NULL, 0, 0, &res), 0);
	cr_assert_eq(res.nfuncs, 1);
	cr_assert_eq(res.funcs[0].self, 2);
	cr_assert_eq(res.funcs[0].total, 2);
	cr_assert_null(res.stacks);
	store_result_free(&res);
}

Test(store, counts_recursion_once_in_total)
{
	uint32_t	fr[4], s;
	struct store_result res;
	const struct store_func_row *r;

	/* leaf first: fib <- fib <- fib <- main */
	fr[0] = frame("fib", 3);
	fr[1] = frame("fib", 4);
	fr[2] = frame("fib", 4);
	fr[3] = frame("main", 9);
	s = store_stack(st, fr, 4, 0);
	store_add(st, 7, s, 5, 0);
	cr_assert_eq(store_query(st, NULL, 0, 0, &res), 0);
	r = find_func(&res, "fib");
	cr_assert_not_null(r);
	cr_assert_eq(r->self, 5);
	cr_assert_eq(r->total, 5);
	r = find_func(&res, "main");
	cr_assert_not_null(r);
	cr_assert_eq(r->self, 0);
	cr_assert_eq(r->total, 5);
	/* Sorted by self first. */
	cr_assert_eq(res.nfuncs, 2);
	cr_assert_eq(res.funcs[0].self, 5);
	store_result_free(&res);
}

Test(store, truncated_stack_gets_a_root_frame)
{
	uint32_t	fr[1], s, s2, depth, func, line, name, file, fline;
	const uint32_t	*frames;
	struct store_result res;

	fr[0] = frame("deep", 1);
	s = store_stack(st, fr, 1, 1);
	s2 = store_stack(st, fr, 1, 0);
	cr_assert_neq(s, s2);
	frames = store_stack_get(st, s, &depth);
	cr_assert_eq(depth, 2);
	cr_assert_eq(store_frame_get(st, frames[1], &func, &line), 0);
	cr_assert_eq(store_func_get(st, func, &name, &file, &fline), 0);
	cr_assert_str_eq(store_string_get(st, name, NULL),
	    PROTO_TRUNCATED_NAME);
	store_add(st, 1, s, 1, 0);
	cr_assert_eq(store_query(st, NULL, 0, 0, &res), 0);
	cr_assert_not_null(find_func(&res, PROTO_TRUNCATED_NAME));
	cr_assert_eq(find_func(&res, "deep")->self, 1);
	store_result_free(&res);
}

Test(store, respects_the_stack_cap)
{
	struct store	*small = store_new(2, 64u << 20);
	uint32_t	 name, file, func, fr, s[3];
	struct store_counts c;
	int		 i;

	name = store_string(small, "f", 1);
	file = store_string(small, "x.py", 4);
	func = store_func(small, name, file, 1);
	for (i = 0; i < 3; i++) {
		fr = store_frame(small, func, (uint32_t)i + 1);
		s[i] = store_stack(small, &fr, 1, 0);
	}
	cr_assert_neq(s[0], 0);
	cr_assert_neq(s[1], 0);
	cr_assert_eq(s[2], 0);
	cr_assert_eq(store_add(small, 1, s[2], 4, 0), -1);
	cr_assert_eq(store_add(small, 1, s[0], 1, 0), 0);
	store_get_counts(small, &c);
	cr_assert_eq(c.stacks, 2);
	cr_assert_eq(c.overflow, 4);
	cr_assert_eq(c.refused, 1);
	/* A known stack still merges. */
	fr = store_frame(small, func, 1);
	cr_assert_eq(store_stack(small, &fr, 1, 0), s[0]);
	store_free(small);
}

Test(store, respects_the_memory_cap)
{
	struct store	*small = store_new(1000000, 64u << 10);
	struct store_counts c;
	char		 buf[64];
	uint32_t	 id = 1;
	int		 i, n;

	for (i = 0; i < 100000 && id != 0; i++) {
		n = snprintf(buf, sizeof buf, "string-%d", i);
		id = store_string(small, buf, (size_t)n);
	}
	cr_assert_eq(id, 0);
	store_get_counts(small, &c);
	cr_assert_leq(c.bytes, 64u << 10);
	cr_assert_eq(c.refused, 1);
	store_free(small);
}

Test(store, reset_clears_samples_but_keeps_definitions)
{
	uint32_t	fr = frame("f", 1), s = store_stack(st, &fr, 1, 0);
	struct store_result res;
	struct store_counts c;

	store_add(st, 1, s, 10, 100);
	store_reset(st);
	cr_assert_eq(store_query(st, NULL, 0, 1, &res), 0);
	cr_assert_eq(res.samples, 0);
	cr_assert_eq(res.nfuncs, 0);
	cr_assert_eq(res.nstacks, 0);
	cr_assert_eq(res.nprocs, 0);
	store_result_free(&res);
	store_get_counts(st, &c);
	cr_assert_eq(c.entries, 0);
	/* The stack id is still good. */
	cr_assert_eq(store_add(st, 1, s, 1, 0), 0);
	cr_assert_eq(store_stack(st, &fr, 1, 0), s);
}

Test(store, filters_by_pid)
{
	uint32_t	fa = frame("a", 1), fb = frame("b", 1);
	uint32_t	sa = store_stack(st, &fa, 1, 0);
	uint32_t	sb = store_stack(st, &fb, 1, 0);
	uint32_t	pids[] = { 20, 999 };
	struct store_result res;

	store_add(st, 10, sa, 3, 0);
	store_add(st, 20, sb, 4, 0);
	store_add(st, 30, sa, 5, 0);
	cr_assert_eq(store_query(st, pids, 2, 1, &res), 0);
	cr_assert_eq(res.samples, 4);
	cr_assert_eq(res.nprocs, 1);
	cr_assert_eq(res.procs[0].pid, 20);
	cr_assert_eq(res.nfuncs, 1);
	cr_assert_not_null(find_func(&res, "b"));
	cr_assert_null(find_func(&res, "a"));
	cr_assert_eq(res.nstacks, 1);
	cr_assert_eq(res.stacks[0].stack, sb);
	store_result_free(&res);
}

Test(store, sorts_functions_by_self_then_total)
{
	uint32_t	fr[2], s1, s2, s3;
	struct store_result res;

	fr[0] = frame("x", 1);
	fr[1] = frame("main", 1);
	s1 = store_stack(st, fr, 2, 0);
	fr[0] = frame("y", 1);
	s2 = store_stack(st, fr, 2, 0);
	s3 = store_stack(st, &fr[1], 1, 0);
	store_add(st, 1, s1, 5, 0);
	store_add(st, 1, s2, 9, 0);
	store_add(st, 1, s3, 5, 0);
	cr_assert_eq(store_query(st, NULL, 0, 1, &res), 0);
	cr_assert_eq(res.nfuncs, 3);
	cr_assert_eq(res.funcs[0].self, 9);		/* y */
	cr_assert_eq(res.funcs[1].self, 5);		/* main: total 19 */
	cr_assert_eq(res.funcs[1].total, 19);
	cr_assert_eq(res.funcs[2].self, 5);		/* x: total 5 */
	cr_assert_eq(res.stacks[0].count, 9);
	store_result_free(&res);
}

Test(store, rejects_unknown_ids)
{
	uint32_t	bad = 12345;

	cr_assert_eq(store_func(st, 999, 999, 1), 0);
	cr_assert_eq(store_frame(st, 999, 1), 0);
	cr_assert_eq(store_stack(st, &bad, 1, 0), 0);
	cr_assert_eq(store_add(st, 1, 999, 1, 0), -1);
	cr_assert_null(store_string_get(st, 0, NULL));
	cr_assert_null(store_string_get(st, 99999, NULL));
}
