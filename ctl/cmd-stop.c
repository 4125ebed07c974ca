/* cmd-stop.c -- `profctl stop`: stop sampling, everywhere or in some pids. */

#include <getopt.h>
#include <stdio.h>

#include "client.h"
#include "cmd.h"

static int	cmd_stop_exec(const struct cmd_entry *,
		    const struct cmd_ctx *, int, char **);

const struct cmd_entry cmd_stop_entry = {
	.name = "stop",
	.usage = "[--pid PID]...",
	.summary = "stop sampling in all processes, or in --pid ones",
	.help =
	    "  -p, --pid PID      stop only this process (repeatable); "
	    "without --pid\n"
	    "                     profiling is switched off globally, also "
	    "for\n"
	    "                     processes that attach later\n",
	.exec = cmd_stop_exec,
};

/* Sends "stop" with the pids, if any. */
static int
cmd_stop_exec(const struct cmd_entry *self, const struct cmd_ctx *ctx,
    int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "pid",	required_argument,	NULL, 'p' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 }
	};
	struct cmd_pids			 pids = { NULL, 0, 0 };
	struct client			 c;
	const msgpack_object		*body;
	msgpack_packer			*pk;
	const char			*err;
	uint64_t			 n;
	int				 ch, ret = CMD_EXIT_ERROR;

	while ((ch = getopt_long(argc, argv, "p:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (cmd_pids_add(&pids, optarg, &err) != 0) {
				ret = cmd_usage_error(self, "--pid '%s': %s",
				    optarg, err);
				goto done;
			}
			break;
		case 'h':
			cmd_print_help(self, stdout);
			ret = CMD_EXIT_OK;
			goto done;
		default:
			ret = cmd_usage(self);
			goto done;
		}
	}
	if (optind < argc) {
		ret = cmd_usage_error(self, "unexpected argument '%s'",
		    argv[optind]);
		goto done;
	}

	if (client_init(&c, ctx->rundir) != 0)
		goto out;
	pk = client_begin(&c, "stop", pids.n > 0 ? 1 : 0);
	if (pids.n > 0)
		cmd_pack_pids(pk, &pids);
	if (client_call(&c, &body) != 0)
		goto out;
	if (proto_map_uint(&body->via.map, "agents", &n) != 0)
		n = 0;
	printf("profiling stopped on %llu %s\n", (unsigned long long)n,
	    cmd_plural(n, "process", "processes"));
	ret = CMD_EXIT_OK;
out:
	client_free(&c);
done:
	cmd_pids_free(&pids);
	return (ret);
}
