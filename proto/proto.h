/*
 * proto.h -- the profd wire protocol: the one contract between profagent,
 * profd and profctl.
 *
 * !!! Any incompatible change to a message below MUST bump PROTO_VERSION. !!!
 * Retired message types keep their number, marked unused; never reuse one.
 *
 * Framing: every message on every socket is a 4-byte big-endian payload
 * length followed by that many bytes holding exactly one msgpack array whose
 * first element is the message type:  [type, field, field, ...].
 * A reader checks the length against its limit before it decodes anything.
 *
 * Ids: an agent numbers the strings, functions, frames, stacks and threads it
 * defines on one connection densely from 1, each kind on its own counter, and
 * defines each one before the first message that refers to it.  A new
 * connection starts every counter again: definitions are sent once per
 * connection, then only ids.
 *
 * Resync (version 2): the daemon keeps a map from every wire id of a
 * connection to its own definition for as long as the connection lives.
 * To let a long-lived connection shed ids it no longer uses, the daemon
 * sends RESYNC with a token; the agent writes RESYNC_ACK with that token
 * into its stream after every message that refers to the old ids, and
 * from the ack on numbers every kind from 1 again and defines again what
 * it uses next, exactly as on a new connection (but with no new HELLO).
 * Until the ack arrives, the daemon must keep the old ids working.  An
 * agent that cannot write the ack hangs up instead (a new connection is a
 * new numbering anyway).  A version 1 agent never gets RESYNC: the daemon
 * closes such a connection instead, and the agent reconnects and defines
 * everything again.
 *
 * Versions and compatibility (version 3).  Upgrades roll: agents and
 * daemons of different releases meet, so each side speaks a range of
 * versions and they use the highest both speak.
 *  - The hello carries "version_min" and "version_max", the agent's range,
 *    and "version", the one version a daemon older than ranges (version 2
 *    and before) takes literally: PROTO_VERSION_COMPAT.  A hello with only
 *    "version" (versions 1 and 2) is the range [version, version].
 *  - The daemon uses min(version_max, PROTO_VERSION) when that is at least
 *    max(version_min, PROTO_VERSION_MIN).  It tells a version 3 agent the
 *    version in use as CONFIG's sixth field, and sends messages and fields
 *    of version N only to agents that negotiated N or more.
 *  - Otherwise it answers REJECT [202, daemon_min, daemon_max, reason],
 *    logs one line, counts it (agents_incompatible) and closes once the
 *    REJECT is written.  An agent given REJECT logs one line and stays
 *    away for AGENT_REJECT_BACKOFF_NS (minutes), not a reconnect loop.
 *  - Fields are only ever added at the end of a message; a decoder takes
 *    the fields it knows and skips any after them.  Unknown map keys (the
 *    hello, STATS, requests) are ignored.
 *  - Message types an agent does not know (from a newer daemon) are
 *    skipped: every daemon -> agent type is optional to the agent.
 *  - Agent -> daemon types PROTO_OPTIONAL_MIN..PROTO_OPTIONAL_MAX are
 *    optional: a daemon that does not know one skips it (counted,
 *    messages_skipped).  Any other unknown type is a protocol error, so a
 *    newer agent puts a message a daemon may not ignore below 150 and only
 *    sends it once the daemon has negotiated its version.
 *
 * Acknowledged batches (version 4, PROTO_VERSION_BATCH).  An agent numbers
 * its batches from 1 for the life of its process (not per connection) and
 * keeps them; on a connection it encodes them only once CONFIG has said
 * the version in use: as BATCH from version 4 on, else as SAMPLES (a
 * daemon that cannot acknowledge: a batch is let go once written).  The daemon persists, with the samples, the newest
 * number it stored for each process instance (host, pid, start_ns) and
 * skips a batch whose number it already has (a duplicate).  It sends ACK
 * with the newest number that is durable: on disk after a flush of the
 * state dir, or stored, without one; and once after a version 4 hello.
 * The agent keeps every batch until it is acknowledged and, on a new
 * connection, encodes the kept ones again (new wire ids, same numbers)
 * before anything newer.  A daemon sends ACK only to an agent that
 * negotiated version 4 or later, and closes one that sends BATCH without.  ACKs are cumulative and sent at most once per
 * flush (memory only: per housekeeping tick), and after the hello.
 *
 * Unreadable stacks per batch (version 5, PROTO_VERSION_INVALID).  A BATCH
 * carries, as its fifth field, how many thread stacks the agent left out
 * as torn or unreadable since its previous batch (its stat "invalid"), so
 * that the daemon can say which share of a window's stacks is missing.  A
 * batch may then hold no sample at all.  The agent adds the field only
 * on a connection that negotiated version 5; the daemon takes it only
 * from one; a batch without it says nothing (unknown, not zero).
 *
 * The mode of each batch (version 6, PROTO_VERSION_MODE).  A BATCH carries,
 * as its sixth field, the sampling mode (enum proto_mode) its samples were
 * taken in: an agent never mixes modes in one batch (it closes the batch
 * when its mode changes).  The daemon files the samples under that mode,
 * whatever the connection's setting is when they arrive: a batch sent
 * again after a reconnect, or in flight while `start --mode` changed the
 * setting, keeps the mode it was taken in.  Without the field (older
 * agents) the connection's setting is all there is.
 */
