/*
 * control-show.c -- the "show" request: one query over the store, then one
 * view of its result.  Table views (rows by function, line, file, thread,
 * process or service; a call tree; a diff) are replied as msgpack for
 * profctl to print or turn into JSON; stack formats (folded, speedscope,
 * pprof, svg) are encoded here by their encoder and replied as bytes.
 *
 * Arguments (every one optional):
 *   since_ns, until_ns   window, CLOCK_REALTIME ns (0: open)
 *   pids, services, threads (name globs), oncpu, mode   filters
 *   by      "function" (default), "line", "file", "thread", "process",
 *           "service"
 *   tree, depth, min_permille            the call tree instead of rows
 *   diff    a map of the baseline: since_ns, until_ns, pids, services,
 *           threads; what it has replaces the main query's filters
 *   top     rows kept (table views) or heaviest stacks kept (stack
 *           formats); refused with tree
 *   format  "rows" (default), "folded", "speedscope", "pprof", "svg"
 *   weight  "samples" (default) or "time"
 *   root_pid, root_thread   folded: root frames per process / thread
 *
 * Every reply says, when the window's agents said it, which share of its
 * stacks they left out as unreadable ("invalid", "invalid_pct"), and, over
 * CONTROL_SHOW_INVALID_PCT, carries a "warning" line for the user (the
 * stack formats also inside the encoded profile where the format has a
 * place for it).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "format.h"
#include "settings.h"
#include "proto.h"
#include "query.h"
#include "server-control.h"
#include "server.h"
#include "stats.h"
#include "store.h"

#define CONTROL_SHOW_MAX_DEPTH	PROTO_MAX_DEPTH

const char *const control_show_args[] = {
	"since_ns", "until_ns", "pids", "services", "threads", "oncpu",
	"mode", "by", "tree", "depth", "min_permille", "diff", "top",
	"format", "weight", "root_pid", "root_thread", NULL
};

/* A query and the storage of its string filters. */
struct control_query {
	struct query	 q;
	char		**services;
	size_t		 nservices;
	char		**threads;
	size_t		 nthreads;
	uint32_t	*pids;
	size_t		 npids;
};

static const char *const control_show_formats[] = {
	"rows", "folded", "speedscope", "pprof", "svg", NULL
};

/* Parses a format name; -1 when unknown. */
static int
control_show_format_parse(const char *s)
{
	int	i;

	for (i = 0; control_show_formats[i] != NULL; i++) {
		if (strcmp(s, control_show_formats[i]) == 0)
			return (i);
	}
	return (-1);
}

/* Parses a weight name. */
static int
control_show_weight_parse(const char *s)
{
	if (strcmp(s, "samples") == 0)
		return (FORMAT_WEIGHT_SAMPLES);
	if (strcmp(s, "time") == 0)
		return (FORMAT_WEIGHT_TIME);
	return (-1);
}

/* Parses a mode name, or "any". */
static int
control_show_mode_parse(const char *s)
{
	if (strcmp(s, "any") == 0)
		return (PROTO_MODE_LAST + 1);
	return (proto_mode_parse(s));
}

/* Frees a query's filter storage. */
static void
control_query_free(struct control_query *cq)
{
	server_control_strs_free(cq->services, cq->nservices);
	server_control_strs_free(cq->threads, cq->nthreads);
	free(cq->pids);
	memset(cq, 0, sizeof *cq);
}

/* Checks that every pid is one the store knows. */
static int
control_show_check_pids(struct control_args *a, const uint32_t *pids,
    size_t npids)
{
	const struct store_instance	*in;
	uint32_t			 id, limit;
	size_t				 i;

	limit = store_id_limit(server_store, STORE_INSTANCE);
	for (i = 0; i < npids; i++) {
		for (id = 1; id < limit; id++) {
			in = store_instance_get(server_store, id);
			if (in != NULL && in->pid == pids[i])
				break;
		}
		if (id == limit) {
			snprintf(a->error, sizeof a->error, "no process with "
			    "pid %u in the store (see 'profctl ps')", pids[i]);
			return (-1);
		}
	}
	return (0);
}

