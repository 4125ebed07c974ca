/*
 * settings.h -- every limit of profd, each a named setting with its default.
 * The values here are defaults; profd.c lets the command line change the
 * ones that are worth changing (see `profd --help`).
 */
#ifndef SETTINGS_H
#define SETTINGS_H

#define PROFD_VERSION		"0.1.0"

/* Configuration file (see config.h), read if it exists. */
#define DEFAULT_CONFIG		"/etc/profd.conf"

/* Access (see access.h).  Sockets are open; SO_PEERCRED decides. */
#define DEFAULT_AGENT_SOCKET_MODE	0666
#define DEFAULT_CONTROL_SOCKET_MODE	0666

/* Connections. */
#define DEFAULT_MAX_AGENTS	1024		/* connected agents */
#define DEFAULT_MAX_AGENTS_PER_UID 256		/* of one user, other than
						   root and profd's own */
#define DEFAULT_MAX_CONTROLS	64		/* open control connections */
#define SERVER_BACKLOG		128		/* listen() backlog */
#define SERVER_ACCEPT_PAUSE_MS	1000		/* stop accepting on EMFILE */
/* Deadlines, absolute (a byte does not reset them); seconds. */
#define DEFAULT_HELLO_TIMEOUT_S	30		/* agent: connect -> hello */
#define DEFAULT_FRAME_TIMEOUT_S	10		/* first byte -> whole frame */
#define DEFAULT_CONTROL_TIMEOUT_S 60		/* control: idle, or reply
						   not drained */
#define DEFAULT_QUERY_TIMEOUT_S	30		/* a show, begun -> answered */
#define DEFAULT_MAX_QUERIES	4		/* shows reading the store at
						   once; more wait their turn */
/* Share of --max-memory that all connections' tables and buffers may use
 * together (taken out of the store's share); over it, the peer that grows
 * is closed. */
#define CONN_MEMORY_PCT		25
/* At max-agents, an attached agent idle this long may be closed to let a
 * new one in (a live agent sends its stats every second). */
#define AGENT_EVICT_IDLE_S	10

/* Per agent connection. */
#define DEFAULT_MAX_IDS		(1u << 20)	/* mapped ids of one kind */
#define AGENT_MAX_OUTPUT	(64u << 10)	/* unsent bytes to an agent */
/* Stop reading while this much unprocessed input is buffered. */
#define AGENT_MAX_INPUT		(PROTO_HEADER_SIZE + PROTO_MAX_MSG + (64u << 10))
/* A frame deadline starts again when the socket holds the frame's rest or
 * at least this much unread (server-agent.c): the peer waits on profd. */
#define AGENT_WAIVE_BYTES	(16u << 10)

/* Per control connection. */
#define CONTROL_MAX_PIDS	65536		/* pids in one request */
#define CONTROL_ENCODINGS_OUT	1	/* shows' encodings on the worker
					   thread at once; more wait */
#define CONTROL_SHOW_STEP_ENTRIES 262144	/* store entries a show reads per
					   loop turn */
#define CONTROL_SHOW_SLICE_ENTRIES 16384	/* ... in slices this big */
#define CONTROL_SHOW_STEP_US	5000	/* ... for this long at most, shared
					   by the shows running (a slice
					   started is finished) */
#define CONTROL_SHOW_CELL_COST	64	/* entries' worth of a step that one
					   stack of a profile being copied out
					   of the store counts for */
/* Replies queued for profctl clients and not yet read, as a share of
 * --max-memory, with the show reply being built: one that does not fit is
 * an error (server_control_reply_room). */
#define CONTROL_REPLY_PCT	25
#define CONTROL_REPLY_SMALL	(64u << 10)	/* ... nor one this small */
#define CONTROL_MAX_INPUT	(PROTO_HEADER_SIZE + PROTO_MAX_MSG)
/* A show warns when more than this percent of its window's stacks were
 * left out as unreadable (query_invalid_pct). */
#define CONTROL_SHOW_INVALID_PCT 1

/* Per-pid profiling settings remembered (start/stop --pid), the oldest
 * forgotten first. */
#define SERVER_MAX_PID_PROFILES	4096

/* Agents registry: disconnected processes kept for `status`. */
#define DEFAULT_MAX_GONE	256
#define REGISTRY_MAX_ARGV_BYTES	4096		/* argv bytes kept per process */
#define REGISTRY_MAX_FIELD	256		/* bytes kept of host, service... */
#define REGISTRY_LATE_PCT	80	/* achieving less of the rate in
					   force is "late" in status */

/* The store (see store.h).  Sizes in bytes, times in seconds. */
#define DEFAULT_MAX_MEMORY	((size_t)512 << 20)	/* whole daemon */
#define PROFD_MIN_MEMORY	((size_t)16 << 20)	/* smallest --max-memory */
#define MEMORY_RESERVE		((size_t)8 << 20)	/* of that, kept
							   out of the store */
#define DEFAULT_BUCKET_S	10		/* finest bucket width */
#define DEFAULT_RETENTION_S	(30 * 86400)	/* oldest data kept */
#define DEFAULT_MAX_DISK	((uint64_t)4 << 30)	/* the file, with -s */
#define PROFD_MIN_DISK		((uint64_t)1 << 20)	/* smallest --max-disk */
#define DEFAULT_TIER0_AGE_S	3600		/* finest width until */
#define DEFAULT_TIER1_WIDTH_S	60		/* then this width */
#define DEFAULT_TIER1_AGE_S	86400		/* until this age */
#define DEFAULT_TIER2_WIDTH_S	3600		/* then this width */
#define STORE_GRACE_S		10		/* late samples accepted */
#define STORE_TICK_MS		1000		/* housekeeping period */
#define DEFAULT_SWEEP_S		60		/* reclaim definitions */
#define STORE_SWEEP_PCT		90		/* ... or when this full, */
#define STORE_SWEEP_MIN_S	5		/* at most this often */
#define STORE_ROOM_SWEEP_MS	1000		/* a sweep for room that freed
						   nothing, at most this often */
#define DEFAULT_PERSIST_S	10		/* write the open buckets */
/* Buckets a restart left on disk unread are checked this many entries at
 * a time (about 1 ms of the loop), every SERVER_CHECK_MS. */
#define SERVER_CHECK_ENTRIES	16384
#define SERVER_CHECK_MS		1
/* Buckets only on disk are rolled up for at most this long a housekeeping
 * tick (one merge at least, when one is due). */
#define SERVER_ROLLUP_MS	10
#define SERVER_TRIM_S		10		/* return freed memory, at most */
#define SERVER_MMAP_THRESHOLD	(256 << 10)	/* allocations mapped alone */
/* Shortest WATCHDOG=1 period honoured (half of systemd's WatchdogSec=). */
#define SERVER_WATCHDOG_MIN_US	10000
/* An agent connection whose maps pin more ids than this that no bucket
 * uses is asked to define again what it uses (PROTO_RESYNC). */
#define DEFAULT_RESYNC_IDS	4096

#endif
