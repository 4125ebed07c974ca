/*
 * cmd-flamegraph.c -- `profctl flamegraph`: `show --format svg` written to
 * a file (flamegraph.svg unless -o says otherwise).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

#define CMD_FLAMEGRAPH_DEFAULT	"flamegraph.svg"
#define CMD_FLAMEGRAPH_MAX_ARGS	1024

static int	cmd_flamegraph_exec(const struct cmd_entry *,
		    const struct cmd_ctx *, int, char **);

const struct cmd_entry cmd_flamegraph_entry = {
	.name = "flamegraph",
	.usage = "[-o FILE] [filters] [--weight samples|time] [--top N]",
	.summary = "write an interactive SVG flame graph of the profile",
	.help =
	    "  -o, --output FILE  where to write it (default "
	    CMD_FLAMEGRAPH_DEFAULT "; - for stdout)\n"
	    "  every filter of 'profctl show' (--since, --until, --pid, "
	    "--service,\n"
	    "  --thread, --oncpu, --mode), --weight and --top (the N heaviest "
	    "stacks).\n"
	    "  Open the file in any browser: hover for counts, click to zoom, "
	    "search.\n",
	.exec = cmd_flamegraph_exec,
};

/* Runs show --format svg with the same options. */
static int
cmd_flamegraph_exec(const struct cmd_entry *self, const struct cmd_ctx *ctx,
    int argc, char **argv)
{
	char	**av;
	int	  i, n = 0, has_output = 0, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			cmd_print_help(self, stdout);
			return (CMD_EXIT_OK);
		}
		if (strcmp(argv[i], "--format") == 0 ||
		    strncmp(argv[i], "--format=", 9) == 0 ||
		    strncmp(argv[i], "-f", 2) == 0)
			return (cmd_usage_error(self, "a flame graph is always "
			    "svg; use 'profctl show --format' for others"));
		if (strcmp(argv[i], "-o") == 0 ||
		    strncmp(argv[i], "--output", 8) == 0 ||
		    strncmp(argv[i], "-o", 2) == 0)
			has_output = 1;
		if (strcmp(argv[i], "--") == 0)
			break;
	}
	if (argc > CMD_FLAMEGRAPH_MAX_ARGS)
		return (cmd_usage_error(self, "too many arguments"));
	if ((av = calloc((size_t)argc + 6, sizeof *av)) == NULL)
		return (CMD_EXIT_ERROR);
	av[n++] = (char *)"show";
	av[n++] = (char *)"--format";
	av[n++] = (char *)"svg";
	if (!has_output) {
		av[n++] = (char *)"--output";
		av[n++] = (char *)CMD_FLAMEGRAPH_DEFAULT;
	}
	for (i = 1; i < argc; i++)
		av[n++] = argv[i];
	rc = cmd_show_entry.exec(&cmd_show_entry, ctx, n, av);
	free(av);
	return (rc);
}