/* Reads the filters of a map (the request's, or diff's) into cq. */
static int
control_show_filters(struct control_args *a, struct control_query *cq)
{
	struct control_args	pa;
	uint64_t		v;
	int			present;

	if (server_control_arg_uint(a, "since_ns", &v, &present) != 0)
		return (-1);
	if (present)
		cq->q.since_ns = v;
	if (server_control_arg_uint(a, "until_ns", &v, &present) != 0)
		return (-1);
	if (present)
		cq->q.until_ns = v;
	if (cq->q.until_ns != 0 && cq->q.since_ns >= cq->q.until_ns) {
		snprintf(a->error, sizeof a->error, "the window is empty: "
		    "--since must be before --until");
		return (-1);
	}
	if (proto_map_get(a->map, "pids") != NULL) {
		memset(&pa, 0, sizeof pa);
		pa.map = a->map;
		if (server_control_arg_pids(&pa) != 0) {
			free(pa.pids);
			snprintf(a->error, sizeof a->error, "%s", pa.error);
			return (-1);
		}
		free(cq->pids);
		cq->pids = pa.pids;
		cq->npids = pa.npids;
		if (control_show_check_pids(a, cq->pids, cq->npids) != 0)
			return (-1);
	}
	if (proto_map_get(a->map, "services") != NULL) {
		server_control_strs_free(cq->services, cq->nservices);
		if (server_control_arg_strs(a, "services", &cq->services,
		    &cq->nservices) != 0)
			return (-1);
	}
	if (proto_map_get(a->map, "threads") != NULL) {
		server_control_strs_free(cq->threads, cq->nthreads);
		if (server_control_arg_strs(a, "threads", &cq->threads,
		    &cq->nthreads) != 0)
			return (-1);
	}
	cq->q.pids = cq->pids;
	cq->q.npids = cq->npids;
	cq->q.services = (const char *const *)cq->services;
	cq->q.nservices = cq->nservices;
	cq->q.threads = (const char *const *)cq->threads;
	cq->q.nthreads = cq->nthreads;
	return (0);
}

/* Packs a function's name, file and line. */
static void
control_show_pack_func(msgpack_packer *pk, uint32_t func, uint32_t line,
    int use_line)
{
	uint32_t	name = 0, file = 0, fline = 0;

	store_func_get(server_store, func, &name, &file, &fline);
	proto_pack_cstr(pk, "function");
	server_control_pack_sid(pk, name);
	proto_pack_cstr(pk, "file");
	server_control_pack_sid(pk, file);
	proto_pack_cstr(pk, "line");
	msgpack_pack_uint32(pk, use_line ? line : fline);
}

/* Packs the four counts of a row. */
static void
control_show_pack_counts(msgpack_packer *pk, uint64_t self, uint64_t total,
    uint64_t self_us, uint64_t total_us)
{
	proto_pack_cstr(pk, "self");
	msgpack_pack_uint64(pk, self);
	proto_pack_cstr(pk, "total");
	msgpack_pack_uint64(pk, total);
	proto_pack_cstr(pk, "self_us");
	msgpack_pack_uint64(pk, self_us);
	proto_pack_cstr(pk, "total_us");
	msgpack_pack_uint64(pk, total_us);
}

/* Packs one instance's description (7 pairs). */
static void
control_show_pack_instance(msgpack_packer *pk, const struct control_args *a,
    uint32_t id)
{
	const struct store_instance	*in;

	in = store_instance_get(server_store, id);
	proto_pack_cstr(pk, "pid");
	msgpack_pack_uint32(pk, in != NULL ? in->pid : 0);
	proto_pack_cstr(pk, "ppid");
	msgpack_pack_uint32(pk, in != NULL ? in->ppid : 0);
	proto_pack_cstr(pk, "instance");
	msgpack_pack_uint32(pk, id);
	proto_pack_cstr(pk, "service");
	proto_pack_cstr(pk, in != NULL ? in->service : "");
	proto_pack_cstr(pk, "host");
	proto_pack_cstr(pk, in != NULL ? in->host : "");
	proto_pack_cstr(pk, "start_ns");
	msgpack_pack_uint64(pk, in != NULL ? in->start_ns : 0);
	proto_pack_cstr(pk, "argv");
	server_control_pack_argv(pk, a, in != NULL ? in->argv : NULL,
	    in != NULL ? in->argc : 0);
}

/* Packs one row of a view. */
static void
control_show_pack_row(msgpack_packer *pk, const struct control_args *a,
    enum query_by by,
    const struct query_row *r)
{
	const struct store_thread	*t;
	const struct store_instance	*in;
	uint32_t			 func = 0, line = 0;

	switch (by) {
	case QUERY_BY_FUNCTION:
		msgpack_pack_map(pk, 7);
		control_show_pack_func(pk, r->key, 0, 0);
		break;
	case QUERY_BY_LINE:
		store_frame_get(server_store, r->key, &func, &line);
		msgpack_pack_map(pk, 7);
		control_show_pack_func(pk, func, line, 1);
		break;
	case QUERY_BY_FILE:
		msgpack_pack_map(pk, 5);
		proto_pack_cstr(pk, "file");
		server_control_pack_sid(pk, r->key);
		break;
	case QUERY_BY_THREAD:
		t = store_thread_get(server_store, r->key);
		in = t != NULL ? store_instance_get(server_store,
		    t->instance) : NULL;
		msgpack_pack_map(pk, 8);
		proto_pack_cstr(pk, "thread");
		server_control_pack_sid(pk, t != NULL ? t->name : 0);
		proto_pack_cstr(pk, "tid");
		msgpack_pack_uint64(pk, t != NULL ? t->tid : 0);
		proto_pack_cstr(pk, "pid");
		msgpack_pack_uint32(pk, in != NULL ? in->pid : 0);
		proto_pack_cstr(pk, "service");
		proto_pack_cstr(pk, in != NULL ? in->service : "");
		break;
	case QUERY_BY_PROCESS:
		msgpack_pack_map(pk, 13);
		control_show_pack_instance(pk, a, r->key);
		proto_pack_cstr(pk, "samples");
		msgpack_pack_uint64(pk, r->self);
		proto_pack_cstr(pk, "weight_us");
		msgpack_pack_uint64(pk, r->self_us);
		break;
	case QUERY_BY_SERVICE:
		in = store_instance_get(server_store, r->key);
		msgpack_pack_map(pk, 5);
		proto_pack_cstr(pk, "service");
		proto_pack_cstr(pk, in != NULL ? in->service : "");
		break;
	}
	control_show_pack_counts(pk, r->self, r->total, r->self_us,
	    r->total_us);
}

