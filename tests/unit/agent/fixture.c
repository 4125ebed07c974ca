/*
 * fixture.c -- the table reader and the wire checker of the agent suites
 * (see fixture.h).  Test inputs and a protocol checker, not stand-ins for
 * agent code: intern.c, conn.c and proto.c under test are the real ones.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"

struct fx_calls		fx_calls;
struct fx_wire		fx_wire;

static struct fx_code	fx_codes[FX_MAX_CODES];
static uint32_t		fx_ncodes;
static struct fx_code	fx_gen;		/* last generated code object */

/* Finds a code object of the table, or makes up a generated one. */
struct fx_code *
fx_code_find(uintptr_t addr)
{
	uint32_t	i;

	for (i = 0; i < fx_ncodes; i++) {
		if (fx_codes[i].addr == addr)
			return (&fx_codes[i]);
	}
	if (addr >= FX_GEN_BASE) {
		memset(&fx_gen, 0, sizeof fx_gen);
		fx_gen.addr = addr;
		snprintf(fx_gen.qualname, sizeof fx_gen.qualname, "g%" PRIxPTR,
		    addr);
		snprintf(fx_gen.filename, sizeof fx_gen.filename, "gen.py");
		fx_gen.firstline = 1;
		fx_gen.fingerprint = addr;
		return (&fx_gen);
	}
	return (NULL);
}

/* Adds or replaces a code object. */
struct fx_code *
fx_code_add(uintptr_t addr, const char *qualname, const char *filename,
    int32_t firstline)
{
	struct fx_code	*c = NULL;
	uint32_t	 i;

	for (i = 0; i < fx_ncodes; i++) {
		if (fx_codes[i].addr == addr)
			c = &fx_codes[i];
	}
	if (c == NULL) {
		if (fx_ncodes == FX_MAX_CODES)
			return (NULL);
		c = &fx_codes[fx_ncodes++];
	}
	memset(c, 0, sizeof *c);
	c->addr = addr;
	snprintf(c->qualname, sizeof c->qualname, "%s", qualname);
	snprintf(c->filename, sizeof c->filename, "%s", filename);
	c->firstline = firstline;
	c->fingerprint = 0x1000 + addr;
	return (c);
}

/* reader.code: copies the table's entry. */
static int
fx_reader_code(uintptr_t addr, struct reader_code *rc)
{
	struct fx_code	*c = fx_code_find(addr);

	fx_calls.code++;
	if (c == NULL || c->unreadable)
		return (-1);
	memset(rc, 0, sizeof *rc);
	snprintf(rc->qualname, sizeof rc->qualname, "%s", c->qualname);
	snprintf(rc->filename, sizeof rc->filename, "%s", c->filename);
	rc->firstline = c->firstline;
	rc->fingerprint = c->fingerprint;
	return (0);
}

/* reader.fingerprint: the table's fingerprint, 0 when absent. */
static uint64_t
fx_reader_fingerprint(uintptr_t addr)
{
	struct fx_code	*c = fx_code_find(addr);

	fx_calls.fingerprint++;
	return (c != NULL ? c->fingerprint : 0);
}

/* reader.line: firstline + offset / 2. */
static int32_t
fx_reader_line(uintptr_t addr, int32_t loc)
{
	struct fx_code	*c = fx_code_find(addr);

	fx_calls.line++;
	return ((c != NULL ? c->firstline : 0) + loc / 2);
}

/* reader.forget: counted. */
static void
fx_reader_forget(uintptr_t addr)
{
	fx_calls.forget++;
}

struct reader fx_reader = {
	.name = "table",
	.id = PROTO_READER_GIL,
	.loc = READER_LOC_LINE,
	.code = fx_reader_code,
	.fingerprint = fx_reader_fingerprint,
	.line = fx_reader_line,
	.forget = fx_reader_forget,
};

/* Empties the table. */
void
fx_reader_reset(void)
{
	memset(fx_codes, 0, sizeof fx_codes);
	fx_ncodes = 0;
	memset(&fx_calls, 0, sizeof fx_calls);
	fx_reader.loc = READER_LOC_LINE;
}

