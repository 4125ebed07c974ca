/* cmd-show.c -- `profctl show`: the merged profile of all processes. */

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "client.h"
#include "cmd.h"
#include "json.h"
#include "proto.h"
#include "render.h"

#define CMD_SHOW_TOP_MAX	UINT32_MAX	/* largest --top */

static int	cmd_show_exec(const struct cmd_entry *,
		    const struct cmd_ctx *, int, char **);

#define CMD_SHOW_STR(x)		#x
#define CMD_SHOW_XSTR(x)	CMD_SHOW_STR(x)

const struct cmd_entry cmd_show_entry = {
	.name = "show",
	.usage = "[--top N] [--pid PID]... [--format table|json|folded]",
	.summary = "show the merged profile of all (or --pid) processes",
	.help =
	    "  -n, --top N        show the N functions with the most self "
	    "samples; 0 shows\n"
	    "                     all (default: "
	    CMD_SHOW_XSTR(CMD_SHOW_TOP_DEFAULT) " for table, all for json)\n"
	    "  -p, --pid PID      only samples of this process (repeatable)\n"
	    "  -f, --format FMT   table (default): SELF = samples where the "
	    "function is\n"
	    "                     the leaf, TOTAL = samples where it is on the "
	    "stack\n"
	    "                     (recursion counts once), percentages of all "
	    "samples;\n"
	    "                     json: one object with samples, processes and "
	    "functions;\n"
	    "                     folded: one 'root;...;leaf count' line per "
	    "stack, for\n"
	    "                     flamegraph.pl or speedscope\n",
	.exec = cmd_show_exec,
};

static const char *const cmd_show_headers[] = {
	"SELF%", "SELF", "TOTAL%", "TOTAL", "FUNCTION (FILE:LINE)"
};
#define CMD_SHOW_NCOLS (sizeof cmd_show_headers / sizeof cmd_show_headers[0])
static const char cmd_show_align[] = "rrrrl";

/* Gets an uint from a map, 0 when absent. */
static uint64_t
cmd_show_uint(const msgpack_object *o, const char *key)
{
	uint64_t	v;

	if (o->type != MSGPACK_OBJECT_MAP ||
	    proto_map_uint(&o->via.map, key, &v) != 0)
		return (0);
	return (v);
}

/* Gets an array from a map, NULL when absent or not an array. */
static const msgpack_object *
cmd_show_array(const msgpack_object *o, const char *key)
{
	const msgpack_object	*a;

	a = proto_map_get(&o->via.map, key);
	if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY)
		return (NULL);
	return (a);
}

/* Adds one function's row; rows that are not maps are skipped. */
static int
cmd_show_function(struct render_table *t, const msgpack_object *fn,
    uint64_t samples)
{
	const msgpack_object	*name, *file;
	const char		*cells[CMD_SHOW_NCOLS];
	char			 selfp[16], self[24], totalp[16], total[24];
	char			*label;
	uint64_t		 s, tot;
	int			 r;

	if (fn->type != MSGPACK_OBJECT_MAP)
		return (0);
	name = proto_map_get(&fn->via.map, "function");
	file = proto_map_get(&fn->via.map, "file");
	if (name == NULL || name->type != MSGPACK_OBJECT_STR ||
	    file == NULL || file->type != MSGPACK_OBJECT_STR)
		return (0);
	s = cmd_show_uint(fn, "self");
	tot = cmd_show_uint(fn, "total");
	render_percent(selfp, sizeof selfp, s, samples);
	snprintf(self, sizeof self, "%" PRIu64, s);
	render_percent(totalp, sizeof totalp, tot, samples);
	snprintf(total, sizeof total, "%" PRIu64, tot);
	label = render_frame_label(name->via.str.ptr, name->via.str.size,
	    file->via.str.ptr, file->via.str.size, cmd_show_uint(fn, "line"));
	if (label == NULL)
		return (-1);
	render_clean(label, 0);
	cells[0] = selfp;
	cells[1] = self;
	cells[2] = totalp;
	cells[3] = total;
	cells[4] = label;
	r = render_table_add(t, cells);
	free(label);
	return (r);
}

