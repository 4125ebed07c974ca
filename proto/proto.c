/* proto.c -- encoder and decoder of the profd wire protocol (proto.h). */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define X(name, desc) #name,
const char *const proto_agent_stat_names[] = { PROTO_AGENT_STATS(X) };
#undef X
const size_t proto_agent_stat_count =
    sizeof proto_agent_stat_names / sizeof proto_agent_stat_names[0];

static const char *const proto_mode_names[] = { "wall", "cpu", "gil" };
static const char *const proto_reader_names[] = { "default", "gil", "direct" };

/* msgpack write callback: appends to the sink, or marks it full. */
static int
proto_sink_write(void *data, const char *buf, size_t len)
{
	struct proto_sink	*sink = data;
	size_t			 want, cap;
	char			*p;

	if (sink->full)
		return (-1);
	want = sink->len + len;
	if (want > sink->cap) {
		if (sink->fixed || want > sink->max) {
			sink->full = 1;
			return (-1);
		}
		cap = sink->cap ? sink->cap : 4096;
		while (cap < want)
			cap *= 2;
		if (cap > sink->max)
			cap = sink->max;
		if ((p = realloc(sink->data, cap)) == NULL) {
			sink->full = 1;
			return (-1);
		}
		sink->data = p;
		sink->cap = cap;
	}
	if (len > 0)
		memcpy(sink->data + sink->len, buf, len);
	sink->len += len;
	return (0);
}

/* Initialises a growable sink that never grows past max bytes. */
void
proto_sink_init(struct proto_sink *sink, size_t max)
{
	memset(sink, 0, sizeof *sink);
	sink->max = max;
	msgpack_packer_init(&sink->pk, sink, proto_sink_write);
}

/* Initialises a sink over a fixed buffer; it never allocates. */
void
proto_sink_init_fixed(struct proto_sink *sink, char *buf, size_t cap)
{
	memset(sink, 0, sizeof *sink);
	sink->data = buf;
	sink->cap = cap;
	sink->max = cap;
	sink->fixed = 1;
	msgpack_packer_init(&sink->pk, sink, proto_sink_write);
}

/* Frees a growable sink's buffer. */
void
proto_sink_free(struct proto_sink *sink)
{
	if (!sink->fixed)
		free(sink->data);
	sink->data = NULL;
	sink->len = sink->cap = 0;
}

/* Drops the first n bytes. */
void
proto_sink_consume(struct proto_sink *sink, size_t n)
{
	if (n >= sink->len) {
		sink->len = 0;
		return;
	}
	memmove(sink->data, sink->data + n, sink->len - n);
	sink->len -= n;
}

/* Starts a frame: length placeholder, array header, type. */
size_t
proto_begin(struct proto_sink *sink, enum proto_type type, size_t nfields)
{
	static const char	 zero[PROTO_HEADER_SIZE];
	size_t			 start = sink->len;

	sink->full = 0;
	proto_sink_write(sink, zero, sizeof zero);
	msgpack_pack_array(&sink->pk, nfields + 1);
	msgpack_pack_uint32(&sink->pk, type);
	return (start);
}

/* Ends a frame by patching its length in; rolls it back if it overflowed. */
int
proto_end(struct proto_sink *sink, size_t start)
{
	size_t	 n;
	char	*p;

	if (sink->full || sink->len - start - PROTO_HEADER_SIZE >
	    (sink->fixed ? sink->cap : PROTO_MAX_REPLY)) {
		sink->len = start;
		sink->full = 0;
		return (-1);
	}
	n = sink->len - start - PROTO_HEADER_SIZE;
	p = sink->data + start;
	p[0] = (char)(n >> 24);
	p[1] = (char)(n >> 16);
	p[2] = (char)(n >> 8);
	p[3] = (char)n;
	return (0);
}

/* Looks for one whole frame at the start of buf. */
int
proto_frame_peek(const char *buf, size_t len, size_t max, const char **payload,
    size_t *payload_len, size_t *frame_len)
{
	const unsigned char	*p = (const unsigned char *)buf;
	size_t			 n;

	if (len < PROTO_HEADER_SIZE)
		return (0);
	n = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) |
	    p[3];
	if (n > max || n == 0)
		return (-1);
	if (len - PROTO_HEADER_SIZE < n)
		return (0);
	*payload = buf + PROTO_HEADER_SIZE;
	*payload_len = n;
	*frame_len = n + PROTO_HEADER_SIZE;
	return (1);
}

/* Packs a NUL-terminated string. */
int
proto_pack_cstr(msgpack_packer *pk, const char *s)
{
	size_t	n;

	if (s == NULL)
		s = "";
	n = strlen(s);
	if (msgpack_pack_str(pk, n) != 0)
		return (-1);
	return (msgpack_pack_str_body(pk, s, n));
}

/* Packs a string of known length, cut to PROTO_MAX_STRING. */
static void
proto_pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	if (n > PROTO_MAX_STRING)
		n = PROTO_MAX_STRING;
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

/* Packs "key": string. */
static void
proto_pack_kv_str(msgpack_packer *pk, const char *key, const char *value)
{
	proto_pack_cstr(pk, key);
	proto_pack_str(pk, value ? value : "", value ? strlen(value) : 0);
}

