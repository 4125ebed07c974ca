/*
 * server.c -- the listeners: agent.sock and control.sock, inherited from
 * systemd or bound here, and the accept loop with its limits.
 */

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/listener.h>
#include <systemd/sd-daemon.h>

#include "settings.h"
#include "log.h"
#include "proto.h"
#include "registry.h"
#include "rundir.h"
#include "sampling.h"
#include "server-agent.h"
#include "server-control.h"
#include "server.h"
#include "stats.h"
#include "persist.h"
#include "store.h"
#include "worker.h"

/* All of these: event loop thread only. */
struct event_base	*server_base;
struct server_limits	 server_limits;
struct server_profile	 server_profile;
struct store		*server_store;
struct registry		*server_registry;
char			 server_rundir[SERVER_RUNDIR_MAX];
char			 server_state_dir[SERVER_RUNDIR_MAX];
int			(*server_reload_hook)(char *, size_t);
char			 server_config_path[SERVER_RUNDIR_MAX] =
			    DEFAULT_CONFIG;

size_t			 server_conn_bytes;
size_t			 server_conn_budget;

static struct timespec	 server_started;
static struct event	*server_tick_ev;	/* housekeeping timer */
static struct event	*server_check_ev;	/* checks after a load */
static struct persist	*server_persist;	/* NULL: memory only */
static uint64_t		 server_last_sweep_ns;
static uint64_t		 server_last_persist_ns;
static uint64_t		 server_last_trim_ns;
static uint64_t		 server_freed;		/* as of the last trim */
static uint64_t		 server_watchdog_ns;	/* ping period; 0: no watchdog */
static uint64_t		 server_last_ping_ns;
static uint64_t		 server_tick_ns;	/* housekeeping period */
static int		 server_publishing;	/* listening: the sampling
						   file follows the profile */
static int		 server_publish_failing; /* said; quiet until ok */
/* Per-pid settings (start/stop --pid): what an agent of that pid is told
 * when it attaches again; saved with the global one in the state dir. */
static struct server_pid_profile {
	uint32_t		pid;
	struct server_profile	sp;
}			 server_pid_profiles[SERVER_MAX_PID_PROFILES];
static size_t		 server_npid_profiles;

struct server_listener {
	const char		*kind;		/* "agent" or "control" */
	const char		*file;		/* socket file name */
	mode_t			 mode;		/* of a socket we bind */
	void			(*accept)(int);
	char			 path[sizeof ((struct sockaddr_un *)0)->sun_path];
	int			 fd;
	int			 bound;		/* ours: unlink at exit */
	struct evconnlistener	*lev;
	struct event		*pause;		/* EMFILE back-off */
};

static struct server_listener server_listeners[] = {
	{ "agent", RUNDIR_AGENT_SOCK, DEFAULT_AGENT_SOCKET_MODE,
	  server_agent_accept, "", -1, 0, NULL, NULL },
	{ "control", RUNDIR_CONTROL_SOCK, DEFAULT_CONTROL_SOCKET_MODE,
	  server_control_accept, "", -1, 0, NULL, NULL },
};
#define SERVER_NLISTENERS \
	(sizeof server_listeners / sizeof server_listeners[0])

/* Fills in the default limits. */
void
server_limits_default(struct server_limits *lim)
{
	lim->max_agents = DEFAULT_MAX_AGENTS;
	lim->max_agents_per_uid = DEFAULT_MAX_AGENTS_PER_UID;
	lim->agent_mode = DEFAULT_AGENT_SOCKET_MODE;
	lim->control_mode = DEFAULT_CONTROL_SOCKET_MODE;
	lim->socket_gid = (gid_t)-1;
	lim->max_controls = DEFAULT_MAX_CONTROLS;
	lim->max_ids = DEFAULT_MAX_IDS;
	lim->max_gone = DEFAULT_MAX_GONE;
	lim->max_memory = DEFAULT_MAX_MEMORY;
	lim->bucket_s = DEFAULT_BUCKET_S;
	lim->retention_s = DEFAULT_RETENTION_S;
	lim->max_disk = DEFAULT_MAX_DISK;
	lim->persist_s = DEFAULT_PERSIST_S;
	lim->sweep_s = DEFAULT_SWEEP_S;
	lim->resync_ids = DEFAULT_RESYNC_IDS;
	lim->hello_timeout_s = DEFAULT_HELLO_TIMEOUT_S;
	lim->frame_timeout_s = DEFAULT_FRAME_TIMEOUT_S;
	lim->control_timeout_s = DEFAULT_CONTROL_TIMEOUT_S;
	lim->query_timeout_s = DEFAULT_QUERY_TIMEOUT_S;
	lim->max_queries = DEFAULT_MAX_QUERIES;
	lim->state_dir = NULL;
}

