/*
 * render.h -- text output of profctl: aligned tables, folded stacks,
 * percentages and durations.
 */
#ifndef RENDER_H
#define RENDER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <msgpack.h>

#define RENDER_COLUMN_GAP	2	/* spaces between table columns */
#define RENDER_LAST_MIN		16	/* never cut the last column below */
#define RENDER_ELLIPSIS		"..."	/* marks a cut inside a cell */

struct render_table;

struct render_table *render_table_create(size_t ncols,
	    const char *const *headers, const char *align);
void	render_table_free(struct render_table *);
int	render_table_add(struct render_table *, const char *const *cells);
void	render_table_print(const struct render_table *, FILE *, size_t width);

size_t	render_width(FILE *);
size_t	render_strwidth(const char *);
char   *render_cut(const char *, size_t width);
void	render_percent(char *, size_t, uint64_t part, uint64_t whole);
void	render_duration(char *, size_t, uint64_t seconds);
char   *render_frame_label(const char *name, size_t name_len,
	    const char *file, size_t file_len, uint64_t line);
void	render_clean(char *, int folded);
int	render_folded_stack(FILE *, const msgpack_object *stack);
char   *render_argv(const msgpack_object *argv);

#endif
