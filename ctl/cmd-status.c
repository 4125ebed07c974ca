/* cmd-status.c -- `profctl status`: profd, its agents, rates and drops. */

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

#define CMD_STATUS_FIELD	128	/* bytes of one short text field */

static int	cmd_status_exec(const struct cmd_entry *,
		    const struct cmd_ctx *, int, char **);

const struct cmd_entry cmd_status_entry = {
	.name = "status",
	.usage = "[--format table|json]",
	.summary = "show profd and its agents: rates, samples, drops",
	.help =
	    "  -f, --format FMT   table (default): a summary line and one row "
	    "per agent:\n"
	    "                     PPID its parent, MODE and READER those in "
	    "effect,\n"
	    "                     RATE is asked/achieved Hz, REASON why the "
	    "rate in\n"
	    "                     force is what it is (asked; budget: "
	    "lowered to stay\n"
	    "                     under the CPU budget; late: ticks missed), "
	    "BUDGET the\n"
	    "                     agent's CPU budget (start's max overhead), "
	    "CPU/SAMPLE\n"
	    "                     the sampler thread's CPU time per captured "
	    "stack,\n"
	    "                     STATE gone for processes that exited or "
	    "lost their\n"
	    "                     connection;\n"
	    "                     json: the full status reply as one JSON "
	    "object\n",
	.exec = cmd_status_exec,
};

static const char *const cmd_status_headers[] = {
	"PID", "PPID", "SERVICE", "PYTHON", "STATE", "PROFILING", "MODE",
	"READER", "RATE", "REASON", "BUDGET", "SAMPLES", "DROPPED", "INVALID",
	"CPU/SAMPLE", "CMD"
};
#define CMD_STATUS_NCOLS \
	(sizeof cmd_status_headers / sizeof cmd_status_headers[0])
static const char cmd_status_align[] = "rrllllllrlrrrrrl";

/* Gets an uint from a map, 0 when absent. */
static uint64_t
cmd_status_uint(const msgpack_object_map *m, const char *key)
{
	uint64_t	v;

	if (m == NULL || proto_map_uint(m, key, &v) != 0)
		return (0);
	return (v);
}

static void	cmd_status_str(const msgpack_object_map *, const char *,
		    char *, size_t, const char *);

/* Prints the store's line: what it holds, its bounds, where it lives. */
static void
cmd_status_store(const msgpack_object_map *m)
{
	const msgpack_object	*o = proto_map_get(m, "store");
	const msgpack_object	*d = proto_map_get(m, "daemon");
	const msgpack_object_map *st, *dm;
	char			 dir[CMD_STATUS_FIELD], ret[32], age[32];
	uint64_t		 oldest, now;

	if (o == NULL || o->type != MSGPACK_OBJECT_MAP || d == NULL ||
	    d->type != MSGPACK_OBJECT_MAP)
		return;
	st = &o->via.map;
	dm = &d->via.map;
	cmd_status_str(st, "state_dir", dir, sizeof dir, "");
	render_duration(ret, sizeof ret, cmd_status_uint(st, "retention_s"));
	oldest = cmd_status_uint(st, "oldest_ns");
	now = (uint64_t)time(NULL);
	if (oldest != 0 && oldest / 1000000000u <= now)
		render_duration(age, sizeof age, now - oldest / 1000000000u);
	else
		snprintf(age, sizeof age, "-");
	printf("store: %" PRIu64 " buckets (oldest %s ago, retention %s), "
	    "%.1f of %.1f MiB, %s; samples stored %" PRIu64 ", expired "
	    "%" PRIu64 ", evicted %" PRIu64 "\n",
	    cmd_status_uint(st, "buckets"), age, ret,
	    cmd_status_uint(st, "bytes") / 1048576.0,
	    cmd_status_uint(st, "max_bytes") / 1048576.0,
	    dir[0] != '\0' ? dir : "memory only",
	    cmd_status_uint(dm, "samples_stored"),
	    cmd_status_uint(dm, "expired_samples"),
	    cmd_status_uint(dm, "evicted_samples"));
	/* With a state dir: what only the disk holds, and the file. */
	if (dir[0] != '\0')
		printf("on disk: %" PRIu64 " more buckets (%" PRIu64 " samples) "
		    "past the memory cap, read by shows; file %.1f MiB; "
		    "samples dropped for max-disk %" PRIu64 "\n",
		    cmd_status_uint(dm, "disk_buckets"),
		    cmd_status_uint(dm, "disk_samples"),
		    cmd_status_uint(dm, "disk_bytes") / 1048576.0,
		    cmd_status_uint(dm, "disk_dropped_samples"));
	/* A restart serves before it has read what is on disk. */
	if (dir[0] != '\0' && cmd_status_uint(dm, "disk_unchecked") > 0)
		printf("on disk: %" PRIu64 " of those buckets left unread at "
		    "start, still being checked (shows read them already; "
		    "their samples are counted once checked)\n",
		    cmd_status_uint(dm, "disk_unchecked"));
}

