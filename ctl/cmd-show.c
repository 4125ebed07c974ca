/*
 * cmd-show.c -- `profctl show`: every view of the merged profile.  The
 * filters and the view go to profd, which runs the query and replies rows
 * (printed here as a table or JSON) or an encoded stack format (written
 * out as is).  `profctl flamegraph` is this command with --format svg.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "cmd.h"
#include "json.h"
#include "proto.h"
#include "render.h"
#include "units.h"

#define CMD_SHOW_TOP_MAX	UINT32_MAX	/* largest --top */
#define CMD_SHOW_MAX_FILTERS	256	/* --service / --thread values */
#define CMD_SHOW_TIMEOUT_MS	60000	/* a big query over a week */

static int	cmd_show_exec(const struct cmd_entry *,
		    const struct cmd_ctx *, int, char **);

#define CMD_SHOW_STR(x)		#x
#define CMD_SHOW_XSTR(x)	CMD_SHOW_STR(x)

#define CMD_SHOW_FILTER_HELP						\
	"  -s, --since TIME   samples from TIME on: a time ago (30s, 5m, "	\
	"2h, 1d)\n"							\
	"                     or ISO 8601 (2026-11-30T14:05, ...Z, "	\
	"...+01:00)\n"							\
	"  -u, --until TIME   samples before TIME (same forms; default: "	\
	"now)\n"							\
	"  -p, --pid PID      only this process (repeatable; an unknown "	\
	"pid is an\n"							\
	"                     error: see 'profctl ps')\n"		\
	"  -S, --service NAME only processes of this service (repeatable)\n" \
	"  -t, --thread GLOB  only threads whose name matches (repeatable; "	\
	"'worker-*')\n"							\
	"      --oncpu        only samples whose thread was running on a CPU\n" \
	"      --mode MODE    only samples taken in mode wall, cpu or gil\n"

const struct cmd_entry cmd_show_entry = {
	.name = "show",
	.usage = "[filters] [--by VIEW | --tree | --diff ...] "
	    "[--format FMT] [-o FILE]",
	.summary = "show the merged profile: tables, trees, diffs, stack "
	    "formats",
	.help =
	    "filters (every view takes them):\n"
	    CMD_SHOW_FILTER_HELP
	    "views:\n"
	    "  -b, --by VIEW      rows by function (default), line (the "
	    "executing line),\n"
	    "                     file, thread, process or service: SELF = "
	    "samples where\n"
	    "                     it is the leaf, TOTAL = samples where it is "
	    "on the\n"
	    "                     stack (recursion counts once); a prefix "
	    "only one view\n"
	    "                     has will do (func, proc)\n"
	    "      --tree         the call tree by function, heaviest child "
	    "first\n"
	    "      --depth N      tree: at most N levels (default: all)\n"
	    "      --min-percent P  tree: leave out nodes under P% of the "
	    "samples\n"
	    "                     (default 0.5)\n"
	    "      --diff         compare with a baseline, per function, "
	    "sorted by the\n"
	    "                     change of SELF%; the baseline is this query "
	    "with what\n"
	    "                     the --base-* options replace:\n"
	    "      --base-since TIME, --base-until TIME, --base-pid PID,\n"
	    "      --base-service NAME, --base-thread GLOB\n"
	    "output:\n"
	    "  -n, --top N        table/json: the first N rows (default "
	    CMD_SHOW_XSTR(CMD_SHOW_TOP_DEFAULT) " for a table,\n"
	    "                     all for json); stack formats: the N "
	    "heaviest stacks;\n"
	    "                     0 = all; refused with --tree\n"
	    "  -f, --format FMT   table (default), json, folded (root;...;leaf "
	    "COUNT),\n"
	    "                     speedscope (JSON for speedscope.app), pprof "
	    "(gzipped\n"
	    "                     protobuf for go tool pprof), svg (an "
	    "interactive flame\n"
	    "                     graph for a browser)\n"
	    "  -w, --weight W     samples (default) or time: what table "
	    "percentages,\n"
	    "                     folded counts, svg widths and speedscope "
	    "weights\n"
	    "                     measure (time: wall or CPU microseconds "
	    "per the mode)\n"
	    "      --root WHAT    folded: add a root frame per pid or thread "
	    "(repeatable)\n"
	    "  -o, --output FILE  write to FILE instead of stdout (pprof needs "
	    "it on a\n"
	    "                     terminal)\n",
	.exec = cmd_show_exec,
};

/* What the command line asked. */
struct cmd_show_opts {
	uint64_t	 since_ns, until_ns;
	int		 since_set, until_set;
	struct cmd_pids	 pids;
	const char	*services[CMD_SHOW_MAX_FILTERS];
	size_t		 nservices;
	const char	*threads[CMD_SHOW_MAX_FILTERS];
	size_t		 nthreads;
	int		 oncpu;
	const char	*mode;
	const char	*by;
	int		 tree;
	uint64_t	 depth;
	int		 depth_set;
	uint64_t	 min_permille;
	int		 min_set;
	int		 diff;
	uint64_t	 base_since_ns, base_until_ns;
	int		 base_since_set, base_until_set;
	struct cmd_pids	 base_pids;
	const char	*base_services[CMD_SHOW_MAX_FILTERS];
	size_t		 nbase_services;
	const char	*base_threads[CMD_SHOW_MAX_FILTERS];
	size_t		 nbase_threads;
	uint64_t	 top;
	int		 top_set;
	int		 one_more;	/* ask top + 1 rows: were there more? */
	const char	*format;	/* table, json or a stack format */
	int		 time_weight;
	int		 root_pid, root_thread;
	const char	*output;
};

