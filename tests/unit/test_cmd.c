/* test_cmd.c -- profctl's command table and option checks. */

#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <msgpack.h>

#include "cmd.h"
#include "proto.h"

Test(cmd, finds_commands_by_name)
{
	const char	*err;

	cr_assert_eq(cmd_find("status", &err), &cmd_status_entry);
	cr_assert_eq(cmd_find("start", &err), &cmd_start_entry);
	cr_assert_eq(cmd_find("stop", &err), &cmd_stop_entry);
	cr_assert_eq(cmd_find("show", &err), &cmd_show_entry);
	cr_assert_eq(cmd_find("reset", &err), &cmd_reset_entry);
}

Test(cmd, finds_commands_by_unique_prefix)
{
	const char	*err;

	cr_assert_eq(cmd_find("sh", &err), &cmd_show_entry);
	cr_assert_eq(cmd_find("sto", &err), &cmd_stop_entry);
	cr_assert_eq(cmd_find("res", &err), &cmd_reset_entry);
	cr_assert_eq(cmd_find("rel", &err), &cmd_reload_entry);
}

Test(cmd, rejects_ambiguous_and_unknown_names)
{
	const char	*err;

	cr_assert_null(cmd_find("st", &err));
	cr_assert_str_eq(err, "ambiguous command");
	cr_assert_null(cmd_find("r", &err));
	cr_assert_str_eq(err, "ambiguous command");
	cr_assert_null(cmd_find("frob", &err));
	cr_assert_str_eq(err, "unknown command");
	cr_assert_null(cmd_find("", &err));
	cr_assert_null(cmd_find("statusx", &err));
}

Test(cmd, every_table_entry_is_complete_and_unique)
{
	const struct cmd_entry *const	*e, *const *f;
	size_t				 n = 0;

	for (e = cmd_table; *e != NULL; e++, n++) {
		cr_assert_not_null((*e)->name);
		cr_assert_not_null((*e)->usage);
		cr_assert_not_null((*e)->summary);
		cr_assert_not_null((*e)->help);
		cr_assert_not_null((*e)->exec);
		cr_assert_null(strchr((*e)->summary, '\n'));
		for (f = e + 1; *f != NULL; f++)
			cr_assert_str_neq((*e)->name, (*f)->name);
	}
	cr_assert_eq(n, 8);
}

Test(cmd, accepts_rates_in_protocol_range_only)
{
	uint64_t	v = 0;

	cr_assert_eq(cmd_parse_uint("1", PROTO_RATE_MIN, PROTO_RATE_MAX, &v),
	    0);
	cr_assert_eq(v, 1);
	cr_assert_eq(cmd_parse_uint("10000", PROTO_RATE_MIN, PROTO_RATE_MAX,
	    &v), 0);
	cr_assert_eq(v, 10000);
	cr_assert_eq(cmd_parse_uint("0", PROTO_RATE_MIN, PROTO_RATE_MAX, &v),
	    -1);
	cr_assert_eq(cmd_parse_uint("10001", PROTO_RATE_MIN, PROTO_RATE_MAX,
	    &v), -1);
}

Test(cmd, rejects_numbers_that_are_not_plain_decimals)
{
	uint64_t	v = 7;
	const char	*bad[] = { "", "-1", "+1", " 1", "1 ", "1k", "0x10",
			    "1.5", "99999999999999999999999", NULL };
	size_t		i;

	for (i = 0; bad[i] != NULL; i++)
		cr_assert_eq(cmd_parse_uint(bad[i], 0, UINT64_MAX, &v), -1,
		    "accepted '%s'", bad[i]);
	cr_assert_eq(v, 7, "output untouched on error");
	cr_assert_eq(cmd_parse_uint(NULL, 0, 1, &v), -1);
}

Test(cmd, parses_formats_folded_only_where_allowed)
{
	enum cmd_format	f;

	cr_assert_eq(cmd_parse_format("table", 0, &f), 0);
	cr_assert_eq(f, CMD_FORMAT_TABLE);
	cr_assert_eq(cmd_parse_format("json", 0, &f), 0);
	cr_assert_eq(f, CMD_FORMAT_JSON);
	cr_assert_eq(cmd_parse_format("folded", 0, &f), -1);
	cr_assert_eq(cmd_parse_format("folded", 1, &f), 0);
	cr_assert_eq(f, CMD_FORMAT_FOLDED);
	cr_assert_eq(cmd_parse_format("JSON", 1, &f), -1);
}

Test(cmd, collects_valid_pids_and_rejects_bad_ones)
{
	struct cmd_pids	 p = { NULL, 0, 0 };
	const char	*err;
	char		 buf[16];
	int		 i;

	for (i = 1; i <= 20; i++) {
		snprintf(buf, sizeof buf, "%d", i * 100);
		cr_assert_eq(cmd_pids_add(&p, buf, &err), 0);
	}
	cr_assert_eq(p.n, 20);
	cr_assert_eq(p.v[19], 2000);
	cr_assert_eq(cmd_pids_add(&p, "0", &err), -1);
	cr_assert_str_eq(err, "not a process id");
	cr_assert_eq(cmd_pids_add(&p, "-3", &err), -1);
	cr_assert_eq(cmd_pids_add(&p, "2147483648", &err), -1);
	cr_assert_eq(cmd_pids_add(&p, "abc", &err), -1);
	cr_assert_eq(p.n, 20);
	cmd_pids_free(&p);
	cr_assert_null(p.v);
}

Test(cmd, limits_the_number_of_pids)
{
	struct cmd_pids	 p = { NULL, 0, 0 };
	const char	*err;
	size_t		 i;

	for (i = 0; i < CMD_MAX_PIDS; i++)
		cr_assert_eq(cmd_pids_add(&p, "42", &err), 0);
	cr_assert_eq(cmd_pids_add(&p, "42", &err), -1);
	cr_assert_str_eq(err, "too many --pid options");
	cmd_pids_free(&p);
}

Test(cmd, packs_pids_as_one_map_entry)
{
	struct cmd_pids		 p = { NULL, 0, 0 };
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	msgpack_unpacked	 up;
	const msgpack_object	*pids;
	const char		*err;

	cmd_pids_add(&p, "12", &err);
	cmd_pids_add(&p, "34", &err);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	cr_assert_eq(cmd_pack_pids(&pk, &p), 0);
	msgpack_unpacked_init(&up);
	cr_assert_eq(msgpack_unpack_next(&up, sb.data, sb.size, NULL),
	    MSGPACK_UNPACK_SUCCESS);
	pids = proto_map_get(&up.data.via.map, "pids");
	cr_assert_not_null(pids);
	cr_assert_eq(pids->type, MSGPACK_OBJECT_ARRAY);
	cr_assert_eq(pids->via.array.size, 2);
	cr_assert_eq(pids->via.array.ptr[0].via.u64, 12);
	cr_assert_eq(pids->via.array.ptr[1].via.u64, 34);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	cmd_pids_free(&p);
}

Test(cmd, picks_singular_only_for_one)
{
	cr_assert_str_eq(cmd_plural(1, "process", "processes"), "process");
	cr_assert_str_eq(cmd_plural(0, "process", "processes"), "processes");
	cr_assert_str_eq(cmd_plural(2, "process", "processes"), "processes");
}
