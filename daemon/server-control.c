/*
 * server-control.c -- control connections: read a request, run its
 * command's handler, write the reply; requests on one connection are
 * answered in order, the next one read only once the reply is sent.
 */

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <utlist.h>

#include "settings.h"
#include "log.h"
#include "access.h"
#include "proto.h"
#include "registry.h"
#include "server-agent.h"
#include "server-control.h"
#include "server.h"
#include "stats.h"
#include "store.h"
#include "worker.h"

/* What a control connection's deadline is for. */
enum control_deadline {
	CONTROL_DEADLINE_NONE,		/* a show is running: ours */
	CONTROL_DEADLINE_IDLE,		/* control-timeout for a request */
	CONTROL_DEADLINE_FRAME,		/* frame-timeout from its first byte */
	CONTROL_DEADLINE_REPLY,		/* control-timeout to read a reply */
	CONTROL_DEADLINE_QUEUED,	/* query-timeout for a show's turn */
};

struct control_conn {
	struct bufferevent	*bev;
	enum access_level	 level;		/* what the peer may do */
	struct access_peer	 peer;
	int			 closing;	/* close once output is sent */
	struct control_show_job	*job;		/* a show in steps */
	struct control_aside	*aside;		/* its encoding, on the worker */
	uint64_t		 aside_wait;	/* ... waiting for the one out:
						   its place in line, or 0 */
	struct event		*step_ev;	/* its next step */
	struct timespec		 job_start;
	int			 queued;	/* a show waits for its turn;
						   its request unread yet */
	struct event		*deadline_ev;
	enum control_deadline	 deadline;
	uint64_t		 waiting_ns;	/* idle or reading since */
	size_t			 charged;	/* to server_conn_bytes */
	struct control_conn	*prev, *next;
};

/* Open control connections: event loop thread only. */
static struct control_conn	*server_control_list;
size_t				 server_control_count;
/* A reset waits for the running shows: none starts meanwhile. */
static int			 server_control_reset_due;

typedef int (*control_exec)(struct control_args *, struct proto_sink *);

struct control_cmd {
	const char		*name;
	enum access_level	 level;		/* needed to run it */
	const char *const	*args;		/* allowed keys */
	control_exec		 exec;
};

static int	server_control_status(struct control_args *,
		    struct proto_sink *);
static int	server_control_start(struct control_args *,
		    struct proto_sink *);
static int	server_control_stop(struct control_args *,
		    struct proto_sink *);
static int	server_control_reset(struct control_args *,
		    struct proto_sink *);
static int	server_control_reload(struct control_args *,
		    struct proto_sink *);

static const char *const server_control_no_args[] = { NULL };
static const char *const server_control_start_args[] = {
	"rate_hz", "pids", "mode", "reader", "jitter_pct", "max_overhead_bp",
	NULL
};
static const char *const server_control_stop_args[] = { "pids", NULL };

static const struct control_cmd server_control_cmds[] = {
	{ "status", ACCESS_READ, server_control_no_args,
	  server_control_status },
	{ "start", ACCESS_CONTROL, server_control_start_args,
	  server_control_start },
	{ "stop", ACCESS_CONTROL, server_control_stop_args,
	  server_control_stop },
	{ "show", ACCESS_READ, control_show_args, control_show },
	{ "ps", ACCESS_READ, control_ps_args, control_ps },
	{ "reset", ACCESS_CONTROL, server_control_no_args,
	  server_control_reset },
	{ "reload", ACCESS_CONTROL, server_control_no_args,
	  server_control_reload },
};
#define SERVER_CONTROL_NCMDS \
	(sizeof server_control_cmds / sizeof server_control_cmds[0])

/* Packs a string of known length. */
void
server_control_pack_str(msgpack_packer *pk, const char *s, size_t len)
{
	msgpack_pack_str(pk, len);
	msgpack_pack_str_body(pk, s, len);
}

/* Packs a store string by id. */
void
server_control_pack_sid(msgpack_packer *pk, uint32_t sid)
{
	const char	*s;
	uint32_t	 len = 0;

	if ((s = store_string_get(server_store, sid, &len)) == NULL)
		s = "";
	server_control_pack_str(pk, s, len);
}

/* Packs a list of strings. */
void
server_control_pack_strv(msgpack_packer *pk, char *const *v, uint32_t n)
{
	uint32_t	i;

	msgpack_pack_array(pk, n);
	for (i = 0; i < n; i++)
		proto_pack_cstr(pk, v[i]);
}

/* Packs an argv list, or an empty one for a peer that may only read:
 * command lines often hold secrets. */
void
server_control_pack_argv(msgpack_packer *pk, const struct control_args *a,
    char *const *argv, uint32_t argc)
{
	if (a->level < ACCESS_CONTROL)
		server_control_pack_strv(pk, NULL, 0);
	else
		server_control_pack_strv(pk, argv, argc);
}

/* Frees a list of strings. */
void
server_control_strs_free(char **v, size_t n)
{
	size_t	i;

	for (i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

/* Reads an optional list of strings. */
int
server_control_arg_strs(struct control_args *a, const char *key, char ***v,
    size_t *n)
{
	const msgpack_object	*o = proto_map_get(a->map, key), *e;
	char			**out;
	uint32_t		 i;

	*v = NULL;
	*n = 0;
	if (o == NULL)
		return (0);
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size >
	    CONTROL_MAX_PIDS) {
		snprintf(a->error, sizeof a->error,
		    "'%s' must be a list of at most %d strings", key,
		    CONTROL_MAX_PIDS);
		return (-1);
	}
	if (o->via.array.size == 0)
		return (0);
	if ((out = calloc(o->via.array.size, sizeof *out)) == NULL)
		goto oom;
	for (i = 0; i < o->via.array.size; i++) {
		e = &o->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_STR || e->via.str.size >
		    PROTO_MAX_STRING || memchr(e->via.str.ptr, '\0',
		    e->via.str.size) != NULL) {
			server_control_strs_free(out, i);
			snprintf(a->error, sizeof a->error,
			    "'%s' must be a list of strings", key);
			return (-1);
		}
		if ((out[i] = strndup(e->via.str.ptr, e->via.str.size)) ==
		    NULL) {
			server_control_strs_free(out, i);
			goto oom;
		}
	}
	*v = out;
	*n = o->via.array.size;
	return (0);
oom:
	snprintf(a->error, sizeof a->error, "out of memory");
	return (-1);
}

/* Packs a budget in basis points, nil when none was given. */
static void
server_control_pack_overhead(msgpack_packer *pk, uint32_t bp)
{
	if (bp == PROTO_OVERHEAD_UNSET)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_uint32(pk, bp);
}

