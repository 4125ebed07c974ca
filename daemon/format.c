/*
 * format.c -- what the output encoders share: the frame label and the
 * table of formats by name.
 */

#include <stdio.h>
#include <string.h>

#include "format.h"

/* The encoders, each in its own file. */
static const struct {
	const char	*name;
	format_fn	 fn;
} format_table[] = {
	{ "folded", format_folded },
	{ "speedscope", format_speedscope },
	{ "pprof", format_pprof },
	{ "svg", format_svg },
};

/* Looks a format up by name. */
format_fn
format_find(const char *name)
{
	size_t	i;

	for (i = 0; i < sizeof format_table / sizeof format_table[0]; i++) {
		if (strcmp(format_table[i].name, name) == 0)
			return (format_table[i].fn);
	}
	return (NULL);
}

/* Writes "name (file:line)" into buf. */
size_t
format_frame_label(const struct profile *p, uint32_t frame, char *buf,
    size_t len)
{
	const struct profile_frame	*fr;
	const struct profile_func	*fn;
	int				 n;

	if (len == 0)
		return (0);
	if (frame >= p->nframes || p->frames[frame].func >= p->nfuncs) {
		n = snprintf(buf, len, "?");
	} else {
		fr = &p->frames[frame];
		fn = &p->funcs[fr->func];
		if (fn->file[0] == '\0')
			n = snprintf(buf, len, "%s", fn->name);
		else if (fr->line == 0)
			n = snprintf(buf, len, "%s (%s)", fn->name, fn->file);
		else
			n = snprintf(buf, len, "%s (%s:%u)", fn->name,
			    fn->file, fr->line);
	}
	if (n < 0)
		n = 0;
	return ((size_t)n >= len ? len - 1 : (size_t)n);
}
