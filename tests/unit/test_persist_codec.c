/* test_persist_codec.c -- a bucket's entries as the store file keeps them:
 * every value survives a round trip, the compact form is small, a raw
 * blob an older profd wrote reads as it was, and no damaged blob is read
 * past its end or into a wrong count. */

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "persist-codec.h"
#include "store.h"

/* n entries in the store's order, of a workload's kind: a few threads,
 * stacks spread over a few thousand ids, counts and weights of 100 Hz. */
static struct store_entry *
entries(size_t n, uint32_t seed)
{
	struct store_entry	*e = calloc(n, sizeof *e);
	uint32_t		 x = seed | 1, thread = 1, stack = 0;
	size_t			 i;

	cr_assert_not_null(e);
	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		if (x % 97 == 0) {
			thread += 1 + x % 3;
			stack = 0;
		}
		stack += 1 + x % 7;
		e[i].thread = thread;
		e[i].stack = stack;
		e[i].flags = x % 3 == 0 ? 3 : 1;
		e[i].count = 1 + x % 40;
		e[i].weight_us = e[i].count * 10000 + x % 500;
	}
	return (e);
}

static void
round_trip(const struct store_entry *e, size_t n)
{
	unsigned char		*blob = malloc(persist_codec_bound(n));
	struct store_entry	*back = calloc(n + 1, sizeof *back);
	uint64_t		 count;
	size_t			 len;
	int			 compact;

	cr_assert_not_null(blob);
	cr_assert_not_null(back);
	len = persist_codec_encode(e, n, blob);
	cr_assert_leq(len, persist_codec_bound(n));
	cr_assert_eq(persist_codec_count(blob, len, &count, &compact), 0);
	cr_assert(compact);
	cr_assert_eq(count, n);
	cr_assert_eq(persist_codec_decode(blob, len, back, n), 0);
	cr_assert_eq(memcmp(back, e, n * sizeof *e), 0);
	/* Any other count is refused. */
	cr_assert_neq(persist_codec_decode(blob, len, back, n + 1), 0);
	free(blob);
	free(back);
}

Test(persist_codec, entries_of_a_workload_round_trip_in_under_9_bytes_each)
{
	struct store_entry	*e = entries(PERSIST_CODEC_BLOCK, 7);
	unsigned char		*blob = malloc(persist_codec_bound(
				    PERSIST_CODEC_BLOCK));
	size_t			 len;

	round_trip(e, PERSIST_CODEC_BLOCK);
	len = persist_codec_encode(e, PERSIST_CODEC_BLOCK, blob);
	cr_assert_lt(len, 9 * PERSIST_CODEC_BLOCK, "%zu bytes for %d entries",
	    len, PERSIST_CODEC_BLOCK);
	free(blob);
	free(e);
}

Test(persist_codec, extreme_values_and_equal_keys_round_trip)
{
	struct store_entry e[] = {
		{ 0, 0, 0, 0, 1, 0 },
		{ 0, 0, 0, 1, UINT64_MAX, UINT64_MAX },
		{ 0, 0, 7, 0, 1, 1 },
		{ 0, UINT32_MAX, 0, 0, 2, 3 },
		{ 5, 1, UINT32_MAX, UINT32_MAX, 1, 1 },
		{ UINT32_MAX, 0, 0, 0, 1ull << 63, 1ull << 32 },
		{ UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX, 9, 9 },
	};

	round_trip(e, sizeof e / sizeof e[0]);
	round_trip(e, 0);
	round_trip(e, 1);
}

Test(persist_codec, a_raw_blob_reads_as_written)
{
	struct store_entry	*e = entries(100, 3), back[100];
	uint64_t		 n;
	int			 compact;

	cr_assert_eq(persist_codec_count(e, 100 * sizeof *e, &n, &compact),
	    0);
	cr_assert(!compact);
	cr_assert_eq(n, 100);
	cr_assert_eq(persist_codec_decode(e, 100 * sizeof *e, back, 100), 0);
	cr_assert_eq(memcmp(back, e, sizeof back), 0);
	/* Empty, and not a whole number of entries. */
	cr_assert_eq(persist_codec_count("", 0, &n, &compact), 0);
	cr_assert_eq(n, 0);
	cr_assert_neq(persist_codec_count(e, 33, &n, &compact), 0);
	free(e);
}

Test(persist_codec, every_cut_and_every_flipped_byte_is_refused_or_bounded)
{
	struct store_entry	*e = entries(200, 11), *back;
	unsigned char		*blob, *bad;
	uint64_t		 n;
	size_t			 len, cut, i;
	int			 compact, bit;

	blob = malloc(persist_codec_bound(200));
	len = persist_codec_encode(e, 200, blob);
	bad = malloc(len);
	back = calloc(200, sizeof *back);
	/* Cut anywhere: never a whole blob of 200. */
	for (cut = 0; cut < len; cut++)
		cr_assert_neq(persist_codec_decode(blob, cut, back, 200), 0,
		    "a blob cut at %zu of %zu decoded", cut, len);
	/* A flipped bit decodes to at most the count its head says, within
	 * the blob (ASan checks the reads), or is refused. */
	for (i = 0; i < len; i++) {
		for (bit = 0; bit < 8; bit++) {
			memcpy(bad, blob, len);
			bad[i] ^= (unsigned char)(1 << bit);
			if (persist_codec_count(bad, len, &n, &compact) != 0 ||
			    n > 200)
				continue;
			(void)persist_codec_decode(bad, len, back, n);
		}
	}
	/* An unknown format byte. */
	memcpy(bad, blob, len);
	bad[4] = PERSIST_CODEC_FORMAT + 1;
	cr_assert_neq(persist_codec_count(bad, len, &n, &compact), 0);
	free(blob);
	free(bad);
	free(back);
	free(e);
}
