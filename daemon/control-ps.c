/*
 * control-ps.c -- the "ps" request: every process instance the store
 * remembers (within the retention), attached or not, with its parent
 * instance: the newest instance on the same host whose pid is this one's
 * ppid and that was alive when this one started.
 *
 * Arguments: pids, services (filters; optional).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "server-control.h"
#include "server.h"
#include "store.h"

const char *const control_ps_args[] = { "pids", "services", NULL };

/* Orders instance ids by pid, then start time. */
static const struct store *control_ps_store;
static int
control_ps_cmp(const void *x, const void *y)
{
	const struct store_instance	*a, *b;

	a = store_instance_get(control_ps_store, *(const uint32_t *)x);
	b = store_instance_get(control_ps_store, *(const uint32_t *)y);
	if (a->pid != b->pid)
		return (a->pid < b->pid ? -1 : 1);
	if (a->start_ns != b->start_ns)
		return (a->start_ns < b->start_ns ? -1 : 1);
	return (a->id < b->id ? -1 : a->id > b->id);
}

/* The parent instance of an instance, or 0. */
static uint32_t
control_ps_parent(const uint32_t *ids, size_t n,
    const struct store_instance *in)
{
	const struct store_instance	*p;
	size_t				 lo = 0, hi = n, mid;
	uint32_t			 best = 0;

	if (in->ppid == 0)
		return (0);
	/* First id with pid >= ppid. */
	while (lo < hi) {
		mid = (lo + hi) / 2;
		p = store_instance_get(server_store, ids[mid]);
		if (p->pid < in->ppid)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < n; lo++) {
		p = store_instance_get(server_store, ids[lo]);
		if (p->pid != in->ppid)
			break;
		if (strcmp(p->host, in->host) != 0 || p == in)
			continue;
		if (p->start_ns > in->start_ns)
			continue;
		if (!p->attached && p->end_ns != 0 && in->start_ns != 0 &&
		    p->end_ns < in->start_ns)
			continue;
		best = p->id;
	}
	return (best);
}

/* Whether an instance passes the filters. */
static int
control_ps_match(const struct control_args *a, char **services,
    size_t nservices, const struct store_instance *in)
{
	size_t	i;

	if (a->npids > 0) {
		for (i = 0; i < a->npids && a->pids[i] != in->pid; i++)
			;
		if (i == a->npids)
			return (0);
	}
	if (nservices > 0) {
		for (i = 0; i < nservices &&
		    strcmp(services[i], in->service) != 0; i++)
			;
		if (i == nservices)
			return (0);
	}
	return (1);
}

/* "ps": the process instances. */
int
control_ps(struct control_args *a, struct proto_sink *sink)
{
	const struct store_instance	*in;
	msgpack_packer			*pk = &sink->pk;
	char				**services = NULL;
	uint32_t			*ids = NULL, limit, id;
	size_t				 n = 0, nservices = 0, i, shown, start;

	if (server_control_arg_strs(a, "services", &services,
	    &nservices) != 0)
		return (-1);
	limit = store_id_limit(server_store, STORE_INSTANCE);
	if ((ids = calloc(limit, sizeof *ids)) == NULL) {
		server_control_strs_free(services, nservices);
		snprintf(a->error, sizeof a->error, "out of memory");
		return (-1);
	}
	for (id = 1; id < limit; id++) {
		if (store_instance_get(server_store, id) != NULL)
			ids[n++] = id;
	}
	control_ps_store = server_store;
	qsort(ids, n, sizeof *ids, control_ps_cmp);
	for (i = 0, shown = 0; i < n; i++) {
		in = store_instance_get(server_store, ids[i]);
		shown += control_ps_match(a, services, nservices, in);
	}
	start = proto_begin_reply(sink, 1);
	msgpack_pack_map(pk, 1);
	proto_pack_cstr(pk, "processes");
	msgpack_pack_array(pk, shown);
	for (i = 0; i < n && !sink->full; i++) {
		in = store_instance_get(server_store, ids[i]);
		if (!control_ps_match(a, services, nservices, in))
			continue;
		msgpack_pack_map(pk, 17);
		proto_pack_cstr(pk, "instance");
		msgpack_pack_uint32(pk, in->id);
		proto_pack_cstr(pk, "parent");
		msgpack_pack_uint32(pk, control_ps_parent(ids, n, in));
		proto_pack_cstr(pk, "pid");
		msgpack_pack_uint32(pk, in->pid);
		proto_pack_cstr(pk, "ppid");
		msgpack_pack_uint32(pk, in->ppid);
		proto_pack_cstr(pk, "host");
		proto_pack_cstr(pk, in->host);
		proto_pack_cstr(pk, "service");
		proto_pack_cstr(pk, in->service);
		proto_pack_cstr(pk, "python");
		proto_pack_cstr(pk, in->python);
		proto_pack_cstr(pk, "reader");
		proto_pack_cstr(pk, in->reader);
		proto_pack_cstr(pk, "argv");
		server_control_pack_argv(pk, a, in->argv, in->argc);
		proto_pack_cstr(pk, "start_ns");
		msgpack_pack_uint64(pk, in->start_ns);
		proto_pack_cstr(pk, "attach_ns");
		msgpack_pack_uint64(pk, in->attach_ns);
		proto_pack_cstr(pk, "end_ns");
		msgpack_pack_uint64(pk, in->end_ns);
		proto_pack_cstr(pk, "last_ns");
		msgpack_pack_uint64(pk, in->last_ns);
		proto_pack_cstr(pk, "attached");
		server_control_pack_bool(pk, in->attached);
		proto_pack_cstr(pk, "samples");
		msgpack_pack_uint64(pk, in->samples);
		proto_pack_cstr(pk, "dropped");
		msgpack_pack_uint64(pk, in->dropped);
		proto_pack_cstr(pk, "connected");
		server_control_pack_bool(pk, in->attached);
	}
	free(ids);
	server_control_strs_free(services, nservices);
	return (server_control_end(sink, start));
}
