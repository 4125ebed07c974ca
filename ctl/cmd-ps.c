/*
 * cmd-ps.c -- `profctl ps`: every process instance profd remembers within
 * its retention, attached or gone, as a tree (workers under the master that
 * forked them) or JSON.
 */

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "cmd.h"
#include "json.h"
#include "proto.h"
#include "render.h"

#define CMD_PS_MAX_SERVICES	256	/* --service values */
#define CMD_PS_MAX_DEPTH	32	/* indentation levels shown */

static int	cmd_ps_exec(const struct cmd_entry *, const struct cmd_ctx *,
		    int, char **);

const struct cmd_entry cmd_ps_entry = {
	.name = "ps",
	.usage = "[--pid PID]... [--service NAME]... [--flat] "
	    "[--format table|json]",
	.summary = "list the processes profd knows: attached and gone, as a "
	    "tree",
	.help =
	    "  -p, --pid PID      only this pid (repeatable)\n"
	    "  -S, --service NAME only this service (repeatable)\n"
	    "      --flat         no tree: one row per process, by pid\n"
	    "  -f, --format FMT   table (default): a process tree, children "
	    "under the\n"
	    "                     process that started them; STATE is "
	    "attached or gone;\n"
	    "                     a pid used twice shows as two processes; "
	    "json: every\n"
	    "                     field (instance and parent ids, start/end "
	    "times in ns)\n",
	.exec = cmd_ps_exec,
};

struct cmd_ps_row {
	const msgpack_object	*o;
	uint64_t		 instance;
	uint64_t		 parent;
	int			 shown;
};

/* Adds one process's row, indented by depth. */
static int
cmd_ps_add(struct render_table *t, const msgpack_object *o, int depth)
{
	const msgpack_object	*a;
	const char		*cells[7];
	char			 pid[64], ppid[24], svc[256], state[16];
	char			 samples[24], started[32], *cmd;
	struct tm		 tm;
	time_t			 ts;
	uint64_t		 ns;
	int			 rc, ind = depth > CMD_PS_MAX_DEPTH ?
				     CMD_PS_MAX_DEPTH : depth;

	snprintf(pid, sizeof pid, "%*s%" PRIu64, ind * 2, "",
	    cmd_obj_uint(o, "pid"));
	snprintf(ppid, sizeof ppid, "%" PRIu64, cmd_obj_uint(o, "ppid"));
	cmd_obj_str(o, "service", svc, sizeof svc);
	a = proto_map_get(&o->via.map, "attached");
	snprintf(state, sizeof state, "%s", a != NULL &&
	    a->type == MSGPACK_OBJECT_BOOLEAN && a->via.boolean ? "attached" :
	    "gone");
	snprintf(samples, sizeof samples, "%" PRIu64,
	    cmd_obj_uint(o, "samples"));
	ns = cmd_obj_uint(o, "start_ns");
	if (ns == 0)
		ns = cmd_obj_uint(o, "attach_ns");
	ts = (time_t)(ns / 1000000000u);
	if (ns != 0 && localtime_r(&ts, &tm) != NULL)
		strftime(started, sizeof started, "%m-%d %H:%M:%S", &tm);
	else
		snprintf(started, sizeof started, "-");
	if ((cmd = render_argv(proto_map_get(&o->via.map, "argv"))) == NULL)
		return (-1);
	cells[0] = pid;
	cells[1] = ppid;
	cells[2] = svc;
	cells[3] = state;
	cells[4] = samples;
	cells[5] = started;
	cells[6] = cmd;
	rc = render_table_add(t, cells);
	free(cmd);
	return (rc);
}

/* Adds a process and, under it, its children, depth first. */
static int
cmd_ps_tree(struct render_table *t, struct cmd_ps_row *rows, size_t n,
    size_t i, int depth)
{
	size_t	j;

	if (rows[i].shown)
		return (0);
	rows[i].shown = 1;
	if (cmd_ps_add(t, rows[i].o, depth) != 0)
		return (-1);
	for (j = 0; j < n; j++) {
		if (!rows[j].shown && rows[j].parent == rows[i].instance &&
		    cmd_ps_tree(t, rows, n, j, depth + 1) != 0)
			return (-1);
	}
	return (0);
}