/* The reply key of a view's rows. */
static const char *
control_show_rows_key(enum query_by by)
{
	static const char *const keys[] = {
		"functions", "lines", "files", "threads", "processes",
		"services"
	};

	return (keys[by]);
}

/* The warning for a result with buckets on disk left out, or too many of
 * whose stacks were left out, in buf; NULL when there is none. */
static const char *
control_show_warning(const struct query_result *res, const char *window,
    char *buf, size_t len)
{
	double	pct = query_invalid_pct(res);

	if (res->cold_failed > 0) {
		snprintf(buf, len, "warning: %zu buckets of %s kept on disk "
		    "could not be read (all or part of them is left out); "
		    "see profd's log", res->cold_failed, window);
		return (buf);
	}
	if (pct <= CONTROL_SHOW_INVALID_PCT)
		return (NULL);
	snprintf(buf, len, "warning: %.1f%% of stacks in %s were unreadable "
	    "(torn) and left out; see profctl status", pct, window);
	return (buf);
}

/* How many pairs control_show_pack_head packs for a result. */
static size_t
control_show_head_pairs(const struct query_result *res)
{
	char	buf[256];

	return (5 + (query_invalid_pct(res) >= 0 ? 2 : 0) +
	    (control_show_warning(res, "", buf, sizeof buf) != NULL));
}

/* Packs the header every reply has: 5 pairs, and what the agents said of
 * unreadable stacks, if they did (control_show_head_pairs). */
static void
control_show_pack_head(msgpack_packer *pk, const struct query_result *res,
    const char *view)
{
	const char	*warning;
	char		 buf[256];

	proto_pack_cstr(pk, "samples");
	msgpack_pack_uint64(pk, res->count);
	proto_pack_cstr(pk, "weight_us");
	msgpack_pack_uint64(pk, res->weight_us);
	proto_pack_cstr(pk, "from_ns");
	msgpack_pack_uint64(pk, res->from_ns);
	proto_pack_cstr(pk, "to_ns");
	msgpack_pack_uint64(pk, res->to_ns);
	proto_pack_cstr(pk, "view");
	proto_pack_cstr(pk, view);
	if (query_invalid_pct(res) >= 0) {
		proto_pack_cstr(pk, "invalid");
		msgpack_pack_uint64(pk, res->invalid);
		proto_pack_cstr(pk, "invalid_pct");
		msgpack_pack_double(pk, query_invalid_pct(res));
	}
	if ((warning = control_show_warning(res, "this window", buf,
	    sizeof buf)) != NULL) {
		proto_pack_cstr(pk, "warning");
		proto_pack_cstr(pk, warning);
	}
}

/* Replies rows of a view, with the processes summary. */
static int
control_show_rows(struct control_args *a, struct proto_sink *sink,
    const struct query_result *res, enum query_by by, uint64_t top)
{
	struct query_row	*rows = NULL, *procs = NULL;
	size_t			 n = 0, np = 0, i, start;
	msgpack_packer		*pk = &sink->pk;

	if (query_rows(server_store, res, by, &rows, &n) != 0 ||
	    (by != QUERY_BY_PROCESS && query_rows(server_store, res,
	    QUERY_BY_PROCESS, &procs, &np) != 0)) {
		free(rows);
		snprintf(a->error, sizeof a->error, "out of memory");
		return (-1);
	}
	if (by == QUERY_BY_PROCESS) {
		procs = rows;
		np = n;
		rows = NULL;
	}
	if (top != 0 && n > top)
		n = (size_t)top;
	start = proto_begin_reply(sink, 1);
	msgpack_pack_map(pk, control_show_head_pairs(res) +
	    (by == QUERY_BY_PROCESS ? 1 : 2));
	control_show_pack_head(pk, res, query_by_name(by));
	proto_pack_cstr(pk, "processes");
	msgpack_pack_array(pk, by == QUERY_BY_PROCESS && top != 0 &&
	    np > top ? (size_t)top : np);
	for (i = 0; i < np && !(by == QUERY_BY_PROCESS && top != 0 &&
	    i >= top); i++) {
		control_show_pack_row(pk, a, QUERY_BY_PROCESS, &procs[i]);
		/* Compatibility: the per-process totals. */
	}
	if (by != QUERY_BY_PROCESS) {
		proto_pack_cstr(pk, control_show_rows_key(by));
		msgpack_pack_array(pk, n);
		for (i = 0; i < n && !sink->full; i++)
			control_show_pack_row(pk, a, by, &rows[i]);
	}
	free(rows);
	free(procs);
	return (server_control_end(sink, start));
}

