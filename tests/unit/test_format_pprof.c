/*
 * test_format_pprof.c -- the pprof encoder, checked by gunzipping its output
 * with zlib and decoding it with protobuf-c's unpacker for profile.proto.
 *
 * With PROFD_PPROF_OUT set, writes_known_profile writes the known profile
 * there for tests/tools/pprof-check.sh (make check-pprof).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <zlib.h>

#include "format.h"
#include "profile.h"
#include "profile.pb-c.h"

#define GUNZIP_MAX	(256u << 20)	/* bigger output is a failed test */
#define DEEP		256
#define MANY		20000

typedef Perftools__Profiles__Profile	PProfile;
typedef Perftools__Profiles__Sample	PSample;
typedef Perftools__Profiles__Label	PLabel;
typedef Perftools__Profiles__Location	PLocation;
typedef Perftools__Profiles__Function	PFunction;

static struct profile		*p;
static struct evbuffer		*out;
static PProfile			*pp;
static const struct format_opts	 opts = { FORMAT_WEIGHT_SAMPLES, 0, 0 };

static void
setup(void)
{
	p = profile_new();
	out = evbuffer_new();
	cr_assert(p != NULL && out != NULL);
	pp = NULL;
}

static void
teardown(void)
{
	if (pp != NULL)
		perftools__profiles__profile__free_unpacked(pp, NULL);
	evbuffer_free(out);
	profile_free(p);
}

TestSuite(format_pprof, .init = setup, .fini = teardown);

/* Gunzips buf into a malloc'd buffer. */
static unsigned char *
gunzip(const unsigned char *buf, size_t len, size_t *outlen)
{
	z_stream	 zs;
	unsigned char	*dst = NULL, *n;
	size_t		 cap = 0, used = 0;
	int		 r;

	memset(&zs, 0, sizeof zs);
	cr_assert_eq(inflateInit2(&zs, 15 + 16), Z_OK);
	zs.next_in = (Bytef *)buf;
	zs.avail_in = (uInt)len;
	do {
		if (used == cap) {
			cap = cap == 0 ? 4096 : cap * 2;
			cr_assert_leq(cap, GUNZIP_MAX);
			n = realloc(dst, cap);
			cr_assert_not_null(n);
			dst = n;
		}
		zs.next_out = dst + used;
		zs.avail_out = (uInt)(cap - used);
		r = inflate(&zs, Z_NO_FLUSH);
		cr_assert(r == Z_OK || r == Z_STREAM_END, "inflate: %d", r);
		used = cap - zs.avail_out;
	} while (r != Z_STREAM_END);
	cr_assert_eq(zs.avail_in, 0, "bytes after the gzip stream");
	inflateEnd(&zs);
	*outlen = used;
	return (dst);
}

/* Encodes p, checks the gzip header, and decodes the result into pp. */
static void
encode(void)
{
	unsigned char	*gz, *raw;
	size_t		 len, rawlen;

	cr_assert_eq(format_pprof(p, &opts, out), 0);
	len = evbuffer_get_length(out);
	gz = evbuffer_pullup(out, -1);
	cr_assert(len > 2 && gz[0] == 0x1f && gz[1] == 0x8b, "not gzip");
	raw = gunzip(gz, len, &rawlen);
	pp = perftools__profiles__profile__unpack(NULL, rawlen, raw);
	free(raw);
	cr_assert_not_null(pp, "not a Profile");
}

/* The string at a string table index. */
static const char *
str(int64_t i)
{
	cr_assert(i >= 0 && (size_t)i < pp->n_string_table,
	    "string index %lld", (long long)i);
	return (pp->string_table[i]);
}

/* The location with id `id`. */
static const PLocation *
location(uint64_t id)
{
	size_t	i;

	for (i = 0; i < pp->n_location; i++) {
		if (pp->location[i]->id == id)
			return (pp->location[i]);
	}
	cr_assert_fail("no location %llu", (unsigned long long)id);
	return (NULL);
}

/* The function with id `id`. */
static const PFunction *
function(uint64_t id)
{
	size_t	i;

	for (i = 0; i < pp->n_function; i++) {
		if (pp->function[i]->id == id)
			return (pp->function[i]);
	}
	cr_assert_fail("no function %llu", (unsigned long long)id);
	return (NULL);
}

/* The function name of a sample's i-th location (0 = leaf). */
static const char *
sample_func(const PSample *s, size_t i)
{
	const PLocation	*loc;

	cr_assert_lt(i, s->n_location_id);
	loc = location(s->location_id[i]);
	cr_assert_eq(loc->n_line, 1);
	return (str(function(loc->line[0]->function_id)->name));
}