/* Packs a bool. */
void
server_control_pack_bool(msgpack_packer *pk, int v)
{
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

/* Reads an optional uint argument: 0 (absent: *present = 0), or -1. */
int
server_control_arg_uint(struct control_args *a, const char *key,
    uint64_t *v, int *present)
{
	const msgpack_object	*o = proto_map_get(a->map, key);

	*present = o != NULL;
	if (o == NULL)
		return (0);
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		snprintf(a->error, sizeof a->error,
		    "'%s' must be an unsigned integer", key);
		return (-1);
	}
	*v = o->via.u64;
	return (0);
}

/* Reads an optional bool argument. */
int
server_control_arg_bool(struct control_args *a, const char *key, int *v)
{
	const msgpack_object	*o = proto_map_get(a->map, key);

	if (o == NULL)
		return (0);
	if (o->type != MSGPACK_OBJECT_BOOLEAN) {
		snprintf(a->error, sizeof a->error, "'%s' must be a boolean",
		    key);
		return (-1);
	}
	*v = o->via.boolean;
	return (0);
}

/* Reads an optional name argument and parses it; -1 on error. */
int
server_control_arg_name(struct control_args *a, const char *key,
    int (*parse)(const char *), const char *choices, uint32_t *v)
{
	const msgpack_object	*o = proto_map_get(a->map, key);
	char			 buf[32];
	int			 n;

	if (o == NULL)
		return (0);
	if (o->type != MSGPACK_OBJECT_STR) {
		snprintf(a->error, sizeof a->error, "'%s' must be a string",
		    key);
		return (-1);
	}
	if (o->via.str.size >= sizeof buf ||
	    memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
		n = -1;
	else {
		memcpy(buf, o->via.str.ptr, o->via.str.size);
		buf[o->via.str.size] = '\0';
		n = parse(buf);
	}
	if (n < 0) {
		snprintf(a->error, sizeof a->error,
		    "unknown %s '%.*s' (use %s)", key,
		    (int)(o->via.str.size > 32 ? 32 : o->via.str.size),
		    o->via.str.ptr, choices);
		return (-1);
	}
	*v = (uint32_t)n;
	return (0);
}

/* Reads the optional "pids" argument into a->pids. */
int
server_control_arg_pids(struct control_args *a)
{
	const msgpack_object	*o = proto_map_get(a->map, "pids"), *e;
	uint32_t		 i;

	if (o == NULL)
		return (0);
	if (o->type != MSGPACK_OBJECT_ARRAY) {
		snprintf(a->error, sizeof a->error,
		    "'pids' must be a list of process ids");
		return (-1);
	}
	if (o->via.array.size > CONTROL_MAX_PIDS) {
		snprintf(a->error, sizeof a->error,
		    "too many pids (at most %d)", CONTROL_MAX_PIDS);
		return (-1);
	}
	a->have_pids = o->via.array.size > 0;
	if (o->via.array.size == 0)
		return (0);
	a->pids = calloc(o->via.array.size, sizeof *a->pids);
	if (a->pids == NULL) {
		snprintf(a->error, sizeof a->error, "out of memory");
		return (-1);
	}
	for (i = 0; i < o->via.array.size; i++) {
		e = &o->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    e->via.u64 == 0 || e->via.u64 > UINT32_MAX) {
			snprintf(a->error, sizeof a->error,
			    "'pids' must be a list of process ids");
			return (-1);
		}
		a->pids[a->npids++] = (uint32_t)e->via.u64;
	}
	return (0);
}

/* Checks every pid has a connected agent. */
static int
server_control_check_pids(struct control_args *a)
{
	size_t	i;

	for (i = 0; i < a->npids; i++) {
		if (registry_find_connected(server_registry,
		    a->pids[i]) == NULL) {
			snprintf(a->error, sizeof a->error,
			    "no agent with pid %u attached", a->pids[i]);
			return (-1);
		}
	}
	return (0);
}

/* Ends a success reply, or replaces it with an error if it overflowed. */
int
server_control_end(struct proto_sink *sink, size_t start)
{
	size_t	max = sink->max > PROTO_HEADER_SIZE ?
		    sink->max - PROTO_HEADER_SIZE : 0;

	if (proto_end(sink, start) == 0)
		return (0);
	if (max >= PROTO_MAX_REPLY)
		proto_send_error(sink, "reply larger than %u MiB; narrow it "
		    "with --top, --since or --pid", PROTO_MAX_REPLY >> 20);
	else
		proto_send_error(sink, "reply larger than the %zu KiB profd "
		    "has room for now (a quarter of its --max-memory, less "
		    "the replies other clients have not read yet); narrow it "
		    "with --top, --since or --pid, or try again", max >> 10);
	return (-1);
}