/* Replies the call tree. */
static int
control_show_tree(struct control_args *a, struct proto_sink *sink,
    const struct query_result *res, uint64_t depth, uint64_t permille)
{
	struct query_node	*nodes = NULL;
	size_t			 n = 0, i, start;
	msgpack_packer		*pk = &sink->pk;

	if (query_tree(server_store, res, (uint32_t)depth, (uint32_t)permille,
	    &nodes, &n) != 0) {
		snprintf(a->error, sizeof a->error, "out of memory");
		return (-1);
	}
	start = proto_begin_reply(sink, 1);
	msgpack_pack_map(pk, control_show_head_pairs(res) + 1);
	control_show_pack_head(pk, res, "tree");
	proto_pack_cstr(pk, "tree");
	msgpack_pack_array(pk, n);
	for (i = 0; i < n && !sink->full; i++) {
		msgpack_pack_map(pk, 8);
		proto_pack_cstr(pk, "depth");
		msgpack_pack_uint32(pk, nodes[i].depth);
		control_show_pack_func(pk, nodes[i].func, 0, 0);
		control_show_pack_counts(pk, nodes[i].self, nodes[i].total,
		    nodes[i].self_us, nodes[i].total_us);
	}
	free(nodes);
	return (server_control_end(sink, start));
}

/* A function's share in a diff. */
struct control_diff_row {
	uint32_t	func;
	uint64_t	self, total, base_self, base_total;
	double		delta;		/* self percentage points */
};

/* Orders diff rows by the size of their change. */
static int
control_diff_cmp(const void *x, const void *y)
{
	const struct control_diff_row	*a = x, *b = y;
	double				 da = a->delta < 0 ? -a->delta :
					     a->delta;
	double				 db = b->delta < 0 ? -b->delta :
					     b->delta;

	if (da != db)
		return (da > db ? -1 : 1);
	return (a->func < b->func ? -1 : a->func > b->func);
}

/* Replies a diff of two results by function. */
static int
control_show_diff(struct control_args *a, struct proto_sink *sink,
    const struct query_result *res, const struct query_result *base,
    uint64_t top)
{
	struct query_row	*r = NULL, *br = NULL;
	struct control_diff_row	*d = NULL;
	uint32_t		*slot = NULL, limit;
	size_t			 n = 0, bn = 0, nd = 0, i, start;
	msgpack_packer		*pk = &sink->pk;
	double			 pct, bpct;
	const char		*base_warning;
	char			 buf[256];

	limit = store_id_limit(server_store, STORE_FUNC);
	if (query_rows(server_store, res, QUERY_BY_FUNCTION, &r, &n) != 0 ||
	    query_rows(server_store, base, QUERY_BY_FUNCTION, &br, &bn) != 0 ||
	    (d = calloc(n + bn + 1, sizeof *d)) == NULL ||
	    (slot = calloc(limit, sizeof *slot)) == NULL) {
		snprintf(a->error, sizeof a->error, "out of memory");
		goto fail;
	}
	for (i = 0; i < n; i++) {
		d[nd].func = r[i].key;
		d[nd].self = r[i].self;
		d[nd].total = r[i].total;
		slot[r[i].key] = (uint32_t)++nd;
	}
	for (i = 0; i < bn; i++) {
		if (slot[br[i].key] == 0) {
			d[nd].func = br[i].key;
			slot[br[i].key] = (uint32_t)++nd;
		}
		d[slot[br[i].key] - 1].base_self = br[i].self;
		d[slot[br[i].key] - 1].base_total = br[i].total;
	}
	for (i = 0; i < nd; i++) {
		pct = res->count ? 100.0 * d[i].self / res->count : 0;
		bpct = base->count ? 100.0 * d[i].base_self / base->count : 0;
		d[i].delta = pct - bpct;
	}
	qsort(d, nd, sizeof *d, control_diff_cmp);
	if (top != 0 && nd > top)
		nd = (size_t)top;
	base_warning = control_show_warning(base, "the baseline window", buf,
	    sizeof buf);
	/* A window narrower than the buckets of its age reads the one it
	 * falls in, which the other window may read too. */
	if (base_warning == NULL && base->buckets > 0 && res->buckets > 0 &&
	    base->from_ns < res->to_ns && res->from_ns < base->to_ns) {
		snprintf(buf, sizeof buf, "warning: the two windows read the "
		    "same buckets (one is narrower than the buckets of its "
		    "age): samples there count in both");
		base_warning = buf;
	}
	start = proto_begin_reply(sink, 1);
	msgpack_pack_map(pk, control_show_head_pairs(res) + 4 +
	    (query_invalid_pct(base) >= 0) + (base_warning != NULL));
	control_show_pack_head(pk, res, "diff");
	proto_pack_cstr(pk, "base_samples");
	msgpack_pack_uint64(pk, base->count);
	proto_pack_cstr(pk, "base_from_ns");
	msgpack_pack_uint64(pk, base->from_ns);
	proto_pack_cstr(pk, "base_to_ns");
	msgpack_pack_uint64(pk, base->to_ns);
	if (query_invalid_pct(base) >= 0) {
		proto_pack_cstr(pk, "base_invalid_pct");
		msgpack_pack_double(pk, query_invalid_pct(base));
	}
	if (base_warning != NULL) {
		proto_pack_cstr(pk, "base_warning");
		proto_pack_cstr(pk, base_warning);
	}
	proto_pack_cstr(pk, "functions");
	msgpack_pack_array(pk, nd);
	for (i = 0; i < nd && !sink->full; i++) {
		msgpack_pack_map(pk, 11);
		control_show_pack_func(pk, d[i].func, 0, 0);
		proto_pack_cstr(pk, "self");
		msgpack_pack_uint64(pk, d[i].self);
		proto_pack_cstr(pk, "total");
		msgpack_pack_uint64(pk, d[i].total);
		proto_pack_cstr(pk, "base_self");
		msgpack_pack_uint64(pk, d[i].base_self);
		proto_pack_cstr(pk, "base_total");
		msgpack_pack_uint64(pk, d[i].base_total);
		proto_pack_cstr(pk, "self_pct");
		msgpack_pack_double(pk, res->count ? 100.0 * d[i].self /
		    res->count : 0);
		proto_pack_cstr(pk, "base_self_pct");
		msgpack_pack_double(pk, base->count ? 100.0 * d[i].base_self /
		    base->count : 0);
		proto_pack_cstr(pk, "delta_pct");
		msgpack_pack_double(pk, d[i].delta);
		proto_pack_cstr(pk, "total_pct");
		msgpack_pack_double(pk, res->count ? 100.0 * d[i].total /
		    res->count : 0);
	}
	free(r);
	free(br);
	free(d);
	free(slot);
	return (server_control_end(sink, start));
fail:
	free(r);
	free(br);
	free(d);
	free(slot);
	return (-1);
}

