/* stats.c -- the daemon's counters. */

#include <string.h>

#include "proto.h"
#include "stats.h"

/* Written and read by the event loop thread only. */
struct daemon_stats daemon_stats;

/* Packs every counter as one map {name: uint}. */
int
stats_pack(msgpack_packer *pk, const struct daemon_stats *st)
{
	size_t	n = 0;

#define DAEMON_STATS_COUNT(name, desc) n++;
	DAEMON_STATS(DAEMON_STATS_COUNT)
#undef DAEMON_STATS_COUNT
	if (msgpack_pack_map(pk, n) != 0)
		return (-1);
#define DAEMON_STATS_PACK(name, desc)					\
	if (proto_pack_cstr(pk, #name) != 0 ||				\
	    msgpack_pack_uint64(pk, st->name) != 0)			\
		return (-1);
	DAEMON_STATS(DAEMON_STATS_PACK)
#undef DAEMON_STATS_PACK
	return (0);
}