/* What all connections together may hold. */
static size_t
server_conn_share(const struct server_limits *lim)
{
	return (lim->max_memory / 100 * CONN_MEMORY_PCT);
}

/* Tests: PROFD_TEST_TIER_AGES=A0:A1 (seconds) ends the first two tiers at
 * those ages instead of an hour and a day, so that a test can see buckets
 * roll up without waiting for them to age. */
static void
server_test_tier_ages(struct store_config *c)
{
	const char		*env;
	char			*end;
	unsigned long long	 a0, a1;

	if ((env = getenv("PROFD_TEST_TIER_AGES")) == NULL)
		return;
	a0 = strtoull(env, &end, 10);
	if (*end != ':')
		return;
	a1 = strtoull(end + 1, NULL, 10);
	if (a0 == 0 || a1 <= a0 || a1 > DEFAULT_TIER1_AGE_S)
		return;
	c->tiers[0].until_ns = a0 * 1000000000ull;
	c->tiers[1].until_ns = a1 * 1000000000ull;
}

/* The store's configuration from the limits. */
static void
server_store_config(const struct server_limits *lim, struct store_config *c)
{
	const uint64_t	s = 1000000000;
	uint64_t	w0 = lim->bucket_s, w1, w2;

	store_config_default(c);
	/* Coarser tiers never finer than the first, and multiples of it. */
	w1 = DEFAULT_TIER1_WIDTH_S > w0 ? DEFAULT_TIER1_WIDTH_S / w0 * w0 : w0;
	w2 = DEFAULT_TIER2_WIDTH_S > w1 ? DEFAULT_TIER2_WIDTH_S / w1 * w1 : w1;
	c->tiers[0].width_ns = w0 * s;
	c->tiers[0].until_ns = (uint64_t)DEFAULT_TIER0_AGE_S * s;
	c->tiers[1].width_ns = w1 * s;
	c->tiers[1].until_ns = (uint64_t)DEFAULT_TIER1_AGE_S * s;
	server_test_tier_ages(c);
	c->tiers[2].width_ns = w2 * s;
	c->tiers[2].until_ns = UINT64_MAX;
	c->ntiers = 3;
	c->retention_ns = lim->retention_s * s;
	c->max_gone = lim->max_gone;
	/* Late samples: up to a bucket's width, at most STORE_GRACE_S. */
	c->grace_ns = (w0 < STORE_GRACE_S ? w0 : STORE_GRACE_S) * s;
	/* --max-memory = store + connections' share + what is kept for
	 * queries and the daemon itself (MEMORY_RESERVE, at most a quarter). */
	c->max_bytes = lim->max_memory - server_conn_share(lim) -
	    (lim->max_memory / 4 < MEMORY_RESERVE ? lim->max_memory / 4 :
	    MEMORY_RESERVE);
}

/* Charges a connection's new size against the connections' budget. */
int
server_conn_charge(size_t *charged, size_t bytes)
{
	if (bytes > *charged && server_conn_bytes - *charged + bytes >
	    server_conn_budget)
		return (-1);
	server_conn_bytes = server_conn_bytes - *charged + bytes;
	*charged = bytes;
	daemon_stats.conn_bytes = server_conn_bytes;
	return (0);
}

/* Arms a deadline s seconds from now. */
void
server_deadline(struct event *ev, uint64_t s)
{
	struct timeval	tv = { (time_t)s, 0 };

	if (ev != NULL)
		evtimer_add(ev, &tv);
}

/* Wall clock, ns. */
uint64_t
server_now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

/* Where shows read the buckets kept only on disk; NULL: memory only. */
const struct query_cold *
server_cold_source(void)
{
	return (persist_cold_source(server_persist));
}

