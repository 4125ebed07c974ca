/*
 * persist-codec.c -- a bucket's entries as the store file keeps them (see
 * persist-codec.h).
 */

#include <string.h>

#include "persist-codec.h"
#include "store.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "persist-codec.c reads raw blobs as little-endian memory images"
#endif

static inline unsigned char *
persist_codec_put(unsigned char *o, uint64_t v)
{
	while (v >= 0x80) {
		*o++ = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	*o++ = (unsigned char)v;
	return (o);
}

/* Reads a varint of at most `bits` bits from [*p, end): 0, or -1. */
static inline int
persist_codec_get(const unsigned char **p, const unsigned char *end,
    unsigned bits, uint64_t *v)
{
	const unsigned char	*q = *p;
	uint64_t		 r = 0;
	unsigned		 shift = 0;

	for (;;) {
		if (q == end || shift >= bits)
			return (-1);
		/* The tenth byte of a 64-bit number holds its top bit. */
		if (shift == 63 && (*q & 0x7e) != 0)
			return (-1);
		r |= (uint64_t)(*q & 0x7f) << shift;
		if ((*q++ & 0x80) == 0)
			break;
		shift += 7;
	}
	/* The last byte's bits past `bits` must be 0. */
	if (bits < 64 && (r >> bits) != 0)
		return (-1);
	*p = q;
	*v = r;
	return (0);
}

size_t
persist_codec_bound(size_t n)
{
	return (PERSIST_CODEC_HEAD + n * PERSIST_CODEC_ENTRY_MAX);
}

size_t
persist_codec_encode(const struct store_entry *e, size_t n,
    unsigned char *out)
{
	const struct store_entry	 zero = { 0, 0, 0, 0, 0, 0 };
	const struct store_entry	*prev = &zero;
	unsigned char			*o = out;
	uint32_t			 magic = PERSIST_CODEC_MAGIC;
	size_t				 i;
	int				 same;

	memcpy(o, &magic, sizeof magic);
	o += sizeof magic;
	*o++ = PERSIST_CODEC_FORMAT;
	o = persist_codec_put(o, n);
	for (i = 0; i < n; prev = &e[i], i++) {
		o = persist_codec_put(o, e[i].thread - prev->thread);
		same = e[i].thread == prev->thread;
		o = persist_codec_put(o, same ? e[i].stack - prev->stack :
		    e[i].stack);
		same = same && e[i].stack == prev->stack;
		o = persist_codec_put(o, same ? e[i].labels - prev->labels :
		    e[i].labels);
		same = same && e[i].labels == prev->labels;
		o = persist_codec_put(o, same ? e[i].flags - prev->flags :
		    e[i].flags);
		o = persist_codec_put(o, e[i].count);
		o = persist_codec_put(o, e[i].weight_us);
	}
	return ((size_t)(o - out));
}

int
persist_codec_count(const void *head, size_t bytes, uint64_t *n,
    int *compact)
{
	const unsigned char	*p = head, *end;
	uint32_t		 magic;

	*compact = 0;
	if (bytes >= sizeof magic + 1) {
		memcpy(&magic, p, sizeof magic);
		if (magic == PERSIST_CODEC_MAGIC) {
			*compact = 1;
			if (p[sizeof magic] != PERSIST_CODEC_FORMAT)
				return (-1);
			p += sizeof magic + 1;
			end = (const unsigned char *)head +
			    (bytes < PERSIST_CODEC_HEAD ? bytes :
			    PERSIST_CODEC_HEAD);
			return (persist_codec_get(&p, end, 64, n));
		}
	}
	if (bytes % sizeof(struct store_entry) != 0)
		return (-1);
	*n = bytes / sizeof(struct store_entry);
	return (0);
}

/* One key of an entry: the difference from the previous entry's while
 * the keys before it are equal, else the value. */
static inline int
persist_codec_key(const unsigned char **p, const unsigned char *end,
    int *same, uint32_t prev, uint32_t *out)
{
	uint64_t	v;

	if (persist_codec_get(p, end, 32, &v) != 0)
		return (-1);
	if (*same) {
		if (v > UINT32_MAX - prev)
			return (-1);
		v += prev;
	}
	*same = *same && v == prev;
	*out = (uint32_t)v;
	return (0);
}

int
persist_codec_decode(const void *blob, size_t bytes, struct store_entry *to,
    uint64_t n)
{
	const unsigned char	*p = blob, *end = p + bytes;
	struct store_entry	 prev = { 0, 0, 0, 0, 0, 0 };
	uint64_t		 have, i;
	int			 compact, same;

	if (persist_codec_count(blob, bytes, &have, &compact) != 0 ||
	    have != n)
		return (-1);
	if (!compact) {
		if (n > 0)
			memcpy(to, blob, bytes);
		return (0);
	}
	p += sizeof(uint32_t) + 1;
	if (persist_codec_get(&p, end, 64, &have) != 0)
		return (-1);
	for (i = 0; i < n; i++) {
		same = 1;
		if (persist_codec_key(&p, end, &same, prev.thread,
		    &to[i].thread) != 0 ||
		    persist_codec_key(&p, end, &same, prev.stack,
		    &to[i].stack) != 0 ||
		    persist_codec_key(&p, end, &same, prev.labels,
		    &to[i].labels) != 0 ||
		    persist_codec_key(&p, end, &same, prev.flags,
		    &to[i].flags) != 0 ||
		    persist_codec_get(&p, end, 64, &to[i].count) != 0 ||
		    persist_codec_get(&p, end, 64, &to[i].weight_us) != 0)
			return (-1);
		prev = to[i];
	}
	return (p == end ? 0 : -1);
}