/* Packs "key": uint. */
static void
proto_pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t value)
{
	proto_pack_cstr(pk, key);
	msgpack_pack_uint64(pk, value);
}

/* Encodes a hello; the string fields of h are NUL-terminated. */
int
proto_send_hello(struct proto_sink *sink, const struct proto_hello *h,
    const char *const *argv, uint32_t argc)
{
	msgpack_packer	*pk = &sink->pk;
	size_t		 start;
	uint32_t	 i;

	if (argc > PROTO_MAX_ARGV)
		argc = PROTO_MAX_ARGV;
	start = proto_begin(sink, PROTO_HELLO, 1);
	msgpack_pack_map(pk, 11);
	proto_pack_kv_uint(pk, "version", PROTO_VERSION_COMPAT);
	proto_pack_kv_uint(pk, "version_min", PROTO_VERSION_MIN);
	proto_pack_kv_uint(pk, "version_max", PROTO_VERSION);
	proto_pack_kv_uint(pk, "pid", h->pid);
	proto_pack_kv_uint(pk, "ppid", h->ppid);
	proto_pack_kv_uint(pk, "start_ns", h->start_ns);
	proto_pack_kv_str(pk, "host", h->host);
	proto_pack_kv_str(pk, "service", h->service);
	proto_pack_kv_str(pk, "python", h->python);
	proto_pack_kv_str(pk, "reader", h->reader);
	proto_pack_cstr(pk, "argv");
	msgpack_pack_array(pk, argc);
	for (i = 0; i < argc; i++)
		proto_pack_str(pk, argv[i], strlen(argv[i]));
	return (proto_end(sink, start));
}

/* Encodes a string definition. */
int
proto_send_string(struct proto_sink *sink, uint32_t id, const char *s,
    size_t n)
{
	size_t	start;

	start = proto_begin(sink, PROTO_STRING, 2);
	msgpack_pack_uint32(&sink->pk, id);
	proto_pack_str(&sink->pk, s, n);
	return (proto_end(sink, start));
}

/* Encodes a function definition. */
int
proto_send_func(struct proto_sink *sink, uint32_t id, uint32_t name,
    uint32_t file, uint32_t line)
{
	size_t	start;

	start = proto_begin(sink, PROTO_FUNC, 4);
	msgpack_pack_uint32(&sink->pk, id);
	msgpack_pack_uint32(&sink->pk, name);
	msgpack_pack_uint32(&sink->pk, file);
	msgpack_pack_uint32(&sink->pk, line);
	return (proto_end(sink, start));
}

/* Encodes a frame definition. */
int
proto_send_frame(struct proto_sink *sink, uint32_t id, uint32_t func,
    uint32_t line)
{
	size_t	start;

	start = proto_begin(sink, PROTO_FRAME, 3);
	msgpack_pack_uint32(&sink->pk, id);
	msgpack_pack_uint32(&sink->pk, func);
	msgpack_pack_uint32(&sink->pk, line);
	return (proto_end(sink, start));
}

/* Encodes a stack definition, frames leaf first. */
int
proto_send_stack(struct proto_sink *sink, uint32_t id, int truncated,
    const uint32_t *frames, uint32_t depth)
{
	size_t		start;
	uint32_t	i;

	if (depth > PROTO_MAX_DEPTH) {
		depth = PROTO_MAX_DEPTH;
		truncated = 1;
	}
	start = proto_begin(sink, PROTO_STACK, 3);
	msgpack_pack_uint32(&sink->pk, id);
	if (truncated)
		msgpack_pack_true(&sink->pk);
	else
		msgpack_pack_false(&sink->pk);
	msgpack_pack_array(&sink->pk, depth);
	for (i = 0; i < depth; i++)
		msgpack_pack_uint32(&sink->pk, frames[i]);
	return (proto_end(sink, start));
}

/* Encodes a thread definition. */
int
proto_send_thread(struct proto_sink *sink, uint32_t id, uint64_t tid,
    uint32_t name)
{
	size_t	start;

	start = proto_begin(sink, PROTO_THREAD, 3);
	msgpack_pack_uint32(&sink->pk, id);
	msgpack_pack_uint64(&sink->pk, tid);
	msgpack_pack_uint32(&sink->pk, name);
	return (proto_end(sink, start));
}

/*
 * Appends v as msgpack packs an unsigned integer, in the fewest bytes
 * (positive fixint, uint 8, 16 or 32): the same bytes msgpack_pack_uint32
 * writes.  The sample array is the one hot encoding: through the packer
 * every field is a callback and a copy of one to five bytes, a third of the
 * sampler's instructions; here a chunk of samples is one copy.
 */
static inline char *
proto_put_u32(char *p, uint32_t v)
{
	if (v < 0x80) {
		*p++ = (char)v;
	} else if (v <= 0xff) {
		*p++ = (char)0xcc;
		*p++ = (char)v;
	} else if (v <= 0xffff) {
		*p++ = (char)0xcd;
		*p++ = (char)(v >> 8);
		*p++ = (char)v;
	} else {
		*p++ = (char)0xce;
		*p++ = (char)(v >> 24);
		*p++ = (char)(v >> 16);
		*p++ = (char)(v >> 8);
		*p++ = (char)v;
	}
	return (p);
}

/* Samples encoded per copy into the sink (stack buffer of their bytes). */
#define PROTO_PACK_CHUNK	64