/* Gets a double (or an integer) from a map object. */
static double
cmd_show_double(const msgpack_object *o, const char *key)
{
	const msgpack_object	*v;

	if (o == NULL || o->type != MSGPACK_OBJECT_MAP ||
	    (v = proto_map_get(&o->via.map, key)) == NULL)
		return (0);
	if (v->type == MSGPACK_OBJECT_FLOAT64 ||
	    v->type == MSGPACK_OBJECT_FLOAT32)
		return (v->via.f64);
	if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		return ((double)v->via.u64);
	if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return ((double)v->via.i64);
	return (0);
}

/* Gets an array from a map object, NULL when absent. */
static const msgpack_object *
cmd_show_array(const msgpack_object *o, const char *key)
{
	const msgpack_object	*a;

	if (o == NULL || o->type != MSGPACK_OBJECT_MAP)
		return (NULL);
	a = proto_map_get(&o->via.map, key);
	if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY)
		return (NULL);
	return (a);
}

/* Formats microseconds as seconds with three decimals. */
static void
cmd_show_seconds(char *buf, size_t len, uint64_t us)
{
	snprintf(buf, len, "%" PRIu64 ".%03" PRIu64 "s", us / 1000000,
	    us % 1000000 / 1000);
}

/* Formats a value: a count, or a time in seconds. */
static void
cmd_show_value(char *buf, size_t len, uint64_t v, int time_weight)
{
	if (time_weight)
		cmd_show_seconds(buf, len, v);
	else
		snprintf(buf, len, "%" PRIu64, v);
}

/* Formats a wall-clock time as local "YYYY-mm-dd HH:MM:SS". */
static void
cmd_show_clock(char *buf, size_t len, uint64_t ns)
{
	struct tm	tm;
	time_t		t = (time_t)(ns / 1000000000u);

	if (ns == 0 || localtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "-");
		return;
	}
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

/* The label of a row's function, file and line, cleaned. */
static char *
cmd_show_label(const msgpack_object *row)
{
	char	name[PROTO_MAX_STRING + 1], file[PROTO_MAX_STRING + 1];
	char	*label;

	cmd_obj_str(row, "function", name, sizeof name);
	cmd_obj_str(row, "file", file, sizeof file);
	label = render_frame_label(name, strlen(name), file, strlen(file),
	    cmd_obj_uint(row, "line"));
	if (label != NULL)
		render_clean(label, 0);
	return (label);
}

/* Adds a row whose last cell is `label` (taken: freed here, even when
 * NULL is passed for an allocation that failed); -1 when out of memory. */
static int
cmd_show_add_row(struct render_table *t, const char **cells, size_t n,
    char *label)
{
	int	rc;

	if (label == NULL)
		return (-1);
	cells[n - 1] = label;
	rc = render_table_add(t, cells);
	free(label);
	return (rc);
}

/* Prints a finished table and frees it. */
static int
cmd_show_print(struct render_table *t)
{
	render_table_print(t, stdout, render_width(stdout));
	render_table_free(t);
	return (0);
}

/* Prints the line above every table: samples, processes, window. */
static void
cmd_show_summary(const msgpack_object *body)
{
	const msgpack_object	*procs = cmd_show_array(body, "processes");
	uint64_t		 samples = cmd_obj_uint(body, "samples");
	uint64_t		 nprocs = procs ? procs->via.array.size : 0;
	char			 from[32], to[32];

	cmd_show_clock(from, sizeof from, cmd_obj_uint(body, "from_ns"));
	cmd_show_clock(to, sizeof to, cmd_obj_uint(body, "to_ns"));
	if (procs == NULL)
		printf("%" PRIu64 " %s, %s to %s\n", samples,
		    cmd_plural(samples, "sample", "samples"), from, to);
	else
		printf("%" PRIu64 " %s from %" PRIu64 " %s, %s to %s\n",
		    samples, cmd_plural(samples, "sample", "samples"), nprocs,
		    cmd_plural(nprocs, "process", "processes"), from, to);
}

/*
 * Prints profd's warnings of a reply (a window, or a diff's baseline, too
 * many of whose stacks were unreadable) to f, each line after prefix;
 * nothing from a profd that does not send them.
 */
static void
cmd_show_warnings(const msgpack_object *body, FILE *f, const char *prefix)
{
	static const char *const keys[] = { "warning", "base_warning" };
	char			 line[512];
	size_t			 i;

	for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if (cmd_obj_str(body, keys[i], line, sizeof line)[0] == '\0')
			continue;
		fprintf(f, "%s%s\n", prefix, line);
	}
}

