/* test_render.c -- profctl's tables, folded stacks and number formats. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <msgpack.h>

#include "proto.h"
#include "render.h"

/* A memory stream and its buffer. */
struct out {
	char	*buf;
	size_t	 len;
	FILE	*f;
};

static void
out_open(struct out *o)
{
	o->buf = NULL;
	o->len = 0;
	o->f = open_memstream(&o->buf, &o->len);
	cr_assert_not_null(o->f);
}

/* Asserts that a malloc'd string equals want, then frees it. */
#define assert_str_free(expr, want) do {				\
	char *got_ = (expr);						\
	cr_assert_str_eq(got_, (want));					\
	free(got_);							\
} while (0)

static char *
out_close(struct out *o)
{
	fclose(o->f);
	return (o->buf);
}

static void
pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

static void
pack_frame(msgpack_packer *pk, const char *fn, const char *file, int line)
{
	msgpack_pack_array(pk, 3);
	pack_str(pk, fn);
	pack_str(pk, file);
	msgpack_pack_uint32(pk, line);
}

/* Folds one stack packed by `pack`; returns the output (NULL if -1). */
static char *
fold(void (*pack)(msgpack_packer *))
{
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	msgpack_unpacked	 up;
	struct out		 o;
	int			 r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pack(&pk);
	msgpack_unpacked_init(&up);
	cr_assert_eq(msgpack_unpack_next(&up, sb.data, sb.size, NULL),
	    MSGPACK_UNPACK_SUCCESS);
	out_open(&o);
	r = render_folded_stack(o.f, &up.data);
	out_close(&o);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	if (r != 0) {
		cr_assert_str_eq(o.buf, "", "nothing printed on error");
		free(o.buf);
		return (NULL);
	}
	return (o.buf);
}

static void
pack_simple(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	pack_str(pk, "count");
	msgpack_pack_uint32(pk, 42);
	pack_str(pk, "frames");
	msgpack_pack_array(pk, 3);
	pack_frame(pk, "<module>", "/app/main.py", 1);
	pack_frame(pk, "Server.run", "/app/server.py", 30);
	pack_frame(pk, "leaf", "/app/work.py", 7);
}

static void
pack_hostile(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	pack_str(pk, "frames");
	msgpack_pack_array(pk, 2);
	pack_frame(pk, PROTO_TRUNCATED_NAME, "", 0);
	pack_frame(pk, "a;b\nc", "x;y\r.py", 3);
	pack_str(pk, "count");
	msgpack_pack_uint32(pk, 1);
}

static void
pack_bad_frame(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	pack_str(pk, "count");
	msgpack_pack_uint32(pk, 5);
	pack_str(pk, "frames");
	msgpack_pack_array(pk, 2);
	pack_frame(pk, "ok", "ok.py", 1);
	msgpack_pack_array(pk, 2);
	pack_str(pk, "short");
	pack_str(pk, "frame");
}

static void
pack_no_count(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 1);
	pack_str(pk, "frames");
	msgpack_pack_array(pk, 1);
	pack_frame(pk, "f", "f.py", 1);
}

static void
pack_no_frames(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	pack_str(pk, "count");
	msgpack_pack_uint32(pk, 5);
	pack_str(pk, "frames");
	msgpack_pack_array(pk, 0);
}

static void
pack_not_map(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 0);
}

Test(render, folds_stack_root_first_with_count)
{
	cr_assert_str_eq(fold(pack_simple),
	    "<module> (/app/main.py:1);Server.run (/app/server.py:30);"
	    "leaf (/app/work.py:7) 42\n");
}

Test(render, folded_frames_never_contain_separators)
{
	cr_assert_str_eq(fold(pack_hostile),
	    "[truncated];a:b c (x:y .py:3) 1\n");
}

Test(render, rejects_malformed_stacks_printing_nothing)
{
	cr_assert_null(fold(pack_bad_frame));
	cr_assert_null(fold(pack_no_count));
	cr_assert_null(fold(pack_no_frames));
	cr_assert_null(fold(pack_not_map));
}

Test(render, labels_frames_by_what_is_known)
{
	assert_str_free(render_frame_label("f", 1, "a.py", 4, 12),
	    "f (a.py:12)");
	assert_str_free(render_frame_label("f", 1, "a.py", 4, 0), "f (a.py)");
	assert_str_free(render_frame_label("[truncated]", 11, "", 0, 0),
	    "[truncated]");
	assert_str_free(render_frame_label("", 0, "a.py", 4, 1),
	    "? (a.py:1)");
	/* lengths, not NULs, bound the strings */
	assert_str_free(render_frame_label("fxx", 1, "a.pyxx", 4, 2),
	    "f (a.py:2)");
}