/* Encodes samples as one flat array, numbered (BATCH) when seq != 0,
 * with the count of stacks left out after it when invalid >= 0, and then
 * the mode when mode >= 0. */
static int
proto_send_sample_array(struct proto_sink *sink, uint64_t seq,
    uint64_t base_ns, const struct proto_sample *s, uint32_t count,
    int64_t invalid, int64_t mode)
{
	size_t		start;
	uint32_t	i;

	if (count > PROTO_MAX_BATCH || (mode >= 0 && invalid < 0))
		return (-1);
	if (seq != 0) {
		start = proto_begin(sink, PROTO_BATCH, 3 + (invalid >= 0) +
		    (mode >= 0));
		msgpack_pack_uint64(&sink->pk, seq);
	} else
		start = proto_begin(sink, PROTO_SAMPLES, 2);
	msgpack_pack_uint64(&sink->pk, base_ns);
	msgpack_pack_array(&sink->pk, (size_t)count * PROTO_SAMPLE_FIELDS);
	for (i = 0; i < count; ) {
		char		 buf[PROTO_PACK_CHUNK * PROTO_SAMPLE_FIELDS * 5];
		char		*p = buf;
		uint32_t	 end = count - i < PROTO_PACK_CHUNK ?
				     count : i + PROTO_PACK_CHUNK;

		for (; i < end; i++) {
			p = proto_put_u32(p, s[i].stack);
			p = proto_put_u32(p, s[i].thread);
			p = proto_put_u32(p, s[i].dt_us);
			p = proto_put_u32(p, s[i].weight_us);
			p = proto_put_u32(p, s[i].flags);
		}
		proto_sink_write(sink, buf, (size_t)(p - buf));
	}
	if (seq != 0 && invalid >= 0)
		msgpack_pack_uint32(&sink->pk, (uint32_t)invalid);
	if (seq != 0 && mode >= 0)
		msgpack_pack_uint32(&sink->pk, (uint32_t)mode);
	return (proto_end(sink, start));
}

/* Encodes a batch of samples (unnumbered). */
int
proto_send_samples(struct proto_sink *sink, uint64_t base_ns,
    const struct proto_sample *s, uint32_t count)
{
	return (proto_send_sample_array(sink, 0, base_ns, s, count, -1, -1));
}

/* Encodes a numbered batch of samples. */
int
proto_send_batch(struct proto_sink *sink, uint64_t seq, uint64_t base_ns,
    const struct proto_sample *s, uint32_t count)
{
	if (seq == 0)
		return (-1);
	return (proto_send_sample_array(sink, seq, base_ns, s, count, -1,
	    -1));
}

/* Encodes a version 5 batch: the stacks left out come last. */
int
proto_send_batch_v5(struct proto_sink *sink, uint64_t seq, uint64_t base_ns,
    const struct proto_sample *s, uint32_t count, uint32_t invalid)
{
	if (seq == 0)
		return (-1);
	return (proto_send_sample_array(sink, seq, base_ns, s, count,
	    invalid, -1));
}

/* Encodes a version 6 batch: the stacks left out, then its mode. */
int
proto_send_batch_v6(struct proto_sink *sink, uint64_t seq, uint64_t base_ns,
    const struct proto_sample *s, uint32_t count, uint32_t invalid,
    uint32_t mode)
{
	if (seq == 0 || mode > PROTO_MODE_LAST)
		return (-1);
	return (proto_send_sample_array(sink, seq, base_ns, s, count,
	    invalid, mode));
}

/* Encodes a daemon -> agent acknowledgement of batches up to seq. */
int
proto_send_ack(struct proto_sink *sink, uint64_t seq)
{
	size_t	start;

	start = proto_begin(sink, PROTO_ACK, 1);
	msgpack_pack_uint64(&sink->pk, seq);
	return (proto_end(sink, start));
}

/* Encodes the agent's counters as a map, in PROTO_AGENT_STATS order. */
int
proto_send_stats(struct proto_sink *sink, const uint64_t *values)
{
	size_t	start, i;

	start = proto_begin(sink, PROTO_STATS, 1);
	msgpack_pack_map(&sink->pk, proto_agent_stat_count);
	for (i = 0; i < proto_agent_stat_count; i++)
		proto_pack_kv_uint(&sink->pk, proto_agent_stat_names[i],
		    values[i]);
	return (proto_end(sink, start));
}

/* Encodes a configuration of 5 fields (v1, v2), 6 (v3: version > 0) or 7
 * (v3 with a budget). */
static int
proto_send_config_fields(struct proto_sink *sink, int profiling,
    uint32_t rate_hz, uint32_t mode, uint32_t reader, uint32_t jitter_pct,
    uint32_t version, uint32_t max_overhead_bp)
{
	size_t	start, n = 5;

	if (version > 0)
		n = max_overhead_bp != PROTO_OVERHEAD_UNSET ? 7 : 6;
	start = proto_begin(sink, PROTO_CONFIG, n);
	if (profiling)
		msgpack_pack_true(&sink->pk);
	else
		msgpack_pack_false(&sink->pk);
	msgpack_pack_uint32(&sink->pk, rate_hz);
	msgpack_pack_uint32(&sink->pk, mode);
	msgpack_pack_uint32(&sink->pk, reader);
	msgpack_pack_uint32(&sink->pk, jitter_pct);
	if (n > 5)
		msgpack_pack_uint32(&sink->pk, version);
	if (n > 6)
		msgpack_pack_uint32(&sink->pk, max_overhead_bp);
	return (proto_end(sink, start));
}

