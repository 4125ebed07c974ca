/*
 * format-pprof.c -- the pprof encoder: a gzipped perftools.profiles.Profile
 * (daemon/profile.proto), the file `go tool pprof` and other pprof readers
 * take.
 *
 * Every profile func becomes one Function and every profile frame one
 * Location with one Line, their ids being the indexes + 1, so a sample's
 * stack is its frame indexes reversed (pprof wants the leaf first) and
 * shifted by one.  Both values are always present: [samples, time in ns].
 *
 * Function.system_name stays "": pprof "demangles" a function whose
 * system_name equals its name, and a name it takes for C++ loses every
 * "<...>", so "<module>" would print as "[python]" and "f <lambda>" as
 * "f ".  Python names have no mangled form anyway.
 *
 * The message is laid over arrays sized from the profile before anything is
 * filled in, and its strings point into the profile.  protobuf-c packs it
 * straight into deflate, whose output goes to a private evbuffer that is
 * moved to `out` only once the gzip stream is complete.
 */

#include <sys/random.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <protobuf-c/protobuf-c.h>
#include <zlib.h>

static uint32_t	format_pprof_hash(const void *, size_t);

/* A failed hash insert marks the entry instead of exiting.  uthash's own
 * hash is unseeded, and agents choose the strings: a chosen set could
 * chain in one bucket (quadratic); so a seeded hash. */
#define HASH_NONFATAL_OOM	1
#define uthash_nonfatal_oom(s)	((s)->oom = 1)
#define HASH_FUNCTION(keyptr, keylen, hashv)				\
	((hashv) = format_pprof_hash((keyptr), (keylen)))
#include <uthash.h>

#include "format.h"
#include "profile.pb-c.h"

#define FORMAT_PPROF_CHUNK	(64u << 10)	/* gzip output per step */
#define FORMAT_PPROF_IN_MAX	(1u << 30)	/* deflate input per step */
#define FORMAT_PPROF_LEVEL	Z_DEFAULT_COMPRESSION
#define FORMAT_PPROF_GZIP	(15 + 16)	/* 32K window, gzip wrapper */
#define FORMAT_PPROF_MEMLEVEL	8		/* zlib's default */
#define FORMAT_PPROF_FIXED	16		/* strings of our own */
#define FORMAT_PPROF_SET_LABELS	5		/* labels per label set */
#define FORMAT_PPROF_NVALUES	2		/* samples, time */
#define FORMAT_PPROF_NS_PER_US	1000
#define FORMAT_PPROF_NS_PER_S	1000000000ULL
#define FORMAT_PPROF_MAPPING_ID	1		/* the one Mapping */

/* protobuf-c's names, shortened. */
typedef Perftools__Profiles__Profile	PProfile;
typedef Perftools__Profiles__ValueType	PValueType;
typedef Perftools__Profiles__Sample	PSample;
typedef Perftools__Profiles__Label	PLabel;
typedef Perftools__Profiles__Mapping	PMapping;
typedef Perftools__Profiles__Location	PLocation;
typedef Perftools__Profiles__Line	PLine;
typedef Perftools__Profiles__Function	PFunction;

/* One string table entry; the key is the profile's own string. */
struct format_pprof_string {
	UT_hash_handle	 hh;
	int64_t		 index;
	int		 oom;
};

/* One label set's labels, shared by every sample that has it. */
struct format_pprof_set {
	PLabel		*labels[FORMAT_PPROF_SET_LABELS];
	size_t		 n;
};

struct format_pprof {
	const struct profile		*p;
	PProfile			 msg;

	char				**strings;
	struct format_pprof_string	*nodes;
	struct format_pprof_string	*table;
	size_t				 nstrings;
	size_t				 maxstrings;

	PValueType			 types[FORMAT_PPROF_NVALUES];
	PValueType			*typep[FORMAT_PPROF_NVALUES];
	PValueType			 period_type;
	PMapping			 mapping;
	PMapping			*mappingp;
	int64_t				 comment[2];	/* title, warning */

	PFunction			*funcs;
	PFunction			**funcp;
	PLocation			*locs;
	PLocation			**locp;
	PLine				*lines;
	PLine				**linep;
	PLabel				*labels;
	struct format_pprof_set		*sets;
	PSample				*samples;
	PSample				**samplep;
	uint64_t			*ids;
	int64_t				*values;
};