/* "status": the global switch, counters, and every known agent. */
static int
server_control_status(struct control_args *a, struct proto_sink *sink)
{
	struct registry_proc	*p;
	struct store_counts	 sc;
	const struct store_config *cfg = store_get_config(server_store);
	msgpack_packer		*pk = &sink->pk;
	size_t			 start, i;

	store_get_counts(server_store, &sc);
	server_store_counts();
	daemon_stats.agents_forgotten = server_registry->forgotten;

	start = proto_begin_reply(sink, 1);
	msgpack_pack_map(pk, 12);
	proto_pack_cstr(pk, "store");
	msgpack_pack_map(pk, 7);
	proto_pack_cstr(pk, "state_dir");
	proto_pack_cstr(pk, server_state_dir);
	proto_pack_cstr(pk, "bucket_s");
	msgpack_pack_uint64(pk, cfg->tiers[0].width_ns / 1000000000);
	proto_pack_cstr(pk, "retention_s");
	msgpack_pack_uint64(pk, cfg->retention_ns / 1000000000);
	proto_pack_cstr(pk, "max_bytes");
	msgpack_pack_uint64(pk, cfg->max_bytes);
	proto_pack_cstr(pk, "bytes");
	msgpack_pack_uint64(pk, sc.bytes);
	proto_pack_cstr(pk, "oldest_ns");
	msgpack_pack_uint64(pk, sc.oldest_ns);
	proto_pack_cstr(pk, "buckets");
	msgpack_pack_uint64(pk, sc.buckets);
	proto_pack_cstr(pk, "profiling");
	server_control_pack_bool(pk, server_profile.profiling);
	proto_pack_cstr(pk, "rate_hz");
	msgpack_pack_uint32(pk, server_profile.rate_hz);
	proto_pack_cstr(pk, "jitter_pct");
	msgpack_pack_uint32(pk, server_profile.jitter_pct);
	proto_pack_cstr(pk, "max_overhead_bp");
	server_control_pack_overhead(pk, server_profile.max_overhead_bp);
	proto_pack_cstr(pk, "mode");
	proto_pack_cstr(pk, proto_mode_name(server_profile.mode));
	proto_pack_cstr(pk, "reader");
	proto_pack_cstr(pk, proto_reader_name(server_profile.reader));
	proto_pack_cstr(pk, "runtime_dir");
	proto_pack_cstr(pk, server_rundir);
	proto_pack_cstr(pk, "uptime_s");
	msgpack_pack_uint64(pk, server_uptime());
	proto_pack_cstr(pk, "version");
	proto_pack_cstr(pk, PROFD_VERSION);
	proto_pack_cstr(pk, "daemon");
	stats_pack(pk, &daemon_stats);

	proto_pack_cstr(pk, "agents");
	msgpack_pack_array(pk, server_registry->nprocs);
	DL_FOREACH(server_registry->procs, p) {
		msgpack_pack_map(pk, 20);
		proto_pack_cstr(pk, "pid");
		msgpack_pack_uint32(pk, p->pid);
		proto_pack_cstr(pk, "ppid");
		msgpack_pack_uint32(pk, p->ppid);
		proto_pack_cstr(pk, "service");
		proto_pack_cstr(pk, p->service);
		proto_pack_cstr(pk, "host");
		proto_pack_cstr(pk, p->host);
		proto_pack_cstr(pk, "python");
		proto_pack_cstr(pk, p->python);
		proto_pack_cstr(pk, "argv");
		server_control_pack_argv(pk, a, p->argv, p->argc);
		proto_pack_cstr(pk, "uid");
		if (p->uid == UINT32_MAX)
			msgpack_pack_nil(pk);
		else
			msgpack_pack_uint32(pk, p->uid);
		proto_pack_cstr(pk, "reader");
		proto_pack_cstr(pk, registry_reader(p));
		proto_pack_cstr(pk, "protocol");
		msgpack_pack_uint32(pk, p->version);
		proto_pack_cstr(pk, "start_ns");
		msgpack_pack_uint64(pk, p->start_ns);
		proto_pack_cstr(pk, "connected");
		server_control_pack_bool(pk, p->connected);
		proto_pack_cstr(pk, "profiling");
		server_control_pack_bool(pk, p->profiling);
		proto_pack_cstr(pk, "rate_hz");
		msgpack_pack_uint32(pk, p->rate_hz);
		proto_pack_cstr(pk, "max_overhead_bp");
		server_control_pack_overhead(pk, p->max_overhead_bp);
		proto_pack_cstr(pk, "rate_reason");
		proto_pack_cstr(pk, registry_rate_reason(p));
		proto_pack_cstr(pk, "mode");
		proto_pack_cstr(pk, proto_mode_name(p->mode));
		proto_pack_cstr(pk, "reader_asked");
		proto_pack_cstr(pk, proto_reader_name(p->reader_cfg));
		proto_pack_cstr(pk, "samples");
		msgpack_pack_uint64(pk, p->samples);
		proto_pack_cstr(pk, "dropped");
		msgpack_pack_uint64(pk, registry_stat(p, "dropped"));
		proto_pack_cstr(pk, "stats");
		msgpack_pack_map(pk, REGISTRY_NSTATS);
		for (i = 0; i < REGISTRY_NSTATS; i++) {
			proto_pack_cstr(pk, proto_agent_stat_names[i]);
			msgpack_pack_uint64(pk, p->stats[i]);
		}
	}
	return (server_control_end(sink, start));
}

/* Reads start's rate, mode and reader, defaulting to the global ones. */
static int
server_control_start_args_parse(struct control_args *a,
    struct server_profile *to)
{
	uint64_t	rate = server_profile.rate_hz;
	uint64_t	jitter = server_profile.jitter_pct;
	uint64_t	budget = 0;
	int		present;

	*to = server_profile;
	to->profiling = 1;
	if (server_control_arg_uint(a, "rate_hz", &rate, &present) != 0)
		return (-1);
	if (present && (rate < PROTO_RATE_MIN || rate > PROTO_RATE_MAX)) {
		snprintf(a->error, sizeof a->error,
		    "rate %llu Hz is out of range (%d to %d Hz)",
		    (unsigned long long)rate, PROTO_RATE_MIN,
		    PROTO_RATE_MAX);
		return (-1);
	}
	to->rate_hz = (uint32_t)rate;
	if (server_control_arg_uint(a, "jitter_pct", &jitter, &present) != 0)
		return (-1);
	if (present && jitter > PROTO_JITTER_MAX) {
		snprintf(a->error, sizeof a->error,
		    "jitter %llu%% is out of range (0 to %d%%)",
		    (unsigned long long)jitter, PROTO_JITTER_MAX);
		return (-1);
	}
	to->jitter_pct = (uint32_t)jitter;
	if (server_control_arg_uint(a, "max_overhead_bp", &budget,
	    &present) != 0)
		return (-1);
	if (present && budget > PROTO_OVERHEAD_MAX) {
		snprintf(a->error, sizeof a->error,
		    "max overhead %llu.%02llu%% is out of range (0 to 100%%)",
		    (unsigned long long)budget / 100,
		    (unsigned long long)budget % 100);
		return (-1);
	}
	if (present)
		to->max_overhead_bp = (uint32_t)budget;
	if (server_control_arg_name(a, "mode", proto_mode_parse,
	    "wall, cpu or gil", &to->mode) != 0 ||
	    server_control_arg_name(a, "reader", proto_reader_parse,
	    "default, gil or direct", &to->reader) != 0)
		return (-1);
	return (0);
}

/* Applies a setting to the agents named by pids, or to every one. */
static uint64_t
server_control_apply(struct control_args *a, const struct server_profile *sp,
    int keep_rate)
{
	struct registry_proc	*p, *p1;
	uint64_t		 n = 0;
	size_t			 i;

	/* Configuring may schedule a close; it never frees p here. */
	DL_FOREACH_SAFE(server_registry->procs, p, p1) {
		if (!p->connected || p->conn == NULL)
			continue;
		if (a->have_pids) {
			for (i = 0; i < a->npids; i++) {
				if (a->pids[i] == p->pid)
					break;
			}
			if (i == a->npids)
				continue;
		}
		if (keep_rate)
			server_agent_configure(p->conn, sp->profiling,
			    p->rate_hz != 0 ? p->rate_hz : sp->rate_hz,
			    p->mode, p->reader_cfg, p->jitter_pct,
			    p->max_overhead_bp);
		else
			server_agent_configure(p->conn, sp->profiling,
			    sp->rate_hz, sp->mode, sp->reader, sp->jitter_pct,
			    sp->max_overhead_bp);
		n++;
	}
	return (n);
}

/* Remembers what the named pids were just told, for when they attach
 * again (and across a restart, with a state dir). */
