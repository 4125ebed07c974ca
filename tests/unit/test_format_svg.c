/*
 * test_format_svg.c -- the flame graph encoder: structure, escaping of
 * hostile names, widths, pruning bounds, the empty profile.  Well-formedness
 * is checked by a real XML parser (xmllint, Debian libxml2-utils).  With
 * $PROFD_SVG_OUT set, sample_for_browser writes a sample graph there for
 * tests/browser/svg-check.js.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <event2/buffer.h>

#include "format.h"
#include "profile.h"

#define PLOT_W		1180.0	/* FORMAT_SVG_WIDTH - 2 * FORMAT_SVG_XPAD */
#define MAX_FRAMES	30000	/* FORMAT_SVG_MAX_FRAMES */
#define MAX_DEPTH	1024	/* FORMAT_SVG_MAX_DEPTH */
#define BIG_STACKS	100000
/* 100k random stacks of depth 8 over 2000 frames: about 0.6 MB measured. */
#define BIG_FILE_MAX	(1u << 20)

/* Returns the function named name, adding it and its frame if new. */
static uint32_t
frame_of(struct profile *p, const char *name)
{
	size_t		i;
	uint32_t	f;

	for (i = 0; i < p->nfuncs; i++)
		if (strcmp(p->funcs[i].name, name) == 0)
			return ((uint32_t)i);
	f = profile_add_func(p, name, strlen(name), "", 0, 0);
	cr_assert_neq(f, UINT32_MAX);
	cr_assert_eq(profile_add_frame(p, f, 0), f);
	return (f);
}

/* Adds a sample given as "root;child;leaf" (names without ';'). */
static void
add_stack(struct profile *p, const char *stack, uint64_t count, uint64_t us)
{
	char		*copy = strdup(stack), *name, *save = NULL;
	uint32_t	 frames[64], depth = 0;

	for (name = strtok_r(copy, ";", &save); name != NULL;
	    name = strtok_r(NULL, ";", &save))
		frames[depth++] = frame_of(p, name);
	cr_assert_neq(profile_add_sample(p, frames, depth, PROFILE_NO_LABELS,
	    count, us), UINT32_MAX);
	free(copy);
}

/* Encodes p; returns the SVG as a malloc'd string (NULL if -1). */
static char *
encode(const struct profile *p, enum format_weight weight, size_t *lenp)
{
	struct format_opts	 o = { .weight = weight };
	struct evbuffer		*b = evbuffer_new();
	size_t			 len;
	char			*s = NULL;

	cr_assert_not_null(b);
	if (format_svg(p, &o, b) == 0) {
		len = evbuffer_get_length(b);
		s = malloc(len + 1);
		cr_assert_not_null(s);
		evbuffer_remove(b, s, len);
		s[len] = '\0';
		if (lenp != NULL)
			*lenp = len;
	}
	evbuffer_free(b);
	return (s);
}

/* Runs xmllint --noout on the SVG; 0 if well-formed. */
static int
xmllint(const char *svg)
{
	char	 path[] = "/tmp/test_format_svg.XXXXXX", cmd[128];
	FILE	*f;
	int	 fd, r;

	if (system("command -v xmllint >/dev/null 2>&1") != 0)
		cr_skip_test("xmllint not installed (Debian libxml2-utils)");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	cr_assert_not_null(f);
	fputs(svg, f);
	fclose(f);
	snprintf(cmd, sizeof cmd, "xmllint --noout --nonet %s", path);
	r = system(cmd);
	unlink(path);
	return (r);
}

/* Counts the occurrences of needle. */
static size_t
count_of(const char *s, const char *needle)
{
	size_t	n = 0;

	while ((s = strstr(s, needle)) != NULL) {
		n++;
		s += strlen(needle);
	}
	return (n);
}

/* One drawn frame, read back from the SVG. */
struct drawn {
	char	label[256];
	double	o, v, x, width;
	int	d;
	char	fill[32];
};