#ifndef PROTO_H
#define PROTO_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define PROTO_VERSION 6		/* the newest version spoken here */
#define PROTO_VERSION_MIN 1	/* the oldest version spoken here */
#define PROTO_VERSION_COMPAT 2	/* "version" of a hello, for old daemons */
#define PROTO_VERSION_BATCH 4	/* the first with BATCH and ACK */
#define PROTO_VERSION_INVALID 5	/* the first whose BATCH counts the stacks
				   left out */
#define PROTO_VERSION_MODE 6	/* the first whose BATCH says its mode */

/* Limits.  Every one is checked by the decoder; a peer over one is closed. */
#define PROTO_HEADER_SIZE	4		/* length prefix */
#define PROTO_MAX_MSG		(1u << 20)	/* agent/ctl -> daemon payload */
#define PROTO_MAX_REPLY		(256u << 20)	/* daemon -> ctl payload */
#define PROTO_MAX_STRING	4096		/* bytes in one string */
#define PROTO_MAX_DEPTH		256		/* frames in one stack */
#define PROTO_MAX_ARGV		64		/* argv entries in a hello */
#define PROTO_MAX_BATCH		8192		/* samples in one batch */
#define PROTO_MAX_ID		(1u << 24)	/* ids of any one kind */
#define PROTO_RATE_MIN		1		/* Hz */
#define PROTO_RATE_MAX		10000		/* Hz */
#define PROTO_RATE_DEFAULT	100		/* Hz */
#define PROTO_JITTER_MAX	50		/* +- percent of a period */
/* CPU budget of an agent's sampler, in hundredths of a percent of a core
 * (basis points): 0 is no budget; PROTO_OVERHEAD_UNSET (never on the
 * wire) is "not given": the agent keeps its own default. */
#define PROTO_OVERHEAD_MAX	10000		/* 100% */
#define PROTO_OVERHEAD_UNSET	UINT32_MAX

/* A stack deeper than PROTO_MAX_DEPTH keeps its innermost frames and is
 * marked truncated; viewers show a "[truncated]" root above it. */
#define PROTO_TRUNCATED_NAME	"[truncated]"

enum proto_type {
	/* 100s: agent -> daemon. */
	PROTO_HELLO = 100,	/* [100, {hello map}] */
	PROTO_STRING = 101,	/* [101, id, str] */
	PROTO_FUNC = 102,	/* [102, id, name sid, file sid, first line] */
	PROTO_FRAME = 103,	/* [103, id, func id, line] */
	PROTO_STACK = 104,	/* [104, id, truncated, [frame id leaf first...]] */
	PROTO_THREAD = 105,	/* [105, id, native tid, name sid] */
	PROTO_SAMPLES = 106,	/* [106, base_ns, [stack, thread, dt_us,
				    weight_us, flags] * n, flattened] */
	PROTO_STATS = 107,	/* [107, {counter name: uint}] */
	PROTO_RESYNC_ACK = 108,	/* [108, token]: ids numbered anew from here
				    (v2) */
	/* 150..199: optional agent -> daemon messages (see above). */
	PROTO_BATCH = 109,	/* [109, seq, base_ns, flattened]: SAMPLES
				    with the agent's batch number (v4);
				    [..., invalid] (v5), [..., mode] (v6) */

	/* 200s: daemon -> agent. */
	PROTO_CONFIG = 200,	/* [200, profiling, rate_hz, mode, reader,
				    jitter_pct] and, to v3 agents,
				    [..., version in use] and, when one
				    was given, [..., max_overhead_bp] */
	PROTO_RESYNC = 201,	/* [201, token]: forget every wire id of this
				    connection; define again what you use
				    next (v2 agents only) */
	PROTO_REJECT = 202,	/* [202, daemon_min, daemon_max, reason]:
				    no common version; closing (v3) */
	PROTO_ACK = 203,	/* [203, seq]: batches up to seq are durable;
				    drop them (v4 agents only) */