static void
server_control_remember_pids(struct control_args *a)
{
	struct registry_proc	*p;
	struct server_profile	 sp;
	size_t			 i;

	for (i = 0; i < a->npids; i++) {
		if ((p = registry_find_connected(server_registry,
		    a->pids[i])) == NULL)
			continue;
		sp.profiling = p->profiling;
		sp.rate_hz = p->rate_hz;
		sp.mode = p->mode;
		sp.reader = p->reader_cfg;
		sp.jitter_pct = p->jitter_pct;
		sp.max_overhead_bp = p->max_overhead_bp;
		server_profile_set_pid(a->pids[i], &sp);
	}
}

/* "start": profiling on, globally or for some pids. */
static int
server_control_start(struct control_args *a, struct proto_sink *sink)
{
	struct server_profile	sp;
	uint64_t		n;
	size_t			start;

	if (server_control_start_args_parse(a, &sp) != 0 ||
	    server_control_check_pids(a) != 0)
		return (-1);
	if (!a->have_pids) {
		server_profile_set(&sp);
		if (sp.max_overhead_bp == PROTO_OVERHEAD_UNSET)
			log_info("profiling on: %u Hz, mode %s, reader %s",
			    sp.rate_hz, proto_mode_name(sp.mode),
			    proto_reader_name(sp.reader));
		else
			log_info("profiling on: %u Hz, mode %s, reader %s, "
			    "max overhead %u.%02u%%", sp.rate_hz,
			    proto_mode_name(sp.mode),
			    proto_reader_name(sp.reader),
			    sp.max_overhead_bp / 100, sp.max_overhead_bp % 100);
	}
	n = server_control_apply(a, &sp, 0);
	server_control_remember_pids(a);
	start = proto_begin_reply(sink, 1);
	msgpack_pack_map(&sink->pk, 1);
	proto_pack_cstr(&sink->pk, "agents");
	msgpack_pack_uint64(&sink->pk, n);
	return (server_control_end(sink, start));
}

/* "stop": profiling off, globally or for some pids. */
static int
server_control_stop(struct control_args *a, struct proto_sink *sink)
{
	struct server_profile	sp = server_profile;
	uint64_t		n;
	size_t			start;

	if (server_control_check_pids(a) != 0)
		return (-1);
	sp.profiling = 0;
	if (!a->have_pids) {
		server_profile_set(&sp);
		log_info("profiling off");
	}
	n = server_control_apply(a, &sp, 1);
	server_control_remember_pids(a);
	start = proto_begin_reply(sink, 1);
	msgpack_pack_map(&sink->pk, 1);
	proto_pack_cstr(&sink->pk, "agents");
	msgpack_pack_uint64(&sink->pk, n);
	return (server_control_end(sink, start));
}

/* "reset": forgets every sample. */
static int
server_control_reset(struct control_args *a, struct proto_sink *sink)
{
	struct registry_proc	*p;
	size_t			 start;

	if (store_busy(server_store)) {
		/* No new show starts before the running ones end: the next
		 * try gets in. */
		server_control_reset_due = 1;
		snprintf(a->error, sizeof a->error, "a query is reading the "
		    "store; try again in a moment");
		return (-1);
	}
	store_reset(server_store);
	DL_FOREACH(server_registry->procs, p)
		p->samples = 0;
	/* Definitions nothing uses any more go now. */
	server_housekeep(server_now_ns(), 1);
	log_info("samples reset");
	start = proto_begin_reply(sink, 1);
	msgpack_pack_map(&sink->pk, 0);
	return (server_control_end(sink, start));
}

/* "reload": reads the config file and flags again. */
static int
server_control_reload(struct control_args *a, struct proto_sink *sink)
{
	char	msg[400];
	size_t	start;

	if (server_reload_hook == NULL) {
		snprintf(a->error, sizeof a->error, "this profd cannot "
		    "reload");
		return (-1);
	}
	if (server_reload_hook(msg, sizeof msg) != 0) {
		snprintf(a->error, sizeof a->error, "reload failed, the "
		    "settings in effect are kept: %s", msg);
		return (-1);
	}
	start = proto_begin_reply(sink, 1);
	msgpack_pack_map(&sink->pk, 1);
	proto_pack_cstr(&sink->pk, "config");
	proto_pack_cstr(&sink->pk, msg);
	return (server_control_end(sink, start));
}

/* The command of a name, or NULL. */
static const struct control_cmd *
server_control_find(const char *name, size_t len)
{
	size_t	i;

	for (i = 0; i < SERVER_CONTROL_NCMDS; i++)
		if (strlen(server_control_cmds[i].name) == len &&
		    memcmp(server_control_cmds[i].name, name, len) == 0)
			return (&server_control_cmds[i]);
	return (NULL);
}

/*
 * Whether the peer may run a command: 0, or -1 with the refusal written
 * into sink (one log line, a counter).  Unknown commands pass: the
 * request answers them.
 */
static int
server_control_allowed(struct control_conn *cc, const char *name,
    size_t len, struct proto_sink *sink)
{
	const struct control_cmd	*cmd = server_control_find(name, len);
	const char			*kind;
	char				 who[128], user[64];
	struct passwd			*pw;

	if (cmd == NULL || cc->level >= cmd->level)
		return (0);
	daemon_stats.controls_denied++;
	access_peer_name(&cc->peer, who, sizeof who);
	log_warn("control: %s denied '%s' (%s access)", who, cmd->name,
	    access_level_name(cc->level));
	if ((pw = getpwuid(cc->peer.uid)) != NULL)
		snprintf(user, sizeof user, "%s", pw->pw_name);
	else
		snprintf(user, sizeof user, "%u", (unsigned)cc->peer.uid);
	kind = cmd->level == ACCESS_READ ? "read-" : "";
	proto_send_error(sink, "permission denied: %s may not use '%s' (it "
	    "needs %s access).  Ask the administrator to add 'allow-%suser "
	    "%s' or 'allow-%sgroup GROUP' to %s and run 'profctl reload' "
	    "(or start profd with --allow-%suser %s)", who, cmd->name,
	    access_level_name(cmd->level), kind, user, kind,
	    server_config_path,
	    kind, user);
	return (-1);
}

/* Checks every key of the argument map is one the command takes. */
static int
server_control_check_keys(const struct control_cmd *cmd,
    struct control_args *a)
{
	const msgpack_object	*k;
	uint32_t		 i;
	size_t			 j;

	for (i = 0; a->map != NULL && i < a->map->size; i++) {
		k = &a->map->ptr[i].key;
		if (k->type != MSGPACK_OBJECT_STR) {
			snprintf(a->error, sizeof a->error,
			    "argument names must be strings");
			return (-1);
		}
		for (j = 0; cmd->args[j] != NULL; j++) {
			if (strlen(cmd->args[j]) == k->via.str.size &&
			    memcmp(cmd->args[j], k->via.str.ptr,
			    k->via.str.size) == 0)
				break;
		}
		if (cmd->args[j] == NULL) {
			snprintf(a->error, sizeof a->error,
			    "unknown argument '%.*s' for '%s'",
			    (int)(k->via.str.size > 64 ? 64 : k->via.str.size),
			    k->via.str.ptr, cmd->name);
			return (-1);
		}
	}
	return (0);
}