/* The title of a profile: what was asked. */
static void
control_show_title(const struct control_query *cq, char *buf, size_t len)
{
	size_t	off;

	off = (size_t)snprintf(buf, len, "profd");
	if (cq->nservices > 0 && off < len)
		off += (size_t)snprintf(buf + off, len - off, " service %s%s",
		    cq->services[0], cq->nservices > 1 ? ",..." : "");
	if (cq->npids > 0 && off < len)
		off += (size_t)snprintf(buf + off, len - off, " pid %u%s",
		    cq->pids[0], cq->npids > 1 ? ",..." : "");
	if (cq->nthreads > 0 && off < len)
		snprintf(buf + off, len - off, " thread %s%s", cq->threads[0],
		    cq->nthreads > 1 ? ",..." : "");
}

/* A stack format's encoding: made on the loop from the store, run on any
 * thread (the profile and the buffer are its own), replied on the loop. */
struct control_encoding {
	struct profile		*p;
	struct evbuffer		*out;
	format_fn		 fn;
	struct format_opts	 opts;
	int			 rc;
	unsigned		 delay_ms;	/* PROFD_TEST_ENCODE_DELAY_MS */
};

/* Frees an encoding's profile and bytes. */
static void
control_encoding_free(struct control_encoding *e)
{
	if (e->out != NULL)
		evbuffer_free(e->out);
	profile_free(e->p);
	e->out = NULL;
	e->p = NULL;
}

/* Copies the profile of a result out of the store for a stack format
 * (takes *made, if already built, instead): 0, or -1 with a->error set. */
static int
control_encoding_make(struct control_args *a, struct control_encoding *e,
    const struct query_result *res, const struct control_query *cq,
    int format, uint64_t top, const struct format_opts *optsp,
    struct profile **made)
{
	uint32_t		 mode;
	char			 title[256], buf[256];
	const char		*warning, *env;

	memset(e, 0, sizeof *e);
	e->opts = *optsp;
	/* Tests: an encoding that takes this long, to show what waits on it. */
	if ((env = getenv("PROFD_TEST_ENCODE_DELAY_MS")) != NULL)
		e->delay_ms = (unsigned)strtoul(env, NULL, 10);
	e->fn = format_find(control_show_formats[format]);
	if (e->fn == NULL) {
		snprintf(a->error, sizeof a->error, "format %s is not built "
		    "into this profd", control_show_formats[format]);
		return (-1);
	}
	if (*made != NULL) {
		e->p = *made;
		*made = NULL;
	} else if ((e->p = query_profile(server_store, res,
	    cq->q.by_thread)) == NULL)
		goto oom;
	if ((e->out = evbuffer_new()) == NULL)
		goto oom;
	if (top != 0)
		profile_keep_top(e->p, (size_t)top);
	e->p->rate_hz = server_profile.rate_hz;
	/* What the weights measure: the mode asked, else the one in effect. */
	mode = cq->q.mode != QUERY_MODE_ANY ? (uint32_t)cq->q.mode :
	    server_profile.mode;
	e->p->weight = mode == PROTO_MODE_CPU ? PROFILE_WEIGHT_CPU :
	    cq->q.oncpu ? PROFILE_WEIGHT_ONCPU : PROFILE_WEIGHT_WALL;
	control_show_title(cq, title, sizeof title);
	if (profile_set_title(e->p, title) != 0)
		goto oom;
	warning = control_show_warning(res, "this window", buf, sizeof buf);
	if (warning != NULL && profile_set_warning(e->p, warning) != 0)
		goto oom;
	return (0);
oom:
	control_encoding_free(e);
	snprintf(a->error, sizeof a->error, "out of memory encoding the "
	    "profile; narrow it with --top, --since or --pid");
	return (-1);
}

