/*
 * json.h -- a small JSON writer for printing msgpack reply bodies.
 */
#ifndef JSON_H
#define JSON_H

#include <stddef.h>
#include <stdio.h>

#include <msgpack.h>

#define JSON_MAX_DEPTH	64	/* deeper values are written as null */
#define JSON_INDENT	2	/* spaces per level when pretty */

void	json_write_string(FILE *, const char *, size_t);
void	json_write(FILE *, const msgpack_object *, int pretty);

#endif