/* The gzip sink protobuf-c packs into. */
struct format_pprof_sink {
	ProtobufCBuffer		 base;
	z_stream		 zs;
	struct evbuffer		*out;
	int			 error;
};

/* Frees the message arrays (the strings belong to the profile). */
static void
format_pprof_free(struct format_pprof *fp)
{
	HASH_CLEAR(hh, fp->table);
	free(fp->strings);
	free(fp->nodes);
	free(fp->funcs);
	free(fp->funcp);
	free(fp->locs);
	free(fp->locp);
	free(fp->lines);
	free(fp->linep);
	free(fp->labels);
	free(fp->sets);
	free(fp->samples);
	free(fp->samplep);
	free(fp->ids);
	free(fp->values);
}

/* The seed of format_pprof_hash: random, set once per process whichever
 * thread encodes first. */
static uint64_t		format_pprof_seed;
static pthread_once_t	format_pprof_seeded = PTHREAD_ONCE_INIT;

/* Sets format_pprof_seed (pthread_once). */
static void
format_pprof_seed_init(void)
{
	if (getrandom(&format_pprof_seed, sizeof format_pprof_seed,
	    GRND_NONBLOCK) != sizeof format_pprof_seed)
		format_pprof_seed = (uint64_t)time(NULL) ^
		    ((uint64_t)getpid() << 32);
	format_pprof_seed |= 1;
}

/* Hashes a string table key with the process's seed. */
static uint32_t
format_pprof_hash(const void *p, size_t len)
{
	const unsigned char	*s = p;
	uint64_t		 h;
	size_t			 i;

	pthread_once(&format_pprof_seeded, format_pprof_seed_init);
	h = format_pprof_seed ^ (len * 0x9e3779b97f4a7c15ull);
	for (i = 0; i < len; i++)
		h = (h ^ s[i]) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return ((uint32_t)h);
}

/* Returns the string table index of s, adding s; -1 when out of memory. */
static int64_t
format_pprof_intern(struct format_pprof *fp, const char *s)
{
	struct format_pprof_string	*n;
	size_t				 len;

	if (s == NULL)
		s = "";
	len = strlen(s);
	HASH_FIND(hh, fp->table, s, len, n);
	if (n != NULL)
		return (n->index);
	if (fp->nstrings == fp->maxstrings)
		return (-1);
	n = &fp->nodes[fp->nstrings];
	n->index = (int64_t)fp->nstrings;
	n->oom = 0;
	HASH_ADD_KEYPTR(hh, fp->table, s, len, n);
	if (n->oom)
		return (-1);
	fp->strings[fp->nstrings++] = (char *)s;
	return (n->index);
}