/* Runs the encoder: touches only the encoding (any thread). */
static void
control_encoding_run(struct control_encoding *e)
{
	struct timespec	ts;

	if (e->delay_ms > 0) {
		ts.tv_sec = e->delay_ms / 1000;
		ts.tv_nsec = (long)(e->delay_ms % 1000) * 1000000;
		while (nanosleep(&ts, &ts) != 0)
			;
	}
	e->rc = e->fn(e->p, &e->opts, e->out);
}

/* Replies an encoding that ran: 0, or -1 with a->error set. */
static int
control_encoding_reply(struct control_args *a, struct proto_sink *sink,
    struct control_encoding *e, const struct query_result *res, int format)
{
	struct evbuffer_iovec	 v;
	size_t			 len, start;
	int			 n;

	if (e->rc != 0) {
		control_encoding_free(e);
		snprintf(a->error, sizeof a->error, "out of memory encoding "
		    "the profile; narrow it with --top, --since or --pid");
		return (-1);
	}
	len = evbuffer_get_length(e->out);
	start = proto_begin_reply(sink, 1);
	msgpack_pack_map(&sink->pk, control_show_head_pairs(res) + 3);
	control_show_pack_head(&sink->pk, res, "stacks");
	proto_pack_cstr(&sink->pk, "format");
	proto_pack_cstr(&sink->pk, control_show_formats[format]);
	proto_pack_cstr(&sink->pk, "stacks");
	msgpack_pack_uint64(&sink->pk, e->p->nsamples);
	proto_pack_cstr(&sink->pk, "data");
	msgpack_pack_bin(&sink->pk, len);
	/* Chunk by chunk: no contiguous copy of the encoded bytes. */
	while (evbuffer_get_length(e->out) > 0) {
		n = evbuffer_peek(e->out, -1, NULL, &v, 1);
		if (n < 1 || v.iov_len == 0)
			break;
		msgpack_pack_bin_body(&sink->pk, v.iov_base, v.iov_len);
		evbuffer_drain(e->out, v.iov_len);
	}
	control_encoding_free(e);
	return (server_control_end(sink, start));
}

/* Replies the profile of a result in a stack format, at once. */
static int
control_show_encode(struct control_args *a, struct proto_sink *sink,
    const struct query_result *res, const struct control_query *cq,
    int format, uint64_t top, const struct format_opts *optsp,
    struct profile **made)
{
	struct control_encoding	e;

	if (control_encoding_make(a, &e, res, cq, format, top, optsp,
	    made) != 0)
		return (-1);
	control_encoding_run(&e);
	return (control_encoding_reply(a, sink, &e, res, format));
}

enum control_show_phase {
	CONTROL_SHOW_SCAN,		/* the window */
	CONTROL_SHOW_BASELINE,		/* a diff's baseline */
	CONTROL_SHOW_DONE,
	CONTROL_SHOW_PROFILE,		/* a stack format's profile copied out
					   of the store */
};

/* A show request between its query's steps. */
struct control_show_job {
	struct control_query	 cq, bq;
	int			 diff;
	struct query_scan	*scan;
	int			 phase;		/* enum control_show_phase */
	struct query_profiling	*making;	/* a stack format's profile */
	struct profile		*made;
	struct query_result	 res, base;
	uint32_t		 by, format;
	uint64_t		 top, depth, permille;
	int			 tree;
	struct format_opts	 opts;
	int			 reading;	/* counted in store_readers */
	enum access_level	 level;		/* of the peer */
	struct control_encoding	 enc;		/* a stack format's, aside */
};

/* Frees a job, ending its read of the store. */
void
control_show_free(struct control_show_job *j)
{
	if (j == NULL)
		return;
	query_scan_free(j->scan);
	query_profile_abort(j->making);
	profile_free(j->made);
	control_encoding_free(&j->enc);
	query_result_free(&j->res);
	query_result_free(&j->base);
	control_query_free(&j->cq);
	control_query_free(&j->bq);
	if (j->reading)
		store_readers(server_store, -1);
	free(j);
}

/* Marks what a job's scan and results name (during a sweep). */
void
control_show_mark(const struct control_show_job *j)
{
	if (j->scan != NULL)
		query_scan_mark(j->scan);
	query_result_mark(server_store, &j->res);
	query_result_mark(server_store, &j->base);
}

