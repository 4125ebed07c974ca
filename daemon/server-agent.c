/*
 * server-agent.c -- agent connections: hello, definitions, samples, stats.
 *
 * An agent defines each string, function, frame, stack and thread once per
 * connection, numbered densely from 1 per kind, before it refers to it.  The
 * connection maps those ids to the store's global ids.  Anything out of
 * order or undefined is a protocol error: one log line, a counter, and that
 * agent alone is closed.
 */

#include <sys/ioctl.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <utlist.h>

#include "settings.h"
#include "access.h"
#include "log.h"
#include "proto.h"
#include "registry.h"
#include "server-agent.h"
#include "server.h"
#include "stats.h"
#include "query.h"
#include "store.h"

/* Connected agents: event loop thread only. */
static struct agent_conn	*server_agent_list;
size_t				 server_agent_count;

static const char *const server_agent_kind_names[AGENT_NKINDS] = {
	"string", "function", "frame", "stack", "thread"
};

/* The store's kind of each agent kind. */
static const enum store_kind server_agent_store_kinds[AGENT_NKINDS] = {
	STORE_STRING, STORE_FUNC, STORE_FRAME, STORE_STACK, STORE_THREAD
};

static void	server_agent_close(struct agent_conn *);
static void	server_agent_deadline_cb(evutil_socket_t, short, void *);
static void	server_agent_event_cb(struct bufferevent *, short, void *);

/* Agent connections of each user but root and our own: a short list, as
 * few users run Python processes on one host.  Event loop thread only. */
struct server_agent_uid {
	uid_t	uid;
	size_t	conns;
};
static struct server_agent_uid	*server_agent_uids;
static size_t			 server_agent_nuids, server_agent_uids_cap;

/* The entry of a uid, created when `create`; NULL if none (or no memory). */
static struct server_agent_uid *
server_agent_uid(uid_t uid, int create)
{
	struct server_agent_uid	*u;
	size_t			 i, cap;

	for (i = 0; i < server_agent_nuids; i++)
		if (server_agent_uids[i].uid == uid)
			return (&server_agent_uids[i]);
	if (!create)
		return (NULL);
	if (server_agent_nuids == server_agent_uids_cap) {
		cap = server_agent_uids_cap ? server_agent_uids_cap * 2 : 16;
		u = realloc(server_agent_uids, cap * sizeof *u);
		if (u == NULL)
			return (NULL);
		server_agent_uids = u;
		server_agent_uids_cap = cap;
	}
	u = &server_agent_uids[server_agent_nuids++];
	u->uid = uid;
	u->conns = 0;
	return (u);
}

/* Forgets a connection of an untrusted uid. */
static void
server_agent_uid_release(uid_t uid)
{
	struct server_agent_uid	*u = server_agent_uid(uid, 0);

	if (u == NULL || u->conns == 0)
		return;
	if (--u->conns == 0) {
		*u = server_agent_uids[--server_agent_nuids];
		if (server_agent_nuids == 0) {
			free(server_agent_uids);
			server_agent_uids = NULL;
			server_agent_uids_cap = 0;
		}
	}
}

/* Records why a connection is being closed; returns -1. */
static int __attribute__((format(printf, 2, 3)))
server_agent_fail(struct agent_conn *c, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(c->error, sizeof c->error, fmt, ap);
	va_end(ap);
	return (-1);
}

/* What a connection holds: its id tables and its buffers. */
static size_t
server_agent_bytes(const struct agent_conn *c)
{
	size_t	n = 0;
	int	k;

	for (k = 0; k < AGENT_NKINDS; k++)
		n += (size_t)c->ids[k].cap * sizeof *c->ids[k].map;
	if (c->bev != NULL)
		n += evbuffer_get_length(bufferevent_get_input(c->bev));
	return (n + evbuffer_get_length(c->out));
}

/* Charges what a connection holds, plus extra bytes it is about to take,
 * to the connections' budget; -1 (reason set) when over it. */
static int
server_agent_charge(struct agent_conn *c, size_t extra)
{
	if (server_conn_charge(&c->charged, server_agent_bytes(c) +
	    extra) == 0)
		return (0);
	daemon_stats.memory_closes++;
	c->resource_error = 1;
	return (server_agent_fail(c, "over the connections' memory budget "
	    "(%zu of %zu bytes held by all)", server_conn_bytes,
	    server_conn_budget));
}

/* Names a connection for the log: its pid once known. */
static const char *
server_agent_name(const struct agent_conn *c, char *buf, size_t len)
{
	if (c->proc != NULL)
		snprintf(buf, len, "agent pid %u", c->pid);
	else
		snprintf(buf, len, "agent (before hello)");
	return (buf);
}

/* Closes a connection from a callback that may not free it yet. */
static void
server_agent_close_cb(evutil_socket_t fd, short events, void *arg)
{
	server_agent_close(arg);
}

/* Schedules a close for after the current callback. */
static void
server_agent_close_later(struct agent_conn *c)
{
	c->closing = 1;
	if (c->close_ev != NULL)
		event_active(c->close_ev, EV_TIMEOUT, 1);
}