/* Encodes a daemon -> agent configuration, as versions 1 and 2 know it. */
int
proto_send_config(struct proto_sink *sink, int profiling, uint32_t rate_hz,
    uint32_t mode, uint32_t reader, uint32_t jitter_pct)
{
	return (proto_send_config_fields(sink, profiling, rate_hz, mode,
	    reader, jitter_pct, 0, PROTO_OVERHEAD_UNSET));
}

/* Encodes a version 3 configuration: the version in use, then the budget
 * if one was given.  A v3 agent skips the trailing field if it predates
 * budgets. */
int
proto_send_config_v3(struct proto_sink *sink, int profiling,
    uint32_t rate_hz, uint32_t mode, uint32_t reader, uint32_t jitter_pct,
    uint32_t version, uint32_t max_overhead_bp)
{
	return (proto_send_config_fields(sink, profiling, rate_hz, mode,
	    reader, jitter_pct, version > 0 ? version : PROTO_VERSION,
	    max_overhead_bp));
}

/* Encodes a refusal: no version in common. */
int
proto_send_reject(struct proto_sink *sink, uint32_t min, uint32_t max,
    const char *reason)
{
	size_t	start;

	start = proto_begin(sink, PROTO_REJECT, 3);
	msgpack_pack_uint32(&sink->pk, min);
	msgpack_pack_uint32(&sink->pk, max);
	proto_pack_str(&sink->pk, reason ? reason : "",
	    reason ? strlen(reason) : 0);
	return (proto_end(sink, start));
}

/* Encodes one [type, token] frame. */
static int
proto_send_token(struct proto_sink *sink, enum proto_type type,
    uint32_t token)
{
	size_t	start;

	start = proto_begin(sink, type, 1);
	msgpack_pack_uint32(&sink->pk, token);
	return (proto_end(sink, start));
}

/* Encodes a daemon -> agent resync request. */
int
proto_send_resync(struct proto_sink *sink, uint32_t token)
{
	return (proto_send_token(sink, PROTO_RESYNC, token));
}

/* Encodes the agent's acknowledgement of a resync. */
int
proto_send_resync_ack(struct proto_sink *sink, uint32_t token)
{
	return (proto_send_token(sink, PROTO_RESYNC_ACK, token));
}

/* Begins a request; the caller packs a map of nargs pairs, then ends it. */
size_t
proto_begin_request(struct proto_sink *sink, const char *command, size_t nargs)
{
	size_t	start;

	start = proto_begin(sink, PROTO_REQUEST, 2);
	proto_pack_cstr(&sink->pk, command);
	msgpack_pack_map(&sink->pk, nargs);
	return (start);
}

/* Begins a reply; the caller packs the body, then ends it. */
size_t
proto_begin_reply(struct proto_sink *sink, int ok)
{
	size_t	start;

	start = proto_begin(sink, PROTO_REPLY, 2);
	if (ok)
		msgpack_pack_true(&sink->pk);
	else
		msgpack_pack_false(&sink->pk);
	return (start);
}

/* Encodes an error reply. */
int
proto_send_error(struct proto_sink *sink, const char *fmt, ...)
{
	char	buf[512];
	va_list	ap;
	size_t	start;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	start = proto_begin_reply(sink, 0);
	proto_pack_cstr(&sink->pk, buf);
	return (proto_end(sink, start));
}

/* Reads a uint that must fit max. */
static int
proto_get_uint(const msgpack_object *o, uint64_t max, uint64_t *out)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max)
		return (-1);
	*out = o->via.u64;
	return (0);
}

/* Reads a uint32 that must fit max. */
static int
proto_get_u32(const msgpack_object *o, uint32_t max, uint32_t *out)
{
	uint64_t	v;

	if (proto_get_uint(o, max, &v) != 0)
		return (-1);
	*out = (uint32_t)v;
	return (0);
}

/* Reads a dense id: 1..PROTO_MAX_ID. */
static int
proto_get_id(const msgpack_object *o, uint32_t *out)
{
	if (proto_get_u32(o, PROTO_MAX_ID, out) != 0 || *out == 0)
		return (-1);
	return (0);
}

/* Reads a bool. */
static int
proto_get_bool(const msgpack_object *o, int *out)
{
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return (-1);
	*out = o->via.boolean;
	return (0);
}

/* Reads a string no longer than max. */
static int
proto_get_str(const msgpack_object *o, uint32_t max, const char **s,
    uint32_t *len)
{
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max)
		return (-1);
	*s = o->via.str.ptr;
	*len = o->via.str.size;
	return (0);
}

/* Finds a key in a map. */
const msgpack_object *
proto_map_get(const msgpack_object_map *map, const char *key)
{
	size_t		 n = strlen(key);
	uint32_t	 i;

	if (map == NULL)
		return (NULL);
	for (i = 0; i < map->size; i++) {
		const msgpack_object *k = &map->ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
		    memcmp(k->via.str.ptr, key, n) == 0)
			return (&map->ptr[i].val);
	}
	return (NULL);
}