/* Prints the rows of a function, line or file view. */
static int
cmd_show_table_frames(const msgpack_object *body, const char *key,
    const struct cmd_show_opts *o)
{
	static const char *const headers[] = {
		"SELF%", "SELF", "TOTAL%", "TOTAL", "FUNCTION (FILE:LINE)"
	};
	static const char *const line_headers[] = {
		"SELF%", "SELF", "TOTAL%", "TOTAL", "LINE: FUNCTION (FILE:LINE)"
	};
	static const char *const file_headers[] = {
		"SELF%", "SELF", "TOTAL%", "TOTAL", "FILE"
	};
	const msgpack_object	*rows = cmd_show_array(body, key), *r;
	struct render_table	*t;
	const char		*cells[5];
	char			 sp[16], s[32], tp[16], tt[32], file[4096];
	char			*label;
	uint64_t		 whole, self, total;
	uint32_t		 i;
	int			 files = strcmp(key, "files") == 0;

	whole = cmd_obj_uint(body, o->time_weight ? "weight_us" : "samples");
	if ((t = render_table_create(5, files ? file_headers :
	    strcmp(key, "lines") == 0 ? line_headers : headers, "rrrrl")) ==
	    NULL)
		return (-1);
	for (i = 0; rows != NULL && i < rows->via.array.size; i++) {
		r = &rows->via.array.ptr[i];
		self = cmd_obj_uint(r, o->time_weight ? "self_us" : "self");
		total = cmd_obj_uint(r, o->time_weight ? "total_us" :
		    "total");
		render_percent(sp, sizeof sp, self, whole);
		cmd_show_value(s, sizeof s, self, o->time_weight);
		render_percent(tp, sizeof tp, total, whole);
		cmd_show_value(tt, sizeof tt, total, o->time_weight);
		if (files)
			label = strdup(cmd_obj_str(r, "file", file,
			    sizeof file));
		else
			label = cmd_show_label(r);
		cells[0] = sp;
		cells[1] = s;
		cells[2] = tp;
		cells[3] = tt;
		if (cmd_show_add_row(t, cells, 5, label) != 0)
			goto fail;
	}
	return (cmd_show_print(t));
fail:
	render_table_free(t);
	return (-1);
}

/* Prints the rows of a thread, process or service view. */
static int
cmd_show_table_owners(const msgpack_object *body, const char *key,
    const struct cmd_show_opts *o)
{
	const msgpack_object	*rows = cmd_show_array(body, key), *r;
	struct render_table	*t;
	const char		*cells[6];
	char			 p[16], v[32], a[64], b[64], c[256], d[1024];
	uint64_t		 whole, x;
	uint32_t		 i;
	int			 kind = key[0];	/* t, p or s */
	const char		*th[6] = { "%", "SAMPLES", "PID", "TID",
				    "SERVICE", "THREAD" };
	const char		*ph[6] = { "%", "SAMPLES", "PID", "PPID",
				    "SERVICE", "CMD" };
	const char		*sh[3] = { "%", "SAMPLES", "SERVICE" };

	whole = cmd_obj_uint(body, o->time_weight ? "weight_us" : "samples");
	if (o->time_weight)
		th[1] = ph[1] = sh[1] = "TIME";
	if (kind == 't')
		t = render_table_create(6, th, "rrrrll");
	else if (kind == 'p')
		t = render_table_create(6, ph, "rrrrll");
	else
		t = render_table_create(3, sh, "rrl");
	if (t == NULL)
		return (-1);
	for (i = 0; rows != NULL && i < rows->via.array.size; i++) {
		r = &rows->via.array.ptr[i];
		x = cmd_obj_uint(r, o->time_weight ? "self_us" : "self");
		render_percent(p, sizeof p, x, whole);
		cmd_show_value(v, sizeof v, x, o->time_weight);
		cells[0] = p;
		cells[1] = v;
		if (kind == 't') {
			snprintf(a, sizeof a, "%" PRIu64, cmd_obj_uint(r,
			    "pid"));
			snprintf(b, sizeof b, "%" PRIu64, cmd_obj_uint(r,
			    "tid"));
			cells[2] = a;
			cells[3] = b;
			cells[4] = cmd_obj_str(r, "service", c, sizeof c);
			cells[5] = cmd_obj_str(r, "thread", d, sizeof d);
		} else if (kind == 'p') {
			snprintf(a, sizeof a, "%" PRIu64, cmd_obj_uint(r,
			    "pid"));
			snprintf(b, sizeof b, "%" PRIu64, cmd_obj_uint(r,
			    "ppid"));
			cells[2] = a;
			cells[3] = b;
			cells[4] = cmd_obj_str(r, "service", c, sizeof c);
			if (cmd_show_add_row(t, cells, 6, render_argv(
			    proto_map_get(&r->via.map, "argv"))) != 0) {
				render_table_free(t);
				return (-1);
			}
			continue;
		} else
			cells[2] = cmd_obj_str(r, "service", c, sizeof c);
		if (render_table_add(t, cells) != 0) {
			render_table_free(t);
			return (-1);
		}
	}
	return (cmd_show_print(t));
}

/* Prints the call tree, indented by depth. */
static int
cmd_show_table_tree(const msgpack_object *body, const struct cmd_show_opts *o)
{
	const msgpack_object	*rows = cmd_show_array(body, "tree"), *r;
	struct render_table	*t;
	const char		*cells[3];
	char			 tp[16], sp[16], *label, *line;
	uint64_t		 whole, depth;
	uint32_t		 i;

	static const char *const headers[] = {
		"TOTAL%", "SELF%", "FUNCTION (FILE:LINE)"
	};

	whole = cmd_obj_uint(body, o->time_weight ? "weight_us" : "samples");
	t = render_table_create(3, headers, "rrl");
	if (t == NULL)
		return (-1);
	for (i = 0; rows != NULL && i < rows->via.array.size; i++) {
		r = &rows->via.array.ptr[i];
		render_percent(tp, sizeof tp, cmd_obj_uint(r,
		    o->time_weight ? "total_us" : "total"), whole);
		render_percent(sp, sizeof sp, cmd_obj_uint(r,
		    o->time_weight ? "self_us" : "self"), whole);
		depth = cmd_obj_uint(r, "depth");
		if ((label = cmd_show_label(r)) == NULL)
			goto fail;
		if (asprintf(&line, "%*s%s", (int)(depth > 64 ? 64 : depth) *
		    2, "", label) < 0) {
			free(label);
			goto fail;
		}
		free(label);
		cells[0] = tp;
		cells[1] = sp;
		if (cmd_show_add_row(t, cells, 3, line) != 0)
			goto fail;
	}
	return (cmd_show_print(t));
fail:
	render_table_free(t);
	return (-1);
}