	/* 300s: profctl -> daemon. */
	PROTO_REQUEST = 300,	/* [300, command str, {arg map}] */

	/* 400s: daemon -> profctl. */
	PROTO_REPLY = 400,	/* [400, ok bool, body (map, or error str)] */
};
#define PROTO_OPTIONAL_MIN 150	/* agent -> daemon types a daemon may skip */
#define PROTO_OPTIONAL_MAX 199

/* Hello map keys: "version" uint, "version_min" uint, "version_max" uint
 * (v3), "pid" uint, "ppid" uint, "host" str,
 * "service" str, "python" str, "start_ns" uint (CLOCK_REALTIME),
 * "reader" str, "argv" [str...]. */

/* Sample flags. */
#define PROTO_SAMPLE_ONCPU	0x1u	/* thread was running, not waiting */
#define PROTO_SAMPLE_GIL	0x2u	/* thread held the GIL */
#define PROTO_SAMPLE_FLAGS	0x3u	/* every known flag */
#define PROTO_SAMPLE_FIELDS	5	/* uints per sample in a batch */

/* Sampling modes (CONFIG mode). */
enum proto_mode {
	PROTO_MODE_WALL = 0,	/* every thread, weight = wall time */
	PROTO_MODE_CPU = 1,	/* threads that ran, weight = CPU time */
	PROTO_MODE_GIL = 2,	/* the GIL holder only */
};
#define PROTO_MODE_LAST PROTO_MODE_GIL

/* Stack readers (CONFIG reader). */
enum proto_reader {
	PROTO_READER_DEFAULT = 0,	/* the agent's own choice */
	PROTO_READER_GIL = 1,		/* public C API under the GIL */
	PROTO_READER_DIRECT = 2,	/* GIL-free copy of interpreter state */
};
#define PROTO_READER_LAST PROTO_READER_DIRECT

/*
 * Agent counters, reported in PROTO_STATS and shown by `profctl status`.
 * Listed once here: X(name, description).
 */
#define PROTO_AGENT_STATS(X)						\
	X(ticks, "sampler wake-ups while profiling")			\
	X(samples, "thread stacks captured")				\
	X(invalid, "stacks discarded as torn or unreadable")		\
	X(dropped, "samples dropped: buffer full or connection lost")	\
	X(truncated, "stacks cut at the maximum depth")			\
	X(sampler_ns, "CPU time of the sampler thread, ns")		\
	X(work_ns, "of that, capturing, interning and encoding, ns")	\
	X(bytes_sent, "bytes written to the daemon")			\
	X(sample_bytes, "bytes of sample records encoded")		\
	X(connects, "connections made to the daemon")			\
	X(resyncs, "wire ids renumbered at the daemon's request")	\
	X(rejects, "connections the daemon refused: no common version") \
	X(replayed, "samples sent again on a new connection, unacked")	\
	X(rate_hz, "sampling rate asked, Hz")				\
	X(achieved_mhz, "sampling rate achieved, milli-Hz")		\
	X(reader, "stack reader in effect: 1 gil, 2 direct")		\
	X(threads_skipped, "threads left out of a tick: over the cap")	\
	X(fds_lost, "agent descriptors the host closed or reused")	\
	X(max_overhead_bp, "CPU budget in force, 1/100 % of a core")	\
	X(effective_mhz, "sampling rate in force, milli-Hz")		\
	X(rate_reason, "why that rate: 0 asked, 1 budget")		\
	X(layout, "direct reader's layout: 0 none (GIL reader), "	\
	    "1 the build's headers, 2 the interpreter's debug offsets")	\
	X(layout_moved, "layout fields the interpreter places elsewhere " \
	    "than the build's headers")				\
	X(discarded, "samples taken on the published settings, refused by CONFIG") \
	X(made_up, "missed ticks a late tick stood in for (samples repeated)") \
	X(samples_made_up, "of samples, the repeats for those ticks")	\
	X(missed, "ticks lost: late past what one tick stands in for")

/* Decoded messages.  Pointers point into the msgpack zone of the decode. */
struct proto_hello {
	uint64_t	 version;
	uint64_t	 version_min;	/* "version" when absent */
	uint64_t	 version_max;	/* "version" when absent */
	uint64_t	 pid;
	uint64_t	 ppid;
	uint64_t	 start_ns;
	const char	*host;		uint32_t host_len;
	const char	*service;	uint32_t service_len;
	const char	*python;	uint32_t python_len;
	const char	*reader;	uint32_t reader_len;
	const msgpack_object *argv;	/* validated: array of str */
	uint32_t	 argc;
};

