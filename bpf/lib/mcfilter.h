/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The per-slave multicast filter of the kernel driver
 * (ipvlan_set_multicast_mac_filter, ipvlan_process_multicast): a copy of a
 * broadcast/multicast frame goes to a slave only if the bit of its
 * destination MAC's 8-bit hash is set in the slave's 256-bit filter.
 *
 * The hash has the kernel's shape, jhash_1word() of MAC bytes 2..5 read as a
 * host-order word, masked to 8 bits (ipvlan_mac_hash), but a fixed seed
 * where the kernel draws a random secret at module load: which groups
 * collide differs from a given kernel's, that collisions let a few foreign
 * groups through does not. controller/src/agent/multicast.ts computes the
 * same function to set the bits.
 */
#ifndef IVB_MCFILTER_H
#define IVB_MCFILTER_H

#include "maps.h"

/* the seed of our jhash (the kernel's ipvlan_jhash_secret is random) */
#define IVB_MC_HASH_SEED 0u
#define IVB_JHASH_INITVAL 0xdeadbeefu

static __always_inline __u32 ivb_rol32(__u32 w, __u32 s)
{
	return (w << s) | (w >> (32 - s));
}

/* include/linux/jhash.h: jhash_1word(a, seed) = __jhash_nwords(a, 0, 0, seed + INITVAL + 4) */
static __always_inline __u32 ivb_jhash_1word(__u32 a, __u32 seed)
{
	__u32 iv = seed + IVB_JHASH_INITVAL + (1 << 2);
	__u32 b = iv, c = iv;

	a += iv;
	/* __jhash_final(a, b, c) */
	c ^= b; c -= ivb_rol32(b, 14);
	a ^= c; a -= ivb_rol32(c, 11);
	b ^= a; b -= ivb_rol32(a, 25);
	c ^= b; c -= ivb_rol32(b, 16);
	a ^= c; a -= ivb_rol32(c, 4);
	b ^= a; b -= ivb_rol32(a, 14);
	c ^= b; c -= ivb_rol32(b, 24);
	return c;
}

/* ipvlan_mac_hash(): bytes 2..5 as the CPU reads them (little-endian here) */
static __always_inline __u32 ivb_mac_hash(const __u8 *mac)
{
	__u32 word = (__u32)mac[2] | (__u32)mac[3] << 8 | (__u32)mac[4] << 16 | (__u32)mac[5] << 24;

	return ivb_jhash_1word(word, IVB_MC_HASH_SEED) & (IVB_MC_FILTER_BITS - 1);
}

/*
 * Does the slave at INDEX take a copy of a frame whose destination hashes to
 * HASH? Broadcast always does (the kernel sets its bit whatever the list);
 * so does a slave with no filter kept yet (the agent has not read its list:
 * a slave just made, or no agent), as before filters existed.
 */
static __always_inline int ivb_mc_filter_pass(__u32 index, __u32 hash, __u32 broadcast)
{
	struct ivb_mc_filter *flt;

	if (broadcast)
		return 1;
	flt = bpf_map_lookup_elem(&ivb_mc_filters, &index);
	if (!flt || !flt->kept)
		return 1;
	return (flt->bits[(hash >> 3) & 31] >> (hash & 7)) & 1;
}

#endif /* IVB_MCFILTER_H */
