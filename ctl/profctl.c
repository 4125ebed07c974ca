/*
 * profctl.c -- the control CLI of profd: global options, then one command
 * from the table in cmd.c.
 */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "proto.h"

/* Prints the global usage and the command list. */
static void
profctl_usage(FILE *f)
{
	fprintf(f, "usage: profctl [-r DIR] COMMAND [OPTIONS]\n"
	    "       profctl help [COMMAND]\n\n"
	    "Controls profd, the profiler of Python processes.\n\n"
	    "commands:\n");
	cmd_print_list(f);
	fprintf(f, "\noptions:\n"
	    "  -r, --runtime-dir DIR  profd's runtime dir (default: "
	    "$PROFD_RUNTIME_DIR,\n"
	    "                         else /run/profd for root, else "
	    "$XDG_RUNTIME_DIR/profd,\n"
	    "                         else /tmp/profd-UID; for a user other "
	    "than root that\n"
	    "                         one if a profd listens there, else "
	    "/run/profd if\n"
	    "                         the system's does)\n"
	    "  -h, --help             print this help\n"
	    "  -V, --version          print the version\n\n"
	    "Run 'profctl COMMAND --help' for a command's options.\n");
}

/* Looks a command up by name, printing why when there is none. */
static const struct cmd_entry *
profctl_find(const char *name)
{
	const struct cmd_entry *const	*e;
	const struct cmd_entry		*found;
	const char			*err;
	size_t				 len = strlen(name);

	if ((found = cmd_find(name, &err)) != NULL)
		return (found);
	fprintf(stderr, "profctl: %s: %s", err, name);
	if (strcmp(err, "ambiguous command") == 0) {
		fputs(", could be:", stderr);
		for (e = cmd_table; *e != NULL; e++) {
			if (strncmp((*e)->name, name, len) == 0)
				fprintf(stderr, " %s", (*e)->name);
		}
	}
	fputs("\ncommands:", stderr);
	for (e = cmd_table; *e != NULL; e++)
		fprintf(stderr, " %s", (*e)->name);
	fputs(" (see 'profctl help')\n", stderr);
	return (NULL);
}

/* Handles `profctl help [COMMAND]`; `help --help` and `help help` say
 * what help does. */
static int
profctl_help(int argc, char **argv)
{
	const struct cmd_entry	*e;

	if (argc < 2) {
		profctl_usage(stdout);
		return (CMD_EXIT_OK);
	}
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)) {
		printf("usage: profctl help [COMMAND]\n\n"
		    "print profctl's usage and commands, or COMMAND's "
		    "options\n\n"
		    "COMMAND may be a unique prefix; 'profctl COMMAND --help' "
		    "prints the same.\n");
		return (CMD_EXIT_OK);
	}
	if (argc > 2) {
		fprintf(stderr, "profctl: help takes one command name\n"
		    "usage: profctl help [COMMAND]\n");
		return (CMD_EXIT_USAGE);
	}
	if ((e = profctl_find(argv[1])) == NULL)
		return (CMD_EXIT_USAGE);
	cmd_print_help(e, stdout);
	return (CMD_EXIT_OK);
}

/*
 * Takes -r DIR / --runtime-dir[=]DIR out of a command's arguments, so that
 * `profctl show -r DIR` works as `profctl -r DIR show` does.  Returns the
 * new argc, or -1 when -r has no value.
 */
static int
profctl_take_rundir(int argc, char **argv, const char **rundir)
{
	int	i, j, skip;

	for (i = 1, j = 1; i < argc; i++) {
		skip = 0;
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				argv[j++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "-r") == 0 ||
		    strcmp(argv[i], "--runtime-dir") == 0) {
			if (i + 1 == argc)
				return (-1);
			*rundir = argv[++i];
			skip = 1;
		} else if (strncmp(argv[i], "--runtime-dir=", 14) == 0) {
			*rundir = argv[i] + 14;
			skip = 1;
		} else if (strncmp(argv[i], "-r", 2) == 0) {
			*rundir = argv[i] + 2;
			skip = 1;
		}
		if (!skip)
			argv[j++] = argv[i];
	}
	argv[j] = NULL;
	return (j);
}

int
main(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "runtime-dir",	required_argument,	NULL, 'r' },
		{ "help",		no_argument,		NULL, 'h' },
		{ "version",		no_argument,		NULL, 'V' },
		{ NULL,			0,			NULL, 0 }
	};
	struct cmd_ctx			 ctx = { NULL };
	const struct cmd_entry		*e;
	char				 prog[64];
	int				 ch, ret;

	snprintf(prog, sizeof prog, "profctl");
	argv[0] = prog;		/* getopt's messages say "profctl: ..." */
	while ((ch = getopt_long(argc, argv, "+r:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			ctx.rundir = optarg;
			break;
		case 'h':
			profctl_usage(stdout);
			return (CMD_EXIT_OK);
		case 'V':
			printf("profctl %s (protocol %d)\n", CMD_VERSION,
			    PROTO_VERSION);
			return (CMD_EXIT_OK);
		default:
			fputs("usage: profctl [-r DIR] COMMAND [OPTIONS] "
			    "(see 'profctl --help')\n", stderr);
			return (CMD_EXIT_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		fputs("profctl: no command given\n", stderr);
		profctl_usage(stderr);
		return (CMD_EXIT_USAGE);
	}
	if (strcmp(argv[0], "help") == 0) {
		/* `profctl help CMD -r DIR` is a help request all the same. */
		if ((argc = profctl_take_rundir(argc, argv, &ctx.rundir)) == -1)
			argc = 1;
		return (profctl_help(argc, argv));
	}
	if ((e = profctl_find(argv[0])) == NULL)
		return (CMD_EXIT_USAGE);

	if ((argc = profctl_take_rundir(argc, argv, &ctx.rundir)) == -1) {
		fprintf(stderr, "profctl %s: -r needs a directory\n", e->name);
		return (CMD_EXIT_USAGE);
	}

	/* getopt names argv[0] in its messages: make it "profctl CMD". */
	snprintf(prog, sizeof prog, "profctl %s", e->name);
	argv[0] = prog;
	optind = 0;	/* glibc: start a fresh scan of the command's argv */
	ret = e->exec(e, &ctx, argc, argv);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "profctl: writing output: %s\n",
		    strerror(errno));
		return (CMD_EXIT_ERROR);
	}
	return (ret);
}