/* Adds a func and a frame of it; returns the frame. */
static uint32_t
add_frame(const char *name, uint32_t line)
{
	uint32_t	f;

	f = profile_add_func(p, name, strlen(name), "app.py", 6, 1);
	cr_assert_neq(f, UINT32_MAX);
	f = profile_add_frame(p, f, line);
	cr_assert_neq(f, UINT32_MAX);
	return (f);
}

/* The label of a sample with key `key`, or NULL. */
static const PLabel *
label(const PSample *s, const char *key)
{
	size_t	i;

	for (i = 0; i < s->n_label; i++) {
		if (strcmp(str(s->label[i]->key), key) == 0)
			return (s->label[i]);
	}
	return (NULL);
}

/*
 * The known profile: <module> -> work -> leaf 6 times, <module> -> work 3
 * times, <module> 1 time (10 samples, 10 ms each), for the unit tests and
 * for pprof-check.sh.
 */
static void
known(void)
{
	struct profile_labels	l = { 42, 4242, "MainThread", "api", "" };
	uint32_t		main_, work, leaf, lab, st[3];

	main_ = add_frame("<module>", 10);
	work = add_frame("work", 20);
	leaf = add_frame("leaf", 30);
	lab = profile_add_labels(p, &l);
	st[0] = main_;
	st[1] = work;
	st[2] = leaf;
	cr_assert_neq(profile_add_sample(p, st, 3, lab, 6, 60000), UINT32_MAX);
	cr_assert_neq(profile_add_sample(p, st, 2, lab, 3, 30000), UINT32_MAX);
	cr_assert_neq(profile_add_sample(p, st, 1, PROFILE_NO_LABELS, 1,
	    10000), UINT32_MAX);
	p->rate_hz = 100;
	p->start_ns = 1700000000000000000ULL;
	p->end_ns = p->start_ns + 5000000000ULL;
}

Test(format_pprof, string_table_starts_empty_and_holds_each_string_once)
{
	size_t	i, j;

	known();
	encode();
	cr_assert_gt(pp->n_string_table, 1);
	cr_assert_str_eq(pp->string_table[0], "");
	for (i = 0; i < pp->n_string_table; i++) {
		for (j = i + 1; j < pp->n_string_table; j++)
			cr_assert_str_neq(pp->string_table[i],
			    pp->string_table[j]);
	}
}

Test(format_pprof, sample_types_are_samples_and_wall_nanoseconds)
{
	known();
	encode();
	cr_assert_eq(pp->n_sample_type, 2);
	cr_assert_str_eq(str(pp->sample_type[0]->type), "samples");
	cr_assert_str_eq(str(pp->sample_type[0]->unit), "count");
	cr_assert_str_eq(str(pp->sample_type[1]->type), "wall");
	cr_assert_str_eq(str(pp->sample_type[1]->unit), "nanoseconds");
	cr_assert_not_null(pp->period_type);
	cr_assert_str_eq(str(pp->period_type->type), "wall");
	cr_assert_str_eq(str(pp->period_type->unit), "nanoseconds");
	cr_assert_eq(pp->period, 10000000);
	cr_assert_eq(pp->time_nanos, 1700000000000000000LL);
	cr_assert_eq(pp->duration_nanos, 5000000000LL);
}

Test(format_pprof, cpu_weight_names_cpu)
{
	known();
	p->weight = PROFILE_WEIGHT_CPU;
	encode();
	cr_assert_str_eq(str(pp->sample_type[1]->type), "cpu");
	cr_assert_str_eq(str(pp->period_type->type), "cpu");
}

Test(format_pprof, no_rate_means_no_period)
{
	known();
	p->rate_hz = 0;
	encode();
	cr_assert_null(pp->period_type);
	cr_assert_eq(pp->period, 0);
}

Test(format_pprof, values_are_count_and_nanoseconds)
{
	known();
	encode();
	cr_assert_eq(pp->n_sample, 3);
	cr_assert_eq(pp->sample[0]->n_value, 2);
	cr_assert_eq(pp->sample[0]->value[0], 6);
	cr_assert_eq(pp->sample[0]->value[1], 60000000);
	cr_assert_eq(pp->sample[2]->value[0], 1);
	cr_assert_eq(pp->sample[2]->value[1], 10000000);
}

Test(format_pprof, locations_are_leaf_first)
{
	known();
	encode();
	cr_assert_eq(pp->sample[0]->n_location_id, 3);
	cr_assert_str_eq(sample_func(pp->sample[0], 0), "leaf");
	cr_assert_str_eq(sample_func(pp->sample[0], 1), "work");
	cr_assert_str_eq(sample_func(pp->sample[0], 2), "<module>");
	cr_assert_eq(pp->sample[1]->n_location_id, 2);
	cr_assert_str_eq(sample_func(pp->sample[1], 0), "work");
	cr_assert_str_eq(sample_func(pp->sample[2], 0), "<module>");
}