/* Runs one request and writes one whole reply frame into sink. */
int
server_control_request(const char *command, size_t command_len,
    const msgpack_object_map *args, enum access_level level,
    struct proto_sink *sink)
{
	const struct control_cmd	*cmd;
	struct control_args		 a;
	int				 rc = -1;

	memset(&a, 0, sizeof a);
	a.map = args;
	a.level = level;
	cmd = server_control_find(command, command_len);
	if (cmd != NULL && level < cmd->level) {
		snprintf(a.error, sizeof a.error, "permission denied: '%s' "
		    "needs %s access", cmd->name,
		    access_level_name(cmd->level));
		goto fail;
	}
	if (cmd == NULL) {
		snprintf(a.error, sizeof a.error, "unknown command '%.*s'",
		    (int)(command_len > 64 ? 64 : command_len), command);
		goto fail;
	}
	if (server_control_check_keys(cmd, &a) != 0 ||
	    server_control_arg_pids(&a) != 0)
		goto fail;
	if (cmd->exec(&a, sink) != 0) {
		if (a.error[0] == '\0')
			goto done;	/* the reply is already an error */
		goto fail;
	}
	rc = 0;
	goto done;

fail:
	proto_send_error(sink, "%s", a.error);
done:
	if (rc != 0)
		daemon_stats.request_errors++;
	free(a.pids);
	return (rc);
}

/* Arms (or, for NONE, clears) a connection's deadline. */
static void
server_control_deadline(struct control_conn *cc, enum control_deadline d)
{
	uint64_t	s = server_limits.control_timeout_s;

	if (d == cc->deadline && d != CONTROL_DEADLINE_REPLY)
		return;
	cc->deadline = d;
	if (d == CONTROL_DEADLINE_NONE) {
		event_del(cc->deadline_ev);
		return;
	}
	if (d == CONTROL_DEADLINE_FRAME)
		s = server_limits.frame_timeout_s;
	if (d == CONTROL_DEADLINE_QUEUED)
		s = server_limits.query_timeout_s;
	if (d == CONTROL_DEADLINE_IDLE || d == CONTROL_DEADLINE_QUEUED)
		cc->waiting_ns = server_now_ns();
	server_deadline(cc->deadline_ev, s);
}

static void	server_control_read_cb(struct bufferevent *, void *);

/* Shows running (scanning: only those still reading the store or
 * copying a profile out of it, not those aside to be encoded). */
static size_t
server_control_running(int scanning)
{
	struct control_conn	*cc;
	size_t			 n = 0;

	DL_FOREACH(server_control_list, cc)
		n += cc->job != NULL && (!scanning || (cc->aside == NULL &&
		    cc->aside_wait == 0));
	return (n);
}

/* Whether a show may start now: under --max-queries, and no reset waits
 * for the running ones to end (it goes first). */
static int
server_control_may_start(void)
{
	return (!server_control_reset_due &&
	    server_control_running(0) < server_limits.max_queries);
}

/*
 * A show ended: if it was the last, a reset waiting for it may go; then
 * the shows waiting for a turn start, oldest connection first.
 */
static int	server_control_closing_all;	/* shutdown: no turns */

static void
server_control_turn(void)
{
	struct control_conn	*cc, *cc1;

	if (server_control_closing_all)
		return;
	if (!store_busy(server_store))
		server_control_reset_due = 0;
	DL_FOREACH_SAFE(server_control_list, cc, cc1) {
		if (!server_control_may_start())
			break;
		if (!cc->queued)
			continue;
		cc->queued = 0;
		server_control_read_cb(cc->bev, cc);
	}
}

/* A show's encoding handed to the worker.  The job is the aside's while
 * it is there: a connection closed meanwhile lets go of both, and the
 * aside frees them when it comes back. */
struct control_aside {
	struct worker_job	 w;
	struct control_show_job	*job;
	struct control_conn	*cc;	/* NULL once the connection is gone */
};

/* Encodings out on the worker: CONTROL_ENCODINGS_OUT (one) at a time, so
 * that the profiles and bytes of encodings never add up past what one show
 * holds. */
static int	server_control_asides;
static uint64_t	server_control_aside_line;	/* places handed out */

/* While there is room on the worker, the show that has waited longest for
 * it goes.  Called whenever an encoding comes back or a show ends. */
static void
server_control_aside_kick(void)
{
	struct control_conn	*cc, *first = NULL;
	struct timeval		 zero = { 0, 0 };

	if (server_control_asides >= CONTROL_ENCODINGS_OUT)
		return;
	DL_FOREACH(server_control_list, cc) {
		if (cc->aside_wait != 0 && (first == NULL ||
		    cc->aside_wait < first->aside_wait))
			first = cc;
	}
	if (first != NULL) {
		first->aside_wait = 0;
		evtimer_add(first->step_ev, &zero);
	}
}

/* Frees a control connection. */
static void
server_control_free(struct control_conn *cc)
{
	int	had_job = cc->job != NULL;

	if (cc->aside != NULL) {
		cc->aside->cc = NULL;
		cc->aside = NULL;
		cc->job = NULL;
	}
	control_show_free(cc->job);
	cc->job = NULL;
	access_peer_free(&cc->peer);
	if (cc->step_ev != NULL)
		event_free(cc->step_ev);
	if (cc->deadline_ev != NULL)
		event_free(cc->deadline_ev);
	server_conn_charge(&cc->charged, 0);
	DL_DELETE(server_control_list, cc);
	server_control_count--;
	bufferevent_free(cc->bev);
	free(cc);
	if (had_job)
		server_control_turn();
}

/* Frees every control connection (shutdown). */
void
server_control_free_all(void)
{
	struct control_conn	*cc, *cc1;

	server_control_closing_all = 1;
	DL_FOREACH_SAFE(server_control_list, cc, cc1)
		server_control_free(cc);
	server_control_closing_all = 0;
}

/* Marks what every running show needs (store_set_sweep_hook). */
void
server_control_mark_all(void *arg)
{
	struct control_conn	*cc;

	(void)arg;
	DL_FOREACH(server_control_list, cc)
		if (cc->job != NULL)
			control_show_mark(cc->job);
}

/* Frees a reply buffer once libevent has sent it. */
static void
server_control_sent(const void *data, size_t len, void *arg)
{
	free(arg);
}

/* Reply bytes queued on every control connection, not yet read. */
static size_t
server_control_unread(void)
{
	struct control_conn	*cc;
	size_t			 n = 0;

	DL_FOREACH(server_control_list, cc)
		n += evbuffer_get_length(bufferevent_get_output(cc->bev));
	return (n);
}

