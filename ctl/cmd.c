/* cmd.c -- the command table and what commands share: help, options. */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "proto.h"
#include "render.h"

/* Every command, in the order `profctl help` lists them. */
const struct cmd_entry *const cmd_table[] = {
	&cmd_status_entry,
	&cmd_start_entry,
	&cmd_stop_entry,
	&cmd_show_entry,
	&cmd_flamegraph_entry,
	&cmd_ps_entry,
	&cmd_reset_entry,
	&cmd_reload_entry,
	NULL
};

/*
 * Finds a command by its name or a unique prefix of it.  Returns NULL with
 * *err saying "unknown" or "ambiguous".
 */
const struct cmd_entry *
cmd_find(const char *name, const char **err)
{
	const struct cmd_entry *const	*e;
	const struct cmd_entry		*found = NULL;
	size_t				 len = strlen(name);

	*err = "unknown command";
	if (len == 0)
		return (NULL);
	for (e = cmd_table; *e != NULL; e++) {
		if (strcmp((*e)->name, name) == 0)
			return (*e);
		if (strncmp((*e)->name, name, len) == 0) {
			if (found != NULL) {
				*err = "ambiguous command";
				return (NULL);
			}
			found = *e;
		}
	}
	return (found);
}

/* Prints the commands and their one-line summaries. */
void
cmd_print_list(FILE *f)
{
	const struct cmd_entry *const	*e;

	for (e = cmd_table; *e != NULL; e++)
		fprintf(f, "  %-10s %s\n", (*e)->name, (*e)->summary);
}

/* Prints a command's usage, summary and options. */
void
cmd_print_help(const struct cmd_entry *e, FILE *f)
{
	fprintf(f, "usage: profctl [-r DIR] %s%s%s\n\n%s\n", e->name,
	    *e->usage != '\0' ? " " : "", e->usage, e->summary);
	fprintf(f, "\noptions:\n%s", e->help);
	fprintf(f, "  -h, --help         print this help\n");
}

/* Prints the command's usage line to stderr; returns the usage status. */
int
cmd_usage(const struct cmd_entry *e)
{
	fprintf(stderr, "usage: profctl [-r DIR] %s%s%s "
	    "(see 'profctl %s --help')\n", e->name,
	    *e->usage != '\0' ? " " : "", e->usage, e->name);
	return (CMD_EXIT_USAGE);
}

/* Prints a usage error and the command's usage line; returns the status. */
int
cmd_usage_error(const struct cmd_entry *e, const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "profctl %s: ", e->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return (cmd_usage(e));
}

/* Parses a decimal unsigned integer in [min, max]; 0 or -1. */
int
cmd_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long	 v;
	char			*end;

	if (s == NULL || *s < '0' || *s > '9')
		return (-1);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return (-1);
	*out = v;
	return (0);
}

/* Parses --format; folded only where allowed.  0 or -1. */
int
cmd_parse_format(const char *s, int allow_folded, enum cmd_format *out)
{
	if (strcmp(s, "table") == 0)
		*out = CMD_FORMAT_TABLE;
	else if (strcmp(s, "json") == 0)
		*out = CMD_FORMAT_JSON;
	else if (allow_folded && strcmp(s, "folded") == 0)
		*out = CMD_FORMAT_FOLDED;
	else
		return (-1);
	return (0);
}

/* Adds one --pid value; -1 with *err set if it is bad or one too many. */
int
cmd_pids_add(struct cmd_pids *p, const char *s, const char **err)
{
	uint64_t	 v;
	uint32_t	*nv;
	size_t		 cap;

	if (cmd_parse_uint(s, 1, INT32_MAX, &v) != 0) {
		*err = "not a process id";
		return (-1);
	}
	if (p->n == CMD_MAX_PIDS) {
		*err = "too many --pid options";
		return (-1);
	}
	if (p->n == p->cap) {
		cap = p->cap == 0 ? 8 : p->cap * 2;
		if ((nv = reallocarray(p->v, cap, sizeof *nv)) == NULL) {
			*err = "out of memory";
			return (-1);
		}
		p->v = nv;
		p->cap = cap;
	}
	p->v[p->n++] = (uint32_t)v;
	return (0);
}

/* Frees a pid list. */
void
cmd_pids_free(struct cmd_pids *p)
{
	free(p->v);
	memset(p, 0, sizeof *p);
}

/* Packs "pids": [pid, ...] (one key/value pair). */
int
cmd_pack_pids(msgpack_packer *pk, const struct cmd_pids *p)
{
	size_t	i;

	if (proto_pack_cstr(pk, "pids") != 0 ||
	    msgpack_pack_array(pk, p->n) != 0)
		return (-1);
	for (i = 0; i < p->n; i++) {
		if (msgpack_pack_uint32(pk, p->v[i]) != 0)
			return (-1);
	}
	return (0);
}

/* Picks the singular or plural noun for n. */
const char *
cmd_plural(uint64_t n, const char *one, const char *many)
{
	return (n == 1 ? one : many);
}

/* An uint of a map object, 0 when absent (or o is not a map). */
uint64_t
cmd_obj_uint(const msgpack_object *o, const char *key)
{
	uint64_t	v;

	if (o == NULL || o->type != MSGPACK_OBJECT_MAP ||
	    proto_map_uint(&o->via.map, key, &v) != 0)
		return (0);
	return (v);
}

/* Copies a str of a map object into buf, cut to fit and cleaned for one
 * line ("" when absent); returns buf. */
const char *
cmd_obj_str(const msgpack_object *o, const char *key, char *buf, size_t len)
{
	const msgpack_object	*v;
	size_t			 n;

	buf[0] = '\0';
	if (o == NULL || o->type != MSGPACK_OBJECT_MAP ||
	    (v = proto_map_get(&o->via.map, key)) == NULL ||
	    v->type != MSGPACK_OBJECT_STR)
		return (buf);
	n = v->via.str.size < len - 1 ? v->via.str.size : len - 1;
	memcpy(buf, v->via.str.ptr, n);
	buf[n] = '\0';
	render_clean(buf, 0);
	return (buf);
}
