/* SPDX-License-Identifier: GPL-2.0-only */
/* Who owns an address: ipvlan_addr_lookup() over the slaves that are up. */
#ifndef IVB_DEMUX_H
#define IVB_DEMUX_H

#include "maps.h"
#include "parse.h"
#include "verdict.h"

/* The slave at `index` if it is the one whose host-side peer is `peer` (an entry may lag a reuse of the index). */
static __always_inline struct ivb_slave *ivb_slave_get(__u32 index, __u32 peer)
{
	struct ivb_slave *s = bpf_map_lookup_elem(&ivb_slaves, &index);

	return s && s->peer_ifindex == peer && peer ? s : NULL;
}

/* An address's owner: its slave entry and its index in ivb_slaves. */
struct ivb_owner_ref {
	struct ivb_slave *slave;
	__u32 index;
};

/*
 * The owner's host-side peer ifindex when an UP slave owns the key, else 0.
 * The kernel hashes only running slaves' addresses (ipvlan_open/ipvlan_stop);
 * we keep down slaves' addresses in the table (they still block duplicates)
 * and skip them here. The owner's slave entry and index go to *ref (for
 * ivb_deliver): one lookup per map per frame.
 */
static __always_inline __u32 ivb_owner(const struct ivb_addr_key *key, struct ivb_owner_ref *ref, __u32 *why)
{
	struct ivb_addr_owner *o = ivb_addr_lookup(key);
	struct ivb_slave *s;

	ref->slave = NULL;
	ref->index = 0;
	*why = IVB_DROP_NO_OWNER;
	if (!o)
		return 0;
	s = ivb_slave_get(o->slave, o->peer_ifindex);
	if (!s || !(s->flags & IVB_SLAVE_UP)) {
		*why = s ? IVB_DROP_SLAVE_DOWN : IVB_DROP_SLAVE_GONE;
		return 0;
	}
	ref->slave = s;
	ref->index = o->slave;
	*why = IVB_DROP_NONE;
	return o->peer_ifindex;
}

static __always_inline __u32 ivb_owner_up(const struct ivb_addr_key *key)
{
	struct ivb_owner_ref ref;
	__u32 why;

	return ivb_owner(key, &ref, &why);
}

/*
 * Hands the frame to the slave behind `peer`, straight into its namespace.
 * From a sibling (`from_slave`), frames bigger than the receiver's MTU are
 * dropped, as dev_forward_skb()'s is_skb_forwardable() does (GSO frames pass:
 * they are segmented to fit); from the wire the kernel checks nothing.
 */
static __always_inline int ivb_deliver(struct __sk_buff *skb, const struct ivb_owner_ref *owner, __u32 peer,
				       int from_slave)
{
	const struct ivb_slave *s = owner->slave;

	if (!s)
		return IVB_DROP(skb, IVB_DROP_SLAVE_GONE);
	if (from_slave && s->mtu && !skb->gso_size && skb->len > s->mtu + IVB_ETH_HLEN)
		return IVB_DROP(skb, IVB_DROP_TOO_BIG);
	if (from_slave)
		ivb_count_sibling_rx(skb, owner->index, IVB_ACT_DELIVER);
	/* from the wire, the delivery is counted on the receiver's block (its index) */
	if (s->flags & IVB_SLAVE_SAME_NETNS)
		return ivb_verdict(skb, bpf_redirect(peer, 0), IVB_WHAT(IVB_ACT_DELIVER, IVB_DROP_NONE), peer,
				   owner->index);
	return ivb_verdict(skb, bpf_redirect_peer(peer, 0), IVB_WHAT(IVB_ACT_DELIVER, IVB_DROP_NONE), peer,
			   owner->index);
}

#endif /* IVB_DEMUX_H */
