/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The slow path: the kernel driver learns a slave's address inside
 * `ip addr add` (its inetaddr/inet6addr notifiers), so an address works from
 * its first packet. The agent learns it from the netlink event a moment
 * later. A frame that meets the table inside that moment would be judged on
 * stale facts (dropped as spoofed, or sent past the sibling that owns its
 * destination). So a frame from a source nobody owns yet is held instead:
 * copied to the agent through the ivb_slowpath ring and consumed here; a
 * frame to a destination in the sender's subnet that nobody owns yet (and an
 * ARP frame from the wire for such a target) goes its ordinary way at once,
 * and a copy goes to the agent. The agent re-reads the port (every netlink
 * change made before the frame was sent is visible to it by then), sends a
 * held frame again from the slave, where it meets the fresh table, and a
 * copy only when a slave owns its destination after all. Where the agent
 * found no owner it notes the address in ivb_unknown, and the datapath
 * decides it alone from then on.
 *
 * Bounded like the kernel's neighbour queue: IVB_PUNT_BUDGET frames per slave
 * and window (then dropped as slowpath_full), frames up to IVB_PUNT_MAX_FRAME
 * bytes (bigger ones take the ordinary path). Without a live agent (no
 * heartbeat in ivb_slowpath_state) nothing is held: forwarding never depends
 * on the agent.
 */
#ifndef IVB_SLOWPATH_H
#define IVB_SLOWPATH_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "maps.h"
#include "parse.h"
#include "verdict.h"

static __always_inline int ivb_slowpath_alive(__u64 now)
{
	__u32 k = 0;
	struct ivb_slowpath_state *s = bpf_map_lookup_elem(&ivb_slowpath_state, &k);

	return s && s->consumer_until_ns > now;
}

/* The agent looked at this address less than IVB_UNKNOWN_TTL_NS ago and no slave owned it. */
static __always_inline int ivb_recently_unowned(const struct ivb_addr_key *addr, __u64 now)
{
	struct ivb_unknown_entry *e = bpf_map_lookup_elem(&ivb_unknown, addr);

	return e && now - e->checked_ns < IVB_UNKNOWN_TTL_NS;
}

/* Takes one frame of the sending slave's budget; 0 when it is spent. */
static __always_inline int ivb_punt_budget_take(__u32 peer, __u64 now)
{
	struct ivb_slave_key k = { .port_id = ivb_port_id, .peer_ifindex = peer };
	struct ivb_rate *r, init = { .window_ns = now };

	r = bpf_map_lookup_elem(&ivb_punt_budget, &k);
	if (!r) {
		bpf_map_update_elem(&ivb_punt_budget, &k, &init, BPF_NOEXIST);
		r = bpf_map_lookup_elem(&ivb_punt_budget, &k);
		if (!r)
			return 0;
	}
	if (now - r->window_ns > IVB_PUNT_WINDOW_NS) {
		r->window_ns = now;
		r->count = 0;
	}
	if (r->count >= IVB_PUNT_BUDGET)
		return 0;
	__sync_fetch_and_add(&r->count, 1);
	return 1;
}

#define IVB_TO_AGENT_NONE 0  /* no slow path for it: no agent, a recent answer, too big, explain */
#define IVB_TO_AGENT_QUEUED 1
#define IVB_TO_AGENT_FULL 2  /* the sender's budget or the ring is full */

/*
 * Puts a copy of the frame in the ivb_slowpath ring for the agent: the
 * address no slave was known to own (`addr`), why (`reason`), and who sent
 * it (`from`: the slave's host peer, or the master for a wire frame, which
 * is how the agent tells them apart). The one writer of ring records.
 */
static __always_inline int ivb_to_agent(struct __sk_buff *skb, const struct ivb_addr_key *addr, __u32 reason,
					__u32 from)
{
	__u64 now = bpf_ktime_get_ns();
	struct ivb_punt *p;
	__u32 len = skb->len;

	/* explain judges the table as it is: the frame meets the same table unless it changes */
	if (ivb_dry_run || !ivb_slowpath_alive(now) || ivb_recently_unowned(addr, now))
		return IVB_TO_AGENT_NONE;
	if (len < IVB_ETH_HLEN || len > IVB_PUNT_MAX_FRAME)
		return IVB_TO_AGENT_NONE;
	if (!ivb_punt_budget_take(from, now))
		return IVB_TO_AGENT_FULL;
	p = bpf_ringbuf_reserve(&ivb_slowpath, sizeof(*p), 0);
	if (!p)
		return IVB_TO_AGENT_FULL;
	p->ts_ns = now;
	p->port_id = ivb_port_id;
	p->ifindex = from;
	p->reason = reason;
	p->family = addr->family;
	p->pad[0] = p->pad[1] = 0;
	__builtin_memcpy(p->addr, addr->addr, sizeof(p->addr));
	/* the mask only tells the verifier what the test above already ensured */
	len &= 0x7ff;
	if (len > IVB_PUNT_MAX_FRAME || len < IVB_ETH_HLEN || bpf_skb_load_bytes(skb, 0, p->frame, len) < 0) {
		bpf_ringbuf_discard(p, 0);
		return IVB_TO_AGENT_NONE;
	}
	p->len = len;
	bpf_ringbuf_submit(p, 0);
	return IVB_TO_AGENT_QUEUED;
}

