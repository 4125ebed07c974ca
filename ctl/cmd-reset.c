/* cmd-reset.c -- `profctl reset`: forget every sample collected so far. */

#include <getopt.h>
#include <stdio.h>

#include "client.h"
#include "cmd.h"

static int	cmd_reset_exec(const struct cmd_entry *,
		    const struct cmd_ctx *, int, char **);

const struct cmd_entry cmd_reset_entry = {
	.name = "reset",
	.usage = "",
	.summary = "forget all samples (agents stay attached)",
	.help = "",
	.exec = cmd_reset_exec,
};

/* Sends "reset". */
static int
cmd_reset_exec(const struct cmd_entry *self, const struct cmd_ctx *ctx,
    int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "help",	no_argument,	NULL, 'h' },
		{ NULL,		0,		NULL, 0 }
	};
	struct client			 c;
	const msgpack_object		*body;
	int				 ch, ret = CMD_EXIT_ERROR;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
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
	client_begin(&c, "reset", 0);
	if (client_call(&c, &body) != 0)
		goto out;
	printf("profile reset\n");
	ret = CMD_EXIT_OK;
out:
	client_free(&c);
	return (ret);
}