/* Reads the drawn frames back; returns how many. */
static size_t
parse_frames(const char *s, struct drawn *out, size_t max)
{
	size_t		 n = 0;
	const char	*t, *dash;

	while ((s = strstr(s, "<g id=\"f")) != NULL && n < max) {
		struct drawn	*d = &out[n++];

		cr_assert_eq(sscanf(s, "<g id=\"f%*u\" class=\"f\" data-o=\"%lf\" "
		    "data-v=\"%lf\" data-d=\"%d\"><title>", &d->o, &d->v, &d->d),
		    3);
		t = strstr(s, "<title>") + 7;
		dash = strstr(t, " \xe2\x80\x94 ");
		cr_assert_not_null(dash);
		snprintf(d->label, sizeof d->label, "%.*s", (int)(dash - t), t);
		s = strstr(s, "<rect ");
		cr_assert_eq(sscanf(s, "<rect x=\"%lf\" y=\"%*d\" width=\"%lf\" "
		    "height=\"%*d\" fill=\"%31[^\"]\"", &d->x, &d->width,
		    d->fill), 3);
	}
	return (n);
}

/* Finds a drawn frame by label. */
static const struct drawn *
find(const struct drawn *d, size_t n, const char *label)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (strcmp(d[i].label, label) == 0)
			return (&d[i]);
	return (NULL);
}

/* The three-stack profile most tests use. */
static struct profile *
small_profile(void)
{
	struct profile	*p = profile_new();

	cr_assert_not_null(p);
	cr_assert_eq(profile_set_title(p, "web-1 wall"), 0);
	add_stack(p, "main;a;b", 30, 3000);
	add_stack(p, "main;a;c", 10, 1000);
	add_stack(p, "main;d", 60, 96000);
	return (p);
}

Test(format_svg, well_formed_structure)
{
	struct profile	*p = small_profile();
	char		*s = encode(p, FORMAT_WEIGHT_SAMPLES, NULL);
	struct drawn	 d[16];

	cr_assert_not_null(s);
	cr_assert(strncmp(s, "<?xml ", 6) == 0);
	cr_assert_not_null(strstr(s, "<svg "));
	cr_assert(strcmp(s + strlen(s) - 7, "</svg>\n") == 0);
	cr_assert_not_null(strstr(s, ">web-1 wall</text>"));
	cr_assert_not_null(strstr(s, ">100 samples, 100.0 ms wall time"));
	cr_assert_eq(count_of(s, "<script"), 1);
	cr_assert_eq(count_of(s, "id=\"search\""), 1);
	cr_assert_eq(count_of(s, "id=\"details\""), 1);
	cr_assert_eq(count_of(s, "http"), 1, "only the SVG namespace");
	cr_assert_eq(parse_frames(s, d, 16), 6);
	cr_assert_str_eq(d[0].label, "all");
	cr_assert_not_null(strstr(s, "<title>b \xe2\x80\x94 30 samples, "
	    "3.0 ms (30.00%)</title>"));
	cr_assert_eq(xmllint(s), 0);
	free(s);
	profile_free(p);
}

Test(format_svg, widths_proportional_to_samples)
{
	struct profile		*p = small_profile();
	struct drawn		 d[16];
	const struct drawn	*a, *b, *c;
	char			*s;
	size_t			 i, n;

	/* A second frame index with the same label merges into "a". */
	cr_assert_neq(profile_add_frame(p, frame_of(p, "a"), 0), UINT32_MAX);
	cr_assert_neq(profile_add_sample(p, (uint32_t[]){ frame_of(p, "main"),
	    (uint32_t)p->nframes - 1 }, 2, PROFILE_NO_LABELS, 100, 0),
	    UINT32_MAX);
	s = encode(p, FORMAT_WEIGHT_SAMPLES, NULL);
	cr_assert_not_null(s);
	n = parse_frames(s, d, 16);
	cr_assert_eq(n, 6);
	for (i = 0; i < n; i++) {
		cr_assert_float_eq(d[i].width, d[i].v * PLOT_W / 200, 0.006,
		    "%s", d[i].label);
		cr_assert_float_eq(d[i].x, 10 + d[i].o * PLOT_W / 200, 0.006);
	}
	a = find(d, n, "a");
	b = find(d, n, "b");
	c = find(d, n, "c");
	cr_assert(a != NULL && b != NULL && c != NULL);
	cr_assert_float_eq(a->width, 140 * PLOT_W / 200, 0.006);
	cr_assert_float_eq(b->width, 3 * c->width, 0.02);
	cr_assert_eq(b->d, 3);
	cr_assert_float_eq(c->x, b->x + b->width, 0.01, "siblings abut");
	free(s);
	profile_free(p);
}

