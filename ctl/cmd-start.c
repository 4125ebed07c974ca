/* cmd-start.c -- `profctl start`: start sampling, everywhere or in pids. */

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "cmd.h"
#include "proto.h"

static int	cmd_start_exec(const struct cmd_entry *,
		    const struct cmd_ctx *, int, char **);

#define CMD_START_STR(x)	#x
#define CMD_START_XSTR(x)	CMD_START_STR(x)

const struct cmd_entry cmd_start_entry = {
	.name = "start",
	.usage = "[--rate HZ] [--pid PID]... [--mode wall|cpu|gil] "
	    "[--reader gil|direct] [--jitter PCT] [--max-overhead PCT]",
	.summary = "start sampling in all attached processes, or in "
	    "--pid ones",
	.help =
	    "      --rate HZ      samples per second per process, "
	    CMD_START_XSTR(PROTO_RATE_MIN) ".." CMD_START_XSTR(PROTO_RATE_MAX)
	    "\n"
	    "                     (default: profd's current rate, initially "
	    CMD_START_XSTR(PROTO_RATE_DEFAULT) ")\n"
	    "  -p, --pid PID      start only this process (repeatable); "
	    "without --pid\n"
	    "                     profiling is switched on globally\n"
	    "  -m, --mode MODE    wall: every thread, weighted by wall time;\n"
	    "                     cpu: threads that ran, weighted by CPU "
	    "time;\n"
	    "                     gil: only the thread holding the GIL\n"
	    "      --reader R     how agents read stacks: gil (public C API "
	    "under the\n"
	    "                     GIL), direct (GIL-free copy), default "
	    "(agent's choice)\n"
	    "      --jitter PCT   move each tick by a random amount up to PCT% "
	    "of a\n"
	    "                     period (0.." CMD_START_XSTR(PROTO_JITTER_MAX)
	    ", default 0), so sampling never locks in\n"
	    "                     phase with periodic work\n"
	    "      --max-overhead PCT\n"
	    "                     CPU budget of each agent's sampler thread, "
	    "in percent\n"
	    "                     of a core (0 to 100, two decimals at most: "
	    "0.5); the\n"
	    "                     agent lowers its rate to stay under it and "
	    "raises it\n"
	    "                     again up to --rate; 0 or 100: no budget "
	    "(default: the\n"
	    "                     current one; initially each agent's "
	    "own,\n"
	    "                     $PROFAGENT_MAX_OVERHEAD or none)\n",
	.exec = cmd_start_exec,
};

/* What the command line asked for. */
struct cmd_start_args {
	uint64_t	 rate;		/* 0: not given */
	const char	*mode;		/* NULL: not given */
	const char	*reader;	/* NULL: not given */
	int		 have_jitter;
	uint64_t	 jitter;
	int		 have_overhead;
	uint32_t	 overhead_bp;
	struct cmd_pids	 pids;
};

/* Asks profd for its rate, for the message when --rate was not given. */
static uint64_t
cmd_start_current_rate(const struct cmd_ctx *ctx)
{
	struct client		 c;
	const msgpack_object	*body;
	uint64_t		 rate = 0;

	if (client_init(&c, ctx->rundir) == 0) {
		client_begin(&c, "status", 0);
		if (client_call(&c, &body) == 0 &&
		    proto_map_uint(&body->via.map, "rate_hz", &rate) != 0)
			rate = 0;
	}
	client_free(&c);
	return (rate);
}