/*
 * Room for a show's reply: what the replies of every client may hold
 * together (CONTROL_REPLY_PCT of --max-memory) less what is unread, at
 * least CONTROL_REPLY_SMALL: a reply is built within it or not at all, so
 * that replies never take profd past its memory bound.
 */
static size_t
server_control_reply_room(void)
{
	size_t	cap = server_limits.max_memory / 100 * CONTROL_REPLY_PCT;
	size_t	unread = server_control_unread();
	size_t	room = unread < cap ? cap - unread : 0;

	if (room < CONTROL_REPLY_SMALL)
		room = CONTROL_REPLY_SMALL;
	if (room > PROTO_MAX_REPLY)
		room = PROTO_MAX_REPLY;
	return (PROTO_HEADER_SIZE + room);
}

/* Queues a reply frame without copying it; stops reading until it is
 * sent.  The sink's buffer now belongs to the connection's output.  While
 * other clients leave more than CONTROL_REPLY_PCT of --max-memory unread,
 * a reply bigger than CONTROL_REPLY_SMALL is an error instead: memory
 * stays bounded however many clients never read, and status still
 * answers. */
static void
server_control_send(struct control_conn *cc, struct proto_sink *sink)
{
	struct evbuffer	*out = bufferevent_get_output(cc->bev);
	size_t		 unread = server_control_unread();
	size_t		 cap = server_limits.max_memory / 100 *
			    CONTROL_REPLY_PCT;

	if (unread > 0 && sink->len > CONTROL_REPLY_SMALL &&
	    unread + sink->len > cap) {
		daemon_stats.replies_refused++;
		log_warn("control: %zu bytes of replies unread by other "
		    "clients; refusing a reply of %zu bytes", unread,
		    sink->len);
		sink->len = 0;
		sink->full = 0;
		proto_send_error(sink, "busy: %zu MiB of replies wait for "
		    "other clients to read them; try again", unread >> 20);
	}
	daemon_stats.requests++;
	bufferevent_disable(cc->bev, EV_READ);
	server_control_deadline(cc, CONTROL_DEADLINE_REPLY);
	if (sink->len == 0 || evbuffer_add_reference(out, sink->data,
	    sink->len, server_control_sent, sink->data) != 0) {
		if (sink->len != 0)
			daemon_stats.alloc_failures++;
		cc->closing = 1;
		if (evbuffer_get_length(out) == 0)
			bufferevent_trigger(cc->bev, EV_WRITE, 0);
		return;
	}
	sink->data = NULL;
	sink->len = sink->cap = 0;
}

/* Ends a connection's show: its figures, its reply, the next turn. */
static void
server_control_show_end(struct control_conn *cc, struct proto_sink *sink)
{
	struct timespec	now;
	uint64_t	us;

	clock_gettime(CLOCK_MONOTONIC, &now);
	us = (uint64_t)((int64_t)(now.tv_sec - cc->job_start.tv_sec) *
	    1000000 + ((int64_t)now.tv_nsec - cc->job_start.tv_nsec) / 1000);
	control_show_free(cc->job);
	cc->job = NULL;
	daemon_stats.query_us_last = us;
	if (us > daemon_stats.query_us_max)
		daemon_stats.query_us_max = us;
	server_control_send(cc, sink);
	server_control_aside_kick();
	server_control_turn();
}

/* On the worker: encodes. */
static void
server_control_aside_run(struct worker_job *w)
{
	struct control_aside	*x = (struct control_aside *)w;

	control_show_aside_run(x->job);
}

/* Back on the loop: replies the encoding, unless the connection went. */
static void
server_control_aside_done(struct worker_job *w, int cancelled)
{
	struct control_aside	*x = (struct control_aside *)w;
	struct control_conn	*cc = x->cc;
	struct proto_sink	 sink;

	server_control_asides--;
	if (cc == NULL || cancelled) {
		if (cc != NULL) {
			cc->aside = NULL;
			cc->job = NULL;
		}
		control_show_free(x->job);
		free(x);
		if (!cancelled)
			server_control_aside_kick();
		return;
	}
	cc->aside = NULL;
	free(x);
	proto_sink_init(&sink, server_control_reply_room());
	if (control_show_aside_finish(cc->job, &sink) != 0)
		daemon_stats.request_errors++;
	server_control_show_end(cc, &sink);
	proto_sink_free(&sink);
}

/*
 * Hands a finished show's encoding to the worker: 1 if it went (answered
 * later), 2 if it waits for the one out to come back, 0 if it is not a
 * stack format or no worker runs (finish it on the loop), 3 if it was
 * encoded here after all (sink holds the reply), -1 if it failed (sink
 * holds the error reply).
 */
static int
server_control_aside(struct control_conn *cc, struct proto_sink *sink)
{
	struct control_aside	*x;
	int			 rc;

	if (!worker_running() || !control_show_stacks(cc->job))
		return (0);
	if (server_control_asides >= CONTROL_ENCODINGS_OUT) {
		cc->aside_wait = ++server_control_aside_line;
		return (2);
	}
	if ((x = calloc(1, sizeof *x)) == NULL)
		return (0);
	if ((rc = control_show_aside(cc->job, sink)) != 1) {
		free(x);
		return (rc);
	}
	x->w.run = server_control_aside_run;
	x->w.done = server_control_aside_done;
	x->job = cc->job;
	x->cc = cc;
	cc->aside = x;
	daemon_stats.shows_encoded_aside++;
	server_control_asides++;
	if (worker_submit(&x->w) != 0) {
		/* Not running after all: encoded here, answered in sink. */
		server_control_asides--;
		cc->aside = NULL;
		free(x);
		control_show_aside_run(cc->job);
		return (control_show_aside_finish(cc->job, sink) != 0 ? -1 : 3);
	}
	/* Shows queued behind a reset may start. */
	server_control_turn();
	return (1);
}

/* Tests: PROFD_TEST_SHOW_STEP=ENTRIES:MS makes every show read that
 * many entries a step and wait that long between steps, so that a test
 * can hold a show open while housekeeping runs. */
static void
server_control_step_size(size_t *entries, struct timeval *pause)
{
	static size_t		n;
	static struct timeval	tv;
	static int		read_env;
	const char		*env;
	char			*end;
	unsigned long		ms;

	if (!read_env) {
		read_env = 1;
		n = CONTROL_SHOW_STEP_ENTRIES;
		if ((env = getenv("PROFD_TEST_SHOW_STEP")) != NULL) {
			n = strtoul(env, &end, 10);
			ms = *end == ':' ? strtoul(end + 1, NULL, 10) : 0;
			if (n == 0)
				n = CONTROL_SHOW_STEP_ENTRIES;
			tv.tv_sec = (time_t)(ms / 1000);
			tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
		}
	}
	*entries = n;
	*pause = tv;
}