/* Parses a show request and starts its query. */
struct control_show_job *
control_show_begin(struct control_args *a)
{
	struct control_show_job	*j;
	struct control_args	 da;
	const msgpack_object	*diff;
	uint32_t		 mode = PROTO_MODE_LAST + 1, weight = 0;
	int			 oncpu = 0, present, stackfmt;

	if ((j = calloc(1, sizeof *j)) == NULL) {
		snprintf(a->error, sizeof a->error, "out of memory");
		return (NULL);
	}
	j->by = QUERY_BY_FUNCTION;
	j->level = a->level;
	j->permille = 5;
	j->cq.q.mode = QUERY_MODE_ANY;
	if (control_show_filters(a, &j->cq) != 0 ||
	    server_control_arg_bool(a, "oncpu", &oncpu) != 0 ||
	    server_control_arg_name(a, "mode", control_show_mode_parse,
	    "wall, cpu, gil or any", &mode) != 0 ||
	    server_control_arg_name(a, "by", query_by_parse,
	    "function, line, file, thread, process or service", &j->by) != 0 ||
	    server_control_arg_bool(a, "tree", &j->tree) != 0 ||
	    server_control_arg_uint(a, "top", &j->top, &present) != 0 ||
	    server_control_arg_uint(a, "depth", &j->depth, &present) != 0 ||
	    server_control_arg_uint(a, "min_permille", &j->permille,
	    &present) != 0 ||
	    server_control_arg_name(a, "format", control_show_format_parse,
	    "rows, folded, speedscope, pprof or svg", &j->format) != 0 ||
	    server_control_arg_name(a, "weight", control_show_weight_parse,
	    "samples or time", &weight) != 0 ||
	    server_control_arg_bool(a, "root_pid", &j->opts.root_pid) != 0 ||
	    server_control_arg_bool(a, "root_thread",
	    &j->opts.root_thread) != 0)
		goto fail;
	j->opts.weight = (enum format_weight)weight;
	j->cq.q.oncpu = oncpu;
	j->cq.q.mode = mode > PROTO_MODE_LAST ? QUERY_MODE_ANY : (int)mode;
	stackfmt = j->format != 0;
	/* Labels need the threads kept apart: pprof, speedscope, and
	 * folded with root frames. */
	j->cq.q.cold = server_cold_source();
	j->cq.q.by_thread = stackfmt && (strcmp(control_show_formats[
	    j->format], "folded") != 0 || j->opts.root_pid ||
	    j->opts.root_thread);
	if (j->depth > CONTROL_SHOW_MAX_DEPTH || j->permille > 1000) {
		snprintf(a->error, sizeof a->error, "depth must be at most %d "
		    "and the cut-off at most 100%%", CONTROL_SHOW_MAX_DEPTH);
		goto fail;
	}
	diff = proto_map_get(a->map, "diff");
	if (diff != NULL && diff->type != MSGPACK_OBJECT_MAP) {
		snprintf(a->error, sizeof a->error, "'diff' must be a map");
		goto fail;
	}
	if (j->tree && j->top != 0) {
		snprintf(a->error, sizeof a->error, "--top does not apply to "
		    "--tree; cut it with --depth or --min-percent");
		goto fail;
	}
	if ((j->tree || diff != NULL) && stackfmt) {
		snprintf(a->error, sizeof a->error, "--tree and --diff print "
		    "tables or JSON, not stack formats");
		goto fail;
	}
	if (j->tree && diff != NULL) {
		snprintf(a->error, sizeof a->error, "--tree and --diff cannot "
		    "be combined");
		goto fail;
	}
	if (diff != NULL) {
		/* The baseline: the same query with diff's filters. */
		j->diff = 1;
		j->bq.q = j->cq.q;
		memset(&da, 0, sizeof da);
		da.map = &diff->via.map;
		if (control_show_filters(&da, &j->bq) != 0) {
			snprintf(a->error, sizeof a->error, "baseline: %.200s",
			    da.error);
			goto fail;
		}
		if (j->bq.pids == NULL) {
			j->bq.q.pids = j->cq.q.pids;
			j->bq.q.npids = j->cq.q.npids;
		}
		if (j->bq.services == NULL) {
			j->bq.q.services = j->cq.q.services;
			j->bq.q.nservices = j->cq.q.nservices;
		}
		if (j->bq.threads == NULL) {
			j->bq.q.threads = j->cq.q.threads;
			j->bq.q.nthreads = j->cq.q.nthreads;
		}
	}
	store_readers(server_store, 1);
	j->reading = 1;
	if ((j->scan = query_begin(server_store, &j->cq.q)) == NULL) {
		snprintf(a->error, sizeof a->error, "out of memory for the "
		    "query; narrow it with --since or --pid");
		goto fail;
	}
	return (j);
fail:
	control_show_free(j);
	return (NULL);
}

/* Copies up to budget / CONTROL_SHOW_CELL_COST more cells of a stack
 * format's profile out of the store. */
