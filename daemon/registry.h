/*
 * registry.h -- the processes profd knows about: one record per agent
 * connection's process, kept after it disconnects (for `status`) up to a
 * limit: the one that departed longest ago is dropped first, never by
 * attach time (which would forget the process that just exited).
 */
#ifndef REGISTRY_H
#define REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <utlist.h>

#include "proto.h"

#define REGISTRY_NSTATS (0 PROTO_AGENT_STATS(REGISTRY_STAT_ONE))
#define REGISTRY_STAT_ONE(name, desc) + 1

struct agent_conn;

struct registry_proc {
	uint32_t		 pid;
	uint32_t		 uid;		/* the kernel's; UINT32_MAX:
						   unknown */
	uint32_t		 ppid;
	uint64_t		 start_ns;
	char			*host;
	char			*service;
	char			*python;
	char			*reader;	/* as the agent said */
	char			**argv;
	uint32_t		 argc;

	int			 connected;
	struct agent_conn	*conn;		/* NULL when disconnected */

	/* What this agent was last told to do. */
	int			 profiling;
	uint32_t		 rate_hz;
	uint32_t		 jitter_pct;
	uint32_t		 max_overhead_bp;	/* or _UNSET */
	uint32_t		 mode;
	uint32_t		 reader_cfg;

	uint32_t		 version;	/* protocol negotiated */

	uint64_t		 samples;	/* received by the daemon */
	uint64_t		 stats[REGISTRY_NSTATS];	/* PROTO_STATS */

	struct registry_proc	*prev, *next;	/* utlist, oldest first */
	/* While disconnected: the gone list, longest departed first. */
	struct registry_proc	*gone_prev, *gone_next;
};

struct registry {
	struct registry_proc	*procs;		/* by attach time */
	struct registry_proc	*gone;		/* by departure time */
	size_t			 nprocs;
	size_t			 ngone;		/* disconnected ones */
	size_t			 max_gone;
	uint64_t		 forgotten;	/* gone ones dropped */
};

struct registry	*registry_new(size_t max_gone);
void		 registry_free(struct registry *);
/* Records a process from its hello, connected to conn.  A reconnecting
 * process (same pid and start time, disconnected) gets its old record. */
struct registry_proc *registry_attach(struct registry *,
		     const struct proto_hello *, struct agent_conn *);
/* Marks a process disconnected; may forget the oldest gone ones. */
void		 registry_detach(struct registry *, struct registry_proc *);
/* The connected process with a pid, else the newest record with it. */
struct registry_proc *registry_find(struct registry *, uint32_t pid);
/* The connected process with a pid, or NULL. */
struct registry_proc *registry_find_connected(struct registry *,
		     uint32_t pid);
/* The reader in effect: the agent's last report, else its hello's. */
const char	*registry_reader(const struct registry_proc *);
/* Why its rate is what it is: "budget", "late" or "asked"; "-" when it
 * is not profiling. */
const char	*registry_rate_reason(const struct registry_proc *);
/* Stores the agent's counters from a PROTO_STATS map. */
void		 registry_set_stats(struct registry_proc *,
		     const msgpack_object_map *);
/* The agent's counter named `name`, or 0. */
uint64_t	 registry_stat(const struct registry_proc *, const char *name);

#endif