/* Clamps an unsigned value into pprof's int64. */
static int64_t
format_pprof_int(uint64_t v)
{
	return (v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

/*
 * Checks every index the profile holds and sums the depths: 0, or -1 with
 * errno EINVAL for a profile whose indexes point nowhere.
 */
static int
format_pprof_check(const struct profile *p, size_t *ndepth)
{
	const struct profile_sample	*s;
	size_t				 i, j, n = 0;

	for (i = 0; i < p->nframes; i++) {
		if (p->frames[i].func >= p->nfuncs)
			goto fail;
	}
	for (i = 0; i < p->nsamples; i++) {
		s = &p->samples[i];
		if (s->labels != PROFILE_NO_LABELS && s->labels >= p->nlabels)
			goto fail;
		if (s->depth != 0 && s->frames == NULL)
			goto fail;
		for (j = 0; j < s->depth; j++) {
			if (s->frames[j] >= p->nframes)
				goto fail;
		}
		if (n > SIZE_MAX - s->depth)
			goto fail;
		n += s->depth;
	}
	*ndepth = n;
	return (0);

fail:
	errno = EINVAL;
	return (-1);
}

/* calloc that never takes 0 for out of memory. */
static void *
format_pprof_calloc(size_t n, size_t size)
{
	return (calloc(n == 0 ? 1 : n, size));
}

/* Allocates the message arrays, all sized from the profile. */
static int
format_pprof_alloc(struct format_pprof *fp, size_t ndepth)
{
	const struct profile	*p = fp->p;
	size_t			 nlabels = FORMAT_PPROF_SET_LABELS * p->nlabels;

	fp->maxstrings = FORMAT_PPROF_FIXED + 2 * p->nfuncs + nlabels;
#define FORMAT_PPROF_ARRAY(a, n) \
	(((a) = format_pprof_calloc((n), sizeof *(a))) == NULL)
	if (FORMAT_PPROF_ARRAY(fp->strings, fp->maxstrings) ||
	    FORMAT_PPROF_ARRAY(fp->nodes, fp->maxstrings) ||
	    FORMAT_PPROF_ARRAY(fp->funcs, p->nfuncs) ||
	    FORMAT_PPROF_ARRAY(fp->funcp, p->nfuncs) ||
	    FORMAT_PPROF_ARRAY(fp->locs, p->nframes) ||
	    FORMAT_PPROF_ARRAY(fp->locp, p->nframes) ||
	    FORMAT_PPROF_ARRAY(fp->lines, p->nframes) ||
	    FORMAT_PPROF_ARRAY(fp->linep, p->nframes) ||
	    FORMAT_PPROF_ARRAY(fp->labels, nlabels) ||
	    FORMAT_PPROF_ARRAY(fp->sets, p->nlabels) ||
	    FORMAT_PPROF_ARRAY(fp->samples, p->nsamples) ||
	    FORMAT_PPROF_ARRAY(fp->samplep, p->nsamples) ||
	    FORMAT_PPROF_ARRAY(fp->ids, ndepth) ||
	    FORMAT_PPROF_ARRAY(fp->values, FORMAT_PPROF_NVALUES * p->nsamples))
		return (-1);
#undef FORMAT_PPROF_ARRAY
	return (0);
}

/* Fills the sample types, period, window, mapping and comments. */
static int
format_pprof_header(struct format_pprof *fp)
{
	const struct profile	*p = fp->p;
	PProfile		*m = &fp->msg;
	const char		*what;
	int64_t			 ns;
	size_t			 i;

	what = p->weight == PROFILE_WEIGHT_CPU ? "cpu" : "wall";
	for (i = 0; i < FORMAT_PPROF_NVALUES; i++) {
		perftools__profiles__value_type__init(&fp->types[i]);
		fp->typep[i] = &fp->types[i];
	}
	if ((fp->types[0].type = format_pprof_intern(fp, "samples")) == -1 ||
	    (fp->types[0].unit = format_pprof_intern(fp, "count")) == -1 ||
	    (fp->types[1].type = format_pprof_intern(fp, what)) == -1 ||
	    (ns = format_pprof_intern(fp, "nanoseconds")) == -1)
		return (-1);
	fp->types[1].unit = ns;
	m->sample_type = fp->typep;
	m->n_sample_type = FORMAT_PPROF_NVALUES;

	if (p->rate_hz > 0) {
		perftools__profiles__value_type__init(&fp->period_type);
		fp->period_type.type = fp->types[1].type;
		fp->period_type.unit = ns;
		m->period_type = &fp->period_type;
		m->period = (int64_t)(FORMAT_PPROF_NS_PER_S / p->rate_hz);
	}
	m->time_nanos = format_pprof_int(p->start_ns);
	if (p->end_ns > p->start_ns)
		m->duration_nanos = format_pprof_int(p->end_ns - p->start_ns);

	/* Locations are symbolized already: pprof needs no binary. */
	perftools__profiles__mapping__init(&fp->mapping);
	fp->mapping.id = FORMAT_PPROF_MAPPING_ID;
	fp->mapping.has_functions = 1;
	fp->mapping.has_filenames = 1;
	fp->mapping.has_line_numbers = 1;
	if ((fp->mapping.filename = format_pprof_intern(fp, "python")) == -1)
		return (-1);
	fp->mappingp = &fp->mapping;
	m->mapping = &fp->mappingp;
	m->n_mapping = 1;

	/* Comments: the title, and the warning, if any (`pprof
	 * -comments` prints them). */
	if (p->title[0] != '\0' && (fp->comment[m->n_comment++] =
	    format_pprof_intern(fp, p->title)) == -1)
		return (-1);
	if (p->warning[0] != '\0' && (fp->comment[m->n_comment++] =
	    format_pprof_intern(fp, p->warning)) == -1)
		return (-1);
	if (m->n_comment > 0)
		m->comment = fp->comment;
	return (0);
}

/* Fills one Function per func and one Location per frame. */
static int
format_pprof_code(struct format_pprof *fp)
{
	const struct profile		*p = fp->p;
	const struct profile_func	*f;
	PFunction			*fn;
	PLocation			*loc;
	size_t				 i;

	for (i = 0; i < p->nfuncs; i++) {
		f = &p->funcs[i];
		fn = &fp->funcs[i];
		perftools__profiles__function__init(fn);
		fn->id = i + 1;
		if ((fn->name = format_pprof_intern(fp, f->name)) == -1 ||
		    (fn->filename = format_pprof_intern(fp, f->file)) == -1)
			return (-1);
		fn->start_line = f->line;
		fp->funcp[i] = fn;
	}
	fp->msg.function = fp->funcp;
	fp->msg.n_function = p->nfuncs;

	for (i = 0; i < p->nframes; i++) {
		perftools__profiles__line__init(&fp->lines[i]);
		fp->lines[i].function_id = (uint64_t)p->frames[i].func + 1;
		fp->lines[i].line = p->frames[i].line;
		fp->linep[i] = &fp->lines[i];

		loc = &fp->locs[i];
		perftools__profiles__location__init(loc);
		loc->id = i + 1;
		loc->mapping_id = FORMAT_PPROF_MAPPING_ID;
		loc->line = &fp->linep[i];
		loc->n_line = 1;
		fp->locp[i] = loc;
	}
	fp->msg.location = fp->locp;
	fp->msg.n_location = p->nframes;
	return (0);
}

/* Appends a string label unless the value is empty. */
static int
format_pprof_label_str(struct format_pprof *fp, struct format_pprof_set *set,
    PLabel *l, const char *key, const char *value)
{
	if (value[0] == '\0')
		return (0);
	perftools__profiles__label__init(l);
	if ((l->key = format_pprof_intern(fp, key)) == -1 ||
	    (l->str = format_pprof_intern(fp, value)) == -1)
		return (-1);
	set->labels[set->n++] = l;
	return (0);
}

/* Appends a number label. */
static int
format_pprof_label_num(struct format_pprof *fp, struct format_pprof_set *set,
    PLabel *l, const char *key, uint64_t value)
{
	perftools__profiles__label__init(l);
	if ((l->key = format_pprof_intern(fp, key)) == -1)
		return (-1);
	l->num = format_pprof_int(value);
	set->labels[set->n++] = l;
	return (0);
}

/* Fills the labels of every label set; a tid of 0 (unknown) is left out. */
static int
format_pprof_sets(struct format_pprof *fp)
{
	const struct profile_labels	*pl;
	struct format_pprof_set		*set;
	PLabel				*l;
	size_t				 i;

	for (i = 0; i < fp->p->nlabels; i++) {
		pl = &fp->p->labels[i];
		set = &fp->sets[i];
		l = &fp->labels[i * FORMAT_PPROF_SET_LABELS];
		if (format_pprof_label_num(fp, set, &l[0], "pid",
		    pl->pid) != 0 ||
		    format_pprof_label_str(fp, set, &l[1], "thread",
		    pl->thread) != 0 ||
		    (pl->tid != 0 && format_pprof_label_num(fp, set, &l[2],
		    "tid", pl->tid) != 0) ||
		    format_pprof_label_str(fp, set, &l[3], "service",
		    pl->service) != 0 ||
		    format_pprof_label_str(fp, set, &l[4], "host",
		    pl->host) != 0)
			return (-1);
	}
	return (0);
}

/* Fills the samples: leaf-first location ids, values, labels. */
static void
format_pprof_samples(struct format_pprof *fp)
{
	const struct profile_sample	*s;
	PSample				*ps;
	uint64_t			*ids = fp->ids;
	int64_t				*values = fp->values;
	size_t				 i, j;

	for (i = 0; i < fp->p->nsamples; i++) {
		s = &fp->p->samples[i];
		ps = &fp->samples[i];
		perftools__profiles__sample__init(ps);
		for (j = 0; j < s->depth; j++)
			ids[j] = (uint64_t)s->frames[s->depth - 1 - j] + 1;
		ps->location_id = ids;
		ps->n_location_id = s->depth;
		ids += s->depth;

		values[0] = format_pprof_int(s->count);
		values[1] = s->weight_us > INT64_MAX / FORMAT_PPROF_NS_PER_US ?
		    INT64_MAX : (int64_t)s->weight_us * FORMAT_PPROF_NS_PER_US;
		ps->value = values;
		ps->n_value = FORMAT_PPROF_NVALUES;
		values += FORMAT_PPROF_NVALUES;

		if (s->labels != PROFILE_NO_LABELS) {
			ps->label = fp->sets[s->labels].labels;
			ps->n_label = fp->sets[s->labels].n;
		}
		fp->samplep[i] = ps;
	}
	fp->msg.sample = fp->samplep;
	fp->msg.n_sample = fp->p->nsamples;
}

/* Runs deflate over what is pending, appending its output to the sink. */
static void
format_pprof_deflate(struct format_pprof_sink *sk, int flush)
{
	struct evbuffer_iovec	 v;
	int			 r;

	for (;;) {
		if (evbuffer_reserve_space(sk->out, FORMAT_PPROF_CHUNK, &v,
		    1) < 1) {
			sk->error = 1;
			return;
		}
		sk->zs.next_out = v.iov_base;
		sk->zs.avail_out = v.iov_len > UINT32_MAX ? UINT32_MAX :
		    (uInt)v.iov_len;
		r = deflate(&sk->zs, flush);
		v.iov_len -= sk->zs.avail_out;
		if (evbuffer_commit_space(sk->out, &v, 1) != 0 ||
		    (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR)) {
			sk->error = 1;
			return;
		}
		if (flush == Z_FINISH ? r == Z_STREAM_END :
		    sk->zs.avail_in == 0)
			return;
	}
}

/* protobuf-c's append: compresses the packed bytes. */
static void
format_pprof_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
	struct format_pprof_sink	*sk = (struct format_pprof_sink *)b;
	size_t				 n;

	while (len > 0 && !sk->error) {
		n = len > FORMAT_PPROF_IN_MAX ? FORMAT_PPROF_IN_MAX : len;
		sk->zs.next_in = (Bytef *)data;
		sk->zs.avail_in = (uInt)n;
		format_pprof_deflate(sk, Z_NO_FLUSH);
		data += n;
		len -= n;
	}
}

/* Packs the message and gzips it into out. */
static int
format_pprof_write(struct format_pprof *fp, struct evbuffer *out)
{
	struct format_pprof_sink	 sk;
	int				 ret = -1;

	memset(&sk, 0, sizeof sk);
	sk.base.append = format_pprof_append;
	if (deflateInit2(&sk.zs, FORMAT_PPROF_LEVEL, Z_DEFLATED,
	    FORMAT_PPROF_GZIP, FORMAT_PPROF_MEMLEVEL,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return (-1);
	if ((sk.out = evbuffer_new()) == NULL)
		goto fail;
	protobuf_c_message_pack_to_buffer(&fp->msg.base, &sk.base);
	if (sk.error)
		goto fail;
	sk.zs.next_in = NULL;
	sk.zs.avail_in = 0;
	format_pprof_deflate(&sk, Z_FINISH);
	if (sk.error || evbuffer_add_buffer(out, sk.out) != 0)
		goto fail;
	ret = 0;

fail:
	deflateEnd(&sk.zs);
	if (sk.out != NULL)
		evbuffer_free(sk.out);
	return (ret);
}

/* Encodes the profile as a gzipped pprof Profile. */
int
format_pprof(const struct profile *p, const struct format_opts *opts,
    struct evbuffer *out)
{
	struct format_pprof	 fp;
	size_t			 ndepth;
	int			 ret = -1;

	memset(&fp, 0, sizeof fp);
	fp.p = p;
	perftools__profiles__profile__init(&fp.msg);
	if (format_pprof_check(p, &ndepth) != 0)
		return (-1);
	if (format_pprof_alloc(&fp, ndepth) != 0 ||
	    format_pprof_intern(&fp, "") != 0 ||
	    format_pprof_header(&fp) != 0 ||
	    format_pprof_code(&fp) != 0 ||
	    format_pprof_sets(&fp) != 0)
		goto fail;
	format_pprof_samples(&fp);
	fp.msg.string_table = fp.strings;
	fp.msg.n_string_table = fp.nstrings;
	if (format_pprof_write(&fp, out) != 0)
		goto fail;
	ret = 0;

fail:
	format_pprof_free(&fp);
	if (ret != 0)
		errno = ENOMEM;
	return (ret);
}
