// SPDX-License-Identifier: GPL-2.0-only
/*
 * TC ingress of a slave's host-side veth peer, i.e. everything the slave
 * transmits: the kernel's ipvlan_queue_xmit() with ipvlan_xmit_mode_l2() and
 * ipvlan_xmit_mode_l3(). Nothing a slave sends reaches the host peer's own
 * stack except the L3 egress that route.h hands to the master's namespace.
 */
/* counters and events of this program are "from a slave" */
#define IVB_PROG_DIR IVB_DIR_FROM_SLAVE

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lib/consts.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/demux.h"
#include "lib/fanout.h"
#include "lib/route.h"
#include "lib/verdict.h"
#include "lib/guard_tx.h"
#include "lib/slowpath.h"
#include "lib/snoop.h"

/*
 * No slave up owns the destination: if it is in the sender's own subnet the
 * table may lag a sibling's (or a shim's) new address. The frame takes its
 * ordinary way at once (no delay for the subnet's other hosts), and a copy
 * goes to the agent, which sends it again from the slave if a sibling owns
 * the address after all (slowpath.h).
 */
static __always_inline void ivb_copy_unknown_dest(struct __sk_buff *skb, const struct ivb_frame *f, __u32 why,
						  __u32 self)
{
	const struct ivb_addr_owner *src_owner = f->src_owner;

	if (why != IVB_DROP_NO_OWNER && why != IVB_DROP_SLAVE_DOWN)
		return;
	if (!src_owner)
		src_owner = ivb_addr_lookup(&f->src);
	if (ivb_dest_worth_holding(f, src_owner, self))
		ivb_copy_to_agent(skb, &f->dst, self);
}

static __always_inline int ivb_to_wire(struct __sk_buff *skb, const struct ivb_port *port)
{
	return IVB_VERDICT(skb, bpf_redirect(port->master_ifindex, 0), IVB_ACT_TO_WIRE, port->master_ifindex,
			   IVB_DROP_NONE);
}

/* ipvlan_xmit_mode_l2() */
static __always_inline int ivb_xmit_l2(struct __sk_buff *skb, const struct ivb_port *port,
				       const struct ivb_frame *f, __u32 self)
{
	struct ivb_owner_ref owner;
	__u32 peer, why;

	if (!(port->flags & IVB_F_VEPA) && f->mac_local) {
		/* the shared MAC: a sibling, or else the master itself */
		peer = f->has_key ? ivb_owner(&f->dst, &owner, &why) : 0;
		if (peer) {
			if (port->flags & IVB_F_PRIVATE)
				return IVB_DROP(skb, IVB_DROP_PRIVATE);
			return ivb_deliver(skb, &owner, peer, 1);
		}
		if (f->has_key) {
			int held = ivb_hold_local_dest(skb, f, why, self);

			if (held >= 0)
				return held;
		}
		return IVB_VERDICT(skb, bpf_redirect(port->master_ifindex, BPF_F_INGRESS), IVB_ACT_TO_MASTER,
				   port->master_ifindex, IVB_DROP_NONE);
	}
	if ((port->flags & IVB_F_VEPA) && f->mac_local && f->has_key && ivb_owner_up(&f->dst))
		/* for a sibling: out for the switch to reflect (counted as a hairpin) */
		return IVB_VERDICT(skb, bpf_redirect(port->master_ifindex, 0), IVB_ACT_TO_WIRE,
				   port->master_ifindex, IVB_DROP_VEPA_HAIRPIN);
	if (f->mcast_dst) {
		/* siblings get copies whatever the flags; the master's stack never does */
		ivb_snoop_membership(skb, f, self);
		ivb_fanout(skb, ivb_port_id, port->nr_slaves, self);
		return ivb_to_wire(skb, port);
	}
	return ivb_to_wire(skb, port);
}

/* ipvlan_xmit_mode_l3() */
static __always_inline int ivb_xmit_l3(struct __sk_buff *skb, const struct ivb_port *port,
				       const struct ivb_frame *f, __u32 self)
{
	struct ivb_owner_ref owner;
	__u32 peer, why;

	if (!(port->flags & IVB_F_VEPA) && f->has_key) {
		peer = ivb_owner(&f->dst, &owner, &why);
		if (peer) {
			if (port->flags & IVB_F_PRIVATE)
				return IVB_DROP(skb, IVB_DROP_PRIVATE);
			return ivb_deliver(skb, &owner, peer, 1);
		}
		if (!f->mcast_dst && ivb_local_in_master_ns_v6(skb, f)) {
			int held = ivb_hold_local_dest(skb, f, why, self);

			if (held >= 0)
				return held;
		} else if (!f->mcast_dst) {
			ivb_copy_unknown_dest(skb, f, why, self);
		}
	}
	return ivb_route_out(skb, port, f);
}

SEC("tc")
int ivb_slave_egress(struct __sk_buff *skb)
{
	struct ivb_port *port = ivb_port_get(ivb_port_id);
	/* whose counter block: the sender's, known once its source is looked up */
	__u32 *sender_index = ivb_counters_enabled ? ivb_sender_index_get() : NULL;
	__u32 self = skb->ingress_ifindex;
	struct ivb_frame f;
	int ret;

	ivb_trace_reset();
	if (sender_index)
		*sender_index = 0;
	/* a slave without a port has no way out: never leak into the host peer's stack */
	if (!port)
		return IVB_DROP(skb, IVB_DROP_NO_PORT);
	ivb_pull_headers(skb);
	if (ivb_parse(skb, ivb_port_id, port->master_mac, &f) < 0)
		return IVB_DROP(skb, IVB_DROP_MALFORMED);
	/* the sender's entry: source validation, the slow path's subnet test, and its counter block */
	if (f.has_key) {
		f.src_owner = ivb_addr_lookup(&f.src);
		if (sender_index && f.src_owner && f.src_owner->peer_ifindex == self)
			*sender_index = f.src_owner->slave;
	}
	ret = ivb_check_sender(skb, port, &f, self);
	if (ret >= 0)
		return ret;
	if (port->mode == IVB_MODE_L2)
		return ivb_xmit_l2(skb, port, &f, self);
	return ivb_xmit_l3(skb, port, &f, self);
}

char LICENSE[] SEC("license") = "GPL";
