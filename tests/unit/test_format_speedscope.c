/* test_format_speedscope.c -- the speedscope encoder. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <event2/buffer.h>

#include "format.h"

#define HEAD	"{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\"," \
		"\"exporter\":\"profd\","
#define FRAMES	"\"shared\":{\"frames\":[" \
		"{\"name\":\"main\",\"file\":\"app.py\",\"line\":1}," \
		"{\"name\":\"work\",\"file\":\"app.py\",\"line\":12}," \
		"{\"name\":\"idle\",\"file\":\"lib.py\"}," \
		"{\"name\":\"?\"}]},"

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

TestSuite(format_speedscope, .init = setup, .fini = teardown);

/* Encodes p with opts and returns the output as a string. */
static char *
encode(const struct format_opts *opts)
{
	struct evbuffer	*b = evbuffer_new();
	size_t		 n;
	char		*s;

	cr_assert_not_null(b);
	cr_assert_eq(format_speedscope(p, opts, b), 0);
	n = evbuffer_get_length(b);
	s = malloc(n + 1);
	cr_assert_not_null(s);
	cr_assert_eq(evbuffer_remove(b, s, n), (int)n);
	s[n] = '\0';
	evbuffer_free(b);
	return (s);
}

static uint32_t
labels(uint32_t pid, uint64_t tid, const char *thread, const char *service,
    const char *host)
{
	struct profile_labels	l = { pid, tid, thread, service, host };

	return (profile_add_labels(p, &l));
}

static void
add(uint32_t a, uint32_t b, uint32_t lab, uint64_t count, uint64_t us)
{
	uint32_t	st[2] = { a, b };

	cr_assert_neq(profile_add_sample(p, st, 2, lab, count, us),
	    UINT32_MAX);
}

/* Returns the JSON string that a frame named name is encoded as. */
static char *
frame_name_json(const char *name)
{
	uint32_t	 fn;
	char		*s, *a, *b, *r;

	profile_free(p);
	p = profile_new();
	fn = profile_add_func(p, name, strlen(name), "", 0, 0);
	profile_add_frame(p, fn, 0);
	s = encode(&(struct format_opts){ 0 });
	a = strstr(s, "\"frames\":[{\"name\":");
	cr_assert_not_null(a);
	a += strlen("\"frames\":[{\"name\":");
	b = strstr(a, "},{\"name\":\"?\"}]");
	cr_assert_not_null(b);
	r = strndup(a, b - a);
	free(s);
	return (r);
}

Test(format_speedscope, writes_one_sampled_profile_root_first)
{
	struct format_opts	 o = { 0 };
	char			*s;

	profile_set_title(p, "cpu");
	add(f_main, f_work, PROFILE_NO_LABELS, 3, 30000);
	add(f_main, f_idle, PROFILE_NO_LABELS, 2, 10000);
	s = encode(&o);
	cr_assert_str_eq(s, HEAD "\"name\":\"cpu\",\"activeProfileIndex\":0,"
	    FRAMES "\"profiles\":[{\"type\":\"sampled\",\"name\":\"cpu\","
	    "\"unit\":\"none\",\"startValue\":0,\"endValue\":5,"
	    "\"samples\":[[0,1],[0,2]],\"weights\":[3,2]}]}\n");
	free(s);
}

Test(format_speedscope, time_weights_in_microseconds)
{
	struct format_opts	 o = { .weight = FORMAT_WEIGHT_TIME };
	char			*s;

	add(f_main, f_work, PROFILE_NO_LABELS, 3, 30000);
	add(f_main, f_idle, PROFILE_NO_LABELS, 2, 0);
	add(f_main, f_idle, PROFILE_NO_LABELS, 1, 7);
	s = encode(&o);
	cr_assert_not_null(strstr(s, "\"name\":\"profile\",\"unit\":"
	    "\"microseconds\",\"startValue\":0,\"endValue\":30007,"
	    "\"samples\":[[0,1],[0,2]],\"weights\":[30000,7]}]}\n"), "%s", s);
	free(s);
}

Test(format_speedscope, one_profile_per_thread_heaviest_first)
{
	struct format_opts	 o = { 0 };
	uint32_t		 a, b;
	char			*s;

	profile_set_title(p, "wall");
	a = labels(42, 7, "MainThread", "api", "web-1");
	b = labels(42, 8, "worker", "", "");
	add(f_main, f_work, a, 1, 0);
	add(f_main, f_idle, b, 4, 0);
	add(f_main, f_work, PROFILE_NO_LABELS, 2, 0);
	add(f_main, f_idle, a, 1, 0);
	s = encode(&o);
	cr_assert_not_null(strstr(s, "\"profiles\":["
	    "{\"type\":\"sampled\",\"name\":\"wall: worker (tid 8, pid 42)\","
	    "\"unit\":\"none\",\"startValue\":0,\"endValue\":4,"
	    "\"samples\":[[0,2]],\"weights\":[4]},"
	    "{\"type\":\"sampled\",\"name\":\"wall: MainThread (tid 7, pid 42, "
	    "service api, host web-1)\",\"unit\":\"none\",\"startValue\":0,"
	    "\"endValue\":2,\"samples\":[[0,1],[0,2]],\"weights\":[1,1]},"
	    "{\"type\":\"sampled\",\"name\":\"wall\",\"unit\":\"none\","
	    "\"startValue\":0,\"endValue\":2,\"samples\":[[0,1]],"
	    "\"weights\":[2]}]}\n"), "%s", s);
	free(s);
}

