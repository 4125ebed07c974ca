/* registry.c -- the processes profd knows about (see registry.h). */

#include <stdlib.h>
#include <string.h>

#include "settings.h"
#include "registry.h"

/* Creates an empty registry. */
struct registry *
registry_new(size_t max_gone)
{
	struct registry	*reg;

	if ((reg = calloc(1, sizeof *reg)) == NULL)
		return (NULL);
	reg->max_gone = max_gone;
	return (reg);
}

/* Frees one record. */
static void
registry_proc_free(struct registry_proc *p)
{
	uint32_t	i;

	free(p->host);
	free(p->service);
	free(p->python);
	free(p->reader);
	for (i = 0; i < p->argc; i++)
		free(p->argv[i]);
	free(p->argv);
	free(p);
}

/* Frees the registry and every record. */
void
registry_free(struct registry *reg)
{
	struct registry_proc	*p, *p1;

	if (reg == NULL)
		return;
	DL_FOREACH_SAFE(reg->procs, p, p1) {
		DL_DELETE(reg->procs, p);
		registry_proc_free(p);
	}
	free(reg);
}

/* Copies at most max bytes of a wire string, NUL-terminated. */
static char *
registry_strndup(const char *s, size_t len, size_t max)
{
	char	*copy;
	size_t	 i;

	if (s == NULL)
		len = 0;
	if (len > max)
		len = max;
	if ((copy = malloc(len + 1)) == NULL)
		return (NULL);
	if (len > 0)
		memcpy(copy, s, len);
	copy[len] = '\0';
	/* Control bytes would forge log lines and cut C strings. */
	for (i = 0; i < len; i++) {
		if ((unsigned char)copy[i] < 0x20 || copy[i] == 0x7f)
			copy[i] = '?';
	}
	return (copy);
}

/* Fills a record's description from a hello. */
static int
registry_proc_describe(struct registry_proc *p, const struct proto_hello *h)
{
	const msgpack_object	*o;
	size_t			 budget = REGISTRY_MAX_ARGV_BYTES, len;
	uint32_t		 i, argc;

	p->pid = (uint32_t)h->pid;
	p->ppid = (uint32_t)h->ppid;
	p->start_ns = h->start_ns;
	p->host = registry_strndup(h->host, h->host_len, REGISTRY_MAX_FIELD);
	p->service = registry_strndup(h->service, h->service_len,
	    REGISTRY_MAX_FIELD);
	p->python = registry_strndup(h->python, h->python_len,
	    REGISTRY_MAX_FIELD);
	p->reader = registry_strndup(h->reader, h->reader_len,
	    REGISTRY_MAX_FIELD);
	if (p->host == NULL || p->service == NULL || p->python == NULL ||
	    p->reader == NULL)
		return (-1);

	/* h->argv points at the first element of a validated array. */
	argc = h->argv != NULL ? h->argc : 0;
	if (argc > PROTO_MAX_ARGV)
		argc = PROTO_MAX_ARGV;
	if (argc == 0)
		return (0);
	if ((p->argv = calloc(argc, sizeof *p->argv)) == NULL)
		return (-1);
	for (i = 0; i < argc; i++) {
		o = &h->argv[i];
		if (o->type != MSGPACK_OBJECT_STR)
			break;
		len = o->via.str.size;
		if (len > budget)
			len = budget;
		budget -= len;
		p->argv[i] = registry_strndup(o->via.str.ptr, len, len);
		if (p->argv[i] == NULL)
			return (-1);
		p->argc = i + 1;
	}
	return (0);
}

/* Forgets the records that departed longest ago, past the limit. */
static void
registry_trim(struct registry *reg)
{
	struct registry_proc	*p;

	while (reg->ngone > reg->max_gone && (p = reg->gone) != NULL) {
		DL_DELETE2(reg->gone, p, gone_prev, gone_next);
		DL_DELETE(reg->procs, p);
		registry_proc_free(p);
		reg->ngone--;
		reg->nprocs--;
		reg->forgotten++;
	}
}