/* Creates a connection on bev, or a socket-less one when bev is NULL. */
struct agent_conn *
server_agent_create(struct bufferevent *bev)
{
	struct agent_conn	*c;

	if ((c = calloc(1, sizeof *c)) == NULL)
		return (NULL);
	c->bev = bev;
	c->peer_pidfd = -1;
	c->accepted_ns = c->input_ns = server_now_ns();
	if (bev != NULL) {
		c->out = bufferevent_get_output(bev);
		c->close_ev = event_new(bufferevent_get_base(bev), -1, 0,
		    server_agent_close_cb, c);
		c->deadline_ev = evtimer_new(bufferevent_get_base(bev),
		    server_agent_deadline_cb, c);
		if (c->close_ev == NULL || c->deadline_ev == NULL) {
			if (c->close_ev != NULL)
				event_free(c->close_ev);
			free(c);
			return (NULL);
		}
	} else if ((c->out = evbuffer_new()) == NULL) {
		free(c);
		return (NULL);
	}
	DL_APPEND(server_agent_list, c);
	server_agent_count++;
	return (c);
}

/* Frees a connection, marking its process disconnected. */
void
server_agent_free(struct agent_conn *c)
{
	int	i;

	if (c == NULL)
		return;
	DL_DELETE(server_agent_list, c);
	server_agent_count--;
	daemon_stats.agents_closed++;
	if (c->have_peer && !c->trusted)
		server_agent_uid_release(c->peer_uid);
	if (c->proc != NULL && server_registry != NULL)
		registry_detach(server_registry, c->proc);
	if (c->instance != 0 && server_store != NULL)
		store_instance_detach(server_store, c->instance,
		    server_now_ns());
	if (c->peer_pidfd != -1)
		close(c->peer_pidfd);
	if (c->close_ev != NULL)
		event_free(c->close_ev);
	if (c->deadline_ev != NULL)
		event_free(c->deadline_ev);
	server_conn_charge(&c->charged, 0);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	else
		evbuffer_free(c->out);
	for (i = 0; i < AGENT_NKINDS; i++)
		free(c->ids[i].map);
	free(c);
}

/* Frees every agent connection (shutdown). */
void
server_agent_free_all(void)
{
	struct agent_conn	*c, *c1;

	DL_FOREACH_SAFE(server_agent_list, c, c1)
		server_agent_free(c);
}

/* Logs the end of a connection and frees it. */
static void
server_agent_close(struct agent_conn *c)
{
	char	name[64];

	server_agent_name(c, name, sizeof name);
	if (c->error[0] != '\0')
		log_warn("%s: %s; closing", name, c->error);
	else if (c->proc != NULL)
		log_info("%s detached (%llu samples)", name,
		    (unsigned long long)c->proc->samples);
	else
		log_debug("%s closed", name);
	server_agent_free(c);
}

/* Defines the next id of a kind, mapped to store id gid. */
static int
server_agent_define(struct agent_conn *c, enum agent_kind kind, uint32_t id,
    uint32_t gid)
{
	struct agent_ids	*t = &c->ids[kind];
	uint32_t		*map, cap;

	if (id != t->count + 1)
		return (server_agent_fail(c, "%s id %u out of order "
		    "(expected %u)", server_agent_kind_names[kind], id,
		    t->count + 1));
	if (t->count >= PROTO_MAX_ID)
		return (server_agent_fail(c, "too many %s ids",
		    server_agent_kind_names[kind]));
	if (t->count < server_limits.max_ids) {
		if (t->count == t->cap) {
			cap = t->cap == 0 ? 256 : t->cap * 2;
			if (cap > server_limits.max_ids)
				cap = (uint32_t)server_limits.max_ids;
			if (server_agent_charge(c, (size_t)(cap - t->cap) *
			    sizeof *map) != 0)
				return (-1);
			map = realloc(t->map, (size_t)cap * sizeof *map);
			if (map == NULL) {
				daemon_stats.alloc_failures++;
				c->resource_error = 1;
				return (server_agent_fail(c,
				    "out of memory for %s ids",
				    server_agent_kind_names[kind]));
			}
			t->map = map;
			t->cap = cap;
		}
		t->map[t->count] = gid;
	} else
		daemon_stats.ids_unmapped++;
	t->count++;
	return (0);
}

/* Maps a defined id to its store id (0: not stored); -1 if undefined. */
static int
server_agent_lookup(struct agent_conn *c, enum agent_kind kind, uint32_t id,
    uint32_t *gid)
{
	struct agent_ids	*t = &c->ids[kind];

	if (id == 0 || id > t->count)
		return (server_agent_fail(c, "undefined %s id %u",
		    server_agent_kind_names[kind], id));
	*gid = id <= t->cap && t->map != NULL ? t->map[id - 1] : 0;
	return (0);
}

/* Maps a string reference, where 0 means the empty string. */
static int
server_agent_string_ref(struct agent_conn *c, uint32_t id, uint32_t *gid)
{
	if (id == 0) {
		*gid = store_string(server_store, "", 0);
		return (0);
	}
	return (server_agent_lookup(c, AGENT_STRING, id, gid));
}

/* Tells an agent what to do (PROTO_CONFIG) and records it. */
int
server_agent_configure(struct agent_conn *c, int profiling, uint32_t rate_hz,
    uint32_t mode, uint32_t reader, uint32_t jitter_pct,
    uint32_t max_overhead_bp)
{
	struct proto_sink	sink;
	char			buf[128], name[64];

	if (c->closing || c->proc == NULL)
		return (-1);
	proto_sink_init_fixed(&sink, buf, sizeof buf);
	if ((c->version >= 3 ? proto_send_config_v3(&sink, profiling, rate_hz,
	    mode, reader, jitter_pct, c->version, max_overhead_bp) :
	    proto_send_config(&sink, profiling, rate_hz, mode, reader,
	    jitter_pct)) != 0)
		return (-1);
	if (evbuffer_get_length(c->out) + sink.len > AGENT_MAX_OUTPUT) {
		/* It does not read what we send: let it go. */
		daemon_stats.output_overflows++;
		server_agent_fail(c, "not reading its configuration");
		server_agent_close_later(c);
		return (-1);
	}
	if (evbuffer_add(c->out, sink.data, sink.len) != 0)
		return (-1);
	c->proc->profiling = profiling;
	c->proc->rate_hz = rate_hz;
	c->proc->mode = mode;
	c->proc->reader_cfg = reader;
	c->proc->jitter_pct = jitter_pct;
	c->proc->max_overhead_bp = max_overhead_bp;
	log_debug("%s: profiling %s, %u Hz, mode %s, reader %s",
	    server_agent_name(c, name, sizeof name), profiling ? "on" : "off",
	    rate_hz, proto_mode_name(mode), proto_reader_name(reader));
	return (0);
}