Test(format_pprof, functions_and_locations_carry_file_and_lines)
{
	const PFunction	*fn;
	const PLocation	*loc;
	uint32_t	 f, fr;

	f = profile_add_func(p, "mod.Cls.meth", 12, "/srv/mod.py", 11, 7);
	fr = profile_add_frame(p, f, 9);
	cr_assert_neq(profile_add_sample(p, &fr, 1, PROFILE_NO_LABELS, 1, 1),
	    UINT32_MAX);
	encode();
	cr_assert_eq(pp->n_function, 1);
	cr_assert_eq(pp->n_location, 1);
	fn = pp->function[0];
	cr_assert_eq(fn->id, 1);
	cr_assert_str_eq(str(fn->name), "mod.Cls.meth");
	cr_assert_eq(fn->system_name, 0, "pprof would demangle it");
	cr_assert_str_eq(str(fn->filename), "/srv/mod.py");
	cr_assert_eq(fn->start_line, 7);
	loc = pp->location[0];
	cr_assert_eq(loc->id, 1);
	cr_assert_eq(loc->n_line, 1);
	cr_assert_eq(loc->line[0]->function_id, 1);
	cr_assert_eq(loc->line[0]->line, 9);
	cr_assert_eq(pp->n_mapping, 1);
	cr_assert_eq(loc->mapping_id, pp->mapping[0]->id);
	cr_assert(pp->mapping[0]->has_functions);
}

Test(format_pprof, labels_name_the_process_and_thread)
{
	const PSample	*s;

	known();
	encode();
	s = pp->sample[0];
	cr_assert_not_null(label(s, "pid"));
	cr_assert_eq(label(s, "pid")->num, 42);
	cr_assert_not_null(label(s, "tid"));
	cr_assert_eq(label(s, "tid")->num, 4242);
	cr_assert_not_null(label(s, "thread"));
	cr_assert_str_eq(str(label(s, "thread")->str), "MainThread");
	cr_assert_not_null(label(s, "service"));
	cr_assert_str_eq(str(label(s, "service")->str), "api");
	cr_assert_null(label(s, "host"), "empty host is left out");
	cr_assert_eq(pp->sample[2]->n_label, 0);
}

Test(format_pprof, empty_strings_and_unknown_tid_are_left_out)
{
	struct profile_labels	 l = { 7, 0, "", "", "box" };
	const PSample		*s;
	uint32_t		 fr, lab;

	fr = add_frame("f", 1);
	lab = profile_add_labels(p, &l);
	cr_assert_neq(profile_add_sample(p, &fr, 1, lab, 1, 1), UINT32_MAX);
	encode();
	s = pp->sample[0];
	cr_assert_eq(s->n_label, 2);
	cr_assert_eq(label(s, "pid")->num, 7);
	cr_assert_str_eq(str(label(s, "host")->str), "box");
}

Test(format_pprof, totals_match_the_profile)
{
	int64_t	count = 0, ns = 0;
	size_t	i;

	known();
	encode();
	for (i = 0; i < pp->n_sample; i++) {
		count += pp->sample[i]->value[0];
		ns += pp->sample[i]->value[1];
	}
	cr_assert_eq(count, (int64_t)p->count);
	cr_assert_eq(ns, (int64_t)p->weight_us * 1000);
}

Test(format_pprof, empty_profile_is_valid)
{
	encode();
	cr_assert_str_eq(pp->string_table[0], "");
	cr_assert_eq(pp->n_sample_type, 2);
	cr_assert_eq(pp->n_sample, 0);
	cr_assert_eq(pp->n_location, 0);
	cr_assert_eq(pp->n_function, 0);
	cr_assert_eq(pp->duration_nanos, 0);
}

Test(format_pprof, deep_stack_keeps_every_frame)
{
	uint32_t	st[DEEP];
	char		name[32];
	size_t		i;

	for (i = 0; i < DEEP; i++) {
		snprintf(name, sizeof name, "f%zu", i);
		st[i] = add_frame(name, (uint32_t)i + 1);
	}
	cr_assert_neq(profile_add_sample(p, st, DEEP, PROFILE_NO_LABELS, 1,
	    1), UINT32_MAX);
	encode();
	cr_assert_eq(pp->sample[0]->n_location_id, DEEP);
	for (i = 0; i < DEEP; i++) {
		snprintf(name, sizeof name, "f%zu", DEEP - 1 - i);
		cr_assert_str_eq(sample_func(pp->sample[0], i), name);
	}
}