Test(format_speedscope, empty_profile_has_one_empty_profile)
{
	struct format_opts	 o = { 0 };
	char			*s;

	profile_free(p);
	p = profile_new();
	s = encode(&o);
	cr_assert_str_eq(s, HEAD "\"name\":\"profile\",\"activeProfileIndex\":0,"
	    "\"shared\":{\"frames\":[{\"name\":\"?\"}]},\"profiles\":["
	    "{\"type\":\"sampled\",\"name\":\"profile\",\"unit\":\"none\","
	    "\"startValue\":0,\"endValue\":0,\"samples\":[],\"weights\":[]}]}\n");
	free(s);
}

Test(format_speedscope, zero_weight_samples_only_is_empty)
{
	struct format_opts	 o = { .weight = FORMAT_WEIGHT_TIME };
	char			*s;

	add(f_main, f_work, labels(1, 1, "t", "", ""), 3, 0);
	s = encode(&o);
	cr_assert_not_null(strstr(s, "\"profiles\":[{\"type\":\"sampled\","
	    "\"name\":\"profile\",\"unit\":\"microseconds\",\"startValue\":0,"
	    "\"endValue\":0,\"samples\":[],\"weights\":[]}]}\n"), "%s", s);
	free(s);
}

Test(format_speedscope, bad_frame_index_is_the_unknown_frame)
{
	struct format_opts	 o = { 0 };
	uint32_t		 st[2] = { 0, 99 };
	char			*s;

	profile_add_sample(p, st, 2, 12345, 1, 0);
	profile_add_sample(p, NULL, 0, PROFILE_NO_LABELS, 1, 0);
	s = encode(&o);
	cr_assert_not_null(strstr(s, "\"samples\":[[0,3],[]],"
	    "\"weights\":[1,1]}]}\n"), "%s", s);
	free(s);
}

Test(format_speedscope, deep_stack_of_256)
{
	struct format_opts	 o = { 0 };
	uint32_t		 st[256];
	char			 want[2048], *w = want, *s;
	size_t			 i;

	for (i = 0; i < 256; i++)
		st[i] = i % 3;
	profile_add_sample(p, st, 256, PROFILE_NO_LABELS, 1, 0);
	w += sprintf(w, "\"samples\":[[");
	for (i = 0; i < 256; i++)
		w += sprintf(w, "%s%zu", i != 0 ? "," : "", i % 3);
	sprintf(w, "]],\"weights\":[1]}]}\n");
	s = encode(&o);
	cr_assert_not_null(strstr(s, want), "%s", s);
	free(s);
}

Test(format_speedscope, escapes_json_specials_and_controls)
{
	char	*s;

	s = frame_name_json("a\"b\\c\n\r\t\x01\x1f\x7f/");
	cr_assert_str_eq(s, "\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u001f\x7f/\"");
	free(s);
}

Test(format_speedscope, keeps_valid_utf8)
{
	char	*s;

	s = frame_name_json("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbf");
	cr_assert_str_eq(s,
	    "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbf\"");
	free(s);
}

Test(format_speedscope, replaces_invalid_utf8)
{
	char	*s;

	/* Lone continuation, overlong, surrogate, too big, cut short. */
	s = frame_name_json("\x80x\xc0\xaf" "y\xed\xa0\x80z\xf4\x90\x80\x80"
	    "w\xff\xe2\x82");
	cr_assert_str_eq(s, "\"\\ufffdx\\ufffd\\ufffdy\\ufffd\\ufffd\\ufffdz"
	    "\\ufffd\\ufffd\\ufffd\\ufffdw\\ufffd\\ufffd\\ufffd\"");
	free(s);
}

Test(format_speedscope, escapes_titles_threads_and_files)
{
	struct format_opts	 o = { 0 };
	uint32_t		 fn, fr, st[1];
	char			*s;

	profile_set_title(p, "t\"1\xff");
	fn = profile_add_func(p, "f", 1, "C:\\x\".py", 8, 1);
	fr = profile_add_frame(p, fn, 2);
	st[0] = fr;
	profile_add_sample(p, st, 1, labels(1, 0, "th\n\"", "", ""), 1, 0);
	s = encode(&o);
	cr_assert_not_null(strstr(s, "\"name\":\"t\\\"1\\ufffd\","), "%s", s);
	cr_assert_not_null(strstr(s, "{\"name\":\"f\",\"file\":"
	    "\"C:\\\\x\\\".py\",\"line\":2}"), "%s", s);
	cr_assert_not_null(strstr(s, "\"name\":\"t\\\"1\\ufffd: th\\n\\\" "
	    "(pid 1)\""), "%s", s);
	free(s);
}

Test(format_speedscope, the_warning_follows_the_title_in_the_name)
{
	struct format_opts	 o = { 0 };
	char			*s;

	profile_set_title(p, "cpu");
	profile_set_warning(p, "warning: \"7.2%\" left out\n");
	add(f_main, f_work, PROFILE_NO_LABELS, 3, 30000);
	s = encode(&o);
	cr_assert_not_null(strstr(s, "\"name\":\"cpu (warning: \\\"7.2%\\\" "
	    "left out\\n)\",\"activeProfileIndex\""), "%s", s);
	free(s);
}
