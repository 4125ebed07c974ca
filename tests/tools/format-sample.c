/*
 * format-sample.c -- writes a fixed profile with hostile names, several
 * threads and a 256-deep stack through one encoder, for the checks that
 * run third-party importers on it (make check-formats).
 *   usage: format-sample folded|speedscope|total samples|time
 * "total" prints the total weight the importers should find.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "format.h"

#define SAMPLE_DEPTH	256

/* Builds the profile. */
static struct profile *
sample_build(void)
{
	static const struct {
		const char	*name, *file;
	} funcs[] = {
		{ "main", "app.py" },
		{ "handle \"req\" \\ now", "C:\\srv\\app.py" },
		{ "caf\xc3\xa9_\xe2\x82\xac_\xf0\x9f\x98\x80", "u.py" },
		{ "semi;colon\ttab\nnewline\x01", "x;y.py" },
		{ "bad\xff\xc0\xafutf8", "" },
		{ "recurse", "deep.py" },
	};
	struct profile_labels	 l = { 0 };
	struct profile		*p;
	uint32_t		 fr[6], st[SAMPLE_DEPTH], a, b;
	size_t			 i;

	if ((p = profile_new()) == NULL || profile_set_title(p,
	    "profd \"sample\"") != 0 || profile_set_warning(p,
	    "warning: 7.2% of \"stacks\" <torn> & left\tout\n") != 0)
		return (NULL);
	for (i = 0; i < 6; i++)
		fr[i] = profile_add_frame(p, profile_add_func(p, funcs[i].name,
		    strlen(funcs[i].name), funcs[i].file, strlen(funcs[i].file),
		    1), (uint32_t)i + 1);
	l.pid = 42; l.tid = 7; l.thread = "MainThread"; l.service = "api";
	l.host = "web-1";
	a = profile_add_labels(p, &l);
	l.tid = 8; l.thread = "worker \"1\"";
	b = profile_add_labels(p, &l);

	st[0] = fr[0]; st[1] = fr[1]; st[2] = fr[2];
	profile_add_sample(p, st, 3, a, 5, 50000);
	profile_add_sample(p, st, 3, b, 2, 20000);
	st[1] = fr[3]; st[2] = fr[4];
	profile_add_sample(p, st, 3, b, 3, 1000);
	profile_add_sample(p, st, 2, PROFILE_NO_LABELS, 1, 10);
	for (i = 1; i < SAMPLE_DEPTH; i++)
		st[i] = fr[5];
	profile_add_sample(p, st, SAMPLE_DEPTH, a, 4, 400);
	return (p);
}

int
main(int argc, char **argv)
{
	struct format_opts	 o = { 0 };
	struct profile		*p;
	struct evbuffer		*out;
	int			 ret;

	if (argc != 3) {
		fprintf(stderr, "usage: format-sample folded|speedscope|total "
		    "samples|time\n");
		return (1);
	}
	if (strcmp(argv[2], "time") == 0)
		o.weight = FORMAT_WEIGHT_TIME;
	if ((p = sample_build()) == NULL || (out = evbuffer_new()) == NULL)
		return (1);
	if (strcmp(argv[1], "total") == 0) {
		printf("%" PRIu64 "\n", o.weight == FORMAT_WEIGHT_TIME ?
		    p->weight_us : p->count);
		return (0);
	}
	if (strcmp(argv[1], "folded") == 0)
		ret = format_folded(p, &o, out);
	else
		ret = format_speedscope(p, &o, out);
	if (ret != 0 || evbuffer_write(out, STDOUT_FILENO) < 0)
		return (1);
	evbuffer_free(out);
	profile_free(p);
	return (0);
}
