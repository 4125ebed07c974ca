/*
 * server.h -- profd's listeners and the state every connection shares.
 * Everything here is used by the event loop thread only: profd has one.
 */
#ifndef SERVER_H
#define SERVER_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

struct store;
struct registry;

/* Limits settable on the command line (defaults in settings.h). */
struct server_limits {
	size_t	max_agents;
	size_t	max_agents_per_uid;	/* but root's and our own */
	size_t	max_controls;
	size_t	max_ids;
	size_t	max_gone;
	size_t	max_memory;		/* whole daemon, bytes */
	uint64_t bucket_s;		/* finest bucket width */
	uint64_t retention_s;		/* oldest data kept */
	uint64_t max_disk;		/* bytes of the file; 0: no bound */
	uint64_t persist_s;		/* open buckets written every */
	int	 sync;			/* PERSIST_SYNC_* */
	uint64_t sweep_s;		/* definitions reclaimed every */
	uint64_t resync_ids;		/* stale ids before a resync */
	uint64_t hello_timeout_s;	/* agent: connect -> hello */
	uint64_t frame_timeout_s;	/* first byte -> whole frame */
	uint64_t control_timeout_s;	/* control idle / reply undrained */
	uint64_t query_timeout_s;	/* a show: begun -> answered */
	size_t	max_queries;		/* shows reading the store at once */
	const char *state_dir;		/* NULL: memory only */
	mode_t	agent_mode;		/* of sockets we bind */
	mode_t	control_mode;
	gid_t	socket_gid;		/* (gid_t)-1: ours */
};

/* The global profiling switch: what every agent that attaches is told. */
struct server_profile {
	int		profiling;
	uint32_t	rate_hz;
	uint32_t	mode;
	uint32_t	reader;
	uint32_t	jitter_pct;	/* +- percent of a period */
	uint32_t	max_overhead_bp;	/* CPU budget, 1/100 %;
						   PROTO_OVERHEAD_UNSET:
						   the agents' own */
};

/* Shared state: event loop thread only.  Set by server_init. */
extern struct event_base	*server_base;
extern struct server_limits	 server_limits;
extern struct server_profile	 server_profile;
extern struct store		*server_store;
struct query_cold;
const struct query_cold	*server_cold_source(void);
extern struct registry		*server_registry;
#define SERVER_RUNDIR_MAX 4096
extern char			 server_rundir[SERVER_RUNDIR_MAX];

void	server_limits_default(struct server_limits *);
/* Sets the global profile and forgets every per-pid one; saved in the
 * state dir, if any, as is every change here, and, once listening,
 * published in the runtime directory (server_profile_publish). */
void	server_profile_set(const struct server_profile *);
/* Writes the global profile to RUNDIR_SAMPLING for agents to start with
 * (proto/sampling.h): 0, or -1 (logged, counted). */
int	server_profile_publish(void);
/* Remembers a pid's own setting, for when it attaches again. */
void	server_profile_set_pid(uint32_t pid, const struct server_profile *);
/* What an agent of pid is told when it attaches. */
const struct server_profile *server_profile_for(uint32_t pid);
/* Resumes the state saved in the state dir, logging one line (server_init
 * does this). */
void	server_profile_resume(void);
/* Creates the store (loading it from the state directory, if any) and
 * the registry; base may be NULL (tests).  -1 with err set. */
int	server_init(struct event_base *, const struct server_limits *,
	    const char *rundir, char *err, size_t errlen);
/* Takes the listeners from systemd or binds them; -1 with *err set. */
int	server_listen(char *err, size_t errlen);
/* Closes listeners (unlinking sockets it bound) and every connection,
 * then frees the shared state. */
void	server_free(void);
/*
 * Connections' memory: every agent's id tables and every connection's
 * buffered input and output are charged here, against CONN_MEMORY_PCT of
 * --max-memory.  Event loop thread only.
 */
extern size_t			 server_conn_bytes;
extern size_t			 server_conn_budget;
/* Charges a connection's new size (it was *charged): 0, or -1 when a
 * growth would pass the budget (then nothing changes). */
int	server_conn_charge(size_t *charged, size_t bytes);
/* Arms a connection's deadline ev for s seconds from now. */
void	server_deadline(struct event *ev, uint64_t s);

/* Seconds since server_init. */
uint64_t server_uptime(void);
/* Wall clock, ns. */
uint64_t server_now_ns(void);
/* Housekeeping of the store: seal, roll up, expire, reclaim, persist.
 * Runs every STORE_TICK_MS; tests call it directly. */
void	server_housekeep(uint64_t now_ns, int force_sweep);
/* Copies the store's counters into daemon_stats (status does, too). */
void	server_store_counts(void);
/* Reads the configuration again (profd.c sets it): 0 with err holding the
 * file read, or -1 with err saying why nothing changed. */
extern int (*server_reload_hook)(char *err, size_t errlen);
/* The config file profd reads (for messages). */
extern char			 server_config_path[SERVER_RUNDIR_MAX];

/* Where the store is kept on disk, or "" (memory only). */
extern char			 server_state_dir[SERVER_RUNDIR_MAX];

/*
 * Frame reading shared by both kinds of connection.  Returns 1 with the
 * frame's payload pulled up (drain *frame_len after use), 0 when more bytes
 * are needed, -1 when the announced length exceeds max.  Every read calls
 * back (no low watermark), so that a frame's deadline starts at its first
 * byte.
 */
int	server_read_frame(struct bufferevent *, size_t max, size_t max_buffer,
	    const char **payload, size_t *payload_len, size_t *frame_len);

#endif
