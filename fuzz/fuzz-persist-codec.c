/*
 * fuzz-persist-codec.c -- libFuzzer target for a blob of a bucket's
 * entries as the store file keeps them (daemon/persist-codec.c): the count
 * and the decoding of any bytes.  Nothing may crash or read out of bounds;
 * a compact blob decodes in the store's order (never descending), and
 * what decodes in that order comes back the same through the encoder.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "persist-codec.h"
#include "store.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Whether b sorts before a, as store_cmp_entry orders them. */
static int
descends(const struct store_entry *a, const struct store_entry *b)
{
	if (a->thread != b->thread)
		return (b->thread < a->thread);
	if (a->stack != b->stack)
		return (b->stack < a->stack);
	if (a->labels != b->labels)
		return (b->labels < a->labels);
	return (b->flags < a->flags);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct store_entry	 e[PERSIST_CODEC_BLOCK];
	static struct store_entry	 again[PERSIST_CODEC_BLOCK];
	static unsigned char		 blob[PERSIST_CODEC_HEAD +
					    PERSIST_CODEC_BLOCK *
					    PERSIST_CODEC_ENTRY_MAX];
	uint64_t			 n, i;
	size_t				 len;
	int				 compact;

	if (persist_codec_count(data, size, &n, &compact) != 0 ||
	    n > PERSIST_CODEC_BLOCK)
		return (0);
	if (persist_codec_decode(data, size, e, n) != 0)
		return (0);
	for (i = 1; i < n; i++) {
		if (!descends(&e[i - 1], &e[i]))
			continue;
		if (compact)
			abort();
		return (0);	/* a raw blob out of order: persist refuses it */
	}
	len = persist_codec_encode(e, (size_t)n, blob);
	if (len > persist_codec_bound((size_t)n) ||
	    persist_codec_decode(blob, len, again, n) != 0 ||
	    memcmp(e, again, (size_t)n * sizeof *e) != 0)
		abort();
	return (0);
}