/*
 * Tells a version 4 agent the newest of its batches that is durable: on
 * disk (a flush of the state dir) or, memory only, stored.  Acks are
 * cumulative, so one that does not fit the output now is simply left to
 * the next; they go after each flush, or each housekeeping tick (memory
 * only), never per batch, so an agent wakes for them once in a while.
 */
static void
server_agent_ack(struct agent_conn *c)
{
	const struct store_instance	*in;
	struct proto_sink		 sink;
	char				 buf[32];
	uint64_t			 seq;

	if (c->closing || c->proc == NULL || c->version < PROTO_VERSION_BATCH ||
	    (in = store_instance_get(server_store, c->instance)) == NULL)
		return;
	seq = server_state_dir[0] != '\0' ? in->seq_durable : in->seq;
	if (seq <= c->acked)
		return;
	proto_sink_init_fixed(&sink, buf, sizeof buf);
	if (proto_send_ack(&sink, seq) != 0 ||
	    evbuffer_get_length(c->out) + sink.len > AGENT_MAX_OUTPUT ||
	    evbuffer_add(c->out, sink.data, sink.len) != 0)
		return;
	c->acked = seq;
	daemon_stats.acks_sent++;
}

/* Acks what is durable to every version 4 agent (server_housekeep). */
void
server_agent_ack_all(void)
{
	struct agent_conn	*c;

	DL_FOREACH(server_agent_list, c)
		server_agent_ack(c);
}

/* Files the process of a hello as a store instance. */
static uint32_t
server_agent_instance(struct agent_conn *c)
{
	struct store_instance_info	 info;
	const struct registry_proc	*p = c->proc;

	memset(&info, 0, sizeof info);
	info.pid = p->pid;
	info.ppid = p->ppid;
	info.start_ns = p->start_ns;
	info.host = p->host;
	info.host_len = (uint32_t)strlen(p->host);
	info.service = p->service;
	info.service_len = (uint32_t)strlen(p->service);
	info.python = p->python;
	info.python_len = (uint32_t)strlen(p->python);
	info.reader = p->reader;
	info.reader_len = (uint32_t)strlen(p->reader);
	info.argv = (const char *const *)p->argv;
	info.argc = p->argc;
	return (store_instance_attach(server_store, &info, server_now_ns()));
}

/* This host's name, for agents whose claims are not believed. */
static const char *
server_agent_hostname(void)
{
	static char	host[REGISTRY_MAX_FIELD];

	if (host[0] == '\0' && (gethostname(host, sizeof host - 1) != 0 ||
	    host[0] == '\0'))
		snprintf(host, sizeof host, "localhost");
	return (host);
}

/* Whether a pid is in our pid namespace (its /proc entry shows the same
 * namespace as ours); -1 when unknown. */
static int
server_agent_same_pidns(pid_t pid)
{
	static struct stat	self;
	static int		have_self = -1;
	struct stat		sb;
	char			path[64];

	if (have_self == -1)
		have_self = stat("/proc/self/ns/pid", &self) == 0;
	snprintf(path, sizeof path, "/proc/%ld/ns/pid", (long)pid);
	if (!have_self || stat(path, &sb) != 0)
		return (-1);
	return (sb.st_ino == self.st_ino && sb.st_dev == self.st_dev);
}

/*
 * Reads the start time and parent of the process that connected, from
 * /proc only, and checks the process is still the one that connected (its
 * pidfd: a pid freed and reused by another process since fails) and, for
 * a peer that is not trusted, that the connecting uid is the process's
 * own.  0, or -1 with the connection failed: a process already gone, or
 * another user's, is refused, never filed under a claim.
 */
static int
server_agent_peer_proc(struct agent_conn *c, uint64_t *start_ns,
    uint32_t *ppid)
{
	uid_t	ruid, euid;
	int	alive;

	errno = 0;
	if (access_proc_stat(c->peer_pid, start_ns, ppid) != 0 ||
	    (!c->trusted && access_proc_uids(c->peer_pid, &ruid, &euid) != 0)) {
		daemon_stats.hello_identity_refused++;
		if (errno == EACCES || errno == EPERM)
			return (server_agent_fail(c, "profd may not read "
			    "/proc/%ld (/proc mounted hidepid=, or "
			    "ProtectProc=?): refused; profd must see its "
			    "agents' processes", (long)c->peer_pid));
		return (server_agent_fail(c, "its process is gone (no "
		    "/proc/%ld): refused, a hello never names a process",
		    (long)c->peer_pid));
	}
	if (!c->trusted && ruid != c->peer_uid && euid != c->peer_uid) {
		daemon_stats.hello_identity_refused++;
		return (server_agent_fail(c, "pid %ld is uid %u's process, "
		    "not the connecting uid %u's (the pid was reused?): "
		    "refused", (long)c->peer_pid, (unsigned)euid,
		    (unsigned)c->peer_uid));
	}
	/* Still running: /proc showed the process that connected. */
	alive = access_pidfd_alive(c->peer_pidfd);
	if (c->peer_pidfd != -1) {
		close(c->peer_pidfd);
		c->peer_pidfd = -1;
	}
	if (alive == 0) {
		daemon_stats.hello_identity_refused++;
		return (server_agent_fail(c, "its process exited before its "
		    "hello was read: refused"));
	}
	return (0);
}