/* Fills a captured thread. */
void
fx_thread(struct reader_thread *t, uint64_t native_id,
    const uintptr_t *codes, const int32_t *locs, uint32_t depth)
{
	uint32_t	i;

	memset(t, 0, sizeof *t);
	t->native_id = native_id;
	t->ident = native_id + 1000;
	t->gil = -1;
	t->depth = depth;
	for (i = 0; i < depth && i < PROTO_MAX_DEPTH; i++) {
		t->frames[i].code = codes[i];
		t->frames[i].loc = locs != NULL ? locs[i] : 10 + (int32_t)i;
	}
}

/* Forgets the ids of a connection (or of the part before a resync). */
static void
fx_wire_forget_ids(void)
{
	fx_wire.nstrings = fx_wire.nfuncs = fx_wire.nframes = 0;
	fx_wire.nstacks = fx_wire.nthreads = 0;
}

/* Forgets the ids of a connection. */
static void
fx_wire_new_connection(void)
{
	fx_wire.nmsgs = 0;
	fx_wire_forget_ids();
}

/* Starts a new stream. */
void
fx_wire_reset(int want_hello)
{
	memset(&fx_wire, 0, sizeof fx_wire);
	fx_wire.want_hello = want_hello;
}

/* Records the first broken rule. */
static void __attribute__((format(printf, 1, 2)))
fx_wire_fail(const char *fmt, ...)
{
	va_list	ap;

	if (fx_wire.error != NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(fx_wire.errbuf, sizeof fx_wire.errbuf, fmt, ap);
	va_end(ap);
	fx_wire.error = fx_wire.errbuf;
}

/* Checks a definition's id is the next of its kind; 0 or -1. */
static int
fx_wire_next(const char *kind, uint32_t *n, uint32_t id)
{
	if (id != *n + 1) {
		fx_wire_fail("%s id %" PRIu32 " defined, expected %" PRIu32,
		    kind, id, *n + 1);
		return (-1);
	}
	if (id > FX_IDS) {
		fx_wire_fail("more than %d %s ids", FX_IDS, kind);
		return (-1);
	}
	*n = id;
	return (0);
}

/* Checks a reference to an id of a kind is already defined. */
static void
fx_wire_ref(const char *what, uint32_t id, uint32_t n)
{
	if (id == 0 || id > n)
		fx_wire_fail("%s refers to %" PRIu32 ", only %" PRIu32
		    " defined", what, id, n);
}

/* Applies one decoded message. */
static void
fx_wire_msg(const struct proto_msg *m)
{
	struct proto_sample	 s;
	uint32_t		 i, f;

	if (m->type == PROTO_HELLO) {
		fx_wire_new_connection();
		fx_wire.nhellos++;
		fx_wire.hello_pid = m->hello.pid;
	} else if (fx_wire.want_hello && fx_wire.nmsgs == 0)
		fx_wire_fail("connection starts with message %d, not HELLO",
		    m->type);
	fx_wire.nmsgs++;
	switch (m->type) {
	case PROTO_HELLO:
		break;
	case PROTO_STRING:
		if (fx_wire_next("string", &fx_wire.nstrings,
		    m->string.id) == 0)
			snprintf(fx_wire.strings[m->string.id], FX_STR, "%.*s",
			    (int)m->string.len, m->string.str);
		break;
	case PROTO_FUNC:
		fx_wire_ref("func name", m->func.name, fx_wire.nstrings);
		fx_wire_ref("func file", m->func.file, fx_wire.nstrings);
		if (fx_wire_next("func", &fx_wire.nfuncs, m->func.id) == 0) {
			fx_wire.funcs[m->func.id].name = m->func.name;
			fx_wire.funcs[m->func.id].file = m->func.file;
			fx_wire.funcs[m->func.id].line = m->func.line;
		}
		break;
	case PROTO_FRAME:
		fx_wire_ref("frame", m->frame.func, fx_wire.nfuncs);
		if (fx_wire_next("frame", &fx_wire.nframes, m->frame.id) == 0) {
			fx_wire.frames[m->frame.id].func = m->frame.func;
			fx_wire.frames[m->frame.id].line = m->frame.line;
		}
		break;
	case PROTO_STACK:
		for (i = 0; i < m->stack.depth; i++) {
			f = (uint32_t)m->stack.frames[i].via.u64;
			fx_wire_ref("stack", f, fx_wire.nframes);
		}
		if (fx_wire_next("stack", &fx_wire.nstacks, m->stack.id) != 0)
			break;
		fx_wire.stacks[m->stack.id].truncated = m->stack.truncated;
		fx_wire.stacks[m->stack.id].depth = m->stack.depth;
		for (i = 0; i < m->stack.depth && i < FX_DEPTH; i++)
			fx_wire.stacks[m->stack.id].frames[i] =
			    (uint32_t)m->stack.frames[i].via.u64;
		break;
	case PROTO_THREAD:
		fx_wire_ref("thread name", m->thread.name, fx_wire.nstrings);
		if (fx_wire_next("thread", &fx_wire.nthreads,
		    m->thread.id) == 0) {
			fx_wire.threads[m->thread.id].tid = m->thread.tid;
			fx_wire.threads[m->thread.id].name = m->thread.name;
		}
		break;
	case PROTO_SAMPLES:
	case PROTO_BATCH:
		fx_wire.nbatches++;
		fx_wire.ninvalid += m->samples.invalid;
		fx_wire.modes[m->samples.has_mode ? m->samples.mode :
		    PROTO_MODE_LAST + 1]++;
		for (i = 0; i < m->samples.count; i++) {
			proto_sample_get(m, i, &s);
			fx_wire_ref("sample stack", s.stack, fx_wire.nstacks);
			fx_wire_ref("sample thread", s.thread,
			    fx_wire.nthreads);
			if (fx_wire.nsamples < FX_SAMPLES)
				fx_wire.samples[fx_wire.nsamples] = s;
			fx_wire.nsamples++;
		}
		break;
	case PROTO_STATS:
		fx_wire.nstats++;
		break;
	case PROTO_RESYNC_ACK:
		fx_wire.nacks++;
		fx_wire.ack_token = m->resync.token;
		fx_wire.samples_at_ack = fx_wire.nsamples;
		fx_wire_forget_ids();
		break;
	default:
		fx_wire_fail("unexpected message type %d", m->type);
		break;
	}
}

/* Decodes every whole frame of buf. */
size_t
fx_wire_feed(const char *buf, size_t len)
{
	msgpack_unpacked	 up;
	struct proto_msg	 msg;
	const char		*payload, *err = NULL;
	size_t			 used = 0, plen, flen;
	int			 rc;

	while ((rc = proto_frame_peek(buf + used, len - used, PROTO_MAX_MSG,
	    &payload, &plen, &flen)) == 1) {
		msgpack_unpacked_init(&up);
		if (proto_decode(payload, plen, &up, &msg, &err) != 0)
			fx_wire_fail("undecodable message: %s", err);
		else
			fx_wire_msg(&msg);
		msgpack_unpacked_destroy(&up);
		used += flen;
	}
	if (rc < 0)
		fx_wire_fail("bad frame length");
	return (used);
}

/* Qualified name of a frame's function. */
const char *
fx_wire_frame_name(uint32_t frame)
{
	uint32_t	func;

	if (frame == 0 || frame > fx_wire.nframes)
		return ("");
	func = fx_wire.frames[frame].func;
	if (func == 0 || func > fx_wire.nfuncs)
		return ("");
	return (fx_wire.strings[fx_wire.funcs[func].name]);
}

/* Name of a thread. */
const char *
fx_wire_thread_name(uint32_t thread)
{
	if (thread == 0 || thread > fx_wire.nthreads)
		return ("");
	return (fx_wire.strings[fx_wire.threads[thread].name]);
}