/* Prints a diff: baseline and current SELF% per function. */
static int
cmd_show_table_diff(const msgpack_object *body)
{
	const msgpack_object	*rows = cmd_show_array(body, "functions"), *r;
	struct render_table	*t;
	const char		*cells[4];
	char			 b[16], n[16], d[16];
	char			 bf[32], bt[32], nf[32], nt[32];
	uint32_t		 i;

	static const char *const headers[] = {
		"BASE%", "NOW%", "CHANGE", "FUNCTION (FILE:LINE)"
	};

	cmd_show_clock(bf, sizeof bf, cmd_obj_uint(body, "base_from_ns"));
	cmd_show_clock(bt, sizeof bt, cmd_obj_uint(body, "base_to_ns"));
	cmd_show_clock(nf, sizeof nf, cmd_obj_uint(body, "from_ns"));
	cmd_show_clock(nt, sizeof nt, cmd_obj_uint(body, "to_ns"));
	printf("baseline: %" PRIu64 " samples, %s to %s\n"
	    "now:      %" PRIu64 " samples, %s to %s\n",
	    cmd_obj_uint(body, "base_samples"), bf, bt,
	    cmd_obj_uint(body, "samples"), nf, nt);
	t = render_table_create(4, headers, "rrrl");
	if (t == NULL)
		return (-1);
	for (i = 0; rows != NULL && i < rows->via.array.size; i++) {
		r = &rows->via.array.ptr[i];
		snprintf(b, sizeof b, "%.1f%%", cmd_show_double(r,
		    "base_self_pct"));
		snprintf(n, sizeof n, "%.1f%%", cmd_show_double(r, "self_pct"));
		snprintf(d, sizeof d, "%+.1f", cmd_show_double(r,
		    "delta_pct"));
		cells[0] = b;
		cells[1] = n;
		cells[2] = d;
		if (cmd_show_add_row(t, cells, 4, cmd_show_label(r)) != 0)
			goto fail;
	}
	return (cmd_show_print(t));
fail:
	render_table_free(t);
	return (-1);
}

/* The view --by names: a view's name or a prefix that only it has (func,
 * proc, svc for service too); NULL if none or ambiguous. */
static const char *
cmd_show_by(const char *s)
{
	static const char *const views[] = {
		"function", "line", "file", "thread", "process", "service"
	};
	const char	*found = NULL;
	size_t		 i, n = strlen(s);

	if (strcmp(s, "svc") == 0)
		return ("service");
	for (i = 0; n > 0 && i < sizeof views / sizeof views[0]; i++) {
		if (strncmp(s, views[i], n) != 0)
			continue;
		if (found != NULL)
			return (NULL);
		found = views[i];
	}
	return (found);
}

/* The key of a view's rows in a reply. */
static const char *
cmd_show_rows_key(const char *view)
{
	static const char *const keys[][2] = {
		{ "diff", "functions" }, { "function", "functions" },
		{ "line", "lines" }, { "file", "files" },
		{ "thread", "threads" }, { "process", "processes" },
		{ "service", "services" },
	};
	size_t	i;

	for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strcmp(view, keys[i][0]) == 0)
			return (keys[i][1]);
	return (NULL);
}

/*
 * Prints a rows reply as a table: 0, 1 when the window has no samples
 * (nothing printed: cmd_show_why_empty says why), -1 on error.  Asked for
 * one row more than --top (one_more), it prints --top and says there are
 * more only when there are.
 */
static int
cmd_show_table(const msgpack_object *body, const struct cmd_show_opts *o)
{
	msgpack_object	*rows;
	const char	*key;
	char		 view[32];
	int		 rc, more = 0;

	cmd_obj_str(body, "view", view, sizeof view);
	if (cmd_obj_uint(body, "samples") == 0 && !o->diff) {
		cmd_show_warnings(body, stderr, "profctl: ");
		return (1);
	}
	if (o->top != 0 && !o->tree && (key = cmd_show_rows_key(view)) !=
	    NULL && (rows = (msgpack_object *)cmd_show_array(body, key)) !=
	    NULL && rows->via.array.size > o->top) {
		/* The reply is ours to trim. */
		rows->via.array.size = (uint32_t)o->top;
		more = 1;
	}
	if (strcmp(view, "diff") != 0)
		cmd_show_summary(body);
	cmd_show_warnings(body, stdout, "");
	if (strcmp(view, "tree") == 0)
		rc = cmd_show_table_tree(body, o);
	else if (strcmp(view, "diff") == 0)
		rc = cmd_show_table_diff(body);
	else if (strcmp(view, "function") == 0)
		rc = cmd_show_table_frames(body, "functions", o);
	else if (strcmp(view, "line") == 0)
		rc = cmd_show_table_frames(body, "lines", o);
	else if (strcmp(view, "file") == 0)
		rc = cmd_show_table_frames(body, "files", o);
	else if (strcmp(view, "thread") == 0)
		rc = cmd_show_table_owners(body, "threads", o);
	else if (strcmp(view, "process") == 0)
		rc = cmd_show_table_owners(body, "processes", o);
	else
		rc = cmd_show_table_owners(body, "services", o);
	if (rc != 0) {
		fprintf(stderr, "profctl: out of memory\n");
		return (-1);
	}
	if (more || (o->top != 0 && !o->tree && !o->one_more))
		printf("(first %" PRIu64 " rows; --top 0 shows all)\n", o->top);
	return (0);
}

