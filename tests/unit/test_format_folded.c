/* test_format_folded.c -- the folded-stacks encoder. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <event2/buffer.h>

#include "format.h"

static struct profile	*p;
static uint32_t		 f_main, f_work, f_idle;	/* frames */

/* A profile with main (app.py:1) -> work (app.py:12) | idle (lib.py). */
static void
setup(void)
{
	uint32_t	fn_main, fn_work, fn_idle;

	p = profile_new();
	cr_assert_not_null(p);
	fn_main = profile_add_func(p, "main", 4, "app.py", 6, 1);
	fn_work = profile_add_func(p, "work", 4, "app.py", 6, 10);
	fn_idle = profile_add_func(p, "idle", 4, "lib.py", 6, 3);
	f_main = profile_add_frame(p, fn_main, 1);
	f_work = profile_add_frame(p, fn_work, 12);
	f_idle = profile_add_frame(p, fn_idle, 0);
}

static void
teardown(void)
{
	profile_free(p);
}

TestSuite(format_folded, .init = setup, .fini = teardown);

/* Encodes p with opts and returns the output as a string. */
static char *
encode(const struct format_opts *opts)
{
	struct evbuffer	*b = evbuffer_new();
	size_t		 n;
	char		*s;

	cr_assert_not_null(b);
	cr_assert_eq(format_folded(p, opts, b), 0);
	n = evbuffer_get_length(b);
	s = malloc(n + 1);
	cr_assert_not_null(s);
	cr_assert_eq(evbuffer_remove(b, s, n), (int)n);
	s[n] = '\0';
	evbuffer_free(b);
	return (s);
}

/* Adds a label set. */
static uint32_t
labels(uint32_t pid, uint64_t tid, const char *thread, const char *service)
{
	struct profile_labels	l = { pid, tid, thread, service, "host1" };

	return (profile_add_labels(p, &l));
}

static void
add(uint32_t a, uint32_t b, uint32_t lab, uint64_t count, uint64_t us)
{
	uint32_t	st[2] = { a, b };

	cr_assert_neq(profile_add_sample(p, st, 2, lab, count, us),
	    UINT32_MAX);
}

Test(format_folded, writes_root_first_with_counts)
{
	struct format_opts	 o = { 0 };
	char			*s;

	add(f_main, f_work, PROFILE_NO_LABELS, 3, 30000);
	s = encode(&o);
	cr_assert_str_eq(s, "main (app.py:1);work (app.py:12) 3\n");
	free(s);
}

Test(format_folded, empty_profile_is_empty_output)
{
	struct format_opts	 o = { 0 };
	char			*s = encode(&o);

	cr_assert_str_eq(s, "");
	free(s);
}

Test(format_folded, merges_same_stack_of_other_labels)
{
	struct format_opts	 o = { 0 };
	char			*s;

	add(f_main, f_work, labels(1, 11, "A", ""), 2, 0);
	add(f_main, f_work, labels(2, 22, "B", ""), 5, 0);
	add(f_main, f_idle, PROFILE_NO_LABELS, 1, 0);
	s = encode(&o);
	cr_assert_str_eq(s,
	    "main (app.py:1);work (app.py:12) 7\n"
	    "main (app.py:1);idle (lib.py) 1\n");
	free(s);
}

Test(format_folded, merges_frames_with_the_same_label)
{
	struct format_opts	 o = { 0 };
	uint32_t		 f2;
	char			*s;

	/* Another frame index for the same function and line. */
	f2 = profile_add_frame(p, p->frames[f_work].func, 12);
	add(f_main, f_work, PROFILE_NO_LABELS, 1, 0);
	add(f_main, f2, PROFILE_NO_LABELS, 1, 0);
	s = encode(&o);
	cr_assert_str_eq(s, "main (app.py:1);work (app.py:12) 2\n");
	free(s);
}

Test(format_folded, orders_by_count_then_text)
{
	struct format_opts	 o = { 0 };
	char			*s;

	add(f_idle, f_idle, PROFILE_NO_LABELS, 1, 0);
	add(f_main, f_work, PROFILE_NO_LABELS, 5, 0);
	add(f_main, f_idle, PROFILE_NO_LABELS, 5, 0);
	add(f_work, f_work, PROFILE_NO_LABELS, 9, 0);
	s = encode(&o);
	cr_assert_str_eq(s,
	    "work (app.py:12);work (app.py:12) 9\n"
	    "main (app.py:1);idle (lib.py) 5\n"
	    "main (app.py:1);work (app.py:12) 5\n"
	    "idle (lib.py);idle (lib.py) 1\n");
	free(s);
}

