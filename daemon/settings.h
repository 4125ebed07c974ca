/*
 * settings.h -- every limit of profd, each a named setting with its default.
 * The values here are defaults; profd.c lets the command line change the
 * ones that are worth changing (see `profd --help`).
 */
#ifndef SETTINGS_H
#define SETTINGS_H

#define PROFD_VERSION		"0.1.0"

/* Connections. */
#define DEFAULT_MAX_AGENTS	1024		/* connected agents */
#define DEFAULT_MAX_CONTROLS	64		/* open control connections */
#define SERVER_BACKLOG		128		/* listen() backlog */
#define SERVER_ACCEPT_PAUSE_MS	1000		/* stop accepting on EMFILE */

/* Per agent connection. */
#define DEFAULT_MAX_IDS		(1u << 20)	/* mapped ids of one kind */
#define AGENT_HELLO_TIMEOUT_S	30		/* connect -> hello */
#define AGENT_MAX_OUTPUT	(64u << 10)	/* unsent bytes to an agent */
/* Stop reading while this much unprocessed input is buffered. */
#define AGENT_MAX_INPUT		(PROTO_HEADER_SIZE + PROTO_MAX_MSG + (64u << 10))

/* Per control connection. */
#define CONTROL_TIMEOUT_S	60		/* idle or stalled write */
#define CONTROL_MAX_PIDS	65536		/* pids in one request */
#define CONTROL_MAX_INPUT	(PROTO_HEADER_SIZE + PROTO_MAX_MSG)

/* Agents registry: disconnected processes kept for `status`. */
#define DEFAULT_MAX_GONE	256
#define REGISTRY_MAX_ARGV_BYTES	4096		/* argv bytes kept per process */
#define REGISTRY_MAX_FIELD	256		/* bytes kept of host, service... */

/* The store. */
#define DEFAULT_MAX_STACKS	(1u << 20)	/* distinct stacks */
#define DEFAULT_MAX_STORE_MB	512		/* bytes of interned data + counts */

#endif