/*
 * Says on stderr why a window has no samples, from profd's state: off,
 * on in another mode than --mode asked, or on with nothing matching.
 */
static void
cmd_show_why_empty(const struct cmd_ctx *ctx, const struct cmd_show_opts *o)
{
	struct client		 c;
	const msgpack_object	*body, *v;
	char			 mode[16];
	int			 profiling = -1;

	mode[0] = '\0';
	if (client_init(&c, ctx->rundir) == 0) {
		client_begin(&c, "status", 0);
		if (client_call(&c, &body) == 0 &&
		    body->type == MSGPACK_OBJECT_MAP &&
		    (v = proto_map_get(&body->via.map, "profiling")) != NULL &&
		    v->type == MSGPACK_OBJECT_BOOLEAN) {
			profiling = v->via.boolean;
			cmd_obj_str(body, "mode", mode, sizeof mode);
		}
		client_free(&c);
	}
	if (profiling == 0)
		fprintf(stderr, "profctl: no samples in this window: profiling "
		    "is off; 'profctl start' turns it on\n");
	else if (profiling == 1 && o->mode != NULL && mode[0] != '\0' &&
	    strcmp(o->mode, mode) != 0)
		fprintf(stderr, "profctl: no %s-mode samples in this window: "
		    "profiling is on in %s mode; drop --mode %s, or 'profctl "
		    "start --mode %s' to sample in that mode\n", o->mode, mode,
		    o->mode, o->mode);
	else
		fprintf(stderr, "profctl: no samples in this window match%s: "
		    "widen it (--since) or drop filters; 'profctl status' "
		    "lists the attached processes\n", profiling == 1 ?
		    " (profiling is on)" : "");
}

/* Writes bytes to the output file or stdout. */
static int
cmd_show_write(const struct cmd_show_opts *o, const void *data, size_t len)
{
	FILE	*f = stdout;

	if (o->output != NULL && strcmp(o->output, "-") != 0 &&
	    (f = fopen(o->output, "w")) == NULL) {
		fprintf(stderr, "profctl: cannot write %s: %s\n", o->output,
		    strerror(errno));
		return (-1);
	}
	if (len > 0 && fwrite(data, 1, len, f) != len) {
		fprintf(stderr, "profctl: writing %s: %s\n", o->output ?
		    o->output : "stdout", strerror(errno));
		if (f != stdout)
			fclose(f);
		return (-1);
	}
	if (f != stdout) {
		if (fclose(f) != 0) {
			fprintf(stderr, "profctl: writing %s: %s\n", o->output,
			    strerror(errno));
			return (-1);
		}
	} else
		fflush(stdout);
	return (0);
}

/* Writes a stack format's bytes from the reply. */
static int
cmd_show_stacks(const msgpack_object *body, const struct cmd_show_opts *o)
{
	const msgpack_object	*data;
	uint64_t		 samples = cmd_obj_uint(body, "samples");

	data = proto_map_get(&body->via.map, "data");
	if (data == NULL || (data->type != MSGPACK_OBJECT_BIN &&
	    data->type != MSGPACK_OBJECT_STR)) {
		fprintf(stderr, "profctl: profd's reply has no data\n");
		return (-1);
	}
	if (samples == 0)
		fprintf(stderr, "profctl: no samples in this window: is "
		    "profiling on? try 'profctl start'\n");
	cmd_show_warnings(body, stderr, "profctl: ");
	if (cmd_show_write(o, data->via.bin.ptr, data->via.bin.size) != 0)
		return (-1);
	if (o->output != NULL && strcmp(o->output, "-") != 0)
		fprintf(stderr, "profctl: wrote %s (%s, %" PRIu64 " samples, "
		    "%" PRIu64 " stacks)\n", o->output, o->format, samples,
		    cmd_obj_uint(body, "stacks"));
	return (0);
}

/* Adds a string to a fixed list of filters. */
static int
cmd_show_add(const char **v, size_t *n, const char *s)
{
	if (*n == CMD_SHOW_MAX_FILTERS || *s == '\0')
		return (-1);
	v[(*n)++] = s;
	return (0);
}

/* Packs a list of strings. */
static void
cmd_show_pack_strs(msgpack_packer *pk, const char *key, const char **v,
    size_t n)
{
	size_t	i;

	proto_pack_cstr(pk, key);
	msgpack_pack_array(pk, n);
	for (i = 0; i < n; i++)
		proto_pack_cstr(pk, v[i]);
}