/* Copies the store's counters into the daemon's. */
void
server_store_counts(void)
{
	struct store_counts	sc;
	struct persist_counts	pc;

	store_get_counts(server_store, &sc);
	daemon_stats.samples_stored = sc.samples_stored;
	daemon_stats.samples_late = sc.samples_late;
	daemon_stats.samples_dropped = sc.samples_dropped;
	daemon_stats.expired_samples = sc.expired_samples;
	daemon_stats.evicted_samples = sc.evicted_samples;
	daemon_stats.evicted_buckets = sc.evicted_buckets;
	daemon_stats.spilled_samples = sc.spilled_samples;
	daemon_stats.spilled_buckets = sc.spilled_buckets;
	if (server_persist != NULL) {
		persist_get_counts(server_persist, &pc);
		daemon_stats.disk_buckets = pc.cold_buckets;
		daemon_stats.disk_samples = pc.cold_samples;
		daemon_stats.disk_expired_samples = pc.cold_expired_samples;
		daemon_stats.disk_dropped_samples = pc.cold_dropped_samples;
		daemon_stats.disk_dropped_buckets = pc.cold_dropped_buckets;
		daemon_stats.disk_bytes = pc.bytes;
		daemon_stats.disk_unreadable = pc.cold_unreadable;
		daemon_stats.disk_unchecked = pc.cold_unchecked;
		daemon_stats.disk_rollups = pc.disk_rollups;
		daemon_stats.disk_rollup_failures = pc.disk_rollup_failures;
	}
	daemon_stats.rollups = sc.rollups;
	daemon_stats.sweeps = sc.sweeps;
	daemon_stats.reclaimed = sc.reclaimed;
	daemon_stats.store_refused = sc.refused;
	daemon_stats.store_stacks = sc.stacks;
	daemon_stats.store_threads = sc.threads;
	daemon_stats.store_instances = sc.instances;
	daemon_stats.store_buckets = sc.buckets;
	daemon_stats.store_entries = sc.entries;
	daemon_stats.store_bytes = sc.bytes;
	daemon_stats.store_def_bytes = sc.def_bytes;
	daemon_stats.store_retired_bytes = sc.retired_bytes;
	daemon_stats.store_retired_buckets = sc.retired_buckets;
}

/* Writes to disk every persist_s, and acknowledges what is durable. */
static void
server_housekeep_persist(uint64_t now)
{
	const uint64_t	s = 1000000000;

	if (server_persist != NULL &&
	    now - server_last_persist_ns >= server_limits.persist_s * s) {
		server_last_persist_ns = now;
		switch (persist_flush(server_persist)) {
		case 0:
			daemon_stats.persist_flushes++;
			server_agent_ack_all();
			break;
		case 1:
			break;	/* the file is being checked: later */
		default:
			daemon_stats.persist_errors++;
			break;
		}
	}
	if (server_persist == NULL)
		server_agent_ack_all();		/* stored is durable enough */
}

/*
 * Seals, rolls up and expires buckets; reclaims definitions every
 * STORE_SWEEP_S, or sooner when the store is nearly full or refused
 * something; writes to disk every persist_s.
 */
void
server_housekeep(uint64_t now, int force_sweep)
{
	struct store_counts	sc;
	static uint64_t		refused_seen;
	const uint64_t		s = 1000000000;

	/* Running shows hold the buckets they have yet to read, and the
	 * sweep keeps what they summed: nothing here waits for them. */
	store_tick(server_store, now);
	store_get_counts(server_store, &sc);
	/* Give what roll-ups, evictions and sweeps freed back to the system,
	 * so resident memory follows the store. */
	if (sc.rollups + sc.evicted_buckets + sc.spilled_buckets +
	    sc.reclaimed != server_freed &&
	    now - server_last_trim_ns >= (uint64_t)SERVER_TRIM_S * s) {
		server_freed = sc.rollups + sc.evicted_buckets +
		    sc.spilled_buckets + sc.reclaimed;
		server_last_trim_ns = now;
		malloc_trim(0);
	}
	if (force_sweep ||
	    now - server_last_sweep_ns >= server_limits.sweep_s * s ||
	    ((sc.bytes - sc.retired_bytes > store_get_config(server_store)->
	    max_bytes / 100 * STORE_SWEEP_PCT || sc.refused != refused_seen) &&
	    now - server_last_sweep_ns >= STORE_SWEEP_MIN_S * s)) {
		refused_seen = sc.refused;
		server_last_sweep_ns = now;
		store_sweep_begin(server_store);
		server_agent_resync_all();
		server_agent_mark_all();
		store_sweep_end(server_store);
	}
	/* Buckets only on disk: past the retention or --max-disk, then
	 * those finer than their age's tier. */
	persist_expire(server_persist, now, server_limits.max_disk);
	persist_rollup(server_persist, now, SERVER_ROLLUP_MS);
	server_housekeep_persist(now);
	server_store_counts();
}

