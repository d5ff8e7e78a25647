/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Broadcast/multicast copies to slaves: ipvlan_process_multicast(). A copy
 * goes to every up slave whose multicast filter (mcfilter.h: the kernel's
 * 256-bit hash of the destination MAC) passes the frame's destination; the
 * sender itself never gets one.
 */
#ifndef IVB_FANOUT_H
#define IVB_FANOUT_H

#include "maps.h"
#include "demux.h"
#include "verdict.h"
#include "mcfilter.h"

/* What one fan-out walk needs in its bpf_loop() callback (on the caller's stack). */
struct ivb_fanout_walk {
	struct __sk_buff *skb;
	__u32 port_id;
	__u32 except;
	__u32 copies;
	__u32 mac_hash;  /* ivb_mac_hash() of the destination */
	__u32 broadcast; /* the destination is ff:ff:ff:ff:ff:ff */
	__u32 pad;
};

/* One slot of the walk: a copy to the slave in it, if that slave is up. */
static long ivb_fanout_slot(__u64 slot, void *data)
{
	struct ivb_fanout_walk *w = data;
	__u32 k = w->port_id * IVB_MAX_FANOUT + (__u32)slot;
	struct ivb_fanout_entry *e;
	struct ivb_slave *s;

	e = bpf_map_lookup_elem(&ivb_fanout_slots, &k);
	if (!e || !e->peer_ifindex || e->peer_ifindex == w->except)
		return 0;
	s = ivb_slave_get(e->slave, e->peer_ifindex);
	/*
	 * only up slaves get copies; a shim slave (in the master's
	 * namespace) gets one whatever the agent has seen yet: it is
	 * typically brought up and used at once, and a copy to a shim
	 * that is really down is dropped by its veth
	 */
	if (!s || !(s->flags & (IVB_SLAVE_UP | IVB_SLAVE_SAME_NETNS)))
		return 0;
	/* a group the slave has not joined (nor a colliding one) */
	if (!ivb_mc_filter_pass(e->slave, w->mac_hash, w->broadcast))
		return 0;
	/* egress of the host-side peer: veth hands it to the slave end */
	if (!ivb_dry_run)
		bpf_clone_redirect(w->skb, e->peer_ifindex, 0);
	ivb_count(w->skb, IVB_ACT_FANOUT_COPY, IVB_DROP_NONE, e->slave);
	ivb_count_sibling_rx(w->skb, e->slave, IVB_ACT_FANOUT_COPY);
	w->copies++;
	return 0;
}

/*
 * Clones skb to every up slave of the port that takes its destination,
 * except the one whose peer is `except`; returns copies tried. bpf_loop() keeps the verifier's cost of
 * the walk that of one slot, whatever IVB_MAX_FANOUT is.
 */
static __always_inline __u32 ivb_fanout(struct __sk_buff *skb, __u32 port_id, __u32 nr_slaves, __u32 except)
{
	struct ivb_fanout_walk w = { .skb = skb, .port_id = port_id, .except = except };
	__u8 dst[6];

	/* callers parsed the Ethernet header: the 6 bytes are there */
	if (bpf_skb_load_bytes(skb, 0, dst, sizeof(dst)) < 0)
		return 0;
	w.mac_hash = ivb_mac_hash(dst);
	w.broadcast = (dst[0] & dst[1] & dst[2] & dst[3] & dst[4] & dst[5]) == 0xff;
	bpf_loop(nr_slaves < IVB_MAX_FANOUT ? nr_slaves : IVB_MAX_FANOUT, ivb_fanout_slot, &w, 0);
	ivb_trace_fanout(w.copies);
	return w.copies;
}

#endif /* IVB_FANOUT_H */