/* Packs the request's arguments. */
static void
cmd_show_pack(struct client *c, const struct cmd_show_opts *o,
    const char *format)
{
	msgpack_packer	*pk;
	size_t		 n = 0, nb = 0;

	n += o->since_set + o->until_set + (o->pids.n > 0) +
	    (o->nservices > 0) + (o->nthreads > 0) + o->oncpu +
	    (o->mode != NULL) + (o->by != NULL) + o->tree + o->depth_set +
	    o->min_set + o->diff + 1 + 1 + 1 + o->root_pid + o->root_thread;
	pk = client_begin(c, "show", n);
	if (o->since_set) {
		proto_pack_cstr(pk, "since_ns");
		msgpack_pack_uint64(pk, o->since_ns);
	}
	if (o->until_set) {
		proto_pack_cstr(pk, "until_ns");
		msgpack_pack_uint64(pk, o->until_ns);
	}
	if (o->pids.n > 0)
		cmd_pack_pids(pk, &o->pids);
	if (o->nservices > 0)
		cmd_show_pack_strs(pk, "services", (const char **)o->services,
		    o->nservices);
	if (o->nthreads > 0)
		cmd_show_pack_strs(pk, "threads", (const char **)o->threads,
		    o->nthreads);
	if (o->oncpu) {
		proto_pack_cstr(pk, "oncpu");
		msgpack_pack_true(pk);
	}
	if (o->mode != NULL) {
		proto_pack_cstr(pk, "mode");
		proto_pack_cstr(pk, o->mode);
	}
	if (o->by != NULL) {
		proto_pack_cstr(pk, "by");
		proto_pack_cstr(pk, o->by);
	}
	if (o->tree) {
		proto_pack_cstr(pk, "tree");
		msgpack_pack_true(pk);
	}
	if (o->depth_set) {
		proto_pack_cstr(pk, "depth");
		msgpack_pack_uint64(pk, o->depth);
	}
	if (o->min_set) {
		proto_pack_cstr(pk, "min_permille");
		msgpack_pack_uint64(pk, o->min_permille);
	}
	if (o->diff) {
		nb = o->base_since_set + o->base_until_set +
		    (o->base_pids.n > 0) + (o->nbase_services > 0) +
		    (o->nbase_threads > 0);
		proto_pack_cstr(pk, "diff");
		msgpack_pack_map(pk, nb);
		if (o->base_since_set) {
			proto_pack_cstr(pk, "since_ns");
			msgpack_pack_uint64(pk, o->base_since_ns);
		}
		if (o->base_until_set) {
			proto_pack_cstr(pk, "until_ns");
			msgpack_pack_uint64(pk, o->base_until_ns);
		}
		if (o->base_pids.n > 0)
			cmd_pack_pids(pk, &o->base_pids);
		if (o->nbase_services > 0)
			cmd_show_pack_strs(pk, "services",
			    (const char **)o->base_services,
			    o->nbase_services);
		if (o->nbase_threads > 0)
			cmd_show_pack_strs(pk, "threads",
			    (const char **)o->base_threads, o->nbase_threads);
	}
	proto_pack_cstr(pk, "top");
	msgpack_pack_uint64(pk, o->top != 0 && o->one_more ? o->top + 1 :
	    o->top);
	proto_pack_cstr(pk, "format");
	proto_pack_cstr(pk, format);
	proto_pack_cstr(pk, "weight");
	proto_pack_cstr(pk, o->time_weight ? "time" : "samples");
	if (o->root_pid) {
		proto_pack_cstr(pk, "root_pid");
		msgpack_pack_true(pk);
	}
	if (o->root_thread) {
		proto_pack_cstr(pk, "root_thread");
		msgpack_pack_true(pk);
	}
}

enum {
	CMD_SHOW_OPT_ONCPU = 256,
	CMD_SHOW_OPT_MODE,
	CMD_SHOW_OPT_TREE,
	CMD_SHOW_OPT_DEPTH,
	CMD_SHOW_OPT_MIN,
	CMD_SHOW_OPT_DIFF,
	CMD_SHOW_OPT_BASE_SINCE,
	CMD_SHOW_OPT_BASE_UNTIL,
	CMD_SHOW_OPT_BASE_PID,
	CMD_SHOW_OPT_BASE_SERVICE,
	CMD_SHOW_OPT_BASE_THREAD,
	CMD_SHOW_OPT_ROOT,
};

/* Parses a time option; -1 after printing why. */
static int
cmd_show_time(const struct cmd_entry *self, const char *opt, const char *s,
    uint64_t *ns, int *set)
{
	struct timespec	ts;
	uint64_t	now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (units_time(s, now, ns) != 0) {
		cmd_usage_error(self, "%s '%s': give a time ago (30s, 5m, 2h, "
		    "1d) or ISO 8601 (2026-11-30T14:05:00Z)", opt, s);
		return (-1);
	}
	*set = 1;
	return (0);
}