/*
 * Decides what a hello is filed under.  The pid, start time and host come
 * from the kernel (SO_PEERCRED, its pidfd, /proc), not from the hello, so
 * nobody can file samples under another process: a process gone by the
 * time its hello is read, or not the connecting user's, is refused.  Only
 * root and profd's own user, who could write into profd's store anyway,
 * are believed when they speak for another pid of this pid namespace
 * (recorded data, tests).
 */
static int
server_agent_identify(struct agent_conn *c, struct proto_hello *h)
{
	uint64_t	start_ns;
	uint32_t	ppid;
	char		name[64];

	if (!c->have_peer)
		return (0);
	if (c->peer_pid <= 0)
		return (server_agent_fail(c, "the kernel does not show its "
		    "pid (another pid namespace?); agents must run where "
		    "profd can see them"));
	if (h->pid == (uint64_t)c->peer_pid || !c->trusted ||
	    server_agent_same_pidns(c->peer_pid) != 1) {
		if (h->pid != (uint64_t)c->peer_pid &&
		    server_agent_same_pidns(c->peer_pid) == 1) {
			daemon_stats.hello_claims_refused++;
			log_warn("agent pid %ld (uid %u) claimed pid %llu; "
			    "filing its samples under its own pid",
			    (long)c->peer_pid, (unsigned)c->peer_uid,
			    (unsigned long long)h->pid);
		}
		h->pid = (uint64_t)c->peer_pid;
		if (server_agent_peer_proc(c, &start_ns, &ppid) != 0)
			return (-1);
		h->start_ns = start_ns;
		h->ppid = ppid;
		if (!c->trusted) {
			h->host = server_agent_hostname();
			h->host_len = (uint32_t)strlen(h->host);
		}
	} else
		log_debug("%s speaks for pid %llu (trusted uid %u)",
		    server_agent_name(c, name, sizeof name),
		    (unsigned long long)h->pid, (unsigned)c->peer_uid);
	return (0);
}

/* Closes a rejected connection once its REJECT is written. */
static void
server_agent_rejected_cb(struct bufferevent *bev, void *arg)
{
	struct agent_conn	*c = arg;

	if (evbuffer_get_length(c->out) == 0)
		server_agent_close(c);
}

/*
 * A hello with no protocol version in common: one log line, a counter, a
 * REJECT saying which versions profd speaks, and the connection closes
 * once that is written (an agent of version 3 or later then stays away for
 * minutes rather than reconnecting in a loop).
 */
static void
server_agent_reject(struct agent_conn *c, const struct proto_hello *h)
{
	struct proto_sink	sink;
	char			buf[256], reason[128];
	struct timeval		tv = { (time_t)server_limits.hello_timeout_s,
				    0 };

	snprintf(reason, sizeof reason, "protocol versions %llu to %llu; "
	    "profd speaks %d to %d", (unsigned long long)h->version_min,
	    (unsigned long long)h->version_max, PROTO_VERSION_MIN,
	    PROTO_VERSION);
	daemon_stats.agents_incompatible++;
	log_warn("agent pid %llu: %s; rejected", (unsigned long long)h->pid,
	    reason);
	c->rejected = 1;
	c->closing = 1;
	proto_sink_init_fixed(&sink, buf, sizeof buf);
	if (proto_send_reject(&sink, PROTO_VERSION_MIN, PROTO_VERSION,
	    reason) != 0 || evbuffer_add(c->out, sink.data, sink.len) != 0 ||
	    c->bev == NULL) {
		server_agent_close_later(c);
		return;
	}
	/* Written, then closed; a peer that does not read gets the timeout. */
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setcb(c->bev, NULL, server_agent_rejected_cb,
	    server_agent_event_cb, c);
	bufferevent_set_timeouts(c->bev, NULL, &tv);
}

/* Handles the hello: registers the process and sends it the config
 * (its pid's own, if one was set, else the global one). */
static int
server_agent_hello(struct agent_conn *c, const struct proto_hello *claimed)
{
	struct proto_hello		 hello = *claimed, *h = &hello;
	const struct server_profile	*sp;
	char				 name[64];
	uint32_t			 version;

	if (c->proc != NULL)
		return (server_agent_fail(c, "second hello"));
	if (server_agent_identify(c, h) != 0)
		return (-1);
	if (proto_negotiate(h, &version) != 0) {
		server_agent_reject(c, h);
		return (0);
	}
	if (h->pid == 0 || h->pid > UINT32_MAX)
		return (server_agent_fail(c, "bad pid %llu",
		    (unsigned long long)h->pid));
	c->pid = (uint32_t)h->pid;
	c->version = version;
	c->proc = registry_attach(server_registry, h, c);
	if (c->proc == NULL)
		return (server_agent_fail(c, "out of memory for hello"));
	c->proc->uid = c->have_peer ? (uint32_t)c->peer_uid : UINT32_MAX;
	c->proc->version = version;
	if ((c->instance = server_agent_instance(c)) == 0)
		return (server_agent_fail(c, "store full: no room for a new "
		    "process"));
	if (c->bev != NULL)
		bufferevent_set_timeouts(c->bev, NULL, NULL);
	log_info("%s attached (ppid %u, service '%s', python %s, %u args, "
	    "protocol %u%s)", server_agent_name(c, name, sizeof name),
	    c->proc->ppid, c->proc->service, c->proc->python, c->proc->argc,
	    c->version, c->have_peer ? "" : ", unchecked");
	/* Joins a running profile at once. */
	sp = server_profile_for(c->pid);
	server_agent_configure(c, sp->profiling, sp->rate_hz, sp->mode,
	    sp->reader, sp->jitter_pct, sp->max_overhead_bp);
	/* Says what it need not send again (a replay after a restart). */
	server_agent_ack(c);
	return (0);
}

