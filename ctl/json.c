/* json.c -- a small JSON writer for printing msgpack reply bodies. */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

/*
 * Length of the valid UTF-8 sequence at s[0..len), or 0 if it is not one
 * (overlong forms, surrogates and code points past U+10FFFF are invalid).
 */
static size_t
json_utf8_len(const unsigned char *s, size_t len)
{
	uint32_t	cp;
	size_t		n, i;

	if (s[0] < 0x80)
		return (1);
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else
		return (0);
	if (len < n)
		return (0);
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return (0);
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return (0);
	return (n);
}

/*
 * Writes s[0..len) as a JSON string: quotes, backslashes and control
 * characters escaped, valid UTF-8 passed through, each invalid byte
 * replaced by U+FFFD so the output is always valid JSON.
 */
void
json_write_string(FILE *f, const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, n;

	fputc('"', f);
	while (i < len) {
		switch (p[i]) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (p[i] < 0x20 || p[i] == 0x7f) {
				fprintf(f, "\\u%04x", p[i]);
				break;
			}
			if ((n = json_utf8_len(p + i, len - i)) == 0) {
				fputs("\\ufffd", f);
				break;
			}
			fwrite(p + i, 1, n, f);
			i += n;
			continue;
		}
		i++;
	}
	fputc('"', f);
}

/* Writes a newline and the indent of `depth` when pretty. */
static void
json_newline(FILE *f, int pretty, int depth)
{
	if (pretty)
		fprintf(f, "\n%*s", depth * JSON_INDENT, "");
}

/* Writes a map key; JSON keys are strings, so others are quoted. */
static void
json_write_key(FILE *f, const msgpack_object *o)
{
	char	buf[32];
	int	n;

	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		json_write_string(f, o->via.str.ptr, o->via.str.size);
		return;
	case MSGPACK_OBJECT_BIN:
		json_write_string(f, o->via.bin.ptr, o->via.bin.size);
		return;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		n = snprintf(buf, sizeof buf, "%llu",
		    (unsigned long long)o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		n = snprintf(buf, sizeof buf, "%lld", (long long)o->via.i64);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		n = snprintf(buf, sizeof buf, "%s",
		    o->via.boolean ? "true" : "false");
		break;
	default:
		n = snprintf(buf, sizeof buf, "?");
		break;
	}
	json_write_string(f, buf, (size_t)n);
}

/* Writes one value at nesting `depth`. */
static void
json_write_value(FILE *f, const msgpack_object *o, int pretty, int depth)
{
	uint32_t	i;

	if (depth >= JSON_MAX_DEPTH) {
		fputs("null", f);
		return;
	}
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		fputs("null", f);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		fputs(o->via.boolean ? "true" : "false", f);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		fprintf(f, "%llu", (unsigned long long)o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		fprintf(f, "%lld", (long long)o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (isfinite(o->via.f64))
			fprintf(f, "%.17g", o->via.f64);
		else
			fputs("null", f);
		break;
	case MSGPACK_OBJECT_STR:
		json_write_string(f, o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_BIN:
		json_write_string(f, o->via.bin.ptr, o->via.bin.size);
		break;
	case MSGPACK_OBJECT_ARRAY:
		if (o->via.array.size == 0) {
			fputs("[]", f);
			break;
		}
		fputc('[', f);
		for (i = 0; i < o->via.array.size; i++) {
			if (i > 0)
				fputc(',', f);
			json_newline(f, pretty, depth + 1);
			json_write_value(f, &o->via.array.ptr[i], pretty,
			    depth + 1);
		}
		json_newline(f, pretty, depth);
		fputc(']', f);
		break;
	case MSGPACK_OBJECT_MAP:
		if (o->via.map.size == 0) {
			fputs("{}", f);
			break;
		}
		fputc('{', f);
		for (i = 0; i < o->via.map.size; i++) {
			if (i > 0)
				fputc(',', f);
			json_newline(f, pretty, depth + 1);
			json_write_key(f, &o->via.map.ptr[i].key);
			fputs(pretty ? ": " : ":", f);
			json_write_value(f, &o->via.map.ptr[i].val, pretty,
			    depth + 1);
		}
		json_newline(f, pretty, depth);
		fputc('}', f);
		break;
	default:
		fputs("null", f);
		break;
	}
}

/* Writes a msgpack value as JSON, indented when `pretty`. */
void
json_write(FILE *f, const msgpack_object *o, int pretty)
{
	json_write_value(f, o, pretty, 0);
}