/* Reads a uint from a map: 0, or -1 when absent or not a uint. */
int
proto_map_uint(const msgpack_object_map *map, const char *key, uint64_t *out)
{
	const msgpack_object	*o;

	if ((o = proto_map_get(map, key)) == NULL)
		return (-1);
	return (proto_get_uint(o, UINT64_MAX, out));
}

/* Reads a bool from a map: 0, or -1 when absent or not a bool. */
int
proto_map_bool(const msgpack_object_map *map, const char *key, int *out)
{
	const msgpack_object	*o;

	if ((o = proto_map_get(map, key)) == NULL)
		return (-1);
	return (proto_get_bool(o, out));
}

/* Copies a str from a map into buf, NUL-terminated and cut to fit. */
int
proto_map_str(const msgpack_object_map *map, const char *key, char *buf,
    size_t len)
{
	const msgpack_object	*o;
	size_t			 n;

	if (len == 0 || (o = proto_map_get(map, key)) == NULL ||
	    o->type != MSGPACK_OBJECT_STR)
		return (-1);
	n = o->via.str.size;
	if (n >= len)
		n = len - 1;
	memcpy(buf, o->via.str.ptr, n);
	buf[n] = '\0';
	return (0);
}

/* Reads an optional str from a hello map. */
static int
proto_hello_str(const msgpack_object_map *map, const char *key,
    const char **s, uint32_t *len)
{
	const msgpack_object	*o;

	*s = "";
	*len = 0;
	if ((o = proto_map_get(map, key)) == NULL)
		return (0);
	return (proto_get_str(o, PROTO_MAX_STRING, s, len));
}

/* Validates a hello map. */
static int
proto_decode_hello(const msgpack_object *o, struct proto_hello *h,
    const char **err)
{
	const msgpack_object_map	*map;
	const msgpack_object		*argv;
	uint32_t			 i;

	memset(h, 0, sizeof *h);
	if (o->type != MSGPACK_OBJECT_MAP) {
		*err = "hello is not a map";
		return (-1);
	}
	map = &o->via.map;
	/* Whether the versions fit is for proto_negotiate() to say. */
	if (proto_map_uint(map, "version", &h->version) != 0) {
		*err = "hello has no version";
		return (-1);
	}
	h->version_min = h->version_max = h->version;
	if ((proto_map_get(map, "version_min") != NULL &&
	    proto_map_uint(map, "version_min", &h->version_min) != 0) ||
	    (proto_map_get(map, "version_max") != NULL &&
	    proto_map_uint(map, "version_max", &h->version_max) != 0) ||
	    h->version_min > h->version_max) {
		*err = "hello has a bad version range";
		return (-1);
	}
	if (proto_map_uint(map, "pid", &h->pid) != 0 || h->pid == 0 ||
	    h->pid > INT32_MAX) {
		*err = "hello has no valid pid";
		return (-1);
	}
	if (proto_map_get(map, "ppid") != NULL &&
	    (proto_map_uint(map, "ppid", &h->ppid) != 0 || h->ppid > INT32_MAX)) {
		*err = "hello has a bad ppid";
		return (-1);
	}
	if (proto_map_get(map, "start_ns") != NULL &&
	    proto_map_uint(map, "start_ns", &h->start_ns) != 0) {
		*err = "hello has a bad start_ns";
		return (-1);
	}
	if (proto_hello_str(map, "host", &h->host, &h->host_len) != 0 ||
	    proto_hello_str(map, "service", &h->service, &h->service_len) != 0 ||
	    proto_hello_str(map, "python", &h->python, &h->python_len) != 0 ||
	    proto_hello_str(map, "reader", &h->reader, &h->reader_len) != 0) {
		*err = "hello has a bad string";
		return (-1);
	}
	if ((argv = proto_map_get(map, "argv")) != NULL) {
		if (argv->type != MSGPACK_OBJECT_ARRAY ||
		    argv->via.array.size > PROTO_MAX_ARGV) {
			*err = "hello has a bad argv";
			return (-1);
		}
		for (i = 0; i < argv->via.array.size; i++) {
			const msgpack_object *a = &argv->via.array.ptr[i];
			if (a->type != MSGPACK_OBJECT_STR ||
			    a->via.str.size > PROTO_MAX_STRING) {
				*err = "hello has a bad argv";
				return (-1);
			}
		}
		h->argv = argv->via.array.ptr;
		h->argc = argv->via.array.size;
	}
	return (0);
}

/* Validates a stats map: every value a uint. */
static int
proto_decode_stats(const msgpack_object *o, struct proto_msg *msg,
    const char **err)
{
	uint32_t	i;

	if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size > 256) {
		*err = "stats is not a map";
		return (-1);
	}
	for (i = 0; i < o->via.map.size; i++) {
		if (o->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR ||
		    o->via.map.ptr[i].val.type !=
		    MSGPACK_OBJECT_POSITIVE_INTEGER) {
			*err = "stats has a bad entry";
			return (-1);
		}
	}
	msg->stats.map = &o->via.map;
	return (0);
}