/* Defines a function. */
static int
server_agent_func(struct agent_conn *c, const struct proto_msg *m)
{
	uint32_t	name, file, gid = 0;

	if (server_agent_string_ref(c, m->func.name, &name) != 0 ||
	    server_agent_string_ref(c, m->func.file, &file) != 0)
		return (-1);
	if (name != 0 && file != 0)
		gid = store_func(server_store, name, file, m->func.line);
	return (server_agent_define(c, AGENT_FUNC, m->func.id, gid));
}

/* Defines a frame. */
static int
server_agent_frame(struct agent_conn *c, const struct proto_msg *m)
{
	uint32_t	func, gid = 0;

	if (server_agent_lookup(c, AGENT_FUNC, m->frame.func, &func) != 0)
		return (-1);
	if (func != 0)
		gid = store_frame(server_store, func, m->frame.line);
	return (server_agent_define(c, AGENT_FRAME, m->frame.id, gid));
}

/* Defines a stack. */
static int
server_agent_stack(struct agent_conn *c, const struct proto_msg *m)
{
	const msgpack_object	*o;
	uint32_t		 frames[PROTO_MAX_DEPTH], depth, i, gid = 0;
	int			 stored = 1;

	depth = m->stack.depth;
	if (depth > PROTO_MAX_DEPTH)
		return (server_agent_fail(c, "stack of depth %u", depth));
	if (depth > 0 && m->stack.frames == NULL)
		return (server_agent_fail(c, "malformed stack"));
	/* m->stack.frames points at the first element of the array. */
	for (i = 0; i < depth; i++) {
		o = &m->stack.frames[i];
		if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    o->via.u64 > UINT32_MAX)
			return (server_agent_fail(c, "malformed stack frame"));
		if (server_agent_lookup(c, AGENT_FRAME, (uint32_t)o->via.u64,
		    &frames[i]) != 0)
			return (-1);
		if (frames[i] == 0)
			stored = 0;
	}
	if (stored)
		gid = store_stack(server_store, frames, depth,
		    m->stack.truncated);
	return (server_agent_define(c, AGENT_STACK, m->stack.id, gid));
}

/*
 * Counts a batch of samples; the whole batch is checked first.  A
 * sample's time is the batch's base plus the deltas before it.  A
 * numbered batch (BATCH) the instance already has is skipped: a replay
 * of one stored before a crash or a lost connection.
 *
 * A version 6 batch is filed under the mode it says it was taken in.
 * A version 5 batch also says how many stacks the agent left out since
 * its previous one: the store tallies its samples per bucket they fall in,
 * and those stacks with its last sample (its base, when it has none).
 */
static int
server_agent_samples(struct agent_conn *c, const struct proto_msg *m)
{
	const struct store_instance	*in;
	struct proto_sample		 s;
	uint32_t			 i, gid, thread, mode;
	uint64_t			 t, width, run = 0, run_t = 0;
	int				 dup = 0, tally;

	if (m->samples.count > PROTO_MAX_BATCH)
		return (server_agent_fail(c, "batch of %u samples",
		    m->samples.count));
	for (i = 0; i < m->samples.count; i++) {
		proto_sample_get(m, i, &s);
		if (server_agent_lookup(c, AGENT_STACK, s.stack, &gid) != 0 ||
		    server_agent_lookup(c, AGENT_THREAD, s.thread, &gid) != 0)
			return (-1);
	}
	if (m->type == PROTO_BATCH) {
		if (c->version < PROTO_VERSION_BATCH)
			return (server_agent_fail(c, "numbered batch from a "
			    "version %u agent", c->version));
		in = store_instance_get(server_store, c->instance);
		dup = in != NULL && m->samples.seq <= in->seq;
	}
	if (dup) {
		daemon_stats.samples_duplicate += m->samples.count;
		return (0);
	}
	t = m->samples.base_ns;
	/* v6: the mode the batch was taken in; before, the setting now. */
	mode = (uint32_t)((m->samples.has_mode &&
	    c->version >= PROTO_VERSION_MODE ? m->samples.mode :
	    c->proc->mode) + 1) << QUERY_FLAGS_MODE_SHIFT;
	tally = m->samples.has_invalid && c->version >= PROTO_VERSION_INVALID;
	width = store_get_config(server_store)->tiers[0].width_ns;
	for (i = 0; i < m->samples.count; i++) {
		proto_sample_get(m, i, &s);
		t += (uint64_t)s.dt_us * 1000;
		server_agent_lookup(c, AGENT_STACK, s.stack, &gid);
		server_agent_lookup(c, AGENT_THREAD, s.thread, &thread);
		store_add(server_store, t, thread, gid,
		    (s.flags & PROTO_SAMPLE_FLAGS) | mode, 1, s.weight_us);
		if (!tally)
			continue;
		if (run > 0 && t / width != run_t / width) {
			store_add_tally(server_store, run_t, c->instance, mode,
			    run, 0);
			run = 0;
		}
		if (run++ == 0)
			run_t = t;
	}
	if (tally)
		store_add_tally(server_store, run > 0 ? run_t :
		    m->samples.base_ns, c->instance, mode, run,
		    m->samples.invalid);
	c->proc->samples += m->samples.count;
	daemon_stats.samples_received += m->samples.count;
	if (m->type == PROTO_BATCH)
		store_instance_set_seq(server_store, c->instance,
		    m->samples.seq, 0);
	return (0);
}