Test(format_svg, widths_follow_time_weight)
{
	struct profile		*p = small_profile();
	struct drawn		 d[16];
	const struct drawn	*dd;
	char			*s = encode(p, FORMAT_WEIGHT_TIME, NULL);
	size_t			 n;

	cr_assert_not_null(s);
	n = parse_frames(s, d, 16);
	dd = find(d, n, "d");
	cr_assert_not_null(dd);
	cr_assert_float_eq(dd->width, 0.96 * PLOT_W, 0.006);
	cr_assert_not_null(strstr(s, "width by time"));
	cr_assert_not_null(strstr(s, "d \xe2\x80\x94 60 samples, 96.0 ms "
	    "(96.00%)"));
	free(s);
	profile_free(p);
}

Test(format_svg, escapes_hostile_names)
{
	static const char *names[] = {
		"<script>alert(1)</script>", "a&b", "]]>", "x\x01\x1f\x7fy",
		"bad\xff\xfe utf8 \xc3", "\xed\xa0\x80surrogate",
		"\xef\xbf\xbfnonchar", "\xc0\xafoverlong", "\"quoted'",
		"\xc2\x85" "c1", "caf\xc3\xa9 \xf0\x9f\x94\xa5",
	};
	struct profile	*p = profile_new();
	uint32_t	 fn, fr;
	char		*s;
	size_t		 i, len;

	cr_assert_not_null(p);
	cr_assert_eq(profile_set_title(p, "<title>&\x02]]>"), 0);
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		fn = profile_add_func(p, names[i], strlen(names[i]),
		    "</text>\x1b.py", 9, 1);
		fr = profile_add_frame(p, fn, 7);
		profile_add_sample(p, &fr, 1, PROFILE_NO_LABELS, 1, 1);
	}
	s = encode(p, FORMAT_WEIGHT_SAMPLES, &len);
	cr_assert_not_null(s);
	cr_assert_eq(strlen(s), len, "no NUL inside");
	cr_assert_eq(count_of(s, "<script"), 1);
	cr_assert_eq(count_of(s, "]]>"), 2, "only the style and script ends");
	cr_assert_eq(count_of(s, "</text>\x1b"), 0);
	cr_assert_not_null(strstr(s, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	cr_assert_not_null(strstr(s, "a&amp;b"));
	cr_assert_not_null(strstr(s, "&quot;quoted&#39;"));
	cr_assert_not_null(strstr(s, "&lt;title&gt;&amp;\xef\xbf\xbd]]&gt;"));
	cr_assert_not_null(strstr(s, "caf\xc3\xa9 \xf0\x9f\x94\xa5"));
	for (i = 0; i < len; i++)
		cr_assert(s[i] >= 0x20 || s[i] < 0 || s[i] == '\n' ||
		    s[i] == '\t', "control byte %#x at %zu", s[i], i);
	cr_assert_eq(xmllint(s), 0);
	free(s);
	profile_free(p);
}

Test(format_svg, colours_hashed_from_name)
{
	struct profile		*p = profile_new();
	struct drawn		 d[16];
	const struct drawn	*x, *y;
	char			*s;
	size_t			 n;
	int			 r, g, b;

	add_stack(p, "main;work", 5, 0);
	add_stack(p, "other;work", 5, 0);
	s = encode(p, FORMAT_WEIGHT_SAMPLES, NULL);
	n = parse_frames(s, d, 16);
	cr_assert_eq(n, 5);
	x = &d[2];
	y = &d[4];
	cr_assert_str_eq(x->label, "work");
	cr_assert_str_eq(y->label, "work");
	cr_assert_str_eq(x->fill, y->fill);
	cr_assert_eq(sscanf(x->fill, "rgb(%d,%d,%d)", &r, &g, &b), 3);
	cr_assert(r >= 205 && g <= 230 && b <= 55, "warm: %s", x->fill);
	free(s);
	profile_free(p);
}

Test(format_svg, prunes_tiny_frames_of_100k_stacks)
{
	struct profile	*p = profile_new();
	uint32_t	 stack[8], funcs[2000], seed = 1;
	char		 name[64];
	char		*s;
	size_t		 i, j, len;

	for (i = 0; i < 2000; i++) {
		snprintf(name, sizeof name, "package.module%zu.function_%zu",
		    i % 37, i);
		funcs[i] = profile_add_func(p, name, strlen(name),
		    "/srv/app/package/module.py", 26, 1);
		funcs[i] = profile_add_frame(p, funcs[i], (uint32_t)i);
	}
	for (i = 0; i < BIG_STACKS; i++) {
		for (j = 0; j < 8; j++) {
			seed = seed * 1103515245 + 12345;
			stack[j] = funcs[(seed >> 8) % 2000];
		}
		stack[7] = funcs[i % 2000];
		profile_add_sample(p, stack, 8, PROFILE_NO_LABELS, 1, 10);
	}
	s = encode(p, FORMAT_WEIGHT_SAMPLES, &len);
	cr_assert_not_null(s);
	cr_log_info("100k stacks: %zu bytes, %zu frames", len,
	    count_of(s, "<g id=\"f"));
	cr_assert_lt(len, BIG_FILE_MAX, "%zu bytes", len);
	cr_assert_leq(count_of(s, "<g id=\"f"), MAX_FRAMES);
	cr_assert_not_null(strstr(s, "not drawn"));
	cr_assert_eq(xmllint(s), 0);
	free(s);
	profile_free(p);
}

Test(format_svg, caps_frames_drawn)
{
	struct profile	*p = profile_new();
	uint32_t	 stack[8];
	char		 name[32];
	char		*s;
	size_t		 i, j, len;

	/* 10000 chains of 8 distinct frames, each 0.118 px wide. */
	for (i = 0; i < 10000; i++) {
		for (j = 0; j < 8; j++) {
			snprintf(name, sizeof name, "f%zu_%zu", i, j);
			stack[j] = profile_add_frame(p, profile_add_func(p,
			    name, strlen(name), "", 0, 0), 0);
		}
		profile_add_sample(p, stack, 8, PROFILE_NO_LABELS, 1, 0);
	}
	s = encode(p, FORMAT_WEIGHT_SAMPLES, &len);
	cr_assert_not_null(s);
	cr_assert_leq(count_of(s, "<g id=\"f"), MAX_FRAMES);
	cr_assert_not_null(strstr(s, "narrower than 0.20 px not drawn"));
	free(s);
	profile_free(p);
}

Test(format_svg, empty_profile_says_no_samples)
{
	struct profile	*p = profile_new();
	char		*s = encode(p, FORMAT_WEIGHT_SAMPLES, NULL);

	cr_assert_not_null(s);
	cr_assert_not_null(strstr(s, ">no samples</text>"));
	cr_assert_eq(count_of(s, "<g id=\"f"), 0);
	cr_assert_eq(xmllint(s), 0);
	free(s);

	/* Samples without time are nothing to weigh by time. */
	add_stack(p, "main", 5, 0);
	s = encode(p, FORMAT_WEIGHT_TIME, NULL);
	cr_assert_not_null(strstr(s, ">no samples</text>"));
	free(s);
	profile_free(p);
}

Test(format_svg, cuts_deep_stacks_and_bad_frames)
{
	struct profile	*p = profile_new();
	uint32_t	*stack = calloc(5000, sizeof *stack), f;
	char		*s;
	size_t		 i;

	f = frame_of(p, "recurse");
	for (i = 0; i < 5000; i++)
		stack[i] = f;
	profile_add_sample(p, stack, 5000, PROFILE_NO_LABELS, 3, 0);
	stack[0] = 12345;
	stack[1] = UINT32_MAX;
	profile_add_sample(p, stack, 2, PROFILE_NO_LABELS, 1, 0);
	s = encode(p, FORMAT_WEIGHT_SAMPLES, NULL);
	cr_assert_not_null(s);
	cr_assert_eq(count_of(s, "<g id=\"f"), 1 + MAX_DEPTH + 2);
	cr_assert_not_null(strstr(s, "1 stack cut at 1024 frames"));
	cr_assert_not_null(strstr(s, "<title>? \xe2\x80\x94 1 sample (25.00%)"));
	cr_assert_eq(xmllint(s), 0);
	free(s);
	free(stack);
	profile_free(p);
}

Test(format_svg, sample_for_browser)
{
	static const struct {
		const char	*stack;
		uint64_t	 count;
	} stacks[] = {
		{ "<module>;main;serve_forever;handle_request;parse_json;"
		  "loads;decode;raw_decode", 120 },
		{ "<module>;main;serve_forever;handle_request;db_query;"
		  "execute;fetchall", 260 },
		{ "<module>;main;serve_forever;handle_request;db_query;"
		  "connect", 40 },
		{ "<module>;main;serve_forever;handle_request;render_template;"
		  "escape;<lambda>", 150 },
		{ "<module>;main;serve_forever;handle_request;render_template;"
		  "join", 60 },
		{ "<module>;main;serve_forever;handle_request;log_access;"
		  "format_time", 30 },
		{ "<module>;main;serve_forever;select", 200 },
		{ "<module>;main;gc_collect", 25 },
		{ "<module>;main;serve_forever;handle_request;db_query;"
		  "execute;a_&_b_<x>", 15 },
		{ "<module>;main;odd_]]>_\x01_\xff_name", 5 },
	};
	const char	*path = getenv("PROFD_SVG_OUT");
	struct profile	*p = profile_new();
	char		*s, tiny[64];
	FILE		*f;
	size_t		 i;

	cr_assert_eq(profile_set_title(p, "service web, 8 workers, wall"), 0);
	for (i = 0; i < sizeof stacks / sizeof stacks[0]; i++)
		add_stack(p, stacks[i].stack, stacks[i].count * 100,
		    stacks[i].count * 1000000);
	for (i = 0; i < 40; i++) {
		snprintf(tiny, sizeof tiny, "<module>;main;helper_%zu", i);
		add_stack(p, tiny, 1, 10000);
	}
	s = encode(p, FORMAT_WEIGHT_SAMPLES, NULL);
	cr_assert_not_null(s);
	cr_assert_eq(xmllint(s), 0);
	if (path != NULL && *path != '\0') {
		f = fopen(path, "w");
		cr_assert_not_null(f, "%s", path);
		fputs(s, f);
		fclose(f);
	}
	free(s);
	profile_free(p);
}

Test(format_svg, the_warning_leads_the_note_escaped)
{
	struct profile	*p = profile_new();
	uint32_t	 fn, fr;
	char		*s;
	size_t		 len;

	cr_assert_not_null(p);
	cr_assert_eq(profile_set_warning(p, "warning: <7.2%> & \"torn\""), 0);
	fn = profile_add_func(p, "main", 4, "app.py", 6, 1);
	fr = profile_add_frame(p, fn, 7);
	profile_add_sample(p, &fr, 1, PROFILE_NO_LABELS, 1, 1);
	s = encode(p, FORMAT_WEIGHT_SAMPLES, &len);
	cr_assert_not_null(s);
	cr_assert_not_null(strstr(s, "<text id=\"note\" x=\"10\" y=\""));
	cr_assert_not_null(strstr(s, "\">warning: &lt;7.2%&gt; &amp; "
	    "&quot;torn&quot;. Click a frame"), "%s", s);
	cr_assert_eq(xmllint(s), 0);
	free(s);
	profile_free(p);
}