/* Runs the next step of a connection's show; answers when it is done. */
static void
server_control_step_cb(evutil_socket_t fd, short events, void *arg)
{
	struct control_conn	*cc = arg;
	struct proto_sink	 sink;
	struct timespec		 now, t0;
	struct timeval		 pause;
	size_t			 entries, slice, done, running;
	uint64_t		 limit_us;
	uint64_t		 us;
	int			 rc, ra;

	server_control_step_size(&entries, &pause);
	/* Slices of the step until its entries are read or its time is up:
	 * a slow slice (entries spread over a big table, a table growing)
	 * ends the turn early.  The shows running share the time of a turn
	 * of the loop. */
	running = server_control_running(1);
	limit_us = CONTROL_SHOW_STEP_US / (running > 0 ? running : 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (done = 0;;) {
		slice = entries - done < CONTROL_SHOW_SLICE_ENTRIES ?
		    entries - done : CONTROL_SHOW_SLICE_ENTRIES;
		rc = control_show_step(cc->job, slice);
		done += slice;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (rc != 0 || done >= entries ||
		    (uint64_t)((int64_t)(now.tv_sec - t0.tv_sec) * 1000000 +
		    ((int64_t)now.tv_nsec - t0.tv_nsec) / 1000) >= limit_us)
			break;
	}
	/* (Signed: the nanoseconds may go backwards across a second.) */
	us = (uint64_t)((int64_t)(now.tv_sec - cc->job_start.tv_sec) *
	    1000000 + ((int64_t)now.tv_nsec - cc->job_start.tv_nsec) / 1000);
	proto_sink_init(&sink, server_control_reply_room());
	if (rc == 0 && us >= server_limits.query_timeout_s * 1000000) {
		/* Past its deadline: ended, so that it holds nothing up. */
		daemon_stats.queries_timed_out++;
		daemon_stats.request_errors++;
		log_warn("control: a show ran past --query-timeout (%llu s); "
		    "ended", (unsigned long long)server_limits.query_timeout_s);
		proto_send_error(&sink, "the query ran past profd's "
		    "--query-timeout (%llu s): narrow it with --since, "
		    "--service or --pid",
		    (unsigned long long)server_limits.query_timeout_s);
	} else if (rc == 0) {
		proto_sink_free(&sink);
		/* A timer, not event_active: agents' I/O runs first. */
		evtimer_add(cc->step_ev, &pause);
		return;
	} else if (rc == 1 && (ra = server_control_aside(cc, &sink)) != 0) {
		if (ra == 1 || ra == 2) {
			proto_sink_free(&sink);
			return;
		}
		if (ra == -1)
			daemon_stats.request_errors++;
	} else if (control_show_finish(cc->job, &sink) != 0)
		daemon_stats.request_errors++;
	server_control_show_end(cc, &sink);
	proto_sink_free(&sink);
}

/*
 * Starts a show in steps.  0: started (answered later); -1: not started,
 * and sink holds the error reply if there was one (else the caller runs
 * the request the usual way).
 */
static int
server_control_show_async(struct control_conn *cc,
    const msgpack_object_map *args, struct proto_sink *sink)
{
	const struct control_cmd	*cmd;
	struct control_args		 a;
	struct timeval			 zero = { 0, 0 };

	if (server_base == NULL)
		return (-1);
	/* Not its turn: the request stays in the input until one ends. */
	if (!server_control_may_start()) {
		if (!cc->queued)
			daemon_stats.queries_waited++;
		cc->queued = 1;
		bufferevent_disable(cc->bev, EV_READ);
		server_control_deadline(cc, CONTROL_DEADLINE_QUEUED);
		return (1);
	}
	cmd = server_control_find("show", 4);
	memset(&a, 0, sizeof a);
	a.map = args;
	a.level = cc->level;
	if (cc->step_ev == NULL && (cc->step_ev = evtimer_new(server_base,
	    server_control_step_cb, cc)) == NULL)
		snprintf(a.error, sizeof a.error, "out of memory");
	else if (server_control_check_keys(cmd, &a) == 0)
		cc->job = control_show_begin(&a);
	if (cc->job == NULL) {
		daemon_stats.request_errors++;
		proto_send_error(sink, "%s", a.error[0] != '\0' ? a.error :
		    "out of memory");
		return (-1);
	}
	clock_gettime(CLOCK_MONOTONIC, &cc->job_start);
	bufferevent_disable(cc->bev, EV_READ);
	server_control_deadline(cc, CONTROL_DEADLINE_NONE);
	evtimer_add(cc->step_ev, &zero);
	return (0);
}

/* Reads a request and answers it. */
static void
server_control_read_cb(struct bufferevent *bev, void *arg)
{
	struct control_conn	*cc = arg;
	struct proto_sink	 sink;
	struct proto_msg	 msg;
	msgpack_unpacked	 up;
	const char		*payload, *err = NULL;
	size_t			 payload_len, frame_len;
	int			 rc;

	if (cc->closing || cc->job != NULL ||
	    evbuffer_get_length(bufferevent_get_output(bev)))
		return;
	rc = server_read_frame(bev, PROTO_MAX_MSG, CONTROL_MAX_INPUT,
	    &payload, &payload_len, &frame_len);
	if (rc == 0) {
		/* A request begun must be whole within frame-timeout. */
		if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
			server_control_deadline(cc, CONTROL_DEADLINE_FRAME);
		if (server_conn_charge(&cc->charged, evbuffer_get_length(
		    bufferevent_get_input(bev))) != 0) {
			daemon_stats.memory_closes++;
			log_warn("control: over the connections' memory "
			    "budget; closing");
			server_control_free(cc);
		}
		return;
	}

	proto_sink_init(&sink, PROTO_HEADER_SIZE + PROTO_MAX_REPLY);
	if (rc < 0) {
		daemon_stats.bad_frames++;
		log_warn("control: request length 0 or over %u bytes; "
		    "closing", PROTO_MAX_MSG);
		proto_send_error(&sink, "bad request: length 0 or over %u "
		    "bytes", PROTO_MAX_MSG);
		cc->closing = 1;
		goto send;
	}
	msgpack_unpacked_init(&up);
	if (proto_decode(payload, payload_len, &up, &msg, &err) != 0 ||
	    msg.type != PROTO_REQUEST) {
		if (err == NULL)
			err = "not a request";
		daemon_stats.bad_frames++;
		log_warn("control: bad request: %s; closing", err);
		proto_send_error(&sink, "bad request: %s", err);
		cc->closing = 1;
	} else {
		log_debug("control: %.*s", (int)msg.request.command_len,
		    msg.request.command);
		if (server_control_allowed(cc, msg.request.command,
		    msg.request.command_len, &sink) != 0)
			;	/* the refusal is in sink */
		else if (msg.request.command_len == 4 &&
		    memcmp(msg.request.command, "show", 4) == 0 &&
		    (rc = server_control_show_async(cc, msg.request.args,
		    &sink)) >= 0) {
			/* Answered when its query is done; read again when
			 * its turn comes (1). */
			msgpack_unpacked_destroy(&up);
			if (rc == 0)
				evbuffer_drain(bufferevent_get_input(bev),
				    frame_len);
			proto_sink_free(&sink);
			return;
		}
		if (sink.len == 0)
			server_control_request(msg.request.command,
			    msg.request.command_len, msg.request.args,
			    cc->level, &sink);
	}
	msgpack_unpacked_destroy(&up);
	evbuffer_drain(bufferevent_get_input(bev), frame_len);
send:
	server_conn_charge(&cc->charged,
	    evbuffer_get_length(bufferevent_get_input(bev)));
	server_control_send(cc, &sink);
	proto_sink_free(&sink);
}

/* The reply is sent: close, or read the next request. */
static void
server_control_write_cb(struct bufferevent *bev, void *arg)
{
	struct control_conn	*cc = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (cc->closing) {
		server_control_free(cc);
		return;
	}
	bufferevent_enable(bev, EV_READ);
	server_control_deadline(cc, CONTROL_DEADLINE_IDLE);
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		server_control_read_cb(bev, cc);
}

/* Handles end of file, errors and timeouts. */
static void
server_control_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct control_conn	*cc = arg;

	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_WRITING) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) != 0) {
		/* Half-closed: send what is pending, then close. */
		cc->closing = 1;
		return;
	}
	server_control_free(cc);
}