/*
 * Sweeps at once: a definition needs the room (store_set_room_hook).  A
 * sweep marks every id of every connection, so when the last one freed
 * nothing (a flood of definitions that the flooding connection pins) it is
 * not repeated for STORE_ROOM_SWEEP_MS unless an agent left: the
 * definitions are refused instead, in constant time each.
 */
static void
server_need_room(void *arg)
{
	static uint64_t		last_ns, freed_last = 1, closed_last;
	struct store_counts	sc;
	uint64_t		now = server_now_ns(), before;

	/* (A connection that went may have unpinned something.) */
	if (freed_last == 0 && closed_last == daemon_stats.agents_closed &&
	    now - last_ns < (uint64_t)STORE_ROOM_SWEEP_MS * 1000000)
		return;
	closed_last = daemon_stats.agents_closed;
	store_get_counts(server_store, &sc);
	before = sc.reclaimed;
	server_last_sweep_ns = last_ns = now;
	store_sweep_begin(server_store);
	server_agent_mark_all();
	store_sweep_end(server_store);
	store_get_counts(server_store, &sc);
	freed_last = sc.reclaimed - before;
}

/* Checks what the load left on disk, a slice a turn of the loop, until
 * all is checked (persist_check_step). */
static void
server_check_cb(evutil_socket_t fd, short events, void *arg)
{
	struct timeval	 tv = { 0, SERVER_CHECK_MS * 1000 };

	(void)fd;
	(void)events;
	if (persist_check_step(server_persist, SERVER_CHECK_ENTRIES) == 0) {
		evtimer_add(server_check_ev, &tv);
		return;
	}
	server_store_counts();
	event_free(server_check_ev);
	server_check_ev = NULL;
}

/* The housekeeping timer; also tells systemd's watchdog the loop runs. */
static void
server_tick_cb(evutil_socket_t fd, short events, void *arg)
{
	uint64_t	now = server_now_ns();

	server_housekeep(now, 0);
	/* Half a tick early: a tick a hair short of the period must not
	 * put the ping off by a whole tick. */
	if (server_watchdog_ns != 0 &&
	    now - server_last_ping_ns + server_tick_ns / 2 >=
	    server_watchdog_ns) {
		server_last_ping_ns = now;
		sd_notify(0, "WATCHDOG=1");
	}
}