Test(format_folded, time_weights_and_zero_weights_left_out)
{
	struct format_opts	 o = { .weight = FORMAT_WEIGHT_TIME };
	char			*s;

	add(f_main, f_work, PROFILE_NO_LABELS, 3, 30000);
	add(f_main, f_idle, PROFILE_NO_LABELS, 9, 0);
	add(f_idle, f_idle, PROFILE_NO_LABELS, 1, 40000);
	s = encode(&o);
	cr_assert_str_eq(s,
	    "idle (lib.py);idle (lib.py) 40000\n"
	    "main (app.py:1);work (app.py:12) 30000\n");
	free(s);
}

Test(format_folded, root_pid_and_thread_frames)
{
	struct format_opts	 o = { .root_pid = 1, .root_thread = 1 };
	char			*s;

	add(f_main, f_work, labels(42, 7, "MainThread", "api"), 2, 0);
	add(f_main, f_work, labels(43, 0, "", ""), 3, 0);
	add(f_main, f_work, PROFILE_NO_LABELS, 1, 0);
	s = encode(&o);
	cr_assert_str_eq(s,
	    "pid 43;thread ?;main (app.py:1);work (app.py:12) 3\n"
	    "api pid 42;thread MainThread (tid 7);main (app.py:1);"
	    "work (app.py:12) 2\n"
	    "pid ?;thread ?;main (app.py:1);work (app.py:12) 1\n");
	free(s);
}

Test(format_folded, root_frames_keep_processes_apart)
{
	struct format_opts	 o = { .root_pid = 1 };
	char			*s;

	add(f_main, f_work, labels(1, 11, "A", ""), 2, 0);
	add(f_main, f_work, labels(1, 12, "B", ""), 2, 0);
	add(f_main, f_work, labels(2, 22, "B", ""), 5, 0);
	s = encode(&o);
	cr_assert_str_eq(s,
	    "pid 2;main (app.py:1);work (app.py:12) 5\n"
	    "pid 1;main (app.py:1);work (app.py:12) 4\n");
	free(s);
}

Test(format_folded, hostile_names_cannot_break_lines)
{
	struct format_opts	 o = { .root_pid = 1, .root_thread = 1 };
	uint32_t		 fn, fr, st[1];
	char			*s;

	fn = profile_add_func(p, "a;b\nc\td\x01\x7f" "e", 10, "x;y.py\r", 7,
	    1);
	fr = profile_add_frame(p, fn, 5);
	st[0] = fr;
	profile_add_sample(p, st, 1, labels(9, 1, "t;1\n", "s;v"), 4, 0);
	s = encode(&o);
	cr_assert_str_eq(s,
	    "s:v pid 9;thread t:1  (tid 1);a:b c d  e (x:y.py :5) 4\n");
	free(s);
}

Test(format_folded, empty_stack_and_bad_frame_index)
{
	struct format_opts	 o = { 0 };
	uint32_t		 bad[1] = { 1000 };
	char			*s;

	profile_add_sample(p, NULL, 0, PROFILE_NO_LABELS, 2, 0);
	profile_add_sample(p, bad, 1, 77, 1, 0);
	s = encode(&o);
	cr_assert_str_eq(s, "[unknown] 2\n? 1\n");
	free(s);
}

Test(format_folded, deep_stack_of_256)
{
	struct format_opts	 o = { 0 };
	uint32_t		 st[256];
	size_t			 i, semis = 0;
	char			*s, *c;

	for (i = 0; i < 256; i++)
		st[i] = i % 2 ? f_work : f_main;
	profile_add_sample(p, st, 256, PROFILE_NO_LABELS, 1, 0);
	s = encode(&o);
	for (c = s; *c != '\0'; c++)
		semis += *c == ';';
	cr_assert_eq(semis, 255);
	cr_assert_eq(strncmp(s, "main (app.py:1);work (app.py:12);", 33), 0);
	cr_assert_str_eq(s + strlen(s) - 20, ";work (app.py:12) 1\n");
	cr_assert_eq(strchr(s, '\n'), s + strlen(s) - 1);
	free(s);
}

Test(format_folded, many_samples_merge_to_few_lines)
{
	struct format_opts	 o = { 0 };
	size_t			 i;
	char			*s;

	for (i = 0; i < 10000; i++)
		add(f_main, i % 3 == 0 ? f_work : f_idle, PROFILE_NO_LABELS,
		    1, 0);
	s = encode(&o);
	cr_assert_str_eq(s,
	    "main (app.py:1);idle (lib.py) 6666\n"
	    "main (app.py:1);work (app.py:12) 3334\n");
	free(s);
}
