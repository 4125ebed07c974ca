/*
 * format.c -- what the output encoders share: the frame label and the
 * table of formats by name.
 */

#include <stdio.h>
#include <string.h>

#include "format.h"

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