/* Creates the shared state. */
int
server_init(struct event_base *base, const struct server_limits *lim,
    const char *rundir, char *err, size_t errlen)
{
	struct store_config	cfg;
	struct timeval		tick = { STORE_TICK_MS / 1000,
				    (STORE_TICK_MS % 1000) * 1000 };
	uint64_t		wd_us;
	size_t			i;

	snprintf(err, errlen, "runtime directory path %s too long or out of "
	    "memory", rundir);
	server_base = base;
	server_limits = *lim;
	/* Big buffers (frames, replies) mapped on their own, so that freeing
	 * one gives it back and RSS follows what is held (glibc would
	 * otherwise raise its threshold and keep them in the heap). */
	mallopt(M_MMAP_THRESHOLD, SERVER_MMAP_THRESHOLD);
	/* One heap for every thread: what the worker frees goes back like
	 * the loop's, instead of staying in an arena of its own. */
	mallopt(M_ARENA_MAX, 1);
	server_conn_bytes = 0;
	server_conn_budget = server_conn_share(lim);
	if (server_limits.max_ids > PROTO_MAX_ID)
		server_limits.max_ids = PROTO_MAX_ID;
	server_profile.profiling = 0;
	server_profile.rate_hz = PROTO_RATE_DEFAULT;
	server_profile.mode = PROTO_MODE_WALL;
	server_profile.reader = PROTO_READER_DEFAULT;
	server_profile.jitter_pct = 0;
	server_profile.max_overhead_bp = PROTO_OVERHEAD_UNSET;
	server_npid_profiles = 0;
	snprintf(server_rundir, sizeof server_rundir, "%s", rundir);
	clock_gettime(CLOCK_MONOTONIC, &server_started);
	memset(&daemon_stats, 0, sizeof daemon_stats);

	for (i = 0; i < SERVER_NLISTENERS; i++) {
		if (rundir_socket(rundir, server_listeners[i].file,
		    server_listeners[i].path,
		    sizeof server_listeners[i].path) != 0)
			return (-1);
		server_listeners[i].fd = -1;
		server_listeners[i].bound = 0;
	}
	server_store_config(&server_limits, &cfg);
	server_store = store_new(&cfg);
	server_registry = registry_new(server_limits.max_gone);
	if (server_store == NULL || server_registry == NULL)
		return (-1);
	server_last_sweep_ns = server_last_persist_ns = server_now_ns();
	server_state_dir[0] = '\0';
	if (lim->state_dir != NULL) {
		snprintf(server_state_dir, sizeof server_state_dir, "%s",
		    lim->state_dir);
		server_persist = persist_open(lim->state_dir, server_store,
		    server_now_ns(), err, errlen);
		if (server_persist == NULL)
			return (-1);
		if (persist_set_sync(server_persist, lim->sync) != 0) {
			snprintf(err, errlen, "%s: cannot set --sync",
			    lim->state_dir);
			return (-1);
		}
		server_profile_resume();
	}
	/* Only now: a sweep while definitions are loaded would free them. */
	store_set_room_hook(server_store, server_need_room, NULL);
	store_set_sweep_hook(server_store, server_control_mark_all, NULL);
	/* Under WatchdogSec=, ping at half the interval, ticking that often
	 * if the interval is shorter than two ticks. */
	server_watchdog_ns = 0;
	if (base != NULL && sd_watchdog_enabled(0, &wd_us) > 0 &&
	    wd_us / 2 >= SERVER_WATCHDOG_MIN_US) {
		server_watchdog_ns = wd_us / 2 * 1000;
		server_last_ping_ns = 0;
		if (wd_us / 2 < (uint64_t)STORE_TICK_MS * 1000) {
			tick.tv_sec = wd_us / 2 / 1000000;
			tick.tv_usec = wd_us / 2 % 1000000;
		}
		log_info("watchdog: ping every %llu ms",
		    (unsigned long long)(wd_us / 2 / 1000));
	}
	server_tick_ns = (uint64_t)tick.tv_sec * 1000000000 +
	    (uint64_t)tick.tv_usec * 1000;
	if (base != NULL) {
		server_tick_ev = event_new(base, -1, EV_PERSIST, server_tick_cb,
		    NULL);
		if (server_tick_ev == NULL || event_add(server_tick_ev,
		    &tick) != 0)
			return (-1);
	}
	/* Buckets the load had no time for: checked while serving. */
	if (base != NULL && server_persist != NULL &&
	    persist_check_step(server_persist, 0) == 0) {
		struct timeval	 tv = { 0, 0 };

		if ((server_check_ev = evtimer_new(base, server_check_cb,
		    NULL)) == NULL || evtimer_add(server_check_ev, &tv) != 0)
			return (-1);
	}
	server_housekeep(server_now_ns(), 0);
	/* Shows' stack formats are encoded beside the loop; without the
	 * thread, on it, as before. */
	if (base != NULL && worker_start(base) != 0)
		log_warn("no worker thread: shows are encoded on the event "
		    "loop");
	return (0);
}

/* Saves a setting in the state dir, if any (pid 0: the global one). */
static void
server_profile_save(uint32_t pid, const struct server_profile *sp)
{
	struct persist_profile	pf;

	if (server_persist == NULL)
		return;
	pf.pid = pid;
	pf.profiling = sp->profiling;
	pf.rate_hz = sp->rate_hz;
	pf.mode = sp->mode;
	pf.reader = sp->reader;
	pf.jitter_pct = sp->jitter_pct;
	pf.max_overhead_bp = sp->max_overhead_bp;
	persist_profile_put(server_persist, &pf);
}

/*
 * Publishes the global profile in the runtime directory (sampling.h), for
 * agents to sample with from their first tick: readable by whoever may
 * connect to agent.sock (read where the socket is writable), in its group.
 */