/* Validates a batch of samples. */
static int
proto_decode_samples(const msgpack_object *f, struct proto_msg *msg,
    const char **err)
{
	const msgpack_object	*a;
	uint32_t		 i, n;

	if (proto_get_uint(&f[0], UINT64_MAX, &msg->samples.base_ns) != 0) {
		*err = "samples has a bad timestamp";
		return (-1);
	}
	if (f[1].type != MSGPACK_OBJECT_ARRAY) {
		*err = "samples is not an array";
		return (-1);
	}
	n = f[1].via.array.size;
	a = f[1].via.array.ptr;
	if (n % PROTO_SAMPLE_FIELDS != 0 ||
	    n / PROTO_SAMPLE_FIELDS > PROTO_MAX_BATCH) {
		*err = "samples array has a bad length";
		return (-1);
	}
	for (i = 0; i < n; i++) {
		uint64_t max;

		switch (i % PROTO_SAMPLE_FIELDS) {
		case 0: case 1:
			max = PROTO_MAX_ID;
			break;
		case 4:
			max = PROTO_SAMPLE_FLAGS;
			break;
		default:
			max = UINT32_MAX;
			break;
		}
		if (a[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    a[i].via.u64 > max ||
		    (i % PROTO_SAMPLE_FIELDS < 2 && a[i].via.u64 == 0)) {
			*err = "sample has a bad field";
			return (-1);
		}
	}
	msg->samples.count = n / PROTO_SAMPLE_FIELDS;
	msg->samples.fields = a;
	return (0);
}

/* Fetches sample i of a decoded batch (validated by the decoder). */
void
proto_sample_get(const struct proto_msg *msg, uint32_t i,
    struct proto_sample *s)
{
	const msgpack_object	*f;

	f = msg->samples.fields + (size_t)i * PROTO_SAMPLE_FIELDS;
	s->stack = (uint32_t)f[0].via.u64;
	s->thread = (uint32_t)f[1].via.u64;
	s->dt_us = (uint32_t)f[2].via.u64;
	s->weight_us = (uint32_t)f[3].via.u64;
	s->flags = (uint32_t)f[4].via.u64;
}

/* Number of fields after the type, per message type; -1 if unknown. */
static int
proto_nfields(uint64_t type)
{
	switch (type) {
	case PROTO_HELLO:	return (1);
	case PROTO_STRING:	return (2);
	case PROTO_FUNC:	return (4);
	case PROTO_FRAME:	return (3);
	case PROTO_STACK:	return (3);
	case PROTO_THREAD:	return (3);
	case PROTO_SAMPLES:	return (2);
	case PROTO_STATS:	return (1);
	case PROTO_RESYNC_ACK:	return (1);
	case PROTO_BATCH:	return (3);
	case PROTO_CONFIG:	return (5);
	case PROTO_ACK:		return (1);
	case PROTO_RESYNC:	return (1);
	case PROTO_REJECT:	return (3);
	case PROTO_REQUEST:	return (2);
	case PROTO_REPLY:	return (2);
	}
	return (-1);
}

/*
 * Walks the msgpack in payload without building objects and checks that no
 * array or map announces more elements than bytes remain.  msgpack-c
 * allocates a container's slots before reading them, so without this a
 * 20-byte frame could ask it for gigabytes.
 */
static int
proto_precheck(const unsigned char *p, size_t len)
{
	size_t		 off = 0, pending = 1, n, hdr;
	unsigned char	 c;

	while (pending > 0) {
		if (off >= len)
			return (-1);
		pending--;
		c = p[off];
		n = 0;
		hdr = 1;
		if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 ||
		    c == 0xc3) {
			off += 1;
			continue;
		}
		if ((c & 0xf0) == 0x90) {		/* fixarray */
			n = c & 0x0f;
		} else if ((c & 0xf0) == 0x80) {	/* fixmap */
			n = (size_t)(c & 0x0f) * 2;
		} else if ((c & 0xe0) == 0xa0) {	/* fixstr */
			off += 1 + (c & 0x1f);
			continue;
		} else {
			size_t w = 0, body = 0;
			int container = 0, pairs = 0;

			switch (c) {
			case 0xcc: case 0xd0: body = 1; break;
			case 0xcd: case 0xd1: body = 2; break;
			case 0xca: case 0xce: case 0xd2: body = 4; break;
			case 0xcb: case 0xcf: case 0xd3: body = 8; break;
			case 0xd4: body = 2; break;
			case 0xd5: body = 3; break;
			case 0xd6: body = 5; break;
			case 0xd7: body = 9; break;
			case 0xd8: body = 17; break;
			case 0xc4: case 0xd9: w = 1; break;
			case 0xc5: case 0xda: w = 2; break;
			case 0xc6: case 0xdb: w = 4; break;
			case 0xc7: w = 1; body = 1; break;
			case 0xc8: w = 2; body = 1; break;
			case 0xc9: w = 4; body = 1; break;
			case 0xdc: w = 2; container = 1; break;
			case 0xdd: w = 4; container = 1; break;
			case 0xde: w = 2; container = 1; pairs = 1; break;
			case 0xdf: w = 4; container = 1; pairs = 1; break;
			default: return (-1);
			}
			if (w == 0) {
				off += 1 + body;
				continue;
			}
			if (len - off < 1 + w)
				return (-1);
			for (size_t i = 0; i < w; i++)
				n = (n << 8) | p[off + 1 + i];
			hdr = 1 + w;
			if (!container) {
				off += hdr + body + n;
				continue;
			}
			if (pairs)
				n *= 2;
		}
		off += hdr;
		if (n > len - (off < len ? off : len))
			return (-1);
		pending += n;
	}
	return (0);
}

