/*
 * store-private.h -- what store.c (buckets, life cycle) and store-defs.c
 * (interned definitions, sweeps, loading) share: the store's structure and
 * their common helpers.  Nothing outside those two files includes it.
 */
#ifndef STORE_PRIVATE_H
#define STORE_PRIVATE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto.h"
#include "store.h"

#define STORE_MALLOC_OVERHEAD	16	/* bytes malloc adds per block */
#define STORE_INDEX_MIN		64	/* slots of a new index */
#define STORE_BUCKET_MIN	64	/* slots of a new open bucket */
#define STORE_FUTURE_NS		(5ull * 1000000000)	/* clock skew allowed */
#define STORE_ID_MAX		(PROTO_MAX_ID * 4u)	/* ids of one kind */

struct store_string {
	uint32_t	len;
	uint32_t	hash;
	char		data[];		/* len bytes, then a NUL */
};

struct store_func {
	uint32_t	name;		/* 0: free */
	uint32_t	file;
	uint32_t	line;
};

struct store_frame {
	uint32_t	func;		/* 0: free */
	uint32_t	line;
};

struct store_stack {
	uint32_t	depth;
	uint32_t	hash;
	uint32_t	frames[];	/* leaf first */
};

/* A slot of an index: the id (0: empty) and 32 bits of its hash. */
struct store_slot {
	uint32_t	id;
	uint32_t	hash;
};

struct store_index {
	struct store_slot	*slots;
	uint32_t		 mask;
	uint32_t		 used;
};

/* The ids of one kind. */
struct store_defs {
	void			*items;		/* vector, item_size each */
	size_t			 item_size;
	uint32_t		 len;		/* ids handed out: 1..len */
	uint32_t		 cap;
	uint32_t		 live;		/* ids in use */
	uint32_t		*free_ids;	/* freed ids, for reuse */
	uint32_t		 nfree, free_cap;
	struct store_index	 index;
	uint8_t			*marks;		/* during a sweep */
	uint32_t		*pins;		/* by id: entries of buckets
						   kept only on disk that name
						   it; a sweep keeps those > 0
						   (UINT32_MAX: for good) */
	uint32_t		 npins;		/* ids 1..npins have a count */
};

struct store {
	struct store_config	 cfg;
	struct store_hooks	 hooks;
	uint64_t		 seed;
	size_t			 bytes;
	size_t			 def_bytes;
	struct store_defs	 defs[STORE_NKINDS];
	struct store_bucket	*buckets;	/* oldest first */
	struct store_bucket	*last;		/* last one added to */
	struct store_bucket	*retired;	/* held by queries */
	size_t			 retired_bytes;
	size_t			 nretired;
	size_t			 nbuckets;
	size_t			 nentries;
	uint64_t		 now_ns;	/* as of the last tick */
	uint32_t		 truncated_frame;
	uint32_t		 empty_string;
	int			 sweeping;
	int			 making_room;	/* in need_room */
	int			 readers;	/* queries reading buckets */
	int			 id_hold;	/* store_hold_ids */
	void			(*need_room)(void *);
	void			*need_room_arg;
	void			(*sweep_hook)(void *);
	void			*sweep_hook_arg;
	struct store_counts	 counts;
};

/* Mixes 64 bits (the murmur3 finalizer). */
static inline uint64_t
store_mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return (h);
}

/* Hashes up to four words with the store's seed. */
static inline uint32_t
store_hash4(const struct store *st, uint64_t a, uint64_t b, uint64_t c,
    uint64_t d)
{
	uint64_t	h = st->seed;

	h = store_mix(h ^ a) + b;
	h = store_mix(h) ^ c;
	h = store_mix(h + d);
	return ((uint32_t)h);
}

/* The address of an id's item slot. */
static inline void *
store_defs_slot(const struct store_defs *d, uint32_t id)
{
	return ((char *)d->items + (size_t)(id - 1) * d->item_size);
}

/* The pointer stored in a pointer kind's slot, or NULL. */
static inline void *
store_defs_ptr(const struct store_defs *d, uint32_t id)
{
	if (id == 0 || id > d->len)
		return (NULL);
	return (*(void **)store_defs_slot(d, id));
}

/* Whether an id of a fixed kind is in use (its first word non-zero). */
static inline int
store_defs_used(const struct store_defs *d, uint32_t id)
{
	uint32_t	first;

	if (id == 0 || id > d->len)
		return (0);
	memcpy(&first, store_defs_slot(d, id), sizeof first);
	return (first != 0);
}

/* Whether an id of any kind is in use. */
static inline int
store_defs_live(const struct store *st, enum store_kind k, uint32_t id)
{
	switch (k) {
	case STORE_STRING:
	case STORE_STACK:
	case STORE_INSTANCE:
		return (store_defs_ptr(&st->defs[k], id) != NULL);
	default:
		return (store_defs_used(&st->defs[k], id));
	}
}

/* store_charge's third argument: bucket memory (0), a definition (1: may
 * evict old buckets), a definition being loaded (never evicts). */
#define STORE_CHARGE_LOAD	2

/* Shared by store.c and store-defs.c. */
uint32_t	store_hash_bytes(const struct store *st, const void *p, size_t len);
int	store_charge(struct store *st, size_t n, int def);
void	store_uncharge(struct store *st, size_t n, int def);
uint64_t	store_realtime(void);
uint32_t	store_defs_grow(struct store *st, struct store_defs *d);
uint32_t	store_defs_alloc(struct store *st, struct store_defs *d);
int	store_defs_release(struct store *st, struct store_defs *d, uint32_t id);
int	store_index_reserve(struct store *st, struct store_index *ix);
void	store_index_add(struct store_index *ix, uint32_t id, uint32_t hash);
void	store_index_clear(struct store_index *ix);
void	store_instance_free(struct store_instance *in);
int	store_evict_one(struct store *st, const struct store_bucket *keep);
int	store_has_sealed(const struct store *st);
int	store_evict_sealed(struct store *st);

#endif