int
server_profile_publish(void)
{
	struct sampling	s;
	mode_t		mode = S_IRUSR | S_IWUSR;
	char		err[SERVER_RUNDIR_MAX + 128];

	s.profiling = server_profile.profiling;
	s.rate_hz = server_profile.rate_hz;
	s.mode = server_profile.mode;
	s.reader = server_profile.reader;
	s.jitter_pct = server_profile.jitter_pct;
	s.max_overhead_bp = server_profile.max_overhead_bp;
	if (server_limits.agent_mode & S_IWGRP)
		mode |= S_IRGRP;
	if (server_limits.agent_mode & S_IWOTH)
		mode |= S_IROTH;
	if (sampling_write(server_rundir, &s, mode, server_limits.socket_gid,
	    err, sizeof err) != 0) {
		daemon_stats.publish_errors++;
		if (!server_publish_failing)
			log_warn("%s (agents wait for their CONFIG to sample; "
			    "retried at the next change)", err);
		server_publish_failing = 1;
		return (-1);
	}
	if (server_publish_failing)
		log_info("%s/%s: written again", server_rundir,
		    RUNDIR_SAMPLING);
	server_publish_failing = 0;
	return (0);
}

/* Sets the global profile and forgets every per-pid one. */
void
server_profile_set(const struct server_profile *sp)
{
	server_profile = *sp;
	server_npid_profiles = 0;
	if (server_publishing)
		(void)server_profile_publish();
	if (server_persist == NULL)
		return;
	persist_profile_clear_pids(server_persist);
	server_profile_save(0, sp);
}

/* Remembers a pid's own setting (the oldest goes when full). */
void
server_profile_set_pid(uint32_t pid, const struct server_profile *sp)
{
	size_t	i;

	for (i = 0; i < server_npid_profiles; i++) {
		if (server_pid_profiles[i].pid == pid)
			break;
	}
	if (i == SERVER_MAX_PID_PROFILES) {
		memmove(server_pid_profiles, server_pid_profiles + 1,
		    (SERVER_MAX_PID_PROFILES - 1) * sizeof *server_pid_profiles);
		i--;
	} else if (i == server_npid_profiles)
		server_npid_profiles++;
	server_pid_profiles[i].pid = pid;
	server_pid_profiles[i].sp = *sp;
	server_profile_save(pid, sp);
}

/* What an agent of pid is told when it attaches. */
const struct server_profile *
server_profile_for(uint32_t pid)
{
	size_t	i;

	for (i = 0; i < server_npid_profiles; i++) {
		if (server_pid_profiles[i].pid == pid)
			return (&server_pid_profiles[i].sp);
	}
	return (&server_profile);
}

/* Takes one saved setting back (persist_profile_load). */
static void
server_profile_load_one(void *arg, const struct persist_profile *pf)
{
	struct server_profile	sp;

	sp.profiling = pf->profiling;
	sp.rate_hz = pf->rate_hz;
	sp.mode = pf->mode;
	sp.reader = pf->reader;
	sp.jitter_pct = pf->jitter_pct;
	sp.max_overhead_bp = pf->max_overhead_bp;
	if (pf->pid == 0)
		server_profile = sp;
	else if (server_npid_profiles < SERVER_MAX_PID_PROFILES) {
		server_pid_profiles[server_npid_profiles].pid = pf->pid;
		server_pid_profiles[server_npid_profiles].sp = sp;
		server_npid_profiles++;
	}
}

/* Resumes the profiling state saved in the state dir, saying so. */
void
server_profile_resume(void)
{
	if (persist_profile_load(server_persist, server_profile_load_one,
	    NULL) == 0)
		return;
	log_info("resuming the saved profiling state: profiling %s, %u Hz, "
	    "mode %s, reader %s, jitter %u%%; %zu per-pid settings",
	    server_profile.profiling ? "on" : "off", server_profile.rate_hz,
	    proto_mode_name(server_profile.mode),
	    proto_reader_name(server_profile.reader),
	    server_profile.jitter_pct, server_npid_profiles);
}

/* Seconds since server_init. */
uint64_t
server_uptime(void)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return ((uint64_t)(now.tv_sec - server_started.tv_sec));
}