/* Decodes and validates one payload. */
int
proto_decode(const char *payload, size_t len, msgpack_unpacked *up,
    struct proto_msg *msg, const char **err)
{
	const msgpack_object	*root, *f;
	size_t			 off = 0;
	uint64_t		 type;
	uint32_t		 i;
	int			 n;

	*err = NULL;
	memset(msg, 0, sizeof *msg);
	if (proto_precheck((const unsigned char *)payload, len) != 0) {
		*err = "malformed msgpack";
		return (-1);
	}
	switch (msgpack_unpack_next(up, payload, len, &off)) {
	case MSGPACK_UNPACK_SUCCESS:
		break;
	case MSGPACK_UNPACK_CONTINUE:
		*err = "truncated message";
		return (-1);
	case MSGPACK_UNPACK_NOMEM_ERROR:
		*err = "message too large to decode";
		return (-1);
	default:
		*err = "malformed msgpack";
		return (-1);
	}
	if (off != len) {
		*err = "trailing bytes after message";
		return (-1);
	}
	root = &up->data;
	if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size < 1) {
		*err = "message is not an array";
		return (-1);
	}
	if (proto_get_uint(&root->via.array.ptr[0], UINT32_MAX, &type) != 0 ||
	    (n = proto_nfields(type)) < 0) {
		*err = "unknown message type";
		return (-1);
	}
	/* Fields added by a newer version come last: skip them. */
	if (root->via.array.size < (uint32_t)n + 1) {
		*err = "wrong number of fields";
		return (-1);
	}
	f = root->via.array.ptr + 1;
	msg->type = (enum proto_type)type;

	switch (msg->type) {
	case PROTO_HELLO:
		return (proto_decode_hello(&f[0], &msg->hello, err));
	case PROTO_STRING:
		if (proto_get_id(&f[0], &msg->string.id) != 0 ||
		    proto_get_str(&f[1], PROTO_MAX_STRING, &msg->string.str,
		    &msg->string.len) != 0)
			goto bad;
		return (0);
	case PROTO_FUNC:
		if (proto_get_id(&f[0], &msg->func.id) != 0 ||
		    proto_get_id(&f[1], &msg->func.name) != 0 ||
		    proto_get_id(&f[2], &msg->func.file) != 0 ||
		    proto_get_u32(&f[3], INT32_MAX, &msg->func.line) != 0)
			goto bad;
		return (0);
	case PROTO_FRAME:
		if (proto_get_id(&f[0], &msg->frame.id) != 0 ||
		    proto_get_id(&f[1], &msg->frame.func) != 0 ||
		    proto_get_u32(&f[2], INT32_MAX, &msg->frame.line) != 0)
			goto bad;
		return (0);
	case PROTO_STACK:
		if (proto_get_id(&f[0], &msg->stack.id) != 0 ||
		    proto_get_bool(&f[1], &msg->stack.truncated) != 0 ||
		    f[2].type != MSGPACK_OBJECT_ARRAY ||
		    f[2].via.array.size > PROTO_MAX_DEPTH)
			goto bad;
		for (i = 0; i < f[2].via.array.size; i++) {
			uint32_t id;
			if (proto_get_id(&f[2].via.array.ptr[i], &id) != 0)
				goto bad;
		}
		msg->stack.depth = f[2].via.array.size;
		msg->stack.frames = f[2].via.array.ptr;
		return (0);
	case PROTO_THREAD:
		if (proto_get_id(&f[0], &msg->thread.id) != 0 ||
		    proto_get_uint(&f[1], UINT64_MAX, &msg->thread.tid) != 0 ||
		    proto_get_id(&f[2], &msg->thread.name) != 0)
			goto bad;
		return (0);
	case PROTO_SAMPLES:
		return (proto_decode_samples(f, msg, err));
	case PROTO_BATCH:
		if (proto_get_uint(&f[0], UINT64_MAX, &msg->samples.seq) != 0 ||
		    msg->samples.seq == 0) {
			*err = "batch has a bad number";
			return (-1);
		}
		/* v5: the stacks left out since the previous batch. */
		if (root->via.array.size > 4) {
			if (proto_get_u32(&f[3], UINT32_MAX,
			    &msg->samples.invalid) != 0) {
				*err = "batch has a bad count of stacks left "
				    "out";
				return (-1);
			}
			msg->samples.has_invalid = 1;
		}
		/* v6: the mode its samples were taken in. */
		if (root->via.array.size > 5) {
			if (proto_get_u32(&f[4], PROTO_MODE_LAST,
			    &msg->samples.mode) != 0) {
				*err = "batch has a bad mode";
				return (-1);
			}
			msg->samples.has_mode = 1;
		}
		return (proto_decode_samples(f + 1, msg, err));
	case PROTO_ACK:
		if (proto_get_uint(&f[0], UINT64_MAX, &msg->ack.seq) != 0)
			goto bad;
		return (0);
	case PROTO_STATS:
		return (proto_decode_stats(&f[0], msg, err));
	case PROTO_CONFIG:
		if (proto_get_bool(&f[0], &msg->config.profiling) != 0 ||
		    proto_get_u32(&f[1], PROTO_RATE_MAX, &msg->config.rate_hz)
		    != 0 || msg->config.rate_hz < PROTO_RATE_MIN ||
		    proto_get_u32(&f[2], PROTO_MODE_LAST, &msg->config.mode)
		    != 0 ||
		    proto_get_u32(&f[3], PROTO_READER_LAST,
		    &msg->config.reader) != 0 ||
		    proto_get_u32(&f[4], PROTO_JITTER_MAX,
		    &msg->config.jitter_pct) != 0)
			goto bad;
		/* v3: the version in use (a 5-field CONFIG: not said). */
		if (root->via.array.size > 6 && proto_get_u32(&f[5],
		    UINT32_MAX, &msg->config.version) != 0)
			goto bad;
		/* The budget, when the daemon gave one. */
		msg->config.max_overhead_bp = PROTO_OVERHEAD_UNSET;
		if (root->via.array.size > 7 && proto_get_u32(&f[6],
		    PROTO_OVERHEAD_MAX, &msg->config.max_overhead_bp) != 0)
			goto bad;
		return (0);
	case PROTO_REJECT:
		if (proto_get_u32(&f[0], UINT32_MAX, &msg->reject.min) != 0 ||
		    proto_get_u32(&f[1], UINT32_MAX, &msg->reject.max) != 0 ||
		    proto_get_str(&f[2], PROTO_MAX_STRING, &msg->reject.reason,
		    &msg->reject.reason_len) != 0)
			goto bad;
		return (0);
	case PROTO_RESYNC:
	case PROTO_RESYNC_ACK:
		if (proto_get_u32(&f[0], UINT32_MAX, &msg->resync.token) != 0)
			goto bad;
		return (0);
	case PROTO_REQUEST:
		if (proto_get_str(&f[0], 64, &msg->request.command,
		    &msg->request.command_len) != 0 ||
		    f[1].type != MSGPACK_OBJECT_MAP)
			goto bad;
		msg->request.args = &f[1].via.map;
		return (0);
	case PROTO_REPLY:
		if (proto_get_bool(&f[0], &msg->reply.ok) != 0)
			goto bad;
		if (!msg->reply.ok && f[1].type != MSGPACK_OBJECT_STR)
			goto bad;
		msg->reply.body = &f[1];
		return (0);
	}
