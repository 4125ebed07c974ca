/*
 * persist-codec.h -- a bucket's entries as the store file keeps them.
 *
 * A blob of entries is one of two forms, told apart by its first four
 * bytes:
 *
 *   compact   the word PERSIST_CODEC_MAGIC (no entry's thread id can be
 *             it), a format byte (1), the count of entries as a varint,
 *             then each entry in the store's order (store_cmp_entry),
 *             coded against the one before it (the first against zeros):
 *             thread, stack, labels and flags, each the difference from
 *             the previous entry's while every key before it is equal (so
 *             never negative, since the entries are sorted), else the
 *             value itself; then count and weight_us.  Every number is an
 *             unsigned LEB128 varint.  Most entries take 8 to 12 bytes.
 *   raw       what profd wrote before: struct store_entry memory images
 *             (32 bytes each, little-endian), any count.
 *
 * profd writes compact blobs of at most PERSIST_CODEC_BLOCK entries; it
 * reads both.  Decoding checks every bound: a damaged blob is refused,
 * never read past its end or into a wrong count.
 */
#ifndef PERSIST_CODEC_H
#define PERSIST_CODEC_H

#include <stddef.h>
#include <stdint.h>

struct store_entry;

#define PERSIST_CODEC_MAGIC	0xffffffffu
#define PERSIST_CODEC_FORMAT	1
#define PERSIST_CODEC_BLOCK	16384	/* entries a compact blob holds */
#define PERSIST_CODEC_HEAD	15	/* bytes that hold any blob's count */
#define PERSIST_CODEC_ENTRY_MAX	40	/* bytes one entry may take */

/* The most bytes n entries can take, compact (n <= PERSIST_CODEC_BLOCK). */
size_t	persist_codec_bound(size_t n);

/* Encodes n sorted entries into out (persist_codec_bound(n) bytes);
 * returns the bytes written. */
size_t	persist_codec_encode(const struct store_entry *e, size_t n,
	    unsigned char *out);

/*
 * The count of entries of a blob of `bytes` bytes, from its first
 * min(bytes, PERSIST_CODEC_HEAD) bytes in head: 0 and *n, or -1 if it
 * cannot be a blob of entries.  *compact says which form it is.
 */
int	persist_codec_count(const void *head, size_t bytes, uint64_t *n,
	    int *compact);

/* Decodes a whole blob into to[0..n), n its count: 0, or -1 if the blob
 * is damaged or holds another count. */
int	persist_codec_decode(const void *blob, size_t bytes,
	    struct store_entry *to, uint64_t n);

#endif