/* Prints the show reply as a table of functions. */
static int
cmd_show_table(const msgpack_object *body, uint64_t top)
{
	const msgpack_object	*procs, *fns;
	struct render_table	*t;
	uint64_t		 samples, nprocs;
	uint32_t		 i;

	samples = cmd_show_uint(body, "samples");
	procs = cmd_show_array(body, "processes");
	nprocs = procs != NULL ? procs->via.array.size : 0;
	fns = cmd_show_array(body, "functions");
	if (samples == 0) {
		printf("no samples yet: is profiling on? try 'profctl start' "
		    "(and 'profctl status' to see the attached processes)\n");
		return (0);
	}
	printf("%" PRIu64 " %s from %" PRIu64 " %s\n", samples,
	    cmd_plural(samples, "sample", "samples"), nprocs,
	    cmd_plural(nprocs, "process", "processes"));
	if ((t = render_table_create(CMD_SHOW_NCOLS, cmd_show_headers,
	    cmd_show_align)) == NULL)
		goto fail;
	for (i = 0; fns != NULL && i < fns->via.array.size; i++) {
		if (cmd_show_function(t, &fns->via.array.ptr[i], samples) != 0)
			goto fail;
	}
	render_table_print(t, stdout, render_width(stdout));
	render_table_free(t);
	if (top != 0 && fns != NULL && fns->via.array.size >= top)
		printf("(top %" PRIu64 " by self samples; --top 0 shows all)\n",
		    top);
	return (0);

fail:
	render_table_free(t);
	fprintf(stderr, "profctl: out of memory\n");
	return (-1);
}

/* Prints the stacks of the show reply in the folded format. */
static int
cmd_show_folded(const msgpack_object *body)
{
	const msgpack_object	*stacks;
	uint32_t		 i, bad = 0;

	if ((stacks = cmd_show_array(body, "stacks")) == NULL ||
	    stacks->via.array.size == 0) {
		fprintf(stderr, "profctl: no samples yet: is profiling on? try "
		    "'profctl start'\n");
		return (0);
	}
	for (i = 0; i < stacks->via.array.size; i++) {
		if (render_folded_stack(stdout, &stacks->via.array.ptr[i]) != 0)
			bad++;
	}
	if (bad != 0)
		fprintf(stderr, "profctl: skipped %u malformed %s in profd's "
		    "reply\n", bad, bad == 1 ? "stack" : "stacks");
	return (0);
}

/* Asks profd for the merged profile and prints it. */
static int
cmd_show_exec(const struct cmd_entry *self, const struct cmd_ctx *ctx,
    int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "top",	required_argument,	NULL, 'n' },
		{ "pid",	required_argument,	NULL, 'p' },
		{ "format",	required_argument,	NULL, 'f' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 }
	};
	enum cmd_format			 format = CMD_FORMAT_TABLE;
	struct cmd_pids			 pids = { NULL, 0, 0 };
	struct client			 c;
	const msgpack_object		*body;
	msgpack_packer			*pk;
	const char			*err;
	uint64_t			 top = 0;
	int				 ch, top_set = 0, ret = CMD_EXIT_USAGE;

	while ((ch = getopt_long(argc, argv, "n:p:f:h", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'n':
			if (cmd_parse_uint(optarg, 0, CMD_SHOW_TOP_MAX,
			    &top) != 0) {
				cmd_usage_error(self, "--top '%s': give a "
				    "number of functions (0 = all)", optarg);
				goto done;
			}
			top_set = 1;
			break;
		case 'p':
			if (cmd_pids_add(&pids, optarg, &err) != 0) {
				cmd_usage_error(self, "--pid '%s': %s", optarg,
				    err);
				goto done;
			}
			break;
		case 'f':
			if (cmd_parse_format(optarg, 1, &format) != 0) {
				cmd_usage_error(self, "--format '%s': use "
				    "table, json or folded", optarg);
				goto done;
			}
			break;
		case 'h':
			cmd_print_help(self, stdout);
			ret = CMD_EXIT_OK;
			goto done;
		default:
			cmd_usage(self);
			goto done;
		}
	}
	if (optind < argc) {
		cmd_usage_error(self, "unexpected argument '%s'",
		    argv[optind]);
		goto done;
	}
	if (!top_set && format == CMD_FORMAT_TABLE)
		top = CMD_SHOW_TOP_DEFAULT;
	if (format == CMD_FORMAT_FOLDED)
		top = 1;	/* folded needs only the stacks */

	ret = CMD_EXIT_ERROR;
	if (client_init(&c, ctx->rundir) != 0)
		goto out;
	pk = client_begin(&c, "show", 2 + (pids.n > 0));
	proto_pack_cstr(pk, "top");
	msgpack_pack_uint64(pk, top);
	proto_pack_cstr(pk, "stacks");
	if (format == CMD_FORMAT_FOLDED)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	if (pids.n > 0)
		cmd_pack_pids(pk, &pids);
	if (client_call(&c, &body) != 0)
		goto out;
	switch (format) {
	case CMD_FORMAT_JSON:
		json_write(stdout, body, 1);
		putchar('\n');
		break;
	case CMD_FORMAT_FOLDED:
		if (cmd_show_folded(body) != 0)
			goto out;
		break;
	case CMD_FORMAT_TABLE:
		if (cmd_show_table(body, top) != 0)
			goto out;
		break;
	}
	ret = CMD_EXIT_OK;
out:
	client_free(&c);
done:
	cmd_pids_free(&pids);
	return (ret);
}