bad:
	*err = "bad field in message";
	return (-1);
}

/* The highest version both ends of a hello speak. */
int
proto_negotiate(const struct proto_hello *h, uint32_t *version)
{
	uint64_t	lo, hi;

	lo = h->version_min > PROTO_VERSION_MIN ? h->version_min :
	    PROTO_VERSION_MIN;
	hi = h->version_max < PROTO_VERSION ? h->version_max : PROTO_VERSION;
	if (lo > hi)
		return (-1);
	*version = (uint32_t)hi;
	return (0);
}

/* Whether a refused payload is an unknown type its receiver may skip. */
int
proto_skippable(const msgpack_unpacked *up, int to_agent, uint64_t *type)
{
	const msgpack_object	*root = &up->data;
	uint64_t		 t;

	if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size < 1 ||
	    root->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return (0);
	t = root->via.array.ptr[0].via.u64;
	if (proto_nfields(t) >= 0)
		return (0);	/* known: its fields were bad */
	*type = t;
	if (to_agent)
		return (t >= 200 && t < 300);
	return (t >= PROTO_OPTIONAL_MIN && t <= PROTO_OPTIONAL_MAX);
}

/* Name of a mode, or "?" */
const char *
proto_mode_name(uint32_t mode)
{
	if (mode > PROTO_MODE_LAST)
		return ("?");
	return (proto_mode_names[mode]);
}

/* Parses a mode name; -1 when unknown. */
int
proto_mode_parse(const char *s)
{
	uint32_t	i;

	for (i = 0; i <= PROTO_MODE_LAST; i++)
		if (strcmp(s, proto_mode_names[i]) == 0)
			return ((int)i);
	return (-1);
}

/* Name of a reader, or "?" */
const char *
proto_reader_name(uint32_t reader)
{
	if (reader > PROTO_READER_LAST)
		return ("?");
	return (proto_reader_names[reader]);
}

/* Parses a reader name; -1 when unknown. */
int
proto_reader_parse(const char *s)
{
	uint32_t	i;

	for (i = 0; i <= PROTO_READER_LAST; i++)
		if (strcmp(s, proto_reader_names[i]) == 0)
			return ((int)i);
	return (-1);
}

/* Parses a percent of a core with at most two decimals into basis points. */
int
proto_overhead_parse(const char *s, uint32_t *bp)
{
	uint32_t	v = 0, frac = 0, digits = 0;

	if (*s < '0' || *s > '9')
		return (-1);
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (uint32_t)(*s - '0');
		if (v > 100)
			return (-1);
	}
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++) {
			if (++digits > 2)
				return (-1);
			frac = frac * 10 + (uint32_t)(*s - '0');
		}
		if (digits == 0)
			return (-1);
		if (digits == 1)
			frac *= 10;
	}
	if (*s != '\0' || v * 100 + frac > PROTO_OVERHEAD_MAX)
		return (-1);
	*bp = v * 100 + frac;
	return (0);
}
