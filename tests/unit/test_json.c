/* test_json.c -- the JSON writer of profctl. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <msgpack.h>

#include "json.h"

/* Runs json_write_string on s[0..len) and returns the output. */
static char *
escape(const char *s, size_t len)
{
	char	*out = NULL;
	size_t	 n = 0;
	FILE	*f = open_memstream(&out, &n);

	cr_assert_not_null(f);
	json_write_string(f, s, len);
	fclose(f);
	return (out);
}

/* Packs with `pack`, unpacks, writes as JSON and returns the output. */
static char *
to_json(void (*pack)(msgpack_packer *), int pretty)
{
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	msgpack_unpacked	 up;
	char			*out = NULL;
	size_t			 n = 0;
	FILE			*f;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pack(&pk);
	msgpack_unpacked_init(&up);
	cr_assert_eq(msgpack_unpack_next(&up, sb.data, sb.size, NULL),
	    MSGPACK_UNPACK_SUCCESS);
	f = open_memstream(&out, &n);
	json_write(f, &up.data, pretty);
	fclose(f);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	return (out);
}

static void
pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

static void
pack_body(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 5);
	pack_str(pk, "samples");
	msgpack_pack_uint64(pk, 18446744073709551615ull);
	pack_str(pk, "neg");
	msgpack_pack_int64(pk, -5);
	pack_str(pk, "ok");
	msgpack_pack_true(pk);
	pack_str(pk, "list");
	msgpack_pack_array(pk, 3);
	msgpack_pack_nil(pk);
	msgpack_pack_double(pk, 1.5);
	pack_str(pk, "a\"b");
	pack_str(pk, "empty");
	msgpack_pack_map(pk, 0);
}

static void
pack_nested(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 1);
	pack_str(pk, "a");
	msgpack_pack_array(pk, 2);
	msgpack_pack_uint32(pk, 1);
	msgpack_pack_array(pk, 0);
}

static void
pack_odd_keys(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	msgpack_pack_uint32(pk, 7);
	msgpack_pack_true(pk);
	msgpack_pack_float(pk, 0.0f / 0.0f);
	msgpack_pack_nil(pk);
}

Test(json, escapes_quote_and_backslash)
{
	cr_assert_str_eq(escape("a\"b\\c", 5), "\"a\\\"b\\\\c\"");
}

Test(json, escapes_control_characters)
{
	cr_assert_str_eq(escape("\n\r\t\b\f", 5), "\"\\n\\r\\t\\b\\f\"");
	cr_assert_str_eq(escape("\x01\x1f\x7f", 3),
	    "\"\\u0001\\u001f\\u007f\"");
}

Test(json, escapes_embedded_nul)
{
	cr_assert_str_eq(escape("a\0b", 3), "\"a\\u0000b\"");
}

Test(json, passes_valid_utf8_through)
{
	const char	*s = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d";

	char *out = escape(s, strlen(s));
	cr_assert_str_eq(out, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d\"");
	free(out);
}

Test(json, replaces_invalid_utf8)
{
	/* stray continuation, truncated sequence, overlong '/', surrogate */
	cr_assert_str_eq(escape("\x80", 1), "\"\\ufffd\"");
	cr_assert_str_eq(escape("a\xe2\x82", 3), "\"a\\ufffd\\ufffd\"");
	cr_assert_str_eq(escape("\xc0\xaf", 2), "\"\\ufffd\\ufffd\"");
	cr_assert_str_eq(escape("\xed\xa0\x80", 3),
	    "\"\\ufffd\\ufffd\\ufffd\"");
	cr_assert_str_eq(escape("\xf4\x90\x80\x80", 4),
	    "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
}

Test(json, writes_every_msgpack_type_compact)
{
	cr_assert_str_eq(to_json(pack_body, 0),
	    "{\"samples\":18446744073709551615,\"neg\":-5,\"ok\":true,"
	    "\"list\":[null,1.5,\"a\\\"b\"],\"empty\":{}}");
}

Test(json, indents_when_pretty)
{
	cr_assert_str_eq(to_json(pack_nested, 1),
	    "{\n  \"a\": [\n    1,\n    []\n  ]\n}");
}

Test(json, quotes_non_string_keys_and_nulls_nan)
{
	cr_assert_str_eq(to_json(pack_odd_keys, 0),
	    "{\"7\":true,\"?\":null}");
}

Test(json, stops_at_max_depth)
{
	/* Built by hand: msgpack-c's unpacker refuses this depth itself. */
	msgpack_object	 o[JSON_MAX_DEPTH + 10];
	char		*out = NULL;
	size_t		 n = 0, i;
	FILE		*f = open_memstream(&out, &n);

	for (i = 0; i < JSON_MAX_DEPTH + 9; i++) {
		o[i].type = MSGPACK_OBJECT_ARRAY;
		o[i].via.array.size = 1;
		o[i].via.array.ptr = &o[i + 1];
	}
	o[i].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
	o[i].via.u64 = 1;
	json_write(f, &o[0], 0);
	fclose(f);
	cr_assert_not_null(strstr(out, "[null]"));
	cr_assert_null(strstr(out, "1"));
	cr_assert_eq(strspn(out, "["), JSON_MAX_DEPTH);
	free(out);
}