/* Turns accepting back on after an EMFILE pause. */
static void
server_resume(evutil_socket_t fd, short events, void *arg)
{
	struct server_listener	*l = arg;

	log_info("accepting %s connections again", l->kind);
	evconnlistener_enable(l->lev);
}

/* Hands an accepted connection to its kind. */
static void
server_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct server_listener	*l = arg;

	l->accept(fd);
}

/* accept() failed: pause a second when out of descriptors (as tmux). */
static void
server_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct server_listener	*l = arg;
	struct timeval		 tv = { SERVER_ACCEPT_PAUSE_MS / 1000,
				    (SERVER_ACCEPT_PAUSE_MS % 1000) * 1000 };
	int			 error = EVUTIL_SOCKET_ERROR();

	daemon_stats.accept_errors++;
	if (error == EMFILE || error == ENFILE || error == ENOBUFS ||
	    error == ENOMEM) {
		daemon_stats.accept_pauses++;
		log_warn("accept on %s: %s; pausing for %d ms", l->path,
		    strerror(error), SERVER_ACCEPT_PAUSE_MS);
		evconnlistener_disable(lev);
		evtimer_add(l->pause, &tv);
		return;
	}
	log_warn("accept on %s: %s", l->path, strerror(error));
}

/*
 * Binds a listening socket at path.  A socket file left by a dead profd is
 * removed; a live one (it accepts a connection) is never taken over.
 */
static int
server_bind(const char *path, mode_t mode, gid_t gid, char *err,
    size_t errlen)
{
	struct sockaddr_un	sun;
	struct stat		sb;
	int			fd = -1, saved;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);

	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket",
			    path);
			errno = EEXIST;
			return (-1);
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd == -1)
			goto fail;
		if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
			snprintf(err, errlen, "another profd is already "
			    "listening on %s (stop it, or use -r DIR)", path);
			close(fd);
			errno = EADDRINUSE;
			return (-1);
		}
		if (errno != ECONNREFUSED) {
			saved = errno;
			snprintf(err, errlen, "cannot check %s: %s", path,
			    strerror(saved));
			close(fd);
			errno = saved;
			return (-1);
		}
		close(fd);
		log_info("removing stale socket %s", path);
		if (unlink(path) != 0 && errno != ENOENT)
			goto fail;
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1)
		goto fail;
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0)
		goto fail;
	if ((gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) != 0) ||
	    chmod(path, mode) != 0 || listen(fd, SERVER_BACKLOG) != 0) {
		saved = errno;
		unlink(path);
		errno = saved;
		goto fail;
	}
	return (fd);

fail:
	saved = errno;
	snprintf(err, errlen, "cannot listen on %s: %s", path,
	    strerror(saved));
	if (fd != -1)
		close(fd);
	errno = saved;
	return (-1);
}

/* Notes the real path of an inherited socket, for the log. */
static void
server_inherit_path(struct server_listener *l, int fd)
{
	struct sockaddr_un	sun;
	socklen_t		len = sizeof sun;

	memset(&sun, 0, sizeof sun);
	if (getsockname(fd, (struct sockaddr *)&sun, &len) != 0 ||
	    sun.sun_family != AF_UNIX || sun.sun_path[0] == '\0')
		return;
	snprintf(l->path, sizeof l->path, "%.*s",
	    (int)(sizeof sun.sun_path), sun.sun_path);
}

