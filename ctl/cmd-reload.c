/* cmd-reload.c -- `profctl reload`: profd reads its config file again. */

#include <getopt.h>
#include <stdio.h>

#include "client.h"
#include "cmd.h"

static int	cmd_reload_exec(const struct cmd_entry *,
		    const struct cmd_ctx *, int, char **);

const struct cmd_entry cmd_reload_entry = {
	.name = "reload",
	.usage = "",
	.summary = "make profd read its config file again (as SIGHUP)",
	.help =
"profd reads its config file (profd -c, default /etc/profd.conf) and its\n"
"flags again.  Access lists (allow-user, allow-group, allow-read-user,\n"
"allow-read-group) and connection limits apply at once; other settings at\n"
"profd's next start (its log says which).  A config with an error changes\n"
"nothing, and the error is printed.\n",
	.exec = cmd_reload_exec,
};

/* Sends "reload". */
static int
cmd_reload_exec(const struct cmd_entry *self, const struct cmd_ctx *ctx,
    int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "help",	no_argument,	NULL, 'h' },
		{ NULL,		0,		NULL, 0 }
	};
	struct client			 c;
	const msgpack_object		*body;
	char				 file[1024];
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
	client_begin(&c, "reload", 0);
	if (client_call(&c, &body) != 0)
		goto out;
	printf("profd reloaded %s\n", cmd_obj_str(body, "config", file,
	    sizeof file));
	ret = CMD_EXIT_OK;
out:
	client_free(&c);
	return (ret);
}
