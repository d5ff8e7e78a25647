/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Broadcast/multicast copies to slaves: ipvlan_process_multicast(). The
 * kernel filters by a 256-bit hash of the destination MAC per slave; we give a
 * copy to every up slave and let its stack drop groups it has not joined (the
 * kernel's hash lets collisions through to the same effect).
 */
#ifndef IVB_FANOUT_H
#define IVB_FANOUT_H

#include "maps.h"
#include "demux.h"
#include "verdict.h"

/* Clones skb to every up slave of the port except the one whose peer is `except`; returns copies tried. */
static __always_inline __u32 ivb_fanout(struct __sk_buff *skb, __u32 port_id, __u32 nr_slaves,
					__u32 except)
{
	__u32 copies = 0;

	for (__u32 slot = 0; slot < IVB_MAX_FANOUT; slot++) {
		struct ivb_fanout_key k = { .port_id = port_id, .slot = slot };
		struct ivb_fanout_entry *e;
		struct ivb_slave *s;

		if (slot >= nr_slaves)
			break;
		e = bpf_map_lookup_elem(&ivb_fanout_slots, &k);
		if (!e || !e->peer_ifindex || e->peer_ifindex == except)
			continue;
		s = ivb_slave_get(port_id, e->peer_ifindex);
		/*
		 * only up slaves get copies; a shim slave (in the master's
		 * namespace) gets one whatever the agent has seen yet: it is
		 * typically brought up and used at once, and a copy to a shim
		 * that is really down is dropped by its veth
		 */
		if (!s || !(s->flags & (IVB_SLAVE_UP | IVB_SLAVE_SAME_NETNS)))
			continue;
		/* egress of the host-side peer: veth hands it to the slave end */
		if (!ivb_dry_run)
			bpf_clone_redirect(skb, e->peer_ifindex, 0);
		ivb_count(skb, IVB_ACT_FANOUT_COPY, e->peer_ifindex, IVB_DROP_NONE);
		ivb_count_sibling_rx(skb, e->peer_ifindex, IVB_ACT_FANOUT_COPY);
		copies++;
	}
	ivb_trace_fanout(copies);
	return copies;
}

#endif /* IVB_FANOUT_H */