Test(format_pprof, many_samples)
{
	uint32_t	st[2];
	size_t		i;
	int64_t		count = 0;

	st[0] = add_frame("root", 1);
	for (i = 0; i < MANY; i++) {
		st[1] = add_frame(i % 2 ? "odd" : "even", (uint32_t)i);
		cr_assert_neq(profile_add_sample(p, st, 2, PROFILE_NO_LABELS,
		    i + 1, 1000), UINT32_MAX);
	}
	encode();
	cr_assert_eq(pp->n_sample, MANY);
	cr_assert_eq(pp->n_location, MANY + 1);
	for (i = 0; i < pp->n_sample; i++) {
		count += pp->sample[i]->value[0];
		cr_assert_eq(pp->sample[i]->value[1], 1000000);
	}
	cr_assert_eq(count, (int64_t)MANY * (MANY + 1) / 2);
	cr_assert_str_eq(sample_func(pp->sample[MANY - 1], 0), "odd");
	cr_assert_str_eq(sample_func(pp->sample[MANY - 1], 1), "root");
}

Test(format_pprof, huge_values_are_clamped)
{
	uint32_t	fr = add_frame("f", 1);

	cr_assert_neq(profile_add_sample(p, &fr, 1, PROFILE_NO_LABELS,
	    UINT64_MAX, UINT64_MAX / 2), UINT32_MAX);
	encode();
	cr_assert_eq(pp->sample[0]->value[0], INT64_MAX);
	cr_assert_eq(pp->sample[0]->value[1], INT64_MAX);
}

Test(format_pprof, bad_indexes_are_refused)
{
	uint32_t	fr = add_frame("f", 1), bad = 99;

	cr_assert_neq(profile_add_sample(p, &bad, 1, PROFILE_NO_LABELS, 1,
	    1), UINT32_MAX);
	cr_assert_eq(format_pprof(p, &opts, out), -1);
	cr_assert_eq(evbuffer_get_length(out), 0);

	p->samples[0].frames = &fr;
	p->samples[0].labels = 3;
	cr_assert_eq(format_pprof(p, &opts, out), -1);
	p->samples[0].labels = PROFILE_NO_LABELS;
	p->frames[0].func = 5;
	cr_assert_eq(format_pprof(p, &opts, out), -1);
	cr_assert_eq(evbuffer_get_length(out), 0);
}

Test(format_pprof, weight_option_does_not_change_the_output)
{
	struct format_opts	 t = { FORMAT_WEIGHT_TIME, 1, 1 };
	struct evbuffer		*b;
	size_t			 len;

	known();
	b = evbuffer_new();
	cr_assert_not_null(b);
	cr_assert_eq(format_pprof(p, &opts, out), 0);
	cr_assert_eq(format_pprof(p, &t, b), 0);
	len = evbuffer_get_length(out);
	cr_assert_eq(len, evbuffer_get_length(b));
	cr_assert_eq(memcmp(evbuffer_pullup(out, -1), evbuffer_pullup(b, -1),
	    len), 0);
	evbuffer_free(b);
}

Test(format_pprof, appends_to_what_out_holds)
{
	unsigned char	*gz, *raw;
	size_t		 rawlen;

	known();
	cr_assert_eq(evbuffer_add(out, "xy", 2), 0);
	cr_assert_eq(format_pprof(p, &opts, out), 0);
	gz = evbuffer_pullup(out, -1);
	cr_assert_eq(memcmp(gz, "xy", 2), 0);
	raw = gunzip(gz + 2, evbuffer_get_length(out) - 2, &rawlen);
	pp = perftools__profiles__profile__unpack(NULL, rawlen, raw);
	free(raw);
	cr_assert_not_null(pp);
	cr_assert_eq(pp->n_sample, 3);
}

Test(format_pprof, writes_known_profile)
{
	const char	*path = getenv("PROFD_PPROF_OUT");
	FILE		*f;
	size_t		 len;

	if (path == NULL || *path == '\0')
		cr_skip_test("PROFD_PPROF_OUT not set");
	known();
	cr_assert_eq(profile_set_title(p, "pprof-check known profile"), 0);
	cr_assert_eq(format_pprof(p, &opts, out), 0);
	len = evbuffer_get_length(out);
	f = fopen(path, "wb");
	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fwrite(evbuffer_pullup(out, -1), 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

Test(format_pprof, the_title_and_the_warning_are_comments)
{
	known();
	cr_assert_eq(profile_set_title(p, "profd pid 7"), 0);
	encode();
	cr_assert_eq(pp->n_comment, 1, "no warning: the title alone");
	cr_assert_str_eq(str(pp->comment[0]), "profd pid 7");
	perftools__profiles__profile__free_unpacked(pp, NULL);
	pp = NULL;
	evbuffer_drain(out, evbuffer_get_length(out));
	cr_assert_eq(profile_set_warning(p, "warning: 7.2% of stacks left "
	    "out"), 0);
	encode();
	cr_assert_eq(pp->n_comment, 2);
	cr_assert_str_eq(str(pp->comment[1]), "warning: 7.2% of stacks left "
	    "out");
}