/* Records a process from its hello. */
struct registry_proc *
registry_attach(struct registry *reg, const struct proto_hello *h,
    struct agent_conn *conn)
{
	struct registry_proc	*p;

	DL_FOREACH(reg->procs, p) {
		if (!p->connected && h->start_ns != 0 &&
		    p->pid == h->pid && p->start_ns == h->start_ns)
			break;
	}
	if (p != NULL) {
		/* A reconnect: keep the counts, refresh the description. */
		DL_DELETE(reg->procs, p);
		DL_DELETE2(reg->gone, p, gone_prev, gone_next);
		reg->ngone--;
		reg->nprocs--;
		p->connected = 1;
		p->conn = conn;
		DL_APPEND(reg->procs, p);
		reg->nprocs++;
		return (p);
	}

	if ((p = calloc(1, sizeof *p)) == NULL)
		return (NULL);
	if (registry_proc_describe(p, h) != 0) {
		registry_proc_free(p);
		return (NULL);
	}
	p->connected = 1;
	p->conn = conn;
	DL_APPEND(reg->procs, p);
	reg->nprocs++;
	return (p);
}

/* Marks a process disconnected. */
void
registry_detach(struct registry *reg, struct registry_proc *p)
{
	if (!p->connected)
		return;
	p->connected = 0;
	p->conn = NULL;
	p->profiling = 0;
	DL_APPEND2(reg->gone, p, gone_prev, gone_next);
	reg->ngone++;
	registry_trim(reg);
}

/* The connected process with a pid, or NULL. */
struct registry_proc *
registry_find_connected(struct registry *reg, uint32_t pid)
{
	struct registry_proc	*p;

	DL_FOREACH(reg->procs, p) {
		if (p->connected && p->pid == pid)
			return (p);
	}
	return (NULL);
}

/* The connected process with a pid, else the newest record with it. */
struct registry_proc *
registry_find(struct registry *reg, uint32_t pid)
{
	struct registry_proc	*p, *found = NULL;

	DL_FOREACH(reg->procs, p) {
		if (p->pid != pid)
			continue;
		if (p->connected)
			return (p);
		found = p;
	}
	return (found);
}

/* The reader in effect: the agent's last report, else its hello's. */
const char *
registry_reader(const struct registry_proc *p)
{
	uint64_t	r = registry_stat(p, "reader");

	if (r != 0 && r <= PROTO_READER_LAST)
		return (proto_reader_name((uint32_t)r));
	return (p->reader);
}

/*
 * Why an agent samples at the rate it does: lowered by its CPU budget, late
 * (achieving under REGISTRY_LATE_PCT of the rate in force: a loaded
 * machine), or at the asked rate.  An agent older than budgets has no
 * effective_mhz: its rate in force is the asked one.
 */
const char *
registry_rate_reason(const struct registry_proc *p)
{
	uint64_t	eff = registry_stat(p, "effective_mhz");
	uint64_t	got = registry_stat(p, "achieved_mhz");

	if (!p->profiling)
		return ("-");
	if (registry_stat(p, "rate_reason") == PROTO_REASON_BUDGET)
		return ("budget");
	if (eff == 0)
		eff = (uint64_t)p->rate_hz * 1000;
	if (got != 0 && got * 100 < eff * REGISTRY_LATE_PCT)
		return ("late");
	return ("asked");
}

/* Stores the agent's counters from a PROTO_STATS map. */
void
registry_set_stats(struct registry_proc *p, const msgpack_object_map *map)
{
	const msgpack_object	*o;
	size_t			 i;

	for (i = 0; i < REGISTRY_NSTATS; i++) {
		o = proto_map_get(map, proto_agent_stat_names[i]);
		if (o != NULL && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			p->stats[i] = o->via.u64;
	}
}

/* The agent's counter named `name`, or 0. */
uint64_t
registry_stat(const struct registry_proc *p, const char *name)
{
	size_t	i;

	for (i = 0; i < REGISTRY_NSTATS; i++) {
		if (strcmp(proto_agent_stat_names[i], name) == 0)
			return (p->stats[i]);
	}
	return (0);
}