/*
 * Holds a slave's frame for the agent because of its unknown source `addr`
 * (IVB_DROP_UNKNOWN_SOURCE): the agent sends it again once it has re-read
 * the slave. Returns the verdict, or -1 when there is no slow path for it:
 * the caller then decides as before.
 */
static __always_inline int ivb_hold(struct __sk_buff *skb, const struct ivb_addr_key *addr, __u32 reason)
{
	switch (ivb_to_agent(skb, addr, reason, skb->ingress_ifindex)) {
	case IVB_TO_AGENT_QUEUED:
		return IVB_VERDICT(skb, IVB_TC_ACT_SHOT, IVB_ACT_HELD, 0, reason);
	case IVB_TO_AGENT_FULL:
		return IVB_DROP(skb, IVB_DROP_SLOWPATH_FULL);
	default:
		return -1;
	}
}

/*
 * A copy for the agent of a frame that takes its ordinary way: its
 * destination `addr` may be a slave's the table has not caught up with. The
 * agent hands the copy to that slave if so, and drops it if not. A full
 * budget or ring means no copy, nothing more.
 */
static __always_inline void ivb_copy_to_agent(struct __sk_buff *skb, const struct ivb_addr_key *addr, __u32 from)
{
	ivb_to_agent(skb, addr, IVB_DROP_UNKNOWN_DEST, from);
}

/*
 * From the wire, l2: an ARP frame whose target no up slave owns, or a frame
 * of our own slaves reflected by a hairpinning switch (vepa) for such an
 * address, goes to the master's stack as before, and a copy to the agent: if
 * the address is a slave's the table had not caught up with (a shim slave's,
 * or one a slave just added and asked from), the frame must reach that slave,
 * since neighbour state is per device and the master's stack does not deliver
 * IPv6 for an address of another device. A host on the wire sending IP to an
 * unknown address is not copied (a routing host would pay for every flow).
 */
static __always_inline void ivb_copy_unknown_from_wire(struct __sk_buff *skb, const struct ivb_addr_key *target)
{
	if (!bpf_map_lookup_elem(&ivb_local_addrs, target))
		ivb_copy_to_agent(skb, target, skb->ifindex);
}

/* The first `bits` bits of a and b agree (addresses of up to 16 bytes). */
static __always_inline int ivb_same_prefix(const __u8 *a, const __u8 *b, __u32 bits)
{
	__u8 diff = 0;

	for (int i = 0; i < 16; i++) {
		__u32 lo = i * 8;
		__u8 mask;

		if (bits <= lo)
			break;
		mask = bits - lo >= 8 ? 0xff : (__u8)(0xff << (8 - (bits - lo)));
		diff |= (a[i] ^ b[i]) & mask;
	}
	return diff == 0;
}

/*
 * A destination worth holding for: in the sending slave's own subnet (where a
 * sibling's new address, or a shim slave's in the master's namespace, would
 * be), and neither the master's own address, the subnet's broadcast address
 * nor the sender's.
 * `src_owner` is the sender's entry for its source address.
 */
static __always_inline int ivb_dest_worth_holding(const struct ivb_frame *f, const struct ivb_addr_owner *src_owner,
						  __u32 self)
{
	if (!src_owner || src_owner->peer_ifindex != self || f->dst.family != f->src.family)
		return 0;
	if (bpf_map_lookup_elem(&ivb_local_addrs, &f->dst))
		return 0;
	if (!ivb_same_prefix(f->src.addr, f->dst.addr, src_owner->prefixlen))
		return 0;
	/* the subnet's IPv4 broadcast address is nobody's to learn */
	if (f->dst.family == IVB_AF_INET && src_owner->prefixlen < 31) {
		__u32 d = ((__u32)f->dst.addr[0] << 24) | ((__u32)f->dst.addr[1] << 16) |
			  ((__u32)f->dst.addr[2] << 8) | f->dst.addr[3];
		__u32 host = 0xffffffffu >> src_owner->prefixlen;

		if ((d & host) == host)
			return 0;
	}
	return 1;
}

/*
 * Held, not copied: a destination in the sender's subnet nobody is known to
 * own, on a way that ends in the master namespace's own stack (l2: a frame to
 * the shared MAC, which only a sibling, a shim or the master's namespace
 * answered for; l3: an IPv6 address that namespace would not forward, a
 * shim's, say). A copy cannot undo what that stack does with the original
 * (deliver it past `private`, drop the shim's reply with rp_filter, keep an
 * ARP reply from the shim's neighbour entry). Sent again after the agent's
 * fresh read, the frame meets a table that knows. Destinations on the wire
 * are never held (they have their own MACs in l2; the FIB tells in l3).
 */
static __always_inline int ivb_hold_local_dest(struct __sk_buff *skb, const struct ivb_frame *f, __u32 why,
					       __u32 self)
{
	const struct ivb_addr_owner *src_owner = f->src_owner;

	if (why != IVB_DROP_NO_OWNER && why != IVB_DROP_SLAVE_DOWN)
		return -1;
	if (!src_owner)
		src_owner = ivb_addr_lookup(&f->src);
	if (!ivb_dest_worth_holding(f, src_owner, self))
		return -1;
	return ivb_hold(skb, &f->dst, IVB_DROP_UNKNOWN_LOCAL_DEST);
}

#endif /* IVB_SLOWPATH_H */