/*
 * The agent has written everything that used its old ids: forget them
 * (what they pinned goes at the next sweep); ids start again at 1.
 */
static int
server_agent_resync_ack(struct agent_conn *c, uint32_t token)
{
	int	k;

	if (!c->resync_pending || token != c->resync_token)
		return (server_agent_fail(c, "resync ack %u not asked for",
		    token));
	for (k = 0; k < AGENT_NKINDS; k++) {
		free(c->ids[k].map);
		c->ids[k].map = NULL;
		c->ids[k].count = c->ids[k].cap = 0;
	}
	c->resync_pending = 0;
	return (0);
}

/* Handles one decoded message. */
static int
server_agent_dispatch(struct agent_conn *c, const struct proto_msg *m)
{
	uint32_t	gid, name;

	if (m->type == PROTO_HELLO)
		return (server_agent_hello(c, &m->hello));
	if (c->proc == NULL)
		return (server_agent_fail(c, "message %d before hello",
		    (int)m->type));

	switch (m->type) {
	case PROTO_STRING:
		if (m->string.len > PROTO_MAX_STRING)
			return (server_agent_fail(c, "string too long"));
		gid = store_string(server_store, m->string.str,
		    m->string.len);
		return (server_agent_define(c, AGENT_STRING, m->string.id,
		    gid));
	case PROTO_FUNC:
		return (server_agent_func(c, m));
	case PROTO_FRAME:
		return (server_agent_frame(c, m));
	case PROTO_STACK:
		return (server_agent_stack(c, m));
	case PROTO_THREAD:
		if (server_agent_string_ref(c, m->thread.name, &name) != 0)
			return (-1);
		gid = name != 0 ? store_thread(server_store, c->instance,
		    m->thread.tid, name) : 0;
		return (server_agent_define(c, AGENT_THREAD, m->thread.id,
		    gid));
	case PROTO_SAMPLES:
	case PROTO_BATCH:
		return (server_agent_samples(c, m));
	case PROTO_RESYNC_ACK:
		return (server_agent_resync_ack(c, m->resync.token));
	case PROTO_STATS:
		if (m->stats.map != NULL) {
			registry_set_stats(c->proc, m->stats.map);
			store_instance_set_dropped(server_store, c->instance,
			    registry_stat(c->proc, "dropped"));
		}
		return (0);
	default:
		return (server_agent_fail(c, "unexpected message type %d",
		    (int)m->type));
	}
}

/* Handles one frame payload. */
int
server_agent_message(struct agent_conn *c, const char *payload, size_t len)
{
	msgpack_unpacked	 up;
	struct proto_msg	 msg;
	const char		*err = NULL;
	uint64_t		 type;
	int			 rc;

	daemon_stats.messages_received++;
	msgpack_unpacked_init(&up);
	memset(&msg, 0, sizeof msg);
	if (proto_decode(payload, len, &up, &msg, &err) != 0) {
		if (c->proc != NULL && proto_skippable(&up, 0, &type)) {
			/* A newer agent's optional message. */
			daemon_stats.messages_skipped++;
			log_debug("agent pid %u: skipping optional message "
			    "type %llu", c->pid, (unsigned long long)type);
			rc = 0;
		} else {
			daemon_stats.bad_frames++;
			rc = server_agent_fail(c, "bad frame: %s",
			    err != NULL ? err : "undecodable");
		}
	} else if ((rc = server_agent_dispatch(c, &msg)) != 0 &&
	    !c->resource_error) {
		daemon_stats.bad_frames++;
		daemon_stats.protocol_errors++;
	}
	msgpack_unpacked_destroy(&up);
	return (rc);
}

/* Handles every complete frame in buf. */
int
server_agent_input(struct agent_conn *c, const char *buf, size_t len,
    size_t *used)
{
	const char	*payload;
	size_t		 payload_len, frame_len, off = 0;
	int		 rc;

	for (;;) {
		rc = proto_frame_peek(buf + off, len - off, PROTO_MAX_MSG,
		    &payload, &payload_len, &frame_len);
		if (rc == 0)
			break;
		if (rc < 0) {
			daemon_stats.bad_frames++;
			*used = off;
			return (server_agent_fail(c, "frame length 0 or over "
			    "%u bytes", PROTO_MAX_MSG));
		}
		daemon_stats.bytes_received += frame_len;
		if (server_agent_message(c, payload, payload_len) != 0) {
			*used = off;
			return (-1);
		}
		off += frame_len;
		if (c->closing)
			break;		/* rejected: nothing more is read */
	}
	*used = off;
	return (0);
}

/*
 * After a read: the hello deadline ends with the hello; a partial frame
 * left in the buffer must be whole within frame-timeout of its start (a
 * byte does not reset it); what the connection holds is charged.
 */
