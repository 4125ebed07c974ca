/*
 * cmd.h -- profctl's commands: one cmd_entry per command, one file per
 * command (cmd-<verb>.c), all listed in the table in cmd.c.
 */
#ifndef CMD_H
#define CMD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <msgpack.h>

#define CMD_VERSION		"0.1.0"	/* profctl's own version */
#define CMD_MAX_PIDS		4096	/* --pid options in one command */
#define CMD_SHOW_TOP_DEFAULT	20	/* rows of `show` in a table */

/* Exit statuses. */
#define CMD_EXIT_OK		0
#define CMD_EXIT_ERROR		1	/* profd unreachable or said no */
#define CMD_EXIT_USAGE		2	/* bad command line */

/* What every command gets from the global options. */
struct cmd_ctx {
	const char	*rundir;	/* -r DIR, or NULL: the default rule */
};

struct cmd_entry {
	const char	*name;
	const char	*usage;		/* arguments after the name */
	const char	*summary;	/* one line, for the command list */
	const char	*help;		/* every option, one per line */
	/* Runs with argv[0] = the command name; returns a CMD_EXIT_*. */
	int		(*exec)(const struct cmd_entry *,
			    const struct cmd_ctx *, int argc, char **argv);
};

/* Output formats of status and show. */
enum cmd_format {
	CMD_FORMAT_TABLE,
	CMD_FORMAT_JSON,
	CMD_FORMAT_FOLDED,
};

/* A list of --pid values. */
struct cmd_pids {
	uint32_t	*v;
	size_t		 n;
	size_t		 cap;
};

extern const struct cmd_entry *const cmd_table[];

const struct cmd_entry *cmd_find(const char *name, const char **err);
void	cmd_print_list(FILE *);
void	cmd_print_help(const struct cmd_entry *, FILE *);
int	cmd_usage(const struct cmd_entry *);
int	cmd_usage_error(const struct cmd_entry *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
int	cmd_parse_uint(const char *, uint64_t min, uint64_t max, uint64_t *);
int	cmd_parse_format(const char *, int allow_folded, enum cmd_format *);
int	cmd_pids_add(struct cmd_pids *, const char *, const char **err);
void	cmd_pids_free(struct cmd_pids *);
int	cmd_pack_pids(msgpack_packer *, const struct cmd_pids *);
const char *cmd_plural(uint64_t, const char *one, const char *many);
/* Fields of a map object in a reply: 0 / "" when absent. */
uint64_t cmd_obj_uint(const msgpack_object *, const char *key);
const char *cmd_obj_str(const msgpack_object *, const char *key, char *buf,
	    size_t len);

extern const struct cmd_entry cmd_flamegraph_entry;
extern const struct cmd_entry cmd_ps_entry;
extern const struct cmd_entry cmd_reset_entry;
extern const struct cmd_entry cmd_reload_entry;
extern const struct cmd_entry cmd_show_entry;
extern const struct cmd_entry cmd_start_entry;
extern const struct cmd_entry cmd_status_entry;
extern const struct cmd_entry cmd_stop_entry;

#endif