/* Sorts the sockets systemd passed to their listeners, by name or path. */
static void
server_inherit(void)
{
	struct server_listener	*l;
	char			**names = NULL;
	int			 n, i, fd, flags;
	size_t			 j;

	n = sd_listen_fds_with_names(1, &names);
	if (n < 0)
		log_warn("sd_listen_fds: %s", strerror(-n));
	for (i = 0; i < n; i++) {
		fd = SD_LISTEN_FDS_START + i;
		l = NULL;
		for (j = 0; j < SERVER_NLISTENERS && l == NULL; j++) {
			if (server_listeners[j].fd != -1)
				continue;
			if ((names != NULL && names[i] != NULL &&
			    strcmp(names[i], server_listeners[j].kind) == 0) ||
			    sd_is_socket_unix(fd, SOCK_STREAM, 1,
			    server_listeners[j].path, 0) > 0)
				l = &server_listeners[j];
		}
		if (l == NULL) {
			log_warn("ignoring socket %d from systemd (%s)", fd,
			    names != NULL && names[i] != NULL ? names[i] :
			    "unnamed");
			close(fd);
			continue;
		}
		server_inherit_path(l, fd);
		flags = fcntl(fd, F_GETFL);
		if (flags != -1)
			fcntl(fd, F_SETFL, flags | O_NONBLOCK);
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		l->fd = fd;
		log_info("%s socket %d from systemd", l->kind, fd);
	}
	if (names != NULL) {
		for (i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
}

/* Takes the listeners from systemd or binds them. */
int
server_listen(char *err, size_t errlen)
{
	struct server_listener	*l;
	size_t			 i;

	server_inherit();
	for (i = 0; i < SERVER_NLISTENERS; i++) {
		l = &server_listeners[i];
		if (l->fd == -1) {
			l->mode = l->accept == server_agent_accept ?
			    server_limits.agent_mode :
			    server_limits.control_mode;
			l->fd = server_bind(l->path, l->mode,
			    server_limits.socket_gid, err, errlen);
			if (l->fd == -1)
				return (-1);
			l->bound = 1;
		}
		l->pause = evtimer_new(server_base, server_resume, l);
		l->lev = evconnlistener_new(server_base, server_accept_cb, l,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, l->fd);
		if (l->pause == NULL || l->lev == NULL) {
			snprintf(err, errlen, "cannot listen on %s", l->path);
			return (-1);
		}
		evconnlistener_set_error_cb(l->lev, server_accept_error_cb);
		log_info("listening for %ss on %s", l->kind, l->path);
	}
	/* From now on, and kept when profd stops: the last known profile. */
	server_publishing = 1;
	(void)server_profile_publish();
	return (0);
}

/* Closes listeners and connections and frees the shared state. */
void
server_free(void)
{
	struct server_listener	*l;
	size_t			 i;

	for (i = 0; i < SERVER_NLISTENERS; i++) {
		l = &server_listeners[i];
		if (l->lev != NULL)
			evconnlistener_free(l->lev);
		else if (l->fd != -1)
			close(l->fd);
		if (l->pause != NULL)
			event_free(l->pause);
		if (l->bound && unlink(l->path) != 0)
			log_warn("unlink %s: %s", l->path, strerror(errno));
		l->lev = NULL;
		l->pause = NULL;
		l->fd = -1;
		l->bound = 0;
	}
	server_publishing = 0;
	if (server_tick_ev != NULL)
		event_free(server_tick_ev);
	server_tick_ev = NULL;
	if (server_check_ev != NULL)
		event_free(server_check_ev);
	server_check_ev = NULL;
	server_control_free_all();
	/* Encodings still out: their connections are gone; freed. */
	worker_stop();
	if (server_persist != NULL) {
		store_tick(server_store, server_now_ns());
		(void)persist_final(server_persist);
	}
	server_agent_free_all();
	if (server_persist != NULL) {
		server_housekeep(server_now_ns(), 0);
		persist_close(server_persist);
	}
	server_persist = NULL;
	registry_free(server_registry);
	server_registry = NULL;
	store_free(server_store);
	server_store = NULL;
}

/* Reads the next frame of a connection, if it is all there. */
int
server_read_frame(struct bufferevent *bev, size_t max, size_t max_buffer,
    const char **payload, size_t *payload_len, size_t *frame_len)
{
	struct evbuffer	*in = bufferevent_get_input(bev);
	unsigned char	 hdr[PROTO_HEADER_SIZE];
	size_t		 len, need;
	uint32_t	 n;
	const char	*data;

	len = evbuffer_get_length(in);
	if (len < PROTO_HEADER_SIZE) {
		bufferevent_setwatermark(bev, EV_READ, 0, max_buffer);
		return (0);
	}
	evbuffer_copyout(in, hdr, sizeof hdr);
	n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	if (n > max)
		return (-1);
	need = PROTO_HEADER_SIZE + (size_t)n;
	if (len < need) {
		bufferevent_setwatermark(bev, EV_READ, 0,
		    need > max_buffer ? need : max_buffer);
		return (0);
	}
	if ((data = (const char *)evbuffer_pullup(in, need)) == NULL)
		return (-1);
	if (proto_frame_peek(data, need, max, payload, payload_len,
	    frame_len) != 1)
		return (-1);
	return (1);
}