static int
server_agent_after_read(struct agent_conn *c, int frames)
{
	size_t	in = evbuffer_get_length(bufferevent_get_input(c->bev));

	if (frames > 0)
		c->input_ns = server_now_ns();
	if (c->deadline == AGENT_DEADLINE_HELLO && c->proc != NULL) {
		event_del(c->deadline_ev);
		c->deadline = AGENT_DEADLINE_NONE;
	}
	if (c->deadline != AGENT_DEADLINE_HELLO) {
		if (in == 0) {
			event_del(c->deadline_ev);
			c->deadline = AGENT_DEADLINE_NONE;
		} else if (frames > 0 || c->deadline == AGENT_DEADLINE_NONE) {
			server_deadline(c->deadline_ev,
			    server_limits.frame_timeout_s);
			c->deadline = AGENT_DEADLINE_FRAME;
		}
	}
	return (server_agent_charge(c, 0));
}

/*
 * Whether the peer's socket holds what profd has not read of the frame:
 * the rest of it, or at least a read's worth (AGENT_WAIVE_BYTES; a frame
 * longer than the socket holds).  A few bytes a dribbler just sent do not
 * count.
 */
static int
server_agent_waiting(struct agent_conn *c)
{
	struct evbuffer	*in;
	evutil_socket_t	 fd;
	unsigned char	 head[PROTO_HEADER_SIZE];
	size_t		 have, need;
	uint32_t	 len;
	int		 n = 0;

	if (c->bev == NULL || (fd = bufferevent_getfd(c->bev)) < 0 ||
	    ioctl(fd, FIONREAD, &n) != 0 || n <= 0)
		return (0);
	if ((size_t)n >= AGENT_WAIVE_BYTES)
		return (1);
	in = bufferevent_get_input(c->bev);
	have = evbuffer_get_length(in);
	if (have < sizeof head ||
	    evbuffer_copyout(in, head, sizeof head) != (ev_ssize_t)sizeof head)
		return (0);
	len = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 |
	    (uint32_t)head[2] << 8 | head[3];
	need = sizeof head + len > have ? sizeof head + len - have : 0;
	return (need > 0 && (size_t)n >= need);
}

/* A deadline passed: no hello, or a frame not whole in time. */
static void
server_agent_deadline_cb(evutil_socket_t fd, short events, void *arg)
{
	struct agent_conn	*c = arg;

	if (c->closing)
		return;		/* its close is already on the way */
	if (c->deadline == AGENT_DEADLINE_HELLO) {
		daemon_stats.hello_timeouts++;
		server_agent_fail(c, "no hello within %llu s",
		    (unsigned long long)server_limits.hello_timeout_s);
	} else {
		/* Bytes waiting in the socket: the peer is ahead, profd is
		 * what is slow (a loop busy with many senders, or with the
		 * disk).  That is not the peer's delay: the deadline starts
		 * again.  A slow sender's bytes are read as they come. */
		if (server_agent_waiting(c)) {
			daemon_stats.frame_deadlines_waived++;
			server_deadline(c->deadline_ev,
			    server_limits.frame_timeout_s);
			return;
		}
		daemon_stats.frame_timeouts++;
		server_agent_fail(c, "frame not whole within %llu s of its "
		    "first byte",
		    (unsigned long long)server_limits.frame_timeout_s);
	}
	server_agent_close(c);
}

/* Reads frames as they arrive. */
static void
server_agent_read_cb(struct bufferevent *bev, void *arg)
{
	struct agent_conn	*c = arg;
	const char		*payload;
	size_t			 payload_len, frame_len;
	int			 rc, frames = 0;

	while (!c->closing) {
		rc = server_read_frame(bev, PROTO_MAX_MSG, AGENT_MAX_INPUT,
		    &payload, &payload_len, &frame_len);
		if (rc == 0)
			break;
		if (rc < 0) {
			daemon_stats.bad_frames++;
			server_agent_fail(c, "frame length 0 or over %u bytes",
			    PROTO_MAX_MSG);
			server_agent_close(c);
			return;
		}
		daemon_stats.bytes_received += frame_len;
		if (server_agent_message(c, payload, payload_len) != 0) {
			server_agent_close(c);
			return;
		}
		evbuffer_drain(bufferevent_get_input(bev), frame_len);
		frames++;
	}
	if (!c->closing && server_agent_after_read(c, frames) != 0)
		server_agent_close(c);
}

/* Handles end of file and errors. */
static void
server_agent_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent_conn	*c = arg;

	if ((what & BEV_EVENT_ERROR) && EVUTIL_SOCKET_ERROR() != 0 &&
	    EVUTIL_SOCKET_ERROR() != ECONNRESET)
		log_debug("agent pid %u: %s", c->pid,
		    strerror(EVUTIL_SOCKET_ERROR()));
	server_agent_close(c);
}

/*
 * The connection to close so that a new agent gets in at max-agents: the
 * oldest that has not said hello, else the attached one idle longest if
 * it has sent nothing for AGENT_EVICT_IDLE_S; NULL if every one is busy.
 * Needs no peer credentials, so per-uid caps can come on top.
 */
static struct agent_conn *
server_agent_victim(void)
{
	struct agent_conn	*c, *v = NULL;
	uint64_t		 now = server_now_ns();
	const uint64_t		 idle = (uint64_t)AGENT_EVICT_IDLE_S *
				    1000000000u;

	DL_FOREACH(server_agent_list, c) {
		if (c->closing || c->bev == NULL)
			continue;
		if (c->proc == NULL) {
			if (v == NULL || v->proc != NULL ||
			    c->accepted_ns < v->accepted_ns)
				v = c;
		} else if ((v == NULL || (v->proc != NULL &&
		    c->input_ns < v->input_ns)) && now - c->input_ns >= idle)
			v = c;
	}
	return (v);
}