/* Checks the combination of options; -1 after printing why. */
static int
cmd_show_check(const struct cmd_entry *self, struct cmd_show_opts *o)
{
	int	stackfmt;

	stackfmt = strcmp(o->format, "table") != 0 &&
	    strcmp(o->format, "json") != 0;
	if (o->tree && o->top_set) {
		cmd_usage_error(self, "--top does not apply to --tree; cut "
		    "the tree with --depth or --min-percent");
		return (-1);
	}
	if ((o->tree || o->diff) && stackfmt) {
		cmd_usage_error(self, "--tree and --diff print a table or "
		    "json, not --format %s", o->format);
		return (-1);
	}
	if (o->tree && o->diff) {
		cmd_usage_error(self, "--tree and --diff cannot be combined");
		return (-1);
	}
	if (o->by != NULL && (o->tree || o->diff || stackfmt)) {
		cmd_usage_error(self, "--by chooses the rows of a table or "
		    "json; it does not apply to %s", o->tree ? "--tree" :
		    o->diff ? "--diff" : o->format);
		return (-1);
	}
	if ((o->root_pid || o->root_thread) && strcmp(o->format,
	    "folded") != 0) {
		cmd_usage_error(self, "--root applies to --format folded "
		    "only");
		return (-1);
	}
	if ((o->depth_set || o->min_set) && !o->tree) {
		cmd_usage_error(self, "--depth and --min-percent apply to "
		    "--tree only");
		return (-1);
	}
	if (o->diff && !o->base_since_set && !o->base_until_set &&
	    o->base_pids.n == 0 && o->nbase_services == 0 &&
	    o->nbase_threads == 0) {
		cmd_usage_error(self, "--diff needs a baseline: --base-since/"
		    "--base-until, --base-pid, --base-service or "
		    "--base-thread");
		return (-1);
	}
	if (!o->diff && (o->base_since_set || o->base_until_set ||
	    o->base_pids.n > 0 || o->nbase_services > 0 ||
	    o->nbase_threads > 0)) {
		cmd_usage_error(self, "the --base-* options need --diff");
		return (-1);
	}
	if (strcmp(o->format, "pprof") == 0 && o->output == NULL &&
	    isatty(STDOUT_FILENO)) {
		cmd_usage_error(self, "pprof is binary: give -o FILE (or "
		    "redirect stdout)");
		return (-1);
	}
	return (0);
}