/* Sends "start" with the given arguments. */
static int
cmd_start_send(const struct cmd_ctx *ctx, const struct cmd_start_args *a,
    uint64_t *agents)
{
	struct client		 c;
	const msgpack_object	*body;
	msgpack_packer		*pk;
	size_t			 nargs;
	int			 ret = -1;

	nargs = (a->rate != 0) + (a->mode != NULL) + (a->reader != NULL) +
	    (a->pids.n > 0) + (a->have_jitter != 0) +
	    (a->have_overhead != 0);
	if (client_init(&c, ctx->rundir) != 0)
		goto out;
	pk = client_begin(&c, "start", nargs);
	if (a->rate != 0) {
		proto_pack_cstr(pk, "rate_hz");
		msgpack_pack_uint64(pk, a->rate);
	}
	if (a->mode != NULL) {
		proto_pack_cstr(pk, "mode");
		proto_pack_cstr(pk, a->mode);
	}
	if (a->reader != NULL) {
		proto_pack_cstr(pk, "reader");
		proto_pack_cstr(pk, a->reader);
	}
	if (a->have_jitter) {
		proto_pack_cstr(pk, "jitter_pct");
		msgpack_pack_uint64(pk, a->jitter);
	}
	if (a->have_overhead) {
		proto_pack_cstr(pk, "max_overhead_bp");
		msgpack_pack_uint32(pk, a->overhead_bp);
	}
	if (a->pids.n > 0)
		cmd_pack_pids(pk, &a->pids);
	if (client_call(&c, &body) != 0)
		goto out;
	if (proto_map_uint(&body->via.map, "agents", agents) != 0)
		*agents = 0;
	ret = 0;
out:
	client_free(&c);
	return (ret);
}

/* Parses the options, sends "start" and says where profiling started. */
static int
cmd_start_exec(const struct cmd_entry *self, const struct cmd_ctx *ctx,
    int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "rate",	required_argument,	NULL, 'R' },
		{ "pid",	required_argument,	NULL, 'p' },
		{ "mode",	required_argument,	NULL, 'm' },
		{ "reader",	required_argument,	NULL, 'D' },
		{ "jitter",	required_argument,	NULL, 'J' },
		{ "max-overhead", required_argument,	NULL, 'O' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 }
	};
	struct cmd_start_args		 a;
	const char			*err;
	uint64_t			 agents, rate;
	int				 ch, ret = CMD_EXIT_USAGE;

	memset(&a, 0, sizeof a);
	while ((ch = getopt_long(argc, argv, "p:m:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'R':
			if (cmd_parse_uint(optarg, PROTO_RATE_MIN,
			    PROTO_RATE_MAX, &a.rate) != 0) {
				cmd_usage_error(self, "--rate '%s': the rate "
				    "must be a whole number of Hz from %d to "
				    "%d", optarg, PROTO_RATE_MIN,
				    PROTO_RATE_MAX);
				goto done;
			}
			break;
		case 'p':
			if (cmd_pids_add(&a.pids, optarg, &err) != 0) {
				cmd_usage_error(self, "--pid '%s': %s", optarg,
				    err);
				goto done;
			}
			break;
		case 'm':
			if (proto_mode_parse(optarg) < 0) {
				cmd_usage_error(self, "--mode '%s': the mode "
				    "must be wall, cpu or gil", optarg);
				goto done;
			}
			a.mode = optarg;
			break;
		case 'D':
			if (proto_reader_parse(optarg) < 0) {
				cmd_usage_error(self, "--reader '%s': the "
				    "reader must be gil, direct or default",
				    optarg);
				goto done;
			}
			a.reader = optarg;
			break;
		case 'J':
			if (cmd_parse_uint(optarg, 0, PROTO_JITTER_MAX,
			    &a.jitter) != 0) {
				cmd_usage_error(self, "--jitter '%s': a whole "
				    "percent from 0 to %d", optarg,
				    PROTO_JITTER_MAX);
				goto done;
			}
			a.have_jitter = 1;
			break;
		case 'O':
			if (proto_overhead_parse(optarg, &a.overhead_bp) != 0) {
				cmd_usage_error(self, "--max-overhead '%s': a "
				    "percent of a core from 0 to 100, with at "
				    "most two decimals (0.5, 1, 2.25)", optarg);
				goto done;
			}
			a.have_overhead = 1;
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
	if (cmd_start_send(ctx, &a, &agents) != 0)
		goto done;
	rate = a.rate != 0 ? a.rate : cmd_start_current_rate(ctx);
	if (rate != 0)
		printf("profiling started at %llu Hz on %llu %s",
		    (unsigned long long)rate, (unsigned long long)agents,
		    cmd_plural(agents, "process", "processes"));
	else
		printf("profiling started on %llu %s",
		    (unsigned long long)agents,
		    cmd_plural(agents, "process", "processes"));
	if (a.pids.n == 0 && agents == 0)
		printf("; processes that attach from now on start sampling "
		    "at once");
	putchar('\n');
	ret = CMD_EXIT_OK;
done:
	cmd_pids_free(&a.pids);
	return (ret);
}