struct proto_sample {
	uint32_t	stack;
	uint32_t	thread;
	uint32_t	dt_us;
	uint32_t	weight_us;
	uint32_t	flags;
};

struct proto_msg {
	enum proto_type	type;
	union {
		struct proto_hello hello;
		struct { uint32_t id; const char *str; uint32_t len; } string;
		struct { uint32_t id, name, file, line; } func;
		struct { uint32_t id, func, line; } frame;
		struct {
			uint32_t id;
			int truncated;
			uint32_t depth;
			const msgpack_object *frames;	/* leaf first */
		} stack;
		struct { uint32_t id; uint64_t tid; uint32_t name; } thread;
		struct {
			uint64_t seq;		/* BATCH; 0 for SAMPLES */
			uint64_t base_ns;
			uint32_t count;
			const msgpack_object *fields;
			int	 has_invalid;	/* BATCH of v5 */
			uint32_t invalid;	/* stacks left out */
			int	 has_mode;	/* BATCH of v6 */
			uint32_t mode;		/* taken in (enum proto_mode) */
		} samples;
		struct { const msgpack_object_map *map; } stats;
		struct {
			int profiling;
			uint32_t rate_hz;
			uint32_t mode;
			uint32_t reader;
			uint32_t jitter_pct;
			uint32_t version;	/* 0: not said (v1, v2) */
			uint32_t max_overhead_bp;	/* or _UNSET */
		} config;
		struct {
			uint32_t min, max;
			const char *reason; uint32_t reason_len;
		} reject;
		struct { uint32_t token; } resync;	/* and its ack */
		struct { uint64_t seq; } ack;
		struct {
			const char *command; uint32_t command_len;
			const msgpack_object_map *args;
		} request;
		struct {
			int ok;
			const msgpack_object *body;
		} reply;
	};
};

/*
 * A sink is a contiguous output buffer with a msgpack packer writing into
 * it.  Encoders write whole frames into a sink and never know where the
 * bytes go next (a socket, a test, a file).  A growable sink reallocs up to
 * `max`; a fixed sink never allocates.  A frame that does not fit is rolled
 * back whole and its encoder returns -1.
 */
struct proto_sink {
	char		*data;
	size_t		 len;
	size_t		 cap;
	size_t		 max;
	int		 fixed;
	int		 full;		/* a write did not fit */
	msgpack_packer	 pk;
};

void	proto_sink_init(struct proto_sink *, size_t max);
void	proto_sink_init_fixed(struct proto_sink *, char *buf, size_t cap);
void	proto_sink_free(struct proto_sink *);
/* Drops the first n bytes (sent ones). */
void	proto_sink_consume(struct proto_sink *, size_t n);

/* Starts a frame of `nfields` fields after the type; returns its offset. */
size_t	proto_begin(struct proto_sink *, enum proto_type, size_t nfields);
/* Ends the frame begun at `start`: 0, or -1 (rolled back) if it overflowed. */
int	proto_end(struct proto_sink *, size_t start);

/*
 * Looks for one complete frame at buf[0..len).  Returns 1 and sets *payload,
 * *payload_len and *frame_len when one is there, 0 when more bytes are
 * needed, -1 when the announced length exceeds max (the peer is bad).
 */
int	proto_frame_peek(const char *buf, size_t len, size_t max,
	    const char **payload, size_t *payload_len, size_t *frame_len);

/*
 * Decodes and validates one payload into *msg, using *up for storage (the
 * caller owns *up: msgpack_unpacked_init before, msgpack_unpacked_destroy
 * after).  Returns 0, or -1 with *err set to a short static reason.
 */
int	proto_decode(const char *payload, size_t len, msgpack_unpacked *up,
	    struct proto_msg *msg, const char **err);

/* Fetches sample i of a decoded PROTO_SAMPLES message. */
void	proto_sample_get(const struct proto_msg *, uint32_t i,
	    struct proto_sample *);

/* Encoders: each writes one whole frame; 0, or -1 when it did not fit. */
int	proto_send_hello(struct proto_sink *, const struct proto_hello *,
	    const char *const *argv, uint32_t argc);
int	proto_send_string(struct proto_sink *, uint32_t id, const char *,
	    size_t);
int	proto_send_func(struct proto_sink *, uint32_t id, uint32_t name,
	    uint32_t file, uint32_t line);