Test(render, cleans_controls_and_semicolons_only_when_folded)
{
	char	a[] = "a;b\tc\x7f", b[] = "a;b\tc\x7f";

	render_clean(a, 0);
	render_clean(b, 1);
	cr_assert_str_eq(a, "a;b c ");
	cr_assert_str_eq(b, "a:b c ");
}

Test(render, formats_percentages_of_the_total)
{
	char	buf[16];

	render_percent(buf, sizeof buf, 1, 3);
	cr_assert_str_eq(buf, "33.3%");
	render_percent(buf, sizeof buf, 1000, 1000);
	cr_assert_str_eq(buf, "100.0%");
	render_percent(buf, sizeof buf, 2, 3);
	cr_assert_str_eq(buf, "66.7%");
	render_percent(buf, sizeof buf, 0, 0);
	cr_assert_str_eq(buf, "0.0%");
	render_percent(buf, sizeof buf, 1, 100000);
	cr_assert_str_eq(buf, "0.0%");
}

Test(render, formats_durations_with_two_units)
{
	char	buf[32];

	render_duration(buf, sizeof buf, 0);
	cr_assert_str_eq(buf, "0s");
	render_duration(buf, sizeof buf, 59);
	cr_assert_str_eq(buf, "59s");
	render_duration(buf, sizeof buf, 61);
	cr_assert_str_eq(buf, "1m01s");
	render_duration(buf, sizeof buf, 3725);
	cr_assert_str_eq(buf, "1h02m");
	render_duration(buf, sizeof buf, 2 * 86400 + 3 * 3600 + 59);
	cr_assert_str_eq(buf, "2d3h");
	render_duration(buf, sizeof buf, 30 * 86400);
	cr_assert_str_eq(buf, "30d");
	render_duration(buf, sizeof buf, 30 * 86400 + 59 * 60);
	cr_assert_str_eq(buf, "30d");
}

Test(render, counts_width_in_characters_not_bytes)
{
	cr_assert_eq(render_strwidth(""), 0);
	cr_assert_eq(render_strwidth("abc"), 3);
	cr_assert_eq(render_strwidth("caf\xc3\xa9"), 4);
}

Test(render, cuts_in_the_middle_keeping_both_ends)
{
	assert_str_free(render_cut("short", 10), "short");
	assert_str_free(render_cut("leaf (/a/very/long/path/x.py:12)", 20),
	    "leaf (/a/...x.py:12)");
	assert_str_free(render_cut("0123456789", 7), "01...89");
	assert_str_free(render_cut("0123456789", 2), "01");
}

Test(render, cuts_utf8_on_character_boundaries)
{
	char	*s = render_cut("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9", 5);

	cr_assert_str_eq(s, "\xc3\xa9...\xc3\xa9");
	free(s);
}

static const char *const headers[] = { "N", "NAME", "CMD" };

Test(render, aligns_columns_to_the_widest_cell)
{
	struct render_table	*t = render_table_create(3, headers, "rll");
	const char		*r1[] = { "1", "alpha", "python3 a.py" };
	const char		*r2[] = { "1000", "b", NULL };
	struct out		 o;

	cr_assert_eq(render_table_add(t, r1), 0);
	cr_assert_eq(render_table_add(t, r2), 0);
	out_open(&o);
	render_table_print(t, o.f, 0);
	cr_assert_str_eq(out_close(&o),
	    "   N  NAME   CMD\n"
	    "   1  alpha  python3 a.py\n"
	    "1000  b      \n");
	free(o.buf);
	render_table_free(t);
}

Test(render, cuts_last_column_to_the_terminal_width)
{
	struct render_table	*t = render_table_create(3, headers, "rll");
	const char		*r1[] = { "1", "alpha",
				    "python3 app.py --one --two --three" };
	struct out		 o;

	cr_assert_eq(render_table_add(t, r1), 0);
	out_open(&o);
	render_table_print(t, o.f, 31);	/* 10 columns before CMD */
	cr_assert_str_eq(out_close(&o),
	    "N  NAME   CMD\n"
	    "1  alpha  python3 a...o --three\n");
	free(o.buf);
	render_table_free(t);
}

Test(render, never_cuts_last_column_below_its_minimum)
{
	struct render_table	*t = render_table_create(3, headers, "rll");
	const char		*r1[] = { "1", "alpha",
				    "python3 app.py --one --two --three" };
	struct out		 o;

	cr_assert_eq(render_table_add(t, r1), 0);
	out_open(&o);
	render_table_print(t, o.f, 5);
	out_close(&o);
	cr_assert_not_null(strstr(o.buf, "  python3...-three\n"), "%s", o.buf);
	free(o.buf);
	render_table_free(t);
}