/* Asks profd for a view of the profile and prints it. */
static int
cmd_show_exec(const struct cmd_entry *self, const struct cmd_ctx *ctx,
    int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "top",	required_argument,	NULL, 'n' },
		{ "pid",	required_argument,	NULL, 'p' },
		{ "service",	required_argument,	NULL, 'S' },
		{ "thread",	required_argument,	NULL, 't' },
		{ "since",	required_argument,	NULL, 's' },
		{ "until",	required_argument,	NULL, 'u' },
		{ "oncpu",	no_argument,		NULL,
		    CMD_SHOW_OPT_ONCPU },
		{ "mode",	required_argument,	NULL, CMD_SHOW_OPT_MODE },
		{ "by",		required_argument,	NULL, 'b' },
		{ "tree",	no_argument,		NULL, CMD_SHOW_OPT_TREE },
		{ "depth",	required_argument,	NULL,
		    CMD_SHOW_OPT_DEPTH },
		{ "min-percent", required_argument,	NULL, CMD_SHOW_OPT_MIN },
		{ "diff",	no_argument,		NULL, CMD_SHOW_OPT_DIFF },
		{ "base-since",	required_argument,	NULL,
		    CMD_SHOW_OPT_BASE_SINCE },
		{ "base-until",	required_argument,	NULL,
		    CMD_SHOW_OPT_BASE_UNTIL },
		{ "base-pid",	required_argument,	NULL,
		    CMD_SHOW_OPT_BASE_PID },
		{ "base-service", required_argument,	NULL,
		    CMD_SHOW_OPT_BASE_SERVICE },
		{ "base-thread", required_argument,	NULL,
		    CMD_SHOW_OPT_BASE_THREAD },
		{ "format",	required_argument,	NULL, 'f' },
		{ "weight",	required_argument,	NULL, 'w' },
		{ "root",	required_argument,	NULL, CMD_SHOW_OPT_ROOT },
		{ "output",	required_argument,	NULL, 'o' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 }
	};
	static const char *const	 formats[] = {
		"table", "json", "folded", "speedscope", "pprof", "svg", NULL
	};
	struct cmd_show_opts		 o;
	struct client			 c;
	const msgpack_object		*body;
	const char			*err, *wire;
	double				 pct;
	char				*end;
	int				 ch, i, rc, ret = CMD_EXIT_USAGE;

	memset(&o, 0, sizeof o);
	o.format = "table";
	while ((ch = getopt_long(argc, argv, "n:p:S:t:s:u:b:f:w:o:h",
	    longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			if (cmd_parse_uint(optarg, 0, CMD_SHOW_TOP_MAX,
			    &o.top) != 0) {
				cmd_usage_error(self, "--top '%s': give a "
				    "number of rows (0 = all)", optarg);
				goto done;
			}
			o.top_set = 1;
			break;
		case 'p':
		case CMD_SHOW_OPT_BASE_PID:
			if (cmd_pids_add(ch == 'p' ? &o.pids : &o.base_pids,
			    optarg, &err) != 0) {
				cmd_usage_error(self, "--%s '%s': %s", ch ==
				    'p' ? "pid" : "base-pid", optarg, err);
				goto done;
			}
			break;
		case 'S':
		case CMD_SHOW_OPT_BASE_SERVICE:
			if ((ch == 'S' ? cmd_show_add(o.services,
			    &o.nservices, optarg) : cmd_show_add(
			    o.base_services, &o.nbase_services, optarg)) != 0) {
				cmd_usage_error(self, "--service: give a "
				    "non-empty name (at most %d)",
				    CMD_SHOW_MAX_FILTERS);
				goto done;
			}
			break;
		case 't':
		case CMD_SHOW_OPT_BASE_THREAD:
			if ((ch == 't' ? cmd_show_add(o.threads, &o.nthreads,
			    optarg) : cmd_show_add(o.base_threads,
			    &o.nbase_threads, optarg)) != 0) {
				cmd_usage_error(self, "--thread: give a "
				    "non-empty glob (at most %d)",
				    CMD_SHOW_MAX_FILTERS);
				goto done;
			}
			break;
		case 's':
			if (cmd_show_time(self, "--since", optarg, &o.since_ns,
			    &o.since_set) != 0)
				goto done;
			break;
		case 'u':
			if (cmd_show_time(self, "--until", optarg, &o.until_ns,
			    &o.until_set) != 0)
				goto done;
			break;
		case CMD_SHOW_OPT_BASE_SINCE:
			if (cmd_show_time(self, "--base-since", optarg,
			    &o.base_since_ns, &o.base_since_set) != 0)
				goto done;
			break;
		case CMD_SHOW_OPT_BASE_UNTIL:
			if (cmd_show_time(self, "--base-until", optarg,
			    &o.base_until_ns, &o.base_until_set) != 0)
				goto done;
			break;
		case CMD_SHOW_OPT_ONCPU:
			o.oncpu = 1;
			break;
		case CMD_SHOW_OPT_MODE:
			if (proto_mode_parse(optarg) < 0) {
				cmd_usage_error(self, "--mode '%s': use wall, "
				    "cpu or gil", optarg);
				goto done;
			}
			o.mode = optarg;
			break;
		case 'b':
			if ((o.by = cmd_show_by(optarg)) == NULL) {
				cmd_usage_error(self, "--by '%s': use "
				    "function, line, file, thread, process or "
				    "service (or a prefix: func, proc...)",
				    optarg);
				goto done;
			}
			break;
		case CMD_SHOW_OPT_TREE:
			o.tree = 1;
			break;
		case CMD_SHOW_OPT_DEPTH:
			if (cmd_parse_uint(optarg, 1, PROTO_MAX_DEPTH,
			    &o.depth) != 0) {
				cmd_usage_error(self, "--depth '%s': give 1 to "
				    "%d", optarg, PROTO_MAX_DEPTH);
				goto done;
			}
			o.depth_set = 1;
			break;
		case CMD_SHOW_OPT_MIN:
			errno = 0;
			pct = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    pct < 0 || pct > 100) {
				cmd_usage_error(self, "--min-percent '%s': "
				    "give 0 to 100", optarg);
				goto done;
			}
			o.min_permille = (uint64_t)(pct * 10 + 0.5);
			o.min_set = 1;
			break;
		case CMD_SHOW_OPT_DIFF:
			o.diff = 1;
			break;
		case 'f':
			for (i = 0; formats[i] != NULL &&
			    strcmp(formats[i], optarg) != 0; i++)
				;
			if (formats[i] == NULL) {
				cmd_usage_error(self, "--format '%s': use "
				    "table, json, folded, speedscope, pprof or "
				    "svg", optarg);
				goto done;
			}
			o.format = formats[i];
			break;
		case 'w':
			if (strcmp(optarg, "samples") != 0 &&
			    strcmp(optarg, "time") != 0) {
				cmd_usage_error(self, "--weight '%s': use "
				    "samples or time", optarg);
				goto done;
			}
			o.time_weight = strcmp(optarg, "time") == 0;
			break;
		case CMD_SHOW_OPT_ROOT:
			if (strcmp(optarg, "pid") == 0)
				o.root_pid = 1;
			else if (strcmp(optarg, "thread") == 0)
				o.root_thread = 1;
			else {
				cmd_usage_error(self, "--root '%s': use pid or "
				    "thread", optarg);
				goto done;
			}
			break;
		case 'o':
			o.output = optarg;
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
	if (cmd_show_check(self, &o) != 0)
		goto done;
	if (!o.top_set && strcmp(o.format, "table") == 0 && !o.tree)
		o.top = CMD_SHOW_TOP_DEFAULT;
	o.one_more = strcmp(o.format, "table") == 0 && !o.tree &&
	    o.top < UINT64_MAX;

	ret = CMD_EXIT_ERROR;
	if (client_init(&c, ctx->rundir) != 0)
		goto out;
	c.timeout_ms = CMD_SHOW_TIMEOUT_MS;
	wire = strcmp(o.format, "table") == 0 || strcmp(o.format,
	    "json") == 0 ? "rows" : o.format;
	cmd_show_pack(&c, &o, wire);
	if (client_call(&c, &body) != 0)
		goto out;
	if (strcmp(o.format, "json") == 0) {
		if (o.output != NULL && strcmp(o.output, "-") != 0 &&
		    freopen(o.output, "w", stdout) == NULL) {
			fprintf(stderr, "profctl: cannot write %s: %s\n",
			    o.output, strerror(errno));
			goto out;
		}
		json_write(stdout, body, 1);
		putchar('\n');
		fflush(stdout);
		cmd_show_warnings(body, stderr, "profctl: ");
	} else if (strcmp(o.format, "table") == 0) {
		if (o.output != NULL && strcmp(o.output, "-") != 0 &&
		    freopen(o.output, "w", stdout) == NULL) {
			fprintf(stderr, "profctl: cannot write %s: %s\n",
			    o.output, strerror(errno));
			goto out;
		}
		if ((rc = cmd_show_table(body, &o)) < 0)
			goto out;
		if (rc > 0) {
			cmd_show_why_empty(ctx, &o);
			goto out;
		}
	} else if (cmd_show_stacks(body, &o) != 0)
		goto out;
	ret = CMD_EXIT_OK;
out:
	client_free(&c);
done:
	cmd_pids_free(&o.pids);
	cmd_pids_free(&o.base_pids);
	return (ret);
}
