/* render.c -- text output of profctl: tables, folded stacks, numbers. */

#include <sys/ioctl.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"
#include "render.h"

struct render_table {
	size_t			 ncols;
	const char *const	*headers;
	const char		*align;		/* 'l' or 'r' per column */
	char			**cells;	/* nrows * ncols, row-major */
	size_t			 nrows;
	size_t			 cap;		/* rows */
};

/* Creates an empty table; align has one 'l' or 'r' per column. */
struct render_table *
render_table_create(size_t ncols, const char *const *headers,
    const char *align)
{
	struct render_table	*t;

	if ((t = calloc(1, sizeof *t)) == NULL)
		return (NULL);
	t->ncols = ncols;
	t->headers = headers;
	t->align = align;
	return (t);
}

/* Frees a table and its cells. */
void
render_table_free(struct render_table *t)
{
	size_t	i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

/* Appends a row, copying its ncols cells (NULL cells print empty). */
int
render_table_add(struct render_table *t, const char *const *cells)
{
	char	**p;
	size_t	  i, cap;

	if (t->nrows == t->cap) {
		cap = t->cap == 0 ? 16 : t->cap * 2;
		p = reallocarray(t->cells, cap * t->ncols, sizeof *p);
		if (p == NULL)
			return (-1);
		t->cells = p;
		t->cap = cap;
	}
	p = t->cells + t->nrows * t->ncols;
	for (i = 0; i < t->ncols; i++) {
		if ((p[i] = strdup(cells[i] != NULL ? cells[i] : "")) == NULL)
			goto fail;
	}
	t->nrows++;
	return (0);

fail:
	while (i-- > 0)
		free(p[i]);
	return (-1);
}

/* Prints one cell padded to w (the last column is not padded). */
static void
render_table_cell(FILE *f, const char *s, size_t w, char align, int last)
{
	size_t	sw = render_strwidth(s);
	size_t	pad = w > sw ? w - sw : 0;

	if (align == 'r')
		fprintf(f, "%*s%s", (int)pad, "", s);
	else if (last)
		fputs(s, f);
	else
		fprintf(f, "%s%*s", s, (int)pad, "");
}

/* Prints one row of cells, cutting the last one to `last_w` if not 0. */
static void
render_table_row(const struct render_table *t, FILE *f,
    const char *const *cells, const size_t *w, size_t last_w)
{
	size_t	 i, last = t->ncols - 1;
	char	*cut;

	for (i = 0; i < t->ncols; i++) {
		if (i > 0)
			fprintf(f, "%*s", RENDER_COLUMN_GAP, "");
		if (i == last && last_w != 0 &&
		    render_strwidth(cells[i]) > last_w &&
		    (cut = render_cut(cells[i], last_w)) != NULL) {
			render_table_cell(f, cut, w[i], t->align[i], 1);
			free(cut);
		} else
			render_table_cell(f, cells[i], w[i], t->align[i],
			    i == last);
	}
	fputc('\n', f);
}

/*
 * Prints the header and rows with columns aligned.  When width is not 0 the
 * last column is cut in the middle to keep lines within width (but never
 * below RENDER_LAST_MIN).
 */
void
render_table_print(const struct render_table *t, FILE *f, size_t width)
{
	size_t	*w, i, r, sw, used = 0, last_w = 0;

	if (t->ncols == 0 || (w = calloc(t->ncols, sizeof *w)) == NULL)
		return;
	for (i = 0; i < t->ncols; i++) {
		w[i] = render_strwidth(t->headers[i]);
		for (r = 0; r < t->nrows; r++) {
			sw = render_strwidth(t->cells[r * t->ncols + i]);
			if (sw > w[i])
				w[i] = sw;
		}
		if (i + 1 < t->ncols)
			used += w[i] + RENDER_COLUMN_GAP;
	}
	if (width != 0) {
		last_w = width > used ? width - used : 0;
		if (last_w < RENDER_LAST_MIN)
			last_w = RENDER_LAST_MIN;
		if (w[t->ncols - 1] > last_w)
			w[t->ncols - 1] = last_w;
	}
	render_table_row(t, f, t->headers, w, last_w);
	for (r = 0; r < t->nrows; r++)
		render_table_row(t, f,
		    (const char *const *)t->cells + r * t->ncols, w, last_w);
	free(w);
}

/* Columns of the terminal f writes to, or 0 if it is not a terminal. */
size_t
render_width(FILE *f)
{
	struct winsize	ws;
	int		fd = fileno(f);

	if (fd == -1 || !isatty(fd))
		return (0);
	if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return (ws.ws_col);
	return (80);
}

/* Width of a UTF-8 string in characters (each code point counts one). */
size_t
render_strwidth(const char *s)
{
	size_t	n = 0;

	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	}
	return (n);
}

/* Byte offset of character number `chars` in s (or its end). */
static size_t
render_offset(const char *s, size_t chars)
{
	size_t	i = 0, n = 0;

	for (; s[i] != '\0'; i++) {
		if (((unsigned char)s[i] & 0xc0) != 0x80) {
			if (n == chars)
				break;
			n++;
		}
	}
	return (i);
}

/*
 * Returns a copy of s at most `width` characters wide, cut in the middle
 * with RENDER_ELLIPSIS so both the start (a function or command name) and
 * the end (file:line, last argument) stay visible.  NULL if out of memory.
 */