/* A show that waited --query-timeout for its turn: answered "busy". */
static void
server_control_busy(struct control_conn *cc)
{
	struct proto_sink	sink;
	const char		*payload;
	size_t			 plen, flen;

	cc->queued = 0;
	daemon_stats.queries_timed_out++;
	daemon_stats.request_errors++;
	if (server_read_frame(cc->bev, PROTO_MAX_MSG, CONTROL_MAX_INPUT,
	    &payload, &plen, &flen) == 1)
		evbuffer_drain(bufferevent_get_input(cc->bev), flen);
	proto_sink_init(&sink, PROTO_HEADER_SIZE + CONTROL_REPLY_SMALL);
	proto_send_error(&sink, "busy: other shows held every one of profd's "
	    "--max-queries turns for --query-timeout (%llu s); try again",
	    (unsigned long long)server_limits.query_timeout_s);
	server_control_send(cc, &sink);
	proto_sink_free(&sink);
}

/* A deadline passed: closes the connection, counted by cause. */
static void
server_control_deadline_cb(evutil_socket_t fd, short events, void *arg)
{
	struct control_conn	*cc = arg;
	uint64_t		 s = server_limits.control_timeout_s;

	switch (cc->deadline) {
	case CONTROL_DEADLINE_FRAME:
		daemon_stats.frame_timeouts++;
		log_warn("control: request not whole within %llu s of its "
		    "first byte; closing",
		    (unsigned long long)server_limits.frame_timeout_s);
		break;
	case CONTROL_DEADLINE_REPLY:
		daemon_stats.reply_timeouts++;
		log_warn("control: reply not read within %llu s; closing",
		    (unsigned long long)s);
		break;
	case CONTROL_DEADLINE_QUEUED:
		server_control_busy(cc);
		return;
	default:
		daemon_stats.control_timeouts++;
		log_debug("control: no request for %llu s; closing",
		    (unsigned long long)s);
		break;
	}
	server_control_free(cc);
}

/* The connection to close for a new one at max-controls: the one waiting
 * longest for a request (idle or still sending it) among those with no
 * more access than the newcomer's `level`, the least access first; NULL
 * when none qualifies (every one is busy, or more entitled). */
static struct control_conn *
server_control_victim(enum access_level level)
{
	struct control_conn	*cc, *v = NULL;

	/* A peer never closes one with more access than its own; among the
	 * others, those with the least access go first. */
	DL_FOREACH(server_control_list, cc) {
		if (cc->closing || (cc->deadline != CONTROL_DEADLINE_IDLE &&
		    cc->deadline != CONTROL_DEADLINE_FRAME &&
		    cc->deadline != CONTROL_DEADLINE_QUEUED) ||
		    cc->level > level)
			continue;
		if (v == NULL || cc->level < v->level ||
		    (cc->level == v->level && cc->waiting_ns < v->waiting_ns))
			v = cc;
	}
	return (v);
}

/* Accepts a control connection, within max-controls. */
void
server_control_accept(int fd)
{
	struct bufferevent	*bev;
	struct control_conn	*cc;
	struct access_peer	 peer;
	enum access_level	 level = ACCESS_NONE;

	if (access_peer_get(fd, &peer) == 0) {
		level = access_level(&peer);
		access_peer_free(&peer);
	}
	if (server_control_count >= server_limits.max_controls &&
	    (cc = server_control_victim(level)) != NULL) {
		daemon_stats.controls_evicted++;
		log_warn("control: closing the connection waiting longest "
		    "for a request, for a new one (max-controls)");
		server_control_free(cc);
	}
	if (server_control_count >= server_limits.max_controls) {
		daemon_stats.controls_rejected++;
		log_warn("refusing a control connection: %zu open "
		    "(max-controls)", server_control_count);
		close(fd);
		return;
	}
	bev = bufferevent_socket_new(server_base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		daemon_stats.alloc_failures++;
		log_warn("refusing a control connection: out of memory");
		close(fd);
		return;
	}
	if ((cc = calloc(1, sizeof *cc)) == NULL ||
	    (cc->deadline_ev = evtimer_new(server_base,
	    server_control_deadline_cb, cc)) == NULL) {
		daemon_stats.alloc_failures++;
		log_warn("refusing a control connection: out of memory");
		free(cc);
		bufferevent_free(bev);
		return;
	}
	/* Without credentials the peer may do nothing: it is told so. */
	if (access_peer_get(fd, &cc->peer) == 0)
		cc->level = access_level(&cc->peer);
	else {
		cc->peer.uid = (uid_t)-1;
		cc->level = ACCESS_NONE;
	}
	cc->bev = bev;
	DL_APPEND(server_control_list, cc);
	server_control_count++;
	daemon_stats.controls_accepted++;
	bufferevent_setcb(bev, server_control_read_cb,
	    server_control_write_cb, server_control_event_cb, cc);
	bufferevent_setwatermark(bev, EV_READ, 0, CONTROL_MAX_INPUT);
	server_control_deadline(cc, CONTROL_DEADLINE_IDLE);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}