static int
control_show_step_profile(struct control_show_job *j, size_t budget)
{
	int	rc;

	rc = query_profile_step(j->making, budget / CONTROL_SHOW_CELL_COST +
	    1);
	if (rc <= 0)
		return (rc);
	j->made = query_profile_end(j->making);
	j->making = NULL;
	j->phase = CONTROL_SHOW_DONE;
	return (1);
}

/* Reads up to budget more entries (or copies that much of a profile): 1
 * when the job is done, 0 when more steps are needed, -1 when out of
 * memory. */
int
control_show_step(struct control_show_job *j, size_t budget)
{
	struct query_result	*res;
	int			 rc;

	if (j->phase == CONTROL_SHOW_DONE)
		return (1);
	if (j->phase == CONTROL_SHOW_PROFILE)
		return (control_show_step_profile(j, budget));
	if ((rc = query_step(j->scan, budget)) <= 0)
		return (rc);
	res = j->phase == CONTROL_SHOW_SCAN ? &j->res : &j->base;
	rc = query_end(j->scan, res);
	j->scan = NULL;
	if (rc != 0)
		return (-1);
	if (j->phase == CONTROL_SHOW_SCAN && j->diff) {
		j->phase = CONTROL_SHOW_BASELINE;
		if ((j->scan = query_begin(server_store, &j->bq.q)) == NULL)
			return (-1);
		return (0);
	}
	if (j->format != 0 && !j->diff && !j->tree) {
		/* The profile is copied in steps too. */
		j->phase = CONTROL_SHOW_PROFILE;
		if ((j->making = query_profile_begin(server_store, &j->res,
		    j->cq.q.by_thread)) == NULL)
			return (-1);
		return (0);
	}
	j->phase = CONTROL_SHOW_DONE;
	return (1);
}

/* Writes the reply of a finished job: 0, or -1 (an error reply). */
int
control_show_finish(struct control_show_job *j, struct proto_sink *sink)
{
	struct control_args	a;
	int			rc;

	memset(&a, 0, sizeof a);
	a.level = j->level;
	if (j->phase != CONTROL_SHOW_DONE) {
		proto_send_error(sink, "out of memory for the query; narrow it "
		    "with --since or --pid");
		return (-1);
	}
	if (j->diff)
		rc = control_show_diff(&a, sink, &j->res, &j->base, j->top);
	else if (j->tree)
		rc = control_show_tree(&a, sink, &j->res, j->depth,
		    j->permille);
	else if (j->format != 0)
		rc = control_show_encode(&a, sink, &j->res, &j->cq,
		    (int)j->format, j->top, &j->opts, &j->made);
	else
		rc = control_show_rows(&a, sink, &j->res, (enum query_by)j->by,
		    j->top);
	if (rc != 0 && a.error[0] != '\0') {
		sink->len = 0;
		sink->full = 0;
		proto_send_error(sink, "%s", a.error);
	}
	return (rc);
}

/* Whether a finished job replies in a stack format. */
int
control_show_stacks(const struct control_show_job *j)
{
	return (j->phase == CONTROL_SHOW_DONE && !j->diff && !j->tree &&
	    j->format != 0);
}

/*
 * A finished job whose reply is a stack format can be encoded beside the
 * loop: control_show_aside() copies its profile out of the store and ends
 * its read of the store (1; 0 when the job is not such a one; -1 with an
 * error reply in sink), control_show_aside_run() encodes it on any thread,
 * control_show_aside_finish() writes the reply back on the loop.
 */
int
control_show_aside(struct control_show_job *j, struct proto_sink *sink)
{
	struct control_args	a;

	if (!control_show_stacks(j))
		return (0);
	memset(&a, 0, sizeof a);
	a.level = j->level;
	if (control_encoding_make(&a, &j->enc, &j->res, &j->cq,
	    (int)j->format, j->top, &j->opts, &j->made) != 0) {
		proto_send_error(sink, "%s", a.error);
		return (-1);
	}
	if (j->reading) {
		store_readers(server_store, -1);
		j->reading = 0;
	}
	return (1);
}

/* Encodes what control_show_aside made (any thread). */
void
control_show_aside_run(struct control_show_job *j)
{
	control_encoding_run(&j->enc);
}

/* Writes the reply of an encoding made aside: 0, or -1 (an error reply). */
int
control_show_aside_finish(struct control_show_job *j,
    struct proto_sink *sink)
{
	struct control_args	a;
	int			rc;

	memset(&a, 0, sizeof a);
	a.level = j->level;
	rc = control_encoding_reply(&a, sink, &j->enc, &j->res,
	    (int)j->format);
	if (rc != 0 && a.error[0] != '\0') {
		sink->len = 0;
		sink->full = 0;
		proto_send_error(sink, "%s", a.error);
	}
	return (rc);
}

/* "show", all at once (tests, and profd without a loop). */
int
control_show(struct control_args *a, struct proto_sink *sink)
{
	struct control_show_job	*j;
	int			 rc;

	if ((j = control_show_begin(a)) == NULL)
		return (-1);
	while ((rc = control_show_step(j, SIZE_MAX)) == 0)
		;
	rc = control_show_finish(j, sink);
	control_show_free(j);
	return (rc == 0 ? 0 : -1);
}