/* Gets a bool from a map, 0 when absent. */
static int
cmd_status_bool(const msgpack_object_map *m, const char *key)
{
	int	v;

	if (m == NULL || proto_map_bool(m, key, &v) != 0)
		return (0);
	return (v);
}

/* Copies a str from a map, `dflt` when absent or empty. */
static void
cmd_status_str(const msgpack_object_map *m, const char *key, char *buf,
    size_t len, const char *dflt)
{
	if (proto_map_str(m, key, buf, len) != 0 || *buf == '\0')
		snprintf(buf, len, "%s", dflt);
	render_clean(buf, 0);
}

/* Formats a budget in basis points from m's "max_overhead_bp": "1%",
 * "0.5%", "none" for 0 or 100%, "-" when absent. */
static void
cmd_status_budget(const msgpack_object_map *m, char *buf, size_t len)
{
	uint64_t	bp;

	if (m == NULL || proto_map_uint(m, "max_overhead_bp", &bp) != 0)
		snprintf(buf, len, "-");
	else if (bp == 0 || bp >= PROTO_OVERHEAD_MAX)
		snprintf(buf, len, "none");
	else if (bp % 100 == 0)
		snprintf(buf, len, "%" PRIu64 "%%", bp / 100);
	else if (bp % 10 == 0)
		snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "%%", bp / 100,
		    bp % 100 / 10);
	else
		snprintf(buf, len, "%" PRIu64 ".%02" PRIu64 "%%", bp / 100,
		    bp % 100);
}

/* Adds one agent's row to the table. */
static int
cmd_status_agent(struct render_table *t, const msgpack_object *o)
{
	const msgpack_object_map	*m, *stats = NULL;
	const msgpack_object		*so;
	char				 pid[24], ppid[24];
	char				 mode[32], reader[32];
	char				 service[CMD_STATUS_FIELD];
	char				 python[CMD_STATUS_FIELD], rate[48];
	char				 samples[24], dropped[24], invalid[24];
	char				 cpu[32], *cmd, *sp;
	char				 reason[16], budget[24];
	const char			*cells[CMD_STATUS_NCOLS];
	uint64_t			 n, ns;
	int				 connected, profiling, r;

	if (o->type != MSGPACK_OBJECT_MAP)
		return (0);
	m = &o->via.map;
	so = proto_map_get(m, "stats");
	if (so != NULL && so->type == MSGPACK_OBJECT_MAP)
		stats = &so->via.map;
	connected = cmd_status_bool(m, "connected");
	profiling = cmd_status_bool(m, "profiling");

	snprintf(pid, sizeof pid, "%" PRIu64, cmd_status_uint(m, "pid"));
	snprintf(ppid, sizeof ppid, "%" PRIu64, cmd_status_uint(m, "ppid"));
	cmd_status_str(m, "mode", mode, sizeof mode, "-");
	cmd_status_str(m, "reader", reader, sizeof reader, "-");
	cmd_status_str(m, "service", service, sizeof service, "-");
	cmd_status_str(m, "python", python, sizeof python, "-");
	if ((sp = strchr(python, ' ')) != NULL)
		*sp = '\0';	/* "3.11.7 (main, ...)" -> "3.11.7" */
	if (profiling)
		snprintf(rate, sizeof rate, "%" PRIu64 "/%.1f Hz",
		    cmd_status_uint(m, "rate_hz"),
		    cmd_status_uint(stats, "achieved_mhz") / 1000.0);
	else
		snprintf(rate, sizeof rate, "-");
	cmd_status_str(m, "rate_reason", reason, sizeof reason, "-");
	cmd_status_budget(profiling ? stats : NULL, budget, sizeof budget);
	snprintf(samples, sizeof samples, "%" PRIu64,
	    cmd_status_uint(m, "samples"));
	snprintf(dropped, sizeof dropped, "%" PRIu64,
	    cmd_status_uint(m, "dropped"));
	snprintf(invalid, sizeof invalid, "%" PRIu64,
	    cmd_status_uint(stats, "invalid"));
	n = cmd_status_uint(stats, "samples");
	ns = cmd_status_uint(stats, "sampler_ns");
	if (n == 0)
		snprintf(cpu, sizeof cpu, "-");
	else
		snprintf(cpu, sizeof cpu, "%.1f us", (double)ns / n / 1000.0);
	if ((cmd = render_argv(proto_map_get(m, "argv"))) == NULL)
		return (-1);

	cells[0] = pid;
	cells[1] = ppid;
	cells[2] = service;
	cells[3] = python;
	cells[4] = connected ? "connected" : "gone";
	cells[5] = profiling ? "on" : "off";
	cells[6] = mode;
	cells[7] = reader;
	cells[8] = rate;
	cells[9] = reason;
	cells[10] = budget;
	cells[11] = samples;
	cells[12] = dropped;
	cells[13] = invalid;
	cells[14] = cpu;
	cells[15] = cmd;
	r = render_table_add(t, cells);
	free(cmd);
	return (r);
}