/* Accepts an agent connection, within max-agents. */
void
server_agent_accept(int fd)
{
	struct bufferevent	*bev;
	struct agent_conn	*c;
	struct access_peer	 peer;
	struct server_agent_uid	*u = NULL;
	int			 trusted;

	if (access_peer_get(fd, &peer) != 0) {
		daemon_stats.agents_rejected++;
		log_warn("refusing an agent: no peer credentials: %s",
		    strerror(errno));
		close(fd);
		return;
	}
	access_peer_free(&peer);
	trusted = peer.uid == 0 || peer.uid == geteuid();
	u = trusted ? NULL : server_agent_uid(peer.uid, 0);
	if (u != NULL && u->conns >= server_limits.max_agents_per_uid) {
		daemon_stats.agents_rejected_uid++;
		log_warn("refusing an agent of uid %u: %zu connected "
		    "(max-agents-per-uid)", (unsigned)peer.uid, u->conns);
		close(fd);
		return;
	}
	/* At max-agents, a peer within its uid's cap gets in by closing an
	 * idle connection (which may move the uid table: u is looked up
	 * again below). */
	if (server_agent_count >= server_limits.max_agents &&
	    (c = server_agent_victim()) != NULL) {
		daemon_stats.agents_evicted++;
		server_agent_fail(c, "%s; closed for a new agent (max-agents)",
		    c->proc == NULL ? "no hello yet" : "idle");
		server_agent_close(c);
	}
	if (server_agent_count >= server_limits.max_agents) {
		daemon_stats.agents_rejected++;
		log_warn("refusing an agent: %zu connected (max-agents)",
		    server_agent_count);
		close(fd);
		return;
	}
	if (!trusted && (u = server_agent_uid(peer.uid, 1)) == NULL) {
		daemon_stats.alloc_failures++;
		log_warn("refusing an agent: out of memory");
		close(fd);
		return;
	}
	bev = bufferevent_socket_new(server_base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		daemon_stats.alloc_failures++;
		log_warn("refusing an agent: out of memory");
		close(fd);
		return;
	}
	if ((c = server_agent_create(bev)) == NULL) {
		daemon_stats.alloc_failures++;
		log_warn("refusing an agent: out of memory");
		bufferevent_free(bev);
		return;
	}
	c->have_peer = 1;
	c->trusted = trusted;
	c->peer_pid = peer.pid;
	c->peer_uid = peer.uid;
	c->peer_pidfd = access_peer_pidfd(fd, peer.pid);
	if (u != NULL)
		u->conns++;
	daemon_stats.agents_accepted++;
	bufferevent_setcb(bev, server_agent_read_cb, NULL,
	    server_agent_event_cb, c);
	bufferevent_setwatermark(bev, EV_READ, 0, AGENT_MAX_INPUT);
	server_deadline(c->deadline_ev, server_limits.hello_timeout_s);
	c->deadline = AGENT_DEADLINE_HELLO;
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* Marks, for a sweep, every definition a live connection maps to. */
void
server_agent_mark_all(void)
{
	struct agent_conn	*c;
	struct agent_ids	*t;
	uint32_t		 i, n;
	int			 k;

	DL_FOREACH(server_agent_list, c) {
		store_mark(server_store, STORE_INSTANCE, c->instance);
		for (k = 0; k < AGENT_NKINDS; k++) {
			t = &c->ids[k];
			n = t->count < t->cap ? t->count : t->cap;
			for (i = 0; i < n; i++)
				store_mark(server_store,
				    server_agent_store_kinds[k], t->map[i]);
		}
	}
}

/* Sends RESYNC: the agent will define its ids again after its ack. */
static int
server_agent_send_resync(struct agent_conn *c)
{
	struct proto_sink	sink;
	char			buf[32];

	proto_sink_init_fixed(&sink, buf, sizeof buf);
	if (proto_send_resync(&sink, ++c->resync_token) != 0 ||
	    evbuffer_get_length(c->out) + sink.len > AGENT_MAX_OUTPUT ||
	    evbuffer_add(c->out, sink.data, sink.len) != 0)
		return (-1);
	c->resync_pending = 1;
	return (0);
}

/* The ids a connection maps that nothing but connections use (between
 * store_sweep_begin and the marking of connections). */
static uint64_t
server_agent_stale(const struct agent_conn *c)
{
	const struct agent_ids	*t;
	uint64_t		 n = 0;
	uint32_t		 i, m;
	int			 k;

	for (k = 0; k < AGENT_NKINDS; k++) {
		t = &c->ids[k];
		m = t->count < t->cap ? t->count : t->cap;
		for (i = 0; i < m; i++) {
			if (t->map[i] != 0 && !store_marked(server_store,
			    server_agent_store_kinds[k], t->map[i]))
				n++;
		}
	}
	return (n);
}

/*
 * Asks every connection that pins many definitions no bucket uses any more
 * (a thread per request, long-gone stacks) to define again what it uses,
 * so the next sweep can free the rest.  Runs between store_sweep_begin()
 * and server_agent_mark_all().  An agent too old for PROTO_RESYNC is closed
 * instead: it reconnects and redefines.
 */
void
server_agent_resync_all(void)
{
	struct agent_conn	*c, *c1;
	uint64_t		 stale;

	DL_FOREACH_SAFE(server_agent_list, c, c1) {
		if (c->closing || c->proc == NULL)
			continue;
		stale = server_agent_stale(c);
		if (stale < server_limits.resync_ids)
			continue;
		if (c->resync_pending)
			continue;	/* one at a time */
		daemon_stats.resyncs++;
		log_info("agent pid %u: %llu ids no sample uses; asking it to "
		    "define again what it uses", c->pid,
		    (unsigned long long)stale);
		if (c->version < 2 || server_agent_send_resync(c) != 0)
			server_agent_close_later(c);
	}
}