int	proto_send_frame(struct proto_sink *, uint32_t id, uint32_t func,
	    uint32_t line);
int	proto_send_stack(struct proto_sink *, uint32_t id, int truncated,
	    const uint32_t *frames, uint32_t depth);
int	proto_send_thread(struct proto_sink *, uint32_t id, uint64_t tid,
	    uint32_t name);
int	proto_send_samples(struct proto_sink *, uint64_t base_ns,
	    const struct proto_sample *, uint32_t count);
/* BATCH: samples with the agent's batch number (seq >= 1), and its ACK. */
int	proto_send_batch(struct proto_sink *, uint64_t seq, uint64_t base_ns,
	    const struct proto_sample *, uint32_t count);
/* The version 5 BATCH: the same, then the stacks left out since the
 * previous batch. */
int	proto_send_batch_v5(struct proto_sink *, uint64_t seq,
	    uint64_t base_ns, const struct proto_sample *, uint32_t count,
	    uint32_t invalid);
/* The version 6 BATCH: the same, then the mode its samples were taken in. */
int	proto_send_batch_v6(struct proto_sink *, uint64_t seq,
	    uint64_t base_ns, const struct proto_sample *, uint32_t count,
	    uint32_t invalid, uint32_t mode);
int	proto_send_ack(struct proto_sink *, uint64_t seq);
/* Stats: values in PROTO_AGENT_STATS order. */
int	proto_send_stats(struct proto_sink *, const uint64_t *values);
int	proto_send_config(struct proto_sink *, int profiling, uint32_t rate_hz,
	    uint32_t mode, uint32_t reader, uint32_t jitter_pct);
/* The version 3 CONFIG: the same, then the version in use, then the
 * budget unless it is PROTO_OVERHEAD_UNSET. */
int	proto_send_config_v3(struct proto_sink *, int profiling,
	    uint32_t rate_hz, uint32_t mode, uint32_t reader,
	    uint32_t jitter_pct, uint32_t version, uint32_t max_overhead_bp);
/* REJECT: this side's version range and why. */
int	proto_send_reject(struct proto_sink *, uint32_t min, uint32_t max,
	    const char *reason);
/*
 * The version both ends of a hello speak (see "Versions" above): 0, or -1
 * when they have none in common.
 */
int	proto_negotiate(const struct proto_hello *, uint32_t *version);
/*
 * Whether a payload that proto_decode() refused is a well-formed message
 * of a type this build does not know that its receiver may skip (see
 * "Versions" above); sets *type.  `to_agent`: the receiver is an agent.
 */
int	proto_skippable(const msgpack_unpacked *, int to_agent,
	    uint64_t *type);
/* RESYNC (daemon -> agent) and its RESYNC_ACK (agent -> daemon). */
int	proto_send_resync(struct proto_sink *, uint32_t token);
int	proto_send_resync_ack(struct proto_sink *, uint32_t token);
/* Requests and replies: begin the frame, then pack the map/body with
 * sink->pk, then proto_end(). */
size_t	proto_begin_request(struct proto_sink *, const char *command,
	    size_t nargs);
size_t	proto_begin_reply(struct proto_sink *, int ok);
int	proto_send_error(struct proto_sink *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* Map helpers for maps decoded from the wire: NULL when absent. */
const msgpack_object *proto_map_get(const msgpack_object_map *, const char *);
int	proto_map_uint(const msgpack_object_map *, const char *, uint64_t *);
int	proto_map_bool(const msgpack_object_map *, const char *, int *);
/* Copies a str value into a NUL-terminated buffer, truncating. */
int	proto_map_str(const msgpack_object_map *, const char *, char *, size_t);

/* Names of modes and readers, and back; -1 when unknown. */
const char *proto_mode_name(uint32_t);
int	proto_mode_parse(const char *);
const char *proto_reader_name(uint32_t);
int	proto_reader_parse(const char *);

/* Parses a percent of a core, "1", "0.5", "12.25" (at most two decimals,
 * 0 to 100), into basis points; 0, or -1. */
int	proto_overhead_parse(const char *, uint32_t *bp);
/* Rate reasons (stat rate_reason). */
#define PROTO_REASON_ASKED	0
#define PROTO_REASON_BUDGET	1

/* Packs a NUL-terminated string. */
int	proto_pack_cstr(msgpack_packer *, const char *);
/* Counter names of PROTO_AGENT_STATS, in order, and their count. */
extern const char *const proto_agent_stat_names[];
extern const size_t proto_agent_stat_count;

#endif