/* Prints the status reply as a summary line and a table of agents. */
static int
cmd_status_table(const msgpack_object *body, const char *dir)
{
	const msgpack_object_map	*m = &body->via.map;
	const msgpack_object		*agents;
	struct render_table		*t;
	char				 mode[32], reader[32], version[64];
	char				 up[32], budget[24];
	uint64_t			 total = 0, connected = 0;
	uint32_t			 i;

	agents = proto_map_get(m, "agents");
	if (agents != NULL && agents->type != MSGPACK_OBJECT_ARRAY)
		agents = NULL;
	if (agents != NULL) {
		total = agents->via.array.size;
		for (i = 0; i < total; i++) {
			if (agents->via.array.ptr[i].type ==
			    MSGPACK_OBJECT_MAP && cmd_status_bool(
			    &agents->via.array.ptr[i].via.map, "connected"))
				connected++;
		}
	}
	cmd_status_str(m, "mode", mode, sizeof mode, "?");
	cmd_status_str(m, "reader", reader, sizeof reader, "default");
	cmd_status_str(m, "version", version, sizeof version, "?");
	render_duration(up, sizeof up, cmd_status_uint(m, "uptime_s"));

	cmd_status_budget(m, budget, sizeof budget);
	printf("profiling %s, rate %" PRIu64 " Hz, mode %s, reader %s",
	    cmd_status_bool(m, "profiling") ? "on" : "off",
	    cmd_status_uint(m, "rate_hz"), mode, reader);
	if (strcmp(budget, "-") != 0)
		printf(", max overhead %s", budget);
	printf("; profd %s up %s; ", version, up);
	if (total == 0)
		printf("no agents\n");
	else
		printf("%" PRIu64 " of %" PRIu64 " %s connected\n", connected,
		    total, cmd_plural(total, "agent", "agents"));
	cmd_status_store(m);
	if (total == 0) {
		printf("no processes attached: run one with "
		    "'PROFD_RUNTIME_DIR=%s python3 -m profagent run -- CMD'\n",
		    dir);
		return (0);
	}

	t = render_table_create(CMD_STATUS_NCOLS, cmd_status_headers,
	    cmd_status_align);
	if (t == NULL)
		goto fail;
	for (i = 0; i < total; i++) {
		if (cmd_status_agent(t, &agents->via.array.ptr[i]) != 0)
			goto fail;
	}
	render_table_print(t, stdout, render_width(stdout));
	render_table_free(t);
	return (0);

fail:
	render_table_free(t);
	fprintf(stderr, "profctl: out of memory\n");
	return (-1);
}

/* Asks profd for its status and prints it. */
static int
cmd_status_exec(const struct cmd_entry *self, const struct cmd_ctx *ctx,
    int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "format",	required_argument,	NULL, 'f' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 }
	};
	enum cmd_format			 format = CMD_FORMAT_TABLE;
	struct client			 c;
	const msgpack_object		*body;
	int				 ch, ret = CMD_EXIT_ERROR;

	while ((ch = getopt_long(argc, argv, "f:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			if (cmd_parse_format(optarg, 0, &format) != 0)
				return (cmd_usage_error(self, "--format '%s': "
				    "use table or json", optarg));
			break;
		case 'h':
			cmd_print_help(self, stdout);
			return (CMD_EXIT_OK);
		default:
			return (cmd_usage(self));
		}
	}
	if (optind < argc)
		return (cmd_usage_error(self, "unexpected argument '%s'",
		    argv[optind]));

	if (client_init(&c, ctx->rundir) != 0)
		goto out;
	client_begin(&c, "status", 0);
	if (client_call(&c, &body) != 0)
		goto out;
	if (format == CMD_FORMAT_JSON) {
		json_write(stdout, body, 1);
		putchar('\n');
	} else if (cmd_status_table(body, c.dir) != 0)
		goto out;
	ret = CMD_EXIT_OK;
out:
	client_free(&c);
	return (ret);
}
