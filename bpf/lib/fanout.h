/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Broadcast/multicast copies to slaves: ipvlan_process_multicast(). A slave
 * gets a copy when it is up and the bit of the destination MAC's hash is set
 * in its filter (ipvlan_multicast_enqueue's mac_filters): the groups on its
 * multicast list and the broadcast address, every group when it is PROMISC or
 * ALLMULTI. Hash collisions let other groups through, as in the kernel.
 */
#ifndef IVB_FANOUT_H
#define IVB_FANOUT_H

#include "maps.h"
#include "demux.h"
#include "verdict.h"

static __always_inline __u32 ivb_rol32(__u32 w, __u32 s)
{
	return (w << s) | (w >> (32 - s));
}

/* ipvlan_mac_hash(): jhash_1word(MAC bytes 2..5 in CPU order, seed) & 0xff */
static __always_inline __u32 ivb_mac_hash(const __u8 *mac)
{
	__u32 a, b, c;

	__builtin_memcpy(&a, mac + 2, 4);
	/* jhash_1word(a, seed) = __jhash_nwords(a, 0, 0, seed + JHASH_INITVAL + (1 << 2)) */
	b = c = (__u32)IVB_MC_HASH_SEED + 0xdeadbeef + (1 << 2);
	a += b;
	/* __jhash_final */
	c ^= b; c -= ivb_rol32(b, 14);
	a ^= c; a -= ivb_rol32(c, 11);
	b ^= a; b -= ivb_rol32(a, 25);
	c ^= b; c -= ivb_rol32(b, 16);
	a ^= c; a -= ivb_rol32(c, 4);
	b ^= a; b -= ivb_rol32(a, 14);
	c ^= b; c -= ivb_rol32(b, 24);
	return c & (IVB_MC_FILTER_BITS - 1);
}

/* The hash bucket of the frame's destination MAC (0 for a frame too short to have one). */
static __always_inline __u32 ivb_dst_mac_hash(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return 0;
	return ivb_mac_hash(eth->h_dest);
}

/* What one fan-out walk carries from slot to slot (bpf_loop's context). */
struct ivb_fanout_walk {
	struct __sk_buff *skb;
	__u64 takers[4]; /* slot i: bit i (little-endian, as ivb_mc_slots' bytes) */
	__u32 port_id;
	__u32 nr_slaves;
	__u32 except;
	__u32 copies;
};

/* One slot: a copy to its slave when it is up, not `except`, and takes the group. */
static long ivb_fanout_slot(__u64 index, void *ctx)
{
	struct ivb_fanout_walk *w = ctx;
	__u32 slot = (__u32)index;
	struct ivb_fanout_key k = { .port_id = w->port_id, .slot = slot };
	struct ivb_fanout_entry *e;
	struct ivb_slave *s;

	if (slot >= w->nr_slaves)
		return 1;
	if (!((w->takers[(slot >> 6) & 3] >> (slot & 63)) & 1))
		return 0;
	e = bpf_map_lookup_elem(&ivb_fanout_slots, &k);
	if (!e || !e->peer_ifindex || e->peer_ifindex == w->except)
		return 0;
	s = ivb_slave_get(w->port_id, e->peer_ifindex);
	if (!s || !(s->flags & IVB_SLAVE_UP))
		return 0;
	/* egress of the host-side peer: veth hands it to the slave end */
	if (!ivb_dry_run)
		bpf_clone_redirect(w->skb, e->peer_ifindex, 0);
	ivb_count(w->skb, IVB_ACT_FANOUT_COPY, e->peer_ifindex, IVB_DROP_NONE);
	ivb_count_sibling_rx(w->skb, e->peer_ifindex, IVB_ACT_FANOUT_COPY);
	w->copies++;
	return 0;
}

/*
 * Clones skb to every up slave of the port except the one whose peer is
 * `except`, among the slots that take hash bucket `mc_bit`; returns copies
 * tried. The slots are walked with bpf_loop: the verifier checks one slot,
 * not 256 of them.
 */
static __always_inline __u32 ivb_fanout(struct __sk_buff *skb, __u32 port_id, __u32 nr_slaves,
					__u32 except, __u32 mc_bit)
{
	struct ivb_mc_bucket_key mk = { .port_id = port_id, .bucket = mc_bit & (IVB_MC_FILTER_BITS - 1) };
	/* one lookup per frame, not one per slave */
	const struct ivb_mc_slots *m = bpf_map_lookup_elem(&ivb_mc_slots, &mk);
	struct ivb_fanout_walk w = {
		.skb = skb,
		.takers = { ~0ULL, ~0ULL, ~0ULL, ~0ULL },
		.port_id = port_id,
		.nr_slaves = nr_slaves,
		.except = except,
	};

	if (m)
		__builtin_memcpy(w.takers, m->slots, sizeof(w.takers));
	bpf_loop(IVB_MAX_FANOUT, ivb_fanout_slot, &w, 0);
	ivb_trace_fanout(w.copies);
	return w.copies;
}

#endif /* IVB_FANOUT_H */