char *
render_cut(const char *s, size_t width)
{
	size_t	 sw = render_strwidth(s), el = strlen(RENDER_ELLIPSIS);
	size_t	 head, tail, hb, tb, len;
	char	*out;

	if (sw <= width)
		return (strdup(s));
	if (width <= el) {
		hb = render_offset(s, width);
		return (strndup(s, hb));
	}
	head = (width - el + 1) / 2;
	tail = width - el - head;
	hb = render_offset(s, head);
	tb = render_offset(s, sw - tail);
	len = hb + el + strlen(s + tb);
	if ((out = malloc(len + 1)) == NULL)
		return (NULL);
	memcpy(out, s, hb);
	memcpy(out + hb, RENDER_ELLIPSIS, el);
	strcpy(out + hb + el, s + tb);
	return (out);
}

/* Formats part/whole as a percentage with one decimal, e.g. "45.2%". */
void
render_percent(char *buf, size_t len, uint64_t part, uint64_t whole)
{
	double	pct = whole == 0 ? 0.0 : 100.0 * (double)part / (double)whole;

	snprintf(buf, len, "%.1f%%", pct);
}

/* Formats seconds as the two largest units, e.g. "2d3h", "1h05m", "42s";
 * whole days as days alone ("30d"). */
void
render_duration(char *buf, size_t len, uint64_t s)
{
	if (s >= 86400 && s % 86400 < 3600)
		snprintf(buf, len, "%" PRIu64 "d", s / 86400);
	else if (s >= 86400)
		snprintf(buf, len, "%" PRIu64 "d%" PRIu64 "h", s / 86400,
		    s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600,
		    s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60,
		    s % 60);
	else
		snprintf(buf, len, "%" PRIu64 "s", s);
}

/*
 * Returns "function (file:line)" as a new string: "(file)" when the line
 * is 0, the bare name when there is no file ("[truncated]").
 */
char *
render_frame_label(const char *name, size_t name_len, const char *file,
    size_t file_len, uint64_t line)
{
	char	*out;
	int	 n;

	if (name_len == 0) {
		name = "?";
		name_len = 1;
	}
	if (file_len == 0)
		n = asprintf(&out, "%.*s", (int)name_len, name);
	else if (line == 0)
		n = asprintf(&out, "%.*s (%.*s)", (int)name_len, name,
		    (int)file_len, file);
	else
		n = asprintf(&out, "%.*s (%.*s:%" PRIu64 ")", (int)name_len,
		    name, (int)file_len, file, line);
	return (n < 0 ? NULL : out);
}

/*
 * Makes a label safe to print on one line: control characters become
 * spaces.  For the folded format also ';' (the frame separator) becomes ':'.
 * NUL bytes cannot occur (labels are C strings).
 */
void
render_clean(char *s, int folded)
{
	for (; *s != '\0'; s++) {
		if (folded && *s == ';')
			*s = ':';
		else if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
	}
}

/* Gets frame [function, file, line] fields; -1 if malformed. */
static int
render_frame_fields(const msgpack_object *o, const msgpack_object_str **name,
    const msgpack_object_str **file, uint64_t *line)
{
	const msgpack_object	*a;

	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3)
		return (-1);
	a = o->via.array.ptr;
	if (a[0].type != MSGPACK_OBJECT_STR ||
	    a[1].type != MSGPACK_OBJECT_STR ||
	    a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return (-1);
	*name = &a[0].via.str;
	*file = &a[1].via.str;
	*line = a[2].via.u64;
	return (0);
}

/*
 * Prints one stack of a show reply, {"count", "frames": [[function, file,
 * line], ...] root first}, as a folded line: "root;...;leaf count".
 * Returns 0, or -1 (nothing printed) if the stack is malformed.
 */
int
render_folded_stack(FILE *f, const msgpack_object *stack)
{
	const msgpack_object		*count, *frames;
	const msgpack_object_str	*name, *file;
	uint64_t			 line;
	uint32_t			 i;
	char				*label;

	if (stack->type != MSGPACK_OBJECT_MAP)
		return (-1);
	count = proto_map_get(&stack->via.map, "count");
	frames = proto_map_get(&stack->via.map, "frames");
	if (count == NULL || count->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    frames == NULL || frames->type != MSGPACK_OBJECT_ARRAY ||
	    frames->via.array.size == 0)
		return (-1);
	for (i = 0; i < frames->via.array.size; i++) {
		if (render_frame_fields(&frames->via.array.ptr[i], &name,
		    &file, &line) != 0)
			return (-1);
	}
	for (i = 0; i < frames->via.array.size; i++) {
		render_frame_fields(&frames->via.array.ptr[i], &name, &file,
		    &line);
		label = render_frame_label(name->ptr, name->size, file->ptr,
		    file->size, line);
		if (label == NULL)
			return (-1);
		render_clean(label, 1);
		if (i > 0)
			fputc(';', f);
		fputs(label, f);
		free(label);
	}
	fprintf(f, " %" PRIu64 "\n", count->via.u64);
	return (0);
}

/* Joins the str items of an argv array with spaces, cleaned; a new
 * string, or NULL when out of memory. */
char *
render_argv(const msgpack_object *argv)
{
	const msgpack_object	*a;
	char			*out = NULL;
	size_t			 len = 0;
	uint32_t		 i;
	FILE			*f;

	if ((f = open_memstream(&out, &len)) == NULL)
		return (NULL);
	if (argv != NULL && argv->type == MSGPACK_OBJECT_ARRAY) {
		for (i = 0; i < argv->via.array.size; i++) {
			a = &argv->via.array.ptr[i];
			if (a->type != MSGPACK_OBJECT_STR)
				continue;
			if (i > 0)
				fputc(' ', f);
			fwrite(a->via.str.ptr, 1, a->via.str.size, f);
		}
	}
	if (fclose(f) != 0) {
		free(out);
		return (NULL);
	}
	render_clean(out, 0);
	return (out);
}