/* Prints the processes as a table. */
static int
cmd_ps_table(const msgpack_object *body, int flat)
{
	static const char *const headers[] = {
		"PID", "PPID", "SERVICE", "STATE", "SAMPLES", "STARTED", "CMD"
	};
	const msgpack_object	*procs;
	struct cmd_ps_row	*rows;
	struct render_table	*t;
	size_t			 n, i, j;
	int			 rc = -1;

	procs = proto_map_get(&body->via.map, "processes");
	if (procs == NULL || procs->type != MSGPACK_OBJECT_ARRAY ||
	    procs->via.array.size == 0) {
		printf("no processes yet: run one under 'python -m profagent "
		    "run -- ...'\n");
		return (0);
	}
	n = procs->via.array.size;
	if ((rows = calloc(n, sizeof *rows)) == NULL)
		return (-1);
	if ((t = render_table_create(7, headers, flat ? "rrllrll" : "lrllrll")) == NULL) {
		free(rows);
		return (-1);
	}
	for (i = 0; i < n; i++) {
		rows[i].o = &procs->via.array.ptr[i];
		rows[i].instance = cmd_obj_uint(rows[i].o, "instance");
		rows[i].parent = flat ? 0 : cmd_obj_uint(rows[i].o, "parent");
	}
	/* Roots: no parent, or a parent not in the list. */
	for (i = 0; i < n; i++) {
		if (rows[i].parent != 0) {
			for (j = 0; j < n && rows[j].instance !=
			    rows[i].parent; j++)
				;
			if (j < n)
				continue;
		}
		if (cmd_ps_tree(t, rows, n, i, 0) != 0)
			goto out;
	}
	/* Cycles cannot happen, but never hide a row. */
	for (i = 0; i < n; i++) {
		if (!rows[i].shown && cmd_ps_tree(t, rows, n, i, 0) != 0)
			goto out;
	}
	render_table_print(t, stdout, render_width(stdout));
	rc = 0;
out:
	render_table_free(t);
	free(rows);
	return (rc);
}

/* Asks profd for the processes and prints them. */
static int
cmd_ps_exec(const struct cmd_entry *self, const struct cmd_ctx *ctx,
    int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "pid",	required_argument,	NULL, 'p' },
		{ "service",	required_argument,	NULL, 'S' },
		{ "flat",	no_argument,		NULL, 'F' },
		{ "format",	required_argument,	NULL, 'f' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 }
	};
	enum cmd_format			 format = CMD_FORMAT_TABLE;
	struct cmd_pids			 pids = { NULL, 0, 0 };
	const char			*services[CMD_PS_MAX_SERVICES];
	size_t				 nservices = 0, i;
	struct client			 c;
	const msgpack_object		*body;
	msgpack_packer			*pk;
	const char			*err;
	int				 ch, flat = 0, ret = CMD_EXIT_USAGE;

	while ((ch = getopt_long(argc, argv, "p:S:f:h", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'p':
			if (cmd_pids_add(&pids, optarg, &err) != 0) {
				cmd_usage_error(self, "--pid '%s': %s", optarg,
				    err);
				goto done;
			}
			break;
		case 'S':
			if (nservices == CMD_PS_MAX_SERVICES) {
				cmd_usage_error(self, "too many --service");
				goto done;
			}
			services[nservices++] = optarg;
			break;
		case 'F':
			flat = 1;
			break;
		case 'f':
			if (cmd_parse_format(optarg, 0, &format) != 0) {
				cmd_usage_error(self, "--format '%s': use "
				    "table or json", optarg);
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
	ret = CMD_EXIT_ERROR;
	if (client_init(&c, ctx->rundir) != 0)
		goto out;
	pk = client_begin(&c, "ps", (pids.n > 0) + (nservices > 0));
	if (pids.n > 0)
		cmd_pack_pids(pk, &pids);
	if (nservices > 0) {
		proto_pack_cstr(pk, "services");
		msgpack_pack_array(pk, nservices);
		for (i = 0; i < nservices; i++)
			proto_pack_cstr(pk, services[i]);
	}
	if (client_call(&c, &body) != 0)
		goto out;
	if (format == CMD_FORMAT_JSON) {
		json_write(stdout, body, 1);
		putchar('\n');
	} else if (cmd_ps_table(body, flat) != 0) {
		fprintf(stderr, "profctl: out of memory\n");
		goto out;
	}
	ret = CMD_EXIT_OK;
out:
	client_free(&c);
done:
	cmd_pids_free(&pids);
	return (ret);
}
