/*
 * server-agent.h -- one agent connection: decodes its frames, maps its
 * per-connection ids to the store's, and counts its samples.
 *
 * The decoding side takes bytes and needs no socket (server_agent_input),
 * so tests feed it frames directly.
 */
#ifndef SERVER_AGENT_H
#define SERVER_AGENT_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

/* Kinds of id an agent defines, each numbered densely from 1. */
enum agent_kind {
	AGENT_STRING,
	AGENT_FUNC,
	AGENT_FRAME,
	AGENT_STACK,
	AGENT_THREAD,
	AGENT_NKINDS
};

/* An agent id table: agent id - 1 -> store id (0: not stored). */
struct agent_ids {
	uint32_t	*map;
	uint32_t	 count;		/* ids defined */
	uint32_t	 cap;		/* entries allocated in map */
};

/* What an agent connection's deadline is for. */
#define AGENT_DEADLINE_NONE	0
#define AGENT_DEADLINE_HELLO	1	/* hello-timeout from connect */
#define AGENT_DEADLINE_FRAME	2	/* frame-timeout from a frame's start */

struct agent_conn {
	struct bufferevent	*bev;		/* NULL in tests */
	struct evbuffer		*out;		/* bev's output, or own */
	struct event		*close_ev;	/* deferred close */
	int			 closing;
	struct registry_proc	*proc;		/* set by the hello */
	/* The kernel's view of the peer (SO_PEERCRED); tests leave it
	 * unset (have_peer 0) and the hello is believed. */
	int			 have_peer;
	int			 trusted;	/* root or profd's own uid */
	pid_t			 peer_pid;	/* 0: in another pid namespace */
	uid_t			 peer_uid;
	int			 peer_pidfd;	/* the peer process until its
						   hello, or -1 */
	uint32_t		 pid;
	uint32_t		 version;	/* negotiated at its hello */
	int			 rejected;	/* REJECT sent: closing */
	uint32_t		 resync_token;	/* of the RESYNC sent */
	int			 resync_pending; /* its ack not yet seen */
	uint32_t		 instance;	/* store instance id */
	uint64_t		 acked;		/* newest batch ACKed (v4) */
	struct agent_ids	 ids[AGENT_NKINDS];
	char			 error[160];	/* why it was closed */
	struct event		*deadline_ev;	/* hello or frame deadline */
	int			 deadline;	/* AGENT_DEADLINE_* armed */
	uint64_t		 accepted_ns;	/* when it connected */
	uint64_t		 input_ns;	/* when its last frame came */
	size_t			 charged;	/* to server_conn_bytes */
	int			 resource_error; /* closed for memory, not
						   for what it sent */

	struct agent_conn	*prev, *next;	/* utlist */
};

/* Connected agents: event loop thread only. */
extern size_t server_agent_count;

/* Accepts an agent connection (from the listener). */
void	server_agent_accept(int fd);
/* Creates a connection on bev, or a socket-less one when bev is NULL. */
struct agent_conn *server_agent_create(struct bufferevent *);
/* Frees a connection, marking its process disconnected. */
void	server_agent_free(struct agent_conn *);
void	server_agent_free_all(void);

/* Handles every complete frame in buf; *used says how many bytes.
 * Returns 0, or -1 on a protocol error (reason in conn->error). */
int	server_agent_input(struct agent_conn *, const char *buf, size_t len,
	    size_t *used);
/* Handles one frame payload: 0, or -1 (reason in conn->error). */
int	server_agent_message(struct agent_conn *, const char *payload,
	    size_t len);
/* Marks what live connections use, for a store sweep. */
void	server_agent_mark_all(void);
/* Asks connections holding too many ids to define them again. */
void	server_agent_resync_all(void);
/* Sends every version 4 agent an ACK of its batches that are durable
 * (after a flush of the state dir; memory only, every housekeeping tick). */
void	server_agent_ack_all(void);
/* Tells an agent what to do (PROTO_CONFIG) and records it. */
int	server_agent_configure(struct agent_conn *, int profiling,
	    uint32_t rate_hz, uint32_t mode, uint32_t reader, uint32_t jitter_pct,
	    uint32_t max_overhead_bp);

#endif
