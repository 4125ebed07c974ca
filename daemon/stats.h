/*
 * stats.h -- the daemon's counters, listed once: X(name, description).
 * The list makes both the struct and the "daemon" map of `status`.
 */
#ifndef STATS_H
#define STATS_H

#include <stdint.h>

#include <msgpack.h>

#define DAEMON_STATS(X)							\
	X(agents_accepted, "agent connections accepted")		\
	X(agents_rejected, "agent connections refused: max-agents")	\
	X(agents_rejected_uid, "agent connections refused: max-agents-per-uid") \
	X(hello_claims_refused, "hellos claiming another pid, filed under their own") \
	X(hello_identity_refused, "agents refused: process gone or another user's") \
	X(agents_closed, "agent connections ended")			\
	X(controls_accepted, "control connections accepted")		\
	X(controls_rejected, "control connections refused: max-controls") \
	X(controls_denied, "control requests refused: not allowed") \
	X(accept_errors, "accept() failures")				\
	X(accept_pauses, "times accepting paused for lack of fds")	\
	X(bad_frames, "frames that closed their sender")		\
	X(protocol_errors, "of those, decodable but against the protocol")	\
	X(hello_timeouts, "agents closed for sending no hello")		\
	X(frame_timeouts, "peers closed for a frame not whole in time") \
	X(frame_deadlines_waived, "frame deadlines restarted: the peer's bytes were waiting on profd") \
	X(control_timeouts, "control connections closed idle")		\
	X(reply_timeouts, "control connections closed not reading a reply") \
	X(agents_evicted, "idle agents closed to let a new one in")	\
	X(controls_evicted, "idle control connections closed for a new one") \
	X(replies_refused, "replies refused: others' unread replies too big") \
	X(memory_closes, "peers closed over the connections' memory budget") \
	X(conn_bytes, "bytes held by connections' tables and buffers")	\
	X(alloc_failures, "allocations that failed, answered by a close")	\
	X(agents_incompatible, "agents refused: no protocol version in common") \
	X(messages_skipped, "optional agent messages of unknown types skipped") \
	X(output_overflows, "peers closed for not reading replies")	\
	X(bytes_received, "bytes received from agents")			\
	X(messages_received, "messages received from agents")		\
	X(samples_received, "samples received from agents")		\
	X(samples_duplicate, "samples received again, already stored: skipped") \
	X(acks_sent, "acknowledgements of durable batches sent")	\
	X(ids_unmapped, "agent ids past max-ids, their samples dropped") \
	X(samples_stored, "samples added to the store")			\
	X(samples_late, "samples older than the open buckets, kept")	\
	X(samples_dropped, "samples dropped: unknown stack or no memory") \
	X(expired_samples, "samples dropped past the retention")	\
	X(evicted_samples, "samples dropped for max-memory, oldest first") \
	X(evicted_buckets, "buckets dropped for max-memory")		\
	X(spilled_samples, "samples past max-memory kept on disk only")	\
	X(spilled_buckets, "buckets past max-memory kept on disk only")	\
	X(disk_buckets, "buckets only on disk, read there by queries")	\
	X(disk_samples, "samples in those buckets")			\
	X(disk_expired_samples, "samples on disk only, dropped past the retention") \
	X(disk_dropped_samples, "samples on disk only, dropped for max-disk") \
	X(disk_dropped_buckets, "buckets on disk only, dropped for max-disk") \
	X(disk_bytes, "bytes of the store's file, with its WAL")		\
	X(disk_unreadable, "reads of buckets only on disk that failed")	\
	X(disk_rollups, "pairs of buckets only on disk rolled up into one") \
	X(disk_rollup_failures, "roll-ups on disk that failed (retried a " \
	    "minute later)")						\
	X(disk_unchecked, "of those, left unread by the load at start and "	\
	    "not checked yet")							\
	X(rollups, "buckets merged into coarser ones")			\
	X(sweeps, "definition sweeps run")				\
	X(reclaimed, "definitions freed by sweeps")			\
	X(resyncs, "agents asked to define their ids again")		\
	X(store_refused, "definitions refused: memory full")		\
	X(store_stacks, "distinct stacks stored")			\
	X(store_threads, "threads stored")				\
	X(store_instances, "process instances stored")			\
	X(store_buckets, "time buckets held")				\
	X(store_entries, "aggregated counters held")			\
	X(store_bytes, "bytes used by the store")			\
	X(store_def_bytes, "of those, by definitions")			\
	X(store_retired_bytes, "of those, by buckets gone from the store that running shows have yet to read") \
	X(store_retired_buckets, "buckets gone from the store that running shows have yet to read") \
	X(persist_flushes, "writes of the store to disk")		\
	X(persist_errors, "failed writes of the store to disk")		\
	X(publish_errors, "failed writes of the sampling settings file") \
	X(query_us_last, "time of the last query, microseconds")	\
	X(query_us_max, "longest query, microseconds")			\
	X(queries_timed_out, "shows ended at --query-timeout")		\
	X(shows_encoded_aside, "shows whose stack format was encoded beside the event loop") \
	X(queries_waited, "shows that waited for a turn (max-queries, a reset)") \
	X(agents_forgotten, "disconnected agents dropped from status")	\
	X(requests, "control requests answered")			\
	X(request_errors, "control requests answered with an error")

struct daemon_stats {
#define DAEMON_STATS_FIELD(name, desc) uint64_t name;
	DAEMON_STATS(DAEMON_STATS_FIELD)
#undef DAEMON_STATS_FIELD
};

/* The counters: event loop thread only. */
extern struct daemon_stats daemon_stats;

/* Packs every counter as one map {name: uint}. */
int	stats_pack(msgpack_packer *, const struct daemon_stats *);

#endif
